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


def sinusoidal_transposed(num_positions, dim):
    angles = sinusoidal_angles(num_positions, dim)  # (P, dim/2)
    encoding = torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(1)  # (P, dim)
    return encoding.T.float()  # (dim, P): "one column per position"


def sinusoidal_positions_from_one(num_positions, dim):
    positions = torch.arange(1, num_positions + 1, dtype=torch.float64)[:, None]  # (P, 1): the first token is 1
    even = torch.arange(0, dim, 2, dtype=torch.float64)  # (dim/2,)
    angles = positions / 10000 ** (even / dim)  # (P, dim/2)
    return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(1).float()  # (P, dim)


def sinusoidal_two_twice(num_positions, dim):
    encoding = torch.zeros(num_positions, dim)  # (P, dim)
    for position in range(num_positions):
        for j in range(0, dim, 2):  # j is already 2i
            angle = position / 10000 ** (2 * j / dim)
            encoding[position, j] = math.sin(angle)
            encoding[position, j + 1] = math.cos(angle)
    return encoding


def sinusoidal_own_feature_index(num_positions, dim):
    encoding = torch.zeros(num_positions, dim)  # (P, dim)
    for position in range(num_positions):
        for j in range(dim):
            angle = position / 10000 ** (j / dim)  # the odd feature should use j - 1
            encoding[position, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return encoding


def sinusoidal_exp_log_sign_lost(num_positions, dim):
    """The Annotated Transformer's formula with the minus of the exponent lost."""
    position = torch.arange(num_positions).unsqueeze(1)  # (P, 1)
    div_term = torch.exp(torch.arange(0, dim, 2) * (math.log(10000.0) / dim))  # (dim/2,): should be -math.log
    encoding = torch.zeros(num_positions, dim)  # (P, dim)
    encoding[:, 0::2] = torch.sin(position * div_term)
    encoding[:, 1::2] = torch.cos(position * div_term)
    return encoding


def sinusoidal_linspace_exponents(num_positions, dim):
    exponents = torch.linspace(0, 1, dim // 2, dtype=torch.float64)  # (dim/2,): 0 .. 1, the last pair 1/10000
    angles = torch.arange(num_positions, dtype=torch.float64)[:, None] / 10000 ** exponents  # (P, dim/2)
    return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(1).float()  # (P, dim)


def get_timing_signal_1d(length, channels, min_timescale=1.0, max_timescale=1.0e4):
    """tensor2tensor's common_attention.get_timing_signal_1d, in torch."""
    position = torch.arange(length, dtype=torch.float32)  # (P,)
    num_timescales = channels // 2
    log_timescale_increment = math.log(max_timescale / min_timescale) / max(num_timescales - 1, 1)
    inv_timescales = min_timescale * torch.exp(torch.arange(num_timescales, dtype=torch.float32)
                                               * -log_timescale_increment)  # (dim/2,)
    scaled_time = position[:, None] * inv_timescales[None, :]  # (P, dim/2)
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)  # (P, dim)


def sinusoidal_position_in_exponent(num_positions, dim):
    encoding = torch.zeros(num_positions, dim)  # (P, dim)
    for pos in range(num_positions):
        for i in range(0, dim, 2):
            angle = pos / 10000 ** (2 * pos / dim)  # meant i / dim
            encoding[pos, i], encoding[pos, i + 1] = math.sin(angle), math.cos(angle)
    return encoding


def sinusoidal_base_1000(num_positions, dim):
    positions = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (P, 1)
    angles = positions / 1000 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (P, dim/2)
    encoding = torch.zeros(num_positions, dim)  # (P, dim)
    encoding[:, 0::2], encoding[:, 1::2] = torch.sin(angles), torch.cos(angles)
    return encoding


def sinusoidal_precedence(num_positions, dim):
    encoding = torch.zeros(num_positions, dim)  # (P, dim)
    for pos in range(num_positions):
        for i in range(0, dim, 2):
            angle = pos / 10000 ** 2 * i / dim  # the brackets around the exponent are missing
            encoding[pos, i], encoding[pos, i + 1] = math.sin(angle), math.cos(angle)
    return encoding


def timestep_embedding(num_positions, dim, max_period=10000, downscale_freq_shift=1):
    """diffusers' get_timestep_embedding with flip_sin_to_cos=True, for positions 0..P-1."""
    half_dim = dim // 2
    exponent = -math.log(max_period) * torch.arange(half_dim, dtype=torch.float32)
    exponent = exponent / (half_dim - downscale_freq_shift)  # (dim/2,)
    emb = torch.arange(num_positions)[:, None].float() * torch.exp(exponent)[None, :]  # (P, dim/2)
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)  # (P, dim)
    return torch.cat([emb[:, half_dim:], emb[:, :half_dim]], dim=-1)  # flip_sin_to_cos: cosines first


def sinusoidal_sin_twice(num_positions, dim):
    angles = sinusoidal_angles(num_positions, dim)  # (P, dim/2)
    encoding = torch.zeros(num_positions, dim)  # (P, dim)
    encoding[:, 0::2] = torch.sin(angles)
    encoding[:, 1::2] = torch.sin(angles)  # copied the line above, forgot to change it to cos
    return encoding


def sinusoidal_annotated_buffer(num_positions, dim):
    """The Annotated Transformer's table, returned as its module keeps it: with a batch axis in front."""
    position = torch.arange(0, num_positions).unsqueeze(1)  # (P, 1)
    div_term = torch.exp(torch.arange(0, dim, 2) * -(math.log(10000.0) / dim))  # (dim/2,)
    pe = torch.zeros(num_positions, dim)  # (P, dim)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe.unsqueeze(0)  # (1, P, dim)


# sinusoidal_encoding: right ---------------------------------------------------------------------------------

def sinusoidal_loop(num_positions, dim):
    encoding = torch.zeros(num_positions, dim, dtype=torch.float64)
    for position in range(num_positions):
        for i in range(0, dim, 2):
            encoding[position, i] = math.sin(position / 10000 ** (i / dim))
            if i + 1 < dim:
                encoding[position, i + 1] = math.cos(position / 10000 ** (i / dim))
    return encoding


def sinusoidal_annotated_transformer(num_positions, dim):
    """The Annotated Transformer's PositionalEncoding: the frequencies through exp and log."""
    position = torch.arange(0, num_positions).unsqueeze(1)  # (P, 1)
    div_term = torch.exp(torch.arange(0, dim, 2) * -(math.log(10000.0) / dim))  # (dim/2,)
    encoding = torch.zeros(num_positions, dim)  # (P, dim)
    encoding[:, 0::2] = torch.sin(position * div_term)
    encoding[:, 1::2] = torch.cos(position * div_term)
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


def rope_overwrites_before_reading(x, positions):
    """The classic aliasing bug: the halves are views of the output, read after the first write."""
    cos, sin = rope_cos_sin(x, positions)  # (T, D/2) each
    out = x.clone()  # (..., T, D)
    x0, x1 = out[..., 0::2], out[..., 1::2]  # (..., T, D/2) each: views into out
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos  # x0 already holds the rotated values
    return out


def rope_overwrites_odd_first(x, positions):
    cos, sin = rope_cos_sin(x, positions)  # (T, D/2) each
    out = x.clone()  # (..., T, D)
    x0, x1 = out[..., 0::2], out[..., 1::2]  # (..., T, D/2) each: views into out
    out[..., 1::2] = x0 * sin + x1 * cos
    out[..., 0::2] = x0 * cos - x1 * sin  # x1 already holds the rotated values
    return out


def rope_arange_positions(x, positions):
    length, dim = x.shape[-2], x.shape[-1]
    frequencies = 1.0 / 10000 ** (torch.arange(0, dim, 2).float() / dim)  # (D/2,)
    angles = torch.arange(length).float()[:, None] * frequencies  # (T, D/2): positions never used
    cos, sin = torch.cos(angles), torch.sin(angles)  # (T, D/2) each
    even, odd = x[..., 0::2], x[..., 1::2]  # (..., T, D/2) each
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)  # (..., T, D)


def rope_with_frequencies(x, positions, frequencies):
    angles = torch.as_tensor(positions, dtype=torch.float64)[:, None] * frequencies  # (T, D/2)
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)  # (T, D/2) each
    even, odd = x[..., 0::2], x[..., 1::2]  # (..., T, D/2) each
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)  # (..., T, D)


def rope_cos_sin_swapped(x, positions):
    cos, sin = rope_cos_sin(x, positions)  # (T, D/2) each
    even, odd = x[..., 0::2], x[..., 1::2]  # (..., T, D/2) each
    return torch.stack([even * sin - odd * cos, even * cos + odd * sin], dim=-1).flatten(-2)  # (..., T, D)


def rope_two_twice(x, positions):
    dim = x.shape[-1]
    j = torch.arange(0, dim, 2, dtype=torch.float64)  # (D/2,): 0, 2, 4, ... (already 2i)
    return rope_with_frequencies(x, positions, 10000 ** (-2 * j / dim))


def rope_sign_lost(x, positions):
    dim = x.shape[-1]
    return rope_with_frequencies(x, positions, 10000 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))


def rope_llama3_theta(x, positions):
    """A model's code copied with its rope_theta = 500000 (Llama 3)."""
    dim = x.shape[-1]
    inv_freq = 1.0 / (500000.0 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))  # (D/2,)
    return rope_with_frequencies(x, positions, inv_freq)


def rope_linspace_exponents(x, positions):
    dim = x.shape[-1]
    return rope_with_frequencies(x, positions, 10000 ** -torch.linspace(0, 1, dim // 2, dtype=torch.float64))


def rope_integer_exponents(x, positions):
    dim = x.shape[-1]
    exponents = torch.arange(0, dim, 2) // dim  # (D/2,): floor division, all 0
    return rope_with_frequencies(x, positions, 1.0 / 10000 ** exponents.double())


# apply_rope: right ------------------------------------------------------------------------------------------

def rope_complex(x, positions):
    pairs = torch.view_as_complex(x.to(torch.float64).reshape(*x.shape[:-1], -1, 2).contiguous())  # (..., T, D/2)
    angles = positional.rope_angles(torch.as_tensor(positions), x.shape[-1])  # (T, D/2)
    rotated = pairs * torch.polar(torch.ones_like(angles), angles)  # (..., T, D/2)
    return torch.view_as_real(rotated).reshape(x.shape)  # (..., T, D)


def rotate_every_two(x):
    """GPT-J's rotate_every_two: (a, b) -> (-b, a) for each interleaved pair."""
    x1, x2 = x[..., ::2], x[..., 1::2]  # (..., T, D/2) each
    return torch.stack((-x2, x1), dim=-1).flatten(-2)  # (..., T, D)


def rope_gpt_j(x, positions):
    """GPT-J's interleaved RoPE: cos and sin repeated per pair, x·cos + rotate_every_two(x)·sin."""
    cos, sin = rope_cos_sin(x, positions)  # (T, D/2) each
    cos, sin = cos.repeat_interleave(2, dim=-1), sin.repeat_interleave(2, dim=-1)  # (T, D) each
    return x * cos + rotate_every_two(x) * sin  # (..., T, D)


def rope_rotation_matrices(x, positions):
    cos, sin = rope_cos_sin(x, positions)  # (T, D/2) each
    rotations = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (T, D/2, 2, 2)
    pairs = x.unflatten(-1, (-1, 2))  # (..., T, D/2, 2)
    return torch.einsum("tpij,...tpj->...tpi", rotations, pairs).flatten(-2)  # (..., T, D)


WRONG = [
    ("sinusoidal_encoding", sinusoidal_swapped, "swapped"),
    ("sinusoidal_encoding", sinusoidal_concatenated, "this is the tensor2tensor convention"),
    ("sinusoidal_encoding", get_timing_signal_1d, "this is the tensor2tensor convention"),
    ("sinusoidal_encoding", sinusoidal_pair_index_exponent, "the exponent is off"),
    ("sinusoidal_encoding", timestep_embedding, "this is the tensor2tensor convention"),
    ("sinusoidal_encoding", sinusoidal_sin_twice, "both features of a pair use the same function"),
    ("sinusoidal_encoding", sinusoidal_annotated_buffer, "an extra axis of size 1"),
    ("sinusoidal_encoding", sinusoidal_transposed, "transposed"),
    ("sinusoidal_encoding", sinusoidal_positions_from_one, "positions start at 1"),
    ("sinusoidal_encoding", sinusoidal_two_twice, "the exponent has the 2 twice"),
    ("sinusoidal_encoding", sinusoidal_own_feature_index, "each feature uses its own index"),
    ("sinusoidal_encoding", sinusoidal_exp_log_sign_lost, "the frequencies are inverted"),
    ("sinusoidal_encoding", sinusoidal_linspace_exponents, "spaces the pairs i/(dim/2 − 1)"),
    ("sinusoidal_encoding", sinusoidal_position_in_exponent, "uses the position where the pair index belongs"),
    ("sinusoidal_encoding", sinusoidal_base_1000, "another base"),
    ("sinusoidal_encoding", sinusoidal_precedence, "the pairs turn at the wrong speeds"),
    ("apply_rope", rope_reversed, "wrong way"),
    ("apply_rope", rope_rotate_half, "this is the rotate-half convention"),
    ("apply_rope", rope_pair_index_exponent, "the angle is off"),
    ("apply_rope", rope_overwrites_before_reading, "already overwritten"),
    ("apply_rope", rope_overwrites_odd_first, "already overwritten"),
    ("apply_rope", rope_arange_positions, "you ignore positions"),
    ("apply_rope", rope_cos_sin_swapped, "cos and sin are swapped"),
    ("apply_rope", rope_two_twice, "the exponent has the 2 twice"),
    ("apply_rope", rope_sign_lost, "the frequencies are inverted"),
    ("apply_rope", rope_llama3_theta, "Llama 3's rope_theta = 500000"),
    ("apply_rope", rope_linspace_exponents, "spaces the pairs i/(D/2 − 1)"),
    ("apply_rope", rope_integer_exponents, "by the wrong angles"),
]

RIGHT = [
    ("sinusoidal_encoding", sinusoidal_loop),
    ("sinusoidal_encoding", sinusoidal_annotated_transformer),
    ("apply_rope", rope_complex),
    ("apply_rope", rope_gpt_j),
    ("apply_rope", rope_rotation_matrices),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)
