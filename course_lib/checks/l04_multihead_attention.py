"""The checks of lesson 04, multi-head attention: splitting and merging heads, and the MultiHeadAttention layer.

Lesson: notebooks/04_multihead_attention.ipynb, its exercise solutions/04_multihead_attention.ipynb.
Tests: tests/checks/test_l04_multihead_attention.py.
"""
from __future__ import annotations

import numpy as np

from course_lib import calling
from course_lib.calling import MHA_CONTRACT_OUTCOMES
from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import TORCH_MODULE_ATTENTION, tensor


# split_heads -----------------------------------------------------------------------------------------------

def _split_heads_cases(rng):
    return [
        Case("x (2, 5, 12) into 3 heads", (tensor(rng, 2, 5, 12), 3)),
        Case("x (1, 4, 8) into 2 heads", (tensor(rng, 1, 4, 8), 2)),
        Case("x (3, 6, 6) into 6 heads of size 1", (tensor(rng, 3, 6, 6), 6)),
        Case("x (2, 3, 4) into 1 head", (tensor(rng, 2, 3, 4), 1)),
    ]


def _reshaped_straight_to_heads(x, num_heads):
    """x.reshape(B, H, T, D): the (T, E) block cut in memory order, so a head gets pieces of several positions."""
    batch, length, embed_dim = x.shape
    return x.reshape(batch, num_heads, length, embed_dim // num_heads)  # (B, H, T, D), positions mixed


def _viewed_without_transpose(x, num_heads):
    """x.view(B, T, H, D) with the .transpose(1, 2) that brings the heads axis second missing."""
    batch, length, embed_dim = x.shape
    return x.view(batch, length, num_heads, embed_dim // num_heads)  # (B, T, H, D)


def _heads_interleaved(x, num_heads):
    """x.view(B, T, D, H): head h gets features h, h + H, h + 2H ... instead of one contiguous slice."""
    batch, length, embed_dim = x.shape
    return x.view(batch, length, embed_dim // num_heads, num_heads).permute(0, 3, 1, 2)  # (B, H, T, D), interleaved


def _heads_and_head_dim_swapped(x, num_heads):
    """num_heads and head_dim swapped: (B, D, T, H) where (B, H, T, D) was meant."""
    batch, length, embed_dim = x.shape
    return x.view(batch, length, embed_dim // num_heads, num_heads).transpose(1, 2)  # (B, D, T, H)


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


# merge_heads -----------------------------------------------------------------------------------------------

def _merge_heads_cases(rng):
    return [
        Case("x (2, 3, 5, 4): 3 heads of size 4", (tensor(rng, 2, 3, 5, 4),)),
        Case("x (1, 2, 4, 3)", (tensor(rng, 1, 2, 4, 3),)),
        Case("x (2, 1, 3, 6): one head", (tensor(rng, 2, 1, 3, 6),)),
        Case("a non-contiguous x (from a transpose)", (tensor(rng, 2, 4, 3, 5).transpose(1, 2),)),
    ]


def _reshaped_without_transpose(x):
    """(B, H, T, D) reshaped straight to (B, T, H*D): the rows of different heads and positions run together."""
    batch, num_heads, length, head_dim = x.shape
    return x.reshape(batch, length, num_heads * head_dim)  # (B, T, H*D), positions and heads mixed


def _merged_interleaved(x):
    """(B, H, T, D) permuted to (B, T, D, H) before the reshape: the heads' features interleaved."""
    batch, num_heads, length, head_dim = x.shape
    return x.permute(0, 2, 3, 1).reshape(batch, length, num_heads * head_dim)  # (B, T, D*H), interleaved


def _view_of_non_contiguous(case, error) -> bool:
    """torch's complaint about .view on a tensor that a transpose left non-contiguous."""
    return "view size is not compatible" in str(error)


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


# MultiHeadAttention ----------------------------------------------------------------------------------------

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
        if kind == "no bias":
            weights = {name: weight for name, weight in weights.items() if "bias" not in name}
            options["bias"] = False
        cases.append(Case(label, (embed_dim, num_heads, weights, query, memory), options))
    # last, once the numbers are right: the contract of the constructor, judged on its own
    cases.append(Case(CONTRACT_LABEL, (10, 3)))
    return cases


CONTRACT_LABEL = "the contract: MultiHeadAttention(10, 3) must raise a ValueError (10 is not divisible by 3)"


# Multi-head attention, computed from the case's torch weights in three steps: 1) project and split into heads,
# 2) attend with the combined mask, 3) merge the heads and mix them. The right steps first; each mistake's
# simulator below swaps one step for the wrong one.

def _split_heads(x, num_heads):
    from course_lib.multihead import split_heads

    return split_heads(x, num_heads)  # (B, H, L, D)


def _masks_combined(attn_mask, key_padding_mask):
    """The attention mask and the padding mask in one, both True = may attend."""
    if key_padding_mask is None:
        return attn_mask
    keys_allowed = key_padding_mask[:, None, None, :]  # (B, 1, 1, S)
    return keys_allowed if attn_mask is None else attn_mask & keys_allowed  # (B, H, T, S) by broadcasting


def _one_over_root_head_dim(embed_dim, num_heads):
    return (embed_dim // num_heads) ** -0.5


def _merged_and_projected(torch_weights, attended):
    from course_lib.multihead import merge_heads

    return merge_heads(attended) @ torch_weights["out_proj.weight"].T + torch_weights.get("out_proj.bias", 0.0)  # (B, T, E)


def _lesson_03_attention(queries, keys, values, attn_mask, scale):
    from course_lib.attention import scaled_dot_product_attention

    return scaled_dot_product_attention(queries, keys, values, attn_mask=attn_mask, scale=scale)  # (B, H, T, D), (B, H, T, S)


def _multihead(embed_dim, num_heads, torch_weights, query, memory, attn_mask=None, key_padding_mask=None,
               bias=True, *, split=_split_heads, mask=_masks_combined, scale=_one_over_root_head_dim,
               merge=_merged_and_projected, attend=_lesson_03_attention):
    """Multi-head attention built from its steps (right by default): the core of the simulators below.
    A case built with bias=False has no biases in ``torch_weights``: its projections add none."""
    weights = torch_weights["in_proj_weight"].chunk(3)  # 3 x (E, E)
    biases = torch_weights["in_proj_bias"].chunk(3) if bias else (0.0, 0.0, 0.0)  # 3 x (E,)
    # 1) project, and split the features into heads
    queries, keys, values = (split(x @ w.T + b, num_heads)
                             for x, w, b in zip((query, memory, memory), weights, biases))  # (B, H, L, D) each
    # 2) attend, every head at once
    attended, attention = attend(queries, keys, values, mask(attn_mask, key_padding_mask),
                                 scale(embed_dim, num_heads))  # (B, H, T, D), (B, H, T, S)
    # 3) concatenate the heads and mix them
    return merge(torch_weights, attended), attention  # (B, T, E), (B, H, T, S)


def _merged_only(torch_weights, attended):
    from course_lib.multihead import merge_heads

    return merge_heads(attended)  # (B, T, E), not mixed by the output projection


def _without_output_projection(*args, **kwargs):
    """The heads merged but never passed through the output projection."""
    return _multihead(*args, **kwargs, merge=_merged_only)


def _one_over_root_embed_dim(embed_dim, num_heads):
    return embed_dim ** -0.5


def _scaled_by_embed_dim(*args, **kwargs):
    """The scores scaled by 1/√embed_dim instead of 1/√head_dim."""
    return _multihead(*args, **kwargs, scale=_one_over_root_embed_dim)


def _heads_split_by_reshape(*args, **kwargs):
    """The projections split into heads by reshaping straight to (B, H, T, D) (split_heads' first mistake)."""
    return _multihead(*args, **kwargs, split=_reshaped_straight_to_heads)


def _attn_mask_only(attn_mask, key_padding_mask):
    return attn_mask  # (T, S) or None: the padding mask dropped


def _padding_ignored(*args, **kwargs):
    """key_padding_mask has no effect: padded keys are attended like real ones."""
    return _multihead(*args, **kwargs, mask=_attn_mask_only)


def _key_padding_mask_ignored(case, got, expected) -> bool:
    """A case with a key_padding_mask alone, answered as if there were none."""
    return (case.kwargs.get("attn_mask") is None and "key_padding_mask" in case.kwargs
            and like(_padding_ignored)(case, got, expected))


def _padding_dropped_beside_attn_mask(case, got, expected) -> bool:
    """A case with both masks, answered with attn_mask alone (an if/elif that keeps only the first mask)."""
    return (case.kwargs.get("attn_mask") is not None and "key_padding_mask" in case.kwargs
            and like(_padding_ignored)(case, got, expected))


def _padding_only(attn_mask, key_padding_mask):
    return _masks_combined(None, key_padding_mask)  # the padding mask replaces attn_mask


def _attn_mask_replaced_by_padding(*args, **kwargs):
    """With a key_padding_mask given, attn_mask has no effect: ``mask = key_padding_mask[:, None, None, :]``."""
    return _multihead(*args, **kwargs, mask=_padding_only)


def _masks_or(attn_mask, key_padding_mask):
    if key_padding_mask is None or attn_mask is None:
        return _masks_combined(attn_mask, key_padding_mask)
    return attn_mask | key_padding_mask[:, None, None, :]  # (B, 1, T, S): a key either mask allows


def _masks_combined_with_or(*args, **kwargs):
    """The two masks combined with | (or +, which is | for booleans): a key is hidden only if both hide it."""
    return _multihead(*args, **kwargs, mask=_masks_or)


def _padding_on_the_heads_axis(attn_mask, key_padding_mask):
    if key_padding_mask is None:
        return attn_mask
    keys_allowed = key_padding_mask[:, None, :]  # (B, 1, S): against (B, H, T, S) it reads as (1, B, 1, S)
    return keys_allowed if attn_mask is None else attn_mask & keys_allowed


def _padding_lined_up_with_heads(*args, **kwargs):
    """key_padding_mask[:, None, :] (B, 1, S): broadcast against (B, H, T, S), batch b's padding goes to head b."""
    return _multihead(*args, **kwargs, mask=_padding_on_the_heads_axis)


def _merged_by_reshape(torch_weights, attended):
    return (_reshaped_without_transpose(attended) @ torch_weights["out_proj.weight"].T
            + torch_weights.get("out_proj.bias", 0.0))  # (B, T, E), positions and heads mixed


def _heads_merged_by_reshape(*args, **kwargs):
    """The heads merged by reshaping (B, H, T, D) straight to (B, T, E) (merge_heads' mistake)."""
    return _multihead(*args, **kwargs, merge=_merged_by_reshape)


def _no_scale(embed_dim, num_heads):
    return 1.0


def _mha_unscaled(*args, **kwargs):
    """The scores never scaled by 1/√head_dim."""
    return _multihead(*args, **kwargs, scale=_no_scale)


def _softmax_over_the_queries(queries, keys, values, attn_mask, scale):
    import torch

    scores = queries @ keys.transpose(-2, -1) * scale  # (B, H, T, S)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))  # (B, H, T, S)
    weights = torch.softmax(scores, dim=-2)  # (B, H, T, S): columns sum to 1
    return weights @ values, weights


def _mha_softmax_over_queries(*args, **kwargs):
    """The softmax over dim=-2 (the queries) instead of dim=-1 (the keys)."""
    return _multihead(*args, **kwargs, attend=_softmax_over_the_queries)


def _key_and_value_ignored(embed_dim, num_heads, torch_weights, query, memory, *args, **kwargs):
    """Cross-attention answered as self-attention: the keys and values projected from the query, not from key."""
    return _multihead(embed_dim, num_heads, torch_weights, query, query, *args, **kwargs)


def _cross_attention_ignored(case, got, expected) -> bool:
    """A case with a separate key and value, answered as if key = value = query."""
    return case.args[4] is not case.args[3] and like(_key_and_value_ignored)(case, got, expected)


def _weights_averaged_over_heads(*args, **kwargs):
    """The output, with the weights averaged over the heads (B, T, S), as nn.MultiheadAttention returns them."""
    output, weights = _multihead(*args, **kwargs)
    return output, weights.mean(dim=1)  # (B, T, E), (B, T, S)


def _bias_false_case(case, got, expected) -> bool:
    """The case built with bias=False, answered differently: every earlier case (with biases) was right."""
    return case.kwargs.get("bias") is False


def _contract_outcome(outcome: int):
    """A mistake predicate: the contract case, where MultiHeadAttention(10, 3) did ``MHA_CONTRACT_OUTCOMES[outcome]``."""

    def matches(case, got, expected) -> bool:
        return len(case.args) == 2 and int(np.asarray(got[0].detach()).ravel()[0]) == outcome

    return matches


_NUMBERS_RIGHT = ("your attention is right: the cases before this one matched torch's nn.MultiheadAttention, outputs and "
                  "per-head weights. Only the contract is wrong, and the check's points need both: ")
_WHERE_TO_RAISE = ("check at the door, in __init__: if embed_dim % num_heads: raise ValueError(f\"embed_dim="
                   "{embed_dim} is not divisible by num_heads={num_heads}\"). (0 points until then; the numbers "
                   "need no change.)")


def _masks_reversed(attn_mask, key_padding_mask):
    combined = _masks_combined(attn_mask, key_padding_mask)
    return None if combined is None else ~combined  # True = blocked: torch's nn.MultiheadAttention meaning


def _mask_meaning_reversed(*args, **kwargs):
    """The masks read the way torch's nn.MultiheadAttention reads them: True = blocked."""
    return _multihead(*args, **kwargs, mask=_masks_reversed)


def _padding_on_the_query_axis(case, error) -> bool:
    """lesson 03's attention refusing a padding mask (B, 1, S, 1): put on the query axis, it fits no scores."""
    padding = case.kwargs.get("key_padding_mask")
    if padding is None:
        return False
    batch, source = padding.shape
    return f"shape ({batch}, 1, {source}, 1)" in str(error)


def _no_bias_argument(case, error) -> bool:
    """Python's complaint about a constructor that has no ``bias`` parameter."""
    return isinstance(error, TypeError) and "unexpected keyword argument 'bias'" in str(error)


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
