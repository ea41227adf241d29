"""Fixtures for the checks of lesson 01, course_lib/checks/l01_attention_by_hand.py: wrong solutions, each with the
diagnosis a learner must see (``WRONG``), and right solutions written differently (``RIGHT``).
tests/test_manifest.py proves that every diagnosis of these checks is triggered by a WRONG fixture and that
every check has a RIGHT one. Each wrong solution is written the way a learner writes it, not by calling the
check's own simulator (a fixture that did could never fail)."""
from __future__ import annotations

import math

import numpy as np

from verdicts import fixture_tests


# softmax: wrong ---------------------------------------------------------------------------------------------

def naive_softmax(x, axis=-1):
    return np.exp(x) / np.exp(x).sum(axis=axis, keepdims=True)


def softmax_wrong_axis(x, axis=-1):
    exps = np.exp(x - np.max(x, axis=0, keepdims=True))  # axis=0 written where `axis` was meant
    return exps / np.sum(exps, axis=0, keepdims=True)


def softmax_ignores_axis(x, axis=-1):
    exps = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return exps / np.sum(exps, axis=-1, keepdims=True)


def softmax_no_keepdims(x, axis=-1):
    shifted = x - np.max(x, axis=axis)
    return np.exp(shifted) / np.sum(np.exp(shifted), axis=axis)


def softmax_whole_sum(x, axis=-1):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def softmax_unnormalised(x, axis=-1):
    return np.exp(x - np.max(x, axis=axis, keepdims=True))


def softmax_list(x, axis=-1):
    exps = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return (exps / np.sum(exps, axis=axis, keepdims=True)).tolist()


def softmax_in_place(x, axis=-1):
    x -= np.max(x, axis=axis, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=axis, keepdims=True)


def softmax_minus_min(x, axis=-1):
    exps = np.exp(x - x.min(axis=axis, keepdims=True))  # "make every exponent >= 0"
    return exps / exps.sum(axis=axis, keepdims=True)


def softmax_minus_global_max(x, axis=-1):
    exps = np.exp(x - np.max(x))  # one maximum for the whole array
    return exps / np.sum(exps, axis=axis, keepdims=True)


def softmax_minus_mean(x, axis=-1):
    exps = np.exp(x - x.mean(axis=axis, keepdims=True))  # centre each row instead
    return exps / exps.sum(axis=axis, keepdims=True)


def softmax_shift_only_when_large(x, axis=-1):
    top = np.max(x, axis=axis, keepdims=True)
    exps = np.exp(x - np.maximum(top, 0.0))  # "only a positive maximum can overflow"
    return exps / exps.sum(axis=axis, keepdims=True)


def softmax_clipped(x, axis=-1):
    exps = np.exp(np.clip(x, -700, 700))  # "np.exp overflows above 709, so clip"
    return exps / exps.sum(axis=axis, keepdims=True)


def softmax_axis_one(x, axis=-1):
    shifted = x - np.max(x, axis=1, keepdims=True)  # the course notes' (N, C) scores: classes on axis 1
    return np.exp(shifted) / np.sum(np.exp(shifted), axis=1, keepdims=True)


def softmax_minus_first(x, axis=-1):
    exps = np.exp(x - np.take(x, [0], axis=axis))  # any entry of the row will do, "softmax is shift-invariant"
    return exps / exps.sum(axis=axis, keepdims=True)


def softmax_max_along_last_axis(x, axis=-1):
    exps = np.exp(x - x.max(axis=-1, keepdims=True))  # the max forgot the axis argument, the sum did not
    return exps / exps.sum(axis=axis, keepdims=True)


# softmax: right ---------------------------------------------------------------------------------------------

def softmax_float64_loop(x, axis=-1):
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    out = np.empty_like(x)
    for index in np.ndindex(x.shape[:-1]):
        row = x[index] - x[index].max()
        out[index] = np.exp(row) / np.exp(row).sum()
    return np.moveaxis(out, -1, axis)


def softmax_logsumexp(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return np.exp(x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)))


def softmax_in_float32(x, axis=-1):
    x = np.asarray(x, dtype=np.float32)  # half the memory; the checks' tolerance allows float32 round-off
    exps = np.exp(x - x.max(axis=axis, keepdims=True))
    return exps / exps.sum(axis=axis, keepdims=True)


def softmax_logaddexp_reduce(x, axis=-1):
    x = np.asarray(x)
    return np.exp(x - np.logaddexp.reduce(x, axis=axis, keepdims=True))  # no explicit shift: logaddexp is stable


# attention_scores: wrong ------------------------------------------------------------------------------------

def scores_unscaled(q, k):
    return q @ np.swapaxes(k, -1, -2)


def scores_by_d(q, k):
    return q @ np.swapaxes(k, -1, -2) / q.shape[-1]


def scores_not_transposed(q, k):
    return q @ k / np.sqrt(q.shape[-1])


def scores_transposed_only_when_the_shapes_clash(queries, keys):
    if queries.shape[-1] != keys.shape[-2]:  # "make the shapes fit": square keys are left as they are
        keys = np.swapaxes(keys, -1, -2)
    return queries @ keys / np.sqrt(queries.shape[-1])


def scores_times_sqrt_d(queries, keys):
    return queries @ np.swapaxes(keys, -1, -2) * np.sqrt(queries.shape[-1])


def scores_by_a_hard_coded_two(queries, keys):
    return queries @ np.swapaxes(keys, -1, -2) / 2  # sqrt(4): right for the lesson's D = 4 only


def scores_transpose_3d(queries, keys):
    return queries @ keys.transpose(0, 2, 1) / np.sqrt(queries.shape[-1])  # written for (B, S, D)


def scores_np_dot(queries, keys):
    return np.dot(queries, keys.T) / np.sqrt(queries.shape[-1])


def scores_np_dot_swapaxes(queries, keys):
    return np.dot(queries, np.swapaxes(keys, -1, -2)) / np.sqrt(queries.shape[-1])


def scores_elementwise(queries, keys):
    return queries * keys / np.sqrt(queries.shape[-1])


def scores_keys_first(queries, keys):
    return keys @ np.swapaxes(queries, -1, -2) / np.sqrt(queries.shape[-1])  # (S, T)


def scores_dot_T(q, k):
    return q @ k.T / np.sqrt(q.shape[-1])


def scores_softmaxed(q, k):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    exps = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exps / exps.sum(axis=-1, keepdims=True)


def scores_by_num_keys(q, k):
    return q @ np.swapaxes(k, -1, -2) / np.sqrt(k.shape[-2])


def scores_by_num_queries(queries, keys):
    return queries @ np.swapaxes(keys, -1, -2) / np.sqrt(len(queries))


# attention_scores: right ---------------------------------------------------------------------------------

def scores_queries_scaled_first(queries, keys):
    return (queries / np.sqrt(queries.shape[-1])) @ np.swapaxes(keys, -1, -2)


def scores_einsum(q, k):
    return np.einsum("...td,...sd->...ts", q, k) / math.sqrt(q.shape[-1])


def scores_loop(q, k):
    q, k = np.asarray(q, dtype=np.float64), np.asarray(k, dtype=np.float64)
    out = np.zeros(q.shape[:-1] + (k.shape[-2],))
    for index in np.ndindex(out.shape):
        out[index] = sum(q[index[:-1]][d] * k[index[:-2] + (index[-1],)][d] for d in range(q.shape[-1]))
    return out / math.sqrt(q.shape[-1])


# scaled_dot_product_attention: wrong (built on the learner's right softmax and scores above) ------------------

def attention_swapped(q, k, v):
    weights = softmax_logsumexp(scores_einsum(q, k))
    return weights, weights @ v


def attention_only_output(q, k, v):
    return softmax_logsumexp(scores_einsum(q, k)) @ v


def attention_wrong_axis(q, k, v):
    weights = softmax_logsumexp(scores_einsum(q, k), axis=-2)
    return weights @ v, weights


def attention_unscaled(q, k, v):
    weights = softmax_logsumexp(q @ np.swapaxes(k, -1, -2))
    return weights @ v, weights


def attention_times_sqrt_d(q, k, v):
    weights = softmax_logsumexp(q @ np.swapaxes(k, -1, -2) * np.sqrt(q.shape[-1]))
    return weights @ v, weights


def attention_by_sqrt_of_value_size(queries, keys, values):
    weights = softmax_logsumexp(queries @ np.swapaxes(keys, -1, -2) / np.sqrt(values.shape[-1]))
    return weights @ values, weights


def attention_returns_the_scores(queries, keys, values):
    scores = scores_einsum(queries, keys)
    weights = softmax_logsumexp(scores)
    return weights @ values, scores  # the wrong variable returned


def attention_times_keys(queries, keys, values):
    weights = softmax_logsumexp(scores_einsum(queries, keys))
    return weights @ keys, weights


def attention_returns_unnormalised_weights(queries, keys, values):
    scores = scores_einsum(queries, keys)
    exps = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights = exps / exps.sum(axis=-1, keepdims=True)
    return weights @ values, exps  # the exponentials returned, not the weights


def attention_exponentials_only(queries, keys, values):
    scores = scores_einsum(queries, keys)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))  # the division forgotten
    return weights @ values, weights


def attention_returns_log_weights(queries, keys, values):
    scores = scores_einsum(queries, keys)
    top = scores.max(axis=-1, keepdims=True)
    log_weights = scores - top - np.log(np.exp(scores - top).sum(axis=-1, keepdims=True))  # log-softmax
    return np.exp(log_weights) @ values, log_weights


def attention_no_softmax(q, k, v):
    scores = scores_einsum(q, k)
    return scores @ v, scores


def attention_keys_transposed_only_when_the_shapes_clash(queries, keys, values):
    weights = softmax_logsumexp(scores_transposed_only_when_the_shapes_clash(queries, keys))
    return weights @ values, weights


# scaled_dot_product_attention: right ------------------------------------------------------------------------

def attention_einsum(q, k, v):
    weights = softmax_logsumexp(scores_einsum(q, k))
    return np.einsum("...ts,...sd->...td", weights, v), weights


def attention_as_list_tuple(q, k, v):
    weights = softmax_float64_loop(scores_loop(q, k))
    return [weights @ v, weights]


WRONG = [
    ("softmax", naive_softmax, "overflow"),
    ("softmax", softmax_wrong_axis, "wrong axis"),
    ("softmax", softmax_ignores_axis, "ignore the `axis` argument"),
    ("softmax", softmax_no_keepdims, "max or sum without keepdims=True"),
    ("softmax", softmax_whole_sum, "sum of the whole array"),
    ("softmax", softmax_unnormalised, "do not sum to 1"),
    ("softmax", softmax_list, "returned a Python list"),
    ("softmax", softmax_in_place, "changed its inputs in place"),
    ("softmax", softmax_minus_min, "you subtracted the minimum"),
    ("softmax", softmax_minus_global_max, "maximum of the whole array"),
    ("softmax", softmax_minus_mean, "overflow: an exponent far above 0"),
    ("softmax", softmax_shift_only_when_large, "underflow: every logit of that row is far below 0"),
    ("softmax", softmax_clipped, "clipping (np.clip"),
    ("softmax", softmax_axis_one, "You wrote a fixed axis"),
    ("softmax", softmax_minus_first, "overflow: an exponent far above 0"),
    ("softmax", softmax_max_along_last_axis, "maximum along the last axis but the sum along `axis`"),
    ("attention_scores", scores_unscaled, "not scaled"),
    ("attention_scores", scores_by_d, "divide by √D"),
    ("attention_scores", scores_not_transposed, "transpose keys"),
    ("attention_scores", scores_transposed_only_when_the_shapes_clash, "keys are not transposed"),
    ("attention_scores", scores_elementwise, "multiplied element by element"),
    ("attention_scores", scores_keys_first, "query-major the other way round"),
    ("attention_scores", scores_dot_T, "swap only the last two"),
    ("attention_scores", scores_softmaxed, "before the softmax"),
    ("attention_scores", scores_by_num_keys, "number of keys"),
    ("attention_scores", scores_by_num_queries, "number of queries"),
    ("attention_scores", scores_transpose_3d, "fits only 3-D arrays"),
    ("attention_scores", scores_np_dot, "np.dot is not a batched matrix product"),
    ("attention_scores", scores_np_dot_swapaxes, "np.dot on a batch is not a batched matrix product"),
    ("attention_scores", scores_times_sqrt_d, "you multiplied by √D"),
    ("attention_scores", scores_by_a_hard_coded_two, "times the wrong number"),
    ("scaled_dot_product_attention", attention_swapped, "swapped"),
    ("scaled_dot_product_attention", attention_only_output, "returned only output"),
    ("scaled_dot_product_attention", attention_wrong_axis, "wrong axis"),
    ("scaled_dot_product_attention", attention_unscaled, "not scaled"),
    ("scaled_dot_product_attention", attention_no_softmax, "softmax is missing"),
    ("scaled_dot_product_attention", attention_keys_transposed_only_when_the_shapes_clash, "keys are not transposed"),
    ("scaled_dot_product_attention", attention_times_sqrt_d, "multiplied by √D"),
    ("scaled_dot_product_attention", attention_by_sqrt_of_value_size, "scaled by the wrong number"),
    ("scaled_dot_product_attention", attention_returns_the_scores, "the weights you return are the scores"),
    ("scaled_dot_product_attention", attention_exponentials_only, "do not sum to 1 per query"),
    ("scaled_dot_product_attention", attention_times_keys, "multiplied the weights by the keys"),
    ("scaled_dot_product_attention", attention_returns_unnormalised_weights, "do not sum to 1 per query"),
    ("scaled_dot_product_attention", attention_returns_log_weights, "your output is right, but the weights"),
]

RIGHT = [
    ("softmax", softmax_float64_loop),
    ("softmax", softmax_logsumexp),
    ("softmax", softmax_logaddexp_reduce),
    ("softmax", softmax_in_float32),
    ("attention_scores", scores_einsum),
    ("attention_scores", scores_loop),
    ("attention_scores", scores_queries_scaled_first),
    ("scaled_dot_product_attention", attention_einsum),
    ("scaled_dot_product_attention", attention_as_list_tuple),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)
