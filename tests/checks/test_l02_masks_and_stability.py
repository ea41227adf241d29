"""Fixtures for the checks of lesson 02, course_lib/checks/l02_masks_and_stability.py: wrong solutions, each with the
diagnosis a learner must see (``WRONG``), and right solutions written differently (``RIGHT``).
tests/test_manifest.py proves that every diagnosis of these checks is triggered by a WRONG fixture and that
every check has a RIGHT one. Each wrong solution is written the way a learner writes it, with what the exercise
gives: lesson 01's ``attention_scores`` and a stable softmax that still gives NaN on a row of -inf."""
from __future__ import annotations

import math

import numpy as np

from course_lib.numpy_attention import attention_scores  # what the exercise imports
from verdicts import fixture_tests


def given_softmax(x, axis=-1):
    """The exercise's softmax: stable, but a row that is entirely -inf gives NaN (-inf - -inf)."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    exps = np.exp(shifted)
    return exps / np.sum(exps, axis=axis, keepdims=True)


# causal_mask: wrong, then right ------------------------------------------------------------------------------

def causal_reversed(n):
    return np.triu(np.ones((n, n), dtype=bool), k=1)  # True = "hidden": the future


def causal_int(n):
    return np.tril(np.ones((n, n), dtype=int))


def causal_no_diagonal(n):
    return np.arange(n)[:, None] > np.arange(n)[None, :]  # j < i


def causal_upper(n):
    return np.arange(n)[:, None] <= np.arange(n)[None, :]  # j >= i


def causal_loop(n):
    mask = np.zeros((n, n), dtype=bool)
    for i in range(n):
        mask[i, : i + 1] = True
    return mask


def causal_compare(n):
    return np.arange(n)[:, None] >= np.arange(n)[None, :]


# padding_mask: wrong, then right -----------------------------------------------------------------------------

def padding_reversed(lengths, n):
    return np.arange(n)[None, :] >= np.asarray(lengths)[:, None]  # True on the padding


def padding_off_by_one(lengths, n):
    return np.array([[position <= length for position in range(n)] for length in lengths])


def padding_transposed(lengths, n):
    return np.arange(n)[:, None] < np.asarray(lengths)[None, :]  # (n, B)


def padding_on_the_left(lengths, n):
    lengths = np.asarray(lengths)
    return np.arange(n)[None, :] >= (n - lengths)[:, None]  # the real tokens at the end


def padding_to_the_longest(lengths, n):
    lengths = np.asarray(lengths)
    return np.arange(max(lengths))[None, :] < lengths[:, None]


def padding_lengths_not_converted(lengths, n):
    return np.arange(n)[None, :] < lengths[:, None]


def padding_loop(lengths, n):
    return np.array([[position < length for position in range(n)] for length in lengths], dtype=bool)


# masked_attention: wrong -------------------------------------------------------------------------------------

def masked_after_softmax(q, k, v, mask):
    weights = given_softmax(attention_scores(q, k)) * mask
    return weights @ v, weights


def masked_reversed(queries, keys, values, mask):
    scores = np.where(mask, -np.inf, attention_scores(queries, keys))  # True read as "hide"
    visible = np.any(~mask, axis=-1, keepdims=True)
    weights = given_softmax(np.where(visible, scores, 0.0)) * visible
    return weights @ values, weights


def masked_reversed_nan_rows(queries, keys, values, mask):
    weights = given_softmax(np.where(mask, -np.inf, attention_scores(queries, keys)))
    return weights @ values, weights


def masked_nan_rows(q, k, v, mask):
    weights = given_softmax(np.where(mask, attention_scores(q, k), -np.inf))
    return weights @ v, weights


def masked_times_inf(q, k, v, mask):
    scores = attention_scores(q, k) + (1 - mask) * -np.inf  # the additive mask of the papers, by arithmetic
    weights = given_softmax(scores)
    return weights @ v, weights


def masked_large_negative(q, k, v, mask):
    weights = given_softmax(np.where(mask, attention_scores(q, k), -1e9))
    return weights @ v, weights


def masked_fill_finfo_min(queries, keys, values, mask):
    scores = np.where(mask, attention_scores(queries, keys), np.finfo(np.float64).min)  # Hugging Face's fill
    weights = given_softmax(scores)
    return weights @ values, weights


def masked_hugging_face_additive(queries, keys, values, mask):
    scores = attention_scores(queries, keys) + (1.0 - mask) * np.finfo(np.float64).min  # added, not filled
    weights = given_softmax(scores)
    return weights @ values, weights


def masked_bert_additive(queries, keys, values, mask):
    scores = attention_scores(queries, keys) + (1.0 - mask) * -10000.0  # the original BERT's adder
    weights = given_softmax(scores)
    return weights @ values, weights


def masked_unscaled(queries, keys, values, mask):
    scores = np.where(mask, queries @ np.swapaxes(keys, -1, -2), -np.inf)  # no / sqrt(D)
    allowed = np.any(mask, axis=-1, keepdims=True)
    weights = given_softmax(np.where(allowed, scores, 0.0)) * allowed
    return weights @ values, weights


def masked_softmax_over_queries(queries, keys, values, mask):
    weights = given_softmax(np.where(mask, attention_scores(queries, keys), -np.inf), axis=0)
    return weights @ values, weights


def masked_without_softmax(queries, keys, values, mask):
    weights = np.where(mask, attention_scores(queries, keys), -np.inf)
    return weights @ values, weights


def masked_keys_transposed_only_when_the_shapes_clash(queries, keys, values, mask):
    if queries.shape[-1] != keys.shape[-2]:  # "make the shapes fit": square keys are left as they are
        keys = np.swapaxes(keys, -1, -2)
    scores = np.where(mask, queries @ keys / np.sqrt(queries.shape[-1]), -np.inf)
    allowed = np.any(mask, axis=-1, keepdims=True)
    weights = given_softmax(np.where(allowed, scores, 0.0)) * allowed
    return weights @ values, weights


def masked_after_softmax_renormalised(queries, keys, values, mask):
    weights = given_softmax(attention_scores(queries, keys)) * mask
    weights = weights / weights.sum(axis=-1, keepdims=True)  # renormalise what is left
    return weights @ values, weights


def masked_by_multiplying_the_scores(queries, keys, values, mask):
    scores = attention_scores(queries, keys) * mask  # "zero out" the hidden scores
    weights = given_softmax(scores)
    weights = weights * np.any(mask, axis=-1, keepdims=True)  # fully masked rows handled
    return weights @ values, weights


def masked_additive_inf_then_nan_to_num(queries, keys, values, mask):
    scores = attention_scores(queries, keys) + (1 - mask) * -np.inf
    weights = np.nan_to_num(given_softmax(scores))  # "no NaN, as the exercise asks"
    return weights @ values, weights


def masked_additive_inf_scores_nan_to_num(queries, keys, values, mask):
    scores = np.nan_to_num(attention_scores(queries, keys) + (1 - mask) * -np.inf)
    weights = given_softmax(scores) * np.any(mask, axis=-1, keepdims=True)
    return weights @ values, weights


def masked_adds_a_query_axis(queries, keys, values, mask):
    mask = mask[..., None, :]  # "a padding mask needs a query axis"
    scores = np.where(mask, attention_scores(queries, keys), -np.inf)
    allowed = np.any(mask, axis=-1, keepdims=True)
    weights = given_softmax(np.where(allowed, scores, 0.0)) * allowed
    return weights @ values, weights


def masked_expands_a_padding_mask(queries, keys, values, mask):
    scores = attention_scores(queries, keys)  # (..., T, S)
    mask = np.broadcast_to(mask[:, None, :], scores.shape)  # written for a (B, S) padding mask
    allowed = np.any(mask, axis=-1, keepdims=True)
    weights = given_softmax(np.where(mask & allowed, scores, np.where(allowed, -np.inf, 0.0))) * allowed
    return weights @ values, weights


def masked_returns_the_masked_scores(queries, keys, values, mask):
    scores = np.where(mask, attention_scores(queries, keys), -np.inf)
    allowed = np.any(mask, axis=-1, keepdims=True)
    weights = given_softmax(np.where(allowed, scores, 0.0)) * allowed
    return weights @ values, scores


def masked_times_sqrt_d(queries, keys, values, mask):
    scores = np.where(mask, queries @ np.swapaxes(keys, -1, -2) * np.sqrt(queries.shape[-1]), -np.inf)
    allowed = np.any(mask, axis=-1, keepdims=True)
    weights = given_softmax(np.where(allowed, scores, 0.0)) * allowed
    return weights @ values, weights


def masked_by_sqrt_of_num_keys(queries, keys, values, mask):
    scores = np.where(mask, queries @ np.swapaxes(keys, -1, -2) / np.sqrt(keys.shape[-2]), -np.inf)  # sqrt(S)
    allowed = np.any(mask, axis=-1, keepdims=True)
    weights = given_softmax(np.where(allowed, scores, 0.0)) * allowed
    return weights @ values, weights


def masked_times_keys(queries, keys, values, mask):
    scores = np.where(mask, attention_scores(queries, keys), -np.inf)
    allowed = np.any(mask, axis=-1, keepdims=True)
    weights = given_softmax(np.where(allowed, scores, 0.0)) * allowed
    return weights @ keys, weights


def masked_zeroes_only_the_output(queries, keys, values, mask):
    scores = np.where(mask, attention_scores(queries, keys), -np.inf)
    allowed = np.any(mask, axis=-1, keepdims=True)
    weights = given_softmax(np.where(allowed, scores, 0.0))  # fully masked rows: uniform dummy weights
    return (weights * allowed) @ values, weights  # zeroed for the output only


def masked_by_boolean_indexing(queries, keys, values, mask):
    scores = attention_scores(queries, keys)
    scores[~mask] = -np.inf  # works while the mask has the scores' shape
    weights = np.nan_to_num(given_softmax(scores))
    return weights @ values, weights


def masked_by_putmask(queries, keys, values, mask):
    scores = attention_scores(queries, keys)
    np.putmask(scores, ~mask, -np.inf)
    allowed = np.any(mask, axis=-1, keepdims=True)
    weights = given_softmax(np.where(allowed, scores, 0.0)) * allowed
    return weights @ values, weights


def masked_cleans_only_the_output(queries, keys, values, mask):
    with np.errstate(invalid="ignore"):
        weights = given_softmax(np.where(mask, attention_scores(queries, keys), -np.inf))
    return np.nan_to_num(weights @ values), weights  # the NaN of fully masked rows stays in the weights


def masked_exponentials_only(queries, keys, values, mask):
    scores = np.where(mask, attention_scores(queries, keys), -np.inf)
    allowed = np.any(mask, axis=-1, keepdims=True)
    scores = np.where(allowed, scores, 0.0)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True)) * allowed  # the division forgotten
    return weights @ values, weights


# masked_attention: right -------------------------------------------------------------------------------------

def masked_with_nan_to_num(q, k, v, mask):
    scores = np.where(mask, np.einsum("...td,...sd->...ts", q, k) / math.sqrt(q.shape[-1]), -np.inf)
    with np.errstate(invalid="ignore"):
        e = np.exp(scores - scores.max(-1, keepdims=True))
        weights = np.nan_to_num(e / e.sum(-1, keepdims=True))
    return weights @ v, weights


def masked_with_a_total_never_zero(queries, keys, values, mask):
    scores = attention_scores(queries, keys)  # (..., T, S)
    exps = np.where(mask, np.exp(scores - scores.max(axis=-1, keepdims=True)), 0.0)  # (..., T, S)
    totals = exps.sum(axis=-1, keepdims=True)  # (..., T, 1); 0 where everything is masked
    weights = exps / np.where(totals > 0, totals, 1.0)
    return weights @ values, weights


def masked_where_after_the_softmax(queries, keys, values, mask):
    with np.errstate(invalid="ignore"):
        weights = given_softmax(np.where(mask, attention_scores(queries, keys), -np.inf))  # NaN in fully masked rows
    weights = np.where(mask, weights, 0.0)  # a fully masked row has no True: all of it becomes 0
    return weights @ values, weights


def masked_finfo_min_then_zeroed(queries, keys, values, mask):
    scores = np.where(mask, attention_scores(queries, keys), np.finfo(np.float64).min)
    weights = given_softmax(scores) * np.any(mask, axis=-1, keepdims=True)  # fully masked rows -> 0
    return weights @ values, weights


def masked_by_adding_the_log_of_the_mask(queries, keys, values, mask):
    with np.errstate(divide="ignore"):
        scores = attention_scores(queries, keys) + np.log(mask.astype(float))  # log 1 = 0, log 0 = -inf
    allowed = np.isfinite(scores).any(axis=-1, keepdims=True)
    weights = given_softmax(np.where(allowed, scores, 0.0)) * allowed
    return weights @ values, weights


def masked_large_negative_then_zeroed(queries, keys, values, mask):
    weights = given_softmax(np.where(mask, attention_scores(queries, keys), -1e9)) * mask  # uniform rows -> 0
    return weights @ values, weights


WRONG = [
    ("causal_mask", causal_reversed, "meaning is reversed"),
    ("causal_mask", causal_int, "expected a boolean array"),
    ("causal_mask", causal_no_diagonal, "diagonal is missing"),
    ("causal_mask", causal_upper, "upper triangle"),
    ("padding_mask", padding_reversed, "meaning is reversed"),
    ("padding_mask", padding_off_by_one, "off by one"),
    ("padding_mask", padding_transposed, "transposed"),
    ("padding_mask", padding_on_the_left, "this is the left-padding convention"),
    ("padding_mask", padding_to_the_longest, "max(lengths) columns"),
    ("padding_mask", padding_lengths_not_converted, "lengths = np.asarray(lengths)"),
    ("masked_attention", masked_after_softmax, "after the softmax"),
    ("masked_attention", masked_reversed, "meaning is reversed"),
    ("masked_attention", masked_reversed_nan_rows, "meaning is reversed"),
    ("masked_attention", masked_nan_rows, "gives NaN"),
    ("masked_attention", masked_times_inf, "0 * -inf"),
    ("masked_attention", masked_large_negative, "this is the additive large-negative mask convention"),
    ("masked_attention", masked_fill_finfo_min, "this is the additive large-negative mask convention"),
    ("masked_attention", masked_bert_additive, "this is the additive large-negative mask convention"),
    ("masked_attention", masked_hugging_face_additive, "this is the additive large-negative mask convention"),
    ("masked_attention", masked_unscaled, "not scaled by 1/√D"),
    ("masked_attention", masked_softmax_over_queries, "softmax over the wrong axis"),
    ("masked_attention", masked_without_softmax, "softmax is missing"),
    ("masked_attention", masked_keys_transposed_only_when_the_shapes_clash, "keys are not transposed"),
    ("masked_attention", masked_after_softmax_renormalised, "masked after the softmax and renormalised"),
    ("masked_attention", masked_by_multiplying_the_scores, "you multiplied the scores by the mask"),
    ("masked_attention", masked_additive_inf_then_nan_to_num, "np.nan_to_num turned that NaN into 0"),
    ("masked_attention", masked_additive_inf_scores_nan_to_num, "np.nan_to_num turned that NaN into 0"),
    ("masked_attention", masked_adds_a_query_axis, "your result has an extra axis"),
    ("masked_attention", masked_expands_a_padding_mask, "already broadcasts against the scores"),
    ("masked_attention", masked_returns_the_masked_scores, "the weights you return are the scores"),
    ("masked_attention", masked_by_boolean_indexing, "can index only an array of its own shape"),
    ("masked_attention", masked_cleans_only_the_output, "gives NaN"),
    ("masked_attention", masked_by_putmask, "can index only an array of its own shape"),
    ("masked_attention", masked_exponentials_only, "do not sum to 1 per query"),
    ("masked_attention", masked_times_sqrt_d, "multiplied by √D"),
    ("masked_attention", masked_by_sqrt_of_num_keys, "scaled by the wrong number"),
    ("masked_attention", masked_times_keys, "multiplied the weights by the keys"),
    ("masked_attention", masked_zeroes_only_the_output, "your output is right, but the weights"),
]

RIGHT = [
    ("causal_mask", causal_loop),
    ("causal_mask", causal_compare),
    ("padding_mask", padding_loop),
    ("masked_attention", masked_with_nan_to_num),
    ("masked_attention", masked_with_a_total_never_zero),
    ("masked_attention", masked_where_after_the_softmax),
    ("masked_attention", masked_large_negative_then_zeroed),
    ("masked_attention", masked_finfo_min_then_zeroed),
    ("masked_attention", masked_by_adding_the_log_of_the_mask),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)
