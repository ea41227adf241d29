"""The checks of lesson 02, masks and numerical stability: the causal and padding masks, and masked attention
with fully masked rows.

Lesson: notebooks/02_masks_and_stability.ipynb, its exercise solutions/02_masks_and_stability.ipynb.
Tests: tests/checks/test_l02_masks_and_stability.py.
"""
from __future__ import annotations

import numpy as np

from course_lib import numpy_attention as ref
from course_lib.checking import Case, Check, Mistake, Output, close, like
from course_lib.checks._common import COURSE_ATTENTION, TORCH_ATTENTION, random
from course_lib.checks.l01_attention_by_hand import ATTENTION_MISTAKES, broadcast_error


# causal_mask -----------------------------------------------------------------------------------------------

def _causal_cases(rng):
    sizes = (4, 1, 2, int(rng.integers(5, 9)), int(rng.integers(20, 40)))  # the last beyond any small fixed buffer
    return [Case(f"n={n}", (n,)) for n in sizes]


def _causal_mask_reversed(n):
    """True where a query may not attend (the strict upper triangle): the course's convention turned round."""
    return ~ref.causal_mask(n)  # (n, n)


def _causal_mask_without_the_diagonal(n):
    """j < i instead of j <= i: no token may attend to itself."""
    return np.tril(np.ones((n, n), dtype=bool), k=-1)  # (n, n)


def _causal_mask_upper_triangle(n):
    """j >= i: every query sees the future instead of the past."""
    return np.triu(np.ones((n, n), dtype=bool))  # (n, n)


check_causal_mask = Check(
    name="causal_mask",
    points=1,
    make_cases=_causal_cases,
    implementation="course_lib.numpy_attention.causal_mask",
    outputs=(Output("mask", dtype="bool"),),
    mistakes=(
        Mistake("the meaning is reversed: in this course True = may attend, so query i sees keys j <= i "
                "(the lower triangle and the diagonal are True).", like(_causal_mask_reversed)),
        Mistake("the diagonal is missing: a token may attend to itself (j <= i, not j < i). Use np.tril(..., k=0).",
                like(_causal_mask_without_the_diagonal)),
        Mistake("you built the upper triangle: row i is query i, and it may see keys j <= i, which is the lower "
                "triangle (np.tril).", like(_causal_mask_upper_triangle)),
    ),
    what="Boolean (n, n), True on and below the diagonal.",
    withholds=("course_lib.attention.causal_mask", "course_lib.sparse.sliding_window_mask",
               "course_lib.numpy_attention.attention_mask"),
)


# padding_mask ----------------------------------------------------------------------------------------------

def _padding_cases(rng):
    return [
        Case("lengths [3, 1, 4] and n=4", (np.array([3, 1, 4]), 4)),
        Case("lengths [2, 5] and n=6", (np.array([2, 5]), 6)),
        Case("lengths given as a Python list [1, 2, 3] and n=3", ([1, 2, 3], 3)),
        Case("a sequence of length 0: lengths [0, 2] and n=2", (np.array([0, 2]), 2)),
        Case("random lengths", (rng.integers(0, 8, size=5), 7)),
        Case("a batch of one: lengths [2] and n=3 (the mask keeps its batch axis, (1, 3))", (np.array([2]), 3)),
    ]


def _padding_mask_reversed(lengths, n):
    """True on the padding and False on the real tokens."""
    return ~ref.padding_mask(lengths, n)  # (B, n)


def _padding_mask_off_by_one(lengths, n):
    """position <= length: one padding position too many counts as a real token."""
    return np.arange(n)[None, :] <= np.asarray(lengths)[:, None]  # (B, n)


def _padding_mask_transposed(lengths, n):
    """One column per sequence, (n, B), instead of one row."""
    return ref.padding_mask(lengths, n).T  # (n, B)


def _padding_on_the_left(lengths, n):
    """The real tokens last, the padding first: position >= n - length."""
    return np.arange(n)[None, :] >= n - np.asarray(lengths)[:, None]  # (B, n)


def _padding_mask_as_long_as_the_longest(lengths, n):
    """max(lengths) columns instead of n: right only when the longest sequence fills the batch."""
    lengths = np.asarray(lengths)
    return np.arange(lengths.max())[None, :] < lengths[:, None]  # (B, max(lengths))


def _lengths_used_as_an_array(case, error) -> bool:
    """lengths[:, None] or lengths.max() on a Python list."""
    return isinstance(case.args[0], list) and isinstance(error, (TypeError, AttributeError)) and "list" in str(error)


check_padding_mask = Check(
    name="padding_mask",
    points=1,
    make_cases=_padding_cases,
    implementation="course_lib.numpy_attention.padding_mask",
    outputs=(Output("mask", dtype="bool"),),
    mistakes=(
        Mistake("the meaning is reversed: True must mark real tokens (which may be attended), False the padding.",
                like(_padding_mask_reversed)),
        Mistake("off by one: a sequence of length L has real tokens at positions 0 … L-1, so use "
                "position < length, not <=.", like(_padding_mask_off_by_one)),
        Mistake("the mask is transposed: it must be (B, n), one row per sequence.", like(_padding_mask_transposed)),
        Mistake("this is the left-padding convention (the padding first and the real tokens last, as Hugging Face "
                "tokenizers do with padding_side='left' for batched generation); this exercise pads on the right, "
                "as lesson 02 does: the real tokens come first, so position < length is True.",
                like(_padding_on_the_left)),
        Mistake("your mask has max(lengths) columns; it must have n (the padded length, which may be longer than "
                "every sequence): compare np.arange(n) with the lengths.", like(_padding_mask_as_long_as_the_longest)),
    ),
    error_hints=(
        (_lengths_used_as_an_array,
         "lengths may come as a Python list: turn it into an array first, lengths = np.asarray(lengths)."),
    ),
    what="Boolean (B, n), True for the first `length` positions of each row, lists accepted.",
    withholds=("course_lib.numpy_attention.attention_mask",),
)


# masked_attention (lesson 01's attention mistakes come last) ------------------------------------------------

def _masked_attention_cases(rng):
    lengths = np.array([4, 2, 0])
    return [
        Case("a causal (4, 4) mask", (random(rng, 4, 3), random(rng, 4, 3), random(rng, 4, 2), ref.causal_mask(4))),
        Case("a padding mask of shape (B=2, 1, S=5) broadcast over queries",
             (random(rng, 2, 3, 4), random(rng, 2, 5, 4), random(rng, 2, 5, 2),
              ref.padding_mask([5, 2], 5)[:, None, :])),
        Case("padding and causal combined, with an all-padding sequence (its rows are fully masked)",
             (random(rng, 3, 4, 2), random(rng, 3, 4, 2), random(rng, 3, 4, 3), ref.attention_mask(lengths, 4, True))),
        Case("a mask whose second row is all False (that query may attend to nothing)",
             (random(rng, 3, 4), random(rng, 4, 4), random(rng, 4, 2),
              np.array([[1, 1, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]], dtype=bool))),
        Case("an all-True mask (same as no mask)",
             (random(rng, 3, 4), random(rng, 5, 4), random(rng, 5, 2), np.ones((3, 5), dtype=bool))),
    ]


def _masked_after_softmax(queries, keys, values, mask):
    """The mask multiplied into the weights after the softmax: the kept weights no longer sum to 1."""
    weights = ref.softmax(ref.attention_scores(queries, keys)) * mask  # (..., T, S)
    return weights @ values, weights


def _scores_times_the_mask(queries, keys, values, mask):
    """scores * mask: a hidden score becomes 0, not -inf, so the hidden key keeps the weight exp(0 - max)."""
    weights = ref.softmax(ref.attention_scores(queries, keys) * mask)  # (..., T, S)
    return weights @ values, weights


def _rows_with_a_key(case) -> np.ndarray:
    """(..., T): True for the queries that may attend to at least one key."""
    shape = ref.attention_scores(case.args[0], case.args[1]).shape
    return np.broadcast_to(case.args[3], shape).any(-1)


def _same_where_a_key_is_allowed(case, got, mistaken) -> bool:
    """``got`` equals the mistake's (output, weights) on every query that has a key (fully masked rows aside)."""
    rows = _rows_with_a_key(case)
    try:
        return all(np.shape(g) == np.shape(m) and close(np.asarray(g)[rows], np.asarray(m)[rows], rtol=1e-3, atol=1e-4)
                   for g, m in zip(got, mistaken))
    except (IndexError, TypeError, ValueError):
        return False


def _scores_multiplied_by_the_mask(case, got, expected) -> bool:
    with np.errstate(all="ignore"):
        return _same_where_a_key_is_allowed(case, got, _scores_times_the_mask(*case.args))


def _nan_turned_into_numbers(case, got, expected) -> bool:
    """Where a key may be attended, the weights are all 0, or uniform over the allowed keys: what np.nan_to_num
    makes of the NaN that arithmetic with -inf (0 * -inf) leaves at every allowed position."""
    weights = np.asarray(got[1], dtype=float)
    if weights.shape != np.shape(expected[1]):
        return False
    mask = np.broadcast_to(case.args[3], weights.shape)
    rows = _rows_with_a_key(case)
    uniform = mask / np.maximum(mask.sum(-1, keepdims=True), 1)  # (..., T, S)
    return bool(np.all(weights[rows] == 0)) or close(weights[rows], uniform[rows], rtol=1e-3, atol=1e-4)


def _mask_given_a_query_axis(queries, keys, values, mask):
    """mask[..., None, :] on a mask that already has its query axis: the result grows an axis."""
    scores = np.where(np.asarray(mask)[..., None, :], ref.attention_scores(queries, keys), -np.inf)  # one axis more
    weights = ref.softmax(scores)
    return weights @ values, weights


def _masked_by_filling_a_large_negative(queries, keys, values, mask):
    """masked_fill with -1e9 or finfo.min: a fully masked row has equal scores, so its softmax is uniform."""
    weights = ref.softmax(np.where(mask, ref.attention_scores(queries, keys), -1e9))  # (..., T, S)
    return weights @ values, weights


def _masked_by_adding_a_large_negative(queries, keys, values, mask):
    """scores + (1 - mask) * -10000 (BERT): a fully masked row is shifted as a whole, so it keeps its unmasked
    softmax."""
    weights = ref.softmax(ref.attention_scores(queries, keys) + (1 - mask) * -10000.0)  # (..., T, S)
    return weights @ values, weights


def _fully_masked_rows_give_nan(queries, keys, values, mask):
    """-inf and a plain softmax: a fully masked row computes exp(-inf - -inf) = NaN."""
    scores = np.where(mask, ref.attention_scores(queries, keys), -np.inf)  # (..., T, S)
    exps = np.exp(scores - scores.max(axis=-1, keepdims=True))  # NaN in fully masked rows
    weights = exps / exps.sum(axis=-1, keepdims=True)  # (..., T, S)
    return weights @ values, weights


def _has_fully_masked_row(case) -> bool:
    return not np.broadcast_to(case.args[3], ref.attention_scores(case.args[0], case.args[1]).shape).any(-1).all()


def _mask_reversed(case, got, expected) -> bool:
    """The answer for the opposite mask (True read as 'hide'), fully masked rows handled or NaN."""
    queries, keys, values, mask = case.args
    flipped = Case(case.label, (queries, keys, values, ~mask))
    return any(like(attention)(flipped, got, expected)
               for attention in (ref.scaled_dot_product_attention, _fully_masked_rows_give_nan))


def _nan_in_fully_masked_rows(case, got, expected) -> bool:
    """A case with a fully masked row, answered with NaN there (in the weights, the output, or both)."""
    if not _has_fully_masked_row(case):
        return False
    with np.errstate(all="ignore"):
        mistaken = _fully_masked_rows_give_nan(*case.args)
    return (like(_fully_masked_rows_give_nan)(case, got, expected)
            or close(got[1], mistaken[1], rtol=1e-3, atol=1e-4) and close(got[0], expected[0], rtol=1e-3, atol=1e-4))


def _large_negative_convention(case, got, expected) -> bool:
    """Right on every query that has a key; a fully masked query answered as a large finite negative number
    answers it: uniform weights (filled) or its unmasked softmax (added)."""
    if not _has_fully_masked_row(case) or not _same_where_a_key_is_allowed(case, got, expected):
        return False
    rows = ~_rows_with_a_key(case)  # (..., T): the fully masked queries
    with np.errstate(all="ignore"):
        answers = (_masked_by_filling_a_large_negative(*case.args), _masked_by_adding_a_large_negative(*case.args))
    try:
        return any(all(close(np.asarray(g)[rows], np.asarray(a)[rows], rtol=1e-3, atol=1e-4) for g, a in zip(got, answer))
                   for answer in answers)
    except (IndexError, TypeError, ValueError):
        return False


def _nan_everywhere(case, got, expected) -> bool:
    """Every number is NaN: arithmetic with -inf (0 * -inf) instead of np.where."""
    return all(np.isnan(np.asarray(result, dtype=float)).all() for result in got)


def _boolean_index_error(case, error) -> bool:
    """scores[~mask] = ..., weights[~mask.any(-1)] = 0 or np.putmask(scores, ~mask, ...) with a mask that only
    broadcasts to the scores' shape."""
    return ((isinstance(error, IndexError) and "boolean index did not match" in str(error))
            or "mask and data must be the same size" in str(error))  # np.putmask


def _mask_does_not_fit(case, error) -> bool:
    """numpy's complaint about a mask that no longer fits the scores (np.where, &, or np.broadcast_to)."""
    return broadcast_error(case, error) or "axis remapping" in str(error)


check_masked_attention = Check(
    name="masked_attention",
    points=2,
    make_cases=_masked_attention_cases,
    implementation="course_lib.numpy_attention.scaled_dot_product_attention",
    outputs=(Output("output"), Output("weights")),
    mistakes=(
        Mistake("the mask's meaning is reversed: True = may attend, so keep the scores where mask is True and set "
                "them to -inf where it is False: np.where(mask, scores, -np.inf).", _mask_reversed),
        Mistake("the mask is applied after the softmax: masked weights are 0 but the rest no longer sum to 1. "
                "Mask the scores (set them to -inf) before the softmax.", like(_masked_after_softmax)),
        Mistake("you multiplied the scores by the mask: a hidden score becomes 0, not -inf, so the hidden key "
                "still gets the weight exp(0 - max) > 0 (and a hidden key can even win when the kept scores are "
                "negative). Hide it with np.where(mask, scores, -np.inf).", _scores_multiplied_by_the_mask),
        Mistake("your weights are 0 (or uniform) even where a key may be attended: most likely arithmetic with "
                "-inf, such as scores + (1 - mask) * -np.inf, made NaN at every allowed position (0 * -inf = NaN), "
                "and np.nan_to_num turned that NaN into 0. Use np.where(mask, scores, -np.inf).",
                _nan_turned_into_numbers),
        Mistake("your result has an extra axis: the mask already broadcasts against the scores (..., T, S) (it is "
                "(T, S), (B, 1, S) or (B, T, S)), so mask[..., None, :] adds a second query axis. Use the mask as "
                "it is given.",
                like(_mask_given_a_query_axis)),
        Mistake("a query whose keys are all masked gives NaN, and every other row is right. Either its scores "
                "are all -inf and the softmax's shift computes -inf - (-inf) = NaN, or you masked after the "
                "softmax and renormalised, and its kept weights sum to 0, so 0/0 = NaN. The course follows torch "
                ">= 2.5: such a row gets zero weights and a zero output. Detect rows with no True in the mask "
                "(mask.any(axis=-1)) and set them to 0.", _nan_in_fully_masked_rows),
        Mistake("every query with a key to attend to is right, but a query whose keys are all masked gets uniform "
                "weights (or the weights it would have unmasked), and its output is an average of the values: this "
                "is the additive large-negative mask convention: a finite number such as -1e9 (The Annotated "
                "Transformer), -10000 (the original BERT) or np.finfo(dtype).min (Hugging Face transformers) "
                "filled into or added to the hidden scores, so a fully masked row is a row of equal scores (uniform "
                "weights) or one shifted as a whole (its unmasked weights). This exercise uses -inf with zero weights and a zero output for such a row, "
                "as its text says and as torch's F.scaled_dot_product_attention does since 2.5, because a query "
                "with nothing to attend to should add nothing, not an average of padding. Keep your masking and "
                "set the rows where mask.any(axis=-1) is False to 0.", _large_negative_convention),
        Mistake("NaN everywhere: multiplying the mask by -inf gives 0 * -inf = NaN at the allowed positions. Use "
                "np.where(mask, scores, -np.inf) instead of arithmetic with -inf.", _nan_everywhere),
        *ATTENTION_MISTAKES,
    ),
    error_hints=(
        (_mask_does_not_fit,
         "Every mask this function is given already broadcasts against the scores (..., T, S): it has its query "
         "axis ((T, S), (B, 1, S) or (B, T, S)). Use it as it is, np.where(mask, scores, -np.inf); adding an axis "
         "(mask[:, None, :]) or reshaping it breaks the broadcast."),
        (_boolean_index_error,
         "A boolean array can index only an array of its own shape: this mask broadcasts against the scores "
         "(..., T, S) but has fewer entries, so scores[~mask] fails (and so do weights[~mask.any(-1)] and "
         "np.putmask). Use "
         "np.where(mask, scores, -np.inf), and np.where on mask.any(axis=-1, keepdims=True) for the fully masked "
         "rows, or np.broadcast_to(mask, scores.shape) first."),
    ),
    what="Masked keys get weight 0, the rest sum to 1, broadcast masks work, fully masked rows give zeros.",
    withholds=COURSE_ATTENTION,
    library=TORCH_ATTENTION,
)


CHECKS = (check_causal_mask, check_padding_mask, check_masked_attention)
