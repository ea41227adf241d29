"""Fixtures for the checks of lesson 05, course_lib/checks/l05_positions.py: wrong solutions, each with the
diagnosis a learner must see (``WRONG``), and right solutions written differently (``RIGHT``).
tests/test_manifest.py proves that every diagnosis of these checks is triggered by a WRONG fixture and that
every check has a RIGHT one."""
from __future__ import annotations

import math

import torch

from course_lib import positional
from verdicts import fixture_tests


def sinusoidal_swapped(num_positions, dim):
    return positional.sinusoidal_encoding(num_positions, dim).view(num_positions, -1, 2).flip(-1).reshape(num_positions, dim)


def sinusoidal_concatenated(num_positions, dim):
    encoding = positional.sinusoidal_encoding(num_positions, dim)
    return torch.cat([encoding[:, 0::2], encoding[:, 1::2]], dim=-1)


def rope_reversed(x, positions):
    return positional.apply_rope(x, -torch.as_tensor(positions))


def rope_rotate_half(x, positions):
    dim = x.shape[-1]
    angles = positional.rope_angles(torch.as_tensor(positions), dim).to(x.dtype)
    a, b = x[..., : dim // 2], x[..., dim // 2:]
    return torch.cat([a * angles.cos() - b * angles.sin(), a * angles.sin() + b * angles.cos()], dim=-1)


def sinusoidal_loop(num_positions, dim):
    encoding = torch.zeros(num_positions, dim, dtype=torch.float64)
    for position in range(num_positions):
        for i in range(0, dim, 2):
            encoding[position, i] = math.sin(position / 10000 ** (i / dim))
            if i + 1 < dim:
                encoding[position, i + 1] = math.cos(position / 10000 ** (i / dim))
    return encoding


def rope_complex(x, positions):
    pairs = torch.view_as_complex(x.to(torch.float64).reshape(*x.shape[:-1], -1, 2).contiguous())  # (..., T, D/2)
    angles = positional.rope_angles(torch.as_tensor(positions), x.shape[-1])
    rotated = pairs * torch.polar(torch.ones_like(angles), angles)
    return torch.view_as_real(rotated).reshape(x.shape)


WRONG = [
    ("sinusoidal_encoding", sinusoidal_swapped, "swapped"),
    ("sinusoidal_encoding", sinusoidal_concatenated, "interleaves"),
    ("apply_rope", rope_reversed, "wrong way"),
    ("apply_rope", rope_rotate_half, "rotate half"),
]

RIGHT = [
    ("sinusoidal_encoding", sinusoidal_loop),
    ("apply_rope", rope_complex),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)
