"""Lessons 01-02 reference code: equal to an exact dense reference and to torch, with clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from course_lib import numpy_attention as na

finite = st.floats(-1e3, 1e3, allow_nan=False, width=64)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6), elements=finite), st.data())
def test_softmax_is_a_distribution_equal_to_torch(x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    weights = na.softmax(x, axis=axis)
    assert weights.shape == x.shape and np.all(weights >= 0)
    assert np.allclose(weights.sum(axis=axis), 1.0, atol=1e-12)
    assert np.allclose(weights, torch.softmax(torch.from_numpy(x), dim=axis).numpy(), atol=1e-12)
    assert np.allclose(na.softmax(x + 123.0, axis=axis), weights, atol=1e-9)  # shift-invariant


def test_softmax_keeps_float32_and_survives_extremes():
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0]], dtype=np.float32)
    weights = na.softmax(x)
    assert weights.dtype == np.float32 and np.isfinite(weights).all()
    assert np.allclose(weights[0], [0.09003057, 0.24472847, 0.66524096], atol=1e-6)
    assert np.array_equal(na.softmax(np.full((2, 3), -np.inf)), np.zeros((2, 3)))


@st.composite
def masked_problem(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    t, s, d, dv = (draw(st.integers(1, 7)) for _ in range(4))
    q, k, v = rng.standard_normal(batch + (t, d)), rng.standard_normal(batch + (s, d)), rng.standard_normal(batch + (s, dv))
    mask = rng.random(batch + (t, s)) < draw(st.floats(0, 1))
    return q, k, v, mask


def dense_reference(q, k, v, mask):
    """Attention written out with explicit loops over queries and keys, in float64."""
    out = np.zeros(q.shape[:-1] + (v.shape[-1],))
    weights = np.zeros(mask.shape)
    for index in np.ndindex(q.shape[:-2]):
        for i in range(q.shape[-2]):
            allowed = [j for j in range(k.shape[-2]) if mask[index + (i, j)]]
            if not allowed:
                continue  # nothing to attend to: zeros
            scores = {j: float(q[index + (i,)] @ k[index + (j,)]) / np.sqrt(q.shape[-1]) for j in allowed}
            top = max(scores.values())
            total = sum(np.exp(score - top) for score in scores.values())
            for j, score in scores.items():
                weights[index + (i, j)] = np.exp(score - top) / total
                out[index + (i,)] += weights[index + (i, j)] * v[index + (j,)]
    return out, weights


@settings(max_examples=150, deadline=None)
@given(masked_problem())
def test_masked_attention_equals_the_dense_loop_and_torch(problem):
    q, k, v, mask = problem
    output, weights = na.scaled_dot_product_attention(q, k, v, mask)
    expected_output, expected_weights = dense_reference(q, k, v, mask)
    assert np.allclose(output, expected_output, atol=1e-12) and np.allclose(weights, expected_weights, atol=1e-12)
    theirs = F.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (q, k, v)), attn_mask=torch.from_numpy(mask))
    assert np.allclose(output, theirs.numpy(), atol=1e-12)


def test_masks():
    assert np.array_equal(na.causal_mask(3), np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=bool))
    assert np.array_equal(na.padding_mask([2, 0, 3], 3), np.array([[1, 1, 0], [0, 0, 0], [1, 1, 1]], dtype=bool))
    combined = na.attention_mask([2, 3], 3, causal=True)
    assert combined.shape == (2, 3, 3)
    assert np.array_equal(combined[0], np.array([[1, 0, 0], [1, 1, 0], [1, 1, 0]], dtype=bool))
    assert np.array_equal(na.attention_mask([2], 3)[0], np.array([[1, 1, 0]] * 3, dtype=bool))


@pytest.mark.parametrize("call, message", [
    (lambda: na.attention_scores(np.ones((3, 4)), np.ones((5, 3))), "queries have feature size 4 but keys have 3"),
    (lambda: na.attention_scores(np.ones(4), np.ones((5, 4))), "queries must have at least 2 dimensions, got shape (4,)"),
    (lambda: na.scaled_dot_product_attention(np.ones((3, 4)), np.ones((5, 4)), np.ones((4, 2))),
     "keys have 5 positions but values have 4"),
    (lambda: na.scaled_dot_product_attention(np.ones((3, 4)), np.ones((5, 4)), np.ones((5, 2)), np.ones((5, 3), dtype=bool)),
     "mask of shape (5, 3) does not broadcast to the attention scores' shape (3, 5)"),
    (lambda: na.scaled_dot_product_attention(np.ones((3, 4)), np.ones((5, 4)), np.ones((5, 2)), np.ones((3, 5))),
     "mask must be boolean (True = may attend), got dtype float64"),
    (lambda: na.padding_mask([2, 7], 5), "every length must lie between 0 and n=5, got [2, 7]"),
    (lambda: na.padding_mask([[2]], 5), "lengths must be a 1-D list"),
])
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert message in str(error.value)


def test_scaling_keeps_the_softmax_from_saturating():
    result = na.softmax_saturation(dims=(2, 32, 512), trials=200, seed=0)
    assert np.allclose(result["variance"], [2, 32, 512], rtol=0.15)  # var(q.k) = d
    assert result["entropy_unscaled"][-1] < 0.3 * result["entropy_unscaled"][0]  # collapses as d grows
    assert np.ptp(result["entropy_scaled"]) < 0.15 * result["entropy_scaled"].mean()  # stays put when scaled
    assert result["max_unscaled"][-1] > 0.9 > 0.3 > result["max_scaled"][-1]
