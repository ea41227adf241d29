"""The mistakes of lesson 03's checks, as code: what each wrong solution computes (its simulator, for
``like``) and the predicates that recognise it. Used by :mod:`course_lib.checks.l03_self_attention_in_pytorch`; triggered by the WRONG
fixtures of tests/checks/test_l03_self_attention_in_pytorch.py.
"""
from __future__ import annotations

import numpy as np

from course_lib.checking import Mistake, like
from course_lib.checks._common import torch_shape_error


def _scaled_scores(query, key):
    return query @ key.transpose(-2, -1) / query.shape[-1] ** 0.5  # (..., T, S)


def _lower_triangle(query, key):
    import torch

    return torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool).tril()  # (T, S): j <= i


def _hide_where_false(scores, mask):
    return scores.masked_fill(~mask, float("-inf"))  # (..., T, S)


def _add_mask(scores, mask):
    return scores + mask  # (..., T, S); a boolean mask adds True = 1, False = 0


def _softmax_zero_when_fully_masked(scores):
    from course_lib.attention import masked_softmax

    return masked_softmax(scores)  # (..., T, S); a row of -inf gives zeros


def _attend(query, key, value, attn_mask=None, is_causal=False, *, causal=_lower_triangle, hide=_hide_where_false,
            add=_add_mask, normalise=_softmax_zero_when_fully_masked):
    """torch-style attention built from its steps (right by default): the core of the simulators below."""
    import torch

    scores = _scaled_scores(query, key)  # (..., T, S)
    if is_causal:
        attn_mask = causal(query, key)  # (T, S)
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = hide(scores, attn_mask)  # (..., T, S)
    elif attn_mask is not None:
        scores = add(scores, attn_mask)  # (..., T, S)
    weights = normalise(scores)  # (..., T, S)
    return weights @ value, weights  # (..., T, Dv), (..., T, S)


def _hide_where_true(scores, mask):
    return scores.masked_fill(mask, float("-inf"))  # (..., T, S)


def _bool_mask_reversed(query, key, value, attn_mask=None, is_causal=False):
    """True read as 'hide': -inf where the boolean mask is True."""
    return _attend(query, key, value, attn_mask, is_causal, hide=_hide_where_true)


def _multiply_by_float_mask(scores, mask):
    return scores * mask  # (..., T, S)


def _float_mask_multiplied(query, key, value, attn_mask=None, is_causal=False):
    """The float mask multiplied into the scores instead of added."""
    return _attend(query, key, value, attn_mask, is_causal, add=_multiply_by_float_mask)


def _float_mask_multiplied_then_torch_softmax(query, key, value, attn_mask=None, is_causal=False):
    """The same, then torch.softmax: a row where score × -inf gave +inf is all NaN, not partly."""
    return _attend(query, key, value, attn_mask, is_causal, add=_multiply_by_float_mask, normalise=_plain_softmax)


def _float_mask_multiplied_either_softmax(case, got, expected) -> bool:
    """A case with a float mask, answered with the mask multiplied in, whichever softmax came after it."""
    mask = case.kwargs.get("attn_mask")
    return (mask is not None and mask.is_floating_point()
            and any(like(simulator)(case, got, expected)
                    for simulator in (_float_mask_multiplied, _float_mask_multiplied_then_torch_softmax)))


def _mask_after_softmax(query, key, value, attn_mask=None, is_causal=False):
    """The boolean mask multiplied into the weights after the softmax, instead of hiding scores before it."""
    import torch

    if is_causal:
        attn_mask = _lower_triangle(query, key)  # (T, S)
    if attn_mask is None or attn_mask.dtype != torch.bool:
        return _attend(query, key, value, attn_mask)
    weights = torch.softmax(_scaled_scores(query, key), dim=-1) * attn_mask  # (..., T, S)
    return weights @ value, weights


def _bool_mask_added(query, key, value, attn_mask=None, is_causal=False):
    """The boolean mask added to the scores as 1 and 0."""
    return _attend(query, key, value, attn_mask, is_causal, hide=_add_mask)


def _fill_with_a_large_negative(scores, mask):
    return scores.masked_fill(~mask, -1e9)  # (..., T, S)


def _masked_with_a_large_negative(query, key, value, attn_mask=None, is_causal=False):
    """-1e9 instead of -inf: a fully masked row gets uniform weights instead of zeros."""
    return _attend(query, key, value, attn_mask, is_causal, hide=_fill_with_a_large_negative)


def _causal_ignored(query, key, value, attn_mask=None, is_causal=False):
    """is_causal=True has no effect: every query sees every key."""
    return _attend(query, key, value, attn_mask)


def _is_causal_ignored(case, got, expected) -> bool:
    """A causal case answered as if is_causal were False."""
    return bool(case.kwargs.get("is_causal")) and like(_causal_ignored)(case, got, expected)


def _upper_triangle(query, key):
    import torch

    return torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool).triu()  # (T, S): j >= i


def _causal_upper_triangle(query, key, value, attn_mask=None, is_causal=False):
    """The causal mask built with .triu(): each query sees itself and the future."""
    return _attend(query, key, value, attn_mask, is_causal, causal=_upper_triangle)


def _unscaled(query, key, value, attn_mask=None, is_causal=False):
    """Scores without the 1/√D: the right attention with scale=1."""
    from course_lib.attention import scaled_dot_product_attention

    return scaled_dot_product_attention(query, key, value, attn_mask, is_causal, scale=1.0)


def _softmax_over_dim_minus_2(scores):
    import torch

    return torch.softmax(scores, dim=-2)  # (..., T, S); columns sum to 1


def _softmax_over_queries(query, key, value, attn_mask=None, is_causal=False):
    """The softmax over dim=-2 (the queries) instead of dim=-1 (the keys)."""
    return _attend(query, key, value, attn_mask, is_causal, normalise=_softmax_over_dim_minus_2)


def _plain_softmax(scores):
    import torch

    return torch.softmax(scores, dim=-1)  # (..., T, S); a row of -inf gives NaN


def _fully_masked_rows_give_nan(query, key, value, attn_mask=None, is_causal=False):
    """torch.softmax on a row of -inf: NaN instead of zeros."""
    return _attend(query, key, value, attn_mask, is_causal, normalise=_plain_softmax)


def _nan_in_fully_masked_rows(case, got, expected) -> bool:
    """An answer with NaN in it, and the NaN are where a fully masked row is."""
    return (any(np.isnan(np.asarray(result.detach(), dtype=float)).any() for result in got)
            and like(_fully_masked_rows_give_nan)(case, got, expected))


def _scaled_by(scale_of):
    """The right attention with the scores scaled by ``scale_of(query, key, value)`` instead of 1/√D."""
    from course_lib.attention import scaled_dot_product_attention

    def attend(query, key, value, attn_mask=None, is_causal=False):
        return scaled_dot_product_attention(query, key, value, attn_mask, is_causal,
                                            scale=scale_of(query, key, value))

    return attend


def _times_root_d(query, key, value):
    return query.shape[-1] ** 0.5  # × √D, where ÷ √D was meant


def _over_root_keys(query, key, value):
    return key.shape[-2] ** -0.5  # ÷ √S: the number of keys


def _over_root_value_dim(query, key, value):
    return value.shape[-1] ** -0.5  # ÷ √Dv: the values' size


_multiplied_by_root_d = _scaled_by(_times_root_d)


_divided_by_root_keys = _scaled_by(_over_root_keys)


_divided_by_root_value_dim = _scaled_by(_over_root_value_dim)


def _scores_as_weights(query, key, value, attn_mask=None, is_causal=False):
    """The right output, returned with the scaled (and masked) scores, before the softmax, as the weights."""
    import torch

    output, _ = _attend(query, key, value, attn_mask, is_causal)
    scores = _scaled_scores(query, key)  # (..., T, S)
    if is_causal:
        attn_mask = _lower_triangle(query, key)  # (T, S)
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = _hide_where_false(scores, attn_mask)  # (..., T, S)
    elif attn_mask is not None:
        scores = _add_mask(scores, attn_mask)  # (..., T, S)
    return output, scores


def _raw_scores_as_weights(query, key, value, attn_mask=None, is_causal=False):
    """The right output, returned with query @ key^T (unscaled, unmasked) as the weights."""
    output, _ = _attend(query, key, value, attn_mask, is_causal)
    return output, query @ key.transpose(-2, -1)  # (..., T, Dv), (..., T, S)


def _returned_the_scores(case, got, expected) -> bool:
    return like(_scores_as_weights)(case, got, expected) or like(_raw_scores_as_weights)(case, got, expected)


def _output_right_weights_wrong(case, got, expected) -> bool:
    """Any other pair whose output is right and whose weights are not: the weights returned are not the ones used."""
    from course_lib.checking import close

    return close(expected[0], got[0]) and not close(expected[1], got[1])


def _zero_where_false(scores, mask):
    return scores * mask  # (..., T, S): hidden scores become 0, which e^0 = 1 still weighs


def _scores_multiplied_by_bool_mask(query, key, value, attn_mask=None, is_causal=False):
    """The boolean mask multiplied into the scores: a hidden score becomes 0, not -inf."""
    return _attend(query, key, value, attn_mask, is_causal, hide=_zero_where_false)


def _bool_mask_multiplied(case, got, expected) -> bool:
    mask = case.kwargs.get("attn_mask")
    return (mask is not None and mask.dtype == _torch_bool()
            and like(_scores_multiplied_by_bool_mask)(case, got, expected))


def _torch_bool():
    import torch

    return torch.bool


def _hide_where_zero(scores, mask):
    return scores.masked_fill(~mask.bool(), float("-inf"))  # (..., T, S): the float mask read as a boolean


def _float_mask_read_as_bool(query, key, value, attn_mask=None, is_causal=False):
    """The float mask read as a boolean one: 0 (no change) hides a key, -inf and 1.5 let it through."""
    return _attend(query, key, value, attn_mask, is_causal, add=_hide_where_zero)


def _hide_where_minus_inf(scores, mask):
    return scores.masked_fill(mask == float("-inf"), float("-inf"))  # (..., T, S): the bias dropped


def _float_mask_bias_dropped(query, key, value, attn_mask=None, is_causal=False):
    """Only the float mask's -inf entries used: its other numbers (a bias such as 1.5) are dropped."""
    return _attend(query, key, value, attn_mask, is_causal, add=_hide_where_minus_inf)


def _add_hiding_negatives(scores, mask):
    return scores + mask.masked_fill(mask < 0, float("-inf"))  # (..., T, S): a negative bias read as -inf


def _negative_bias_read_as_masked(query, key, value, attn_mask=None, is_causal=False):
    """Every negative number of the float mask hides its key, as -inf does: a bias such as -0.7 is lost."""
    return _attend(query, key, value, attn_mask, is_causal, add=_add_hiding_negatives)


def _strict_lower_triangle(query, key):
    import torch

    return torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool).tril(-1)  # (T, S): j < i


def _causal_without_diagonal(query, key, value, attn_mask=None, is_causal=False):
    """The causal mask j < i: each query hides itself, and query 0 sees nothing."""
    return _attend(query, key, value, attn_mask, is_causal, causal=_strict_lower_triangle)


def _causal_without_diagonal_nan(query, key, value, attn_mask=None, is_causal=False):
    """The same with torch.softmax: query 0's row, all -inf, is NaN."""
    return _attend(query, key, value, attn_mask, is_causal, causal=_strict_lower_triangle, normalise=_plain_softmax)


def _diagonal_hidden(case, got, expected) -> bool:
    return bool(case.kwargs.get("is_causal")) and any(
        like(simulator)(case, got, expected) for simulator in (_causal_without_diagonal, _causal_without_diagonal_nan))


def _bottom_right_triangle(query, key):
    import torch

    num_queries, num_keys = query.shape[-2], key.shape[-2]
    return torch.ones(num_queries, num_keys, dtype=torch.bool).tril(num_keys - num_queries)  # (T, S): j <= i + S - T


def _causal_bottom_right(query, key, value, attn_mask=None, is_causal=False):
    """The causal mask aligned at the bottom right (flash-attn >= 2.1, Hugging Face): the last query sees every key."""
    return _attend(query, key, value, attn_mask, is_causal, causal=_bottom_right_triangle)


_TORCH_ATTENTION_MISTAKES = (
    Mistake("the boolean mask's meaning is reversed: in torch's convention True = may attend; fill the scores "
            "with -inf where the mask is False: scores.masked_fill(~attn_mask, float('-inf')).",
            like(_bool_mask_reversed)),
    Mistake("a float attn_mask is added to the scores (it holds 0 or -inf, or a bias), not multiplied.",
            _float_mask_multiplied_either_softmax),
    Mistake("the mask is applied after the softmax: masked weights are 0 but the rest no longer sum to 1. "
            "Fill the masked scores with -inf before the softmax.", like(_mask_after_softmax)),
    Mistake("a boolean attn_mask was added to the scores as numbers (True = 1, False = 0); a boolean mask "
            "says which keys may be attended: scores.masked_fill(~attn_mask, float('-inf')).",
            like(_bool_mask_added)),
    Mistake("this is the large-negative mask convention (-1e9 in many tutorials, torch.finfo(dtype).min in "
            "Hugging Face's models): a masked key still gets weight 0, but a query whose keys are all masked "
            "spreads its weight evenly over them (its output is the mean of the values) instead of getting zeros. "
            "This exercise uses -inf and zero rows, as torch >= 2.5's scaled_dot_product_attention does, because "
            "a query with nothing to attend to should add nothing: fill with float('-inf') and give such rows "
            "zero weights (or keep your fill and zero the rows whose mask has no True).",
            like(_masked_with_a_large_negative)),
    Mistake("is_causal=True is ignored: build the (T, S) lower-triangular mask (torch.ones(T, S).tril()) and "
            "use it.", _is_causal_ignored),
    Mistake("your causal mask lets queries see the future: query i may attend keys j <= i (lower triangle, "
            ".tril()), not j >= i.", like(_causal_upper_triangle)),
    Mistake("your causal mask hides the diagonal: query i may attend keys j <= i, itself included "
            "(torch.ones(T, S).tril(), not .tril(-1) or j < i); without it query 0 sees no key at all.",
            _diagonal_hidden),
    Mistake("this is the bottom-right causal convention (flash-attn >= 2.1, Hugging Face): query i sees keys "
            "j <= i + S - T, so the last query sees every key, which a KV cache needs (lesson 10 uses it). This "
            "exercise uses top-left, as torch's is_causal does (query i sees keys j <= i: torch.ones(T, S).tril()), "
            "because your sdpa follows torch's F.scaled_dot_product_attention and is compared with it; "
            "the two agree only when T = S.", like(_causal_bottom_right)),
    Mistake("the scores are not scaled by 1/√D (D = query.shape[-1]).", like(_unscaled)),
    Mistake("you multiplied the scores by √D; divide by it: scores / math.sqrt(D), D = query.shape[-1] (a scale "
            "of D ** -0.5).", like(_multiplied_by_root_d)),
    Mistake("you scaled by the square root of the number of keys S = key.shape[-2]; the scale is 1/√D with D = "
            "query.shape[-1], the length of the vectors in each dot product.", like(_divided_by_root_keys)),
    Mistake("you scaled by the square root of the values' size Dv = value.shape[-1]; the scale is 1/√D with D = "
            "query.shape[-1] (the dot products are of queries and keys, D long; Dv may differ).",
            like(_divided_by_root_value_dim)),
    Mistake("you returned the scores (before the softmax) as the weights: your output is right, so return the "
            "softmax's result, the weights you multiplied by value.", _returned_the_scores),
    Mistake("a boolean mask was multiplied into the scores (scores * attn_mask): a hidden score becomes 0, and "
            "e^0 = 1 still gives that key weight. Hide it with -inf: scores.masked_fill(~attn_mask, "
            "float('-inf')).", _bool_mask_multiplied),
    Mistake("your float attn_mask was read as a boolean one (0 taken as 'hide'): a float mask is added to the "
            "scores, 0 = no change, -inf = hidden, other numbers a bias: scores + attn_mask.",
            like(_float_mask_read_as_bool)),
    Mistake("your float attn_mask's -inf entries hide keys, but its other numbers (a bias such as 1.5) are "
            "dropped: add the whole mask to the scores: scores + attn_mask.", like(_float_mask_bias_dropped)),
    Mistake("your float attn_mask's negative numbers hide their keys, as -inf does: only -inf hides a key; a "
            "finite negative bias (-0.7 here; ALiBi's biases are negative) is added to the scores and weighs its "
            "key down, not out. Add the whole mask: scores + attn_mask.", like(_negative_bias_read_as_masked)),
    Mistake("softmax over the wrong dimension: each query's weights (dim=-1) must sum to 1.",
            like(_softmax_over_queries)),
    Mistake("a query whose keys are all masked gives NaN. Like torch >= 2.5, such a row must get zero weights "
            "and a zero output: after the softmax, replace those rows by 0 (e.g. torch.where on "
            "attn_mask.any(-1)), or divide by a total that is never 0.", _nan_in_fully_masked_rows),
    Mistake("your output is right, but the weights you return are not the softmax weights that produced it: "
            "return the weights you multiplied by value, (..., T, S), each row summing to 1 (or 0 where all "
            "keys are masked).", _output_right_weights_wrong),
)


def _batched_shapes_do_not_fit(case, error) -> bool:
    """A torch error from tensors whose sizes do not fit, batched matmuls included: what key.T on 3-D gives."""
    return torch_shape_error(case, error) or "dimensions of batch2 tensor" in str(error)


def _causal_mask_of_the_wrong_size(case, error) -> bool:
    """A shape error on the causal case with T != S only: the mask was built (T, T) or (S, S)."""
    return (bool(case.kwargs.get("is_causal")) and case.args[0].shape[-2] != case.args[1].shape[-2]
            and _batched_shapes_do_not_fit(case, error))
