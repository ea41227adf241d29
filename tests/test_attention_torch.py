"""course_lib.attention equals torch.nn.functional.scaled_dot_product_attention (property-based).

Tolerance: 1e-5 absolute and relative in float32. Both compute softmax(QK^T * scale) V with float32
round-off of about 1e-7 relative per operation. A score s is only known to about 1e-7 * |s|, and that error
moves the weights by the same amount, so the random inputs keep |s| to at most a few hundred; the
extreme-logit test uses scores up to 3e4 whose softmax is saturated, where the answer is exact.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from course_lib.attention import SelfAttention, causal_mask, masked_softmax, scaled_dot_product_attention

TOLERANCE = dict(atol=1e-5, rtol=1e-5)


@st.composite
def attention_inputs(draw, mask_kind=None):
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))  # () or (B,) or (B, H)
    queries, keys = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    dim, value_dim = draw(st.integers(1, 16)), draw(st.integers(1, 8))
    spread = draw(st.sampled_from([1.0, 1.0, 3.0]))  # sometimes larger logits (extreme ones: a test below)
    query = torch.randn(*batch, queries, dim, generator=generator) * spread
    key = torch.randn(*batch, keys, dim, generator=generator) * spread
    value = torch.randn(*batch, keys, value_dim, generator=generator)
    kind = mask_kind or draw(st.sampled_from(["none", "bool", "bool-broadcast", "float", "causal"]))
    options = {}
    if kind == "bool":
        options["attn_mask"] = torch.rand(*batch, queries, keys, generator=generator) < draw(st.floats(0.0, 1.0))
    elif kind == "bool-broadcast":
        options["attn_mask"] = torch.rand(queries, keys, generator=generator) < 0.5
    elif kind == "float":
        allowed = torch.rand(queries, keys, generator=generator) < 0.7
        bias = torch.randn(queries, keys, generator=generator)
        options["attn_mask"] = bias.masked_fill(~allowed, float("-inf"))
    elif kind == "causal":
        options["is_causal"] = True
    if draw(st.booleans()):
        options["scale"] = draw(st.floats(0.05, 1.0))
    return query, key, value, options


@settings(max_examples=300, deadline=None)
@given(attention_inputs())
def test_equals_torch_sdpa(inputs):
    query, key, value, options = inputs
    ours, weights = scaled_dot_product_attention(query, key, value, **options)
    theirs = F.scaled_dot_product_attention(query, key, value, **options)
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, **TOLERANCE), (ours - theirs).abs().max()
    # weights: rows sum to 1, or are all zero where the query may attend to nothing
    sums = weights.sum(-1)
    assert torch.all(torch.isclose(sums, torch.ones_like(sums), atol=1e-5) | (sums == 0))


@settings(max_examples=100, deadline=None)
@given(attention_inputs(mask_kind="bool"))
def test_fully_masked_rows_give_zeros_like_torch(inputs):
    query, key, value, options = inputs
    mask = options["attn_mask"].clone()
    mask[..., 0, :] = False  # the first query may attend to nothing
    ours, weights = scaled_dot_product_attention(query, key, value, attn_mask=mask)
    theirs = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    assert torch.all(ours[..., 0, :] == 0) and torch.all(weights[..., 0, :] == 0)
    assert torch.allclose(ours, theirs, **TOLERANCE)


@pytest.mark.parametrize("logit", [1e3, 1e4, 3e4])
def test_extreme_logits_stay_finite_and_match_torch(logit):
    query = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]) * math.sqrt(2) * logit  # scores of +-logit
    key = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]])
    value = torch.randn(1, 3, 4, generator=torch.Generator().manual_seed(0))
    ours, weights = scaled_dot_product_attention(query, key, value)
    theirs = F.scaled_dot_product_attention(query, key, value)
    assert torch.isfinite(ours).all() and torch.allclose(ours, theirs, **TOLERANCE)
    assert torch.allclose(weights[0, 0], torch.tensor([1.0, 0.0, 0.0]))


@settings(max_examples=50, deadline=None)
@given(attention_inputs(mask_kind="bool"))
def test_gradients_equal_torch_and_stay_finite(inputs):
    query, key, value, options = inputs
    grads = []
    for attend in (lambda *a, **k: scaled_dot_product_attention(*a, **k)[0], F.scaled_dot_product_attention):
        leaves = [t.clone().requires_grad_() for t in (query, key, value)]
        attend(*leaves, **options).pow(2).sum().backward()
        grads.append([leaf.grad for leaf in leaves])
    for ours, theirs in zip(*grads):
        assert torch.isfinite(ours).all()
        if torch.isfinite(theirs).all():  # torch's own backward may give NaN on fully masked rows
            assert torch.allclose(ours, theirs, atol=1e-4, rtol=1e-4)


def test_float64_agrees_to_1e12():
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 4, 5, 8, generator=generator, dtype=torch.float64) for _ in range(3))
    mask = torch.rand(5, 5, generator=generator) < 0.6
    ours, _ = scaled_dot_product_attention(query, key, value, attn_mask=mask)
    assert torch.allclose(ours, F.scaled_dot_product_attention(query, key, value, attn_mask=mask), atol=1e-12)


def test_causal_mask_is_top_left_aligned_like_torch():
    assert torch.equal(causal_mask(2, 4), torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0]], dtype=torch.bool))


def test_masked_softmax_of_an_all_masked_row_is_zero_with_zero_gradient():
    scores = torch.tensor([[float("-inf")] * 3, [1.0, 2.0, float("-inf")]], requires_grad=True)
    weights = masked_softmax(scores)
    assert torch.equal(weights[0], torch.zeros(3))
    weights.sum().backward()
    assert torch.isfinite(scores.grad).all()


@pytest.mark.parametrize("args, kwargs, message", [
    ((torch.randn(3, 4), torch.randn(5, 3), torch.randn(5, 2)), {}, "query have feature size 4 but key have 3"),
    ((torch.randn(3, 4), torch.randn(5, 4), torch.randn(6, 2)), {}, "key has 5 positions but value has 6"),
    ((torch.randn(4), torch.randn(5, 4), torch.randn(5, 2)), {}, "query must have at least 2 dimensions, got shape (4,)"),
    ((torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)), {"attn_mask": torch.ones(3, 4, dtype=torch.bool)},
     "attn_mask of shape (3, 4) does not broadcast to the attention scores' shape (3, 5)"),
    ((torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 2)), {"attn_mask": torch.ones(3, 3, dtype=torch.bool), "is_causal": True},
     "either attn_mask or is_causal"),
])
def test_bad_input_raises_a_clear_value_error(args, kwargs, message):
    with pytest.raises(ValueError) as error:
        scaled_dot_product_attention(*args, **kwargs)
    assert message in str(error.value)


def test_self_attention_module():
    torch.manual_seed(0)
    layer = SelfAttention(d_model=8, d_head=4)
    x = torch.randn(2, 5, 8)  # (B, T, E)
    expected = F.scaled_dot_product_attention(layer.query(x), layer.key(x), layer.value(x), is_causal=True)
    output = layer(x, attn_mask=causal_mask(5))
    assert output.shape == (2, 5, 4) and torch.allclose(output, expected, **TOLERANCE)
    assert layer.last_weights.shape == (2, 5, 5) and not layer.last_weights.requires_grad
    assert all(getattr(layer, name).bias is None for name in ("query", "key", "value"))
    with pytest.raises(ValueError, match="x has feature size 6, expected d_model=8"):
        layer(torch.randn(2, 5, 6))
