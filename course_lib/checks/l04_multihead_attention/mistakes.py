"""The mistakes of lesson 04's checks, as code: what each wrong solution computes (its simulator, for
``like``) and the predicates that recognise it. Used by :mod:`course_lib.checks.l04_multihead_attention`; triggered by the WRONG
fixtures of tests/checks/test_l04_multihead_attention.py.
"""
from __future__ import annotations

import numpy as np

from course_lib.checking import like


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
