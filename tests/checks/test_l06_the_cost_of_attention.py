"""Fixtures for the checks of lesson 06, course_lib/checks/l06_the_cost_of_attention.py: wrong solutions, each with the
diagnosis a learner must see (``WRONG``), and right solutions written differently (``RIGHT``).
tests/test_manifest.py proves that every diagnosis of these checks is triggered by a WRONG fixture and that
every check has a RIGHT one."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from course_lib import attention, multihead
from verdicts import fixture_tests


def flops_one_product(num_queries, num_keys, head_dim, num_heads):
    return 2 * num_queries * num_keys * head_dim * num_heads


def flops_self_attention_only(num_queries, num_keys, head_dim, num_heads):
    return 4 * num_queries * num_queries * head_dim * num_heads


def flops_as_string(num_queries, num_keys, head_dim, num_heads):
    return f"{4 * num_queries * num_keys * head_dim * num_heads:,}"


def kv_keys_only(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    return num_layers * num_kv_heads * head_dim * length * batch_size * bytes_per_value


def kv_no_batch(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    return 2 * num_layers * num_kv_heads * head_dim * length * bytes_per_value


def kv_fixed_float16(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    return 2 * num_layers * num_kv_heads * head_dim * length * batch_size * 2


def gqa_tiled(query, key, value):
    groups = query.shape[1] // key.shape[1]
    return attention.scaled_dot_product_attention(query, key.repeat(1, groups, 1, 1), value.repeat(1, groups, 1, 1))


def gqa_only_output(query, key, value):
    return multihead.grouped_query_attention(query, key, value)[0]


def flops_as_float(num_queries, num_keys, head_dim, num_heads):
    return 2.0 * (2 * num_keys * head_dim) * num_queries * num_heads  # scores and weighted sum, as a float


def kv_per_token(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    per_token = num_layers * 2 * num_kv_heads * head_dim * bytes_per_value
    return int(np.int64(per_token) * length * batch_size)


def gqa_repeat_interleave(query, key, value):
    groups = query.shape[1] // key.shape[1]
    return attention.scaled_dot_product_attention(query, key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1))


def gqa_with_torch(query, key, value):
    output = nn.functional.scaled_dot_product_attention(query, key, value, enable_gqa=True)
    groups = query.shape[1] // key.shape[1]
    scores = query @ key.repeat_interleave(groups, 1).transpose(-2, -1) / math.sqrt(query.shape[-1])
    return output, torch.softmax(scores, dim=-1)


WRONG = [
    ("attention_flops", flops_one_product, "half the count"),
    ("attention_flops", flops_self_attention_only, "T·S"),
    ("attention_flops", flops_as_string, "should return a number"),
    ("kv_cache_bytes", kv_keys_only, "only the keys"),
    ("kv_cache_bytes", kv_no_batch, "batch_size is ignored"),
    ("kv_cache_bytes", kv_fixed_float16, "bytes_per_value is ignored"),
    ("grouped_query_attention", gqa_tiled, "wrong KV heads"),
    ("grouped_query_attention", gqa_only_output, "returned only output"),
]

RIGHT = [
    ("attention_flops", flops_as_float),
    ("kv_cache_bytes", kv_per_token),
    ("grouped_query_attention", gqa_repeat_interleave),
    ("grouped_query_attention", gqa_with_torch),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)
