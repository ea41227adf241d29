"""The checks of lesson 05, positions: the sinusoidal encoding and RoPE.

Lesson: notebooks/05_positions.ipynb, its exercise solutions/05_positions.ipynb. Tests: tests/checks/test_l05_positions.py.
"""
from __future__ import annotations

from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import tensor


def _sinusoidal_variant(swap=False, concatenate=False, exponent_i=False):
    def encode(num_positions, dim):
        import torch

        positions = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (P, 1)
        index = torch.arange(0, dim, 2, dtype=torch.float64)  # (dim/2,)
        angles = positions / 10000 ** ((index / 2 if exponent_i else index) / dim)  # (P, dim/2)
        first, second = (torch.cos(angles), torch.sin(angles)) if swap else (torch.sin(angles), torch.cos(angles))
        if concatenate:
            return torch.cat([first, second], dim=-1).float()
        out = torch.zeros(num_positions, dim, dtype=torch.float64)
        out[:, 0::2], out[:, 1::2] = first, second
        return out.float()

    return encode


check_sinusoidal_encoding = Check(
    name="sinusoidal_encoding",
    points=1,
    make_cases=lambda rng: [Case(f"num_positions={p}, dim={d}", (p, d)) for p, d in ((10, 8), (50, 16), (1, 4), (int(rng.integers(5, 30)), 32))],
    implementation="course_lib.positional.sinusoidal_encoding",
    outputs=(Output("encoding", kind="torch"),),
    mistakes=(
        Mistake("sin and cos are swapped: even features (0, 2, 4, …) get sin, odd features get cos.",
                like(_sinusoidal_variant(swap=True))),
        Mistake("you put all sines first and all cosines after; the paper interleaves them: feature 2i is sin, "
                "feature 2i+1 is cos of the same angle.", like(_sinusoidal_variant(concatenate=True))),
        Mistake("the exponent is off: pair i uses 10000^(2i/dim), where 2i is the index of its even feature "
                "(0, 2, 4, …), not 10000^(i/dim).", like(_sinusoidal_variant(exponent_i=True))),
    ),
    what="(num_positions, dim), sin on even and cos on odd features, wavelengths 2π·10000^(2i/dim).",
)


def _rope_variant(reverse=False, halves=False, exponent_i=False):
    def rotate(x, positions):
        import torch

        dim = x.shape[-1]
        index = torch.arange(0, dim, 2, dtype=torch.float64)
        frequencies = 10000 ** (-(index / 2 if exponent_i else index) / dim)  # (D/2,)
        angles = torch.as_tensor(positions, dtype=torch.float64)[:, None] * frequencies  # (T, D/2)
        cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
        sin = -sin if reverse else sin
        if halves:
            a, b = x[..., : dim // 2], x[..., dim // 2:]
            return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)
        out = torch.empty_like(x)
        out[..., 0::2] = x[..., 0::2] * cos - x[..., 1::2] * sin
        out[..., 1::2] = x[..., 0::2] * sin + x[..., 1::2] * cos
        return out

    return rotate


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
                like(_rope_variant(reverse=True))),
        Mistake("you paired feature i with feature i + D/2 (the 'rotate half' layout of GPT-NeoX/LLaMA code); the "
                "RoFormer paper, and this exercise, pair interleaved features (x[2i], x[2i+1]).",
                like(_rope_variant(halves=True))),
        Mistake("the angle is off: pair i rotates by position · 10000^(−2i/D), where 2i is the index of its even "
                "feature.", like(_rope_variant(exponent_i=True))),
    ),
    what="Each interleaved pair rotated by position·10000^(−2i/D); batches and arbitrary positions work.",
    withholds=("course_lib.positional.rope_score",),
)


CHECKS = (check_sinusoidal_encoding, check_apply_rope)
