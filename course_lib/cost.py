"""What attention costs, lesson 06: the formulas and generation with a KV cache.

Formulas: :func:`attention_flops` (``4·T·S·D`` per head), :func:`score_matrix_bytes` (the ``T×S`` scores),
:func:`kv_cache_bytes` (what generation keeps per layer). Generation: :class:`KVCache` and :func:`decode`
with or without it. The lesson measures with :mod:`course_lib.measure` (timing, peak memory, slopes), which
the later lessons share; grouped-query attention, the cache's other saving, is
:func:`course_lib.multihead.grouped_query_attention`, next to the multi-head attention it generalises.

Lesson: notebooks/06_the_cost_of_attention.ipynb. Tests: tests/test_cost.py.
"""
from __future__ import annotations

import torch

from course_lib.attention import causal_mask
from course_lib.multihead import MultiHeadAttention, grouped_query_attention, merge_heads, split_heads
from course_lib.validation import require_rank, require_whole_numbers

# Bytes per number for the dtypes of the context-window calculator.
DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}


# ----------------------------------------------------------------------------------------------------------
# The formulas
# ----------------------------------------------------------------------------------------------------------

def attention_flops(num_queries: int, num_keys: int, head_dim: int, num_heads: int = 1, batch_size: int = 1) -> int:
    """Floating-point operations of attention: ``4·T·S·D`` per head (projections not included).

    The scores ``Q Kᵀ`` take ``T·S`` dot products of length ``D``, a multiply and an add per term: ``2·T·S·D``.
    The weighted sum ``weights @ V`` takes as many. The softmax adds a few operations per score (``O(T·S)``),
    negligible next to ``D`` of them per score.
    """
    require_whole_numbers(num_queries=num_queries, num_keys=num_keys, head_dim=head_dim, num_heads=num_heads,
                    batch_size=batch_size)
    return 4 * batch_size * num_heads * num_queries * num_keys * head_dim


def score_matrix_bytes(num_queries: int, num_keys: int, num_heads: int = 1, batch_size: int = 1,
                       bytes_per_value: int = 4) -> int:
    """Bytes of the scores (B, H, T, S): one number per query, key and head. Naive attention keeps several."""
    require_whole_numbers(num_queries=num_queries, num_keys=num_keys, num_heads=num_heads, batch_size=batch_size,
                    bytes_per_value=bytes_per_value)
    return batch_size * num_heads * num_queries * num_keys * bytes_per_value


def kv_cache_bytes(num_layers: int, num_kv_heads: int, head_dim: int, length: int, batch_size: int = 1,
                   bytes_per_value: int = 2) -> int:
    """Bytes a model keeps to generate token ``length + 1``: a key and a value per layer, KV head and token.

    ``2 · layers · batch · kv_heads · length · head_dim · bytes``. Multi-query attention has 1 KV head,
    grouped-query attention a few, multi-head attention as many as query heads. ``bytes_per_value`` is 2 for
    float16/bfloat16, the usual inference dtypes.
    """
    require_whole_numbers(num_layers=num_layers, num_kv_heads=num_kv_heads, head_dim=head_dim, length=length,
                    batch_size=batch_size, bytes_per_value=bytes_per_value)
    return 2 * num_layers * batch_size * num_kv_heads * length * head_dim * bytes_per_value


# ----------------------------------------------------------------------------------------------------------
# Generation with a KV cache
# ----------------------------------------------------------------------------------------------------------

class KVCache:
    """One layer's keys and values of the tokens generated so far, in buffers allocated once.

    ``append`` writes the newest tokens' keys and values in place (no copy of the past, unlike
    ``torch.cat``) and returns views of everything stored so far.
    """

    def __init__(self, batch_size: int, num_kv_heads: int, max_length: int, head_dim: int,
                 dtype: torch.dtype = torch.float32):
        require_whole_numbers(batch_size=batch_size, num_kv_heads=num_kv_heads, max_length=max_length, head_dim=head_dim)
        self.keys = torch.zeros(batch_size, num_kv_heads, max_length, head_dim, dtype=dtype)  # (B, Hkv, L, D)
        self.values = torch.zeros_like(self.keys)  # (B, Hkv, L, D)
        self.length = 0

    def append(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store keys and values (B, Hkv, t, D) of t new tokens; return all stored so far, (B, Hkv, length, D)."""
        new = keys.shape[-2]
        if self.length + new > self.keys.shape[-2]:
            raise ValueError(f"the cache holds {self.keys.shape[-2]} tokens; {self.length} are stored and "
                             f"{new} more do not fit")
        self.keys[:, :, self.length:self.length + new] = keys  # (B, Hkv, t, D) written in place
        self.values[:, :, self.length:self.length + new] = values
        self.length += new
        return self.keys[:, :, :self.length], self.values[:, :, :self.length]  # (B, Hkv, length, D) views

    @property
    def nbytes(self) -> int:
        """Bytes held by the keys and values stored so far."""
        return 2 * self.keys[:, :, :self.length].numel() * self.keys.element_size()


def decode_step(layer: MultiHeadAttention, token: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """One generation step with a cache: the newest token (B, 1, E) attends to itself and every earlier token.

    Only the new token is projected; earlier keys and values come from the cache. No mask is needed: all
    stored tokens are in the past.
    """
    queries = split_heads(layer.query(token), layer.num_heads)  # (B, H, 1, D)
    new_keys = split_heads(layer.key(token), layer.num_kv_heads)  # (B, Hkv, 1, D)
    new_values = split_heads(layer.value(token), layer.num_kv_heads)  # (B, Hkv, 1, D)
    keys, values = cache.append(new_keys, new_values)  # (B, Hkv, t, D) each
    attended, _ = grouped_query_attention(queries, keys, values)  # (B, H, 1, D)
    return layer.output(merge_heads(attended))  # (B, 1, E)


def step_without_cache(layer: MultiHeadAttention, tokens: torch.Tensor) -> torch.Tensor:
    """One generation step without a cache: rerun the causal layer on all tokens (B, t, E), keep the last row."""
    output, _ = layer(tokens, attn_mask=causal_mask(tokens.shape[1]))  # (B, t, E): every position recomputed
    return output[:, -1:]  # (B, 1, E)


def decode(layer: MultiHeadAttention, tokens: torch.Tensor, use_cache: bool = True) -> torch.Tensor:
    """Outputs (B, T, E) of a causal layer computed token by token, as generation does, with or without a cache.

    Both equal ``layer(tokens, attn_mask=causal_mask(T))``: a cache changes the cost, never the result.
    """
    require_rank("tokens", tokens, at_least=3, at_most=3)
    batch, length, _ = tokens.shape
    cache = KVCache(batch, layer.num_kv_heads, length, layer.head_dim, dtype=tokens.dtype) if use_cache else None
    outputs = []
    for position in range(length):
        if use_cache:
            outputs.append(decode_step(layer, tokens[:, position:position + 1], cache))  # (B, 1, E)
        else:
            outputs.append(step_without_cache(layer, tokens[:, :position + 1]))  # (B, 1, E)
    return torch.cat(outputs, dim=1)  # (B, T, E)
