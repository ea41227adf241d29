"""Lesson 05: sinusoidal encodings and RoPE, against the formulas of their papers."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from course_lib.attention import scaled_dot_product_attention
from course_lib import positional
from course_lib.positional import apply_rope, rope_score, sinusoidal_encoding


def test_sinusoidal_encoding_matches_the_formula_entry_by_entry():
    encoding = sinusoidal_encoding(7, 6)
    for position in range(7):
        for feature in range(6):
            angle = position / 10000 ** (2 * (feature // 2) / 6)
            expected = math.sin(angle) if feature % 2 == 0 else math.cos(angle)
            assert abs(encoding[position, feature].item() - expected) < 1e-6
    assert sinusoidal_encoding(3, 5).shape == (3, 5)  # odd dims work too


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 200), st.integers(0, 200), st.integers(-50, 50), st.integers(1, 8), st.integers(0, 2**31 - 1))
def test_rope_score_depends_only_on_the_offset(m, n, shift, half_dim, seed):
    generator = torch.Generator().manual_seed(seed)
    query, key = torch.randn(2 * half_dim, generator=generator, dtype=torch.float64), torch.randn(2 * half_dim, generator=generator, dtype=torch.float64)
    shifted = max(0, m + shift), max(0, n + shift)
    shifted = (shifted[0], shifted[0] - (m - n))
    assert torch.isclose(rope_score(query, key, m, n), rope_score(query, key, *shifted), atol=1e-9)


def test_rope_is_a_rotation_of_each_interleaved_pair():
    x = torch.randn(5, 8, dtype=torch.float64)
    rotated = apply_rope(x, torch.arange(5))
    assert torch.allclose(rotated.view(5, 4, 2).norm(dim=-1), x.view(5, 4, 2).norm(dim=-1))  # lengths kept
    assert torch.equal(rotated[0], x[0])  # position 0: no rotation
    angle = 3 * 10000 ** (-2 / 8)  # position 3, pair 1
    a, b = x[3, 2], x[3, 3]
    assert torch.allclose(rotated[3, 2:4], torch.stack([a * math.cos(angle) - b * math.sin(angle), a * math.sin(angle) + b * math.cos(angle)]))


def test_attention_without_positions_is_permutation_equivariant():
    torch.manual_seed(0)
    x = torch.randn(6, 4)
    order = torch.randperm(6)
    output, _ = scaled_dot_product_attention(x, x, x)
    shuffled_output, _ = scaled_dot_product_attention(x[order], x[order], x[order])
    assert torch.allclose(shuffled_output, output[order], atol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda: apply_rope(torch.randn(3, 5), torch.arange(3)), "even feature size"),
    (lambda: apply_rope(torch.randn(3, 4), torch.arange(4)), "positions has 4 entries but x has T=3"),
    (lambda: sinusoidal_encoding(4, 0), "dim >= 1"),
])
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@settings(max_examples=50, deadline=None)
@given(pairs=st.integers(1, 8), length=st.integers(1, 6), seed=st.integers(0, 1000))
def test_rotate_half_rope_is_the_same_rotations_on_features_paired_i_and_i_plus_half(pairs, length, seed):
    """Interleaved feature 2i is rotate-half feature i and 2i + 1 is i + D/2: reorder, rotate, and it agrees."""
    x = torch.randn(2, length, 2 * pairs, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    order = torch.cat([torch.arange(0, 2 * pairs, 2), torch.arange(1, 2 * pairs, 2)])  # (D,): evens, then odds
    positions = torch.arange(3, 3 + length)
    torch.testing.assert_close(positional.apply_rope_rotate_half(x[..., order], positions),
                               positional.apply_rope(x, positions)[..., order], rtol=1e-12, atol=1e-12)


def test_rotate_half_rope_names_an_odd_feature_size():
    with pytest.raises(ValueError, match="even feature size, got D=3"):
        positional.apply_rope_rotate_half(torch.zeros(2, 3), torch.arange(2))
