"""The checks of lesson 04, multi-head attention: splitting and merging heads, and the MultiHeadAttention layer.

Lesson: notebooks/04_multihead_attention.ipynb, its exercise solutions/04_multihead_attention.ipynb.
Tests: tests/checks/test_l04_multihead_attention.py.
"""
from __future__ import annotations

from course_lib import calling
from course_lib.calling import MHA_CONTRACT_OUTCOMES
from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import TORCH_MODULE_ATTENTION, tensor
from course_lib.checks.l04_multihead_attention.mistakes import (
    _NUMBERS_RIGHT, _WHERE_TO_RAISE, _attn_mask_replaced_by_padding, _bias_false_case, _contract_outcome,
    _cross_attention_ignored, _heads_and_head_dim_swapped, _heads_interleaved, _heads_merged_by_reshape,
    _heads_split_by_reshape, _key_padding_mask_ignored, _mask_meaning_reversed, _masks_combined_with_or,
    _merged_interleaved, _mha_softmax_over_queries, _mha_unscaled, _no_bias_argument,
    _padding_dropped_beside_attn_mask, _padding_lined_up_with_heads, _padding_on_the_query_axis,
    _reshaped_straight_to_heads, _reshaped_without_transpose, _scaled_by_embed_dim, _view_of_non_contiguous,
    _viewed_without_transpose, _weights_averaged_over_heads, _without_output_projection,
)


def _split_heads_cases(rng):
    return [
        Case("x (2, 5, 12) into 3 heads", (tensor(rng, 2, 5, 12), 3)),
        Case("x (1, 4, 8) into 2 heads", (tensor(rng, 1, 4, 8), 2)),
        Case("x (3, 6, 6) into 6 heads of size 1", (tensor(rng, 3, 6, 6), 6)),
        Case("x (2, 3, 4) into 1 head", (tensor(rng, 2, 3, 4), 1)),
    ]


check_split_heads = Check(
    name="split_heads",
    points=1,
    make_cases=_split_heads_cases,
    implementation="course_lib.multihead.split_heads",
    outputs=(Output("heads", kind="torch"),),
    mistakes=(
        Mistake("you reshaped straight to (B, H, T, D): that cuts the (T, E) block in memory order, so a 'head' "
                "gets pieces of different positions. View as (B, T, H, D) first, then .transpose(1, 2).",
                like(_reshaped_straight_to_heads)),
        Mistake("the heads axis must come second: (B, H, T, D). After .view(B, T, H, D), add .transpose(1, 2).",
                like(_viewed_without_transpose)),
        Mistake("your heads are interleaved: viewing as (B, T, D, H) gives head h the features h, h + H, h + 2H, "
                "...; each head owns one contiguous slice of D features: .view(B, T, H, D).transpose(1, 2).",
                like(_heads_interleaved)),
        Mistake("num_heads and head_dim are swapped: the result is (B, H, T, D) with H = num_heads and D = "
                "embed_dim // num_heads: .view(B, T, H, D).transpose(1, 2).", like(_heads_and_head_dim_swapped)),
    ),
    what="(B, T, E) -> (B, H, T, E/H), head h holding features h*D ... (h+1)*D - 1 of every position.",
)


def _merge_heads_cases(rng):
    return [
        Case("x (2, 3, 5, 4): 3 heads of size 4", (tensor(rng, 2, 3, 5, 4),)),
        Case("x (1, 2, 4, 3)", (tensor(rng, 1, 2, 4, 3),)),
        Case("x (2, 1, 3, 6): one head", (tensor(rng, 2, 1, 3, 6),)),
        Case("a non-contiguous x (from a transpose)", (tensor(rng, 2, 4, 3, 5).transpose(1, 2),)),
    ]


check_merge_heads = Check(
    name="merge_heads",
    points=1,
    make_cases=_merge_heads_cases,
    implementation="course_lib.multihead.merge_heads",
    outputs=(Output("merged", kind="torch"),),
    mistakes=(
        Mistake("you reshaped (B, H, T, D) straight to (B, T, H*D): positions and heads get mixed up. "
                "Transpose to (B, T, H, D) first: x.transpose(1, 2).reshape(B, T, H * D).",
                like(_reshaped_without_transpose)),
        Mistake("the heads' features are interleaved: permuting to (B, T, D, H) (transpose(1, 3), or permute(0, "
                "2, 3, 1)) puts feature d of every head side by side. Keep each head's D features together, head "
                "after head: x.transpose(1, 2) to (B, T, H, D), then .reshape(B, T, H * D).",
                like(_merged_interleaved)),
    ),
    error_hints=(
        (_view_of_non_contiguous,
         "After a transpose the tensor is not contiguous, so .view fails: use .reshape (or .contiguous().view)."),
    ),
    what="(B, H, T, D) -> (B, T, H*D), the inverse of split_heads, non-contiguous input included.",
)


def _mha_cases(rng):
    import torch

    cases = []
    for label, embed_dim, num_heads, batch, length, source, kind in (
        ("self-attention, E=8, H=2, x (2, 5, 8)", 8, 2, 2, 5, 5, None),
        ("cross-attention, E=12, H=3, query (2, 4, 12), key = value (2, 6, 12)", 12, 3, 2, 4, 6, None),
        ("a boolean attn_mask (T, S) = (5, 5), causal", 8, 4, 1, 5, 5, "causal"),
        ("a key_padding_mask (B, S), True = real token", 12, 2, 2, 4, 6, "padding"),
        ("a causal attn_mask (5, 5) and a key_padding_mask (B, S) = (2, 5) together: a query may attend a key "
         "only where both masks say True", 12, 3, 2, 5, 5, "causal+padding"),
        ("MultiHeadAttention(12, 3, bias=False), x (2, 4, 12): no projection has a bias", 12, 3, 2, 4, 4, "no bias"),
        ("layer(query, key) with no value: the value defaults to the key, query (2, 4, 8), key (2, 6, 8)",
         8, 2, 2, 4, 6, "value omitted"),
    ):
        # the weights of a torch.nn.MultiheadAttention(embed_dim, num_heads), as plain tensors
        weights = {"in_proj_weight": tensor(rng, 3 * embed_dim, embed_dim) / embed_dim ** 0.5,
                   "in_proj_bias": tensor(rng, 3 * embed_dim) / embed_dim ** 0.5,
                   "out_proj.weight": tensor(rng, embed_dim, embed_dim) / embed_dim ** 0.5,
                   "out_proj.bias": tensor(rng, embed_dim) / embed_dim ** 0.5}
        query = tensor(rng, batch, length, embed_dim)  # (B, T, E)
        memory = query if source == length and kind != "padding" else tensor(rng, batch, source, embed_dim)  # (B, S, E)
        options = {}
        if kind in ("causal", "causal+padding"):
            options["attn_mask"] = torch.ones(length, length, dtype=torch.bool).tril()  # (T, S)
        if kind in ("padding", "causal+padding"):
            options["key_padding_mask"] = torch.tensor([[True] * source, [True] * 3 + [False] * (source - 3)])  # (B, S)
        if kind == "value omitted":
            options["value_omitted"] = True
        if kind == "no bias":
            weights = {name: weight for name, weight in weights.items() if "bias" not in name}
            options["bias"] = False
        cases.append(Case(label, (embed_dim, num_heads, weights, query, memory), options))
    embed_dim, num_heads, weights, x, _ = cases[0].args  # the first case again, its input requiring gradients
    x = x.detach().clone().requires_grad_()  # (B, T, E)
    cases.append(Case("self-attention, E=8, H=2, x (2, 5, 8) that requires gradients (training backpropagates "
                      "through the layer)", (embed_dim, num_heads, weights, x, x)))
    # last, once the numbers are right: the contract of the constructor, judged on its own
    cases.append(Case(CONTRACT_LABEL, (10, 3)))
    return cases


CONTRACT_LABEL = "the contract: MultiHeadAttention(10, 3) must raise a ValueError (10 is not divisible by 3)"


check_MultiHeadAttention = Check(
    name="MultiHeadAttention",
    points=3,
    make_cases=_mha_cases,
    implementation="course_lib.multihead.MultiHeadAttention",
    call=calling.call_mha,
    outputs=(Output("output", kind="torch"), Output("weights", kind="torch")),
    mistakes=(
        Mistake(_NUMBERS_RIGHT + "MultiHeadAttention(10, 3) built a layer instead of raising a ValueError (10 is "
                "not divisible by 3, so 10 // 3 = 3 features per head would silently drop one); " + _WHERE_TO_RAISE,
                _contract_outcome(MHA_CONTRACT_OUTCOMES.index("no exception"))),
        Mistake(_NUMBERS_RIGHT + "MultiHeadAttention(10, 3) raised a ValueError whose message does not name both "
                "sizes, 10 and 3: say which numbers do not divide; " + _WHERE_TO_RAISE,
                _contract_outcome(MHA_CONTRACT_OUTCOMES.index("a ValueError that does not name both sizes"))),
        Mistake(_NUMBERS_RIGHT + "MultiHeadAttention(10, 3) raised another kind of exception, not a ValueError "
                "(an assert raises AssertionError, and python -O skips it); " + _WHERE_TO_RAISE,
                _contract_outcome(MHA_CONTRACT_OUTCOMES.index("another kind of exception"))),
        Mistake("this is torch's nn.MultiheadAttention convention: its average_attn_weights=True (the default) "
                "returns the weights averaged over the heads, (B, T, S). This exercise returns every head's "
                "weights, (B, H, T, S), because the lesson looks at what each head does: return them as they "
                "come from the attention, without .mean(1).", like(_weights_averaged_over_heads)),
        Mistake("the output projection is missing: after merging the heads, apply self.output.",
                like(_without_output_projection)),
        Mistake("you scaled the scores by 1/√embed_dim; each head's dot products have head_dim = embed_dim / "
                "num_heads terms, so scale by 1/√head_dim.", like(_scaled_by_embed_dim)),
        Mistake("your heads mix positions: reshaping (B, T, E) straight to (B, H, T, D) cuts the data in the "
                "wrong places. Use .view(B, T, H, D).transpose(1, 2).", like(_heads_split_by_reshape)),
        Mistake("your heads are merged by reshaping (B, H, T, D) straight to (B, T, E): positions and heads get "
                "mixed up. Transpose first: attended.transpose(1, 2).reshape(B, T, E) (merge_heads).",
                like(_heads_merged_by_reshape)),
        Mistake("the scores are not scaled by 1/√head_dim (head_dim = embed_dim // num_heads).", like(_mha_unscaled)),
        Mistake("softmax over the wrong dimension: each query's weights over the keys (dim=-1) must sum to 1.",
                like(_mha_softmax_over_queries)),
        Mistake("your layer ignores key and value: it attends from the query to itself. With key and value given "
                "(cross-attention), the keys are self.key(key) and the values self.value(value); only when they "
                "are None do they default to the query.", _cross_attention_ignored),
        Mistake("key_padding_mask is ignored: padded keys (False) must get no weight.", _key_padding_mask_ignored),
        Mistake("your padding mask lines up with the heads, not the batch: key_padding_mask[:, None, :] is (B, 1, S), "
                "and against scores (B, H, T, S) broadcasting reads it as (1, B, 1, S), so sequence b's padding "
                "hides keys in head b of every sequence. Give it a heads axis and a query axis: "
                "key_padding_mask[:, None, None, :] is (B, 1, 1, S).", like(_padding_lined_up_with_heads)),
        Mistake("with both masks given, your key_padding_mask is dropped (an if/elif keeps only attn_mask): a "
                "query may attend a key only where both say True, so combine them: "
                "attn_mask & key_padding_mask[:, None, None, :].", _padding_dropped_beside_attn_mask),
        Mistake("with both masks given, your attn_mask is dropped: the padding mask replaced it, so queries see "
                "the future. A query may attend a key only where both say True: "
                "attn_mask & key_padding_mask[:, None, None, :].", like(_attn_mask_replaced_by_padding)),
        Mistake("you combined the masks with | (or +, which is | for booleans): a key is then hidden only where "
                "both masks hide it. A query may attend a key only where both say True: use & "
                "(attn_mask & key_padding_mask[:, None, None, :]).", like(_masks_combined_with_or)),
        Mistake("with bias=False your layer's output differs, and every case with biases matched: your layer "
                "still has biases. Pass bias on to all four projections: nn.Linear(embed_dim, embed_dim, "
                "bias=bias) for query, key, value and output.", _bias_false_case),
        Mistake("the mask meaning is reversed: this course's masks say True = may attend (torch's "
                "nn.MultiheadAttention says the opposite; convert with ~mask).", like(_mask_meaning_reversed)),
    ),
    error_hints=(
        (_padding_on_the_query_axis,
         "Your padding mask is on the query axis: key_padding_mask[:, None, :, None] is (B, 1, S, 1), which would "
         "hide queries, not keys. The padded positions are keys, the last axis of the scores: "
         "key_padding_mask[:, None, None, :] (B, 1, 1, S)."),
        (_no_bias_argument,
         "MultiHeadAttention takes bias=True as its third argument, as the exercise's signature (and torch's "
         "nn.MultiheadAttention) does: def __init__(self, embed_dim, num_heads, bias=True), and pass it to each "
         "nn.Linear."),
    ),
    validate=calling.validate_mha,
    what="Same output and per-head weights as torch.nn.MultiheadAttention with the same weights: self- and "
         "cross-attention, attn_mask and key_padding_mask, alone and together, bias=False; and "
         "MultiHeadAttention(10, 3) raises a ValueError naming both sizes.",
    withholds=("course_lib.linear.LinearSelfAttention",),
    library=TORCH_MODULE_ATTENTION,
)


CHECKS = (check_split_heads, check_merge_heads, check_MultiHeadAttention)
