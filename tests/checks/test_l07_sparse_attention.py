"""Fixtures for the checks of lesson 07, course_lib/checks/l07_sparse_attention.py: wrong solutions, each with the
diagnosis a learner must see (``WRONG``), and right solutions written differently (``RIGHT``).
tests/test_manifest.py proves that every diagnosis of these checks is triggered by a WRONG fixture and that
every check has a RIGHT one."""
from __future__ import annotations

import math

import torch
from torch import nn

from course_lib import attention, sparse
from verdicts import fixture_tests


def window_strict(n, window):
    offsets = torch.arange(n)[:, None] - torch.arange(n)[None, :]
    return offsets.abs() < window


def window_causal(n, window):
    return sparse.sliding_window_mask(n, window, is_causal=True)


def window_numpy(n, window):
    return sparse.sliding_window_mask(n, window).numpy()


def window_reversed(n, window):
    """True where a query must NOT look: the opposite of the course's convention."""
    offsets = torch.arange(n)[:, None] - torch.arange(n)[None, :]  # (n, n): i - j
    return offsets.abs() > window


def window_split_between_sides(n, window):
    """Reads "window" as the whole width, so each side gets half of it."""
    half = window // 2
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        mask[i, max(0, i - half): i + half + 1] = True
    return mask


def window_centred_counting_query(n, window):
    """A "window of w tokens" centred on the query, the query among them: (w - 1) // 2 on each side."""
    offsets = torch.arange(n)[:, None] - torch.arange(n)[None, :]  # (n, n): i - j
    return offsets.abs() <= (window - 1) // 2


def window_one_too_wide(n, window):
    offsets = torch.arange(n)[:, None] - torch.arange(n)[None, :]  # (n, n): i - j
    return offsets.abs() <= window + 1


def window_lopsided(n, window):
    """-window <= j - i < window: the last key ahead is left out."""
    offsets = torch.arange(n)[None, :] - torch.arange(n)[:, None]  # (n, n): j - i
    return (offsets >= -window) & (offsets < window)


def strided_not_causal(n, stride):
    offsets = torch.arange(n)[:, None] - torch.arange(n)[None, :]
    return (offsets.abs() < stride) | (offsets % stride == 0)


def strided_local_only(n, stride):
    offsets = torch.arange(n)[:, None] - torch.arange(n)[None, :]
    return (offsets >= 0) & (offsets < stride)


def strided_multiples_only(n, stride):
    """Only the keys a whole number of strides back: the stride most recent keys are forgotten."""
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        mask[i, i % stride: i + 1: stride] = True  # …, i - 2·stride, i - stride, i
    return mask


def strided_absolute_columns(n, stride):
    """The strided part keeps every stride-th column, not every stride-th key back from the query."""
    rows, columns = torch.arange(n)[:, None], torch.arange(n)[None, :]  # (n, 1), (1, n)
    causal = columns <= rows
    return causal & ((rows - columns < stride) | (columns % stride == 0))


def sliding_dense(query, key, value, window, is_causal=False):
    mask = sparse.sliding_window_mask(query.shape[-2], window, is_causal=is_causal)
    return attention.scaled_dot_product_attention(query, key, value, attn_mask=mask)[0]


def sliding_ignores_causal(query, key, value, window, is_causal=False):
    return sparse.sliding_window_attention(query, key, value, window)


def sliding_strict(query, key, value, window, is_causal=False):
    return sparse.sliding_window_attention(query, key, value, window - 1, is_causal) if window > 0 else \
        torch.zeros(*query.shape[:-1], value.shape[-1])


def sliding_zero_padding(query, key, value, window, is_causal=False):
    """A banded version that pads with zero keys and forgets to mask them."""
    length, width = query.shape[-2], window + 1 if is_causal else 2 * window + 1
    before = window
    after = 0 if is_causal else window
    keys = nn.functional.pad(key, (0, 0, before, after)).unfold(-2, width, 1)  # (..., T, D, width)
    values = nn.functional.pad(value, (0, 0, before, after)).unfold(-2, width, 1)  # (..., T, Dv, width)
    scores = (query.unsqueeze(-2) @ keys).squeeze(-2) / math.sqrt(query.shape[-1])  # (..., T, width)
    weights = torch.softmax(scores, dim=-1)  # padding keys (zeros) get weight
    return (values @ weights.unsqueeze(-1)).squeeze(-1)[..., :length, :]


def sliding_blocks_unmasked(query, key, value, window, is_causal=False):
    """The hint's block loop, but each block attends its whole key slice: no mask for each query's own window."""
    length, block, outputs = query.shape[-2], max(window, 16), []
    for start in range(0, length, block):
        stop = min(start + block, length)
        first, last = max(0, start - window), min(length, stop + window)
        scores = query[..., start:stop, :] @ key[..., first:last, :].transpose(-2, -1) / math.sqrt(query.shape[-1])
        outputs.append(torch.softmax(scores, dim=-1) @ value[..., first:last, :])
    return torch.cat(outputs, dim=-2)


def sliding_causal_looks_ahead(query, key, value, window, is_causal=False):
    """Per query, a slice of keys; with is_causal the slice runs forward, i … i + window, instead of back."""
    length, outputs = query.shape[-2], []
    for i in range(length):
        start, stop = (i, min(length, i + window + 1)) if is_causal else (max(0, i - window), min(length, i + window + 1))
        scores = query[..., i:i + 1, :] @ key[..., start:stop, :].transpose(-2, -1) / math.sqrt(query.shape[-1])
        outputs.append(torch.softmax(scores, dim=-1) @ value[..., start:stop, :])  # (..., 1, Dv)
    return torch.cat(outputs, dim=-2)


def sliding_unscaled(query, key, value, window, is_causal=False):
    """The banded unfold, right in every way except the 1/√D."""
    length, width = query.shape[-2], 2 * window + 1
    keys = nn.functional.pad(key, (0, 0, window, window)).unfold(-2, width, 1)  # (..., T, D, width)
    values = nn.functional.pad(value, (0, 0, window, window)).unfold(-2, width, 1)  # (..., T, Dv, width)
    scores = (query.unsqueeze(-2) @ keys).squeeze(-2)  # (..., T, width): not divided by √D
    positions = torch.arange(length)[:, None] - window + torch.arange(width)[None, :]  # (T, width)
    allowed = (positions >= 0) & (positions < length)
    if is_causal:
        allowed &= positions <= torch.arange(length)[:, None]
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    return (values @ weights.unsqueeze(-1)).squeeze(-1)


def sliding_blocks(query, key, value, window, is_causal, block, before, after, local_positions=False):
    """A learner's block loop, shared by the fixtures below: blocks of ``block`` queries, each against keys
    start - before … stop + after - 1, masked by |i - j| <= window (and j <= i), i and j counted in the whole
    sequence or, with ``local_positions``, from the block's start and the slice's."""
    length, outputs = query.shape[-2], []
    for start in range(0, length, block):
        stop = min(start + block, length)
        first, last = max(0, start - before), min(length, stop + after)
        scores = query[..., start:stop, :] @ key[..., first:last, :].transpose(-2, -1) / math.sqrt(query.shape[-1])
        if local_positions:
            offsets = torch.arange(stop - start)[:, None] - torch.arange(last - first)[None, :]  # (C, K)
        else:
            offsets = torch.arange(start, stop)[:, None] - torch.arange(first, last)[None, :]  # (C, K): i - j
        allowed = offsets.abs() <= window
        if is_causal:
            allowed = allowed & (offsets >= 0)
        weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)  # (..., C, K)
        outputs.append(weights @ value[..., first:last, :])  # (..., C, Dv)
    return torch.cat(outputs, dim=-2)  # (..., T, Dv)


def sliding_longformer_window(query, key, value, window, is_causal=False):
    """Longformer's attention_window: the whole width, window // 2 keys on each side."""
    return sliding_blocks(query, key, value, window // 2, is_causal, 16, window // 2, window // 2)


def sliding_window_counts_query(query, key, value, window, is_causal=False):
    """Hugging Face's / gpt-oss's sliding_window: w positions, the query one of them (i - j < w when causal)."""
    offsets = torch.arange(query.shape[-2])[:, None] - torch.arange(key.shape[-2])[None, :]  # (T, S): i - j
    allowed = (offsets.abs() < window) & (offsets >= 0 if is_causal else True)
    length, outputs = query.shape[-2], []
    for i in range(length):  # one query at a time, its row of the mask
        keys = allowed[i].nonzero().flatten()  # (K,)
        scores = query[..., i:i + 1, :] @ key[..., keys, :].transpose(-2, -1) / math.sqrt(query.shape[-1])
        outputs.append(torch.softmax(scores, dim=-1) @ value[..., keys, :])  # (..., 1, Dv)
    return torch.cat(outputs, dim=-2)


def sliding_fixed_block_1024(query, key, value, window, is_causal=False):
    """Blocks of 1024 queries whatever the window: right values, and 4x memory from T = 1024 to 4096, but at
    T = 1024 one block holds every score."""
    return sliding_blocks(query, key, value, window, is_causal, 1024, window, window)


def sliding_slice_ends_at_block(query, key, value, window, is_causal=False):
    """Keys start - window … stop - 1: right for a causal window, but the last queries of a block lose the keys ahead."""
    return sliding_blocks(query, key, value, window, is_causal, max(window, 16), window, 0)


def sliding_slice_starts_at_block(query, key, value, window, is_causal=False):
    """Keys start … stop + window - 1: the first queries of a block lose the keys behind them."""
    return sliding_blocks(query, key, value, window, is_causal, max(window, 16), 0, window)


def sliding_mask_in_block_positions(query, key, value, window, is_causal=False):
    """The mask compares r (in the block) with c (in the slice): off by window from the second block on."""
    return sliding_blocks(query, key, value, window, is_causal, max(window, 16), window, window, local_positions=True)


def sliding_neighbouring_blocks(query, key, value, window, is_causal=False):
    """Longformer-style chunks of a fixed 16, each against its own and its two neighbouring chunks: too few keys
    once the window is wider than 16."""
    return sliding_blocks(query, key, value, window, is_causal, 16, 16, 16)


def sliding_per_query_unclipped(query, key, value, window, is_causal=False):
    """One query at a time, slicing key[i - window : i + window + 1] and forgetting max(0, ...)."""
    outputs = []
    for i in range(query.shape[-2]):
        stop = i + 1 if is_causal else i + window + 1
        scores = query[..., i:i + 1, :] @ key[..., i - window:stop, :].transpose(-2, -1) / math.sqrt(query.shape[-1])
        outputs.append(torch.softmax(scores, dim=-1) @ value[..., i - window:stop, :])
    return torch.cat(outputs, dim=-2)


def sliding_blocks_unclipped(query, key, value, window, is_causal=False):
    """The hint's block loop without max(0, ...): the first block's slice starts at -window."""
    length, block, outputs = query.shape[-2], max(window, 16), []
    for start in range(0, length, block):
        stop = min(start + block, length)
        first, last = start - window, min(length, stop + window)
        scores = query[..., start:stop, :] @ key[..., first:last, :].transpose(-2, -1) / math.sqrt(query.shape[-1])
        offsets = torch.arange(start, stop)[:, None] - torch.arange(first, last)[None, :]  # (C, K): i - j
        allowed = (offsets.abs() <= window) & (offsets >= 0 if is_causal else True)
        outputs.append(torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ value[..., first:last, :])
    return torch.cat(outputs, dim=-2)


def sliding_causal_strict(query, key, value, window, is_causal=False):
    """A causal window written as 0 < i - j <= window: each query's own key is left out."""
    offsets = torch.arange(query.shape[-2])[:, None] - torch.arange(key.shape[-2])[None, :]  # (T, S): i - j
    allowed = (offsets.abs() <= window) & (offsets > 0 if is_causal else True)
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ value


def sliding_fixed_block_128(query, key, value, window, is_causal=False):
    """A fixed block of 128 queries: at window 4 its tiles are 128 × 136, far below the T·S scores at T = 1024."""
    return sliding_blocks(query, key, value, window, is_causal, 128, window, window)


def sliding_blocks_of_twice_the_window(query, key, value, window, is_causal=False):
    """Blocks of 2·window queries (Longformer's chunk size), at least 1."""
    return sliding_blocks(query, key, value, window, is_causal, max(2 * window, 1), window, window)


def window_loop(n, window):
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        mask[i, max(0, i - window): i + window + 1] = True
    return mask


def window_triangles(n, window):
    ones = torch.ones(n, n, dtype=torch.bool)
    return ones.triu(-window) & ones.tril(window)


def strided_loop(n, stride):
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(i + 1):
            mask[i, j] = i - j < stride or (i - j) % stride == 0
    return mask


def strided_local_part_inclusive(n, stride):
    """``i - j <= stride`` instead of ``< stride`` in the local part is harmless: the key i - stride is one whole
    stride back, so the strided part keeps it anyway (why the check has no diagnosis for this "off by one")."""
    offsets = torch.arange(n)[:, None] - torch.arange(n)[None, :]  # (n, n): i - j
    return (offsets >= 0) & ((offsets <= stride) | (offsets % stride == 0))


def sliding_per_query(query, key, value, window, is_causal=False):
    """One query at a time, with torch's attention on its own slice of keys: O(window) memory per step."""
    length = query.shape[-2]
    outputs = []
    for i in range(length):
        start, stop = max(0, i - window), (i + 1 if is_causal else min(length, i + window + 1))
        outputs.append(nn.functional.scaled_dot_product_attention(
            query[..., i:i + 1, :], key[..., start:stop, :], value[..., start:stop, :]))
    return torch.cat(outputs, dim=-2)


def sliding_masked_unfold(query, key, value, window, is_causal=False):
    """Each query against its 2w+1 neighbours (gathered by unfold), the padding masked: O(T·window)."""
    length, width = query.shape[-2], 2 * window + 1
    keys = nn.functional.pad(key, (0, 0, window, window)).unfold(-2, width, 1)  # (..., T, D, width)
    values = nn.functional.pad(value, (0, 0, window, window)).unfold(-2, width, 1)  # (..., T, Dv, width)
    scores = (query.unsqueeze(-2) @ keys).squeeze(-2) / math.sqrt(query.shape[-1])  # (..., T, width)
    positions = torch.arange(length)[:, None] - window + torch.arange(width)[None, :]  # (T, width)
    allowed = (positions >= 0) & (positions < length)
    if is_causal:
        allowed &= positions <= torch.arange(length)[:, None]
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    return (values @ weights.unsqueeze(-1)).squeeze(-1)


WRONG = [
    ("sliding_window_mask", window_strict, "off by one"),
    ("sliding_window_mask", window_causal, "made it causal"),
    ("sliding_window_mask", window_numpy, "returned a numpy array"),
    ("sliding_window_mask", window_reversed, "the meaning is reversed"),
    ("sliding_window_mask", window_split_between_sides, "that is Longformer's convention"),
    ("sliding_window_mask", window_centred_counting_query, "centred on the query, the query counted"),
    ("sliding_window_mask", window_one_too_wide, "off by one the other way"),
    ("sliding_window_mask", window_lopsided, "the window is lopsided"),
    ("strided_mask", strided_not_causal, "see the future"),
    ("strided_mask", strided_local_only, "strided part is missing"),
    ("strided_mask", strided_multiples_only, "local part is missing"),
    ("strided_mask", strided_absolute_columns, "absolute positions"),
    ("sliding_window_attention", sliding_dense, "builds a (T, S) tensor"),
    ("sliding_window_attention", sliding_ignores_causal, "is_causal=True is ignored"),
    ("sliding_window_attention", sliding_strict, "off by one"),
    ("sliding_window_attention", sliding_zero_padding, "padding is attended"),
    ("sliding_window_attention", sliding_blocks_unmasked, "outside its own window"),
    ("sliding_window_attention", sliding_causal_looks_ahead, "looks into the future"),
    ("sliding_window_attention", sliding_unscaled, "not scaled by 1/√D"),
    ("sliding_window_attention", sliding_longformer_window, "that is Longformer's convention"),
    ("sliding_window_attention", sliding_window_counts_query, "Hugging Face's sliding_window masks and of gpt-oss"),
    ("sliding_window_attention", sliding_per_query_unclipped, "counts from the end"),
    ("sliding_window_attention", sliding_blocks_unclipped, "first = max(0, start - window)"),
    ("sliding_window_attention", sliding_causal_strict, "leaves out each query's own key"),
    ("sliding_window_attention", sliding_fixed_block_1024, "Derive the block size from the window"),
    ("sliding_window_attention", sliding_slice_ends_at_block, "the key slice of a block is too short"),
    ("sliding_window_attention", sliding_slice_starts_at_block, "the key slice of a block is too short"),
    ("sliding_window_attention", sliding_mask_in_block_positions, "off by window there"),
    ("sliding_window_attention", sliding_neighbouring_blocks, "neighbouring blocks only"),
]

RIGHT = [
    ("sliding_window_mask", window_loop),
    ("sliding_window_mask", window_triangles),
    ("strided_mask", strided_loop),
    ("strided_mask", strided_local_part_inclusive),
    ("sliding_window_attention", sliding_per_query),
    ("sliding_window_attention", sliding_masked_unfold),
    ("sliding_window_attention", sliding_fixed_block_128),
    ("sliding_window_attention", sliding_blocks_of_twice_the_window),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)
