"""Fixtures for the checks of lesson 03, course_lib/checks/l03_self_attention_in_pytorch.py: wrong solutions, each with the
diagnosis a learner must see (``WRONG``), and right solutions written differently (``RIGHT``).
tests/test_manifest.py proves that every diagnosis of these checks is triggered by a WRONG fixture and that
every check has a RIGHT one."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_lib import attention
from course_lib.checks import CHECKS
from course_lib.checks._common import mistaken_attention
from verdicts import fixture_tests


def torch_attention(reverse=False, multiply=False, ignore_causal=False, nan_rows=False, detach=False, scale=True):
    def sdpa(query, key, value, attn_mask=None, is_causal=False):
        scores = query @ key.transpose(-2, -1) / (math.sqrt(query.shape[-1]) if scale else 1.0)
        if is_causal and not ignore_causal:
            attn_mask = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool).tril()
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(attn_mask if reverse else ~attn_mask, float("-inf"))
        elif attn_mask is not None:
            scores = scores * attn_mask if multiply else scores + attn_mask
        if nan_rows:
            weights = torch.softmax(scores, dim=-1)
        else:
            weights = attention.masked_softmax(scores)
        output = weights @ value
        return (output.detach(), weights.detach()) if detach else (output, weights)
    return sdpa


class SelfAttentionScaledByModel(attention.SelfAttention):
    def forward(self, x, attn_mask=None):
        q, k, v = self.query(x), self.key(x), self.value(x)
        return attention.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=x.shape[-1] ** -0.5)[0]


class SelfAttentionWithBias(nn.Module):
    def __init__(self, d_model, d_head):
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(d_model, d_head) for _ in range(3))

    def forward(self, x, attn_mask=None):
        return attention.scaled_dot_product_attention(self.query(x), self.key(x), self.value(x), attn_mask)[0]


class SelfAttentionWrongNames(nn.Module):
    def __init__(self, d_model, d_head):
        super().__init__()
        self.W_q, self.W_k, self.W_v = (nn.Linear(d_model, d_head, bias=False) for _ in range(3))


class SelfAttentionIgnoresMask(attention.SelfAttention):
    def forward(self, x, attn_mask=None):
        return super().forward(x)


def torch_sdpa_with_where(query, key, value, attn_mask=None, is_causal=False):
    scores = torch.einsum("...td,...sd->...ts", query, key) * query.shape[-1] ** -0.5
    if is_causal:
        attn_mask = torch.tril(torch.ones(scores.shape[-2:], dtype=torch.bool))
    if attn_mask is not None:
        bias = attn_mask if attn_mask.dtype != torch.bool else torch.zeros_like(attn_mask, dtype=scores.dtype).masked_fill(~attn_mask, -math.inf)
        scores = scores + bias
    weights = torch.softmax(scores, dim=-1)
    weights = torch.where(torch.isnan(weights), torch.zeros_like(weights), weights)
    return weights @ value, weights


class Projections(nn.Module):
    """The three projections the SelfAttention exercise asks for; subclasses say what attends."""

    def __init__(self, d_model, d_head):
        super().__init__()
        self.query = nn.Linear(d_model, d_head, bias=False)
        self.key = nn.Linear(d_model, d_head, bias=False)
        self.value = nn.Linear(d_model, d_head, bias=False)


class SelfAttentionEinsum(Projections):
    """Scores by einsum and the mask applied with where: a different route to the same numbers."""

    def forward(self, x, attn_mask=None):
        q, k, v = self.query(x), self.key(x), self.value(x)  # (B, T, d_head) each
        scores = torch.einsum("btd,bsd->bts", q, k) / q.shape[-1] ** 0.5  # (B, T, T)
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            scores = torch.where(attn_mask, scores, torch.tensor(float("-inf"), dtype=scores.dtype))  # (B, T, T)
        elif attn_mask is not None:
            scores = scores + attn_mask  # (B, T, T)
        return torch.softmax(scores, dim=-1) @ v  # (B, T, d_head)


class SelfAttentionFused(Projections):
    """Calls torch's own fused attention for the output: right numbers, but the job is torch's (library-call)."""

    def forward(self, x, attn_mask=None):
        return nn.functional.scaled_dot_product_attention(self.query(x), self.key(x), self.value(x), attn_mask=attn_mask)


class FusedProjections(Projections):
    def attend(self, query, key, value, mask):
        return nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)


class SelfAttentionThroughItsBase(FusedProjections):
    """torch's attention in a method of a base class the learner wrote."""

    def forward(self, x, attn_mask=None):
        return self.attend(self.query(x), self.key(x), self.value(x), attn_mask)


blend = torch.nn.functional.scaled_dot_product_attention  # an alias at top level, as a notebook cell might make


def attend_with_the_alias(query, key, value, mask):
    return blend(query, key, value, attn_mask=mask)


def sdpa_through_a_helper(query, key, value, attn_mask=None, is_causal=False):
    return attend_with_the_alias(query, key, value, attn_mask), None


WRONG = [
    ("sdpa", torch_attention(reverse=True), "meaning is reversed"),
    ("sdpa", torch_attention(multiply=True), "added to the scores"),
    ("sdpa", torch_attention(ignore_causal=True), "is_causal=True is ignored"),
    ("sdpa", torch_attention(nan_rows=True), "gives NaN"),
    ("sdpa", torch_attention(scale=False), "not scaled"),
    ("sdpa", torch_attention(detach=True), "not connected to autograd"),
    ("sdpa", mistaken_attention(after_softmax=True), "after the softmax"),
    ("sdpa", mistaken_attention(add_bool=True), "added to the scores as numbers"),
    ("sdpa", mistaken_attention(large_negative=True), "large negative number"),
    ("SelfAttention", SelfAttentionScaledByModel, "√d_head"),
    ("SelfAttention", SelfAttentionWithBias, "has a bias"),
    ("SelfAttention", SelfAttentionWrongNames, "should be an nn.Linear"),
    ("SelfAttention", SelfAttentionIgnoresMask, "attn_mask is ignored"),
]

RIGHT = [
    ("sdpa", torch_sdpa_with_where),
    ("SelfAttention", SelfAttentionEinsum),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)


@pytest.mark.parametrize("name, function, says", [
    ("SelfAttention", SelfAttentionFused, "`scaled_dot_product_attention` (in `forward`)"),
    ("SelfAttention", SelfAttentionThroughItsBase, "`scaled_dot_product_attention` (in `attend`)"),
    ("sdpa", sdpa_through_a_helper, "`scaled_dot_product_attention` (`blend` in `attend_with_the_alias`)"),
])
def test_the_check_cell_says_when_a_library_function_does_the_job(name, function, says):
    result = CHECKS[name].run(function)
    assert result.status == "library-call" and says in result.message, result.message
