"""The checks of lesson 07, sparse attention: the sliding-window and strided masks, and banded sliding-window
attention.

Lesson: notebooks/07_sparse_attention.ipynb, its exercise solutions/07_sparse_attention.ipynb.
Tests: tests/checks/test_l07_sparse_attention.py.
"""
from __future__ import annotations

from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import TORCH_MODULE_ATTENTION, long_inputs, tensor, torch_shape_error
from course_lib.checks.l07_sparse_attention.mistakes import (
    _QUERY_COUNTED, _WHOLE_WIDTH, _attends_whole_key_slice, _attention_window_read_as_whole_width,
    _causal_window_ahead, _excludes_own_key, _ignores_is_causal, _key_slice_too_short, _mask_with_local_positions,
    _neighbouring_blocks_only, _slices_from_negative_starts, _strided_from_absolute_positions,
    _strided_local_part_only, _strided_part_only, _strided_sees_future, _window_attention_off_by_one,
    _window_attention_unscaled, _window_lopsided_either_way, _window_made_causal, _window_off_by_one,
    _window_one_too_wide, _window_read_as_whole_width, _window_reversed, _zero_padded_keys,
)


def _window_mask_cases(rng):
    """A window of 3 in 8 (where no two of the mistakes below agree), none, wider than n, and a random one."""
    sizes = ((8, 3), (6, 0), (5, 10), (int(rng.integers(10, 20)), int(rng.integers(1, 5))))
    return [Case(f"n={n}, window={window}", (n, window)) for n, window in sizes]


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
