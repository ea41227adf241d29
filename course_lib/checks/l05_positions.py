"""The checks of lesson 05, positions: the sinusoidal encoding and RoPE.

Lesson: notebooks/05_positions.ipynb, its exercise solutions/05_positions.ipynb.
Tests: tests/checks/test_l05_positions.py.
"""
from __future__ import annotations

from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import tensor

# Both encodings give feature pair i the exponent 2i/D: the index of its even feature (0, 2, 4, …) over D.
# The exponent's mistake, i/D with i the pair's index (0, 1, 2, …), is the same in both.


def _even_index_over_dim(dim):
    import torch

    return torch.arange(0, dim, 2, dtype=torch.float64) / dim  # (D/2,): 2i/D


def _pair_index_over_dim(dim):
    import torch

    return torch.arange(dim // 2, dtype=torch.float64) / dim  # (D/2,): i/D, half the right exponent


# sinusoidal_encoding ---------------------------------------------------------------------------------------

def _sinusoidal_cases(rng):
    sizes = ((10, 8), (50, 16), (1, 4), (int(rng.integers(5, 30)), 32))
    return [Case(f"num_positions={p}, dim={d}", (p, d)) for p, d in sizes]


def _sinusoidal_angles(num_positions, dim, exponents):
    import torch

    positions = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (P, 1)
    return positions / 10000 ** exponents  # (P, dim/2)


def _interleaved(even_features, odd_features):
    """Two (P, dim/2) halves woven into (P, dim): feature 2i from the first, feature 2i+1 from the second."""
    import torch

    encoding = torch.zeros(even_features.shape[0], 2 * even_features.shape[1], dtype=torch.float64)  # (P, dim)
    encoding[:, 0::2], encoding[:, 1::2] = even_features, odd_features
    return encoding.float()


def _cos_on_even_features(num_positions, dim):
    """sin and cos swapped: cos on the even features, sin on the odd ones."""
    import torch

    angles = _sinusoidal_angles(num_positions, dim, _even_index_over_dim(dim))  # (P, dim/2)
    return _interleaved(torch.cos(angles), torch.sin(angles))  # (P, dim)


def _sines_then_cosines(num_positions, dim):
    """All sines first, then all cosines: concatenated instead of interleaved."""
    import torch

    angles = _sinusoidal_angles(num_positions, dim, _even_index_over_dim(dim))  # (P, dim/2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).float()  # (P, dim)


def _sinusoidal_exponent_of_pair_index(num_positions, dim):
    """Pair i's angle divided by 10000^(i/dim) instead of 10000^(2i/dim)."""
    import torch

    angles = _sinusoidal_angles(num_positions, dim, _pair_index_over_dim(dim))  # (P, dim/2)
    return _interleaved(torch.sin(angles), torch.cos(angles))  # (P, dim)


check_sinusoidal_encoding = Check(
    name="sinusoidal_encoding",
    points=1,
    make_cases=_sinusoidal_cases,
    implementation="course_lib.positional.sinusoidal_encoding",
    outputs=(Output("encoding", kind="torch"),),
    mistakes=(
        Mistake("sin and cos are swapped: even features (0, 2, 4, …) get sin, odd features get cos.",
                like(_cos_on_even_features)),
        Mistake("you put all sines first and all cosines after; the paper interleaves them: feature 2i is sin, "
                "feature 2i+1 is cos of the same angle.", like(_sines_then_cosines)),
        Mistake("the exponent is off: pair i uses 10000^(2i/dim), where 2i is the index of its even feature "
                "(0, 2, 4, …), not 10000^(i/dim).", like(_sinusoidal_exponent_of_pair_index)),
    ),
    what="(num_positions, dim), sin on even and cos on odd features, wavelengths 2π·10000^(2i/dim).",
)


# apply_rope ------------------------------------------------------------------------------------------------

def _rope_cases(rng):
    import torch

    return [
        Case("x (6, 8) at positions 0..5", (tensor(rng, 6, 8), torch.arange(6))),
        Case("x (2, 3, 5, 4) (batch and heads) at positions 0..4", (tensor(rng, 2, 3, 5, 4), torch.arange(5))),
        Case("x (4, 16) at positions [7, 3, 100, 0]", (tensor(rng, 4, 16), torch.tensor([7, 3, 100, 0]))),
        Case("x (3, 2) (a single pair) at positions [1, 2, 3]", (tensor(rng, 3, 2), torch.tensor([1, 2, 3]))),
    ]


def _cos_and_sin(x, positions, exponents):
    """cos θ and sin θ of each position's angles θ = position · 10000^(−exponent), in x's dtype."""
    import torch

    angles = torch.as_tensor(positions, dtype=torch.float64)[:, None] * 10000 ** (-exponents)  # (T, D/2)
    return torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)  # (T, D/2) each


def _rotate_interleaved_pairs(x, cos, sin):
    """Each pair (x[2i], x[2i+1]) rotated: (a, b) -> (a·cos − b·sin, a·sin + b·cos)."""
    import torch

    even, odd = x[..., 0::2], x[..., 1::2]  # (..., T, D/2) each
    rotated = torch.empty_like(x)  # (..., T, D)
    rotated[..., 0::2] = even * cos - odd * sin
    rotated[..., 1::2] = even * sin + odd * cos
    return rotated


def _rotated_the_wrong_way(x, positions):
    """Each pair rotated by −θ instead of θ: the sines' signs flipped."""
    cos, sin = _cos_and_sin(x, positions, _even_index_over_dim(x.shape[-1]))  # (T, D/2) each
    return _rotate_interleaved_pairs(x, cos, -sin)  # (..., T, D)


def _rotated_halves(x, positions):
    """Feature i paired with feature i + D/2 (the 'rotate half' layout) instead of with its neighbour."""
    import torch

    dim = x.shape[-1]
    cos, sin = _cos_and_sin(x, positions, _even_index_over_dim(dim))  # (T, D/2) each
    first, second = x[..., : dim // 2], x[..., dim // 2:]  # (..., T, D/2) each
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)  # (..., T, D)


def _rope_exponent_of_pair_index(x, positions):
    """Pair i rotated by position · 10000^(−i/D) instead of position · 10000^(−2i/D)."""
    cos, sin = _cos_and_sin(x, positions, _pair_index_over_dim(x.shape[-1]))  # (T, D/2) each
    return _rotate_interleaved_pairs(x, cos, sin)  # (..., T, D)


check_apply_rope = Check(
    name="apply_rope",
    points=2,
    make_cases=_rope_cases,
    implementation="course_lib.positional.apply_rope",
    outputs=(Output("rotated", kind="torch"),),
    mistakes=(
        Mistake("you rotate the wrong way: (a, b) -> (a·cos θ − b·sin θ, a·sin θ + b·cos θ).",
                like(_rotated_the_wrong_way)),
        Mistake("you paired feature i with feature i + D/2 (the 'rotate half' layout of GPT-NeoX/LLaMA code); the "
                "RoFormer paper, and this exercise, pair interleaved features (x[2i], x[2i+1]).",
                like(_rotated_halves)),
        Mistake("the angle is off: pair i rotates by position · 10000^(−2i/D), where 2i is the index of its even "
                "feature.", like(_rope_exponent_of_pair_index)),
    ),
    what="Each interleaved pair rotated by position·10000^(−2i/D); batches and arbitrary positions work.",
    withholds=("course_lib.positional.rope_score",),
)


CHECKS = (check_sinusoidal_encoding, check_apply_rope)
