"""The mistakes of lesson 07's checks, as code: what each wrong solution computes (its simulator, for
``like``) and the predicates that recognise it. Used by :mod:`course_lib.checks.l07_sparse_attention`; triggered by the WRONG
fixtures of tests/checks/test_l07_sparse_attention.py.
"""
from __future__ import annotations

from functools import partial

from course_lib.checking import like


def _arange(n):
    import torch

    return torch.arange(n)


def _offsets(n):
    import torch

    return torch.arange(n)[:, None] - torch.arange(n)[None, :]  # (n, n): i - j


def _window_off_by_one(n, window):
    return _offsets(n).abs() < window  # (n, n): the ends left out


def _window_made_causal(n, window):
    offsets = _offsets(n)  # (n, n)
    return (offsets.abs() <= window) & (offsets >= 0)  # (n, n): only the keys behind


def _window_one_too_wide(n, window):
    return _offsets(n).abs() <= window + 1  # (n, n): one key too many on each side


def _window_lopsided(n, window):
    offsets = _offsets(n)  # (n, n): i - j
    return (offsets <= window) & (offsets > -window)  # (n, n): window keys behind, window - 1 ahead


def _window_lopsided_either_way(case, got, expected) -> bool:
    """window keys on one side, window - 1 on the other, whichever side is short."""
    mirrored = lambda n, window: _window_lopsided(n, window).T  # (n, n): window - 1 behind, window ahead
    return like(_window_lopsided)(case, got, expected) or like(mirrored)(case, got, expected)


def _window_reversed(n, window):
    return _offsets(n).abs() > window  # (n, n): True = masked, the opposite convention


def _window_halved(n, window):
    return _offsets(n).abs() <= window // 2  # (n, n): window split between the two sides (Longformer)


def _window_centred_on_query(n, window):
    return _offsets(n).abs() <= (window - 1) // 2  # (n, n): window positions in all, the query among them


def _window_read_as_whole_width(case, got, expected) -> bool:
    """``window`` read as the whole width: split between the two sides, with or without the query counted."""
    return like(_window_halved)(case, got, expected) or like(_window_centred_on_query)(case, got, expected)


# Real code counts windows in two other ways; the messages name them and say why this exercise counts as it does.
_WHY_HALF_WIDTH = ("this exercise uses the half-width convention of flash-attn's window_size=(window, window): "
                   "|i - j| <= window, the query plus window keys on each side, both ends included, because then "
                   "window = 0 is the query alone, the pattern is symmetric, and the causal window is the two-sided "
                   "one cut at j <= i.")


_QUERY_COUNTED = ("If you meant a window of w positions that counts the query itself, that is the convention of "
                  "Hugging Face's sliding_window masks and of gpt-oss (whose window of 128 is the query and the 127 "
                  "keys before it); " + _WHY_HALF_WIDTH)


_WHOLE_WIDTH = ("you read window as the whole width of the window: that is Longformer's convention (Hugging Face's "
                "attention_window = 512 means 256 keys on each side), or a window of w positions centred on the "
                "query, the query counted; " + _WHY_HALF_WIDTH + " The window is 2·window + 1 wide in total.")


def _strided_sees_future(n, stride):
    offsets = _offsets(n)  # (n, n)
    return (offsets.abs() < stride) | (offsets % stride == 0)  # (n, n): no j <= i


def _strided_local_part_only(n, stride):
    offsets = _offsets(n)  # (n, n)
    return (offsets >= 0) & (offsets < stride)  # (n, n)


def _strided_part_only(n, stride):
    offsets = _offsets(n)  # (n, n)
    return (offsets >= 0) & (offsets % stride == 0)  # (n, n)


def _strided_from_absolute_positions(n, stride):
    offsets, columns = _offsets(n), _arange(n)[None, :]  # (n, n), (1, n)
    return (offsets >= 0) & ((offsets < stride) | (columns % stride == 0))  # (n, n): j % stride, not (i - j)


def _dense_window_attention(query, key, value, allowed, scale=None):
    """Dense attention with the (T, T) mask ``allowed``: what a banded version with a mistaken window returns."""
    from course_lib.attention import scaled_dot_product_attention

    return scaled_dot_product_attention(query, key, value, attn_mask=allowed, scale=scale)[0]  # (..., T, Dv)


def _causal_part(offsets, is_causal):
    return (offsets >= 0) if is_causal else True  # (T, T) or True: keys j <= i only when causal


def _window_attention_off_by_one(query, key, value, window, is_causal=False):
    offsets = _offsets(query.shape[-2])  # (T, T): i - j
    return _dense_window_attention(query, key, value, (offsets.abs() < window) & _causal_part(offsets, is_causal))


def _window_attention_whole_width(query, key, value, window, is_causal=False, counts_query=False):
    offsets = _offsets(query.shape[-2])  # (T, T): i - j
    half = (window - 1) // 2 if counts_query else window // 2  # keys on each side when window is the whole width
    return _dense_window_attention(query, key, value, (offsets.abs() <= half) & _causal_part(offsets, is_causal))


def _attention_window_read_as_whole_width(case, got, expected) -> bool:
    return any(like(partial(_window_attention_whole_width, counts_query=counts))(case, got, expected)
               for counts in (False, True))


def _window_attention_both_ways(query, key, value, window, is_causal=False):
    offsets = _offsets(query.shape[-2])  # (T, T): i - j
    return _dense_window_attention(query, key, value, offsets.abs() <= window)  # is_causal never read


def _ignores_is_causal(case, got, expected) -> bool:
    """On a causal case, ``got`` is the window that looks both ways."""
    return bool(case.kwargs.get("is_causal")) and like(_window_attention_both_ways)(case, got, expected)


def _causal_window_ahead(query, key, value, window, is_causal=False):
    offsets = _offsets(query.shape[-2])  # (T, T): i - j
    ahead = (offsets <= 0) if is_causal else True  # (T, T): keys i … i + window instead of i - window … i
    return _dense_window_attention(query, key, value, (offsets.abs() <= window) & ahead)


def _causal_window_without_own_key(query, key, value, window, is_causal=False):
    """A causal window with j < i instead of j <= i: query 0 has no key, so torch.softmax gives it NaN."""
    import torch

    offsets = _offsets(query.shape[-2])  # (T, T): i - j
    allowed = (offsets.abs() <= window) & ((offsets > 0) if is_causal else True)  # (T, T)
    scores = (query @ key.transpose(-2, -1) / query.shape[-1] ** 0.5).masked_fill(~allowed, float("-inf"))  # (..., T, T)
    return torch.softmax(scores, dim=-1) @ value  # (..., T, Dv): NaN where a row has no key


def _excludes_own_key(case, got, expected) -> bool:
    """On a causal case, ``got`` leaves out each query's own key (NaN or zeros where no key is left)."""
    import torch

    if not case.kwargs.get("is_causal"):
        return False
    if like(_causal_window_without_own_key)(case, got, expected):
        return True
    if not hasattr(got, "nan_to_num"):
        return False
    wanted = _causal_window_without_own_key(*case.args, **case.kwargs).nan_to_num(0.0)  # masked_softmax's zeros
    return bool(torch.allclose(got.detach().double().nan_to_num(0.0), wanted.double(), rtol=1e-3, atol=1e-4))


def _window_attention_unscaled(query, key, value, window, is_causal=False):
    offsets = _offsets(query.shape[-2])  # (T, T): i - j
    allowed = (offsets.abs() <= window) & _causal_part(offsets, is_causal)  # (T, T)
    return _dense_window_attention(query, key, value, allowed, scale=1.0)  # q·k, not q·k/√D


def _zero_padded_keys(query, key, value, window, is_causal=False):
    """Padded band without masking the padding: missing keys near the edges count as zero vectors (score 0)."""
    import torch

    offsets = _offsets(query.shape[-2])  # (T, T)
    allowed = (offsets.abs() <= window) & _causal_part(offsets, is_causal)  # (T, T)
    width = (window + 1) if is_causal else (2 * window + 1)
    missing = width - allowed.sum(-1)  # (T,): zero keys each query also "sees", score 0 each
    logits = (query @ key.transpose(-2, -1) / query.shape[-1] ** 0.5).masked_fill(~allowed, float("-inf"))  # (..., T, T)
    extra = torch.log(missing.to(logits.dtype)).expand(*logits.shape[:-1])[..., None]  # (..., T, 1): log(m·e^0)
    weights = torch.softmax(torch.cat([logits, extra], dim=-1), dim=-1)[..., :-1]  # (..., T, T): zero keys add no value
    return weights @ value  # (..., T, Dv)


def _blocks_without_window_mask(block):
    """The hint's banded loop with a mistake: each block of ``block`` queries attends its whole key slice
    ``max(0, start - window) … min(T, stop + window) - 1``, with no mask for each query's own window."""

    def attend(query, key, value, window, is_causal=False):
        import torch

        length, outputs = query.shape[-2], []
        for start in range(0, length, block):
            stop = min(start + block, length)
            first, last = max(0, start - window), min(length, stop + window)  # the block's key slice
            scores = query[..., start:stop, :] @ key[..., first:last, :].transpose(-2, -1) / query.shape[-1] ** 0.5  # (..., C, K)
            outputs.append(torch.softmax(scores, dim=-1) @ value[..., first:last, :])  # (..., C, Dv): no window mask
        return torch.cat(outputs, dim=-2)  # (..., T, Dv)

    return attend


def _block_loop(block, before=None, after=None, local_offsets=False):
    """The hint's loop over blocks of ``block`` queries with a mistake at a block's edge: the key slice runs from
    start - ``before`` to stop + ``after`` - 1 (window on each side when None), and the mask compares positions
    in the whole sequence, or, with ``local_offsets``, positions counted from the block's and the slice's start."""

    def attend(query, key, value, window, is_causal=False):
        import torch

        length, outputs = query.shape[-2], []
        left, right = (window if before is None else before), (window if after is None else after)
        for start in range(0, length, block):
            stop = min(start + block, length)
            first, last = max(0, start - left), min(length, stop + right)  # the block's key slice
            scores = query[..., start:stop, :] @ key[..., first:last, :].transpose(-2, -1) / query.shape[-1] ** 0.5  # (..., C, K)
            if local_offsets:
                offsets = torch.arange(stop - start)[:, None] - torch.arange(last - first)[None, :]  # (C, K): r - c
            else:
                offsets = torch.arange(start, stop)[:, None] - torch.arange(first, last)[None, :]  # (C, K): i - j
            allowed = (offsets.abs() <= window) & (offsets >= 0 if is_causal else True)  # (C, K)
            weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)  # (..., C, K)
            outputs.append(weights @ value[..., first:last, :])  # (..., C, Dv)
        return torch.cat(outputs, dim=-2)  # (..., T, Dv)

    return attend


def _block_sizes(case):
    """The block sizes a learner's loop may use: every size up to T on short sequences, the usual ones (the
    window, twice it, 16 … 128) on long ones."""
    length, window = case.args[0].shape[-2], case.args[3]
    sizes = range(2, length + 1) if length <= 80 else (window, 2 * window, max(window, 16), 16, 32, 64, 128)
    return sorted({size for size in sizes if size >= 2})


def _attends_whole_key_slice(case, got, expected) -> bool:
    """Does ``got`` equal the unmasked block loop for some block size?"""
    return any(like(_blocks_without_window_mask(size))(case, got, expected) for size in _block_sizes(case))


def _key_slice_too_short(case, got, expected) -> bool:
    """A block loop whose key slice stops at the block's last query, or starts at its first (or both)."""
    window = case.args[3]
    sides = ((0, window), (window, 0), (0, 0))
    return window > 0 and any(like(_block_loop(size, before, after))(case, got, expected)
                              for size in _block_sizes(case) for before, after in sides)


def _mask_with_local_positions(case, got, expected) -> bool:
    """A block loop whose mask compares positions counted within the block and within its key slice."""
    return case.args[3] > 0 and any(like(_block_loop(size, local_offsets=True))(case, got, expected)
                                    for size in _block_sizes(case))


def _neighbouring_blocks_only(case, got, expected) -> bool:
    """A block loop that takes the keys of the neighbouring blocks (block keys on each side), fewer than the
    window: a fixed block, not one derived from the window."""
    window = case.args[3]
    return any(like(_block_loop(size, size, size))(case, got, expected)
               for size in _block_sizes(case) if size < window)


def _slices_from_negative_starts(query, key, value, window, is_causal=False):
    """One query at a time against key[i - window : i + window + 1] without clipping the start at 0: for i < window
    Python counts the negative start from the end, the slice comes out empty, and the output is 0."""
    import torch

    length, outputs = query.shape[-2], []
    for i in range(length):
        stop = i + 1 if is_causal else i + window + 1
        keys, values = key[..., i - window:stop, :], value[..., i - window:stop, :]  # (..., K, ·): K = 0 while i < window
        scores = query[..., i:i + 1, :] @ keys.transpose(-2, -1) / query.shape[-1] ** 0.5  # (..., 1, K)
        outputs.append(torch.softmax(scores, dim=-1) @ values)  # (..., 1, Dv): zeros for an empty slice
    return torch.cat(outputs, dim=-2)  # (..., T, Dv)
