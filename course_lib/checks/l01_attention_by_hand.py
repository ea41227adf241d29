"""The checks of lesson 01, attention by hand: softmax, the scaled scores and attention in numpy.

Lesson: notebooks/01_attention_by_hand.ipynb, its exercise solutions/01_attention_by_hand.ipynb. Tests: tests/checks/test_l01_attention_by_hand.py.
"""
from __future__ import annotations

import numpy as np

from course_lib import numpy_attention as ref
from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import COURSE_ATTENTION, TORCH_ATTENTION, matmul_error, random, rank


def _softmax_cases(rng):
    return [
        Case("a vector of 5 scores", (random(rng, 5),)),
        Case("a (3, 4) matrix, softmax along each row (axis=-1)", (random(rng, 3, 4),)),
        Case("a (4, 4) matrix (square, so a wrong axis cannot hide behind a shape error)", (random(rng, 4, 4),)),
        Case("a (2, 3, 5) batch", (random(rng, 2, 3, 5),)),
        Case("a (3, 4) matrix with axis=0 (columns sum to 1)", (random(rng, 3, 4),), {"axis": 0}),
        Case("large logits [[1000, 1001, 1002]] (overflow test)", (np.array([[1000.0, 1001.0, 1002.0]]),)),
        Case("very negative logits [[-1000, -1001, -1002]] (underflow test)", (np.array([[-1000.0, -1001.0, -1002.0]]),)),
        Case("float32 scores of shape (2, 6)", (random(rng, 2, 6, dtype=np.float32),)),
    ]


def _rows_do_not_sum_to_one(case, got, expected) -> bool:
    axis = case.kwargs.get("axis", -1)
    sums = np.sum(np.asarray(got, dtype=float), axis=axis)
    return got.shape == expected.shape and not np.allclose(sums, 1.0, atol=1e-4)


def _overflowed(case, got, expected) -> bool:
    return np.abs(case.args[0]).max() > 100 and not np.isfinite(np.asarray(got, dtype=float)).all()


def _softmax_no_keepdims(x, axis=-1):
    return np.exp(x - np.max(x, axis=axis)) / np.sum(np.exp(x - np.max(x, axis=axis)), axis=axis)


check_softmax = Check(
    name="softmax",
    points=1,
    make_cases=_softmax_cases,
    implementation="course_lib.numpy_attention.softmax",
    outputs=(Output("weights"),),
    mistakes=(
        Mistake("overflow: np.exp(1000) is inf, and inf/inf is NaN. Subtract the maximum along the axis first: "
                "x - np.max(x, axis=axis, keepdims=True). Softmax does not change when you shift all inputs.",
                _overflowed),
        Mistake("you ignore the `axis` argument: with axis=0 each column must sum to 1. Pass axis=axis to np.max "
                "and np.sum.", lambda case, got, exp: "axis" in case.kwargs and like(ref.softmax)(
                    Case("", case.args), got, exp)),
        Mistake("softmax over the wrong axis: with axis=-1 each row (the last axis) must sum to 1, but your "
                "columns do. Use axis=axis in np.max and np.sum.",
                lambda case, got, exp: np.ndim(case.args[0]) > 1 and like(lambda x, axis=-1: ref.softmax(x, axis=-2))(
                    case, got, exp)),
        Mistake("you divided by the sum of the whole array; divide by the sum along `axis` "
                "(np.sum(..., axis=axis, keepdims=True)), so that each row sums to 1.",
                like(lambda x, axis=-1: np.exp(x - x.max()) / np.exp(x - x.max()).sum())),
        Mistake("max or sum without keepdims=True: the (rows,) result is broadcast against the columns. Use "
                "keepdims=True so that it lines up with each row.", like(_softmax_no_keepdims)),
        Mistake("the weights do not sum to 1 along the axis: divide the exponentials by their sum.",
                _rows_do_not_sum_to_one),
    ),
    error_hints=(
        (lambda case, error: "broadcast" in str(error),
         "Most likely np.max or np.sum without keepdims=True: use keepdims=True so the shapes line up."),
    ),
    what="Rows sum to 1, any axis works, and logits of ±1000 give no overflow.",
    withholds=("course_lib.attention.masked_softmax", "course_lib.flash.online_softmax_steps"),
    library=("softmax", *TORCH_ATTENTION),
)


def _scores_cases(rng):
    return [
        Case("queries (3, 4) and keys (5, 4)", (random(rng, 3, 4), random(rng, 5, 4))),
        Case("queries (2, 8) and keys (6, 8)", (random(rng, 2, 8), random(rng, 6, 8))),
        Case("square queries and keys (4, 4), (4, 4)", (random(rng, 4, 4), random(rng, 4, 4))),
        Case("a batch: queries (2, 3, 4) and keys (2, 5, 4)", (random(rng, 2, 3, 4), random(rng, 2, 5, 4))),
        Case("float32 queries (1, 16) and keys (7, 16)",
             (random(rng, 1, 16, dtype=np.float32), random(rng, 7, 16, dtype=np.float32))),
    ]


def _unscaled(queries, keys):
    return queries @ np.swapaxes(keys, -1, -2)


_SCORES_MISTAKES = (
    Mistake("the scores are not scaled: divide queries @ keys^T by √D, D = queries.shape[-1] (lesson 01 shows "
            "why: unscaled scores grow with D and saturate the softmax).", like(_unscaled)),
    Mistake("you divided by D; divide by √D (np.sqrt(queries.shape[-1])).",
            like(lambda q, k: _unscaled(q, k) / q.shape[-1])),
    Mistake("you scaled by the square root of the number of keys; scale by √D, D = queries.shape[-1], the "
            "feature size.", like(lambda q, k: _unscaled(q, k) / np.sqrt(k.shape[-2]))),
    Mistake("you scaled by the square root of the number of queries; scale by √D, D = queries.shape[-1].",
            like(lambda q, k: _unscaled(q, k) / np.sqrt(q.shape[-2]))),
    Mistake("keys are not transposed: you computed queries @ keys; the score of query i and key j is "
            "queries[i] · keys[j], i.e. queries @ keys.T (keys.swapaxes(-1, -2) for a batch).",
            like(lambda q, k: q @ k / np.sqrt(q.shape[-1]))),
    Mistake("you multiplied element by element (queries * keys); use the matrix product queries @ keys.T.",
            like(lambda q, k: q * k / np.sqrt(q.shape[-1]))),
    Mistake("your rows are query-major the other way round: scores[i, j] must be query i against key j, "
            "i.e. queries @ keys.T, not keys @ queries.T.",
            like(lambda q, k: k @ np.swapaxes(q, -1, -2) / np.sqrt(q.shape[-1]))),
    Mistake("you returned softmax weights; attention_scores returns the scaled scores before the softmax.",
            like(lambda q, k: ref.softmax(ref.attention_scores(q, k)))),
)

_TRANSPOSE_HINTS = (
    (lambda case, error: matmul_error(case, error) and rank(case) > 2,
     "For a batch, keys.T reverses every axis; swap only the last two: keys.swapaxes(-1, -2)."),
    (matmul_error, "The inner sizes must match: transpose keys' last two axes, np.swapaxes(keys, -1, -2), so "
                    "that (T, D) @ (D, S) gives (T, S)."),
)

check_attention_scores = Check(
    name="attention_scores",
    points=1,
    make_cases=_scores_cases,
    implementation="course_lib.numpy_attention.attention_scores",
    outputs=(Output("scores"),),
    mistakes=_SCORES_MISTAKES,
    error_hints=_TRANSPOSE_HINTS,
    what="Shape (..., T, S), keys transposed, scaled by 1/√D, batches work.",
)


def _attention_cases(rng):
    return [
        Case("queries (3, 4), keys (5, 4), values (5, 2)", (random(rng, 3, 4), random(rng, 5, 4), random(rng, 5, 2))),
        Case("square: queries, keys (4, 4), values (4, 4)", (random(rng, 4, 4), random(rng, 4, 4), random(rng, 4, 4))),
        Case("a batch: queries (2, 3, 6), keys (2, 7, 6), values (2, 7, 3)",
             (random(rng, 2, 3, 6), random(rng, 2, 7, 6), random(rng, 2, 7, 3))),
        Case("one query, one key: (1, 5), (1, 5), (1, 3)", (random(rng, 1, 5), random(rng, 1, 5), random(rng, 1, 3))),
        Case("float32: queries (3, 8), keys (4, 8), values (4, 8)",
             (random(rng, 3, 8, dtype=np.float32), random(rng, 4, 8, dtype=np.float32), random(rng, 4, 8, dtype=np.float32))),
    ]


def _attend(scores, values, mask=None, axis=-1):
    """Attention from given (possibly wrong) scores: how each mistake below produces its output."""
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = ref.softmax(scores, axis=axis)
    return weights @ values, weights


ATTENTION_MISTAKES = (
    Mistake("the scores are not scaled by 1/√D before the softmax (D = queries.shape[-1]).",
            like(lambda q, k, v, mask=None: _attend(_unscaled(q, k), v, mask))),
    Mistake("softmax over the wrong axis: each query's weights (a row, axis=-1) must sum to 1; yours sum to 1 "
            "down the columns (over queries).",
            like(lambda q, k, v, mask=None: _attend(ref.attention_scores(q, k), v, mask, axis=-2))),
    Mistake("the softmax is missing: weights must be softmax(scores), positive and summing to 1 per query.",
            like(lambda q, k, v, mask=None: (ref.attention_scores(q, k) @ v, ref.attention_scores(q, k)))),
    Mistake("keys are not transposed in the scores: use queries @ keys.T (keys.swapaxes(-1, -2) for a batch).",
            like(lambda q, k, v, mask=None: _attend(q @ k / np.sqrt(q.shape[-1]), v, mask))),
)

check_scaled_dot_product_attention = Check(
    name="scaled_dot_product_attention",
    points=2,
    make_cases=_attention_cases,
    implementation="course_lib.numpy_attention.scaled_dot_product_attention",
    outputs=(Output("output"), Output("weights")),
    mistakes=ATTENTION_MISTAKES,
    error_hints=(
        (lambda case, error: matmul_error(case, error) and "values" not in str(error),
         "Check the order of the products: scores = queries @ keys^T (T, S); output = weights @ values (T, Dv)."),
    ),
    what="Returns (output (..., T, Dv), weights (..., T, S)); weights are a softmax over keys of scaled scores.",
    withholds=COURSE_ATTENTION,
    library=TORCH_ATTENTION,
)


CHECKS = (check_softmax, check_attention_scores, check_scaled_dot_product_attention)
