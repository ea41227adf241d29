"""Benchmark (lesson 06): time and peak memory of attention against sequence length, with fitted slopes.

    python benchmarks/attention_scaling.py

Naive attention (course_lib.attention, which keeps the (B, H, T, S) scores and weights) against torch's
F.scaled_dot_product_attention, for B = 1, H = 4, D = 32, float32. The log-log slopes are fitted only over
lengths whose score tensor no longer fits in the CPU's largest cache: below that, scores read from cache
cost less and fixed overheads weigh more, and both bend the curve away from its asymptote (lesson 06,
section 2). The times are this machine's, under its current load: compare slopes, not milliseconds.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib import cost, measure
from course_lib.attention import scaled_dot_product_attention

HEADS, HEAD_DIM = 4, 32


def main() -> None:
    torch.manual_seed(0)
    lengths = [256, 512, 1024, 2048, 2896, 4096, 5793, 8192]
    functions = {"naive": lambda q, k, v: scaled_dot_product_attention(q, k, v)[0],
                 "torch sdpa": F.scaled_dot_product_attention}
    results = measure.measure_scaling(functions, lengths, lambda n: tuple(torch.randn(1, HEADS, n, HEAD_DIM) for _ in range(3)))
    cache = measure.cache_bytes()
    fitted = [i for i, n in enumerate(lengths) if cost.score_matrix_bytes(n, n, HEADS) > cache]
    print(f"B = 1, H = {HEADS}, D = {HEAD_DIM}, float32, {torch.get_num_threads()} threads; largest cache "
          f"{measure.format_bytes(cache)}; slopes fitted over T >= {lengths[fitted[0]]}")
    print(f"{'T':>6} {'scores':>10} " + " ".join(f"{name + ' ms':>14} {name + ' peak':>16}" for name in functions))
    for i, n in enumerate(lengths):
        row = " ".join(f"{results[name]['seconds'][i] * 1000:14.1f} {measure.format_bytes(results[name]['bytes'][i]):>16}"
                       for name in functions)
        print(f"{n:>6} {measure.format_bytes(cost.score_matrix_bytes(n, n, HEADS)):>10} {row}")
    for name in functions:
        xs = [lengths[i] for i in fitted]
        time_slope = measure.fit_slope(xs, [results[name]["seconds"][i] for i in fitted])
        memory_slope = measure.fit_slope(xs, [results[name]["bytes"][i] for i in fitted])
        print(f"{name:>10}: time slope {time_slope:.2f}, memory slope {memory_slope:.2f}")


if __name__ == "__main__":
    main()
