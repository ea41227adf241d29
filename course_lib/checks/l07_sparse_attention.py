"""The checks of lesson 07, sparse attention: the sliding-window and strided masks, and banded sliding-window
attention.

Lesson: notebooks/07_sparse_attention.ipynb, its exercise solutions/07_sparse_attention.ipynb.
Tests: tests/checks/test_l07_sparse_attention.py.
"""
from __future__ import annotations

from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import TORCH_MODULE_ATTENTION, long_inputs, tensor


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


def _window_reversed(n, window):
    return _offsets(n).abs() > window  # (n, n): True = masked, the opposite convention


def _window_halved(n, window):
    return _offsets(n).abs() <= window // 2  # (n, n): window split between the two sides


check_sliding_window_mask = Check(
    name="sliding_window_mask",
    points=1,
    make_cases=_window_mask_cases,
    implementation="course_lib.sparse.sliding_window_mask",
    outputs=(Output("mask", kind="torch", dtype="bool"),),
    mistakes=(
        Mistake("off by one: a window of w lets query i see keys i - w … i + w, both ends included: "
                "|i - j| <= window, not < window.", like(_window_off_by_one)),
        Mistake("you made it causal (j <= i only): the sliding window looks both ways, |i - j| <= window.",
                like(_window_made_causal)),
        Mistake("the meaning is reversed: True = may attend, i.e. inside the window.", like(_window_reversed)),
        Mistake("the window is 2·window + 1 wide in total, window on each side: |i - j| <= window, not "
                "<= window / 2.", like(_window_halved)),
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
    return [
        Case("query, key, value (1, 10, 8), window=2", (tensor(rng, 1, 10, 8), tensor(rng, 1, 10, 8), tensor(rng, 1, 10, 8), 2)),
        Case("heads: (2, 3, 13, 4), window=3 (T = 13 is a multiple of no block size)",
             (tensor(rng, 2, 3, 13, 4), tensor(rng, 2, 3, 13, 4), tensor(rng, 2, 3, 13, 2), 3)),
        Case("is_causal=True: (2, 12, 4), window=4", (tensor(rng, 2, 12, 4), tensor(rng, 2, 12, 4), tensor(rng, 2, 12, 4), 4),
             {"is_causal": True}),
        Case("window=0: each query attends only itself", (tensor(rng, 1, 6, 4), tensor(rng, 1, 6, 4), tensor(rng, 1, 6, 3), 0)),
        Case("window=10 >= T = 5: every query sees every key (dense attention)",
             (tensor(rng, 2, 5, 4), tensor(rng, 2, 5, 4), tensor(rng, 2, 5, 4), 10)),
        Case("T = 4096, D = 8, window=4 (your peak memory is measured here and at T = 1024)",
             (tensor(rng, 1, 4096, 8), tensor(rng, 1, 4096, 8), tensor(rng, 1, 4096, 8), 4), watch_memory=True),
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


def _attends_whole_key_slice(case, got, expected) -> bool:
    """Does ``got`` equal the unmasked block loop for some block size? Every size up to T on short sequences,
    the usual ones (the window, twice it, 16 … 128) on long ones."""
    query, window = case.args[0], case.args[3]
    length = query.shape[-2]
    sizes = range(2, length + 1) if length <= 32 else (window, 2 * window, max(window, 16), 16, 32, 64, 128)
    return any(like(_blocks_without_window_mask(size))(case, got, expected) for size in sorted(set(sizes)) if size >= 2)


def _memory_grows_linearly(function, case, got) -> str | None:
    """On the long case, run the learner's function at T = 1024 and T = 4096: a band grows 4x, a (T, S) tensor 16x."""
    if not case.watch_memory:
        return None
    query, key, value, window = case.args
    from course_lib.measure import format_bytes, peak_memory

    short = peak_memory(function, query[..., :1024, :], key[..., :1024, :], value[..., :1024, :], window)
    long = peak_memory(function, query, key, value, window)
    ratio = long / max(short, 1)
    if ratio > 8:
        return (f"your function's peak memory grows {ratio:.0f}× from T = 1024 to T = 4096 ({format_bytes(short)} → "
                f"{format_bytes(long)}): it builds a (T, S) tensor (scores or a mask grow 16×). Compute each block "
                f"of queries against only the keys within its window, so memory grows like T·window (4×).")
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
        Mistake("off by one: query i sees keys with |i - j| <= window, both ends included.",
                like(_window_attention_off_by_one)),
        Mistake("is_causal=True is ignored: a causal window keeps only keys j <= i (i - window <= j <= i).",
                _ignores_is_causal),
        Mistake("your causal window looks into the future: keep keys i - window <= j <= i.",
                like(_causal_window_ahead)),
        Mistake("the padding is attended: near the edges the band holds positions outside 0 … T-1 (zeros after "
                "padding), and they got weight. Mask them with -inf like the keys outside the window.",
                like(_zero_padded_keys)),
        Mistake("every query of a block attends the block's whole key slice, so it also sees keys outside its own "
                "window (a query at the start of a block sees up to window + block - 1 keys ahead). The slice is "
                "only what the block needs: inside it, mask each pair with |i - j| > window (and j > i when "
                "is_causal) with -inf before the softmax, i and j being positions in the whole sequence.",
                _attends_whole_key_slice),
        Mistake("the scores are not scaled by 1/√D (D = query.shape[-1]).", like(_window_attention_unscaled)),
    ),
    extra=_memory_grows_linearly,
    what="Equal to dense attention with the window mask (T not a multiple of a block, window ≥ T, causal), and "
         "memory grows like T·window: no (T, S) tensor.",
    library=TORCH_MODULE_ATTENTION,  # attention on each block is allowed: the band and the blocks are the exercise
    memory_probe=_long_window_case,
    memory_advice="Compute each block of queries against only the keys within its window, so that memory grows like T·window.",
)


CHECKS = (check_sliding_window_mask, check_strided_mask, check_sliding_window_attention)
