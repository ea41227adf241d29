"""Fixtures for the checks of lesson 10, course_lib/checks/l10_capstone.py: wrong solutions, each with the diagnosis
a learner must see (``WRONG``), and right solutions written differently (``RIGHT``).
tests/test_manifest.py proves that every diagnosis of these checks is triggered by a WRONG fixture and that
every check has a RIGHT one."""
from __future__ import annotations

import math

import torch

from verdicts import fixture_tests


def masked_softmax_attention(query, key, value, allowed):
    """What learners write around their mask: scaled scores, -inf where not allowed, softmax, weights @ values."""
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])  # (..., T, S)
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)  # (..., T, S)
    return weights @ value  # (..., T, Dv)


# cached_attention: wrong ------------------------------------------------------------------------------------

def cached_is_causal(query, key, value):
    """torch's is_causal: the mask tril() from the top left, whatever S."""
    T, S = query.shape[-2], key.shape[-2]
    return masked_softmax_attention(query, key, value, torch.ones(T, S, dtype=torch.bool).tril())


def cached_no_mask(query, key, value):
    """No mask: 'the cache only holds the past anyway' (true for one new token, not for several)."""
    return torch.softmax(query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1]), dim=-1) @ value


def cached_without_own_key(query, key, value):
    T, S = query.shape[-2], key.shape[-2]
    return masked_softmax_attention(query, key, value, torch.ones(T, S, dtype=torch.bool).tril(S - T - 1))


def cached_one_ahead(query, key, value):
    T, S = query.shape[-2], key.shape[-2]
    return masked_softmax_attention(query, key, value, torch.ones(T, S, dtype=torch.bool).tril(S - T + 1))


def cached_reversed(query, key, value):
    T, S = query.shape[-2], key.shape[-2]
    return masked_softmax_attention(query, key, value, torch.ones(T, S, dtype=torch.bool).triu(S - T))


def cached_unscaled(query, key, value):
    T, S = query.shape[-2], key.shape[-2]
    return masked_softmax_attention(query * math.sqrt(query.shape[-1]), key, value,
                                    torch.ones(T, S, dtype=torch.bool).tril(S - T))


def cached_square_mask(query, key, value):
    """The mask made (T, T), as for self-attention without a cache."""
    T = query.shape[-2]
    return masked_softmax_attention(query, key, value, torch.ones(T, T, dtype=torch.bool).tril())


def cached_with_weights(query, key, value):
    T, S = query.shape[-2], key.shape[-2]
    out = masked_softmax_attention(query, key, value, torch.ones(T, S, dtype=torch.bool).tril(S - T))
    return out, None


def cached_scaled_by_value_size(query, key, value):
    T, S = query.shape[-2], key.shape[-2]
    scores = query @ key.transpose(-2, -1) / math.sqrt(value.shape[-1])  # (..., T, S)
    allowed = torch.ones(T, S, dtype=torch.bool).tril(S - T)
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ value


def cached_mask_multiplied(query, key, value):
    T, S = query.shape[-2], key.shape[-2]
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    return torch.softmax(scores * torch.ones(T, S).tril(S - T), dim=-1) @ value


def cached_softmax_over_queries(query, key, value):
    T, S = query.shape[-2], key.shape[-2]
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    weights = torch.softmax(scores.masked_fill(~torch.ones(T, S, dtype=torch.bool).tril(S - T), -1e9), dim=-2)
    return weights @ value


def cached_in_float32(query, key, value):
    """Everything cast to float32 'to be safe': a float64 case comes back at half the precision."""
    query, key, value = query.float(), key.float(), value.float()
    T, S = query.shape[-2], key.shape[-2]
    return masked_softmax_attention(query, key, value, torch.ones(T, S, dtype=torch.bool).tril(S - T))


def cached_four_axes_only(query, key, value):
    """Written for the model's (B, H, T, D) only: transpose(2, 3) fails on (T, D) and (B, T, D) inputs."""
    T, S = query.shape[2], key.shape[2]
    scores = query @ key.transpose(2, 3) / math.sqrt(query.shape[3])
    return torch.softmax(scores.masked_fill(~torch.ones(T, S, dtype=torch.bool).tril(S - T), float("-inf")), -1) @ value


# cached_attention: right ------------------------------------------------------------------------------------

def cached_token_by_token(query, key, value):
    """One new token at a time, each against the keys up to its own position (how generation would do it)."""
    T, S = query.shape[-2], key.shape[-2]
    rows = []
    for i in range(T):
        visible = S - T + i + 1
        scores = query[..., i:i + 1, :] @ key[..., :visible, :].transpose(-2, -1) / math.sqrt(query.shape[-1])
        rows.append(torch.softmax(scores, dim=-1) @ value[..., :visible, :])  # (..., 1, Dv)
    return torch.cat(rows, dim=-2)  # (..., T, Dv)


def cached_additive_bias(query, key, value):
    """An additive bias built from positions, -inf above the shifted diagonal, and einsum."""
    T, S = query.shape[-2], key.shape[-2]
    positions = torch.arange(S - T, S)[:, None]  # (T, 1): where the new tokens stand
    bias = torch.zeros(T, S, dtype=query.dtype).masked_fill(torch.arange(S) > positions, float("-inf"))
    scores = torch.einsum("...td,...sd->...ts", query, key) * query.shape[-1] ** -0.5 + bias
    return torch.einsum("...ts,...sd->...td", scores.softmax(-1), value)


# window_with_sinks_mask: wrong ------------------------------------------------------------------------------

def window_lesson_07(length, window, sinks):
    """Lesson 07's causal window: i - window <= j <= i."""
    i, j = torch.arange(length)[:, None], torch.arange(length)[None, :]
    return ((j <= i) & (i - j <= window)) | ((j < sinks) & (j <= i))


def window_sinks_ahead(length, window, sinks):
    mask = torch.ones(length, length, dtype=torch.bool).tril() & ~torch.ones(length, length, dtype=torch.bool).tril(-window)
    mask[:, :sinks] = True  # every row sees the sinks, the first rows too
    return mask


def window_without_sinks(length, window, sinks):
    return torch.ones(length, length, dtype=torch.bool).tril().triu(-(window - 1))


def window_both_ways(length, window, sinks):
    i, j = torch.arange(length)[:, None], torch.arange(length)[None, :]
    return ((i - j).abs() < window) | ((j < sinks) & (j <= i))


def window_before_itself(length, window, sinks):
    i, j = torch.arange(length)[:, None], torch.arange(length)[None, :]
    return ((j < i) & (j >= i - window)) | ((j < sinks) & (j < i))


def window_as_hidden(length, window, sinks):
    """True where a key is hidden, as in torch's masked_fill."""
    i, j = torch.arange(length)[:, None], torch.arange(length)[None, :]
    return (j > i) | ((j <= i - window) & (j >= sinks))


def window_as_floats(length, window, sinks):
    """An additive mask, 0 or -inf, instead of booleans."""
    i, j = torch.arange(length)[:, None], torch.arange(length)[None, :]
    seen = ((j <= i) & (j > i - window)) | ((j < sinks) & (j <= i))
    return torch.zeros(length, length).masked_fill(~seen, float("-inf"))


def window_sinks_inclusive(length, window, sinks):
    i, j = torch.arange(length)[:, None], torch.arange(length)[None, :]
    return ((j <= i) & (j > i - window)) | ((j <= sinks) & (j <= i))


# window_with_sinks_mask: right ------------------------------------------------------------------------------

def window_by_loops(length, window, sinks):
    mask = torch.zeros(length, length, dtype=torch.bool)
    for i in range(length):
        mask[i, max(0, i - window + 1):i + 1] = True
        mask[i, :min(sinks, i + 1)] = True
    return mask


def window_from_bands(length, window, sinks):
    """tril minus a shifted tril, plus the first columns of the lower triangle."""
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    band = causal & ~torch.ones(length, length, dtype=torch.bool).tril(-window)
    sink_columns = torch.arange(length) < sinks
    return band | (causal & sink_columns)


# rotate_half_order: wrong -----------------------------------------------------------------------------------

def reorder_llama_cpp_permute(weight, num_heads):
    """llama.cpp's convert_hf_to_gguf permute, copied from the converter instead of inverted."""
    rows, columns = weight.shape
    return weight.reshape(num_heads, 2, rows // num_heads // 2, columns).swapaxes(1, 2).reshape(rows, columns)


def reorder_across_heads(weight, num_heads):
    return torch.cat([weight[0::2], weight[1::2]])  # evens, then odds, of the whole matrix


def reorder_columns(weight, num_heads):
    return torch.cat([weight[:, 0::2], weight[:, 1::2]], dim=1)


def reorder_nothing(weight, num_heads):
    head_dim = weight.shape[0] // num_heads
    return weight.reshape(num_heads, head_dim, -1).reshape(weight.shape)


def reorder_with_view(weight, num_heads):
    rows, columns = weight.shape
    return weight.view(num_heads, rows // num_heads // 2, 2, columns).transpose(1, 2).view(rows, columns)


def reorder_second_members_first(weight, num_heads):
    head_dim = weight.shape[0] // num_heads
    per_head = weight.reshape(num_heads, head_dim, -1)  # (H, D, in)
    return torch.cat([per_head[:, 1::2], per_head[:, 0::2]], dim=1).reshape(weight.shape)


def reorder_head_dim_from_columns(weight, num_heads):
    """D taken from the wrong axis: with one pair per 'head' the reordering moves nothing."""
    rows, columns = weight.shape
    head_dim = 2
    return weight.reshape(rows // head_dim, head_dim // 2, 2, columns).transpose(1, 2).reshape(rows, columns)


def reorder_in_float32(weight, num_heads):
    rows, columns = weight.shape
    pairs = weight.float().reshape(num_heads, rows // num_heads // 2, 2, columns)
    return pairs.transpose(1, 2).reshape(rows, columns)


# rotate_half_order: right -----------------------------------------------------------------------------------

def reorder_by_index(weight, num_heads):
    """An index of where each row comes from: head h's row i + k·D/2 is the GGUF's row h·D + 2i + k."""
    head_dim = weight.shape[0] // num_heads
    within = torch.cat([torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)])  # (D,)
    source = (torch.arange(num_heads)[:, None] * head_dim + within).reshape(-1)  # (H * D,)
    return weight[source]


def reorder_with_einops_style_permute(weight, num_heads):
    rows, columns = weight.shape
    per_head = weight.reshape(num_heads, rows // num_heads // 2, 2, columns)  # (H, D/2, 2, in)
    return per_head.permute(0, 2, 1, 3).contiguous().view(rows, columns)


WRONG = [
    ("cached_attention", cached_is_causal, "this is the top-left causal alignment"),
    ("cached_attention", cached_no_mask, "every new token sees every key"),
    ("cached_attention", cached_without_own_key, "each new token must see its own key too"),
    ("cached_attention", cached_one_ahead, "off by one: new token i sees one key past its own position"),
    ("cached_attention", cached_reversed, "the mask is reversed"),
    ("cached_attention", cached_unscaled, "not scaled by 1/√D"),
    ("cached_attention", cached_square_mask, "The mask is (T, S), T new queries against all S keys"),
    ("cached_attention", cached_with_weights, "output: expected a torch tensor, got a tuple of length 2"),
    ("cached_attention", cached_scaled_by_value_size, "scaled by 1/√Dv, the values' size"),
    ("cached_attention", cached_mask_multiplied, "the mask multiplies the scores"),
    ("cached_attention", cached_softmax_over_queries, "the softmax runs over the queries"),
    ("cached_attention", cached_in_float32, "the inputs are float64 and your answer is torch.float32"),
    ("cached_attention", cached_four_axes_only, "The inputs may have 2, 3 or 4 axes"),
    ("window_with_sinks_mask", window_lesson_07, "this is lesson 07's causal window"),
    ("window_with_sinks_mask", window_sinks_ahead, "the first tokens see sink tokens ahead of them"),
    ("window_with_sinks_mask", window_without_sinks, "the sinks are missing"),
    ("window_with_sinks_mask", window_both_ways, "your window looks ahead"),
    ("window_with_sinks_mask", window_before_itself, "each token must see itself"),
    ("window_with_sinks_mask", window_as_hidden, "the meaning is reversed"),
    ("window_with_sinks_mask", window_as_floats, "bool"),
    ("window_with_sinks_mask", window_sinks_inclusive, "one sink too many"),
    ("rotate_half_order", reorder_llama_cpp_permute, "this is llama.cpp's own permutation"),
    ("rotate_half_order", reorder_across_heads, "you reordered the pairs across the whole matrix"),
    ("rotate_half_order", reorder_columns, "you reordered the columns"),
    ("rotate_half_order", reorder_nothing, "your answer equals the input: no row moved"),
    ("rotate_half_order", reorder_head_dim_from_columns, "your answer equals the input: no row moved"),
    ("rotate_half_order", reorder_second_members_first, "the halves are swapped"),
    ("rotate_half_order", reorder_in_float32, "the inputs are float64 and your answer is torch.float32"),
    ("rotate_half_order", reorder_with_view, "use .reshape"),
]

RIGHT = [
    ("cached_attention", cached_token_by_token),
    ("cached_attention", cached_additive_bias),
    ("window_with_sinks_mask", window_by_loops),
    ("window_with_sinks_mask", window_from_bands),
    ("rotate_half_order", reorder_by_index),
    ("rotate_half_order", reorder_with_einops_style_permute),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)


def test_the_reordering_is_checked_on_smollm2s_own_rows_and_the_window_on_the_lessons_story():
    """Besides small made-up cases, the checks use what the model runs on (the model is on every machine that
    ran set-up, so the test suite's too)."""
    import numpy as np

    from course_lib import checks

    labels = [case.label for case in checks.CHECKS["rotate_half_order"].make_cases(np.random.default_rng(0))]
    assert sum("SmolLM2's layer 0" in label for label in labels) == 2
    labels = [case.label for case in checks.CHECKS["window_with_sinks_mask"].make_cases(np.random.default_rng(0))]
    assert any("length=494, window=32, sinks=4" in label for label in labels)
