"""Benchmark (lesson 07): banded sliding-window attention against dense masked attention, side by side.

    python benchmarks/sliding_window.py            # T = 16384, window = 128 (about a minute on 2 cores)
    python benchmarks/sliding_window.py --length 4096

Prints, for one head of dimension 64: median time and peak memory of
  * course_lib.sparse.sliding_window_attention (banded, O(T·window) memory),
  * dense masked naive attention (course_lib.attention with the (T, T) boolean mask),
  * torch's F.scaled_dot_product_attention given the same dense boolean mask,
the speed-up ratios, and the banded version's peak memory at growing T with its fitted log-log slope
(1 = linear). Targets: >= 10x faster than dense naive, >= 2x faster than SDPA with the dense mask, slope ~1.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from course_lib import measure, sparse
from course_lib.attention import scaled_dot_product_attention


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=16384)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    length, window = args.length, args.window
    query, key, value = (torch.randn(1, 1, length, args.head_dim) for _ in range(3))  # (B, H, T, D)
    mask = sparse.sliding_window_mask(length, window)  # (T, T) bool, built once, outside the timings

    contenders = {
        "banded (course_lib.sparse)": lambda: sparse.sliding_window_attention(query, key, value, window),
        "dense masked naive": lambda: scaled_dot_product_attention(query, key, value, attn_mask=mask)[0],
        "torch SDPA + dense mask": lambda: F.scaled_dot_product_attention(query, key, value, attn_mask=mask),
    }
    banded = contenders["banded (course_lib.sparse)"]()
    for name, run in contenders.items():  # all three compute the same thing
        assert torch.allclose(run(), banded, atol=1e-5, rtol=1e-5), name

    print(f"T = {length}, window = {window}, one head of D = {args.head_dim}, float32, "
          f"{torch.get_num_threads()} threads; median of {args.repeats} after a warm-up")
    print(f"{'':28} {'time (ms)':>10} {'peak memory':>12} {'banded is faster by':>20}")
    seconds = {name: measure.time_call(run, repeats=args.repeats) for name, run in contenders.items()}
    for name, run in contenders.items():
        peak = measure.peak_memory(run)
        ratio = seconds[name] / seconds["banded (course_lib.sparse)"]
        print(f"{name:28} {seconds[name] * 1000:10.1f} {measure.format_bytes(peak):>12} {ratio:19.1f}x")
    print(f"(the dense mask itself holds {measure.format_bytes(mask.numel())} and is not counted: it was built before)")

    lengths = [length // 4, length // 2, length, length * 2]
    peaks = []
    for size in lengths:
        x = torch.randn(1, 1, size, args.head_dim)
        peaks.append(measure.peak_memory(sparse.sliding_window_attention, x, x, x, window))
    print("banded peak memory at T = " + ", ".join(f"{n}: {measure.format_bytes(p)}" for n, p in zip(lengths, peaks))
          + f"; log-log slope {measure.fit_slope(lengths, peaks):.2f} (1 = linear)")


if __name__ == "__main__":
    main()
