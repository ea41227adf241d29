"""Benchmark (lesson 08): tiled flash attention against torch's fused kernel and naive attention, side by side.

    python benchmarks/flash_attention.py                      # T = 4096 for time, T = 16384 for memory
    python benchmarks/flash_attention.py --memory-length 8192 # if 16384 does not fit (naive needs ~12 GiB)
    python benchmarks/flash_attention.py --threads 1 2 4      # the thread counts to time (default: 1 and 2)

Prints, for 4 heads of dimension 64 in float32, for each thread count in one run:
  * median time at T = 4096 of course_lib.flash.flash_attention (pure PyTorch, one score tile at a time),
    torch's F.scaled_dot_product_attention (a fused C++ kernel), and naive attention (course_lib.attention,
    which builds the (T, T) scores and weights), with the ratios, timed in turns so that a busy machine
    slows all three alike;
  * peak memory at T = 16384 of flash attention and of naive attention, and their ratio.
Targets: flash within 1.5x of torch's time; flash's peak memory at most 1/16 of naive attention's.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from course_lib import cost, flash, measure
from course_lib.attention import scaled_dot_product_attention


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--memory-length", type=int, default=16384)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--block-size", type=int, default=flash.DEFAULT_BLOCK_SIZE)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch thread counts to time, one after the other (every contender gets the same)")
    args = parser.parse_args()
    torch.manual_seed(0)

    def inputs(length):
        return [torch.randn(1, args.heads, length, args.head_dim) for _ in range(3)]  # 3 x (B, H, T, D)

    query, key, value = inputs(args.length)
    contenders = {
        f"flash (block {args.block_size})": lambda q, k, v: flash.flash_attention(q, k, v, block_size=args.block_size),
        "torch SDPA (fused)": lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
        "naive (T x T scores)": lambda q, k, v: scaled_dot_product_attention(q, k, v)[0],
    }
    reference = contenders["torch SDPA (fused)"](query, key, value)
    for name, run in contenders.items():  # all three compute the same thing
        assert torch.allclose(run(query, key, value), reference, atol=1e-5, rtol=1e-5), name

    flash_name = next(iter(contenders))
    ratios = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"T = {args.length}, {args.heads} heads of D = {args.head_dim}, float32, {torch.get_num_threads()} "
              f"thread(s); median of {args.repeats} rounds after a warm-up, the contenders taking turns")
        seconds = measure.time_in_turns(contenders, query, key, value, repeats=args.repeats)
        print(f"{'':24} {'time (ms)':>10} {'time / flash':>13}")
        for name in contenders:
            print(f"{name:24} {seconds[name] * 1000:10.1f} {seconds[name] / seconds[flash_name]:12.2f}x")
        ratios[threads] = seconds[flash_name] / seconds["torch SDPA (fused)"]
        print()
    print("flash / torch SDPA time: " + ", ".join(f"{ratio:.2f} at {threads} thread(s)" for threads, ratio in
                                                  ratios.items()) + " (target: <= 1.5)")

    length = args.memory_length
    query, key, value = inputs(length)
    del reference
    peaks = {name: measure.peak_memory(contenders[name], query, key, value) for name in (flash_name, "naive (T x T scores)")}
    output_bytes = query.numel() * query.element_size()
    print(f"\npeak memory at T = {length} (the output itself is {measure.format_bytes(output_bytes)}; one (T, T) "
          f"score matrix per head would be {measure.format_bytes(cost.score_matrix_bytes(length, length, args.heads))})")
    for name, peak in peaks.items():
        print(f"{name:24} {measure.format_bytes(peak):>12}")
    ratio = peaks[flash_name] / peaks["naive (T x T scores)"]
    print(f"flash / naive peak memory: {ratio:.4f} = 1/{1 / ratio:.0f} (target: <= 1/16)")


if __name__ == "__main__":
    main()
