"""Multi-head attention: the reference implementation of lesson 04, built on :mod:`course_lib.attention`.

Each of ``H`` heads attends in its own ``D = E / H``-dimensional subspace; their outputs are concatenated and
mixed by an output projection. Batch-first, with the course's mask convention (True = may attend).
Lesson 06 adds grouped-query attention (:func:`grouped_query_attention`, ``num_kv_heads`` of
``MultiHeadAttention``): fewer key/value heads, each shared by a group of query heads; it is proven equal to
torch's ``scaled_dot_product_attention(..., enable_gqa=True)``.
``MultiHeadAttention.from_torch`` copies a ``torch.nn.MultiheadAttention``; the tests prove both give the same
outputs and head-averaged weights. Torch's module is sequence-first by default and its boolean masks mean the
opposite (True = blocked): :func:`mask_from_torch` converts one.

Lessons: notebooks/04_multihead_attention.ipynb, notebooks/06_the_cost_of_attention.ipynb. Tests: tests/test_multihead.py.
"""
from __future__ import annotations

import torch
from torch import nn

from course_lib.attention import causal_mask, scaled_dot_product_attention
from course_lib.validation import require_mask_shape, require_rank


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, E) -> (B, H, T, E/H): give each head its own slice of the features."""
    require_rank("x", x, at_least=3, at_most=3)
    batch, length, embed_dim = x.shape
    if embed_dim % num_heads:
        raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
    x = x.view(batch, length, num_heads, embed_dim // num_heads)  # (B, T, H, D)
    return x.transpose(1, 2)  # (B, H, T, D)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, D) -> (B, T, H*D): put the heads' outputs side by side again."""
    require_rank("x", x, at_least=4, at_most=4)
    batch, num_heads, length, head_dim = x.shape
    x = x.transpose(1, 2)  # (B, T, H, D)
    return x.reshape(batch, length, num_heads * head_dim)  # (B, T, H*D); reshape copies: transpose broke contiguity


def grouped_query_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention where ``H`` query heads share ``Hkv`` key/value heads; returns (output (..., H, T, Dv), weights).

    query (..., H, T, D), key (..., Hkv, S, D), value (..., Hkv, S, Dv), ``H`` a multiple of ``Hkv``: query
    head ``h`` uses key/value head ``h // (H / Hkv)``, as torch's ``enable_gqa=True`` does. ``Hkv = H`` is
    multi-head attention, ``Hkv = 1`` multi-query attention. The G = H / Hkv query heads of a group are
    viewed as G·T rows of queries against their group's key/value head, so keys and values are never copied
    (a broadcast matmul would copy them G times). ``attn_mask`` broadcasts to (..., H, T, S), with lesson 03's
    conventions; it is laid out like the queries (a copy of the mask, not of the keys).
    """
    for name, tensor in (("query", query), ("key", key), ("value", value)):
        require_rank(name, tensor, at_least=3)
    num_heads, num_kv_heads = query.shape[-3], key.shape[-3]
    if value.shape[-3] != num_kv_heads:
        raise ValueError(f"key has {num_kv_heads} heads but value has {value.shape[-3]}: they must match; got key "
                         f"{tuple(key.shape)}, value {tuple(value.shape)}")
    if num_heads % num_kv_heads:
        raise ValueError(f"query has {num_heads} heads but key and value have {num_kv_heads}: the number of query "
                         f"heads must be a multiple of the number of key/value heads")
    groups, length = num_heads // num_kv_heads, query.shape[-2]
    # the G query heads of a group become G·T rows against the group's one key/value head: a view, no copy
    queries = query.unflatten(-3, (num_kv_heads, groups)).flatten(-3, -2)  # (..., Hkv, G·T, D)
    if is_causal and attn_mask is not None:
        raise ValueError("pass either attn_mask or is_causal=True, not both (as torch requires)")
    if is_causal:
        attn_mask = causal_mask(length, key.shape[-2], device=query.device)  # (T, S): the rows of each head
    if attn_mask is not None:
        require_mask_shape(attn_mask, query.shape[:-1] + key.shape[-2:-1], name="attn_mask")
        attn_mask = _group_mask(attn_mask, query.shape[:-1] + key.shape[-2:-1], num_kv_heads, groups)
    output, weights = scaled_dot_product_attention(queries, key, value, attn_mask=attn_mask,
                                                   scale=scale)  # (..., Hkv, G·T, Dv), (..., Hkv, G·T, S)
    output = output.unflatten(-2, (groups, length))  # (..., Hkv, G, T, Dv)
    weights = weights.unflatten(-2, (groups, length))  # (..., Hkv, G, T, S)
    return output.flatten(-4, -3), weights.flatten(-4, -3)  # (..., H, T, Dv), (..., H, T, S)


def _group_mask(attn_mask: torch.Tensor, scores_shape: torch.Size, num_kv_heads: int, groups: int) -> torch.Tensor:
    """A mask that broadcasts to (..., H, T, S), laid out like the grouped queries: (..., Hkv, G·T, S)."""
    if attn_mask.dim() < 3 or attn_mask.shape[-3] == 1:  # the same mask for every head
        per_head = attn_mask.expand(*scores_shape[:-3], 1, *scores_shape[-2:])  # (..., 1, T, S)
        per_head = per_head.unsqueeze(-3).expand(*scores_shape[:-3], 1, groups, *scores_shape[-2:])  # (..., 1, G, T, S)
    else:
        per_head = attn_mask.expand(scores_shape).unflatten(-3, (num_kv_heads, groups))  # (..., Hkv, G, T, S)
    return per_head.flatten(-3, -2)  # (..., Hkv or 1, G·T, S)


def mask_from_torch(mask: torch.Tensor | None) -> torch.Tensor | None:
    """Torch's nn.MultiheadAttention boolean masks say True = blocked; the course says True = may attend."""
    if mask is None or mask.dtype != torch.bool:
        return mask  # additive float masks mean the same in both
    return ~mask


class MultiHeadAttention(nn.Module):
    """Multi-head attention, batch-first (lesson 04), optionally with grouped key/value heads (lesson 06).

    ``query``, ``key``, ``value`` and ``output`` are ``nn.Linear(E, E)``; with ``num_kv_heads`` (a divisor of
    ``num_heads``) ``key`` and ``value`` map E to ``num_kv_heads · D`` only. ``forward(query, key=None,
    value=None, attn_mask=None, key_padding_mask=None)`` returns ``(output (B, T, E), weights (B, H, T, S))``.
    ``attn_mask`` broadcasts to (B, H, T, S), boolean (True = may attend) or additive float;
    ``key_padding_mask`` is (B, S), True for real tokens.
    """

    def __init__(self, embed_dim: int, num_heads: int, bias: bool = True, num_kv_heads: int | None = None):
        super().__init__()
        if num_heads < 1 or embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if num_kv_heads < 1 or num_heads % num_kv_heads:
            raise ValueError(f"num_heads={num_heads} is not divisible by num_kv_heads={num_kv_heads}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.num_kv_heads = num_kv_heads
        self.query = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.key = nn.Linear(embed_dim, num_kv_heads * self.head_dim, bias=bias)
        self.value = nn.Linear(embed_dim, num_kv_heads * self.head_dim, bias=bias)
        self.output = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        key = query if key is None else key
        value = key if value is None else value
        self._check_inputs(query, key, value, key_padding_mask)
        # 1) project, and split the features into heads
        queries = split_heads(self.query(query), self.num_heads)  # (B, H, T, D)
        keys = split_heads(self.key(key), self.num_kv_heads)  # (B, Hkv, S, D); Hkv = H unless grouped
        values = split_heads(self.value(value), self.num_kv_heads)  # (B, Hkv, S, D)
        # 2) attend, every head at once
        mask = self._combine_masks(attn_mask, key_padding_mask, queries.shape[:2] + (query.shape[1], key.shape[1]))
        if self.num_kv_heads == self.num_heads:
            attended, weights = scaled_dot_product_attention(queries, keys, values, attn_mask=mask)  # (B, H, T, D)
        else:
            attended, weights = grouped_query_attention(queries, keys, values, attn_mask=mask)  # (B, H, T, D)
        # 3) concatenate the heads and mix them
        return self.output(merge_heads(attended)), weights  # (B, T, E), (B, H, T, S)

    def _check_inputs(self, query, key, value, key_padding_mask) -> None:
        for name, tensor in (("query", query), ("key", key), ("value", value)):
            require_rank(name, tensor, at_least=3, at_most=3)
            if tensor.shape[-1] != self.embed_dim:
                raise ValueError(f"{name} has feature size {tensor.shape[-1]}, expected embed_dim={self.embed_dim} "
                                 f"(shape (B, T, E) = {tuple(tensor.shape)})")
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(f"key and value must have the same batch size and length, got key {tuple(key.shape)} "
                             f"and value {tuple(value.shape)}")
        if query.shape[0] != key.shape[0]:
            raise ValueError(f"query and key have different batch sizes: {tuple(query.shape)} and {tuple(key.shape)}")
        if key_padding_mask is not None and tuple(key_padding_mask.shape) != tuple(key.shape[:2]):
            raise ValueError(f"key_padding_mask must have shape (B, S) = {tuple(key.shape[:2])}, "
                             f"got {tuple(key_padding_mask.shape)}")

    @staticmethod
    def _combine_masks(attn_mask, key_padding_mask, scores_shape):
        """One mask for sdpa: the attention mask and the padding mask, both in the True = may attend sense."""
        if attn_mask is not None:
            if attn_mask.dim() == 3:  # (B, T, S) would line B up with the heads axis of (B, H, T, S): refuse
                raise ValueError(
                    f"attn_mask of shape {tuple(attn_mask.shape)} is ambiguous for multi-head scores "
                    f"{tuple(scores_shape)} (B, H, T, S): pass (T, S) for every sequence, or (B, 1, T, S) for one "
                    f"mask per sequence (attn_mask[:, None]); torch's nn.MultiheadAttention instead reads a 3-D "
                    f"mask as (B*H, T, S)")
            require_mask_shape(attn_mask, scores_shape, name="attn_mask")
        if key_padding_mask is None:
            return attn_mask
        keys_allowed = key_padding_mask[:, None, None, :]  # (B, 1, 1, S)
        if attn_mask is None:
            return keys_allowed
        if attn_mask.dtype == torch.bool:
            return attn_mask & keys_allowed  # (B, H, T, S) by broadcasting
        return attn_mask.masked_fill(~keys_allowed, float("-inf"))  # additive mask with padding hidden

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> "MultiHeadAttention":
        """A MultiHeadAttention with the weights of a ``torch.nn.MultiheadAttention`` (same results)."""
        if not module._qkv_same_embed_dim:
            raise ValueError("only torch modules whose key and value dims equal embed_dim (kdim = vdim = embed_dim) "
                             "can be copied")
        bias = module.in_proj_bias is not None
        copy = cls(module.embed_dim, module.num_heads, bias=bias)
        weights = module.in_proj_weight.detach().chunk(3)  # 3 x (E, E): torch stacks q, k, v
        with torch.no_grad():
            for layer, weight in zip((copy.query, copy.key, copy.value), weights):
                layer.weight.copy_(weight)
            copy.output.weight.copy_(module.out_proj.weight)
            if bias:
                for layer, part in zip((copy.query, copy.key, copy.value), module.in_proj_bias.detach().chunk(3)):
                    layer.bias.copy_(part)
                copy.output.bias.copy_(module.out_proj.bias)
        return copy
