"""The checks of lesson 01, attention by hand: softmax, the scaled scores and attention in numpy.

Lesson: notebooks/01_attention_by_hand.ipynb, its exercise solutions/01_attention_by_hand.ipynb.
Tests: tests/checks/test_l01_attention_by_hand.py.
"""
from __future__ import annotations

import numpy as np

from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import COURSE_ATTENTION, TORCH_ATTENTION, random
from course_lib.checks.l01_attention_by_hand.mistakes import (
    ATTENTION_MISTAKES, _ROW_MAXIMUM, _SCORES_HINTS, _SCORES_MISTAKES, _axis_ignored, _axis_out_of_bounds,
    _divided_by_the_whole_sum, _finite_but_wrong_on_large_logits, _max_and_sum_without_keepdims, _overflowed,
    _rows_do_not_sum_to_one, _scores_product_error, _softmax_over_the_wrong_axis,
    _softmax_shifted_along_the_last_axis, _softmax_shifted_by_the_global_maximum, _softmax_shifted_by_the_minimum,
    _underflowed, broadcast_error,
)


def _softmax_cases(rng):
    vector, rows, square = random(rng, 5), random(rng, 3, 4), random(rng, 4, 4)
    return [
        Case("a vector of 5 scores", (vector,)),
        # the square matrix comes before the (3, 4) one: there a missing keepdims gives wrong numbers, not an error
        Case("a (4, 4) matrix (square, so a wrong axis cannot hide behind a shape error)", (square,)),
        Case("a (3, 4) matrix, softmax along each row (axis=-1)", (rows,)),
        Case("a (2, 3, 5) batch", (random(rng, 2, 3, 5),)),
        Case("a (3, 4) matrix with axis=0 (columns sum to 1)", (random(rng, 3, 4),), {"axis": 0}),
        Case("a (2, 3, 5) batch with axis=1, a middle axis", (random(rng, 2, 3, 5),), {"axis": 1}),
        Case("large logits [[1000, 1001, 1002]] (overflow test)", (np.array([[1000.0, 1001.0, 1002.0]]),)),
        Case("very negative logits [[-1000, -1001, -1002]] (underflow test)", (np.array([[-1000.0, -1001.0, -1002.0]]),)),
        # only each row's own maximum keeps every exponent <= 0 with one of them exactly 0, in the next three
        Case("a row with a wide spread [[0, 1000, -1000]] (the shift must be the row's maximum)",
             (np.array([[0.0, 1000.0, -1000.0]]),)),
        Case("rows at very different scales [[1000, 1001, 1002], [-1000, -999, -998], [0, 1, 2]] (each row "
             "needs its own maximum)", (np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -999.0, -998.0], [0.0, 1.0, 2.0]]),)),
        Case("columns at very different scales, axis=0 (each column needs its own maximum)",
             (np.array([[1000.0, -1000.0, 0.0], [1001.0, -999.0, 1.0]]),), {"axis": 0}),
        Case("float32 scores of shape (2, 6)", (random(rng, 2, 6, dtype=np.float32),)),
    ]


check_softmax = Check(
    name="softmax",
    points=1,
    make_cases=_softmax_cases,
    implementation="course_lib.numpy_attention.softmax",
    outputs=(Output("weights"),),
    mistakes=(
        Mistake("you subtracted the minimum: the shift must be each row's maximum. After x - min the largest "
                "exponent is max - min (2000 on [0, 1000, -1000]), and np.exp(2000) is inf, so inf/inf = NaN. "
                f"With {_ROW_MAXIMUM} every exponent is <= 0 and the largest is exactly exp(0) = 1.",
                like(_softmax_shifted_by_the_minimum)),
        Mistake("you subtracted the maximum of the whole array (np.max(x) with no axis): a row far below it, "
                "such as [-1000, -999, -998] next to [1000, 1001, 1002], becomes exp(-2000) = 0 everywhere, and "
                f"0/0 = NaN. Each row needs its own maximum: {_ROW_MAXIMUM}.",
                like(_softmax_shifted_by_the_global_maximum)),
        Mistake("you take the maximum along the last axis but the sum along `axis`: with axis=0 each entry of "
                "a column is shifted by a different number, which changes the softmax (and can overflow). Pass "
                "axis=axis to np.max too.", like(_softmax_shifted_along_the_last_axis)),
        Mistake("overflow: an exponent far above 0 (np.exp(1000) is inf) gives inf/inf = NaN. Subtract each "
                f"row's own maximum first: {_ROW_MAXIMUM}. Softmax does not change when you shift all inputs of "
                "a row by the same number, and only the maximum makes every exponent <= 0 (no shift, the mean or "
                "a constant leave some above 709 on a wide row).", _overflowed),
        Mistake("underflow: every logit of that row is far below 0 (about -1000), np.exp(-1000) is 0 in float64 "
                "(anything below about -745 is), so the whole row is 0 and 0/0 = NaN. Subtract the row's maximum "
                f"first ({_ROW_MAXIMUM}): then the largest exponent is exp(0) = 1 and the sum is at least 1.",
                _underflowed),
        Mistake("your weights are finite and sum to 1, but they are wrong on large logits: clipping (np.clip, "
                "np.minimum) or rescaling the logits changes the gaps between them, and softmax depends on those "
                f"gaps. Only a shift by the same number for a whole row is free: {_ROW_MAXIMUM}.",
                _finite_but_wrong_on_large_logits),
        Mistake("you ignore the `axis` argument, for this case's axis at least (see the case): softmax normalises along "
                "the axis it is given, any of them (axis=0: each column sums to 1). Pass axis=axis to np.max "
                "and np.sum.", _axis_ignored),
        Mistake("softmax over the wrong axis: with axis=-1 each row (the last axis) must sum to 1, but your "
                "columns do. Use axis=axis in np.max and np.sum.", like(_softmax_over_the_wrong_axis)),
        Mistake("you divided by the sum of the whole array; divide by the sum along `axis` "
                "(np.sum(..., axis=axis, keepdims=True)), so that each row sums to 1.",
                like(_divided_by_the_whole_sum)),
        Mistake("max or sum without keepdims=True: the (rows,) result is broadcast against the columns. Use "
                "keepdims=True so that it lines up with each row.", like(_max_and_sum_without_keepdims)),
        Mistake("the weights do not sum to 1 along the axis: divide the exponentials by their sum.",
                _rows_do_not_sum_to_one),
    ),
    error_hints=(
        (broadcast_error,
         "Most likely np.max or np.sum without keepdims=True: use keepdims=True so the shapes line up."),
        (_axis_out_of_bounds,
         "You wrote a fixed axis (axis=1?) that this array does not have: use the `axis` argument, "
         "np.max(x, axis=axis, keepdims=True), so that vectors, matrices and batches all work."),
    ),
    what="Rows sum to 1, any axis works, and logits of ±1000, wide rows and rows at different scales give no "
         "overflow or underflow.",
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


check_attention_scores = Check(
    name="attention_scores",
    points=1,
    make_cases=_scores_cases,
    implementation="course_lib.numpy_attention.attention_scores",
    outputs=(Output("scores"),),
    mistakes=_SCORES_MISTAKES,
    error_hints=_SCORES_HINTS,
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


check_scaled_dot_product_attention = Check(
    name="scaled_dot_product_attention",
    points=2,
    make_cases=_attention_cases,
    implementation="course_lib.numpy_attention.scaled_dot_product_attention",
    outputs=(Output("output"), Output("weights")),
    mistakes=ATTENTION_MISTAKES,
    error_hints=(
        (_scores_product_error,
         "Check the order of the products: scores = queries @ keys^T (T, S); output = weights @ values (T, Dv)."),
    ),
    what="Returns (output (..., T, Dv), weights (..., T, S)); weights are a softmax over keys of scaled scores.",
    withholds=COURSE_ATTENTION,
    library=TORCH_ATTENTION,
)


CHECKS = (check_softmax, check_attention_scores, check_scaled_dot_product_attention)
