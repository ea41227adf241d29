"""Lesson 06: the cost formulas and the KV cache (the measuring helpers are tested in test_measure.py).

Tolerances: decoding with and without a cache computes the same sums in a different order (one row at a
time instead of a batch of rows), so float32 results agree to about 1e-7 relative; we allow 1e-5. In float64
they agree to 1e-12.
"""
from __future__ import annotations

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


def test_score_matrix_bytes_counts_one_number_per_query_key_and_head():
    assert cost.score_matrix_bytes(4096, 4096) == 64 * 2**20
    assert cost.score_matrix_bytes(10, 20, num_heads=3, batch_size=2, bytes_per_value=2) == 10 * 20 * 3 * 2 * 2


@pytest.mark.parametrize("call, message", [
    (lambda: cost.attention_flops(0, 4, 4), "num_queries must be a positive whole number, got 0"),
    (lambda: cost.kv_cache_bytes(2, 2, 4, 8, bytes_per_value=2.5), "bytes_per_value must be a positive whole number, got 2.5"),
    (lambda: cost.KVCache(1, 1, 2, 4).append(torch.zeros(1, 1, 3, 4), torch.zeros(1, 1, 3, 4)), "3 more do not fit"),
])
def test_bad_input_raises_a_value_error(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


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
