"""The checks of lesson 05, positions: the sinusoidal encoding and RoPE.

Lesson: notebooks/05_positions.ipynb, its exercise solutions/05_positions.ipynb.
Tests: tests/checks/test_l05_positions.py.
"""
from __future__ import annotations

from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import tensor
from course_lib.checks.l05_positions.mistakes import (
    _batch_axis_added, _concatenated, _cos_and_sin_swapped, _cos_on_even_features, _doubled_exponent_frequencies,
    _inverted_frequencies, _overwritten_before_read, _own_feature_index, _pair_index_frequencies,
    _positions_ignored, _rope_other_base, _rope_with, _rotated_halves, _rotated_the_wrong_way, _same_function_twice,
    _sinusoidal_exponent_of_the_position, _sinusoidal_inverted, _sinusoidal_other_base,
    _sinusoidal_positions_from_one, _sinusoidal_transposed, _sinusoidal_with, _tensor2tensor_frequencies,
    _wrong_angles, _wrong_speeds,
)


def _sinusoidal_cases(rng):
    sizes = ((10, 8), (50, 16), (1, 4), (int(rng.integers(5, 30)), 32))
    return [Case(f"num_positions={p}, dim={d}", (p, d)) for p, d in sizes]


check_sinusoidal_encoding = Check(
    name="sinusoidal_encoding",
    points=1,
    make_cases=_sinusoidal_cases,
    implementation="course_lib.positional.sinusoidal_encoding",
    outputs=(Output("encoding", kind="torch"),),
    mistakes=(
        Mistake("your encoding is transposed: return (num_positions, dim), one row per position.",
                like(_sinusoidal_transposed)),
        Mistake("sin and cos are swapped: even features (0, 2, 4, …) get sin, odd features get cos.",
                like(_cos_on_even_features)),
        Mistake("you put all sines together and all cosines together (all sines first, or all cosines first): "
                "this is the tensor2tensor convention (its get_timing_signal_1d, fairseq's sinusoidal embedding "
                "and diffusers' timestep embedding, which also space the exponents i/(dim/2 − 1)); this exercise "
                "uses the paper's interleaved layout, feature 2i sin and 2i+1 cos "
                "of the same angle, because each pair (2i, 2i+1) is then one point turning on a circle, the "
                "pair that RoPE rotates later in this lesson.", _concatenated),
        Mistake("both features of a pair use the same function: feature 2i is sin and feature 2i+1 is cos of the "
                "same angle.", _same_function_twice),
        Mistake("your table has an extra axis of size 1 (the Annotated Transformer keeps (1, P, dim) as a "
                "buffer, the PyTorch tutorial (P, 1, dim)): return the table itself, (num_positions, dim).",
                _batch_axis_added),
        Mistake("positions start at 1: the first row is position 0 (all sines 0, all cosines 1).",
                like(_sinusoidal_positions_from_one)),
        Mistake("the exponent is off: pair i uses 10000^(2i/dim), where 2i is the index of its even feature "
                "(0, 2, 4, …), not 10000^(i/dim).", like(_sinusoidal_with(_pair_index_frequencies))),
        Mistake("the exponent has the 2 twice: looping over the even features j = 0, 2, 4, … the exponent is "
                "j/dim (that j is already 2i), not 2j/dim.", like(_sinusoidal_with(_doubled_exponent_frequencies))),
        Mistake("each feature uses its own index in the exponent: the odd feature 2i+1 shares the angle of its "
                "pair, p / 10000^(2i/dim), with the even feature 2i before it.", _own_feature_index),
        Mistake("the frequencies are inverted: divide the position by 10000^(2i/dim) (or multiply it by "
                "10000^(−2i/dim)); you multiply by 10000^(+2i/dim), so the later pairs spin ever faster "
                "instead of ever slower.", _sinusoidal_inverted),
        Mistake("the exponent spaces the pairs i/(dim/2 − 1), so that the last pair is exactly 1/10000 "
                "(tensor2tensor's and fairseq's spacing); the paper's, and this exercise's, is 2i/dim.",
                like(_sinusoidal_with(_tensor2tensor_frequencies))),
        Mistake("the exponent uses the position where the pair index belongs: the angle is p / 10000^(2i/dim), "
                "i the pair, p the position.", like(_sinusoidal_exponent_of_the_position)),
        Mistake("your formula has the paper's shape with another base (1000? 100?): the paper, and this "
                "exercise, divide by 10000^(2i/dim).", _sinusoidal_other_base),
        Mistake("the layout is right (sin on even, cos on odd features, pair 0 starting at sin 0, cos 1), but the "
                "pairs turn at the wrong speeds: pair i turns by 1/10000^(2i/dim) radians per position (pair 0 "
                "by 1 radian, the last pair by about 1/10000). Check the exponent and the brackets around it.",
                _wrong_speeds),
    ),
    what="(num_positions, dim), sin on even and cos on odd features, wavelengths 2π·10000^(2i/dim).",
)


def _rope_cases(rng):
    import torch

    return [
        Case("x (6, 8) at positions 0..5", (tensor(rng, 6, 8), torch.arange(6))),
        Case("x (2, 3, 5, 4) (batch and heads) at positions 0..4", (tensor(rng, 2, 3, 5, 4), torch.arange(5))),
        Case("x (4, 16) at positions [7, 3, 100, 0]", (tensor(rng, 4, 16), torch.tensor([7, 3, 100, 0]))),
        Case("x (3, 2) (a single pair) at positions [1, 2, 3]", (tensor(rng, 3, 2), torch.tensor([1, 2, 3]))),
    ]


check_apply_rope = Check(
    name="apply_rope",
    points=2,
    make_cases=_rope_cases,
    implementation="course_lib.positional.apply_rope",
    outputs=(Output("rotated", kind="torch"),),
    mistakes=(
        Mistake("you rotate the wrong way: (a, b) -> (a·cos θ − b·sin θ, a·sin θ + b·cos θ).",
                like(_rotated_the_wrong_way)),
        Mistake("cos and sin are swapped: (a, b) -> (a·cos θ − b·sin θ, a·sin θ + b·cos θ); at position 0 "
                "(θ = 0) the vector must come back unchanged.", like(_cos_and_sin_swapped)),
        Mistake("you paired feature i with feature i + D/2: this is the rotate-half convention (Llama and "
                "GPT-NeoX code, and Hugging Face's rotate_half); this exercise uses the RoFormer paper's "
                "interleaved pairs (x[2i], x[2i+1]), because each pair is then the 2-D point of the rotation "
                "formula, next to each other as in the sinusoidal encoding. Both give scores that depend only "
                "on the offset; a model's weights only fit the convention it was trained with.",
                like(_rotated_halves)),
        Mistake("the second half of each pair is computed from the first half already overwritten: x[..., 0::2] "
                "and x[..., 1::2] are views, so writing one (into x or into a clone you then slice) changes what "
                "the other line reads. Take both halves before writing (or .clone() them), or write the result "
                "into a new tensor (torch.empty_like(x), or torch.stack(...).flatten(-2)).",
                _overwritten_before_read),
        Mistake("you ignore positions and rotate the t-th vector by t: the angle is positions[t] · 10000^(−2i/D).",
                like(_positions_ignored)),
        Mistake("the angle is off: pair i rotates by position · 10000^(−2i/D), where 2i is the index of its even "
                "feature.", like(_rope_with(_pair_index_frequencies))),
        Mistake("the exponent has the 2 twice: looping over the even features j = 0, 2, 4, … the angle is "
                "position · 10000^(−j/D) (that j is already 2i), not 10000^(−2j/D).",
                like(_rope_with(_doubled_exponent_frequencies))),
        Mistake("the frequencies are inverted: the angle is position · 10000^(−2i/D), a minus in the exponent "
                "(or position / 10000^(2i/D)); yours grows with i instead of shrinking.",
                like(_rope_with(_inverted_frequencies))),
        Mistake("the exponent spaces the pairs i/(D/2 − 1), so that the last pair turns by exactly 1/10000 per "
                "position (tensor2tensor's spacing, torch.linspace(0, 1, D // 2)); RoFormer's, and this "
                "exercise's, is 2i/D.", like(_rope_with(_tensor2tensor_frequencies))),
        Mistake("your rotation uses another base (Llama 3's rope_theta = 500000, or a slip like 1000): the RoFormer "
                "paper, Llama 1 and 2, and this exercise, use 10000.", _rope_other_base),
        Mistake("every pair (x[2i], x[2i+1]) keeps its length, so you rotate the right pairs, but by the wrong "
                "angles: pair i at position p turns by θ = p · 10000^(−2i/D) radians (pair 0 by p radians). "
                "Check the exponent, its brackets, and that the positions stay floats.", _wrong_angles),
    ),
    what="Each interleaved pair rotated by position·10000^(−2i/D); batches and arbitrary positions work.",
    withholds=("course_lib.positional.rope_score",),
)


CHECKS = (check_sinusoidal_encoding, check_apply_rope)
