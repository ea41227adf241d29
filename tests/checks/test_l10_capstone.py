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


WRONG = [
    ("cached_attention", cached_is_causal, "this is the top-left causal alignment"),
    ("cached_attention", cached_no_mask, "every new token sees every key"),
    ("cached_attention", cached_without_own_key, "each new token must see its own key too"),
    ("cached_attention", cached_one_ahead, "off by one: new token i sees one key past its own position"),
    ("cached_attention", cached_reversed, "the mask is reversed"),
    ("cached_attention", cached_unscaled, "not scaled by 1/√D"),
    ("cached_attention", cached_square_mask, "The mask is (T, S), T new queries against all S keys"),
    ("cached_attention", cached_with_weights, "output: expected a torch tensor, got a tuple of length 2"),
]

RIGHT = [
    ("cached_attention", cached_token_by_token),
    ("cached_attention", cached_additive_bias),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)
