"""Lesson 07: the sparse patterns, and banded sliding-window attention equal to dense masked attention.

Tolerance 1e-5 absolute and relative in float32 (as the issue asks): the banded version computes the same
dot products and softmax over the same keys, only grouped in blocks; inputs of order 1 keep the round-off
near 1e-7.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st

from course_lib import cost, measure, sparse
from course_lib.attention import scaled_dot_product_attention

TOLERANCE = dict(atol=1e-5, rtol=1e-5)


@st.composite
def windowed_inputs(draw):
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    queries = draw(st.integers(1, 70))
    keys = queries if draw(st.booleans()) else draw(st.integers(1, 70))
    dim, value_dim = draw(st.integers(1, 16)), draw(st.integers(1, 8))
    window = draw(st.one_of(st.integers(0, 20), st.integers(60, 200)))  # small, or at least T
    query = torch.randn(*batch, queries, dim, generator=generator)
    key = torch.randn(*batch, keys, dim, generator=generator)
    value = torch.randn(*batch, keys, value_dim, generator=generator)
    return query, key, value, window, draw(st.booleans())


@settings(max_examples=300, deadline=None)
@given(windowed_inputs())
def test_sliding_window_attention_equals_dense_attention_with_the_window_mask(inputs):
    query, key, value, window, is_causal = inputs
    mask = sparse.sliding_window_mask(query.shape[-2], window, num_keys=key.shape[-2], is_causal=is_causal)
    expected, _ = scaled_dot_product_attention(query, key, value, attn_mask=mask)
    output = sparse.sliding_window_attention(query, key, value, window, is_causal=is_causal)
    assert output.shape == expected.shape
    assert torch.allclose(output, expected, **TOLERANCE), (output - expected).abs().max()


def test_window_at_least_t_is_dense_attention_and_window_zero_returns_the_values():
    torch.manual_seed(0)
    x = torch.randn(2, 37, 8)
    dense, _ = scaled_dot_product_attention(x, x, x)
    assert torch.allclose(sparse.sliding_window_attention(x, x, x, 37), dense, **TOLERANCE)
    assert torch.allclose(sparse.sliding_window_attention(x, x, x, 10**6), dense, **TOLERANCE)
    values = torch.randn(2, 37, 3)
    assert torch.allclose(sparse.sliding_window_attention(x, x, values, 0), values, **TOLERANCE)


def test_sliding_window_attention_memory_grows_linearly_not_quadratically():
    x = torch.randn(1, 4096, 16)
    short = measure.peak_memory(sparse.sliding_window_attention, x[:, :1024], x[:, :1024], x[:, :1024], 8)
    long = measure.peak_memory(sparse.sliding_window_attention, x, x, x, 8)
    assert long < cost.score_matrix_bytes(4096, 4096, bytes_per_value=1) / 4  # far below even a bool (T, S) mask
    assert 3 < long / short < 5  # 4x the tokens, about 4x the memory (a (T, S) tensor would grow 16x)


def test_sliding_window_attention_keeps_gradients():
    query = torch.randn(1, 20, 4, requires_grad=True)
    sparse.sliding_window_attention(query, query, query, 3, is_causal=True).sum().backward()
    assert query.grad is not None and bool(query.grad.isfinite().all())


def test_sliding_window_mask_counts_and_causality():
    mask = sparse.sliding_window_mask(10, 2)
    assert mask.dtype == torch.bool and mask.shape == (10, 10)
    assert mask.sum(-1).tolist() == [3, 4, 5, 5, 5, 5, 5, 5, 4, 3]  # 2·window + 1 away from the edges
    assert torch.equal(sparse.sliding_window_mask(10, 2, is_causal=True), mask & torch.ones(10, 10, dtype=torch.bool).tril())
    assert sparse.sliding_window_mask(3, 0, num_keys=5).sum() == 3


@pytest.mark.parametrize("n", [16, 64, 256, 1024])
def test_strided_pattern_costs_about_n_sqrt_n_and_reaches_everything_in_two_layers(n):
    stride = int(n ** 0.5)
    mask = sparse.strided_mask(n, stride)
    assert not mask.triu(1).any()  # causal
    assert mask.sum() <= 2 * n * stride  # O(n·√n) pairs, not n²
    if n <= 256:
        assert torch.equal(sparse.reachable(mask, 2), torch.ones(n, n, dtype=torch.bool).tril())


def test_sliding_window_reach_grows_by_one_window_per_layer():
    mask = sparse.sliding_window_mask(64, 3)
    for layers in (1, 2, 3):
        assert torch.equal(sparse.reachable(mask, layers), sparse.sliding_window_mask(64, 3 * layers))


@pytest.mark.parametrize("dilation", [2, 3])
def test_stacked_dilated_windows_never_reach_offsets_that_are_not_multiples_of_the_dilation(dilation):
    """Does lesson 07's claim hold: as many keys per layer as a plain window, spread d times as far, with holes?"""
    mask = sparse.dilated_window_mask(64, 3, dilation)
    offsets = torch.arange(64)[:, None] - torch.arange(64)[None, :]  # (T, T): i - j
    for layers in (1, 2, 3, 10):
        reach = sparse.reachable(mask, layers)
        assert not reach[offsets % dilation != 0].any()
        assert torch.equal(reach, sparse.reachable(sparse.sliding_window_mask(64, 3 * layers * dilation), 1)
                           & (offsets % dilation == 0))


def test_fixed_global_dilated_random_and_bigbird_patterns():
    fixed = sparse.fixed_mask(8, 4)
    assert fixed[7].tolist() == [False, False, False, True, True, True, True, True]  # own block + summary 3
    assert not fixed.triu(1).any()
    glob = sparse.global_mask(6, [0])
    assert glob[0].all() and glob[:, 0].all() and glob[1:, 1:].sum() == 0
    dilated = sparse.dilated_window_mask(9, 2, 2)
    assert dilated[4].nonzero().flatten().tolist() == [0, 2, 4, 6, 8]
    random = sparse.random_block_mask(12, 3, 2, seed=1)
    assert torch.equal(random, sparse.random_block_mask(12, 3, 2, seed=1))  # seeded
    assert (random.sum(-1) == 6).all()  # 2 blocks of 3 keys per query
    bigbird = sparse.bigbird_mask(16, 2, num_random=1, num_global=1)
    assert bigbird[:2].all() and bigbird[:, :2].all() and bigbird.diagonal().all()
    assert sparse.density(torch.ones(4, 4, dtype=torch.bool)) == 1.0 and 0 < sparse.density(bigbird) < 1


@pytest.mark.parametrize("call, message", [
    (lambda: sparse.sliding_window_mask(4, -1), "window must be a whole number >= 0, got -1"),
    (lambda: sparse.strided_mask(4, 0), "stride must be a positive whole number, got 0"),
    (lambda: sparse.global_mask(4, [5]), "global tokens must be positions in 0..3"),
    (lambda: sparse.reachable(torch.ones(3, 4, dtype=torch.bool), 2), "square"),
    (lambda: sparse.sliding_window_attention(torch.randn(5, 4), torch.randn(5, 3), torch.randn(5, 3), 2),
     "must share D"),
    (lambda: sparse.sliding_window_attention(torch.randn(5, 4), torch.randn(5, 4), torch.randn(6, 4), 2),
     "same leading shape"),
    (lambda: sparse.sliding_window_attention(torch.randn(5, 4), torch.randn(5, 4), torch.randn(5, 4), 1.5),
     "window must be a whole number"),
])
def test_bad_input_raises_a_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
