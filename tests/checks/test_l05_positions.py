"""Fixtures for the checks of lesson 05, course_lib/checks/l05_positions.py: wrong solutions, each with the
diagnosis a learner must see (``WRONG``), and right solutions written differently (``RIGHT``).
tests/test_manifest.py proves that every diagnosis of these checks is triggered by a WRONG fixture and that
every check has a RIGHT one. Each wrong solution is written the way a learner writes it (on the exercise's
pattern), not by calling the check's own simulator (a fixture that did could never fail)."""
from __future__ import annotations

import math

import torch

from course_lib import positional
from verdicts import fixture_tests


# sinusoidal_encoding: wrong ---------------------------------------------------------------------------------

def sinusoidal_angles(num_positions, dim):
    """The exercise's angles, right: position / 10000^(2i/dim) for each even feature 2i."""
    positions = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (P, 1)
    even = torch.arange(0, dim, 2, dtype=torch.float64)  # (dim/2,): 0, 2, 4, ...
    return positions / 10000 ** (even / dim)  # (P, dim/2)


def sinusoidal_swapped(num_positions, dim):
    angles = sinusoidal_angles(num_positions, dim)  # (P, dim/2)
    encoding = torch.zeros(num_positions, dim)  # (P, dim)
    encoding[:, 0::2] = torch.cos(angles)  # "cos and sin", in that order
    encoding[:, 1::2] = torch.sin(angles)
    return encoding


def sinusoidal_concatenated(num_positions, dim):
    angles = sinusoidal_angles(num_positions, dim)  # (P, dim/2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).float()  # (P, dim): sines, then cosines


def sinusoidal_pair_index_exponent(num_positions, dim):
    encoding = torch.zeros(num_positions, dim)  # (P, dim)
    for position in range(num_positions):
        for i in range(dim // 2):  # pair i: features 2i and 2i+1
            angle = position / 10000 ** (i / dim)  # should be 2 * i / dim
            encoding[position, 2 * i] = math.sin(angle)
            encoding[position, 2 * i + 1] = math.cos(angle)
    return encoding


# sinusoidal_encoding: right ---------------------------------------------------------------------------------

def sinusoidal_loop(num_positions, dim):
    encoding = torch.zeros(num_positions, dim, dtype=torch.float64)
    for position in range(num_positions):
        for i in range(0, dim, 2):
            encoding[position, i] = math.sin(position / 10000 ** (i / dim))
            if i + 1 < dim:
                encoding[position, i + 1] = math.cos(position / 10000 ** (i / dim))
    return encoding


# apply_rope: wrong ------------------------------------------------------------------------------------------

def rope_cos_sin(x, positions):
    """The exercise's cos θ and sin θ, right: θ = position · 10000^(−2i/D) for pair i."""
    dim = x.shape[-1]
    frequencies = 10000 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (D/2,)
    angles = torch.as_tensor(positions, dtype=torch.float64)[:, None] * frequencies  # (T, D/2)
    return torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)  # (T, D/2) each


def rope_reversed(x, positions):
    cos, sin = rope_cos_sin(x, positions)  # (T, D/2) each
    even, odd = x[..., 0::2], x[..., 1::2]  # (..., T, D/2) each
    rotated = torch.empty_like(x)  # (..., T, D)
    rotated[..., 0::2] = even * cos + odd * sin  # the signs of a rotation by -θ
    rotated[..., 1::2] = -even * sin + odd * cos
    return rotated


def rotate_half(x):
    first, second = x.chunk(2, dim=-1)  # (..., T, D/2) each
    return torch.cat([-second, first], dim=-1)  # (..., T, D)


def rope_rotate_half(x, positions):
    """The layout of GPT-NeoX and LLaMA code, copied from a model's source: halves, not interleaved pairs."""
    cos, sin = rope_cos_sin(x, positions)  # (T, D/2) each
    cos, sin = torch.cat([cos, cos], dim=-1), torch.cat([sin, sin], dim=-1)  # (T, D) each
    return x * cos + rotate_half(x) * sin  # (..., T, D)


def rope_pair_index_exponent(x, positions):
    dim = x.shape[-1]
    frequencies = 10000 ** (-torch.arange(dim // 2, dtype=torch.float64) / dim)  # (D/2,): i/D, should be 2i/D
    angles = torch.as_tensor(positions, dtype=torch.float64)[:, None] * frequencies  # (T, D/2)
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)  # (T, D/2) each
    even, odd = x[..., 0::2], x[..., 1::2]  # (..., T, D/2) each
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)  # (..., T, D)


# apply_rope: right ------------------------------------------------------------------------------------------

def rope_complex(x, positions):
    pairs = torch.view_as_complex(x.to(torch.float64).reshape(*x.shape[:-1], -1, 2).contiguous())  # (..., T, D/2)
    angles = positional.rope_angles(torch.as_tensor(positions), x.shape[-1])  # (T, D/2)
    rotated = pairs * torch.polar(torch.ones_like(angles), angles)  # (..., T, D/2)
    return torch.view_as_real(rotated).reshape(x.shape)  # (..., T, D)


WRONG = [
    ("sinusoidal_encoding", sinusoidal_swapped, "swapped"),
    ("sinusoidal_encoding", sinusoidal_concatenated, "interleaves"),
    ("sinusoidal_encoding", sinusoidal_pair_index_exponent, "the exponent is off"),
    ("apply_rope", rope_reversed, "wrong way"),
    ("apply_rope", rope_rotate_half, "rotate half"),
    ("apply_rope", rope_pair_index_exponent, "the angle is off"),
]

RIGHT = [
    ("sinusoidal_encoding", sinusoidal_loop),
    ("apply_rope", rope_complex),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)
