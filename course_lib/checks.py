"""Learner checks: ``checks.check_<function>(your_function)`` in the cell after each graded exercise.

Each check runs your function on seeded cases (edge cases included), compares with the course's reference,
and prints ✅ with what it verified or ❌ with what went wrong and the most likely cause. It never raises and
returns a :class:`~course_lib.checking.CheckResult` (``passed``, ``points``, ``max_points``, ``message``).
The machinery lives in :mod:`course_lib.checking`; this module holds one check per graded function, lesson
by lesson. ``CHECKS`` maps each graded function's name to its check.
"""
from __future__ import annotations

import numpy as np

from course_lib import calling
from course_lib import numpy_attention as ref
from course_lib.checking import Case, Check, Mistake, Output, like

CHECKS: dict[str, Check] = {}


def _register(check: Check) -> Check:
    CHECKS[check.name] = check
    return check


def _random(rng: np.random.Generator, *shape: int, dtype=np.float64) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def _matmul_error(case: Case, error: BaseException) -> bool:
    return isinstance(error, ValueError) and ("matmul" in str(error) or "mismatch" in str(error))


def _torch_shape_error(case: Case, error: BaseException) -> bool:
    """A torch error from tensors whose sizes do not fit (a matmul, an elementwise op, a broadcast)."""
    return any(text in str(error) for text in ("must match the size", "mat1 and mat2", "size of tensor"))


def _rank(case: Case, position: int = 0) -> int:
    return np.ndim(case.args[position])


# ==========================================================================================================
# Lesson 01: attention by hand
# ==========================================================================================================

def _softmax_cases(rng):
    return [
        Case("a vector of 5 scores", (_random(rng, 5),)),
        Case("a (3, 4) matrix, softmax along each row (axis=-1)", (_random(rng, 3, 4),)),
        Case("a (4, 4) matrix (square, so a wrong axis cannot hide behind a shape error)", (_random(rng, 4, 4),)),
        Case("a (2, 3, 5) batch", (_random(rng, 2, 3, 5),)),
        Case("a (3, 4) matrix with axis=0 (columns sum to 1)", (_random(rng, 3, 4),), {"axis": 0}),
        Case("large logits [[1000, 1001, 1002]] (overflow test)", (np.array([[1000.0, 1001.0, 1002.0]]),)),
        Case("very negative logits [[-1000, -1001, -1002]] (underflow test)", (np.array([[-1000.0, -1001.0, -1002.0]]),)),
        Case("float32 scores of shape (2, 6)", (_random(rng, 2, 6, dtype=np.float32),)),
    ]


def _rows_do_not_sum_to_one(case, got, expected) -> bool:
    axis = case.kwargs.get("axis", -1)
    sums = np.sum(np.asarray(got, dtype=float), axis=axis)
    return got.shape == expected.shape and not np.allclose(sums, 1.0, atol=1e-4)


def _overflowed(case, got, expected) -> bool:
    return np.abs(case.args[0]).max() > 100 and not np.isfinite(np.asarray(got, dtype=float)).all()


def _softmax_no_keepdims(x, axis=-1):
    return np.exp(x - np.max(x, axis=axis)) / np.sum(np.exp(x - np.max(x, axis=axis)), axis=axis)


check_softmax = _register(Check(
    name="softmax",
    points=1,
    make_cases=_softmax_cases,
    reference=ref.softmax,
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
))


def _scores_cases(rng):
    return [
        Case("queries (3, 4) and keys (5, 4)", (_random(rng, 3, 4), _random(rng, 5, 4))),
        Case("queries (2, 8) and keys (6, 8)", (_random(rng, 2, 8), _random(rng, 6, 8))),
        Case("square queries and keys (4, 4), (4, 4)", (_random(rng, 4, 4), _random(rng, 4, 4))),
        Case("a batch: queries (2, 3, 4) and keys (2, 5, 4)", (_random(rng, 2, 3, 4), _random(rng, 2, 5, 4))),
        Case("float32 queries (1, 16) and keys (7, 16)",
             (_random(rng, 1, 16, dtype=np.float32), _random(rng, 7, 16, dtype=np.float32))),
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
    (lambda case, error: _matmul_error(case, error) and _rank(case) > 2,
     "For a batch, keys.T reverses every axis; swap only the last two: keys.swapaxes(-1, -2)."),
    (_matmul_error, "The inner sizes must match: transpose keys' last two axes, np.swapaxes(keys, -1, -2), so "
                    "that (T, D) @ (D, S) gives (T, S)."),
)

check_attention_scores = _register(Check(
    name="attention_scores",
    points=1,
    make_cases=_scores_cases,
    reference=ref.attention_scores,
    implementation="course_lib.numpy_attention.attention_scores",
    outputs=(Output("scores"),),
    mistakes=_SCORES_MISTAKES,
    error_hints=_TRANSPOSE_HINTS,
    what="Shape (..., T, S), keys transposed, scaled by 1/√D, batches work.",
))


def _attention_cases(rng):
    return [
        Case("queries (3, 4), keys (5, 4), values (5, 2)", (_random(rng, 3, 4), _random(rng, 5, 4), _random(rng, 5, 2))),
        Case("square: queries, keys (4, 4), values (4, 4)", (_random(rng, 4, 4), _random(rng, 4, 4), _random(rng, 4, 4))),
        Case("a batch: queries (2, 3, 6), keys (2, 7, 6), values (2, 7, 3)",
             (_random(rng, 2, 3, 6), _random(rng, 2, 7, 6), _random(rng, 2, 7, 3))),
        Case("one query, one key: (1, 5), (1, 5), (1, 3)", (_random(rng, 1, 5), _random(rng, 1, 5), _random(rng, 1, 3))),
        Case("float32: queries (3, 8), keys (4, 8), values (4, 8)",
             (_random(rng, 3, 8, dtype=np.float32), _random(rng, 4, 8, dtype=np.float32), _random(rng, 4, 8, dtype=np.float32))),
    ]


def _attend(scores, values, mask=None, axis=-1):
    """Attention from given (possibly wrong) scores: how each mistake below produces its output."""
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = ref.softmax(scores, axis=axis)
    return weights @ values, weights


_ATTENTION_MISTAKES = (
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

check_scaled_dot_product_attention = _register(Check(
    name="scaled_dot_product_attention",
    points=2,
    make_cases=_attention_cases,
    reference=ref.scaled_dot_product_attention,
    implementation="course_lib.numpy_attention.scaled_dot_product_attention",
    outputs=(Output("output"), Output("weights")),
    mistakes=_ATTENTION_MISTAKES,
    error_hints=(
        (lambda case, error: _matmul_error(case, error) and "values" not in str(error),
         "Check the order of the products: scores = queries @ keys^T (T, S); output = weights @ values (T, Dv)."),
    ),
    what="Returns (output (..., T, Dv), weights (..., T, S)); weights are a softmax over keys of scaled scores.",
))


# ==========================================================================================================
# Lesson 02: masks and numerical stability
# ==========================================================================================================

check_causal_mask = _register(Check(
    name="causal_mask",
    points=1,
    make_cases=lambda rng: [Case(f"n={n}", (n,)) for n in (4, 1, 2, int(rng.integers(5, 9)))],
    reference=ref.causal_mask,
    implementation="course_lib.numpy_attention.causal_mask",
    outputs=(Output("mask", dtype="bool"),),
    mistakes=(
        Mistake("the meaning is reversed: in this course True = may attend, so query i sees keys j <= i "
                "(the lower triangle and the diagonal are True).", like(lambda n: ~ref.causal_mask(n))),
        Mistake("the diagonal is missing: a token may attend to itself (j <= i, not j < i). Use np.tril(..., k=0).",
                like(lambda n: np.tril(np.ones((n, n), dtype=bool), k=-1))),
        Mistake("you built the upper triangle: row i is query i, and it may see keys j <= i, which is the lower "
                "triangle (np.tril).", like(lambda n: np.triu(np.ones((n, n), dtype=bool)))),
    ),
    what="Boolean (n, n), True on and below the diagonal.",
))


def _padding_cases(rng):
    return [
        Case("lengths [3, 1, 4] and n=4", (np.array([3, 1, 4]), 4)),
        Case("lengths [2, 5] and n=6", (np.array([2, 5]), 6)),
        Case("lengths given as a Python list [1, 2, 3] and n=3", ([1, 2, 3], 3)),
        Case("a sequence of length 0: lengths [0, 2] and n=2", (np.array([0, 2]), 2)),
        Case("random lengths", (rng.integers(0, 8, size=5), 7)),
    ]


check_padding_mask = _register(Check(
    name="padding_mask",
    points=1,
    make_cases=_padding_cases,
    reference=ref.padding_mask,
    implementation="course_lib.numpy_attention.padding_mask",
    outputs=(Output("mask", dtype="bool"),),
    mistakes=(
        Mistake("the meaning is reversed: True must mark real tokens (which may be attended), False the padding.",
                like(lambda lengths, n: ~ref.padding_mask(lengths, n))),
        Mistake("off by one: a sequence of length L has real tokens at positions 0 … L-1, so use "
                "position < length, not <=.",
                like(lambda lengths, n: np.arange(n)[None, :] <= np.asarray(lengths)[:, None])),
        Mistake("the mask is transposed: it must be (B, n), one row per sequence.",
                like(lambda lengths, n: ref.padding_mask(lengths, n).T)),
    ),
    what="Boolean (B, n), True for the first `length` positions of each row, lists accepted.",
))


def _masked_attention_cases(rng):
    lengths = np.array([4, 2, 0])
    return [
        Case("a causal (4, 4) mask", (_random(rng, 4, 3), _random(rng, 4, 3), _random(rng, 4, 2), ref.causal_mask(4))),
        Case("a padding mask of shape (B=2, 1, S=5) broadcast over queries",
             (_random(rng, 2, 3, 4), _random(rng, 2, 5, 4), _random(rng, 2, 5, 2),
              ref.padding_mask([5, 2], 5)[:, None, :])),
        Case("padding and causal combined, with an all-padding sequence (its rows are fully masked)",
             (_random(rng, 3, 4, 2), _random(rng, 3, 4, 2), _random(rng, 3, 4, 3), ref.attention_mask(lengths, 4, True))),
        Case("a mask whose second row is all False (that query may attend to nothing)",
             (_random(rng, 3, 4), _random(rng, 4, 4), _random(rng, 4, 2),
              np.array([[1, 1, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]], dtype=bool))),
        Case("an all-True mask (same as no mask)",
             (_random(rng, 3, 4), _random(rng, 5, 4), _random(rng, 5, 2), np.ones((3, 5), dtype=bool))),
    ]


def _masked_after_softmax(q, k, v, mask):
    weights = ref.softmax(ref.attention_scores(q, k)) * mask
    return weights @ v, weights


def _large_negative(q, k, v, mask):
    weights = ref.softmax(np.where(mask, ref.attention_scores(q, k), -1e9))
    return weights @ v, weights


def _nan_rows(q, k, v, mask):
    scores = np.where(mask, ref.attention_scores(q, k), -np.inf)
    exps = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights = exps / exps.sum(axis=-1, keepdims=True)
    return weights @ v, weights


def _has_fully_masked_row(case) -> bool:
    return not np.broadcast_to(case.args[3], ref.attention_scores(case.args[0], case.args[1]).shape).any(-1).all()


check_masked_attention = _register(Check(
    name="masked_attention",
    points=2,
    make_cases=_masked_attention_cases,
    reference=ref.scaled_dot_product_attention,
    implementation="course_lib.numpy_attention.scaled_dot_product_attention",
    outputs=(Output("output"), Output("weights")),
    mistakes=(
        Mistake("the mask's meaning is reversed: True = may attend, so keep the scores where mask is True and set "
                "them to -inf where it is False: np.where(mask, scores, -np.inf).",
                lambda case, got, exp: any(like(variant)(Case("", case.args[:3] + (~case.args[3],)), got, exp)
                                           for variant in (ref.scaled_dot_product_attention, _nan_rows))),
        Mistake("the mask is applied after the softmax: masked weights are 0 but the rest no longer sum to 1. "
                "Mask the scores (set them to -inf) before the softmax.", like(_masked_after_softmax)),
        Mistake("a query whose keys are all masked gives NaN (exp(-inf - -inf) = exp(nan)). The course follows "
                "torch >= 2.5: such a row gets zero weights and a zero output. Detect rows with no True in the "
                "mask (mask.any(axis=-1)) and set them to 0.",
                lambda case, got, exp: _has_fully_masked_row(case) and like(_nan_rows)(case, got, exp)),
        Mistake("a query whose keys are all masked gets uniform weights: with a large negative number (or -inf "
                "after a max shift) instead of a special case, nothing-to-attend-to becomes 'attend to every "
                "key equally'. The course follows torch >= 2.5: such a row gets zero weights and a zero output.",
                lambda case, got, exp: _has_fully_masked_row(case) and like(_large_negative)(case, got, exp)),
        Mistake("NaN everywhere: multiplying the mask by -inf gives 0 * -inf = NaN at the allowed positions. Use "
                "np.where(mask, scores, -np.inf) instead of arithmetic with -inf.",
                lambda case, got, exp: all(np.isnan(np.asarray(g, dtype=float)).all() for g in got)),
        *_ATTENTION_MISTAKES,
    ),
    error_hints=(
        (lambda case, error: "broadcast" in str(error),
         "The mask must broadcast against the scores (..., T, S): a padding mask (B, S) needs a query axis, "
         "mask[:, None, :]."),
    ),
    what="Masked keys get weight 0, the rest sum to 1, broadcast masks work, fully masked rows give zeros.",
))


# ==========================================================================================================
# Lesson 03: self-attention in PyTorch
# ==========================================================================================================

def _tensor(rng: np.random.Generator, *shape: int, dtype: str = "float32"):
    import torch

    return torch.from_numpy(rng.standard_normal(shape)).to(getattr(torch, dtype))


def _sdpa_cases(rng):
    import torch

    mask = torch.from_numpy(rng.random((4, 6)) < 0.6)
    mask[2] = False  # query 2 may attend to nothing
    additive = torch.zeros(4, 6)
    additive[:, 4:] = float("-inf")
    additive[:, 0] = 1.5  # an additive mask may also hold a bias
    grad_inputs = [_tensor(rng, 2, 3, 4).requires_grad_() for _ in range(3)]
    return [
        Case("query (2, 3, 4), key (2, 5, 4), value (2, 5, 3), no mask", (_tensor(rng, 2, 3, 4), _tensor(rng, 2, 5, 4), _tensor(rng, 2, 5, 3))),
        Case("4-D with heads: (B=2, H=3, T=4, D=8), S=6",
             (_tensor(rng, 2, 3, 4, 8), _tensor(rng, 2, 3, 6, 8), _tensor(rng, 2, 3, 6, 8))),
        Case("a boolean attn_mask (4, 6) with one fully masked row (True = may attend)",
             (_tensor(rng, 1, 4, 5), _tensor(rng, 1, 6, 5), _tensor(rng, 1, 6, 2)), {"attn_mask": mask}),
        Case("an additive float attn_mask (4, 6) holding 0, 1.5 and -inf",
             (_tensor(rng, 2, 4, 5), _tensor(rng, 2, 6, 5), _tensor(rng, 2, 6, 2)), {"attn_mask": additive}),
        Case("is_causal=True with T = S = 5", (_tensor(rng, 2, 5, 4), _tensor(rng, 2, 5, 4), _tensor(rng, 2, 5, 4)),
             {"is_causal": True}),
        Case("is_causal=True with T = 3 queries and S = 5 keys (mask (T, S), lower triangle from the top left)",
             (_tensor(rng, 2, 3, 4), _tensor(rng, 2, 5, 4), _tensor(rng, 2, 5, 4)), {"is_causal": True}),
        Case("float64 inputs (3, 7), (4, 7), (4, 2)",
             (_tensor(rng, 3, 7, dtype="float64"), _tensor(rng, 4, 7, dtype="float64"), _tensor(rng, 4, 2, dtype="float64"))),
        Case("inputs that require gradients (autograd must flow through)", tuple(grad_inputs)),
    ]


def _torch_variant(scale=True, axis=-1, reverse_bool=False, multiply_float=False, ignore_causal=False,
                   upper_causal=False, nan_rows=False, after_softmax=False, add_bool=False, large_negative=False):
    """Attention as a learner might get it wrong; each flag is one mistake."""

    def attend(query, key, value, attn_mask=None, is_causal=False):
        import torch

        from course_lib.attention import masked_softmax

        scores = query @ key.transpose(-2, -1)  # (..., T, S)
        if scale:
            scores = scores / query.shape[-1] ** 0.5
        if is_causal and not ignore_causal:
            ones = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool)
            attn_mask = ones.triu() if upper_causal else ones.tril()  # (T, S)
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            if after_softmax:
                weights = torch.softmax(scores, dim=-1) * attn_mask
                return weights @ value, weights
            if add_bool:
                scores = scores + attn_mask
            else:
                fill = -1e9 if large_negative else float("-inf")
                scores = scores.masked_fill(attn_mask if reverse_bool else ~attn_mask, fill)
        elif attn_mask is not None:
            scores = scores * attn_mask if multiply_float else scores + attn_mask
        weights = torch.softmax(scores, dim=axis) if (nan_rows or axis != -1) else masked_softmax(scores)
        return weights @ value, weights

    return attend


_TORCH_ATTENTION_MISTAKES = (
    Mistake("the boolean mask's meaning is reversed: in torch's convention True = may attend; fill the scores "
            "with -inf where the mask is False: scores.masked_fill(~attn_mask, float('-inf')).",
            like(_torch_variant(reverse_bool=True))),
    Mistake("a float attn_mask is added to the scores (it holds 0 or -inf, or a bias), not multiplied.",
            like(_torch_variant(multiply_float=True))),
    Mistake("the mask is applied after the softmax: masked weights are 0 but the rest no longer sum to 1. "
            "Fill the masked scores with -inf before the softmax.", like(_torch_variant(after_softmax=True))),
    Mistake("a boolean attn_mask was added to the scores as numbers (True = 1, False = 0); a boolean mask "
            "says which keys may be attended: scores.masked_fill(~attn_mask, float('-inf')).",
            like(_torch_variant(add_bool=True))),
    Mistake("masked keys were filled with a large negative number: a query whose keys are all masked then "
            "spreads its weight evenly instead of getting zeros. Use -inf and give such rows zero weights.",
            like(_torch_variant(large_negative=True))),
    Mistake("is_causal=True is ignored: build the (T, S) lower-triangular mask (torch.ones(T, S).tril()) and "
            "use it.", lambda case, got, exp: case.kwargs.get("is_causal") and like(_torch_variant(ignore_causal=True))(case, got, exp)),
    Mistake("your causal mask lets queries see the future: query i may attend keys j <= i (lower triangle, "
            ".tril()), not j >= i.", like(_torch_variant(upper_causal=True))),
    Mistake("the scores are not scaled by 1/√D (D = query.shape[-1]).", like(_torch_variant(scale=False))),
    Mistake("softmax over the wrong dimension: each query's weights (dim=-1) must sum to 1.",
            like(_torch_variant(axis=-2))),
    Mistake("a query whose keys are all masked gives NaN. Like torch >= 2.5, such a row must get zero weights "
            "and a zero output: after the softmax, replace those rows by 0 (e.g. torch.where on "
            "attn_mask.any(-1)), or divide by a total that is never 0.",
            lambda case, got, exp: any(np.isnan(np.asarray(g.detach(), dtype=float)).any() for g in got)
            and like(_torch_variant(nan_rows=True))(case, got, exp)),
)


def _sdpa_reference(*args, **kwargs):
    from course_lib.attention import scaled_dot_product_attention

    return scaled_dot_product_attention(*args, **kwargs)


check_sdpa = _register(Check(
    name="sdpa",
    points=2,
    make_cases=_sdpa_cases,
    reference=_sdpa_reference,
    implementation="course_lib.attention.scaled_dot_product_attention",
    outputs=(Output("output", kind="torch"), Output("weights", kind="torch")),
    mistakes=_TORCH_ATTENTION_MISTAKES,
    error_hints=(
        (_torch_shape_error,
         "Transpose only the last two dimensions of key: key.transpose(-2, -1) (key.T reverses all of them)."),
    ),
    what="Matches torch's conventions: boolean and additive masks, is_causal, batches and heads, float64, "
         "zero rows when fully masked, and gradients flow.",
))


def _self_attention_cases(rng):
    import torch

    cases = []
    for label, d_model, d_head, batch, length, mask in (
        ("d_model=8, d_head=4, x (2, 5, 8)", 8, 4, 2, 5, None),
        ("d_model=6, d_head=6, x (1, 3, 6)", 6, 6, 1, 3, None),
        ("d_model=8, d_head=2, x (2, 4, 8) with a causal attn_mask", 8, 2, 2, 4, torch.ones(4, 4, dtype=torch.bool).tril()),
    ):
        weights = {name: _tensor(rng, d_head, d_model) / d_model ** 0.5 for name in ("query", "key", "value")}
        cases.append(Case(label, (d_model, d_head, weights, _tensor(rng, batch, length, d_model), mask)))
    return cases


def _self_attention_reference(d_model, d_head, weights, x, mask):
    from course_lib.attention import SelfAttention

    return calling.run_module(SelfAttention, d_model, d_head, weights, x, mask)


def _self_attention_variant(**mistake):
    attend = _torch_variant(**mistake)

    def run(d_model, d_head, weights, x, mask):
        projected = [x @ weights[name].T for name in ("query", "key", "value")]  # 3 x (B, T, D)
        return attend(*projected, attn_mask=mask)[0]

    return run


check_SelfAttention = _register(Check(
    name="SelfAttention",
    points=2,
    make_cases=_self_attention_cases,
    reference=_self_attention_reference,
    implementation="course_lib.attention.SelfAttention",
    call=calling.call_self_attention,
    outputs=(Output("output", kind="torch"),),
    error_hints=(
        (lambda case, error: "cannot be multiplied" in str(error),
         "Call the layers, self.query(x), rather than multiplying by their weights: nn.Linear stores its weight "
         "as (out, in), so x @ weight would need a .T."),
    ),
    mistakes=(
        Mistake("you scaled by √d_model; the scores are dot products of d_head-sized vectors, so scale by "
                "√d_head.", lambda case, got, exp: case.args[0] != case.args[1] and close_to_scaled(case, got)),
        Mistake("the scores are not scaled by 1/√d_head.", like(_self_attention_variant(scale=False))),
        Mistake("softmax over the wrong dimension: each query's weights (dim=-1) must sum to 1.",
                like(_self_attention_variant(axis=-2))),
        Mistake("attn_mask is ignored: pass it on to your attention function.",
                lambda case, got, exp: case.args[4] is not None and like(_self_attention_variant())(
                    Case("", case.args[:4] + (None,)), got, exp)),
        Mistake("the mask's meaning is reversed: True = may attend.", like(_self_attention_variant(reverse_bool=True))),
    ),
    validate=calling.validate_self_attention,
    what="Projections query/key/value are nn.Linear(d_model, d_head, bias=False); output (B, T, d_head) "
         "equals the reference with the same weights, with and without a mask.",
))


def close_to_scaled(case, got) -> bool:
    """The output one gets when dividing the scores by sqrt(d_model) instead of sqrt(d_head)."""
    d_model, d_head, weights, x, mask = case.args
    rescaled = {name: w for name, w in weights.items()}
    factor = (d_head / d_model) ** 0.5  # scores * factor == scores / sqrt(d_model) * sqrt(d_head)
    rescaled["query"] = weights["query"] * factor
    return like(_self_attention_reference)(Case("", (d_model, d_head, rescaled, x, mask)), got, None)


# ==========================================================================================================
# Lesson 04: multi-head attention
# ==========================================================================================================

def _split_reference(x, num_heads):
    from course_lib.multihead import split_heads

    return split_heads(x, num_heads)


def _merge_reference(x):
    from course_lib.multihead import merge_heads

    return merge_heads(x)


check_split_heads = _register(Check(
    name="split_heads",
    points=1,
    make_cases=lambda rng: [
        Case("x (2, 5, 12) into 3 heads", (_tensor(rng, 2, 5, 12), 3)),
        Case("x (1, 4, 8) into 2 heads", (_tensor(rng, 1, 4, 8), 2)),
        Case("x (3, 6, 6) into 6 heads of size 1", (_tensor(rng, 3, 6, 6), 6)),
        Case("x (2, 3, 4) into 1 head", (_tensor(rng, 2, 3, 4), 1)),
    ],
    reference=_split_reference,
    implementation="course_lib.multihead.split_heads",
    outputs=(Output("heads", kind="torch"),),
    mistakes=(
        Mistake("you reshaped straight to (B, H, T, D): that cuts the (T, E) block in memory order, so a 'head' "
                "gets pieces of different positions. View as (B, T, H, D) first, then .transpose(1, 2).",
                like(lambda x, h: x.reshape(x.shape[0], h, x.shape[1], x.shape[2] // h))),
        Mistake("the heads axis must come second: (B, H, T, D). After .view(B, T, H, D), add .transpose(1, 2).",
                like(lambda x, h: x.view(x.shape[0], x.shape[1], h, x.shape[2] // h))),
    ),
    what="(B, T, E) -> (B, H, T, E/H), head h holding features h*D ... (h+1)*D - 1 of every position.",
))

check_merge_heads = _register(Check(
    name="merge_heads",
    points=1,
    make_cases=lambda rng: [
        Case("x (2, 3, 5, 4): 3 heads of size 4", (_tensor(rng, 2, 3, 5, 4),)),
        Case("x (1, 2, 4, 3)", (_tensor(rng, 1, 2, 4, 3),)),
        Case("x (2, 1, 3, 6): one head", (_tensor(rng, 2, 1, 3, 6),)),
        Case("a non-contiguous x (from a transpose)", (_tensor(rng, 2, 4, 3, 5).transpose(1, 2),)),
    ],
    reference=_merge_reference,
    implementation="course_lib.multihead.merge_heads",
    outputs=(Output("merged", kind="torch"),),
    mistakes=(
        Mistake("you reshaped (B, H, T, D) straight to (B, T, H*D): positions and heads get mixed up. "
                "Transpose to (B, T, H, D) first: x.transpose(1, 2).reshape(B, T, H * D).",
                like(lambda x: x.reshape(x.shape[0], x.shape[2], -1))),
    ),
    error_hints=(
        (lambda case, error: "view size is not compatible" in str(error),
         "After a transpose the tensor is not contiguous, so .view fails: use .reshape (or .contiguous().view)."),
    ),
    what="(B, H, T, D) -> (B, T, H*D), the inverse of split_heads, non-contiguous input included.",
))


def _mha_cases(rng):
    import torch

    cases = []
    for label, embed_dim, num_heads, batch, length, source, kind in (
        ("self-attention, E=8, H=2, x (2, 5, 8)", 8, 2, 2, 5, 5, None),
        ("cross-attention, E=12, H=3, query (2, 4, 12), key = value (2, 6, 12)", 12, 3, 2, 4, 6, None),
        ("a boolean attn_mask (T, S) = (5, 5), causal", 8, 4, 1, 5, 5, "causal"),
        ("a key_padding_mask (B, S), True = real token", 12, 2, 2, 4, 6, "padding"),
    ):
        # the weights of a torch.nn.MultiheadAttention(embed_dim, num_heads), as plain tensors
        weights = {"in_proj_weight": _tensor(rng, 3 * embed_dim, embed_dim) / embed_dim ** 0.5,
                   "in_proj_bias": _tensor(rng, 3 * embed_dim) / embed_dim ** 0.5,
                   "out_proj.weight": _tensor(rng, embed_dim, embed_dim) / embed_dim ** 0.5,
                   "out_proj.bias": _tensor(rng, embed_dim) / embed_dim ** 0.5}
        query = _tensor(rng, batch, length, embed_dim)
        memory = query if source == length and kind != "padding" else _tensor(rng, batch, source, embed_dim)
        options = {}
        if kind == "causal":
            options["attn_mask"] = torch.ones(length, length, dtype=torch.bool).tril()
        if kind == "padding":
            options["key_padding_mask"] = torch.tensor([[True] * source, [True] * 3 + [False] * (source - 3)])
        cases.append(Case(label, (embed_dim, num_heads, weights, query, memory), options))
    return cases


def _mha_reference(*args, **options):
    from course_lib.multihead import MultiHeadAttention

    return calling.run_mha(MultiHeadAttention, *args, **options)


def _mha_variant(**mistake):
    """Multi-head attention computed functionally, with one deliberate mistake."""

    def run(embed_dim, num_heads, torch_weights, query, memory, attn_mask=None, key_padding_mask=None):
        head_dim = embed_dim // num_heads
        weights = torch_weights["in_proj_weight"].chunk(3)  # 3 x (E, E)
        biases = torch_weights["in_proj_bias"].chunk(3)  # 3 x (E,)
        projected = [x @ w.T + b for x, w, b in zip((query, memory, memory), weights, biases)]  # 3 x (B, L, E)

        def split(x):
            if mistake.get("reshape_split"):
                return x.reshape(x.shape[0], num_heads, x.shape[1], head_dim)
            return x.view(x.shape[0], x.shape[1], num_heads, head_dim).transpose(1, 2)  # (B, H, L, D)

        q, k, v = (split(x) for x in projected)
        scale = embed_dim ** -0.5 if mistake.get("scale_by_embed_dim") else head_dim ** -0.5
        scores = q @ k.transpose(-2, -1) * scale  # (B, H, T, S)
        mask = attn_mask
        if key_padding_mask is not None and not mistake.get("ignore_padding"):
            padding = key_padding_mask[:, None, None, :]
            mask = padding if mask is None else mask & padding
        if mask is not None:
            scores = scores.masked_fill(mask if mistake.get("torch_meaning") else ~mask, float("-inf"))
        from course_lib.attention import masked_softmax

        attention = masked_softmax(scores)  # (B, H, T, S)
        merged = (attention @ v).transpose(1, 2).reshape(query.shape[0], query.shape[1], embed_dim)  # (B, T, E)
        if mistake.get("no_output_projection"):
            return merged, attention
        return merged @ torch_weights["out_proj.weight"].T + torch_weights["out_proj.bias"], attention

    return run


check_MultiHeadAttention = _register(Check(
    name="MultiHeadAttention",
    points=3,
    make_cases=_mha_cases,
    reference=_mha_reference,
    implementation="course_lib.multihead.MultiHeadAttention",
    call=calling.call_mha,
    outputs=(Output("output", kind="torch"), Output("weights", kind="torch")),
    mistakes=(
        Mistake("the output projection is missing: after merging the heads, apply self.output.",
                like(_mha_variant(no_output_projection=True))),
        Mistake("you scaled the scores by 1/√embed_dim; each head's dot products have head_dim = embed_dim / "
                "num_heads terms, so scale by 1/√head_dim.", like(_mha_variant(scale_by_embed_dim=True))),
        Mistake("your heads mix positions: reshaping (B, T, E) straight to (B, H, T, D) cuts the data in the "
                "wrong places. Use .view(B, T, H, D).transpose(1, 2).", like(_mha_variant(reshape_split=True))),
        Mistake("key_padding_mask is ignored: padded keys (False) must get no weight.",
                lambda case, got, exp: "key_padding_mask" in case.kwargs and like(_mha_variant(ignore_padding=True))(case, got, exp)),
        Mistake("the mask meaning is reversed: this course's masks say True = may attend (torch's "
                "nn.MultiheadAttention says the opposite; convert with ~mask).", like(_mha_variant(torch_meaning=True))),
    ),
    validate=calling.validate_mha,
    what="Same output and per-head weights as torch.nn.MultiheadAttention with the same weights: self- and "
         "cross-attention, attn_mask and key_padding_mask.",
))


# ==========================================================================================================
# Lesson 05: positions
# ==========================================================================================================

def _sinusoidal_reference(num_positions, dim):
    from course_lib.positional import sinusoidal_encoding

    return sinusoidal_encoding(num_positions, dim)


def _sinusoidal_variant(swap=False, concatenate=False, exponent_i=False):
    def encode(num_positions, dim):
        import torch

        positions = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (P, 1)
        index = torch.arange(0, dim, 2, dtype=torch.float64)  # (dim/2,)
        angles = positions / 10000 ** ((index / 2 if exponent_i else index) / dim)  # (P, dim/2)
        first, second = (torch.cos(angles), torch.sin(angles)) if swap else (torch.sin(angles), torch.cos(angles))
        if concatenate:
            return torch.cat([first, second], dim=-1).float()
        out = torch.zeros(num_positions, dim, dtype=torch.float64)
        out[:, 0::2], out[:, 1::2] = first, second
        return out.float()

    return encode


check_sinusoidal_encoding = _register(Check(
    name="sinusoidal_encoding",
    points=1,
    make_cases=lambda rng: [Case(f"num_positions={p}, dim={d}", (p, d)) for p, d in ((10, 8), (50, 16), (1, 4), (int(rng.integers(5, 30)), 32))],
    reference=_sinusoidal_reference,
    implementation="course_lib.positional.sinusoidal_encoding",
    outputs=(Output("encoding", kind="torch"),),
    mistakes=(
        Mistake("sin and cos are swapped: even features (0, 2, 4, …) get sin, odd features get cos.",
                like(_sinusoidal_variant(swap=True))),
        Mistake("you put all sines first and all cosines after; the paper interleaves them: feature 2i is sin, "
                "feature 2i+1 is cos of the same angle.", like(_sinusoidal_variant(concatenate=True))),
        Mistake("the exponent is off: pair i uses 10000^(2i/dim), where 2i is the index of its even feature "
                "(0, 2, 4, …), not 10000^(i/dim).", like(_sinusoidal_variant(exponent_i=True))),
    ),
    what="(num_positions, dim), sin on even and cos on odd features, wavelengths 2π·10000^(2i/dim).",
))


def _rope_reference(x, positions):
    from course_lib.positional import apply_rope

    return apply_rope(x, positions)


def _rope_variant(reverse=False, halves=False, exponent_i=False):
    def rotate(x, positions):
        import torch

        dim = x.shape[-1]
        index = torch.arange(0, dim, 2, dtype=torch.float64)
        frequencies = 10000 ** (-(index / 2 if exponent_i else index) / dim)  # (D/2,)
        angles = torch.as_tensor(positions, dtype=torch.float64)[:, None] * frequencies  # (T, D/2)
        cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
        sin = -sin if reverse else sin
        if halves:
            a, b = x[..., : dim // 2], x[..., dim // 2:]
            return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)
        out = torch.empty_like(x)
        out[..., 0::2] = x[..., 0::2] * cos - x[..., 1::2] * sin
        out[..., 1::2] = x[..., 0::2] * sin + x[..., 1::2] * cos
        return out

    return rotate


def _rope_cases(rng):
    import torch

    return [
        Case("x (6, 8) at positions 0..5", (_tensor(rng, 6, 8), torch.arange(6))),
        Case("x (2, 3, 5, 4) (batch and heads) at positions 0..4", (_tensor(rng, 2, 3, 5, 4), torch.arange(5))),
        Case("x (4, 16) at positions [7, 3, 100, 0]", (_tensor(rng, 4, 16), torch.tensor([7, 3, 100, 0]))),
        Case("x (3, 2) (a single pair) at positions [1, 2, 3]", (_tensor(rng, 3, 2), torch.tensor([1, 2, 3]))),
    ]


check_apply_rope = _register(Check(
    name="apply_rope",
    points=2,
    make_cases=_rope_cases,
    reference=_rope_reference,
    implementation="course_lib.positional.apply_rope",
    outputs=(Output("rotated", kind="torch"),),
    mistakes=(
        Mistake("you rotate the wrong way: (a, b) -> (a·cos θ − b·sin θ, a·sin θ + b·cos θ).",
                like(_rope_variant(reverse=True))),
        Mistake("you paired feature i with feature i + D/2 (the 'rotate half' layout of GPT-NeoX/LLaMA code); the "
                "RoFormer paper, and this exercise, pair interleaved features (x[2i], x[2i+1]).",
                like(_rope_variant(halves=True))),
        Mistake("the angle is off: pair i rotates by position · 10000^(−2i/D), where 2i is the index of its even "
                "feature.", like(_rope_variant(exponent_i=True))),
    ),
    what="Each interleaved pair rotated by position·10000^(−2i/D); batches and arbitrary positions work.",
))


# ==========================================================================================================
# Lesson 06: what attention costs
# ==========================================================================================================




def _flops_reference(num_queries, num_keys, head_dim, num_heads):
    from course_lib.cost import attention_flops

    return attention_flops(num_queries, num_keys, head_dim, num_heads)


check_attention_flops = _register(Check(
    name="attention_flops",
    points=1,
    make_cases=lambda rng: [
        Case("T = S = 1024, D = 64, one head", (1024, 1024, 64, 1)),
        Case("T = 10 queries, S = 30 keys (cross-attention), D = 8, 2 heads", (10, 30, 8, 2)),
        Case("T = 1 query (one generation step), S = 4096 keys, D = 128, 32 heads", (1, 4096, 128, 32)),
        Case("random sizes", (int(rng.integers(2, 500)), int(rng.integers(2, 500)), int(rng.integers(2, 128)),
                              int(rng.integers(2, 16)))),
    ],
    reference=_flops_reference,
    implementation="course_lib.cost.attention_flops",
    call=calling.as_number,
    validate=calling.validate_attention_flops,
    outputs=(Output("flops"),),
    mistakes=(
        Mistake("you have half the count: 4·T·S·D per head counts both matrix products (Q·Kᵀ and weights·V), each "
                "with 2 FLOPs (a multiply and an add) per term. Yours counts one product, or multiply-adds.",
                like(lambda t, s, d, h: 2 * t * s * d * h)),
        Mistake("you counted T·S·D once per head: each of the two products takes T·S·D multiplies and as many "
                "adds, 4·T·S·D in all.", like(lambda t, s, d, h: t * s * d * h)),
        Mistake("the number of heads is missing: every head does its own 4·T·S·D.", like(lambda t, s, d, h: 4 * t * s * d)),
        Mistake("you used T² (or S²): queries meet keys, so the scores are T·S, which differ in cross-attention "
                "and generation.", lambda case, got, exp: case.args[0] != case.args[1] and (
                    like(lambda t, s, d, h: 4 * t * t * d * h)(case, got, exp) or like(lambda t, s, d, h: 4 * s * s * d * h)(case, got, exp))),
        Mistake("you divided by the number of heads: with the head dimension D given, each head costs 4·T·S·D, "
                "so H heads cost H times as much.", like(lambda t, s, d, h: 4 * t * s * d / h)),
    ),
    what="4·T·S·D·H: both products, 2 FLOPs per multiply-add, every head, T ≠ S included.",
))


def _kv_reference(*args, **kwargs):
    from course_lib.cost import kv_cache_bytes

    return kv_cache_bytes(*args, **kwargs)


check_kv_cache_bytes = _register(Check(
    name="kv_cache_bytes",
    points=1,
    make_cases=lambda rng: [
        Case("LLaMA-2-7B: 32 layers, 32 KV heads, head_dim 128, 4096 tokens (float16: 2 bytes by default)",
             (32, 32, 128, 4096)),
        Case("grouped-query: 80 layers, 8 KV heads, head_dim 128, 8192 tokens, batch_size=4",
             (80, 8, 128, 8192), {"batch_size": 4}),
        Case("multi-query in float32: 12 layers, 1 KV head, head_dim 64, 1024 tokens, bytes_per_value=4",
             (12, 1, 64, 1024), {"bytes_per_value": 4}),
        Case("random sizes, batch_size=3, bytes_per_value=1 (int8)",
             (int(rng.integers(1, 40)), int(rng.integers(1, 9)), int(rng.integers(8, 129)), int(rng.integers(1, 5000))),
             {"batch_size": 3, "bytes_per_value": 1}),
    ],
    reference=_kv_reference,
    implementation="course_lib.cost.kv_cache_bytes",
    call=calling.as_number,
    validate=calling.validate_kv_cache_bytes,
    outputs=(Output("bytes"),),
    mistakes=(
        Mistake("bytes_per_value is ignored (or fixed): multiply by the bytes of one number, 2 for float16, "
                "4 for float32, 1 for int8.",
                lambda case, got, exp: "bytes_per_value" in case.kwargs and any(
                    like(lambda l, h, d, t, batch_size=1, bytes_per_value=2, k=k: 2 * l * h * d * t * batch_size * k)(
                        case, got, exp) for k in (1, 2, 4))),
        Mistake("you counted only the keys (or only the values): the cache holds both, a factor 2.",
                like(lambda l, h, d, t, batch_size=1, bytes_per_value=2: l * h * d * t * batch_size * bytes_per_value)),
        Mistake("batch_size is ignored: every sequence in the batch has its own cache.",
                lambda case, got, exp: case.kwargs.get("batch_size", 1) != 1 and like(
                    lambda l, h, d, t, batch_size=1, bytes_per_value=2: 2 * l * h * d * t * bytes_per_value)(case, got, exp)),
        Mistake("you counted numbers, not bytes: multiply by bytes_per_value.",
                like(lambda l, h, d, t, batch_size=1, bytes_per_value=2: 2 * l * h * d * t * batch_size)),
        Mistake("the number of layers is missing: every layer keeps its own keys and values.",
                like(lambda l, h, d, t, batch_size=1, bytes_per_value=2: 2 * h * d * t * batch_size * bytes_per_value)),
        Mistake("you counted bits: 1 byte = 8 bits, and bytes_per_value is already in bytes.",
                like(lambda l, h, d, t, batch_size=1, bytes_per_value=2: 16 * l * h * d * t * batch_size * bytes_per_value)),
    ),
    what="2 (keys and values) · layers · batch · KV heads · tokens · head_dim · bytes per value.",
))


def _gqa_cases(rng):
    import torch

    return [
        Case("query (2, 8, 5, 4) with key and value (2, 2, 5, 4): 4 query heads per KV head",
             (_tensor(rng, 2, 8, 5, 4), _tensor(rng, 2, 2, 5, 4), _tensor(rng, 2, 2, 5, 4))),
        Case("multi-query: query (1, 4, 3, 8), key (1, 1, 6, 8), value (1, 1, 6, 2) (one KV head, S ≠ T)",
             (_tensor(rng, 1, 4, 3, 8), _tensor(rng, 1, 1, 6, 8), _tensor(rng, 1, 1, 6, 2))),
        Case("H = Hkv = 3 (plain multi-head attention): query (2, 3, 4, 4), key and value (2, 3, 4, 4)",
             (_tensor(rng, 2, 3, 4, 4), _tensor(rng, 2, 3, 4, 4), _tensor(rng, 2, 3, 4, 4))),
        Case("query (1, 6, 4, 4), key and value (1, 2, 7, 4): the KV heads differ, so grouping order matters",
             (_tensor(rng, 1, 6, 4, 4), _tensor(rng, 1, 2, 7, 4) * torch.tensor([1.0, 3.0]).view(1, 2, 1, 1),
              _tensor(rng, 1, 2, 7, 4))),
    ]


def _gqa_reference(query, key, value):
    from course_lib.multihead import grouped_query_attention

    return grouped_query_attention(query, key, value)


def _gqa_variant(repeat="interleave"):
    """Grouped-query attention with the KV heads spread over the query heads in a given (maybe wrong) way."""

    def attend(query, key, value):
        from course_lib.attention import scaled_dot_product_attention

        groups = query.shape[-3] // key.shape[-3]
        if repeat == "tile":  # head h uses KV head h % Hkv: torch's .repeat, the wrong order
            key, value = key.repeat(1, groups, 1, 1), value.repeat(1, groups, 1, 1)
        elif repeat == "first":  # every query head uses KV head 0
            key, value = key[:, :1], value[:, :1]
        else:
            key, value = key.repeat_interleave(groups, dim=-3), value.repeat_interleave(groups, dim=-3)
        return scaled_dot_product_attention(query, key, value)

    return attend


check_grouped_query_attention = _register(Check(
    name="grouped_query_attention",
    points=2,
    make_cases=_gqa_cases,
    reference=_gqa_reference,
    implementation="course_lib.multihead.grouped_query_attention",
    outputs=(Output("output", kind="torch"), Output("weights", kind="torch")),
    mistakes=(
        Mistake("query heads are matched to the wrong KV heads: head h must use KV head h // (H / Hkv), so "
                "consecutive query heads share one (torch's enable_gqa does the same). .repeat(...) tiles the "
                "KV heads (0, 1, 0, 1, …); use .repeat_interleave(H // Hkv, dim=1) (0, 0, 1, 1, …).",
                like(_gqa_variant("tile"))),
        Mistake("every query head uses the first KV head: the Hkv key/value heads must be shared out, "
                "H // Hkv query heads per KV head.", like(_gqa_variant("first"))),
    ),
    error_hints=(
        (_torch_shape_error,
         "key and value have fewer heads than query: repeat each KV head H // Hkv times along the head axis "
         "(repeat_interleave(groups, dim=1)) before attending, or group the query heads with a view."),
    ),
    what="Query head h attends with KV head h // (H/Hkv), as torch's enable_gqa=True; MQA (Hkv = 1) and MHA "
         "(Hkv = H) are the two ends.",
))


# ==========================================================================================================
# Lesson 07: sparse attention
# ==========================================================================================================

def _offsets(n):
    import torch

    return torch.arange(n)[:, None] - torch.arange(n)[None, :]  # (n, n): i - j


def _window_reference(n, window):
    from course_lib.sparse import sliding_window_mask

    return sliding_window_mask(n, window)


check_sliding_window_mask = _register(Check(
    name="sliding_window_mask",
    points=1,
    make_cases=lambda rng: [Case(f"n={n}, window={w}", (n, w)) for n, w in
                            ((8, 2), (6, 0), (5, 10), (int(rng.integers(10, 20)), int(rng.integers(1, 5))))],
    reference=_window_reference,
    implementation="course_lib.sparse.sliding_window_mask",
    outputs=(Output("mask", kind="torch", dtype="bool"),),
    mistakes=(
        Mistake("off by one: a window of w lets query i see keys i - w … i + w, both ends included: "
                "|i - j| <= window, not < window.", like(lambda n, w: _offsets(n).abs() < w)),
        Mistake("you made it causal (j <= i only): the sliding window looks both ways, |i - j| <= window.",
                like(lambda n, w: (_offsets(n).abs() <= w) & (_offsets(n) >= 0))),
        Mistake("the meaning is reversed: True = may attend, i.e. inside the window.",
                like(lambda n, w: _offsets(n).abs() > w)),
        Mistake("the window is 2·window + 1 wide in total, window on each side: |i - j| <= window, not "
                "<= window / 2.", like(lambda n, w: _offsets(n).abs() <= w // 2)),
    ),
    what="Boolean (n, n), True where |i − j| ≤ window, both sides, ends included; window ≥ n is all True.",
))


def _strided_reference(n, stride):
    from course_lib.sparse import strided_mask

    return strided_mask(n, stride)


check_strided_mask = _register(Check(
    name="strided_mask",
    points=1,
    make_cases=lambda rng: [Case(f"n={n}, stride={s}", (n, s)) for n, s in
                            ((9, 3), (16, 4), (5, 1), (7, 10), (int(rng.integers(12, 30)), int(rng.integers(2, 6))))],
    reference=_strided_reference,
    implementation="course_lib.sparse.strided_mask",
    outputs=(Output("mask", kind="torch", dtype="bool"),),
    mistakes=(
        Mistake("your mask lets queries see the future: the strided pattern is causal, keys j <= i only.",
                like(lambda n, s: (_offsets(n).abs() < s) | (_offsets(n) % s == 0))),
        Mistake("the strided part is missing: besides the stride most recent keys, query i also sees every key "
                "a whole number of strides back, (i - j) % stride == 0.",
                like(lambda n, s: (_offsets(n) >= 0) & (_offsets(n) < s))),
        Mistake("the local part is missing: besides keys a whole number of strides back, query i sees the "
                "stride most recent keys, 0 <= i - j < stride.",
                like(lambda n, s: (_offsets(n) >= 0) & (_offsets(n) % s == 0))),
        Mistake("off by one in the local part: the stride most recent keys are i - stride + 1 … i, so "
                "i - j < stride, not <= stride.",
                like(lambda n, s: (_offsets(n) >= 0) & ((_offsets(n) <= s) | (_offsets(n) % s == 0)))),
        Mistake("you measured the stride in absolute positions (j % stride == 0); the Sparse Transformer's "
                "strided head looks back from each query: (i - j) % stride == 0.",
                like(lambda n, s: (_offsets(n) >= 0) & ((_offsets(n) < s) | (_arange(n)[None, :] % s == 0)))),
    ),
    what="Causal; key j visible to query i iff 0 ≤ i − j < stride or (i − j) % stride == 0.",
))


def _arange(n):
    import torch

    return torch.arange(n)


def _sliding_attention_cases(rng):
    return [
        Case("query, key, value (1, 10, 8), window=2", (_tensor(rng, 1, 10, 8), _tensor(rng, 1, 10, 8), _tensor(rng, 1, 10, 8), 2)),
        Case("heads: (2, 3, 13, 4), window=3 (T = 13 is a multiple of no block size)",
             (_tensor(rng, 2, 3, 13, 4), _tensor(rng, 2, 3, 13, 4), _tensor(rng, 2, 3, 13, 2), 3)),
        Case("is_causal=True: (2, 12, 4), window=4", (_tensor(rng, 2, 12, 4), _tensor(rng, 2, 12, 4), _tensor(rng, 2, 12, 4), 4),
             {"is_causal": True}),
        Case("window=0: each query attends only itself", (_tensor(rng, 1, 6, 4), _tensor(rng, 1, 6, 4), _tensor(rng, 1, 6, 3), 0)),
        Case("window=10 >= T = 5: every query sees every key (dense attention)",
             (_tensor(rng, 2, 5, 4), _tensor(rng, 2, 5, 4), _tensor(rng, 2, 5, 4), 10)),
        Case("T = 4096, D = 8, window=4 (your peak memory is measured here and at T = 1024)",
             (_tensor(rng, 1, 4096, 8), _tensor(rng, 1, 4096, 8), _tensor(rng, 1, 4096, 8), 4)),
    ]


def _sliding_attention_reference(query, key, value, window, is_causal=False):
    from course_lib.sparse import sliding_window_attention

    return sliding_window_attention(query, key, value, window, is_causal=is_causal)


def _dense_window_variant(offset_allowed):
    """Dense masked attention with the window rule ``offset_allowed(i - j, window, is_causal)``: how a mistake looks."""

    def attend(query, key, value, window, is_causal=False):
        from course_lib.attention import scaled_dot_product_attention

        offsets = _offsets(query.shape[-2])
        return scaled_dot_product_attention(query, key, value, attn_mask=offset_allowed(offsets, window, is_causal))[0]

    return attend


def _zero_padded_keys(query, key, value, window, is_causal=False):
    """Padded band without masking the padding: missing keys near the edges count as zero vectors (score 0)."""
    import torch

    offsets = _offsets(query.shape[-2])  # (T, T)
    allowed = (offsets.abs() <= window) & ((offsets >= 0) if is_causal else True)  # (T, T)
    width = (window + 1) if is_causal else (2 * window + 1)
    missing = width - allowed.sum(-1)  # (T,): zero keys each query also "sees", score 0 each
    logits = (query @ key.transpose(-2, -1) / query.shape[-1] ** 0.5).masked_fill(~allowed, float("-inf"))  # (..., T, T)
    extra = torch.log(missing.to(logits.dtype)).expand(*logits.shape[:-1])[..., None]  # (..., T, 1): log(m·e^0)
    weights = torch.softmax(torch.cat([logits, extra], dim=-1), dim=-1)[..., :-1]  # (..., T, T): zero keys add no value
    return weights @ value  # (..., T, Dv)


def _blocks_without_window_mask(block):
    """The hint's banded loop with a mistake: each block of ``block`` queries attends its whole key slice
    ``max(0, start - window) … min(T, stop + window) - 1``, with no mask for each query's own window."""

    def attend(query, key, value, window, is_causal=False):
        import torch

        length, outputs = query.shape[-2], []
        for start in range(0, length, block):
            stop = min(start + block, length)
            first, last = max(0, start - window), min(length, stop + window)  # the block's key slice
            scores = query[..., start:stop, :] @ key[..., first:last, :].transpose(-2, -1) / query.shape[-1] ** 0.5  # (..., C, K)
            outputs.append(torch.softmax(scores, dim=-1) @ value[..., first:last, :])  # (..., C, Dv): no window mask
        return torch.cat(outputs, dim=-2)  # (..., T, Dv)

    return attend


def _attends_whole_key_slice(case, got, expected) -> bool:
    """Does ``got`` equal the unmasked block loop for some block size? Every size up to T on short sequences,
    the usual ones (the window, twice it, 16 … 128) on long ones."""
    query, window = case.args[0], case.args[3]
    length = query.shape[-2]
    sizes = range(2, length + 1) if length <= 32 else (window, 2 * window, max(window, 16), 16, 32, 64, 128)
    return any(like(_blocks_without_window_mask(size))(case, got, expected) for size in sorted(set(sizes)) if size >= 2)


def _memory_grows_linearly(function, case, got) -> str | None:
    """On the long case, run the learner's function at T = 1024 and T = 4096: a band grows 4x, a (T, S) tensor 16x."""
    query, key, value, window = case.args
    if query.shape[-2] < 4096:
        return None
    from course_lib.cost import format_bytes, peak_memory

    short = peak_memory(function, query[..., :1024, :], key[..., :1024, :], value[..., :1024, :], window)
    long = peak_memory(function, query, key, value, window)
    ratio = long / max(short, 1)
    if ratio > 8:
        return (f"your function's peak memory grows {ratio:.0f}× from T = 1024 to T = 4096 ({format_bytes(short)} → "
                f"{format_bytes(long)}): it builds a (T, S) tensor (scores or a mask grow 16×). Compute each block "
                f"of queries against only the keys within its window, so memory grows like T·window (4×).")
    return None


check_sliding_window_attention = _register(Check(
    name="sliding_window_attention",
    points=3,
    make_cases=_sliding_attention_cases,
    reference=_sliding_attention_reference,
    implementation="course_lib.sparse.sliding_window_attention",
    outputs=(Output("output", kind="torch"),),
    mistakes=(
        Mistake("off by one: query i sees keys with |i - j| <= window, both ends included.",
                like(_dense_window_variant(lambda o, w, c: (o.abs() < w) & ((o >= 0) if c else True)))),
        Mistake("is_causal=True is ignored: a causal window keeps only keys j <= i (i - window <= j <= i).",
                lambda case, got, exp: case.kwargs.get("is_causal") and like(
                    _dense_window_variant(lambda o, w, c: o.abs() <= w))(case, got, exp)),
        Mistake("your causal window looks into the future: keep keys i - window <= j <= i.",
                like(_dense_window_variant(lambda o, w, c: (o.abs() <= w) & ((o <= 0) if c else True)))),
        Mistake("the padding is attended: near the edges the band holds positions outside 0 … T-1 (zeros after "
                "padding), and they got weight. Mask them with -inf like the keys outside the window.",
                like(_zero_padded_keys)),
        Mistake("every query of a block attends the block's whole key slice, so it also sees keys outside its own "
                "window (a query at the start of a block sees up to window + block - 1 keys ahead). The slice is "
                "only what the block needs: inside it, mask each pair with |i - j| > window (and j > i when "
                "is_causal) with -inf before the softmax, i and j being positions in the whole sequence.",
                _attends_whole_key_slice),
        Mistake("the scores are not scaled by 1/√D (D = query.shape[-1]).",
                like(lambda q, k, v, w, is_causal=False: _dense_window_variant(
                    lambda o, w, c: (o.abs() <= w) & ((o >= 0) if c else True))(q * q.shape[-1] ** 0.5, k, v, w, is_causal))),
    ),
    extra=_memory_grows_linearly,
    what="Equal to dense attention with the window mask (T not a multiple of a block, window ≥ T, causal), and "
         "memory grows like T·window: no (T, S) tensor.",
))


# ==========================================================================================================
# Lesson 08: flash attention
# ==========================================================================================================

def _online_state(rng, rows: tuple, num_keys: int, value_dim: int, dtype: str = "float64"):
    """A running state (m, l, out) after one block of ``num_keys`` keys, made with the course's update."""
    from course_lib import flash

    scores, values = _tensor(rng, *rows, num_keys, dtype=dtype), _tensor(rng, num_keys, value_dim, dtype=dtype)
    start = flash.online_softmax_start(scores[..., :1], value_dim)
    return flash.online_softmax_update(*start, scores, values)


def _online_cases(rng):
    import torch

    from course_lib import flash

    t = lambda *shape: _tensor(rng, *shape, dtype="float64")
    fresh = flash.online_softmax_start(torch.zeros(3, 1, dtype=torch.float64), 2)  # m = -inf, l = 0, out = 0
    state = _online_state(rng, (3,), 4, 2)
    high = t(3, 4) + 3  # (T, Sb) scores above everything so far: the maximum grows
    low = t(3, 4) - 6  # scores below the maximum: m stays
    masked = torch.full((3, 4), float("-inf"), dtype=torch.float64)
    partly = t(3, 4)
    partly[1] = float("-inf")  # row 1 sees only masked keys in this block
    heads = _online_state(rng, (2, 3, 4), 6, 5)
    single = _online_state(rng, (2, 3), 4, 3, dtype="float32")
    return [
        Case("the first block, from the start state m = -inf, l = 0, out = 0 (3 rows, 4 keys, Dv = 2)",
             (*fresh, t(3, 4), t(4, 2))),
        Case("a block whose scores raise the maximum: the old l and out must shrink by exp(m_old - m_new)",
             (*state, high, t(4, 2))),
        Case("a block whose scores stay below the maximum: m does not change", (*state, low, t(4, 2))),
        Case("a fully masked first block (all scores -inf): no NaN, the state stays m = -inf, l = 0, out = 0",
             (*fresh, masked, t(4, 2))),
        Case("a block where one row's keys are all masked (-inf), after an earlier block",
             (*state, partly, t(4, 2))),
        Case("batch and heads: rows (2, 3, 4), a block of 6 keys, Dv = 5",
             (*heads, t(2, 3, 4, 6) + 1, t(2, 3, 6, 5))),
        Case("float32, rows (2, 3)", (*single, _tensor(rng, 2, 3, 4, dtype="float32"), _tensor(rng, 4, 3, dtype="float32"))),
    ]


def _online_variant(rescale_out=True, rescale_l=True, normalise=False, keep_m=False, nan_guard=True,
                    inverted=False):
    """The online softmax update with one deliberate mistake."""

    def update(m, l, out, scores, values):
        import torch

        m_new = m if keep_m else torch.maximum(m, scores.amax(dim=-1))
        shift = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new) if nan_guard else m_new
        rescale = torch.exp(shift - m) if inverted else torch.exp(m - shift)
        weights = torch.exp(scores - shift.unsqueeze(-1))
        l_new = (rescale * l if rescale_l else l) + weights.sum(-1)
        out_new = (rescale.unsqueeze(-1) * out if rescale_out else out) + weights @ values
        if normalise:
            out_new = out_new / l_new.unsqueeze(-1)
        return m_new, l_new, out_new

    return update


def _online_reference(*args):
    from course_lib.flash import online_softmax_update

    return online_softmax_update(*args)


_RESCALE_HINT = "when the maximum grows from m to m_new, multiply the old l and out by exp(m - m_new)"

check_online_softmax_update = _register(Check(
    name="online_softmax_update",
    points=2,
    make_cases=_online_cases,
    reference=_online_reference,
    implementation="course_lib.flash.online_softmax_update",
    outputs=(Output("m", kind="torch"), Output("l", kind="torch"), Output("out", kind="torch")),
    mistakes=(
        Mistake(f"out is not rescaled: {_RESCALE_HINT} (both, not only l).", like(_online_variant(rescale_out=False))),
        Mistake(f"l is not rescaled: {_RESCALE_HINT} (both, not only out).", like(_online_variant(rescale_l=False))),
        Mistake("out is already divided by l: keep the running sum unnormalised and divide once at the end "
                "(online_softmax_finish); otherwise the next block adds to an average, not a sum.",
                like(_online_variant(normalise=True))),
        Mistake("m never changes: the new maximum is the larger of m and this block's largest score, "
                "torch.maximum(m, scores_block.amax(dim=-1)).", like(_online_variant(keep_m=True))),
        Mistake("NaN for a row that has seen only masked keys: there m_new = -inf and exp(-inf - (-inf)) is NaN. "
                "Subtract 0 instead of m_new where m_new is -inf (torch.where(torch.isinf(m_new), 0, m_new)).",
                like(_online_variant(nan_guard=False))),
        Mistake("the rescaling factor is upside down: the old sums were computed relative to m and must now be "
                "relative to m_new, so multiply by exp(m - m_new) <= 1.", like(_online_variant(inverted=True))),
    ),
    what="Keeps m, l and the unnormalised out exact block by block: growing and steady maxima, fully masked "
         "rows without NaN, batches and heads, float32 and float64.",
))


def _flash_cases(rng):
    sharp = lambda *shape: _tensor(rng, *shape, dtype="float64") * 4
    return [
        Case("T = S = 10 with block_size = 4 (T not a multiple of the block)",
             (_tensor(rng, 10, 3), _tensor(rng, 10, 3), _tensor(rng, 10, 2)), {"block_size": 4}),
        Case("batch and heads (2, 3), T = 12 queries, S = 7 keys, block_size = 5",
             (_tensor(rng, 2, 3, 12, 4), _tensor(rng, 2, 3, 7, 4), _tensor(rng, 2, 3, 7, 4)), {"block_size": 5}),
        Case("is_causal=True, T = S = 9, block_size = 4 (tiles above the diagonal skipped, the diagonal ones masked)",
             (_tensor(rng, 1, 9, 4), _tensor(rng, 1, 9, 4), _tensor(rng, 1, 9, 3)), {"is_causal": True, "block_size": 4}),
        Case("is_causal=True with T = 5 queries and S = 9 keys (query i sees keys j <= i)",
             (_tensor(rng, 5, 4), _tensor(rng, 9, 4), _tensor(rng, 9, 2)), {"is_causal": True, "block_size": 3}),
        Case("block_size = 16 >= T = 6 (one block)", (_tensor(rng, 6, 4), _tensor(rng, 6, 4), _tensor(rng, 6, 4)),
             {"block_size": 16}),
        Case("block_size = 1", (_tensor(rng, 5, 2), _tensor(rng, 7, 2), _tensor(rng, 7, 3)), {"block_size": 1}),
        Case("float64 with large scores (a sharp softmax), block_size = 3",
             (sharp(2, 8, 4), sharp(2, 8, 4), sharp(2, 8, 4)), {"block_size": 3}),
        Case("(1, 2, 96, 8) with block_size = 16: no (96, 96) score matrix may be built",
             (_tensor(rng, 1, 2, 96, 8), _tensor(rng, 1, 2, 96, 8), _tensor(rng, 1, 2, 96, 8)), {"block_size": 16}),
    ]


def _flash_reference(query, key, value, is_causal=False, block_size=64):
    from course_lib.attention import scaled_dot_product_attention

    return scaled_dot_product_attention(query, key, value, is_causal=is_causal)[0]


def _flash_variant(**mistake):
    """Dense attention with one deliberate mistake, as a tiled version with that mistake would compute it."""
    attend = _torch_variant(**mistake)
    return lambda query, key, value, is_causal=False, block_size=64: attend(query, key, value, is_causal=is_causal)[0]


def _flash_diagonal_unmasked(query, key, value, is_causal=False, block_size=64):
    """Tiled attention that skips the tiles above the diagonal but forgets to mask inside the diagonal ones."""
    import torch

    from course_lib import flash

    outputs = []
    for q_start in range(0, query.shape[-2], block_size):
        q_block = query[..., q_start:q_start + block_size, :]  # (..., Bq, D)
        state = flash.online_softmax_start(q_block, value.shape[-1])
        for k_start, k_end in flash._key_blocks(q_start, q_block.shape[-2], key.shape[-2], block_size, is_causal):
            scores = q_block @ key[..., k_start:k_end, :].transpose(-2, -1) * query.shape[-1] ** -0.5  # (..., Bq, Bk)
            state = flash.online_softmax_update(*state, scores, value[..., k_start:k_end, :])
        outputs.append(flash.online_softmax_finish(state[1], state[2]))
    return torch.cat(outputs, dim=-2)  # (..., T, Dv)


def _largest_intermediate(function, *args, **kwargs) -> int:
    """The most numbers held by any one tensor that an operation inside ``function`` returned."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Largest(TorchDispatchMode):
        numel = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            for item in result if isinstance(result, (tuple, list)) else (result,):
                if isinstance(item, torch.Tensor):
                    Largest.numel = max(Largest.numel, item.numel())
            return result

    with Largest():
        function(*args, **kwargs)
    return Largest.numel


def _no_full_score_matrix(function, case, got) -> str | None:
    """For the large case: no tensor inside the call may be as big as (a quarter of) the (B, H, T, S) scores."""
    if "no (96, 96)" not in case.label:
        return None
    query, key = case.args[0], case.args[1]
    full = query.shape[:-1].numel() * key.shape[-2]  # B * H * T * S
    largest = _largest_intermediate(function, *case.args, **case.kwargs)
    if largest >= full // 4:
        return (f"a tensor of {largest} numbers was built inside your function; the full (B, H, T, S) scores "
                f"hold {full}. Flash attention holds one (block_size, block_size) tile of scores per head at a "
                f"time: loop over blocks of queries and, inside, over blocks of keys.")
    return None


check_flash_attention = _register(Check(
    name="flash_attention",
    points=3,
    make_cases=_flash_cases,
    reference=_flash_reference,
    implementation="course_lib.flash.flash_attention",
    outputs=(Output("output", kind="torch"),),
    mistakes=(
        Mistake("the scores are not scaled by 1/√D (D = query.shape[-1]).", like(_flash_variant(scale=False))),
        Mistake("is_causal=True is ignored: query i may only see keys j <= i.",
                lambda case, got, exp: case.kwargs.get("is_causal") and like(_flash_variant(ignore_causal=True))(case, got, exp)),
        Mistake("the tiles on the diagonal are not masked: skipping the tiles above the diagonal is not enough, "
                "inside a tile that crosses it set the scores of keys j > i to -inf (masked_fill) before the update.",
                lambda case, got, exp: case.kwargs.get("is_causal") and like(_flash_diagonal_unmasked)(case, got, exp)),
    ),
    extra=_no_full_score_matrix,
    error_hints=(
        (_torch_shape_error,
         "The last block is smaller when T or S is not a multiple of block_size: slice with "
         "x[..., start:start + block_size, :] and take the block's size from the slice, not from block_size."),
    ),
    what="Equal to dense attention for any T, S and block size, causal included, without ever building the "
         "(T, S) scores.",
))


# ==========================================================================================================
# Lesson 09: linear attention
# ==========================================================================================================

def _elu_feature_map_cases(rng):
    import torch

    return [
        Case("x = [-3, -1, -0.5, 0, 0.5, 2] (both sides of zero)", (torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 2.0]),)),
        Case("x of shape (2, 4, 8)", (_tensor(rng, 2, 4, 8),)),
        Case("very negative and large values [-200, -50, 20, 80] in float64 (features stay positive)",
             (torch.tensor([-200.0, -50.0, 20.0, 80.0], dtype=torch.float64),)),
        Case("float64 x of shape (3, 5)", (_tensor(rng, 3, 5, dtype="float64"),)),
    ]


def _elu_feature_map_reference(x):
    from course_lib.linear import elu_feature_map

    return elu_feature_map(x)


def _elementwise(name):
    """The feature maps learners write instead of elu(x) + 1, by name."""

    def apply(x):
        import torch
        import torch.nn.functional as F

        return {"elu": F.elu, "relu + 1": lambda t: F.relu(t) + 1, "exp": torch.exp, "x + 1": lambda t: t + 1,
                "elu of x + 1": lambda t: F.elu(t + 1), "identity": lambda t: t}[name](x)

    return apply


check_elu_feature_map = _register(Check(
    name="elu_feature_map",
    points=1,
    make_cases=_elu_feature_map_cases,
    reference=_elu_feature_map_reference,
    implementation="course_lib.linear.elu_feature_map",
    outputs=(Output("features", kind="torch"),),
    mistakes=(
        Mistake("the + 1 is missing: elu(x) is negative below zero (down to -1), and φ must be positive so that "
                "every weight φ(q)·φ(k) is. Return F.elu(x) + 1.", like(_elementwise("elu"))),
        Mistake("the + 1 belongs outside elu: elu(x) + 1, not elu(x + 1). elu(x + 1) is exp(x + 1) - 1 below "
                "x = -1, negative down to -1, so φ would not be positive. Return F.elu(x) + 1.",
                like(_elementwise("elu of x + 1"))),
        Mistake("that is relu(x) + 1: below zero elu(x) = exp(x) - 1, not 0, so φ(x) = exp(x) there, not 1. "
                "Use F.elu(x) + 1.", like(_elementwise("relu + 1"))),
        Mistake("exp(x) is φ only below zero; above zero elu(x) + 1 = x + 1, which grows linearly, not "
                "exponentially. Use F.elu(x) + 1.", like(_elementwise("exp"))),
        Mistake("x + 1 is negative below -1: elu bends it up to exp(x) - 1 there. Use F.elu(x) + 1.",
                like(_elementwise("x + 1"))),
    ),
    what="φ(x) = x + 1 above zero and exp(x) below: positive everywhere, any shape and dtype.",
))


def _kernel_form(query, key, value, feature="elu + 1", causal=False, normalise=True, strict=False,
                 running_normaliser=True, over_queries=False, scale_query=False, future=False):
    """Kernel attention in its quadratic form (fine at the checks' sizes), with the option a mistake changes."""
    import torch
    import torch.nn.functional as F

    feature_map = (lambda x: F.elu(x) + 1) if feature == "elu + 1" else _elementwise(feature)
    if scale_query:
        query = query / query.shape[-1] ** 0.5
    similarities = feature_map(query) @ feature_map(key).transpose(-2, -1)  # (..., T, S)
    all_keys = similarities.sum(dim=-1, keepdim=True)  # (..., T, 1)
    if causal:
        length = query.shape[-2]
        ones = torch.ones(length, length, dtype=torch.bool)  # (T, T)
        allowed = ones.triu(0) if future else ones.tril(-1 if strict else 0)  # (T, T): keys i..T-1 if future
        similarities = similarities * allowed
    if not normalise:
        return similarities @ value  # (..., T, Dv)
    if over_queries:
        return similarities / similarities.sum(dim=-2, keepdim=True) @ value
    totals = similarities.sum(dim=-1, keepdim=True) if running_normaliser else all_keys  # (..., T, 1)
    return similarities @ value / totals  # (..., T, Dv)


def _kernel_variant(**mistake):
    return lambda query, key, value: _kernel_form(query, key, value, **mistake)


def _cumulative_form(query, key, value, state_axis=-3, normaliser_axis=-2):
    """Causal linear attention by cumulative sums, along the axes a mistake chooses (right: -3 and -2)."""
    import torch
    import torch.nn.functional as F

    query_features, key_features = F.elu(query) + 1, F.elu(key) + 1  # (..., T, D) each
    outer = key_features.unsqueeze(-1) * value.unsqueeze(-2)  # (..., T, D, Dv)
    states = torch.cumsum(outer, dim=state_axis)  # (..., T, D, Dv)
    normalisers = torch.cumsum(key_features, dim=normaliser_axis)  # (..., T, D)
    numerators = (query_features.unsqueeze(-2) @ states).squeeze(-2)  # (..., T, Dv)
    return numerators / (query_features * normalisers).sum(dim=-1, keepdim=True)  # (..., T, Dv)


def _cumsum_along_wrong_axis(case, got, expected) -> bool:
    """The running sums of the states U_i or of the normalisers z_i (or both) run along an axis other than the
    positions: a batch or head axis, D or Dv."""
    rank = case.args[0].dim()  # (..., T, D): the outer products have one axis more
    for state_axis in range(-rank - 1, 0):
        for normaliser_axis in range(-rank, 0):
            if (state_axis, normaliser_axis) == (-3, -2):
                continue
            wrong = lambda q, k, v, s=state_axis, n=normaliser_axis: _cumulative_form(q, k, v, s, n)
            if like(wrong)(case, got, expected):
                return True
    return False


_IN_PLACE_HINT = ("Autograd keeps tensors it needs for the gradient, and an in-place update (`U += ...`, "
                  "`U[...] = ...`, `.add_(...)`) overwrites them: write `U = U + ...` (a new tensor each step) "
                  "instead of `U += ...`, and avoid in-place operations on tensors that need gradients.")


def _in_place_error(case, error: BaseException) -> bool:
    """Autograd's complaint about an in-place operation (at once, or when the gradient is computed)."""
    return isinstance(error, RuntimeError) and ("inplace" in str(error) or "in-place" in str(error))


def _unpack_error(case, error: BaseException) -> bool:
    """A fixed number of names for a shape of another rank: `B, T, D = query.shape` on (B, H, T, D) inputs."""
    return isinstance(error, ValueError) and "values to unpack" in str(error)


_ANY_LEADING_AXES_HINT = ("The inputs may have any leading batch and head axes, (..., T, D): do not unpack the "
                          "whole shape into a fixed number of names (T, D = query.shape[-2:] works for every "
                          "rank), and index positions with ..., e.g. x[..., t, :].")


def _softmax_variant(is_causal):
    def attend(query, key, value):
        from course_lib.attention import scaled_dot_product_attention

        return scaled_dot_product_attention(query, key, value, is_causal=is_causal)[0]

    return attend


def _linear_cases(rng, causal):
    length = 256  # with D = Dv = 4: a (T, D, Dv) running state is 16x smaller than the (T, T) weights
    big = (_tensor(rng, 1, 2, length, 4), _tensor(rng, 1, 2, length, 4), _tensor(rng, 1, 2, length, 4))
    grad = tuple(_tensor(rng, 2, 5, 4).requires_grad_() for _ in range(3))
    if causal:
        return [
            Case("query and key (2, 6, 4), value (2, 6, 3), where query 0 sees only key 0",
                 (_tensor(rng, 2, 6, 4), _tensor(rng, 2, 6, 4), _tensor(rng, 2, 6, 3))),
            Case("heads: (2, 3, 7, 8), value dim 2",
                 (_tensor(rng, 2, 3, 7, 8), _tensor(rng, 2, 3, 7, 8), _tensor(rng, 2, 3, 7, 2))),
            Case("float64 without batch axes: (5, 4)",
                 (_tensor(rng, 5, 4, dtype="float64"), _tensor(rng, 5, 4, dtype="float64"), _tensor(rng, 5, 4, dtype="float64"))),
            Case("inputs that require gradients (autograd must flow through)", grad),
            Case(f"query, key and value (1, 2, {length}, 4), where no ({length}, {length}) matrix may be built", big),
        ]
    return [
        Case("query, key and value (2, 5, 4)", (_tensor(rng, 2, 5, 4), _tensor(rng, 2, 5, 4), _tensor(rng, 2, 5, 4))),
        Case("heads: (2, 3, 6, 8), value dim 2",
             (_tensor(rng, 2, 3, 6, 8), _tensor(rng, 2, 3, 6, 8), _tensor(rng, 2, 3, 6, 2))),
        Case("cross-attention: T = 3 queries, S = 7 keys, value dim 5",
             (_tensor(rng, 1, 3, 4), _tensor(rng, 1, 7, 4), _tensor(rng, 1, 7, 5))),
        Case("float64 without batch axes: query (4, 6), key and value (9, 6)",
             (_tensor(rng, 4, 6, dtype="float64"), _tensor(rng, 9, 6, dtype="float64"), _tensor(rng, 9, 6, dtype="float64"))),
        Case("inputs that require gradients (autograd must flow through)", grad),
        Case(f"query, key and value (1, 2, {length}, 4), where no ({length}, {length}) matrix may be built", big),
    ]


def _linear_reference(query, key, value):
    from course_lib.linear import linear_attention

    return linear_attention(query, key, value)


def _causal_linear_reference(query, key, value):
    from course_lib.linear import causal_linear_attention

    return causal_linear_attention(query, key, value)


def _linear_extra(advice):
    """Further checks: gradients flow on the autograd case; no (T, S) tensor on the long case."""

    def check(function, case, got) -> str | None:
        query, key = case.args[0], case.args[1]
        if "may be built" in case.label:
            full = query.shape[:-1].numel() * key.shape[-2]  # B * H * T * S
            largest = _largest_intermediate(function, *case.args)
            if largest >= full // 4:
                return (f"a tensor of {largest} numbers was built inside your function; the (B, H, T, S) weights "
                        f"hold {full}. {advice}")
        return None

    return check


_LINEAR_MISTAKES = (
    Mistake("this is softmax attention (exp(q·k/√D)); linear attention weighs key j by φ(q_i)·φ(k_j) with "
            "φ = elu + 1 (your elu_feature_map).", like(_softmax_variant(is_causal=False))),
    Mistake("the outputs are not normalised: divide each query's φ(q_i)ᵀ(φ(K)ᵀV) by φ(q_i)·Σ_j φ(k_j), so that "
            "its weights sum to 1.", like(_kernel_variant(normalise=False))),
    Mistake("φ is elu(x) without + 1 (check your elu_feature_map): its features can be negative, and so can the "
            "weights and their sum.", like(_kernel_variant(feature="elu"))),
    Mistake("queries and keys must go through φ = elu + 1 (your elu_feature_map) before the products; with raw "
            "q·k the weights can be negative.", like(_kernel_variant(feature="identity"))),
    Mistake("the weights are normalised over the queries: divide by the sum over the keys j, "
            "φ(q_i)·Σ_j φ(k_j), one number per query.", like(_kernel_variant(over_queries=True))),
    Mistake("the queries are scaled by 1/√D: linear attention feeds q and k to φ as they are (the 1/√D of "
            "softmax attention has no place here).", like(_kernel_variant(scale_query=True))),
)

check_linear_attention = _register(Check(
    name="linear_attention",
    points=2,
    make_cases=lambda rng: _linear_cases(rng, causal=False),
    reference=_linear_reference,
    implementation="course_lib.linear.linear_attention",
    outputs=(Output("output", kind="torch"),),
    mistakes=(
        Mistake("this is the causal version: here every query sees every key.",
                lambda case, got, exp: case.args[0].shape[-2] == case.args[1].shape[-2]
                and like(_kernel_variant(causal=True))(case, got, exp)),
        *_LINEAR_MISTAKES,
    ),
    error_hints=(
        (_torch_shape_error,
         "Transpose only the last two axes: key_features.transpose(-2, -1) @ value is (..., D, Dv), and the "
         "normaliser φ(K).sum(dim=-2) sums over the keys."),
        (_unpack_error, _ANY_LEADING_AXES_HINT),
        (_in_place_error, _IN_PLACE_HINT),
    ),
    extra=_linear_extra("Compute right to left: the (..., D, Dv) summary U = φ(K)ᵀV and the normaliser Σ_j φ(k_j) "
                        "first, then let the queries read them; never φ(Q)φ(K)ᵀ."),
    what="Equal to the normalised φ(Q)φ(K)ᵀV with φ = elu + 1 (cross-attention, heads, float64), "
         "differentiable, and computed right to left: no (T, S) matrix.",
))

check_causal_linear_attention = _register(Check(
    name="causal_linear_attention",
    points=3,
    make_cases=lambda rng: _linear_cases(rng, causal=True),
    reference=_causal_linear_reference,
    implementation="course_lib.linear.causal_linear_attention",
    outputs=(Output("output", kind="torch"),),
    mistakes=(
        Mistake("every query sees every key: query i may only use keys 0..i. Accumulate the sums along the "
                "positions (torch.cumsum(..., dim=-3) for the (..., T, D, Dv) states, dim=-2 for z) or in a loop.",
                like(_kernel_variant(causal=False))),
        Mistake("off by one: query i sees keys 0..i, its own key included. Add φ(k_i)v_iᵀ and φ(k_i) to the "
                "state (U, z) before reading it.", like(_kernel_variant(causal=True, strict=True))),
        Mistake("query i sees future keys: your sums run over keys i..T-1 (a reversed cumulative sum, or the "
                "upper triangle), but query i may only use keys 0..i. Accumulate from the first position on.",
                like(_kernel_variant(causal=True, future=True))),
        Mistake("the cumulative sum must run along the positions, the axis of length T: dim=-3 for the "
                "(..., T, D, Dv) outer products φ(k_j)v_jᵀ, dim=-2 for the (..., T, D) features φ(k_j). A fixed "
                "dim such as 1 is a head or feature axis for other ranks.", _cumsum_along_wrong_axis),
        Mistake("the normaliser sums over all keys: z_i must be a running sum too, Σ_{j<=i} φ(k_j) "
                "(torch.cumsum of φ(K) along the positions).", like(_kernel_variant(causal=True, running_normaliser=False))),
        Mistake("this is causal softmax attention; linear attention weighs key j by φ(q_i)·φ(k_j) with "
                "φ = elu + 1 (your elu_feature_map).", like(_softmax_variant(is_causal=True))),
        Mistake("the outputs are not normalised: divide φ(q_i)ᵀU_i by φ(q_i)·z_i.",
                like(_kernel_variant(causal=True, normalise=False))),
        Mistake("φ is elu(x) without + 1 (check your elu_feature_map): its features can be negative, and so can the "
                "weights and their sum.", like(_kernel_variant(causal=True, feature="elu"))),
        Mistake("queries and keys must go through φ = elu + 1 (your elu_feature_map) before the products.",
                like(_kernel_variant(causal=True, feature="identity"))),
        Mistake("the queries are scaled by 1/√D: linear attention feeds q and k to φ as they are.",
                like(_kernel_variant(causal=True, scale_query=True))),
    ),
    error_hints=(
        (_torch_shape_error,
         "The outer products φ(k_j)v_jᵀ are key_features.unsqueeze(-1) * value.unsqueeze(-2), (..., T, D, Dv); "
         "their running sum is a cumsum over the positions, dim=-3."),
        (_unpack_error, _ANY_LEADING_AXES_HINT),
        (_in_place_error, _IN_PLACE_HINT),
    ),
    extra=_linear_extra("That is the masked (T, T) form. Use cumulative sums along the positions (states "
                        "(..., T, D, Dv)), or a loop over the positions that carries U (D, Dv) and z (D)."),
    what="Equal to the masked quadratic form (heads, float64, query 0 = value 0), differentiable, and "
         "without a (T, T) matrix: cumulative sums or a recurrent state.",
))


def _random_features_cases(rng):
    import torch

    half = lambda *shape: _tensor(rng, *shape, dtype="float64") * 0.5
    return [
        Case("x (5, 4) and omega (8, 4): M = 8 features", (half(5, 4), _tensor(rng, 8, 4, dtype="float64"))),
        Case("batch and heads: x (2, 3, 6, 4), omega (16, 4)", (half(2, 3, 6, 4), _tensor(rng, 16, 4, dtype="float64"))),
        Case("M = D: x (3, 6), omega (6, 6) (square, so a transposed omega cannot hide behind a shape error)",
             (half(3, 6), _tensor(rng, 6, 6, dtype="float64"))),
        Case("float32: x (4, 16), omega (32, 16)", (_tensor(rng, 4, 16) * 0.5, _tensor(rng, 32, 16))),
        Case("x = 0: every feature is exp(0)/√M = 1/3 with M = 9",
             (torch.zeros(2, 4, dtype=torch.float64), _tensor(rng, 9, 4, dtype="float64"))),
    ]


def _random_features_reference(x, omega):
    from course_lib.linear import positive_random_features

    return positive_random_features(x, omega)


def _random_features_variant(norm="half square", divide="sqrt", transpose=True, norm_axis=-1):
    def features(x, omega):
        import torch

        projections = x @ (omega.transpose(-2, -1) if transpose else omega)  # (..., T, M)
        squares = (x * x).sum(dim=norm_axis, keepdim=True)  # (..., T, 1)
        shift = {"half square": squares / 2, "square": squares, "half norm": squares.sqrt() / 2, "none": 0}[norm]
        count = omega.shape[0]
        divisor = {"sqrt": count ** 0.5, "count": count, "sqrt dim": x.shape[-1] ** 0.5, "none": 1}[divide]
        return torch.exp(projections - shift) / divisor

    return features


check_positive_random_features = _register(Check(
    name="positive_random_features",
    points=2,
    make_cases=_random_features_cases,
    reference=_random_features_reference,
    implementation="course_lib.linear.positive_random_features",
    outputs=(Output("features", kind="torch"),),
    mistakes=(
        Mistake("the factor exp(-‖x‖²/2) is missing: φ(x)_i = exp(ω_iᵀx - ‖x‖²/2)/√M. Without it "
                "E[φ(q)·φ(k)] = exp(q·k + (‖q‖² + ‖k‖²)/2), not exp(q·k).", like(_random_features_variant(norm="none"))),
        Mistake("subtract half the squared norm, ‖x‖²/2, not all of it.", like(_random_features_variant(norm="square"))),
        Mistake("‖x‖² is the squared norm, (x * x).sum(dim=-1, keepdim=True), not the norm itself.",
                like(_random_features_variant(norm="half norm"))),
        Mistake("divide by √M: φ(q) and φ(k) each carry 1/√M, so that their dot product averages the M terms.",
                like(_random_features_variant(divide="none"))),
        Mistake("divide by √M, not M: φ(q) and φ(k) each carry 1/√M, and their product the 1/M of an average.",
                like(_random_features_variant(divide="count"))),
        Mistake("divide by √M, the number of features (omega.shape[0]), not √D (x.shape[-1]): φ(q) and φ(k) "
                "each carry 1/√M, so that their dot product averages the M terms.",
                like(_random_features_variant(divide="sqrt dim"))),
        Mistake("x @ omega pairs x with omega's columns, but each ω_i is a row of omega: use x @ omega.T "
                "(omega.transpose(-2, -1)).", like(_random_features_variant(transpose=False))),
        Mistake("‖x‖² is summed over the wrong axis: sum each vector's own features, the last axis "
                "(dim=-1, keepdim=True).", like(_random_features_variant(norm_axis=-2))),
    ),
    error_hints=(
        (_torch_shape_error,
         "omega is (M, D), one ω_i per row: x @ omega.T gives the (..., T, M) projections ω_iᵀx."),
    ),
    what="φ(x)_i = exp(ω_iᵀx − ‖x‖²/2)/√M for any batch shape, so that E[φ(q)·φ(k)] = exp(q·k).",
))


# ==========================================================================================================
# What doing the job with someone else's code means, per check (used by the grader, course_lib.grading):
# ``withholds``: the course's other code that computes the same result, absent from the grader's sandbox like
# the implementation itself; ``library``: names of torch functions that do the job, found in the submitted
# source (an attribute, an imported name, a keyword or a string that contains one of them earns 0).
# ==========================================================================================================

_ATTENTION = ("course_lib.numpy_attention.scaled_dot_product_attention", "course_lib.attention.scaled_dot_product_attention",
              "course_lib.attention.masked_softmax", "course_lib.attention.SelfAttention",
              "course_lib.multihead.grouped_query_attention", "course_lib.multihead.MultiHeadAttention",
              "course_lib.flash.flash_attention", "course_lib.flash.flash_attention_forward",
              "course_lib.flash.FlashAttentionFunction", "course_lib.sparse.sliding_window_attention",
              "course_lib.trophy.attend")
_TORCH_ATTENTION = ("scaled_dot_product", "multi_head_attention", "MultiheadAttention", "Transformer",
                    "flash_attention_forward", "_efficient_attention")  # F.sdpa, F.mha_forward, the aten ops
_SAME_JOB = {
    "softmax": (("course_lib.attention.masked_softmax", "course_lib.flash.online_softmax_steps"),
                ("softmax", *_TORCH_ATTENTION)),
    "scaled_dot_product_attention": (_ATTENTION, _TORCH_ATTENTION),
    "causal_mask": (("course_lib.attention.causal_mask", "course_lib.sparse.sliding_window_mask",
                     "course_lib.numpy_attention.attention_mask"), ()),
    "padding_mask": (("course_lib.numpy_attention.attention_mask",), ()),
    "masked_attention": (_ATTENTION, _TORCH_ATTENTION),
    "sdpa": (_ATTENTION, _TORCH_ATTENTION),
    "SelfAttention": (_ATTENTION, _TORCH_ATTENTION),
    "MultiHeadAttention": (("course_lib.linear.LinearSelfAttention",), ("multi_head_attention", "MultiheadAttention",
                                                                        "Transformer")),
    "apply_rope": (("course_lib.positional.rope_score",), ()),
    "kv_cache_bytes": (("course_lib.cost.cache_bytes",), ()),
    "grouped_query_attention": ((), ("enable_gqa", "multi_head_attention", "MultiheadAttention", "Transformer")),
    "sliding_window_mask": (("course_lib.sparse.dilated_window_mask", "course_lib.sparse.bigbird_mask"), ()),
    "strided_mask": (("course_lib.sparse.fixed_mask",), ()),
    # attention on each block (torch's or the course's) is allowed: the band and the blocks are the exercise
    "sliding_window_attention": ((), ("multi_head_attention", "MultiheadAttention", "Transformer")),
    "online_softmax_update": (("course_lib.flash.online_softmax_steps",), ()),
    "flash_attention": (("course_lib.flash.flash_attention_forward", "course_lib.flash.FlashAttentionFunction",
                         "course_lib.flash.flash_attention_backward", *_ATTENTION), _TORCH_ATTENTION),
    "linear_attention": (("course_lib.linear.kernel_attention", "course_lib.linear.kernel_attention_weights",
                          "course_lib.linear.LinearSelfAttention"), ()),
    "causal_linear_attention": (("course_lib.linear.kernel_attention", "course_lib.linear.kernel_attention_weights",
                                 "course_lib.linear.linear_attention_step", "course_lib.linear.recurrent_linear_attention",
                                 "course_lib.linear.chunked_causal_linear_attention", "course_lib.linear.LinearSelfAttention"), ()),
    "positive_random_features": (("course_lib.linear.performer_attention",), ()),
}
for _name, (_withholds, _library) in _SAME_JOB.items():
    CHECKS[_name].withholds = tuple(w for w in _withholds if w != CHECKS[_name].implementation)
    CHECKS[_name].library = _library


# Memory probes: a long case on which the grader measures, from outside the sandbox, the peak memory of the
# learner's function against the course's solution (the check cells use the in-process checks above).
def _long_inputs(rng, length=4096, dim=16):
    return tuple(_tensor(rng, 1, 1, length, dim) for _ in range(3))  # (B, H, T, D) each


CHECKS["sliding_window_attention"].memory_probe = lambda rng: Case(
    "T = S = 4096, window = 32 (peak memory measured)", (*_long_inputs(rng), 32))
CHECKS["sliding_window_attention"].memory_advice = (
    "Compute each block of queries against only the keys within its window, so that memory grows like T·window.")
CHECKS["flash_attention"].memory_probe = lambda rng: Case(
    "T = S = 4096, block_size = 64 (peak memory measured)", _long_inputs(rng), {"block_size": 64})
CHECKS["flash_attention"].memory_advice = (
    "Flash attention holds one (block_size, block_size) tile of scores per head at a time: loop over blocks of "
    "queries and, inside, over blocks of keys.")
CHECKS["linear_attention"].memory_probe = lambda rng: Case("T = S = 4096 (peak memory measured)", _long_inputs(rng))
CHECKS["linear_attention"].memory_advice = (
    "Compute right to left: the (..., D, Dv) summary φ(K)ᵀV and the normaliser first; never φ(Q)φ(K)ᵀ.")
CHECKS["causal_linear_attention"].memory_probe = lambda rng: Case("T = S = 4096 (peak memory measured)",
                                                                   _long_inputs(rng))
CHECKS["causal_linear_attention"].memory_advice = (
    "That is the masked (T, T) form. Use cumulative sums along the positions, or a loop that carries (U, z).")
