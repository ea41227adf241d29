"""Benchmark (lesson 09): linear attention against torch's fused softmax attention, side by side.

    python benchmarks/linear_attention.py               # up to T = 16384, one thread (about 20 s)
    python benchmarks/linear_attention.py --threads 2   # both on two threads

For one head of D = 64 (B = 1), float32, prints:
  * at T = 16384 (``--length``): median time of course_lib.linear.linear_attention and of torch's
    F.scaled_dot_product_attention, and the speed-up (target: linear >= 5x faster);
  * the same for the causal versions against SDPA with is_causal=True: linear attention by cumulative sums
    (course_lib.linear.causal_linear_attention, which moves a (D, Dv) state per position through memory) and
    in chunks of 64 (chunked_causal_linear_attention: (64, 64) tiles plus one state per chunk);
  * a table of both times against T, the log-log slopes (linear attention fitted over T >= 1024, where its
    work dominates the fixed cost of a call, target between 0.8 and 1.2; SDPA over T >= 2048, expect about 2)
    and the crossover length from which linear attention stays faster.
Both run on one thread by default: on a machine that other programs keep busy, two torch threads wait for
each other for milliseconds at every operation, which swamps linear attention's small ones (a 2-thread run
there measured a flat 80 ms for every T up to 16384). Pass --threads to choose.
Linear attention and softmax attention compute different things: this compares cost, not output.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from course_lib import linear, measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=16384)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both contenders (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    def inputs(length):
        return tuple(torch.randn(1, args.heads, length, args.head_dim) for _ in range(3))  # (B, H, T, D) each

    print(f"B = 1, H = {args.heads}, D = {args.head_dim}, float32, {torch.get_num_threads()} threads; "
          f"median of {args.repeats} calls after a warm-up (linear attention in the table: {max(args.repeats, 7)})")

    # 1) the target length, non-causal and causal
    query, key, value = inputs(args.length)
    pairs = {
        "non-causal": (lambda: linear.linear_attention(query, key, value),
                       lambda: F.scaled_dot_product_attention(query, key, value)),
        "causal, cumsum": (lambda: linear.causal_linear_attention(query, key, value),
                           lambda: F.scaled_dot_product_attention(query, key, value, is_causal=True)),
        "causal, chunks": (lambda: linear.chunked_causal_linear_attention(query, key, value, chunk_size=64),
                           lambda: F.scaled_dot_product_attention(query, key, value, is_causal=True)),
    }
    print(f"\nT = {args.length}:")
    print(f"{'':14} {'linear (ms)':>12} {'torch SDPA (ms)':>16} {'linear is faster by':>20}")
    for name, (run_linear, run_sdpa) in pairs.items():
        linear_seconds = measure.time_call(run_linear, repeats=args.repeats)
        sdpa_seconds = measure.time_call(run_sdpa, repeats=args.repeats)
        print(f"{name:14} {linear_seconds * 1e3:12.1f} {sdpa_seconds * 1e3:16.1f} {sdpa_seconds / linear_seconds:19.1f}x")

    # 2) scaling with T, both measured side by side on the same inputs
    lengths = [128, 256, 512, 1024, 2048, 4096, 8192, args.length]
    linear_repeats = max(args.repeats, 7)  # cheap calls: more repeats steady the median (as printed above)
    longer = [args.length * 2, args.length * 4]  # linear attention alone: still cheap here
    results = {"linear": {"seconds": []}, "torch SDPA": {"seconds": []}}
    for length in lengths + longer:  # both on the same inputs, one right after the other
        query, key, value = inputs(length)
        results["linear"]["seconds"].append(
            measure.time_call(linear.linear_attention, query, key, value, repeats=linear_repeats))
        if length in lengths:
            results["torch SDPA"]["seconds"].append(
                measure.time_call(F.scaled_dot_product_attention, query, key, value, repeats=args.repeats))
    print(f"\n{'T':>7} {'linear (ms)':>12} {'torch SDPA (ms)':>16} {'SDPA / linear':>14}")
    for i, length in enumerate(lengths):
        linear_ms, sdpa_ms = results["linear"]["seconds"][i] * 1e3, results["torch SDPA"]["seconds"][i] * 1e3
        print(f"{length:>7} {linear_ms:12.2f} {sdpa_ms:16.2f} {sdpa_ms / linear_ms:14.2f}")
    for i, length in enumerate(longer):
        print(f"{length:>7} {results['linear']['seconds'][len(lengths) + i] * 1e3:12.2f} {'(not run)':>16}")

    linear_fit = [(n, s) for n, s in zip(lengths + longer, results["linear"]["seconds"]) if n >= 1024]
    sdpa_fit = [(n, s) for n, s in zip(lengths, results["torch SDPA"]["seconds"]) if n >= 2048]
    linear_slope = measure.fit_slope(*zip(*linear_fit))
    sdpa_slope = measure.fit_slope(*zip(*sdpa_fit))
    crossover = measure.crossover_length(lengths, results["torch SDPA"]["seconds"],
                                        results["linear"]["seconds"][:len(lengths)])
    print(f"\nlog-log time slopes: linear {linear_slope:.2f} (T >= 1024), torch SDPA {sdpa_slope:.2f} (T >= 2048)")
    print("crossover: " + ("linear attention is not faster at any measured length" if crossover is None else
                           f"linear attention is faster from T ≈ {crossover:.0f} on"))


if __name__ == "__main__":
    main()
