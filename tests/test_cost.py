"""Lesson 06: the cost formulas, the measuring helpers (no wall-clock assertions) and the KV cache.

Tolerances: decoding with and without a cache computes the same sums in a different order (one row at a
time instead of a batch of rows), so float32 results agree to about 1e-7 relative; we allow 1e-5. In float64
they agree to 1e-12.
"""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from course_lib import cost
from course_lib.attention import causal_mask
from course_lib.multihead import MultiHeadAttention


def test_flops_count_two_products_of_two_flops_per_term():
    # (T, D) @ (D, S) takes T·S·D multiplies and T·S·(D-1) adds; weights (T, S) @ (S, D) as many again
    assert cost.attention_flops(3, 5, 7) == 4 * 3 * 5 * 7
    assert cost.attention_flops(1024, 1024, 64, num_heads=12, batch_size=2) == 4 * 1024 * 1024 * 64 * 12 * 2
    assert cost.attention_flops(2048, 2048, 64) == 4 * cost.attention_flops(1024, 1024, 64)  # twice T: 4x work


def test_kv_cache_of_llama_2_7b_is_half_a_mebibyte_per_token():
    per_token = cost.kv_cache_bytes(num_layers=32, num_kv_heads=32, head_dim=128, length=1)  # float16
    assert per_token == 2 * 32 * 32 * 128 * 2 == 512 * 1024
    assert cost.kv_cache_bytes(32, 32, 128, 4096) == 2 * 2**30  # 2 GiB at 4096 tokens
    assert cost.kv_cache_bytes(32, 8, 128, 4096) * 4 == cost.kv_cache_bytes(32, 32, 128, 4096)  # GQA: 4x less
    assert cost.kv_cache_bytes(2, 1, 4, 8, batch_size=3, bytes_per_value=4) == 2 * 2 * 3 * 1 * 8 * 4 * 4


def test_score_matrix_bytes_and_formatting():
    assert cost.score_matrix_bytes(4096, 4096) == 64 * 2**20
    assert cost.score_matrix_bytes(10, 20, num_heads=3, batch_size=2, bytes_per_value=2) == 10 * 20 * 3 * 2 * 2
    assert [cost.format_bytes(n) for n in (512, 1536, 2 * 2**30)] == ["512 B", "1.5 KiB", "2 GiB"]


@pytest.mark.parametrize("call, message", [
    (lambda: cost.attention_flops(0, 4, 4), "num_queries must be a positive whole number, got 0"),
    (lambda: cost.kv_cache_bytes(2, 2, 4, 8, bytes_per_value=2.5), "bytes_per_value must be a positive whole number, got 2.5"),
    (lambda: cost.time_call(print, repeats=0), "repeats >= 1"),
    (lambda: cost.fit_slope([1, 2], [1]), "at least two"),
    (lambda: cost.fit_slope([1, 1], [2, 3]), "all xs are equal"),
    (lambda: cost.KVCache(1, 1, 2, 4).append(torch.zeros(1, 1, 3, 4), torch.zeros(1, 1, 3, 4)), "3 more do not fit"),
])
def test_bad_input_raises_a_value_error(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


@settings(max_examples=50, deadline=None)
@given(st.floats(0.5, 3.0), st.floats(0.1, 100.0), st.lists(st.integers(1, 10**6), min_size=2, max_size=8, unique=True))
def test_fit_slope_recovers_the_exponent_of_a_power_law(exponent, factor, xs):
    ys = [factor * x ** exponent for x in xs]
    assert abs(cost.fit_slope(xs, ys) - exponent) < 1e-9


def test_time_call_warms_up_then_reports_the_median_of_the_repeats():
    calls = []
    seconds = cost.time_call(lambda x: calls.append(x), "hi", warmup=2, repeats=3)
    assert calls == ["hi"] * 5 and seconds >= 0


def test_peak_memory_sees_allocations_even_when_freed():
    def temporary_then_small():
        big = torch.ones(1_000_000)  # 4 MB, freed before returning
        del big
        return torch.ones(1000)  # 4 kB, still alive at the end

    peak = cost.peak_memory(temporary_then_small)
    assert 4_000_000 <= peak < 4_000_000 + 100_000  # the freed 4 MB were seen; little else
    inputs = torch.ones(1_000_000)
    assert cost.peak_memory(lambda x: x.sum(), inputs) < 100_000  # tensors made before the call do not count


def test_peak_memory_of_naive_attention_holds_the_score_matrix():
    from course_lib.attention import scaled_dot_product_attention

    x = torch.randn(1, 512, 16)
    peak = cost.peak_memory(scaled_dot_product_attention, x, x, x)
    assert peak >= cost.score_matrix_bytes(512, 512)  # at least one (T, S) float32 matrix


def test_measure_scaling_returns_one_value_per_length_and_function():
    results = cost.measure_scaling({"ones": torch.ones}, [10, 100], lambda n: (n, n), repeats=1)
    assert len(results["ones"]["seconds"]) == 2
    assert results["ones"]["bytes"][1] == 100 * 100 * 4 > results["ones"]["bytes"][0]


def test_cache_size_is_positive():
    assert cost.cache_bytes() >= 2**15


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.sampled_from([(4, 4), (4, 2), (4, 1), (6, 3)]), st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_decoding_with_and_without_a_cache_equals_the_causal_forward(batch, heads, length, seed):
    torch.manual_seed(seed)
    num_heads, num_kv_heads = heads
    layer = MultiHeadAttention(num_heads * 3, num_heads, num_kv_heads=num_kv_heads).double()
    tokens = torch.randn(batch, length, num_heads * 3, dtype=torch.float64)
    with torch.no_grad():
        expected, _ = layer(tokens, attn_mask=causal_mask(length))
        cached = cost.decode(layer, tokens, use_cache=True)
        recomputed = cost.decode(layer, tokens, use_cache=False)
    assert torch.allclose(cached, expected, atol=1e-12) and torch.allclose(recomputed, expected, atol=1e-12)


def test_decoding_in_float32_agrees_within_round_off():
    torch.manual_seed(0)
    layer = MultiHeadAttention(32, 4)
    tokens = torch.randn(2, 40, 32)
    with torch.no_grad():
        expected, _ = layer(tokens, attn_mask=causal_mask(40))
        assert torch.allclose(cost.decode(layer, tokens), expected, atol=1e-5, rtol=1e-5)


def test_the_cache_grows_by_one_token_per_step_and_knows_its_size():
    cache = cost.KVCache(batch_size=2, num_kv_heads=2, max_length=5, head_dim=4)
    keys, values = cache.append(torch.ones(2, 2, 1, 4), torch.zeros(2, 2, 1, 4))
    keys, values = cache.append(2 * torch.ones(2, 2, 1, 4), torch.zeros(2, 2, 1, 4))
    assert keys.shape == (2, 2, 2, 4) and keys[0, 0, :, 0].tolist() == [1.0, 2.0]
    assert cache.nbytes == 2 * 2 * 2 * 2 * 4 * 4 == cost.kv_cache_bytes(1, 2, 4, 2, batch_size=2, bytes_per_value=4)


def test_crossover_length_interpolates_on_log_log_axes():
    lengths = [100, 200, 400, 800]
    quadratic = [n**2 for n in lengths]
    assert cost.crossover_length(lengths, quadratic, [300 * n for n in lengths]) == pytest.approx(300)
    assert cost.crossover_length(lengths, quadratic, [1.0] * 4) == 100  # faster everywhere
    assert cost.crossover_length(lengths, quadratic, [10**9] * 4) is None  # never faster
    # a noisy dip below 1 before the real crossover does not count: the last crossing does
    expected = 200 * 2 ** (math.log(1.25) / math.log(2.5))  # ratio 1.25 at 200, 0.5 at 400: log-linear between
    assert cost.crossover_length(lengths, [1, 4, 16, 64], [0.5, 5, 8, 8]) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="at least two lengths"):
        cost.crossover_length([100], [1], [1])
