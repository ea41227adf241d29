"""The checks of lesson 10, the capstone: attention for new tokens on top of a KV cache, a sliding window with
attention sinks, and the GGUF's query/key rows put back in Hugging Face's rotate-half order.

Lesson: notebooks/10_capstone.ipynb, its exercise solutions/10_capstone.ipynb.
Tests: tests/checks/test_l10_capstone.py.
"""
from __future__ import annotations

import functools

from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import COURSE_ATTENTION, TORCH_ATTENTION, attention_where, tensor, torch_shape_error


def _cached_cases(rng):
    return [
        Case("3 new tokens after 4 cached ones: query (2, 3, 4), key (2, 7, 4), value (2, 7, 3)",
             (tensor(rng, 2, 3, 4), tensor(rng, 2, 7, 4), tensor(rng, 2, 7, 3))),
        Case("one new token (a decoding step): query (2, 1, 4), key and value (2, 6, 4): it sees every key",
             (tensor(rng, 2, 1, 4), tensor(rng, 2, 6, 4), tensor(rng, 2, 6, 4))),
        Case("no cache: T = S = 5, ordinary causal attention",
             (tensor(rng, 1, 5, 4), tensor(rng, 1, 5, 4), tensor(rng, 1, 5, 2))),
        Case("batch and heads as in the model: query (2, 3, 4, 8), key and value (2, 3, 9, 8)",
             (tensor(rng, 2, 3, 4, 8), tensor(rng, 2, 3, 9, 8), tensor(rng, 2, 3, 9, 8))),
        Case("float64, 2 new tokens after 10 cached ones, value dim 5",
             (tensor(rng, 2, 6, dtype="float64"), tensor(rng, 12, 6, dtype="float64"),
              tensor(rng, 12, 5, dtype="float64"))),
    ]


def _attend_where(query, key, value, allowed):
    """Attention where new token i sees key j iff ``allowed(i, j, offset)``, offset = S - T the cached tokens."""
    offset = key.shape[-2] - query.shape[-2]
    return attention_where(query, key, value, lambda i, j: allowed(i, j, offset))  # (..., T, Dv)


def _top_left(query, key, value):
    return _attend_where(query, key, value, lambda i, j, offset: j <= i)  # torch's is_causal with T != S


def _every_key(query, key, value):
    return _attend_where(query, key, value, lambda i, j, offset: j >= 0)  # no mask: later new tokens seen too


def _own_key_hidden(query, key, value):
    return _attend_where(query, key, value, lambda i, j, offset: j < i + offset)  # itself not seen


def _one_future_key(query, key, value):
    return _attend_where(query, key, value, lambda i, j, offset: j <= i + offset + 1)  # the next token seen


def _reversed(query, key, value):
    return _attend_where(query, key, value, lambda i, j, offset: j >= i + offset)  # the future, not the past


def _unscaled(query, key, value):
    return _attend_where(query * query.shape[-1] ** 0.5, key, value, lambda i, j, offset: j <= i + offset)


def _value_scaled(query, key, value):
    return _attend_where(query * (query.shape[-1] / value.shape[-1]) ** 0.5, key, value,
                         lambda i, j, offset: j <= i + offset)  # scores / sqrt(Dv) instead of / sqrt(D)


def _multiplied_by_mask(query, key, value):
    import torch

    scores = query @ key.transpose(-2, -1) / query.shape[-1] ** 0.5  # (..., T, S)
    num_queries, num_keys = scores.shape[-2:]
    allowed = torch.ones(num_queries, num_keys, dtype=torch.bool).tril(num_keys - num_queries)  # (T, S)
    return torch.softmax(scores * allowed, dim=-1) @ value  # hidden scores set to 0, not -inf: still weighted


def _softmax_over_queries(query, key, value):
    import torch

    scores = query @ key.transpose(-2, -1) / query.shape[-1] ** 0.5  # (..., T, S)
    num_queries, num_keys = scores.shape[-2:]
    hidden = ~torch.ones(num_queries, num_keys, dtype=torch.bool).tril(num_keys - num_queries)  # (T, S)
    weights = torch.softmax(scores.masked_fill(hidden, float("-inf")), dim=-2)  # (..., T, S): columns sum to 1
    return weights.nan_to_num(0.0) @ value


def _on_a_cache(simulator):
    """``like(simulator)`` on the cases with a cache and several new tokens, where the alignments differ."""

    def matches(case, got, expected) -> bool:
        num_queries, num_keys = case.args[0].shape[-2], case.args[1].shape[-2]
        return 1 < num_queries < num_keys and like(simulator)(case, got, expected)

    return matches


def _axis_out_of_range(case, error) -> bool:
    return isinstance(error, IndexError) and "Dimension out of range" in str(error)


def _square_mask_error(case, error) -> bool:
    """A (T, T) mask against (T, S) scores: a size mismatch that names both T and S."""
    num_queries, num_keys = case.args[0].shape[-2], case.args[1].shape[-2]
    text = str(error)
    return num_queries != num_keys and f"({num_queries})" in text and f"({num_keys})" in text


check_cached_attention = Check(
    name="cached_attention",
    points=3,
    make_cases=_cached_cases,
    implementation="course_lib.llama.model.cached_attention",
    outputs=(Output("output", kind="torch"),),
    mistakes=(
        Mistake("this is the top-left causal alignment, torch's is_causal=True: new token i sees keys 0..i, the "
                "start of the cache. Here the T new tokens are the last T of the S positions, so new token i, at "
                "position S - T + i, sees keys j <= S - T + i: the mask aligned bottom-right (as flash-attn >= 2.1 "
                "and Hugging Face align it). torch.ones(T, S, dtype=torch.bool).tril(S - T) builds it.",
                _on_a_cache(_top_left)),
        Mistake("every new token sees every key, the later new tokens too: new token i, at position S - T + i, "
                "may only see keys j <= S - T + i. (With one new token that is every key, which is why decoding "
                "one token at a time never shows this.)", _on_a_cache(_every_key)),
        Mistake("each new token must see its own key too: j <= S - T + i, not j < S - T + i.",
                like(_own_key_hidden)),
        Mistake("off by one: new token i sees one key past its own position; the mask is j <= S - T + i "
                "(tril(S - T)), not tril(S - T + 1).", like(_one_future_key)),
        Mistake("the mask is reversed: a new token sees the keys up to its own position (the past), j <= S - T + i; "
                "yours lets it see the keys from its position on.", like(_reversed)),
        Mistake("the scores are not scaled by 1/√D (D = query.shape[-1]).", like(_unscaled)),
        Mistake("the scores are scaled by 1/√Dv, the values' size; the scale is 1/√D, D = query.shape[-1], the size "
                "of the vectors whose dot products the scores are. (In SmolLM2 D = Dv = 64, so the model cannot tell.)",
                like(_value_scaled)),
        Mistake("the mask multiplies the scores: a hidden score becomes 0, not -inf, and softmax still gives it "
                "weight (e^0 = 1). Fill hidden scores with -inf (masked_fill) before the softmax.",
                like(_multiplied_by_mask)),
        Mistake("the softmax runs over the queries (dim=-2): each new token's weights over the keys must sum to 1, "
                "so softmax over the last axis, dim=-1.", like(_softmax_over_queries)),
    ),
    error_hints=(
        (_square_mask_error,
         "The mask is (T, S), T new queries against all S keys, not (T, T): the keys hold the cached tokens and "
         "the new ones."),
        (torch_shape_error,
         "query is (..., T, D) and key (..., S, D) with S >= T: transpose only key's last two axes, "
         "key.transpose(-2, -1), and make the mask (T, S)."),
        (_axis_out_of_range,
         "The inputs may have 2, 3 or 4 axes (..., T, D): count axes from the end, key.transpose(-2, -1) and "
         "query.shape[-2], not transpose(2, 3) or shape[2]."),
    ),
    what="New token i, at position S - T + i, sees keys j <= S - T + i (bottom-right): several new tokens on a "
         "cache, one decoding step, no cache at all, heads, float64.",
    withholds=("course_lib.llama.model.bottom_right_mask", "course_lib.llama.model.torch_attention",
               *COURSE_ATTENTION),
    library=TORCH_ATTENTION,
)


def _window_cases(rng):
    """A window of 3 and 2 sinks in 8 (where no two of the mistakes below agree), no sinks, a window of one token,
    a window wider than the text, more sinks than the window, and a random one."""
    sizes = ((8, 3, 2), (10, 4, 0), (6, 1, 1), (5, 10, 0), (9, 2, 4),
             (int(rng.integers(10, 20)), int(rng.integers(2, 6)), int(rng.integers(1, 4))))
    return [*(Case(f"length={n}, window={window}, sinks={sinks}", (n, window, sinks)) for n, window, sinks in sizes),
            Case("lesson 10's story in SmolLM2: length=494, window=32, sinks=4", (494, 32, 4))]


def _window_where(length, window, sinks, allowed):
    """(T, T) bool: query i sees key j iff ``allowed(i, j, window, sinks)``."""
    import torch

    rows, cols = torch.arange(length)[:, None], torch.arange(length)[None, :]  # (T, 1), (1, T)
    return allowed(rows, cols, window, sinks)  # (T, T)


def _window_simulator(allowed):
    return lambda length, window, sinks: _window_where(length, window, sinks, allowed)


_lesson_07_window = _window_simulator(lambda i, j, w, s: ((j <= i) & (j >= i - w)) | ((j < s) & (j <= i)))
_sinks_ahead = _window_simulator(lambda i, j, w, s: ((j <= i) & (j > i - w)) | (j < s))
_no_sinks = _window_simulator(lambda i, j, w, s: (j <= i) & (j > i - w))
_window_both_ways = _window_simulator(lambda i, j, w, s: ((i - j).abs() < w) | ((j < s) & (j <= i)))
_own_token_left_out = _window_simulator(lambda i, j, w, s: ((j < i) & (j >= i - w)) | ((j < s) & (j < i)))
_one_sink_too_many = _window_simulator(lambda i, j, w, s: ((j <= i) & (j > i - w)) | ((j <= s) & (j <= i)))
_window_reversed = _window_simulator(lambda i, j, w, s: ~(((j <= i) & (j > i - w)) | ((j < s) & (j <= i))))


check_window_with_sinks_mask = Check(
    name="window_with_sinks_mask",
    points=2,
    make_cases=_window_cases,
    implementation="course_lib.llama.model.window_with_sinks_mask",
    outputs=(Output("mask", kind="torch", dtype="bool"),),
    mistakes=(
        Mistake("this is lesson 07's causal window, i - window <= j <= i: window + 1 tokens. Here, as in Mistral and "
                "Hugging Face's sliding_window, window counts the tokens a query sees, itself included: "
                "i - window < j <= i.", like(_lesson_07_window)),
        Mistake("the first tokens see sink tokens ahead of them: a sink is a token of the text like any other, seen "
                "only once it has been read. Keep (j < sinks) & (j <= i).", like(_sinks_ahead)),
        Mistake("the sinks are missing: besides its window, every token also sees the first `sinks` tokens of the "
                "text (those before it).", like(_no_sinks)),
        Mistake("your window looks ahead: the model is causal, so token i sees only keys j <= i, the window - 1 "
                "before it and itself.", like(_window_both_ways)),
        Mistake("each token must see itself: the window is the `window` latest tokens up to and including i "
                "(i - window < j <= i), not the ones before it.", like(_own_token_left_out)),
        Mistake("the meaning is reversed: True = may attend (inside the window, or a sink).", like(_window_reversed)),
        Mistake("one sink too many: the first `sinks` tokens are j = 0 .. sinks - 1, so j < sinks, not j <= sinks.",
                like(_one_sink_too_many)),
    ),
    what="Boolean (T, T): token i sees keys i - window < j <= i and the first `sinks` tokens up to itself; "
         "windows of one token and wider than the text, no sinks, more sinks than the window, and lesson 10's "
         "story with a window of 32 and 4 sinks.",
    withholds=("course_lib.sparse.sliding_window_mask", "course_lib.llama.model.bottom_right_mask"),
)


def _rows(rng, heads, head_dim, columns, dtype="float32"):
    """Rows (heads * head_dim, columns) whose values tell every row apart (a row index plus noise)."""
    import torch

    index = torch.arange(heads * head_dim, dtype=getattr(torch, dtype))[:, None]  # (rows, 1)
    return index + 0.01 * tensor(rng, heads * head_dim, columns, dtype=dtype)  # (rows, columns)


def _reorder_cases(rng):
    return [
        Case("2 heads of 6 features, 4 inputs: (12, 4)", (_rows(rng, 2, 6, 4), 2)),
        Case("3 heads of 8 features, 6 inputs: (24, 6)", (_rows(rng, 3, 8, 6), 3)),
        Case("1 head of 10 features, 2 inputs: (10, 2)", (_rows(rng, 1, 10, 2), 1)),
        Case("rows of SmolLM2's size: 3 heads of 64 features, 576 inputs, float64",
             (_rows(rng, 3, 64, 576, dtype="float64"), 3)),
        *_smollm2_cases(),
    ]


def _smollm2_cases():
    """SmolLM2's own query and key rows of layer 0, as the GGUF stores them, when the model is on this machine."""
    rows = _smollm2_rows()
    return [Case(f"SmolLM2's layer 0 {what} rows from the GGUF: {heads} heads, shape ({heads * 64}, 576)",
                 (rows[name].clone(), heads))  # a copy per case: a learner's in-place edit must not last
            for what, name, heads in (("key", "blk.0.attn_k.weight", 3), ("query", "blk.0.attn_q.weight", 9))
            if name in rows]


@functools.lru_cache(maxsize=1)
def _smollm2_rows() -> dict:
    from course_lib.llama import files, weights

    try:
        path = files.model_path()
    except FileNotFoundError:
        return {}
    return weights.read_tensors(path, ("blk.0.attn_k.weight", "blk.0.attn_q.weight"))  # about 2 s, once


def _llama_cpp_permute(weight, num_heads):
    """What llama.cpp's converter does (Hugging Face -> GGUF), applied once more instead of undone."""
    rows, columns = weight.shape
    return weight.reshape(num_heads, 2, rows // num_heads // 2, columns).transpose(1, 2).reshape(rows, columns)


def _across_heads(weight, num_heads):
    rows, columns = weight.shape
    return weight.reshape(rows // 2, 2, columns).transpose(0, 1).reshape(rows, columns)  # every head at once


def _columns_reordered(weight, num_heads):
    rows, columns = weight.shape
    return weight.reshape(rows, columns // 2, 2).transpose(1, 2).reshape(rows, columns)  # the inputs moved


def _unchanged(weight, num_heads):
    return weight


def _second_members_first(weight, num_heads):
    rows, columns = weight.shape
    pairs = weight.reshape(num_heads, rows // num_heads // 2, 2, columns)  # (H, D/2, 2, in)
    return pairs.flip(2).transpose(1, 2).reshape(rows, columns)  # the second members of the pairs first


def _view_after_transpose(case, error) -> bool:
    return "view size is not compatible" in str(error)


check_rotate_half_order = Check(
    name="rotate_half_order",
    points=2,
    make_cases=_reorder_cases,
    implementation="course_lib.llama.weights.rotate_half_order",
    outputs=(Output("reordered", kind="torch"),),
    mistakes=(
        Mistake("this is llama.cpp's own permutation (its converter's permute, which turns Hugging Face's order into "
                "the GGUF's), applied once more instead of undone: within each head, the GGUF's row 2i + k must go "
                "to row i + k·D/2. reshape(H, D/2, 2, in) then swap the two middle axes.", like(_llama_cpp_permute)),
        Mistake("you reordered the pairs across the whole matrix; each head's D rows are reordered on their own, "
                "so first split the rows into heads: reshape(num_heads, D/2, 2, in).", like(_across_heads)),
        Mistake("you reordered the columns (the model's input features); RoPE pairs the output features, the rows "
                "(heads * D, in) of the query and key projections.", like(_columns_reordered)),
        Mistake("your answer equals the input: no row moved (was D computed from the columns, or the reordering's "
                "result not returned?). The rows are still in the GGUF's interleaved order, pair members (2i, 2i + 1) "
                "side by side; Hugging Face's order puts every head's first members first (row i) and the second ones "
                "after them (row i + D/2).", like(_unchanged)),
        Mistake("the halves are swapped: each head must start with the first members of its pairs (the GGUF's rows "
                "0, 2, 4, ...) and end with the second members (1, 3, 5, ...), not the other way round.",
                like(_second_members_first)),
    ),
    error_hints=(
        (_view_after_transpose,
         "After transpose the tensor is not contiguous in memory, so .view cannot merge its axes: use .reshape "
         "(or .contiguous().view)."),
    ),
    what="Each head's rows from the GGUF's interleaved pairs to Hugging Face's rotate-half order: 1, 2 and 3 "
         "heads, float64, and SmolLM2's own layer-0 query and key rows as its GGUF stores them.",
    withholds=("course_lib.llama.model.in_rotate_half_layout",),
)


CHECKS = (check_cached_attention, check_window_with_sinks_mask, check_rotate_half_order)
