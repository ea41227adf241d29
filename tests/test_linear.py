"""Lesson 09: linear attention equals its quadratic form, the three causal forms agree, random features
estimate softmax with an error that falls with the number of features.

Tolerances: the exact identities (associativity, cumulative sums, the recurrent loop) are checked in float64 at
1e-10 absolute and relative, as the issue asks: the forms add the same products in another order, so they differ
by a few ulps times the sequence length (about 1e-15 here). The random-feature tests are statistical but
deterministic (fixed generator seeds) and assert trends with wide margins, never exact numbers.
"""
from __future__ import annotations

import math
import statistics

import pytest
import torch
from hypothesis import given, settings, strategies as st

from course_lib import cost, linear, measure, toy_tasks
from course_lib.attention import SelfAttention, scaled_dot_product_attention

EXACT = dict(atol=1e-10, rtol=1e-10)


@st.composite
def attention_inputs(draw, causal: bool = False):
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    queries = draw(st.integers(1, 40))
    keys = queries if causal or draw(st.booleans()) else draw(st.integers(1, 40))
    dim, value_dim = draw(st.integers(1, 12)), draw(st.integers(1, 6))
    spread = draw(st.sampled_from([0.1, 1.0, 4.0]))  # from nearly uniform weights to peaked ones
    query = spread * torch.randn(*batch, queries, dim, generator=generator, dtype=torch.float64)
    key = spread * torch.randn(*batch, keys, dim, generator=generator, dtype=torch.float64)
    value = torch.randn(*batch, keys, value_dim, generator=generator, dtype=torch.float64)
    return query, key, value


def quadratic_form(query, key, value, is_causal=False):
    weights = linear.kernel_attention_weights(linear.elu_feature_map(query), linear.elu_feature_map(key),
                                              is_causal=is_causal)  # (..., T, S)
    return weights @ value  # (..., T, Dv)


# ----------------------------------------------------------------------------------------------------------
# The kernel view and the three causal forms
# ----------------------------------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(attention_inputs())
def test_linear_attention_equals_its_quadratic_form(inputs):
    query, key, value = inputs
    output = linear.linear_attention(query, key, value)
    expected = quadratic_form(query, key, value)
    assert output.shape == expected.shape == (*query.shape[:-1], value.shape[-1])
    assert torch.allclose(output, expected, **EXACT), (output - expected).abs().max()


@settings(max_examples=150, deadline=None)
@given(attention_inputs(causal=True))
def test_causal_linear_attention_three_ways_agree(inputs):
    query, key, value = inputs
    masked = quadratic_form(query, key, value, is_causal=True)
    cumulative = linear.causal_linear_attention(query, key, value)
    recurrent = linear.recurrent_linear_attention(query, key, value)
    assert torch.allclose(cumulative, masked, **EXACT), (cumulative - masked).abs().max()
    assert torch.allclose(recurrent, masked, **EXACT), (recurrent - masked).abs().max()


def test_elu_feature_map_is_x_plus_one_above_zero_and_exp_below():
    x = torch.tensor([-800.0, -30.0, -1.0, 0.0, 0.5, 3.0], dtype=torch.float64)
    expected = torch.where(x > 0, x + 1, torch.exp(x))
    # (e^x - 1) + 1 cancels below zero: the error is one rounding of 1, 1e-16 absolute, not relative
    assert torch.allclose(linear.elu_feature_map(x), expected, atol=1e-15, rtol=1e-15)
    assert bool((linear.elu_feature_map(torch.randn(1000)) > 0).all())  # positive, so weights are too


def test_weights_are_positive_rows_sum_to_one_and_the_first_causal_query_copies_its_value():
    torch.manual_seed(0)
    query, key, value = torch.randn(3, 9, 4), torch.randn(3, 9, 4), torch.randn(3, 9, 2)
    weights = linear.kernel_attention_weights(linear.elu_feature_map(query), linear.elu_feature_map(key))
    assert bool((weights > 0).all()) and torch.allclose(weights.sum(-1), torch.ones(3, 9), atol=1e-6)
    causal = linear.causal_linear_attention(query, key, value)
    assert torch.allclose(causal[:, 0], value[:, 0], atol=1e-6)  # query 0 sees key 0 only


def test_generation_token_by_token_keeps_a_state_of_constant_size():
    torch.manual_seed(0)
    query, key, value = (torch.randn(2, 50, 8, dtype=torch.float64) for _ in range(3))
    state, normaliser = torch.zeros(2, 8, 8, dtype=torch.float64), torch.zeros(2, 8, dtype=torch.float64)
    outputs = []
    for position in range(50):
        output, state, normaliser = linear.linear_attention_step(
            state, normaliser, query[:, position], key[:, position], value[:, position])
        assert state.shape == (2, 8, 8) and normaliser.shape == (2, 8)  # the same size at every step
        outputs.append(output)
    assert torch.allclose(torch.stack(outputs, dim=1), linear.causal_linear_attention(query, key, value), **EXACT)
    assert linear.recurrent_state_bytes(64) == (64 * 64 + 64) * 4


def test_linear_attention_memory_grows_linearly_not_quadratically():
    x = torch.randn(1, 4096, 16)
    short = measure.peak_memory(linear.linear_attention, x[:, :1024], x[:, :1024], x[:, :1024])
    long = measure.peak_memory(linear.linear_attention, x, x, x)
    assert long < cost.score_matrix_bytes(4096, 4096) / 16  # far below one (T, S) float32 matrix
    assert 3 < long / short < 5  # 4x the tokens, about 4x the memory (a (T, S) tensor would grow 16x)


def test_gradients_flow_and_are_finite():
    query = torch.randn(2, 12, 4, requires_grad=True)
    for is_causal in (False, True):
        query.grad = None
        linear.linear_attention(query, query, query, is_causal=is_causal).sum().backward()
        assert query.grad is not None and bool(query.grad.isfinite().all())


def test_flop_count_is_linear_in_the_length():
    assert linear.linear_attention_flops(1024, 1024, 64) == 2 * 2048 * 64 * 65
    assert linear.linear_attention_flops(2048, 2048, 64) == 2 * linear.linear_attention_flops(1024, 1024, 64)
    # softmax attention's 4·T·S·D overtakes it once T is a little above D
    assert cost.attention_flops(32, 32, 64) < linear.linear_attention_flops(32, 32, 64)
    assert cost.attention_flops(256, 256, 64) > linear.linear_attention_flops(256, 256, 64)


@pytest.mark.parametrize("call, says", [
    (lambda: linear.linear_attention(torch.randn(5, 4), torch.randn(6, 3), torch.randn(6, 2)), "must share D"),
    (lambda: linear.linear_attention(torch.randn(5, 4), torch.randn(6, 4), torch.randn(7, 2)), "must share S"),
    (lambda: linear.linear_attention(torch.randn(4), torch.randn(6, 4), torch.randn(6, 2)), "at least 2 dimensions"),
    (lambda: linear.causal_linear_attention(torch.randn(5, 4), torch.randn(6, 4), torch.randn(6, 2)),
     "as many queries as keys"),
    (lambda: linear.recurrent_linear_attention(torch.randn(5, 4), torch.randn(6, 4), torch.randn(6, 2)),
     "as many queries as keys"),
    (lambda: linear.positive_random_features(torch.randn(5, 4), torch.randn(16, 3)), "omega must be (M, D)"),
    (lambda: linear.performer_attention(torch.randn(5, 4), torch.randn(5, 4), torch.randn(5, 4), 8,
                                        omega=torch.randn(8, 3)), "omega must have shape"),
    (lambda: linear.sample_omega(0, 4), "num_features must be a positive whole number"),
    (lambda: linear.recurrent_state_bytes(64, bytes_per_value=0), "bytes_per_value"),
    (lambda: linear.linear_attention_flops(10, 10, 2.5), "head_dim"),
])
def test_bad_inputs_are_refused_at_the_door(call, says):
    with pytest.raises(ValueError, match=None) as error:
        call()
    assert says in str(error.value), str(error.value)


# ----------------------------------------------------------------------------------------------------------
# Random features (Performer)
# ----------------------------------------------------------------------------------------------------------

def on_sphere(generator, count, dim, radius):
    """Points of norm ``radius``: scores stay in a realistic range and the estimators' variances are finite."""
    x = torch.randn(count, dim, generator=generator, dtype=torch.float64)
    return radius * x / x.norm(dim=-1, keepdim=True)


def kernel_error(features, query, key, num_features, orthogonal, seeds=range(15)):
    """Median over draws of the mean squared relative error of φ(q)·φ(k) as an estimate of exp(q·k).

    The median, because the estimate is heavy-tailed (a rare ω aligned with q + k gives a huge exp): a mean over
    a few draws is dominated by the rare one; the median sits near the expected (exp(‖q+k‖²) − 1) / m.
    """
    exact = torch.exp(query @ key.T)  # (T, S)
    errors = []
    for seed in seeds:
        omega = linear.sample_omega(num_features, query.shape[-1], orthogonal=orthogonal,
                                    generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        estimate = features(query, omega) @ features(key, omega).T  # (T, S)
        errors.append(float((((estimate - exact) / exact) ** 2).mean()))
    return statistics.median(errors)


def test_positive_random_features_are_positive_and_unbiased():
    generator = torch.Generator().manual_seed(0)
    query, key = on_sphere(generator, 4, 8, 1.0), on_sphere(generator, 4, 8, 1.0)
    omega = linear.sample_omega(200_000, 8, orthogonal=False, generator=generator, dtype=torch.float64)
    query_features = linear.positive_random_features(query, omega)  # (T, M)
    key_features = linear.positive_random_features(key, omega)  # (S, M)
    assert bool((query_features > 0).all())
    # 200,000 features: the relative standard error is about sqrt((e^4 - 1) / 200,000) < 2 %; allow 5 %
    assert torch.allclose(query_features @ key_features.T, torch.exp(query @ key.T), rtol=0.05, atol=0)


def test_random_feature_error_falls_like_one_over_m_and_orthogonal_features_do_no_worse():
    generator = torch.Generator().manual_seed(1)
    query, key = on_sphere(generator, 32, 16, 1.0), on_sphere(generator, 32, 16, 1.0)
    independent = {m: kernel_error(linear.positive_random_features, query, key, m, False) for m in (16, 64, 256)}
    orthogonal = {m: kernel_error(linear.positive_random_features, query, key, m, True) for m in (16, 64, 256)}
    # an unbiased estimate from m independent features has variance ∝ 1/m: 16x the features, 16x less error
    assert 8 < independent[16] / independent[256] < 32
    assert measure.fit_slope(list(independent), list(independent.values())) == pytest.approx(-1, abs=0.2)
    assert statistics.fmean(orthogonal.values()) <= statistics.fmean(independent.values())
    assert orthogonal[256] < orthogonal[16] / 8


def test_positive_features_beat_trigonometric_ones_where_the_true_weights_are_small():
    generator = torch.Generator().manual_seed(2)
    query = on_sphere(generator, 1, 16, 1.5)  # (1, D)
    key = -query + 0.2 * on_sphere(generator, 16, 16, 1.0)  # (16, D): nearly opposite, exp(q·k) ≈ e^-2.2
    positive = kernel_error(linear.positive_random_features, query, key, 64, False)
    trigonometric = kernel_error(linear.trigonometric_random_features, query, key, 64, False)
    assert positive * 100 < trigonometric


def test_sample_omega_rows_are_orthogonal_within_blocks_and_reproducible():
    omega = linear.sample_omega(20, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert omega.shape == (20, 8)
    for block in (omega[:8], omega[8:16], omega[16:]):
        gram = block @ block.T
        assert torch.allclose(gram, torch.diag(torch.diagonal(gram)), atol=1e-10)
    again = linear.sample_omega(20, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.equal(omega, again)


def test_performer_attention_approaches_softmax_attention_as_features_grow():
    generator = torch.Generator().manual_seed(4)
    query, key = on_sphere(generator, 48, 16, 2.0)[None], on_sphere(generator, 48, 16, 2.0)[None]
    value = torch.randn(1, 48, 4, generator=generator, dtype=torch.float64)
    exact, _ = scaled_dot_product_attention(query, key, value)

    def error(m):
        return statistics.fmean(
            float(((linear.performer_attention(query, key, value, m, generator=torch.Generator().manual_seed(s))
                    - exact) ** 2).mean()) for s in range(8))

    assert error(1024) < error(16) / 8


def test_performer_attention_does_not_overflow_on_large_inputs():
    torch.manual_seed(5)
    query, key, value = 30 * torch.randn(1, 10, 16), 30 * torch.randn(1, 10, 16), torch.randn(1, 10, 4)
    output = linear.performer_attention(query, key, value, 64, generator=torch.Generator().manual_seed(0))
    assert bool(output.isfinite().all())  # exp(ωᵀx − ‖x‖²/2) alone would overflow float32 here
    # and the stabilising shifts cancel: the same as plain features, in float64 where those do not overflow
    small = [t.double() / 10 for t in (query, key)]
    omega = linear.sample_omega(64, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    scale = 16 ** -0.25
    plain = linear.kernel_attention(linear.positive_random_features(small[0] * scale, omega),
                                    linear.positive_random_features(small[1] * scale, omega), value.double())
    stabilised = linear.performer_attention(small[0], small[1], value.double(), 64, omega=omega)
    assert torch.allclose(stabilised, plain, atol=1e-10, rtol=1e-10)


# ----------------------------------------------------------------------------------------------------------
# The module, and the quality comparison on lesson 03's retrieval task
# ----------------------------------------------------------------------------------------------------------

def test_linear_self_attention_computes_linear_attention_of_its_projections():
    torch.manual_seed(6)
    layer = linear.LinearSelfAttention(8, 4)
    x = torch.randn(2, 7, 8, requires_grad=True)
    output = layer(x)
    expected = linear.linear_attention(layer.query(x), layer.key(x), layer.value(x))
    assert torch.allclose(output, expected, atol=1e-6)
    assert layer.last_weights.shape == (2, 7, 7) and not layer.last_weights.requires_grad
    output.sum().backward()
    assert x.grad is not None and bool(x.grad.isfinite().all())


def test_retrieval_models_with_either_attention_start_from_the_same_weights():
    softmax = toy_tasks.train_retrieval(steps=0, seed=3)["model"]
    linear_model = toy_tasks.train_retrieval(steps=0, seed=3, attention_class=linear.LinearSelfAttention)["model"]
    assert type(softmax.attention) is SelfAttention
    assert isinstance(linear_model.attention, linear.LinearSelfAttention)
    for (name, a), (_, b) in zip(softmax.state_dict().items(), linear_model.state_dict().items()):
        assert torch.equal(a, b), name
    assert math.isclose(sum(p.numel() for p in softmax.parameters()),
                        sum(p.numel() for p in linear_model.parameters()))



@settings(max_examples=100, deadline=None)
@given(attention_inputs(causal=True), st.integers(1, 20))
def test_chunked_causal_linear_attention_equals_the_cumulative_sums(inputs, chunk_size):
    query, key, value = inputs  # T from 1 to 40: chunks that tile it exactly, and chunks with a ragged end
    chunked = linear.chunked_causal_linear_attention(query, key, value, chunk_size=chunk_size)
    cumulative = linear.causal_linear_attention(query, key, value)
    assert torch.allclose(chunked, cumulative, **EXACT), (chunked - cumulative).abs().max()


def test_chunked_form_keeps_gradients_finite_and_memory_below_the_cumulative_sums():
    query = torch.randn(1, 50, 4, requires_grad=True)  # 50 = 3 chunks of 16 and a ragged end of 2
    linear.chunked_causal_linear_attention(query, query, query, chunk_size=16).sum().backward()
    assert query.grad is not None and bool(query.grad.isfinite().all())  # padded queries divide nothing by 0
    x = torch.randn(1, 4096, 32)
    chunked = measure.peak_memory(linear.chunked_causal_linear_attention, x, x, x)
    cumulative = measure.peak_memory(linear.causal_linear_attention, x, x, x)
    assert chunked * 4 < cumulative  # (T, D, Dv) states against (C, C) tiles and one state per chunk
    with pytest.raises(ValueError, match="chunk_size must be a positive whole number"):
        linear.chunked_causal_linear_attention(x, x, x, chunk_size=0)
