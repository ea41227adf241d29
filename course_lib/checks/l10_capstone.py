"""The checks of lesson 10, the capstone: attention for new tokens on top of a KV cache.

Lesson: notebooks/10_capstone.ipynb, its exercise solutions/10_capstone.ipynb.
Tests: tests/checks/test_l10_capstone.py.
"""
from __future__ import annotations

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


def _on_a_cache(simulator):
    """``like(simulator)`` on the cases with a cache and several new tokens, where the alignments differ."""

    def matches(case, got, expected) -> bool:
        num_queries, num_keys = case.args[0].shape[-2], case.args[1].shape[-2]
        return 1 < num_queries < num_keys and like(simulator)(case, got, expected)

    return matches


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
    ),
    error_hints=(
        (_square_mask_error,
         "The mask is (T, S), T new queries against all S keys, not (T, T): the keys hold the cached tokens and "
         "the new ones."),
        (torch_shape_error,
         "query is (..., T, D) and key (..., S, D) with S >= T: transpose only key's last two axes, "
         "key.transpose(-2, -1), and make the mask (T, S)."),
    ),
    what="New token i, at position S - T + i, sees keys j <= S - T + i (bottom-right): several new tokens on a "
         "cache, one decoding step, no cache at all, heads, float64.",
    withholds=("course_lib.llama.model.bottom_right_mask", "course_lib.llama.model.torch_attention",
               *COURSE_ATTENTION),
    library=TORCH_ATTENTION,
)


CHECKS = (check_cached_attention,)
