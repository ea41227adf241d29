"""The checks of lesson 07, sparse attention: the sliding-window and strided masks, and banded sliding-window
attention.

Lesson: notebooks/07_sparse_attention.ipynb, its exercise solutions/07_sparse_attention.ipynb.
Tests: tests/checks/test_l07_sparse_attention.py.
"""
from __future__ import annotations

from functools import partial

from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import TORCH_MODULE_ATTENTION, long_inputs, tensor, torch_shape_error


def _arange(n):
    import torch

    return torch.arange(n)


def _offsets(n):
    import torch

    return torch.arange(n)[:, None] - torch.arange(n)[None, :]  # (n, n): i - j


def _window_mask_cases(rng):
    """A window of 3 in 8 (where no two of the mistakes below agree), none, wider than n, and a random one."""
    sizes = ((8, 3), (6, 0), (5, 10), (int(rng.integers(10, 20)), int(rng.integers(1, 5))))
    return [Case(f"n={n}, window={window}", (n, window)) for n, window in sizes]


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


check_sliding_window_mask = Check(
    name="sliding_window_mask",
    points=1,
    make_cases=_window_mask_cases,
    implementation="course_lib.sparse.sliding_window_mask",
    outputs=(Output("mask", kind="torch", dtype="bool"),),
    mistakes=(
        Mistake("off by one: a window of w lets query i see keys i - w … i + w, both ends included: "
                "|i - j| <= window, not < window. " + _QUERY_COUNTED, like(_window_off_by_one)),
        Mistake("you made it causal (j <= i only): the sliding window looks both ways, |i - j| <= window.",
                like(_window_made_causal)),
        Mistake("the meaning is reversed: True = may attend, i.e. inside the window.", like(_window_reversed)),
        Mistake("off by one the other way: your window reaches window + 1 keys on each side. |i - j| <= window keeps "
                "the query and window keys on each side, 2·window + 1 in all.", like(_window_one_too_wide)),
        Mistake("the window is lopsided: window keys on one side of the query and window - 1 on the other (a range "
                "such as i - window < j <= i + window, or j - i < window with i - j <= window). Both ends are included "
                "on both sides: |i - j| <= window.", _window_lopsided_either_way),
        Mistake(_WHOLE_WIDTH + " Use |i - j| <= window, not <= window / 2.", _window_read_as_whole_width),
    ),
    what="Boolean (n, n), True where |i − j| ≤ window, both sides, ends included; window ≥ n is all True.",
    withholds=("course_lib.sparse.dilated_window_mask", "course_lib.sparse.bigbird_mask"),
)


def _strided_mask_cases(rng):
    sizes = ((9, 3), (16, 4), (5, 1), (7, 10), (int(rng.integers(12, 30)), int(rng.integers(2, 6))))
    return [Case(f"n={n}, stride={stride}", (n, stride)) for n, stride in sizes]


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


check_strided_mask = Check(
    name="strided_mask",
    points=1,
    make_cases=_strided_mask_cases,
    implementation="course_lib.sparse.strided_mask",
    outputs=(Output("mask", kind="torch", dtype="bool"),),
    mistakes=(
        Mistake("your mask lets queries see the future: the strided pattern is causal, keys j <= i only.",
                like(_strided_sees_future)),
        Mistake("the strided part is missing: besides the stride most recent keys, query i also sees every key "
                "a whole number of strides back, (i - j) % stride == 0.", like(_strided_local_part_only)),
        Mistake("the local part is missing: besides keys a whole number of strides back, query i sees the "
                "stride most recent keys, 0 <= i - j < stride.", like(_strided_part_only)),
        Mistake("you measured the stride in absolute positions (j % stride == 0); the Sparse Transformer's "
                "strided head looks back from each query: (i - j) % stride == 0.",
                like(_strided_from_absolute_positions)),
    ),
    what="Causal; key j visible to query i iff 0 ≤ i − j < stride or (i − j) % stride == 0.",
    withholds=("course_lib.sparse.fixed_mask",),
)


def _sliding_attention_cases(rng):
    """Short cases first (one block for most learners' loops), then several blocks, where a bug at a block's edge
    shows under its own name, then the long case, whose memory is measured."""

    def inputs(*shape, value_dim=None):
        value_shape = (*shape[:-1], shape[-1] if value_dim is None else value_dim)
        return tensor(rng, *shape), tensor(rng, *shape), tensor(rng, *value_shape)  # query, key, value

    return [
        Case("query, key, value (1, 10, 8), window=4", (*inputs(1, 10, 8), 4)),  # < 4, <= 4 // 2, <= 3 // 2 differ
        Case("heads: (2, 3, 13, 4), window=3 (T = 13 is a multiple of no block size)",
             (*inputs(2, 3, 13, 4, value_dim=2), 3)),
        Case("is_causal=True: (2, 12, 4), window=4", (*inputs(2, 12, 4), 4), {"is_causal": True}),
        Case("window=0: each query attends only itself", (*inputs(1, 6, 4, value_dim=3), 0)),
        Case("window=10 >= T = 5: every query sees every key (dense attention)", (*inputs(2, 5, 4), 10)),
        Case("several blocks of queries: (1, 2, 50, 4), window=3 (queries at a block's edge see keys in the next "
             "block)", (*inputs(1, 2, 50, 4), 3)),
        Case("several blocks, is_causal=True: (2, 45, 4), window=5", (*inputs(2, 45, 4), 5), {"is_causal": True}),
        Case("a window wider than a block of 16: (1, 70, 4), window=20", (*inputs(1, 70, 4), 20)),
        Case("T = 4096, D = 8, window=4: many blocks; then your peak memory is measured here and at T = 1024",
             (*inputs(1, 4096, 8), 4), watch_memory=True),
    ]


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


SHORT = 1024  # the long case is measured again at this length


def _memory_follows_the_window(function, case, got) -> str | None:
    """On the long case: does peak memory grow like T·window from T = 1024 to 4096 (4x, not a (T, S) tensor's
    16x), and does no tensor at T = 1024 hold a quarter of the T·S scores (a block fixed at 1024 queries holds
    them all there, though it grows 4x like a band)?"""
    if not case.watch_memory:
        return None
    query, key, value, window = case.args
    from course_lib.measure import format_bytes, largest_intermediate, peak_memory

    short_inputs = tuple(x[..., :SHORT, :] for x in (query, key, value))  # (..., 1024, ·) each
    short = peak_memory(function, *short_inputs, window)
    long = peak_memory(function, query, key, value, window)
    ratio = long / max(short, 1)
    if ratio > 8:
        return (f"your function's peak memory grows {ratio:.0f}× from T = {SHORT} to T = {query.shape[-2]} "
                f"({format_bytes(short)} → {format_bytes(long)}): it builds a (T, S) tensor (scores or a mask grow "
                f"16×). Compute each block of queries against only the keys within its window, so memory grows like "
                f"T·window (4×).")
    largest = largest_intermediate(function, *short_inputs, window)
    scores = short_inputs[0].shape[:-1].numel() * SHORT  # (..., T, S) at T = S = 1024
    if largest >= scores // 4:
        return (f"at T = {SHORT} with window = {window}, a tensor of {largest} numbers was built inside your function, "
                f"{largest / scores:.0%} of all T·S = {scores} scores, where each query needs only 2·window + 1 = "
                f"{2 * window + 1}: your blocks are far wider than the window (a fixed block of {SHORT} queries, for "
                f"instance, holds every score at T = {SHORT}). Derive the block size from the window, e.g. max(window, 16), so that "
                f"the scores take about T·(block + 2·window) numbers at every length, not only when T is much longer "
                f"than a fixed block.")
    return None


def _long_window_case(rng):
    return Case("T = S = 4096, window = 32 (peak memory measured)", (*long_inputs(rng), 32))


check_sliding_window_attention = Check(
    name="sliding_window_attention",
    points=3,
    make_cases=_sliding_attention_cases,
    implementation="course_lib.sparse.sliding_window_attention",
    outputs=(Output("output", kind="torch"),),
    mistakes=(
        Mistake("off by one: query i sees keys with |i - j| <= window, both ends included (a causal window: the "
                "query and the window keys before it). " + _QUERY_COUNTED, like(_window_attention_off_by_one)),
        Mistake(_WHOLE_WIDTH + " Keep keys with |i - j| <= window.", _attention_window_read_as_whole_width),
        Mistake("is_causal=True is ignored: a causal window keeps only keys j <= i (i - window <= j <= i).",
                _ignores_is_causal),
        Mistake("your causal window looks into the future: keep keys i - window <= j <= i.",
                like(_causal_window_ahead)),
        Mistake("your causal window leaves out each query's own key (j < i): keep i - window <= j <= i, the "
                "diagonal included. With j < i query 0 has no key at all, and the softmax of a row of -inf is NaN.",
                _excludes_own_key),
        Mistake("the padding is attended: near the edges the band holds positions outside 0 … T-1 (zeros after "
                "padding), and they got weight. Mask them with -inf like the keys outside the window.",
                like(_zero_padded_keys)),
        Mistake("every query of a block attends the block's whole key slice, so it also sees keys outside its own "
                "window (a query at the start of a block sees up to window + block - 1 keys ahead). The slice is "
                "only what the block needs: inside it, mask each pair with |i - j| > window (and j > i when "
                "is_causal) with -inf before the softmax, i and j being positions in the whole sequence.",
                _attends_whole_key_slice),
        Mistake("the key slice of a block is too short: a query at either end of a block sees up to window keys "
                "beyond it, in the neighbouring block. Each block needs keys max(0, start - window) … "
                "min(S, stop + window) - 1: stop + window, not stop, and start - window, not start.",
                _key_slice_too_short),
        Mistake("the mask inside a block compares positions counted from the block's first query with positions "
                "counted from its key slice's first key, but from the second block on the slice starts window keys "
                "before the block, so every offset is off by window there (the first block, whose slice starts at 0, "
                "is right). Use positions in the whole sequence: i from torch.arange(start, stop), j from "
                "torch.arange(first, last).", _mask_with_local_positions),
        Mistake("each block attends the keys of its neighbouring blocks only (block-size keys on each side), fewer "
                "than the window when the window is wider than a block: a fixed block size, not one derived from the "
                "window. Take keys start - window … stop + window - 1, or make the block at least as wide as the "
                "window (e.g. max(window, 16)).", _neighbouring_blocks_only),
        Mistake("the first window queries get no keys (their outputs are 0): a slice key[..., i - window : ...] with "
                "i < window starts at a negative index, which Python counts from the end, so the slice is empty. "
                "Clip the start: max(0, i - window) (for a block: max(0, start - window)).",
                like(_slices_from_negative_starts)),
        Mistake("the scores are not scaled by 1/√D (D = query.shape[-1]).", like(_window_attention_unscaled)),
    ),
    error_hints=(
        (torch_shape_error,
         "Check the shapes: the output is (..., T, Dv) with Dv = value.shape[-1], which may differ from D, and a "
         "block's mask is (C, K), for its C queries and the K keys of its slice. If the slice starts below 0 "
         "(start - window for the first block), Python counts a negative index from the end and the slice comes out "
         "empty or short: clip it, first = max(0, start - window), last = min(S, stop + window), and build the mask "
         "from the same first and last."),
    ),
    extra=_memory_follows_the_window,
    what="Equal to dense attention with the window mask (T not a multiple of a block, several blocks, a window wider "
         "than a block, window ≥ T, causal), and memory grows like T·window: no (T, S) tensor, at any length.",
    library=TORCH_MODULE_ATTENTION,  # attention on each block is allowed: the band and the blocks are the exercise
    memory_probe=_long_window_case,
    memory_advice=("Compute each block of queries against only the keys within its window, with a block size derived "
                   "from the window (e.g. max(window, 16)), not a fixed one, so that memory grows like T·window."),
)


CHECKS = (check_sliding_window_mask, check_strided_mask, check_sliding_window_attention)
