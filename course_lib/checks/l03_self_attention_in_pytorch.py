"""The checks of lesson 03, self-attention in PyTorch: torch's sdpa conventions and the SelfAttention layer.

Lesson: notebooks/03_self_attention_in_pytorch.ipynb, its exercise solutions/03_self_attention_in_pytorch.ipynb. Tests: tests/checks/test_l03_self_attention_in_pytorch.py.
"""
from __future__ import annotations

import numpy as np

from course_lib import calling
from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import COURSE_ATTENTION, TORCH_ATTENTION, mistaken_attention, tensor, torch_shape_error


def _sdpa_cases(rng):
    import torch

    mask = torch.from_numpy(rng.random((4, 6)) < 0.6)
    mask[2] = False  # query 2 may attend to nothing
    additive = torch.zeros(4, 6)
    additive[:, 4:] = float("-inf")
    additive[:, 0] = 1.5  # an additive mask may also hold a bias
    grad_inputs = [tensor(rng, 2, 3, 4).requires_grad_() for _ in range(3)]
    return [
        Case("query (2, 3, 4), key (2, 5, 4), value (2, 5, 3), no mask", (tensor(rng, 2, 3, 4), tensor(rng, 2, 5, 4), tensor(rng, 2, 5, 3))),
        Case("4-D with heads: (B=2, H=3, T=4, D=8), S=6",
             (tensor(rng, 2, 3, 4, 8), tensor(rng, 2, 3, 6, 8), tensor(rng, 2, 3, 6, 8))),
        Case("a boolean attn_mask (4, 6) with one fully masked row (True = may attend)",
             (tensor(rng, 1, 4, 5), tensor(rng, 1, 6, 5), tensor(rng, 1, 6, 2)), {"attn_mask": mask}),
        Case("an additive float attn_mask (4, 6) holding 0, 1.5 and -inf",
             (tensor(rng, 2, 4, 5), tensor(rng, 2, 6, 5), tensor(rng, 2, 6, 2)), {"attn_mask": additive}),
        Case("is_causal=True with T = S = 5", (tensor(rng, 2, 5, 4), tensor(rng, 2, 5, 4), tensor(rng, 2, 5, 4)),
             {"is_causal": True}),
        Case("is_causal=True with T = 3 queries and S = 5 keys (mask (T, S), lower triangle from the top left)",
             (tensor(rng, 2, 3, 4), tensor(rng, 2, 5, 4), tensor(rng, 2, 5, 4)), {"is_causal": True}),
        Case("float64 inputs (3, 7), (4, 7), (4, 2)",
             (tensor(rng, 3, 7, dtype="float64"), tensor(rng, 4, 7, dtype="float64"), tensor(rng, 4, 2, dtype="float64"))),
        Case("inputs that require gradients (autograd must flow through)", tuple(grad_inputs)),
    ]


_TORCH_ATTENTION_MISTAKES = (
    Mistake("the boolean mask's meaning is reversed: in torch's convention True = may attend; fill the scores "
            "with -inf where the mask is False: scores.masked_fill(~attn_mask, float('-inf')).",
            like(mistaken_attention(reverse_bool=True))),
    Mistake("a float attn_mask is added to the scores (it holds 0 or -inf, or a bias), not multiplied.",
            like(mistaken_attention(multiply_float=True))),
    Mistake("the mask is applied after the softmax: masked weights are 0 but the rest no longer sum to 1. "
            "Fill the masked scores with -inf before the softmax.", like(mistaken_attention(after_softmax=True))),
    Mistake("a boolean attn_mask was added to the scores as numbers (True = 1, False = 0); a boolean mask "
            "says which keys may be attended: scores.masked_fill(~attn_mask, float('-inf')).",
            like(mistaken_attention(add_bool=True))),
    Mistake("masked keys were filled with a large negative number: a query whose keys are all masked then "
            "spreads its weight evenly instead of getting zeros. Use -inf and give such rows zero weights.",
            like(mistaken_attention(large_negative=True))),
    Mistake("is_causal=True is ignored: build the (T, S) lower-triangular mask (torch.ones(T, S).tril()) and "
            "use it.", lambda case, got, exp: case.kwargs.get("is_causal") and like(mistaken_attention(ignore_causal=True))(case, got, exp)),
    Mistake("your causal mask lets queries see the future: query i may attend keys j <= i (lower triangle, "
            ".tril()), not j >= i.", like(mistaken_attention(upper_causal=True))),
    Mistake("the scores are not scaled by 1/√D (D = query.shape[-1]).", like(mistaken_attention(scale=False))),
    Mistake("softmax over the wrong dimension: each query's weights (dim=-1) must sum to 1.",
            like(mistaken_attention(axis=-2))),
    Mistake("a query whose keys are all masked gives NaN. Like torch >= 2.5, such a row must get zero weights "
            "and a zero output: after the softmax, replace those rows by 0 (e.g. torch.where on "
            "attn_mask.any(-1)), or divide by a total that is never 0.",
            lambda case, got, exp: any(np.isnan(np.asarray(g.detach(), dtype=float)).any() for g in got)
            and like(mistaken_attention(nan_rows=True))(case, got, exp)),
)


check_sdpa = Check(
    name="sdpa",
    points=2,
    make_cases=_sdpa_cases,
    implementation="course_lib.attention.scaled_dot_product_attention",
    outputs=(Output("output", kind="torch"), Output("weights", kind="torch")),
    mistakes=_TORCH_ATTENTION_MISTAKES,
    error_hints=(
        (torch_shape_error,
         "Transpose only the last two dimensions of key: key.transpose(-2, -1) (key.T reverses all of them)."),
    ),
    what="Matches torch's conventions: boolean and additive masks, is_causal, batches and heads, float64, "
         "zero rows when fully masked, and gradients flow.",
    withholds=COURSE_ATTENTION,
    library=TORCH_ATTENTION,
)


def _self_attention_cases(rng):
    import torch

    cases = []
    for label, d_model, d_head, batch, length, mask in (
        ("d_model=8, d_head=4, x (2, 5, 8)", 8, 4, 2, 5, None),
        ("d_model=6, d_head=6, x (1, 3, 6)", 6, 6, 1, 3, None),
        ("d_model=8, d_head=2, x (2, 4, 8) with a causal attn_mask", 8, 2, 2, 4, torch.ones(4, 4, dtype=torch.bool).tril()),
    ):
        weights = {name: tensor(rng, d_head, d_model) / d_model ** 0.5 for name in ("query", "key", "value")}
        cases.append(Case(label, (d_model, d_head, weights, tensor(rng, batch, length, d_model), mask)))
    return cases


def _self_attention_variant(**mistake):
    attend = mistaken_attention(**mistake)

    def run(d_model, d_head, weights, x, mask):
        projected = [x @ weights[name].T for name in ("query", "key", "value")]  # 3 x (B, T, D)
        return attend(*projected, attn_mask=mask)[0]

    return run


def _scaled_by_d_model(d_model, d_head, weights, x, mask):
    """SelfAttention dividing the scores by √d_model: the right layer with its queries scaled by √(d_head/d_model)."""
    from course_lib.attention import SelfAttention

    rescaled = {**weights, "query": weights["query"] * (d_head / d_model) ** 0.5}  # scores · √d_head/√d_model
    return calling.run_module(SelfAttention, d_model, d_head, rescaled, x, mask)


check_SelfAttention = Check(
    name="SelfAttention",
    points=2,
    make_cases=_self_attention_cases,
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
                "√d_head.", like(_scaled_by_d_model)),
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
    withholds=COURSE_ATTENTION,
    library=TORCH_ATTENTION,
)


CHECKS = (check_sdpa, check_SelfAttention)
