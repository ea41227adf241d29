"""Sparse attention: the patterns and the banded sliding-window attention of lesson 07.

A pattern is a boolean (T, S) mask, True where query i may attend key j (lesson 02's convention): sliding
windows and dilated windows (Longformer), strided and fixed patterns (Sparse Transformer), global tokens
(Longformer) and random blocks (BigBird). :func:`reachable` says which keys can reach a query through
several layers of a pattern. :func:`sliding_window_attention` computes windowed attention in blocks, with
``O(T·window)`` memory and never a (T, S) tensor; it is proven equal to dense attention with
:func:`sliding_window_mask` in ``tests/test_sparse.py``.

Lesson: notebooks/07_sparse_attention.ipynb. Tests: tests/test_sparse.py.
"""
from __future__ import annotations

import math

import torch

from course_lib.attention import masked_softmax
from course_lib.validation import require_matching_features, require_rank, require_whole_numbers


def _require_whole(**values: int) -> None:
    """Raise unless each value is a whole number: at least 0 for window, extra, num_random and num_global (a
    pattern may have none of them), at least 1 for every other count (sizes, strides, lengths)."""
    for name, value in values.items():
        require_whole_numbers(0 if name in ("window", "extra", "num_random", "num_global") else 1, **{name: value})


def _offsets(num_queries: int, num_keys: int) -> torch.Tensor:
    """(T, S): query position minus key position, i - j (positive = the key is in the past)."""
    return torch.arange(num_queries)[:, None] - torch.arange(num_keys)[None, :]  # (T, S)


# ----------------------------------------------------------------------------------------------------------
# Patterns
# ----------------------------------------------------------------------------------------------------------

def sliding_window_mask(n: int, window: int, num_keys: int | None = None, is_causal: bool = False) -> torch.Tensor:
    """(n, S) bool: query i may attend key j iff |i - j| <= window, and j <= i when causal (Longformer).

    Each query sees at most 2·window + 1 keys: ``O(n·window)`` True entries instead of ``n²``.
    """
    num_keys = n if num_keys is None else num_keys
    _require_whole(n=n, window=window, num_keys=num_keys)
    offsets = _offsets(n, num_keys)  # (T, S)
    mask = offsets.abs() <= window  # (T, S)
    return mask & (offsets >= 0) if is_causal else mask


def dilated_window_mask(n: int, window: int, dilation: int) -> torch.Tensor:
    """(n, n) bool: a sliding window with holes: key j iff i - j is a multiple of ``dilation`` and
    |i - j| <= window · dilation (Longformer's dilated heads: the same cost, a ``dilation`` times wider view)."""
    _require_whole(n=n, window=window, dilation=dilation)
    offsets = _offsets(n, n)  # (n, n)
    return (offsets.abs() <= window * dilation) & (offsets % dilation == 0)


def strided_mask(n: int, stride: int) -> torch.Tensor:
    """(n, n) bool, causal: the Sparse Transformer's strided pattern (Child et al., 2019).

    Query i attends key j <= i when j is one of the ``stride`` most recent positions (i - j < stride) or lies
    a whole number of strides back ((i - j) % stride == 0). With stride ≈ √n each query sees about 2√n keys:
    ``O(n√n)`` in all, and any key reaches any query in two layers.
    """
    _require_whole(n=n, stride=stride)
    offsets = _offsets(n, n)  # (n, n)
    return (offsets >= 0) & ((offsets < stride) | (offsets % stride == 0))


def fixed_mask(n: int, stride: int, summary: int = 1) -> torch.Tensor:
    """(n, n) bool, causal: the Sparse Transformer's fixed pattern.

    Query i attends key j <= i in its own block of ``stride`` positions, and the last ``summary`` positions
    of every block, which act as the blocks' summaries for everything after them.
    """
    _require_whole(n=n, stride=stride, summary=summary)
    queries, keys = torch.arange(n)[:, None], torch.arange(n)[None, :]  # (n, 1), (1, n)
    same_block = queries // stride == keys // stride  # (n, n)
    summarises = keys % stride >= stride - summary  # (1, n)
    return (queries >= keys) & (same_block | summarises)


def global_mask(n: int, global_tokens) -> torch.Tensor:
    """(n, n) bool: global tokens attend to every position and every position attends to them (Longformer's
    [CLS] or question tokens). Combine with a window: ``sliding_window_mask(n, w) | global_mask(n, [0])``."""
    _require_whole(n=n)
    positions = torch.as_tensor(list(global_tokens), dtype=torch.long)  # (G,)
    if positions.numel() and (positions.min() < 0 or positions.max() >= n):
        raise ValueError(f"global tokens must be positions in 0..{n - 1}, got {positions.tolist()}")
    mask = torch.zeros(n, n, dtype=torch.bool)  # (n, n)
    mask[positions, :] = True  # global queries see everything
    mask[:, positions] = True  # everyone sees the global keys
    return mask


def random_block_mask(n: int, block_size: int, num_random: int, seed: int = 0) -> torch.Tensor:
    """(n, n) bool: each block of ``block_size`` queries attends ``num_random`` key blocks chosen at random
    (BigBird's random part; blocks keep the computation in dense tiles). Seeded, so it is reproducible."""
    _require_whole(n=n, block_size=block_size, num_random=num_random)
    num_blocks = math.ceil(n / block_size)
    generator = torch.Generator().manual_seed(seed)
    blocks = torch.zeros(num_blocks, num_blocks, dtype=torch.bool)  # (n/b, n/b): which key blocks each query block sees
    for row in range(num_blocks):
        chosen = torch.randperm(num_blocks, generator=generator)[:num_random]
        blocks[row, chosen] = True
    mask = blocks.repeat_interleave(block_size, 0).repeat_interleave(block_size, 1)  # (n/b·b, n/b·b)
    return mask[:n, :n]


def bigbird_mask(n: int, block_size: int, num_random: int = 1, num_global: int = 1, seed: int = 0) -> torch.Tensor:
    """(n, n) bool: BigBird = a window of one block on each side + ``num_global`` global blocks + random blocks."""
    _require_whole(n=n, block_size=block_size, num_random=num_random, num_global=num_global)
    blocks = torch.arange(n) // block_size  # (n,): the block of each position
    window = (blocks[:, None] - blocks[None, :]).abs() <= 1  # (n, n): own block and its neighbours
    global_positions = range(min(n, num_global * block_size))
    return window | global_mask(n, global_positions) | random_block_mask(n, block_size, num_random, seed)


def density(mask: torch.Tensor) -> float:
    """The fraction of (query, key) pairs a pattern computes: 1 for dense attention."""
    return float(mask.float().mean())


def reachable(mask: torch.Tensor, layers: int) -> torch.Tensor:
    """(T, S) bool: which keys' information can reach each query through ``layers`` stacked layers of ``mask``.

    After one layer, query i has seen the keys of its row. After two, it has also seen what those positions
    had seen: a boolean matrix product. Requires a square mask (self-attention: keys are earlier outputs).
    """
    require_rank("mask", mask, at_least=2, at_most=2)
    if mask.shape[0] != mask.shape[1]:
        raise ValueError(f"reachable needs a square (T, T) self-attention mask, got shape {tuple(mask.shape)}")
    _require_whole(layers=layers)
    step = mask.to(torch.float64)  # (T, T)
    reach = step.clone()  # (T, T)
    for _ in range(layers - 1):
        reach = ((reach @ step) > 0).to(torch.float64)  # (T, T): i reaches k via some j
    return reach > 0


# ----------------------------------------------------------------------------------------------------------
# Sliding-window attention without a (T, S) tensor
# ----------------------------------------------------------------------------------------------------------

def _band_mask(num_blocks: int, block: int, window: int, num_keys: int, is_causal: bool) -> torch.Tensor:
    """(nb, C, C + 2w) bool: which of its block's C + 2w candidate keys each query may attend.

    Query r of block b sits at b·C + r, candidate key c at b·C - w + c: their offset r - c + w is the same in
    every block, so the band is built once, (C, span); only the keys before 0 or after S - 1 (padding)
    depend on the block.
    """
    span = block + 2 * window
    offsets = torch.arange(block)[:, None] - torch.arange(span)[None, :] + window  # (C, span): i - j
    band = offsets.abs() <= window  # (C, span)
    if is_causal:
        band = band & (offsets >= 0)
    key_positions = torch.arange(num_blocks)[:, None] * block - window + torch.arange(span)[None, :]  # (nb, span)
    real_keys = (key_positions >= 0) & (key_positions < num_keys)  # (nb, span): not padding
    return band[None, :, :] & real_keys[:, None, :]  # (nb, C, span)


def sliding_window_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, window: int,
                             is_causal: bool = False, scale: float | None = None) -> torch.Tensor:
    """Attention where query i attends key j iff |i - j| <= window (and j <= i when causal); returns (..., T, Dv).

    query (..., T, D), key (..., S, D), value (..., S, Dv). The queries are cut into blocks of C = window
    positions (at least 16); block b needs only the C + 2·window keys around it, so the scores take
    ``T·(C + 2·window)`` numbers instead of ``T·S``. Only the output is returned: the weights would be the
    (T, S) matrix we avoid. Equal to ``scaled_dot_product_attention(..., attn_mask=sliding_window_mask(...))``.
    """
    for name, tensor in (("query", query), ("key", key), ("value", value)):
        require_rank(name, tensor, at_least=2)
    require_matching_features("query", query, "key", key)
    if key.shape[:-1] != value.shape[:-1]:
        raise ValueError(f"key and value must have the same leading shape (..., S), got key {tuple(key.shape)} "
                         f"and value {tuple(value.shape)}")
    _require_whole(window=window)
    num_queries, num_keys = query.shape[-2], key.shape[-2]
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    window = min(window, max(num_queries, num_keys))  # a wider window changes nothing
    block = max(window, 16)
    num_blocks = math.ceil(num_queries / block)
    span = block + 2 * window

    # 1) cut the queries into blocks: pad T up to nb·C
    padded_queries = torch.nn.functional.pad(query, (0, 0, 0, num_blocks * block - num_queries))  # (..., nb·C, D)
    query_blocks = padded_queries.unflatten(-2, (num_blocks, block))  # (..., nb, C, D)
    # 2) for each block, the C + 2w keys and values around it: pad w before and enough after, then slide
    padding = (0, 0, window, num_blocks * block + window - num_keys)
    key_windows = torch.nn.functional.pad(key, padding).unfold(-2, span, block)  # (..., nb, D, span): a view
    value_windows = torch.nn.functional.pad(value, padding).unfold(-2, span, block)  # (..., nb, Dv, span)
    # 3) scores of each query against its block's keys only, 4) hide the keys outside its own window
    scores = (query_blocks * scale) @ key_windows  # (..., nb, C, span); scaling the queries is the cheaper way
    allowed = _band_mask(num_blocks, block, window, num_keys, is_causal).to(query.device)  # (nb, C, span)
    scores = scores.masked_fill(~allowed, float("-inf"))  # (..., nb, C, span)
    # 5) softmax and weighted sum, as in dense attention
    weights = masked_softmax(scores)  # (..., nb, C, span)
    output = weights @ value_windows.transpose(-2, -1)  # (..., nb, C, Dv)
    return output.flatten(-3, -2)[..., :num_queries, :]  # (..., T, Dv)
