"""Fixtures for the checks of lesson 03, course_lib/checks/l03_self_attention_in_pytorch.py: wrong solutions, each with the
diagnosis a learner must see (``WRONG``), and right solutions written differently (``RIGHT``).
tests/test_manifest.py proves that every diagnosis of these checks is triggered by a WRONG fixture and that
every check has a RIGHT one. Each wrong solution is written the way a learner writes it (on the exercise's
pattern: scores, masks, then a softmax that gives a fully masked row zeros), not by calling the check's own
simulator (a fixture that did could never fail)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_lib.checks import CHECKS
from verdicts import fixture_tests


def scaled_scores(query, key):
    return query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])  # (..., T, S)


def causal(query, key):
    return torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool).tril()  # (T, S)


def with_the_masks(scores, attn_mask=None, is_causal=False):
    """The exercise's mask step, right: the causal, boolean or float mask applied to the scores (..., T, S)."""
    if is_causal:
        attn_mask = torch.ones(scores.shape[-2:], dtype=torch.bool).tril()  # (T, S)
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        return scores.masked_fill(~attn_mask, float("-inf"))
    if attn_mask is not None:
        return scores + attn_mask
    return scores


def masked_scores(query, key, attn_mask=None, is_causal=False):
    """The exercise's first steps, right: scaled scores, then the masks."""
    return with_the_masks(scaled_scores(query, key), attn_mask, is_causal)  # (..., T, S)


def zero_safe_softmax(scores):
    """The exercise's softmax over keys: a query with no key left (a row of -inf) gets zeros, not NaN."""
    has_key = (scores > float("-inf")).any(dim=-1, keepdim=True)  # (..., T, 1)
    return torch.softmax(scores.masked_fill(~has_key, 0.0), dim=-1) * has_key  # (..., T, S)


# sdpa: wrong -------------------------------------------------------------------------------------------------

def sdpa_mask_reversed(query, key, value, attn_mask=None, is_causal=False):
    scores = scaled_scores(query, key)
    if is_causal:
        attn_mask = causal(query, key)
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = scores.masked_fill(attn_mask, float("-inf"))  # "fill where the mask is"
    else:
        scores = with_the_masks(scores, attn_mask)
    weights = zero_safe_softmax(scores)
    return weights @ value, weights


def scores_with_the_float_mask_multiplied(query, key, attn_mask=None, is_causal=False):
    if attn_mask is not None and attn_mask.dtype != torch.bool:
        return scaled_scores(query, key) * attn_mask  # where scores + attn_mask was meant
    return masked_scores(query, key, attn_mask, is_causal)


def sdpa_float_mask_multiplied(query, key, value, attn_mask=None, is_causal=False):
    weights = zero_safe_softmax(scores_with_the_float_mask_multiplied(query, key, attn_mask, is_causal))
    return weights @ value, weights


def sdpa_float_mask_multiplied_total_never_zero(query, key, value, attn_mask=None, is_causal=False):
    scores = scores_with_the_float_mask_multiplied(query, key, attn_mask, is_causal)
    largest = scores.amax(dim=-1, keepdim=True)
    exps = torch.exp(scores - torch.where(torch.isfinite(largest), largest, torch.zeros_like(largest)))
    totals = exps.sum(dim=-1, keepdim=True)
    weights = exps / torch.where(totals > 0, totals, torch.ones_like(totals))  # a total that is never 0
    return weights @ value, weights


def sdpa_mask_after_softmax(query, key, value, attn_mask=None, is_causal=False):
    if is_causal:
        attn_mask = causal(query, key)
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        weights = torch.softmax(scaled_scores(query, key), dim=-1) * attn_mask  # masked weights are 0 ...
    else:
        weights = zero_safe_softmax(masked_scores(query, key, attn_mask))
    return weights @ value, weights


def sdpa_every_mask_added(query, key, value, attn_mask=None, is_causal=False):
    if is_causal:
        attn_mask = causal(query, key)
    scores = scaled_scores(query, key)
    if attn_mask is not None:
        scores = scores + attn_mask  # a boolean mask too, as 1 and 0
    weights = zero_safe_softmax(scores)
    return weights @ value, weights


def sdpa_large_negative(query, key, value, attn_mask=None, is_causal=False):
    scores = scaled_scores(query, key)
    if is_causal:
        attn_mask = causal(query, key)
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attn_mask, -1e9)  # "minus a lot" where hidden
    else:
        scores = with_the_masks(scores, attn_mask)
    weights = zero_safe_softmax(scores)
    return weights @ value, weights


def sdpa_causal_ignored(query, key, value, attn_mask=None, is_causal=False):
    weights = zero_safe_softmax(masked_scores(query, key, attn_mask))
    return weights @ value, weights


def sdpa_causal_upper_triangle(query, key, value, attn_mask=None, is_causal=False):
    if is_causal:
        attn_mask = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool).triu()
    weights = zero_safe_softmax(masked_scores(query, key, attn_mask))
    return weights @ value, weights


def sdpa_unscaled(query, key, value, attn_mask=None, is_causal=False):
    scores = query @ key.transpose(-2, -1)  # no / sqrt(D)
    weights = zero_safe_softmax(with_the_masks(scores, attn_mask, is_causal))
    return weights @ value, weights


def sdpa_softmax_over_queries(query, key, value, attn_mask=None, is_causal=False):
    weights = torch.softmax(masked_scores(query, key, attn_mask, is_causal), dim=-2)
    return weights @ value, weights


def sdpa_nan_rows(query, key, value, attn_mask=None, is_causal=False):
    weights = torch.softmax(masked_scores(query, key, attn_mask, is_causal), dim=-1)
    return weights @ value, weights


def sdpa_detached(query, key, value, attn_mask=None, is_causal=False):
    output, weights = sdpa_with_where(query, key, value, attn_mask, is_causal)
    return output.detach(), weights.detach()


def sdpa_finfo_min_additive(query, key, value, attn_mask=None, is_causal=False):
    scores = scaled_scores(query, key)
    if is_causal:
        attn_mask = causal(query, key)
    if attn_mask is not None and attn_mask.dtype == torch.bool:  # Hugging Face's way: an additive mask
        attn_mask = (~attn_mask).to(scores.dtype) * torch.finfo(scores.dtype).min
    if attn_mask is not None:
        scores = scores + attn_mask
    weights = torch.softmax(scores, dim=-1)
    return weights @ value, weights


def sdpa_times_root_d(query, key, value, attn_mask=None, is_causal=False):
    scores = query @ key.transpose(-2, -1) * math.sqrt(query.shape[-1])  # × where ÷ was meant
    weights = zero_safe_softmax(with_the_masks(scores, attn_mask, is_causal))
    return weights @ value, weights


def sdpa_over_root_keys(query, key, value, attn_mask=None, is_causal=False):
    scores = query @ key.transpose(-2, -1) / math.sqrt(key.shape[-2])  # S, the number of keys
    weights = zero_safe_softmax(with_the_masks(scores, attn_mask, is_causal))
    return weights @ value, weights


def sdpa_over_root_value_dim(query, key, value, attn_mask=None, is_causal=False):
    scores = query @ key.transpose(-2, -1) / value.shape[-1] ** 0.5  # Dv, the values' size
    weights = zero_safe_softmax(with_the_masks(scores, attn_mask, is_causal))
    return weights @ value, weights


def sdpa_returns_scores(query, key, value, attn_mask=None, is_causal=False):
    scores = masked_scores(query, key, attn_mask, is_causal)
    weights = zero_safe_softmax(scores)
    return weights @ value, scores  # the scores where the weights were meant


def sdpa_returns_unnormalised_exps(query, key, value, attn_mask=None, is_causal=False):
    scores = masked_scores(query, key, attn_mask, is_causal)
    exps = torch.exp(scores - scores.amax(dim=-1, keepdim=True).clamp_min(-1e30))
    weights = exps / exps.sum(dim=-1, keepdim=True).clamp_min(1e-30)
    return weights @ value, exps  # the numerators, not the weights


def sdpa_scores_times_mask(query, key, value, attn_mask=None, is_causal=False):
    scores = scaled_scores(query, key)
    if is_causal:
        attn_mask = causal(query, key)
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = scores * attn_mask  # "zero the hidden scores"
    elif attn_mask is not None:
        scores = scores + attn_mask
    weights = zero_safe_softmax(scores)
    return weights @ value, weights


def sdpa_float_mask_as_bool(query, key, value, attn_mask=None, is_causal=False):
    if is_causal:
        attn_mask = causal(query, key)
    scores = scaled_scores(query, key)
    if attn_mask is not None:
        scores = scores.masked_fill(attn_mask == 0, float("-inf"))  # every mask read as "0 = hidden"
    weights = zero_safe_softmax(scores)
    return weights @ value, weights


def sdpa_float_mask_bias_dropped(query, key, value, attn_mask=None, is_causal=False):
    if attn_mask is not None and attn_mask.dtype != torch.bool:
        attn_mask = attn_mask != float("-inf")  # True where the key may be attended; the 1.5 is lost
    weights = zero_safe_softmax(masked_scores(query, key, attn_mask, is_causal))
    return weights @ value, weights


def sdpa_causal_without_diagonal(query, key, value, attn_mask=None, is_causal=False):
    if is_causal:
        rows = torch.arange(query.shape[-2])[:, None]  # (T, 1)
        columns = torch.arange(key.shape[-2])[None, :]  # (1, S)
        attn_mask = columns < rows  # j < i: the diagonal left out
    weights = zero_safe_softmax(masked_scores(query, key, attn_mask))
    return weights @ value, weights


def sdpa_causal_without_diagonal_nan(query, key, value, attn_mask=None, is_causal=False):
    if is_causal:
        attn_mask = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool).tril(diagonal=-1)
    weights = torch.softmax(masked_scores(query, key, attn_mask), dim=-1)  # query 0: a row of -inf, NaN
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        weights = torch.where(attn_mask.any(-1, keepdim=True), weights, torch.zeros_like(weights))
    return weights @ value, weights


def sdpa_causal_bottom_right(query, key, value, attn_mask=None, is_causal=False):
    if is_causal:
        num_queries, num_keys = query.shape[-2], key.shape[-2]
        attn_mask = torch.ones(num_queries, num_keys, dtype=torch.bool).tril(diagonal=num_keys - num_queries)
    weights = zero_safe_softmax(masked_scores(query, key, attn_mask))
    return weights @ value, weights


def sdpa_key_T(query, key, value, attn_mask=None, is_causal=False):
    scores = query @ key.T / math.sqrt(query.shape[-1])  # .T reverses every axis of a 3-D key
    weights = zero_safe_softmax(with_the_masks(scores, attn_mask, is_causal))
    return weights @ value, weights


def sdpa_causal_square(query, key, value, attn_mask=None, is_causal=False):
    if is_causal:
        length = query.shape[-2]
        attn_mask = torch.ones(length, length, dtype=torch.bool).tril()  # (T, T): S forgotten
    weights = zero_safe_softmax(masked_scores(query, key, attn_mask))
    return weights @ value, weights


# sdpa: right -------------------------------------------------------------------------------------------------

def sdpa_with_where(query, key, value, attn_mask=None, is_causal=False):
    scores = torch.einsum("...td,...sd->...ts", query, key) * query.shape[-1] ** -0.5
    if is_causal:
        attn_mask = torch.tril(torch.ones(scores.shape[-2:], dtype=torch.bool))
    if attn_mask is not None:
        bias = attn_mask if attn_mask.dtype != torch.bool else torch.zeros_like(attn_mask, dtype=scores.dtype).masked_fill(~attn_mask, -math.inf)
        scores = scores + bias
    weights = torch.softmax(scores, dim=-1)
    weights = torch.where(torch.isnan(weights), torch.zeros_like(weights), weights)
    return weights @ value, weights


def sdpa_large_negative_with_zero_rows(query, key, value, attn_mask=None, is_causal=False):
    """-1e9 for hidden keys, and the rows with no key left set to zero: right (only the fill differs)."""
    scores = scaled_scores(query, key)  # (..., T, S)
    if is_causal:
        attn_mask = causal(query, key)
    allowed = None
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        allowed = attn_mask.any(dim=-1, keepdim=True)  # (..., T, 1)
        scores = scores.masked_fill(~attn_mask, -1e9)
    elif attn_mask is not None:
        scores = scores + attn_mask
    weights = zero_safe_softmax(scores)  # (..., T, S)
    if allowed is not None:
        weights = weights * allowed  # a query with no key allowed gets zeros
    return weights @ value, weights


# SelfAttention: wrong (most on the wrong sdpa above, as a layer calls the learner's own) -----------------------

class Projections(nn.Module):
    """The three projections the SelfAttention exercise asks for; subclasses say what attends."""

    def __init__(self, d_model, d_head):
        super().__init__()
        self.query = nn.Linear(d_model, d_head, bias=False)
        self.key = nn.Linear(d_model, d_head, bias=False)
        self.value = nn.Linear(d_model, d_head, bias=False)


class SelfAttentionScaledByModel(Projections):
    def forward(self, x, attn_mask=None):
        q, k, v = self.query(x), self.key(x), self.value(x)
        scores = q @ k.transpose(-2, -1) / math.sqrt(x.shape[-1])  # d_model, where d_head was meant
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        return zero_safe_softmax(scores) @ v


class SelfAttentionProjectsWithoutGrad(Projections):
    """Right numbers, but the projections run under torch.no_grad(), as if the layer were only ever evaluated."""

    def forward(self, x, attn_mask=None):
        with torch.no_grad():
            q, k, v = self.query(x), self.key(x), self.value(x)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        return zero_safe_softmax(scores) @ v


class SelfAttentionUnscaled(Projections):
    def forward(self, x, attn_mask=None):
        return sdpa_unscaled(self.query(x), self.key(x), self.value(x), attn_mask)[0]


class SelfAttentionSoftmaxOverQueries(Projections):
    def forward(self, x, attn_mask=None):
        return sdpa_softmax_over_queries(self.query(x), self.key(x), self.value(x), attn_mask)[0]


class SelfAttentionIgnoresMask(Projections):
    def forward(self, x, attn_mask=None):
        return sdpa_with_where(self.query(x), self.key(x), self.value(x))[0]


class SelfAttentionMaskReversed(Projections):
    def forward(self, x, attn_mask=None):
        return sdpa_mask_reversed(self.query(x), self.key(x), self.value(x), attn_mask)[0]


class SelfAttentionWithBias(nn.Module):
    def __init__(self, d_model, d_head):
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(d_model, d_head) for _ in range(3))

    def forward(self, x, attn_mask=None):
        return sdpa_with_where(self.query(x), self.key(x), self.value(x), attn_mask)[0]


class SelfAttentionWrongNames(nn.Module):
    def __init__(self, d_model, d_head):
        super().__init__()
        self.W_q, self.W_k, self.W_v = (nn.Linear(d_model, d_head, bias=False) for _ in range(3))


class SelfAttentionKeysT(Projections):
    def forward(self, x, attn_mask=None):
        queries, keys, values = self.query(x), self.key(x), self.value(x)  # (B, T, d_head) each
        scores = queries @ keys.T / math.sqrt(queries.shape[-1])  # keys.T is (d_head, T, B)
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        return zero_safe_softmax(scores) @ values


class SelfAttentionTimesWeights(Projections):
    def forward(self, x, attn_mask=None):
        queries = x @ self.query.weight  # the weight is (d_head, d_model): this needs .T
        keys, values = x @ self.key.weight, x @ self.value.weight
        return sdpa_with_where(queries, keys, values, attn_mask)[0]


class SelfAttentionQueriesAndKeysSwapped(Projections):
    def forward(self, x, attn_mask=None):
        queries, keys, values = self.query(x), self.key(x), self.value(x)
        scores = keys @ queries.transpose(-2, -1) / math.sqrt(queries.shape[-1])  # (B, S, T) read as (B, T, S)
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        return zero_safe_softmax(scores) @ values


class SelfAttentionKeysFromQuery(Projections):
    def forward(self, x, attn_mask=None):
        return sdpa_with_where(self.query(x), self.query(x), self.value(x), attn_mask)[0]  # self.key unused


class SelfAttentionValuesFromKey(Projections):
    def forward(self, x, attn_mask=None):
        return sdpa_with_where(self.query(x), self.key(x), self.key(x), attn_mask)[0]  # self.value unused


# SelfAttention: right ----------------------------------------------------------------------------------------

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


class SelfAttentionThroughTheSdpa(Projections):
    """The exercise's way: the layer calls the learner's own sdpa."""

    def forward(self, x, attn_mask=None):
        output, _ = sdpa_with_where(self.query(x), self.key(x), self.value(x), attn_mask=attn_mask)
        return output  # (B, T, d_head)


# Doing the job with torch's attention: the check cell says so ------------------------------------------------

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


def sdpa_negative_bias_hides(query, key, value, attn_mask=None, is_causal=False):
    """Treats a float mask as 'negative = masked': fine for 0/-inf masks, wrong for a finite negative bias."""
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    if is_causal:
        attn_mask = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool).tril()
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    elif attn_mask is not None:
        scores = torch.where(attn_mask < 0, torch.full_like(scores, float("-inf")), scores + attn_mask)
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return weights @ value, weights


WRONG = [
    ("SelfAttention", SelfAttentionProjectsWithoutGrad, "your output is not connected to autograd"),
    ("sdpa", sdpa_negative_bias_hides, "negative numbers hide their keys"),
    ("sdpa", sdpa_mask_reversed, "meaning is reversed"),
    ("sdpa", sdpa_float_mask_multiplied, "added to the scores (it holds 0 or -inf, or a bias), not multiplied"),
    ("sdpa", sdpa_float_mask_multiplied_total_never_zero, "added to the scores (it holds 0 or -inf, or a bias)"),
    ("sdpa", sdpa_mask_after_softmax, "after the softmax"),
    ("sdpa", sdpa_every_mask_added, "added to the scores as numbers"),
    ("sdpa", sdpa_large_negative, "this is the large-negative mask convention"),
    ("sdpa", sdpa_finfo_min_additive, "this is the large-negative mask convention"),
    ("sdpa", sdpa_times_root_d, "you multiplied the scores by √D"),
    ("sdpa", sdpa_over_root_keys, "number of keys S"),
    ("sdpa", sdpa_over_root_value_dim, "values' size Dv"),
    ("sdpa", sdpa_returns_scores, "you returned the scores (before the softmax) as the weights"),
    ("sdpa", sdpa_returns_unnormalised_exps, "the weights you return are not the softmax weights"),
    ("sdpa", sdpa_scores_times_mask, "multiplied into the scores (scores * attn_mask)"),
    ("sdpa", sdpa_float_mask_as_bool, "read as a boolean one"),
    ("sdpa", sdpa_float_mask_bias_dropped, "a bias such as 1.5) are dropped"),
    ("sdpa", sdpa_causal_without_diagonal, "hides the diagonal"),
    ("sdpa", sdpa_causal_without_diagonal_nan, "hides the diagonal"),
    ("sdpa", sdpa_causal_bottom_right, "this is the bottom-right causal convention (flash-attn >= 2.1, Hugging Face)"),
    ("sdpa", sdpa_key_T, "key.T reverses all of them"),
    ("sdpa", sdpa_causal_square, "the causal mask is (T, S)"),
    ("sdpa", sdpa_causal_ignored, "is_causal=True is ignored"),
    ("sdpa", sdpa_causal_upper_triangle, "see the future"),
    ("sdpa", sdpa_unscaled, "not scaled"),
    ("sdpa", sdpa_softmax_over_queries, "softmax over the wrong dimension"),
    ("sdpa", sdpa_nan_rows, "gives NaN"),
    ("sdpa", sdpa_detached, "not connected to autograd"),
    ("SelfAttention", SelfAttentionScaledByModel, "you scaled by √d_model"),
    ("SelfAttention", SelfAttentionUnscaled, "not scaled by 1/√d_head"),
    ("SelfAttention", SelfAttentionSoftmaxOverQueries, "softmax over the wrong dimension"),
    ("SelfAttention", SelfAttentionIgnoresMask, "attn_mask is ignored"),
    ("SelfAttention", SelfAttentionMaskReversed, "meaning is reversed"),
    ("SelfAttention", SelfAttentionWithBias, "has a bias"),
    ("SelfAttention", SelfAttentionWrongNames, "should be an nn.Linear"),
    ("SelfAttention", SelfAttentionKeysT, "keys.T reverses all three axes"),
    ("SelfAttention", SelfAttentionQueriesAndKeysSwapped, "your scores are keys @ queries^T"),
    ("SelfAttention", SelfAttentionKeysFromQuery, "your keys come from self.query"),
    ("SelfAttention", SelfAttentionValuesFromKey, "your values come from self.key"),
    ("SelfAttention", SelfAttentionTimesWeights, "Call the layers"),
]

RIGHT = [
    ("sdpa", sdpa_with_where),
    ("sdpa", sdpa_large_negative_with_zero_rows),
    ("SelfAttention", SelfAttentionEinsum),
    ("SelfAttention", SelfAttentionThroughTheSdpa),
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
