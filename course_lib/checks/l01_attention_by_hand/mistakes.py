"""The mistakes of lesson 01's checks, as code: what each wrong solution computes (its simulator, for
``like``) and the predicates that recognise it. Used by :mod:`course_lib.checks.l01_attention_by_hand`; triggered by the WRONG
fixtures of tests/checks/test_l01_attention_by_hand.py.
"""
from __future__ import annotations

import warnings
import numpy as np

from course_lib import numpy_attention as ref
from course_lib.checking import Mistake, close, like
from course_lib.checks._common import matmul_error, rank


def _exps_over_sums(x, shift, axis):
    """exp(x - shift) divided by its sum along ``axis``: a softmax with a chosen shift (NaN where it breaks)."""
    exps = np.exp(x - shift)  # same shape as x
    return exps / np.sum(exps, axis=axis, keepdims=True)


def _softmax_shifted_by_the_minimum(x, axis=-1):
    """x - min along the axis: the largest exponent becomes max - min, which overflows on a wide row."""
    return _exps_over_sums(x, np.min(x, axis=axis, keepdims=True), axis)


def _softmax_shifted_by_the_global_maximum(x, axis=-1):
    """x - x.max(): one maximum for the whole array, so a row far below it underflows to 0/0."""
    return _exps_over_sums(x, np.max(x), axis)


def _softmax_shifted_along_the_last_axis(x, axis=-1):
    """The maximum taken along the last axis, the sum along ``axis``: with axis=0 the shift varies down a column."""
    return _exps_over_sums(x, np.max(x, axis=-1, keepdims=True), axis)


def _bad_rows(case, got) -> np.ndarray:
    """The slices along the case's axis (moved last) whose weights are not finite or do not sum to 1."""
    axis = case.kwargs.get("axis", -1)
    weights = np.moveaxis(np.asarray(got, dtype=float), axis, -1)  # (..., n)
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(weights).all(-1) | ~np.isclose(weights.sum(-1), 1.0, atol=1e-4)  # (...,)


def _logit_rows(case) -> np.ndarray:
    return np.moveaxis(np.asarray(case.args[0], dtype=float), case.kwargs.get("axis", -1), -1)  # (..., n)


def _overflowed(case, got, expected) -> bool:
    """A slice whose logits reach far above 0 broke: exp(1000) is inf (inf/inf = NaN), no shift before np.exp."""
    if np.shape(got) != np.shape(expected):
        return False
    return bool((_bad_rows(case, got) & (_logit_rows(case).max(-1) > 100)).any())


def _underflowed(case, got, expected) -> bool:
    """A slice whose logits all lie far below 0 broke: every exp(-1000) is 0, and 0/0 is NaN."""
    if np.shape(got) != np.shape(expected):
        return False
    return bool((_bad_rows(case, got) & (_logit_rows(case).max(-1) < -100)).any())


def _finite_but_wrong_on_large_logits(case, got, expected) -> bool:
    """Finite weights that sum to 1 but are wrong, only where the logits are large: the logits were changed
    (np.clip, np.minimum, a rescale) instead of shifted by one number per row."""
    if np.shape(got) != np.shape(expected) or np.abs(np.asarray(case.args[0])).max() <= 100:
        return False
    return not _bad_rows(case, got).any()


def _softmax_over_the_last_axis(x, axis=-1):
    """A softmax that ignores its `axis` argument: always along the last axis."""
    return ref.softmax(x, axis=-1)


def _axis_ignored(case, got, expected) -> bool:
    """Asked for another axis, the answer is the softmax along the last one."""
    return "axis" in case.kwargs and like(_softmax_over_the_last_axis)(case, got, expected)


def _softmax_over_the_wrong_axis(x, axis=-1):
    """Asked for rows (axis=-1), the softmax runs down the columns (axis=-2)."""
    return ref.softmax(x, axis=-2)


def _divided_by_the_whole_sum(x, axis=-1):
    """Exponentials divided by the sum of the whole array, not by the sum along `axis`."""
    exps = np.exp(x - x.max())  # same shape as x
    return exps / exps.sum()


def _max_and_sum_without_keepdims(x, axis=-1):
    """np.max and np.sum without keepdims=True: a square matrix broadcasts their (rows,) results along rows."""
    exps = np.exp(x - np.max(x, axis=axis))  # (n, n) - (n,): row i loses the maximum of row j
    return exps / np.sum(exps, axis=axis)


def _rows_do_not_sum_to_one(case, got, expected) -> bool:
    """The weights along the axis do not sum to 1: the division by their sum is missing or wrong."""
    axis = case.kwargs.get("axis", -1)
    sums = np.sum(np.asarray(got, dtype=float), axis=axis)
    return got.shape == expected.shape and not np.allclose(sums, 1.0, atol=1e-4)


def _axis_out_of_bounds(case, error) -> bool:
    """numpy's AxisError: an axis written into the code that the case's array does not have."""
    return "out of bounds for array of dimension" in str(error)


def broadcast_error(case, error) -> bool:
    """numpy's complaint about shapes that do not broadcast (lesson 02's masks meet it too)."""
    return "broadcast" in str(error)


_ROW_MAXIMUM = "x - np.max(x, axis=axis, keepdims=True)"


def _unscaled(queries, keys):
    """queries @ keys^T without the 1/√D."""
    return queries @ np.swapaxes(keys, -1, -2)  # (..., T, S)


def _divided_by_d(queries, keys):
    """Scores divided by D instead of √D."""
    return _unscaled(queries, keys) / queries.shape[-1]  # (..., T, S)


def _multiplied_by_sqrt_d(queries, keys):
    """Scores multiplied by √D instead of divided by it."""
    return _unscaled(queries, keys) * np.sqrt(queries.shape[-1])  # (..., T, S)


def _scaled_by_the_number_of_keys(queries, keys):
    """Scores divided by √S, S the number of keys."""
    return _unscaled(queries, keys) / np.sqrt(keys.shape[-2])  # (..., T, S)


def _scaled_by_the_number_of_queries(queries, keys):
    """Scores divided by √T, T the number of queries."""
    return _unscaled(queries, keys) / np.sqrt(queries.shape[-2])  # (..., T, S)


def _keys_not_transposed(queries, keys):
    """queries @ keys, which runs only when keys happen to be square."""
    return queries @ keys / np.sqrt(queries.shape[-1])  # (T, D) @ (D, D) when S = D


def _keys_times_queries(queries, keys):
    """keys @ queries^T: one row per key instead of one per query."""
    return keys @ np.swapaxes(queries, -1, -2) / np.sqrt(queries.shape[-1])  # (..., S, T)


def scale_factor(unscaled, got) -> float | None:
    """The number c with got = c * unscaled, when there is one (least squares, then checked), else None."""
    unscaled, got = np.asarray(unscaled, dtype=float), np.asarray(got, dtype=float)
    if unscaled.shape != got.shape or not np.isfinite(got).all() or not np.any(unscaled):
        return None
    factor = float(np.sum(unscaled * got) / np.sum(unscaled * unscaled))
    return factor if np.allclose(got, factor * unscaled, rtol=1e-3, atol=1e-4) else None


def _scaled_by_another_factor(case, got, expected) -> bool:
    """The scores are queries @ keys^T times some constant, but not 1/√D."""
    queries, keys = case.args[:2]
    factor = scale_factor(_unscaled(queries, keys), got)
    return factor is not None and not np.isclose(factor, 1 / np.sqrt(queries.shape[-1]), rtol=1e-3)


def _np_dot_on_a_batch(queries, keys):
    """np.dot(queries, keys^T) on a batch: every batch times every other, (B, T, B, S)."""
    return np.dot(queries, np.swapaxes(keys, -1, -2)) / np.sqrt(queries.shape[-1])  # (B, T, B, S) for B > 1


def _softmax_of_the_scores(queries, keys):
    """The softmax weights, where the scaled scores before the softmax are asked for."""
    return ref.softmax(ref.attention_scores(queries, keys))  # (..., T, S)


# queries * keys fails on the first case ((3, 4) and (5, 4) do not broadcast) before any answer could be compared,
# so this diagnosis is an error hint, not a Mistake
_ELEMENTWISE = "you multiplied element by element (queries * keys); use the matrix product queries @ keys.T."


_SCORES_MISTAKES = (
    Mistake("the scores are not scaled: divide queries @ keys^T by √D, D = queries.shape[-1] (lesson 01 shows "
            "why: unscaled scores grow with D and saturate the softmax).", like(_unscaled)),
    Mistake("you divided by D; divide by √D (np.sqrt(queries.shape[-1])).", like(_divided_by_d)),
    Mistake("you multiplied by √D; divide by it: queries @ keys.T / np.sqrt(D). Dividing keeps the scores' "
            "spread about 1 whatever D is; multiplying makes it D times larger and saturates the softmax.",
            like(_multiplied_by_sqrt_d)),
    Mistake("you scaled by the square root of the number of keys; scale by √D, D = queries.shape[-1], the "
            "feature size.", like(_scaled_by_the_number_of_keys)),
    Mistake("you scaled by the square root of the number of queries; scale by √D, D = queries.shape[-1].",
            like(_scaled_by_the_number_of_queries)),
    Mistake("keys are not transposed: you computed queries @ keys; the score of query i and key j is "
            "queries[i] · keys[j], i.e. queries @ keys.T (keys.swapaxes(-1, -2) for a batch).",
            like(_keys_not_transposed)),
    Mistake("your rows are query-major the other way round: scores[i, j] must be query i against key j, "
            "i.e. queries @ keys.T, not keys @ queries.T.", like(_keys_times_queries)),
    Mistake("you returned softmax weights; attention_scores returns the scaled scores before the softmax.",
            like(_softmax_of_the_scores)),
    Mistake("np.dot on a batch is not a batched matrix product: it multiplies every batch with every other and "
            "gives (B, T, B, S). Use @ (np.matmul), which pairs batch b of queries with batch b of keys.",
            like(_np_dot_on_a_batch)),
    Mistake("your scores are queries @ keys^T times the wrong number: the one factor is 1/√D, with D = "
            "queries.shape[-1], the feature size (not the number of keys or queries, not D itself).",
            _scaled_by_another_factor),
)


def _batch_transpose_error(case, error) -> bool:
    """keys.T on a batch: it reverses every axis, so the matrix product's inner sizes do not match."""
    return matmul_error(case, error) and rank(case) > 2


def _fixed_transpose_error(case, error) -> bool:
    """keys.transpose(0, 2, 1) (written for 3-D) on an array of another rank."""
    return isinstance(error, ValueError) and "axes don't match array" in str(error)


def _np_dot_error(case, error) -> bool:
    """np.dot's complaint about a batch: its shapes are 'not aligned'."""
    return isinstance(error, ValueError) and "not aligned" in str(error)


def _elementwise_product_error(case, error) -> bool:
    """numpy's complaint about queries * keys: (T, D) and (S, D) do not broadcast (the first cases have T != S)."""
    shapes = [str(np.shape(a)).replace(" ", "") for a in case.args[:2]]  # e.g. "(3,4)", "(5,4)"
    return (isinstance(error, ValueError) and "could not be broadcast" in str(error)
            and all(shape in str(error) for shape in shapes))


_SCORES_HINTS = (
    (_batch_transpose_error,
     "For a batch, keys.T reverses every axis; swap only the last two: keys.swapaxes(-1, -2)."),
    (matmul_error, "The inner sizes must match: transpose keys' last two axes, np.swapaxes(keys, -1, -2), so "
                    "that (T, D) @ (D, S) gives (T, S)."),
    (_elementwise_product_error, f"Most likely {_ELEMENTWISE}"),
    (_fixed_transpose_error, "transpose(0, 2, 1) names three axes, so it fits only 3-D arrays; swap the last two "
                             "whatever the rank: np.swapaxes(keys, -1, -2)."),
    (_np_dot_error, "np.dot is not a batched matrix product; use @ (np.matmul) with np.swapaxes(keys, -1, -2)."),
)


def _hide(scores, mask):
    """Masked scores (-inf where the mask is False), or the scores themselves when there is no mask."""
    return scores if mask is None else np.where(mask, scores, -np.inf)  # (..., T, S)


def _attend(scores, values, mask=None, axis=-1):
    """Attention from given (possibly wrong) scores: how each mistake below produces its output."""
    weights = ref.softmax(_hide(scores, mask), axis=axis)  # (..., T, S)
    return weights @ values, weights  # (..., T, Dv), (..., T, S)


def _attention_unscaled(queries, keys, values, mask=None):
    """Attention on scores without the 1/√D."""
    return _attend(_unscaled(queries, keys), values, mask)


def _attention_softmax_over_queries(queries, keys, values, mask=None):
    """Attention whose softmax runs down the columns (axis=-2, over queries) instead of along each row."""
    return _attend(ref.attention_scores(queries, keys), values, mask, axis=-2)


def _attention_without_softmax(queries, keys, values, mask=None):
    """The (masked) scores used as the weights: the softmax forgotten."""
    weights = _hide(ref.attention_scores(queries, keys), mask)  # (..., T, S)
    return weights @ values, weights


def _attention_times_sqrt_d(queries, keys, values, mask=None):
    """Attention on scores multiplied by √D instead of divided by it."""
    return _attend(_multiplied_by_sqrt_d(queries, keys), values, mask)


def _attention_keys_not_transposed(queries, keys, values, mask=None):
    """Attention on queries @ keys, which runs only when keys happen to be square."""
    return _attend(_keys_not_transposed(queries, keys), values, mask)


def _mask_of(case, shape) -> np.ndarray:
    """The case's mask broadcast to the scores' shape (all True when the case has none)."""
    mask = case.args[3] if len(case.args) > 3 else True
    return np.broadcast_to(np.asarray(mask, dtype=bool), shape)


def _softmax_scale(case, weights) -> float | None:
    """The factor c for which ``weights`` = softmax(c * queries @ keys^T) over the allowed keys, if there is one."""
    queries, keys, values = case.args[:3]
    unscaled = _unscaled(queries, keys)  # (..., T, S)
    weights = np.asarray(weights, dtype=float)
    if weights.shape != unscaled.shape or not np.isfinite(weights).all():
        return None
    allowed = _mask_of(case, unscaled.shape) & (weights > 1e-200)  # (..., T, S)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a fully masked row: the mean of an empty slice
        logs = np.where(allowed, np.log(np.where(allowed, weights, 1.0)), np.nan)  # log w = c * u + a row's constant
        scores = np.where(allowed, unscaled, np.nan)
        log_gaps = logs - np.nanmean(logs, axis=-1, keepdims=True)
        score_gaps = scores - np.nanmean(scores, axis=-1, keepdims=True)
        spread = np.nansum(score_gaps * score_gaps)
        if not spread > 0:
            return None
        factor = float(np.nansum(log_gaps * score_gaps) / spread)
        rebuilt = ref.softmax(np.where(_mask_of(case, unscaled.shape), factor * unscaled, -np.inf))  # (..., T, S)
    return factor if np.allclose(rebuilt, weights, rtol=1e-3, atol=1e-4) else None


def _softmax_of_another_scale(case, got, expected) -> bool:
    """The weights are a softmax of queries @ keys^T times a constant other than 1/√D, and the output follows them."""
    output, weights = (np.asarray(result, dtype=float) for result in got)
    factor = _softmax_scale(case, weights)
    return (factor is not None and not np.isclose(factor, 1 / np.sqrt(case.args[0].shape[-1]), rtol=1e-3)
            and output.shape == expected[0].shape and np.allclose(output, weights @ case.args[2], rtol=1e-3, atol=1e-4))


def _weights_are_the_scores(case, got, expected) -> bool:
    """The weights returned are the scores (scaled or not, masked or not): the softmax's result not returned."""
    queries, keys = case.args[:2]
    weights = got[1]
    for scores in (ref.attention_scores(queries, keys), _unscaled(queries, keys)):  # (..., T, S) each
        hidden = np.where(_mask_of(case, scores.shape), scores, -np.inf)  # (..., T, S)
        if any(close(weights, candidate, rtol=1e-3, atol=1e-4) for candidate in (scores, hidden)):
            return True
    return False


def _output_right_weights_not(case, got, expected) -> bool:
    """The output is right, the weights returned next to it are not the ones that made it."""
    return close(got[0], expected[0], rtol=1e-3, atol=1e-4) and not close(got[1], expected[1])


def _weights_not_normalised(case, got, expected) -> bool:
    """Positive weights whose rows do not sum to 1, but would be right divided by their sums: exp without the
    division (the output may follow them or not)."""
    weights = np.asarray(got[1], dtype=float)
    if weights.shape != np.shape(expected[1]) or not np.isfinite(weights).all() or (weights < 0).any():
        return False
    totals = weights.sum(axis=-1, keepdims=True)  # (..., T, 1)
    normalised = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
    return not np.allclose(totals[totals > 0], 1.0, atol=1e-3) and close(normalised, expected[1], rtol=1e-3, atol=1e-4)


def _attention_times_the_keys(queries, keys, values, mask=None):
    """The weights multiplied with the keys instead of the values."""
    _, weights = _attend(ref.attention_scores(queries, keys), values, mask)
    return weights @ keys, weights  # (..., T, D), (..., T, S)


ATTENTION_MISTAKES = (
    Mistake("the scores are not scaled by 1/√D before the softmax (D = queries.shape[-1]).",
            like(_attention_unscaled)),
    Mistake("softmax over the wrong axis: each query's weights (a row, axis=-1) must sum to 1; yours sum to 1 "
            "down the columns (over queries).", like(_attention_softmax_over_queries)),
    Mistake("the softmax is missing: weights must be softmax(scores), positive and summing to 1 per query.",
            like(_attention_without_softmax)),
    Mistake("keys are not transposed in the scores: use queries @ keys.T (keys.swapaxes(-1, -2) for a batch).",
            like(_attention_keys_not_transposed)),
    Mistake("the scores are multiplied by √D; divide them by √D (D = queries.shape[-1]) before the softmax.",
            like(_attention_times_sqrt_d)),
    Mistake("your weights are a softmax of queries @ keys^T scaled by the wrong number: divide the scores by √D, "
            "D = queries.shape[-1] (the feature size of queries and keys), not by D, not by the number of keys or "
            "the values' size, and do not multiply.", _softmax_of_another_scale),
    Mistake("the weights you return are the scores (they are negative in places and rows do not sum to 1): "
            "return weights = softmax(scores), the array you multiply with the values.", _weights_are_the_scores),
    Mistake("your weights do not sum to 1 per query: they are the exponentials before the softmax's division. "
            "Divide them by their sum along the keys (axis=-1, keepdims=True).", _weights_not_normalised),
    Mistake("you multiplied the weights by the keys: the output is weights @ values.",
            like(_attention_times_the_keys)),
    Mistake("your output is right, but the weights you return are not the softmax weights that produced it: "
            "return the same (..., T, S) array you multiplied with the values.", _output_right_weights_not),
)


def _scores_product_error(case, error) -> bool:
    """A matrix product whose sizes do not match, and not the one with the values."""
    return matmul_error(case, error) and "values" not in str(error)
