"""Fixtures for the checks of lesson 06, course_lib/checks/l06_the_cost_of_attention.py: wrong solutions, each with the
diagnosis a learner must see (``WRONG``), and right solutions written differently (``RIGHT``).
tests/test_manifest.py proves that every diagnosis of these checks is triggered by a WRONG fixture and that
every check has a RIGHT one. Each wrong solution is written the way a learner writes it, not by calling the
check's own simulator (a fixture that did could never fail)."""
from __future__ import annotations

import numpy as np
import torch

from course_lib import attention, multihead
from course_lib.checks import CHECKS
from verdicts import fixture_tests


# attention_flops: wrong -------------------------------------------------------------------------------------

def flops_one_product(num_queries, num_keys, head_dim, num_heads):
    return 2 * num_queries * num_keys * head_dim * num_heads


def flops_multiplies_only(num_queries, num_keys, head_dim, num_heads):
    return num_queries * num_keys * head_dim * num_heads  # T·S dot products of length D, per head


def flops_of_one_head(num_queries, num_keys, head_dim, num_heads):
    scores = 2 * num_queries * num_keys * head_dim  # Q @ K^T
    weighted_sum = 2 * num_queries * num_keys * head_dim  # weights @ V
    return scores + weighted_sum  # num_heads never used


def flops_self_attention_only(num_queries, num_keys, head_dim, num_heads):
    return 4 * num_queries * num_queries * head_dim * num_heads


def flops_shared_by_heads(num_queries, num_keys, head_dim, num_heads):
    total = 4 * num_queries * num_keys * head_dim
    return total / num_heads  # "the heads split the work between them"


def flops_as_string(num_queries, num_keys, head_dim, num_heads):
    return f"{4 * num_queries * num_keys * head_dim * num_heads:,}"


def flops_with_softmax(num_queries, num_keys, head_dim, num_heads):
    products = 4 * num_queries * num_keys * head_dim  # Q @ K^T and weights @ V
    softmax = 5 * num_queries * num_keys  # max, subtract, exp, sum, divide per score
    return (products + softmax) * num_heads


def flops_with_scaling_once(num_queries, num_keys, head_dim, num_heads):
    return 4 * num_queries * num_keys * head_dim * num_heads + num_queries * num_keys  # + dividing by sqrt(D)


def flops_d_minus_one_adds(num_queries, num_keys, head_dim, num_heads):
    dot_product = head_dim + (head_dim - 1)  # D multiplies, D - 1 adds
    return 2 * num_queries * num_keys * dot_product * num_heads


def flops_of_the_whole_layer(num_queries, num_keys, head_dim, num_heads):
    embed_dim = num_heads * head_dim
    attention_itself = 4 * num_queries * num_keys * head_dim * num_heads
    projections = 4 * num_queries * embed_dim * embed_dim * 2  # query, key, value, output, as in lesson 04
    return attention_itself + projections


def flops_in_gflop(num_queries, num_keys, head_dim, num_heads):
    return 4 * num_queries * num_keys * head_dim * num_heads / 1e9  # "GFLOPs"


# attention_flops: right -------------------------------------------------------------------------------------

def flops_as_float(num_queries, num_keys, head_dim, num_heads):
    return 2.0 * (2 * num_keys * head_dim) * num_queries * num_heads  # scores and weighted sum, as a float


# kv_cache_bytes: wrong --------------------------------------------------------------------------------------

def kv_keys_only(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    return num_layers * num_kv_heads * head_dim * length * batch_size * bytes_per_value


def kv_no_batch(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    return 2 * num_layers * num_kv_heads * head_dim * length * bytes_per_value


def kv_fixed_float16(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    return 2 * num_layers * num_kv_heads * head_dim * length * batch_size * 2


def kv_numbers(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    return 2 * num_layers * num_kv_heads * head_dim * length * batch_size  # bytes_per_value never used


def kv_one_layer(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    keys_and_values = 2 * num_kv_heads * head_dim * length  # per sequence
    return keys_and_values * batch_size * bytes_per_value  # num_layers never used


def kv_bits(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    bits_per_value = 8 * bytes_per_value
    return 2 * num_layers * num_kv_heads * head_dim * length * batch_size * bits_per_value


def kv_gib(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    size = 2 * num_layers * num_kv_heads * head_dim * length * batch_size * bytes_per_value
    return size / 2**30  # in GiB, easier to read


def kv_default_float32(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=4):
    return 2 * num_layers * num_kv_heads * head_dim * length * batch_size * bytes_per_value


def kv_next_token_too(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    tokens = length + 1  # "the cache for generating token length + 1"
    return 2 * num_layers * num_kv_heads * head_dim * tokens * batch_size * bytes_per_value


def kv_one_byte_over(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    header = 1  # a byte of bookkeeping that no cache has
    return 2 * num_layers * num_kv_heads * head_dim * length * batch_size * bytes_per_value + header


# kv_cache_bytes: right --------------------------------------------------------------------------------------

def kv_per_token(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    per_token = num_layers * 2 * num_kv_heads * head_dim * bytes_per_value
    return int(np.int64(per_token) * length * batch_size)


# grouped_query_attention: wrong -----------------------------------------------------------------------------

def gqa_tiled(query, key, value):
    groups = query.shape[1] // key.shape[1]
    return attention.scaled_dot_product_attention(query, key.repeat(1, groups, 1, 1), value.repeat(1, groups, 1, 1))


def gqa_only_output(query, key, value):
    return multihead.grouped_query_attention(query, key, value)[0]


def gqa_head_by_head_first_kv_head(query, key, value):
    num_heads = query.shape[1]
    outputs, weights = [], []
    for h in range(num_heads):
        kv_head = h // num_heads  # meant h // (num_heads // num_kv_heads): this is always 0
        out, w = attention.scaled_dot_product_attention(query[:, h], key[:, kv_head], value[:, kv_head])
        outputs.append(out)  # (B, T, Dv)
        weights.append(w)  # (B, T, S)
    return torch.stack(outputs, dim=1), torch.stack(weights, dim=1)  # (B, H, T, Dv), (B, H, T, S)


def gqa_manual(query, key, value, scale_by, softmax_dim=-1):
    groups = query.shape[1] // key.shape[1]
    keys = key.repeat_interleave(groups, dim=1)  # (B, H, S, D)
    values = value.repeat_interleave(groups, dim=1)  # (B, H, S, Dv)
    scores = query @ keys.transpose(-2, -1) / scale_by  # (B, H, T, S)
    weights = torch.softmax(scores, dim=softmax_dim)  # (B, H, T, S)
    return weights @ values, weights  # (B, H, T, Dv), (B, H, T, S)


def gqa_unscaled(query, key, value):
    return gqa_manual(query, key, value, scale_by=1.0)


def gqa_divided_by_dim(query, key, value):
    return gqa_manual(query, key, value, scale_by=query.shape[-1])


def gqa_scaled_by_value_dim(query, key, value):
    return gqa_manual(query, key, value, scale_by=value.shape[-1] ** 0.5)


def gqa_softmax_over_queries(query, key, value):
    return gqa_manual(query, key, value, scale_by=query.shape[-1] ** 0.5, softmax_dim=-2)


def gqa_causal(query, key, value):
    groups = query.shape[1] // key.shape[1]
    keys, values = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)  # (B, H, S, D) each
    return attention.scaled_dot_product_attention(query, keys, values, is_causal=True)  # as in the lesson's cell


# grouped_query_attention: right -----------------------------------------------------------------------------

def gqa_repeat_interleave(query, key, value):
    groups = query.shape[1] // key.shape[1]
    keys, values = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)  # (B, H, S, D) each
    return attention.scaled_dot_product_attention(query, keys, values)


def gqa_grouped_view(query, key, value):
    """The query heads of a group viewed as one more axis, against their KV head: no KV head is copied."""
    batch, num_heads, length, head_dim = query.shape
    num_kv_heads = key.shape[1]
    grouped = query.view(batch, num_kv_heads, num_heads // num_kv_heads, length, head_dim)  # (B, Hkv, G, T, D)
    out, weights = attention.scaled_dot_product_attention(grouped, key[:, :, None], value[:, :, None])
    return out.flatten(1, 2), weights.flatten(1, 2)  # (B, H, T, Dv), (B, H, T, S)


def gqa_expand_reshape(query, key, value):
    """Each KV head expanded to its group (a view), then reshaped to H heads: the copy happens in reshape."""
    batch, num_heads, length, head_dim = query.shape
    num_kv_heads, num_keys = key.shape[1], key.shape[2]
    groups = num_heads // num_kv_heads
    keys = key[:, :, None].expand(batch, num_kv_heads, groups, num_keys, head_dim).reshape(batch, num_heads, num_keys, head_dim)
    values = value[:, :, None].expand(batch, num_kv_heads, groups, num_keys, value.shape[-1]).reshape(
        batch, num_heads, num_keys, value.shape[-1])  # (B, H, S, Dv)
    return attention.scaled_dot_product_attention(query, keys, values)


WRONG = [
    ("attention_flops", flops_one_product, "half the count"),
    ("attention_flops", flops_multiplies_only, "T·S·D once per head"),
    ("attention_flops", flops_of_one_head, "the number of heads is missing"),
    ("attention_flops", flops_self_attention_only, "T·S"),
    ("attention_flops", flops_shared_by_heads, "you divided by the number of heads"),
    ("attention_flops", flops_as_string, "should return a number"),
    ("attention_flops", flops_with_softmax, "you added a few operations per score"),
    ("attention_flops", flops_with_scaling_once, "you added a few operations per score"),
    ("attention_flops", flops_d_minus_one_adds, "D − 1 adds"),
    ("kv_cache_bytes", kv_keys_only, "only the keys"),
    ("kv_cache_bytes", kv_next_token_too, "you count length + 1 tokens"),
    ("kv_cache_bytes", kv_one_byte_over, "largest difference 1: expected"),
    ("kv_cache_bytes", kv_no_batch, "batch_size is ignored"),
    ("kv_cache_bytes", kv_fixed_float16, "bytes_per_value is ignored"),
    ("kv_cache_bytes", kv_numbers, "you counted numbers, not bytes"),
    ("kv_cache_bytes", kv_one_layer, "the number of layers is missing"),
    ("kv_cache_bytes", kv_bits, "you counted bits"),
    ("grouped_query_attention", gqa_tiled, "wrong KV heads"),
    ("grouped_query_attention", gqa_only_output, "returned only output"),
    ("grouped_query_attention", gqa_head_by_head_first_kv_head, "every query head uses the first KV head"),
    ("grouped_query_attention", gqa_unscaled, "the scores are not scaled"),
    ("grouped_query_attention", gqa_divided_by_dim, "you divide the scores by D"),
    ("grouped_query_attention", gqa_scaled_by_value_dim, "you scale by the values' size"),
    ("grouped_query_attention", gqa_softmax_over_queries, "the softmax runs over the queries"),
    ("attention_flops", flops_of_the_whole_layer, "you counted the projections too"),
    ("attention_flops", flops_in_gflop, "your count is in larger units"),
    ("kv_cache_bytes", kv_gib, "you returned the size in larger units"),
    ("kv_cache_bytes", kv_default_float32, "your default bytes_per_value is not 2"),
    ("grouped_query_attention", gqa_causal, "you applied a causal mask"),
]

RIGHT = [
    ("attention_flops", flops_as_float),
    ("kv_cache_bytes", kv_per_token),
    ("grouped_query_attention", gqa_repeat_interleave),
    ("grouped_query_attention", gqa_grouped_view),
    ("grouped_query_attention", gqa_expand_reshape),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)


def gqa_with_torchs_enable_gqa(query, key, value):
    """torch's attention does the grouping when asked by a keyword: the job of the exercise, so 0 points."""
    return torch.nn.functional.scaled_dot_product_attention(query, key, value, enable_gqa=True), None


def test_the_check_cell_reads_a_keyword_that_hands_over_the_job():
    result = CHECKS["grouped_query_attention"].run(gqa_with_torchs_enable_gqa)
    assert result.status == "library-call" and "`enable_gqa` (a keyword in `gqa_with_torchs_enable_gqa`)" in result.message
