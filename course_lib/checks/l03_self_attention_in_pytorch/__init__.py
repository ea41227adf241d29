"""The checks of lesson 03, self-attention in PyTorch: torch's sdpa conventions and the SelfAttention layer.

Lesson: notebooks/03_self_attention_in_pytorch.ipynb, its exercise solutions/03_self_attention_in_pytorch.ipynb.
Tests: tests/checks/test_l03_self_attention_in_pytorch.py.
"""
from __future__ import annotations

from course_lib import calling
from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import COURSE_ATTENTION, TORCH_ATTENTION, tensor
from course_lib.checks.l03_self_attention_in_pytorch.layer_mistakes import (
    _layer_keys_from_query, _layer_mask_reversed, _layer_queries_and_keys_swapped, _layer_softmax_over_queries,
    _layer_unscaled, _layer_values_from_key, _mask_ignored_on_a_masked_case, _multiplied_by_a_layer_weight,
    _scaled_by_d_model,
)
from course_lib.checks.l03_self_attention_in_pytorch.mistakes import (
    _TORCH_ATTENTION_MISTAKES, _batched_shapes_do_not_fit, _causal_mask_of_the_wrong_size,
)


def _sdpa_cases(rng):
    import torch

    mask = torch.from_numpy(rng.random((4, 6)) < 0.6)
    mask[2] = False  # query 2 may attend to nothing
    additive = torch.zeros(4, 6)
    additive[:, 4:] = float("-inf")
    additive[:, 0] = 1.5  # an additive mask may also hold a bias
    biased = torch.zeros(4, 6)
    biased[:, 1], biased[:, 3] = -0.7, -2.0  # negative biases (ALiBi's are): they weigh keys down, not out
    biased[:, 5] = float("-inf")
    biased[2] = float("-inf")  # a fully masked row in a float mask: zeros, as with a boolean mask (and torch)
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
        Case("an additive float attn_mask (4, 6) with negative biases -0.7 and -2 (they weigh keys down, not out) "
             "and a row that is all -inf (its output is zeros, as with a boolean mask)",
             (tensor(rng, 2, 4, 5), tensor(rng, 2, 6, 5), tensor(rng, 2, 6, 2)), {"attn_mask": biased}),
        Case("float64 inputs (3, 7), (4, 7), (4, 2)",
             (tensor(rng, 3, 7, dtype="float64"), tensor(rng, 4, 7, dtype="float64"), tensor(rng, 4, 2, dtype="float64"))),
        Case("inputs that require gradients (autograd must flow through)", tuple(grad_inputs)),
    ]


check_sdpa = Check(
    name="sdpa",
    points=2,
    make_cases=_sdpa_cases,
    implementation="course_lib.attention.scaled_dot_product_attention",
    outputs=(Output("output", kind="torch"), Output("weights", kind="torch")),
    mistakes=_TORCH_ATTENTION_MISTAKES,
    error_hints=(
        (_causal_mask_of_the_wrong_size,
         "With T queries and S keys the causal mask is (T, S): torch.ones(T, S, dtype=torch.bool).tril() with "
         "T = query.shape[-2] and S = key.shape[-2]; a (T, T) or (S, S) mask fits only when T = S."),
        (_batched_shapes_do_not_fit,
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
    weights = {name: tensor(rng, 4, 8) / 8 ** 0.5 for name in ("query", "key", "value")}
    cases.append(Case("d_model=8, d_head=4, x (2, 5, 8) that requires gradients (training backpropagates through "
                      "the layer)", (8, 4, weights, tensor(rng, 2, 5, 8).requires_grad_(), None)))
    return cases


check_SelfAttention = Check(
    name="SelfAttention",
    points=2,
    make_cases=_self_attention_cases,
    implementation="course_lib.attention.SelfAttention",
    call=calling.call_self_attention,
    outputs=(Output("output", kind="torch"),),
    error_hints=(
        (_multiplied_by_a_layer_weight,
         "Call the layers, self.query(x), rather than multiplying by their weights: nn.Linear stores its weight "
         "as (out, in), so x @ weight would need a .T."),
        (_batched_shapes_do_not_fit,
         "On the 3-D keys (B, T, d_head), keys.T reverses all three axes, to (d_head, T, B), so the batch axis "
         "ends up where the features were. Transpose only the last two: keys.transpose(-2, -1) (or keys.mT)."),
    ),
    mistakes=(
        Mistake("you scaled by √d_model; the scores are dot products of d_head-sized vectors, so scale by "
                "√d_head.", like(_scaled_by_d_model)),
        Mistake("the scores are not scaled by 1/√d_head.", like(_layer_unscaled)),
        Mistake("softmax over the wrong dimension: each query's weights (dim=-1) must sum to 1.",
                like(_layer_softmax_over_queries)),
        Mistake("your scores are keys @ queries^T: the query and key projections swapped roles, so each weight "
                "row belongs to a key. scores[i, j] is query i · key j: self.query(x) @ self.key(x).transpose(-2, "
                "-1).", like(_layer_queries_and_keys_swapped)),
        Mistake("your keys come from self.query (a copy-paste slip?): keys = self.key(x).",
                like(_layer_keys_from_query)),
        Mistake("your values come from self.key: values = self.value(x).", like(_layer_values_from_key)),
        Mistake("attn_mask is ignored: pass it on to your attention function.", _mask_ignored_on_a_masked_case),
        Mistake("the mask's meaning is reversed: True = may attend.", like(_layer_mask_reversed)),
    ),
    validate=calling.validate_self_attention,
    what="Projections query/key/value are nn.Linear(d_model, d_head, bias=False); output (B, T, d_head) "
         "equals the reference with the same weights, with and without a mask.",
    withholds=COURSE_ATTENTION,
    library=TORCH_ATTENTION,
)


CHECKS = (check_sdpa, check_SelfAttention)
