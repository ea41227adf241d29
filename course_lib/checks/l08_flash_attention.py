"""The checks of lesson 08, flash attention: the online softmax update and tiled flash attention.

Lesson: notebooks/08_flash_attention.ipynb, its exercise solutions/08_flash_attention.ipynb.
Tests: tests/checks/test_l08_flash_attention.py.
"""
from __future__ import annotations

from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import (COURSE_ATTENTION, TORCH_ATTENTION, attention_where, long_inputs, tensor,
                                       torch_shape_error)
from course_lib.measure import largest_intermediate


def _online_state(rng, rows: tuple, num_keys: int, value_dim: int, dtype: str = "float64"):
    """A running state (m, l, out) after one block of ``num_keys`` keys, made with the course's update."""
    from course_lib import flash

    scores, values = tensor(rng, *rows, num_keys, dtype=dtype), tensor(rng, num_keys, value_dim, dtype=dtype)
    start = flash.online_softmax_start(scores[..., :1], value_dim)
    return flash.online_softmax_update(*start, scores, values)


def _online_cases(rng):
    import torch

    from course_lib import flash

    def t(*shape):
        return tensor(rng, *shape, dtype="float64")

    fresh = flash.online_softmax_start(torch.zeros(3, 1, dtype=torch.float64), 2)  # m = -inf, l = 0, out = 0
    state = _online_state(rng, (3,), 4, 2)
    high = t(3, 4) + 3  # (T, Sb) scores above everything so far: the maximum grows
    low = t(3, 4) - 6  # scores below the maximum: m stays
    masked = torch.full((3, 4), float("-inf"), dtype=torch.float64)
    partly = t(3, 4)
    partly[1] = float("-inf")  # row 1 sees only masked keys in this block
    heads = _online_state(rng, (2, 3, 4), 6, 5)
    single = _online_state(rng, (2, 3), 4, 3, dtype="float32")
    return [
        Case("the first block, from the start state m = -inf, l = 0, out = 0 (3 rows, 4 keys, Dv = 2)",
             (*fresh, t(3, 4), t(4, 2))),
        Case("a block whose scores raise the maximum: the old l and out must shrink by exp(m_old - m_new)",
             (*state, high, t(4, 2))),
        Case("a block whose scores stay below the maximum: m does not change", (*state, low, t(4, 2))),
        Case("a fully masked first block (all scores -inf): no NaN, the state stays m = -inf, l = 0, out = 0",
             (*fresh, masked, t(4, 2))),
        Case("a block where one row's keys are all masked (-inf), after an earlier block",
             (*state, partly, t(4, 2))),
        Case("batch and heads: rows (2, 3, 4), a block of 6 keys, Dv = 5",
             (*heads, t(2, 3, 4, 6) + 1, t(2, 3, 6, 5))),
        Case("float32, rows (2, 3)", (*single, tensor(rng, 2, 3, 4, dtype="float32"), tensor(rng, 4, 3, dtype="float32"))),
    ]


# The online softmax update with one mistake each. Most share the right first half of the update: the new maximum,
# the shift (0 where the maximum is still -inf, so that exp gives 0, not NaN) and the block's exponentials.
def _new_maximum_and_weights(m, scores):
    m_new = m.maximum(scores.amax(dim=-1))  # (..., T)
    shift = m_new.masked_fill(m_new.isinf(), 0.0)  # (..., T)
    weights = (scores - shift.unsqueeze(-1)).exp()  # (..., T, Sb)
    return m_new, shift, weights


def _out_not_rescaled(m, l, out, scores, values):
    m_new, shift, weights = _new_maximum_and_weights(m, scores)
    rescale = (m - shift).exp()  # (..., T)
    return m_new, rescale * l + weights.sum(-1), out + weights @ values  # out keeps the old maximum's scale


def _l_not_rescaled(m, l, out, scores, values):
    m_new, shift, weights = _new_maximum_and_weights(m, scores)
    rescale = (m - shift).exp()  # (..., T)
    return m_new, l + weights.sum(-1), rescale.unsqueeze(-1) * out + weights @ values  # l keeps the old scale


def _out_divided_by_l_each_block(m, l, out, scores, values):
    m_new, shift, weights = _new_maximum_and_weights(m, scores)
    rescale = (m - shift).exp()  # (..., T)
    l_new = rescale * l + weights.sum(-1)  # (..., T)
    out_new = rescale.unsqueeze(-1) * out + weights @ values  # (..., T, Dv)
    return m_new, l_new, out_new / l_new.unsqueeze(-1)  # an average, where the next block needs a sum


def _maximum_never_updated(m, l, out, scores, values):
    shift = m.masked_fill(m.isinf(), 0.0)  # (..., T): the old maximum, never raised by this block
    rescale = (m - shift).exp()  # (..., T)
    weights = (scores - shift.unsqueeze(-1)).exp()  # (..., T, Sb)
    return m, rescale * l + weights.sum(-1), rescale.unsqueeze(-1) * out + weights @ values


def _shift_not_guarded(m, l, out, scores, values):
    m_new = m.maximum(scores.amax(dim=-1))  # (..., T)
    rescale = (m - m_new).exp()  # (..., T): NaN where m = m_new = -inf
    weights = (scores - m_new.unsqueeze(-1)).exp()  # (..., T, Sb): NaN in a row of -inf
    return m_new, rescale * l + weights.sum(-1), rescale.unsqueeze(-1) * out + weights @ values


def _rescale_upside_down(m, l, out, scores, values):
    m_new, shift, weights = _new_maximum_and_weights(m, scores)
    rescale = (shift - m).exp()  # (..., T): exp(m_new - m) >= 1
    return m_new, rescale * l + weights.sum(-1), rescale.unsqueeze(-1) * out + weights @ values


def _maximum_of_the_whole_block(m, l, out, scores, values):
    m_new = m.maximum(scores.amax())  # (..., T): one maximum for every row of the block
    shift = m_new.masked_fill(m_new.isinf(), 0.0)  # (..., T)
    rescale = (m - shift).exp()  # (..., T)
    weights = (scores - shift.unsqueeze(-1)).exp()  # (..., T, Sb)
    return m_new, rescale * l + weights.sum(-1), rescale.unsqueeze(-1) * out + weights @ values


_RESCALE_HINT = "when the maximum grows from m to m_new, multiply the old l and out by exp(m - m_new)"

check_online_softmax_update = Check(
    name="online_softmax_update",
    points=2,
    make_cases=_online_cases,
    implementation="course_lib.flash.online_softmax_update",
    outputs=(Output("m", kind="torch"), Output("l", kind="torch"), Output("out", kind="torch")),
    mistakes=(
        Mistake(f"out is not rescaled: {_RESCALE_HINT} (both, not only l).", like(_out_not_rescaled)),
        Mistake(f"l is not rescaled: {_RESCALE_HINT} (both, not only out).", like(_l_not_rescaled)),
        Mistake("out is already divided by l: keep the running sum unnormalised and divide once at the end "
                "(online_softmax_finish); otherwise the next block adds to an average, not a sum.",
                like(_out_divided_by_l_each_block)),
        Mistake("m never changes: the new maximum is the larger of m and this block's largest score, "
                "torch.maximum(m, scores_block.amax(dim=-1)).", like(_maximum_never_updated)),
        Mistake("NaN for a row that has seen only masked keys: there m_new = -inf and exp(-inf - (-inf)) is NaN. "
                "Subtract 0 instead of m_new where m_new is -inf (torch.where(torch.isinf(m_new), 0, m_new)).",
                like(_shift_not_guarded)),
        Mistake("m is the maximum of the whole block, one number for all its rows: each query row has its own "
                "maximum, scores_block.amax(dim=-1) (one per row), and its own running state.",
                like(_maximum_of_the_whole_block)),
        Mistake("the rescaling factor is upside down: the old sums were computed relative to m and must now be "
                "relative to m_new, so multiply by exp(m - m_new) <= 1.", like(_rescale_upside_down)),
    ),
    what="Keeps m, l and the unnormalised out exact block by block: growing and steady maxima, fully masked "
         "rows without NaN, batches and heads, float32 and float64, without changing its inputs.",
    withholds=("course_lib.flash.online_softmax_steps",),
)


def _flash_cases(rng):
    def sharp(*shape):
        return tensor(rng, *shape, dtype="float64") * 4

    return [
        Case("T = S = 10 with block_size = 4 (T not a multiple of the block), D = 3, value dim Dv = 5",
             (tensor(rng, 10, 3), tensor(rng, 10, 3), tensor(rng, 10, 5)), {"block_size": 4}),
        Case("batch and heads (2, 3), T = 12 queries, S = 7 keys, block_size = 5",
             (tensor(rng, 2, 3, 12, 4), tensor(rng, 2, 3, 7, 4), tensor(rng, 2, 3, 7, 4)), {"block_size": 5}),
        Case("is_causal=True, T = S = 9, block_size = 4 (tiles above the diagonal skipped, the diagonal ones masked)",
             (tensor(rng, 1, 9, 4), tensor(rng, 1, 9, 4), tensor(rng, 1, 9, 3)), {"is_causal": True, "block_size": 4}),
        Case("is_causal=True with T = 5 queries and S = 9 keys (query i sees keys j <= i)",
             (tensor(rng, 5, 4), tensor(rng, 9, 4), tensor(rng, 9, 2)), {"is_causal": True, "block_size": 3}),
        Case("block_size = 16 >= T = 6 (one block)", (tensor(rng, 6, 4), tensor(rng, 6, 4), tensor(rng, 6, 4)),
             {"block_size": 16}),
        Case("block_size = 1", (tensor(rng, 5, 2), tensor(rng, 7, 2), tensor(rng, 7, 3)), {"block_size": 1}),
        Case("float64 with large scores (a sharp softmax), block_size = 3",
             (sharp(2, 8, 4), sharp(2, 8, 4), sharp(2, 8, 4)), {"block_size": 3}),
        Case("(1, 2, 96, 8) with block_size = 16: no (96, 96) tensor may be built (scores, weights or mask)",
             (tensor(rng, 1, 2, 96, 8), tensor(rng, 1, 2, 96, 8), tensor(rng, 1, 2, 96, 8)), {"block_size": 16},
             watch_memory=True),
        _future_tiles_case(rng),
    ]


FUTURE_KEYS = 8  # in the future-tiles case, the keys from here on lie in tiles above the diagonal for every query


def _future_tiles_case(rng) -> Case:
    """Causal, T = 5 queries, S = 12 keys, blocks of 4: keys 8..11 are a tile in every query's future. They hold
    NaN: a loop that skips the tiles above the diagonal never reads them; one that computes and masks them
    multiplies NaN values by weight 0, and 0 × NaN is NaN."""
    key, value = tensor(rng, 2, 12, 4), tensor(rng, 2, 12, 3)  # (B, S, D), (B, S, Dv)
    key[..., FUTURE_KEYS:, :] = float("nan")
    value[..., FUTURE_KEYS:, :] = float("nan")
    return Case(f"is_causal=True, T = 5 queries, S = 12 keys, block_size = 4: keys {FUTURE_KEYS}..11 are in every "
                f"query's future and hold NaN here (a tile above the diagonal must be skipped, never read)",
                (tensor(rng, 2, 5, 4), key, value), {"is_causal": True, "block_size": 4})


def _dense_attention(query, key, value, is_causal=False, block_size=64):
    """The answer: dense attention (lesson 03). The NaN keys of the future-tiles case get weight 0 whatever their
    values, so they are read as 0 here (dense attention multiplies every value by its weight, even 0 by NaN)."""
    from course_lib.attention import scaled_dot_product_attention

    return scaled_dot_product_attention(query, key.nan_to_num(), value.nan_to_num(), is_causal=is_causal)[0]


# What a tiled version with one mistake computes; dense where the mistake is not in the tiling.

def _dense_attention_unscaled(query, key, value, is_causal=False, block_size=64):
    from course_lib.attention import scaled_dot_product_attention

    return scaled_dot_product_attention(query, key, value, is_causal=is_causal, scale=1.0)[0]  # (..., T, Dv): q·k


def _dense_attention_ignoring_is_causal(query, key, value, is_causal=False, block_size=64):
    from course_lib.attention import scaled_dot_product_attention

    return scaled_dot_product_attention(query, key, value)[0]  # (..., T, Dv): every key, whatever is_causal says


def _tiles_without_diagonal_mask(query, key, value, is_causal=False, block_size=64):
    """Tiled attention that skips the tiles above the diagonal but forgets to mask inside the diagonal ones."""
    import torch

    from course_lib import flash

    num_keys, outputs = key.shape[-2], []
    for q_start in range(0, query.shape[-2], block_size):
        q_block = query[..., q_start:q_start + block_size, :]  # (..., Bq, D)
        seen = min(num_keys, q_start + q_block.shape[-2]) if is_causal else num_keys  # later tiles: all future
        state = flash.online_softmax_start(q_block, value.shape[-1])
        for k_start in range(0, seen, block_size):
            k_end = min(k_start + block_size, num_keys)
            scores = q_block @ key[..., k_start:k_end, :].transpose(-2, -1) * query.shape[-1] ** -0.5  # (..., Bq, Bk)
            state = flash.online_softmax_update(*state, scores, value[..., k_start:k_end, :])  # no masked_fill
        outputs.append(flash.online_softmax_finish(state[1], state[2]))  # (..., Bq, Dv)
    return torch.cat(outputs, dim=-2)  # (..., T, Dv)


def _causal_variant(allowed):
    """A mistake in the causal mask, as dense attention with that mask (and every key when not causal)."""

    def attend(query, key, value, is_causal=False, block_size=64):
        if not is_causal:
            return _dense_attention(query, key, value)
        return attention_where(query, key, value, lambda i, j: allowed(i, j, block_size,
                                                                                  key.shape[-2] - query.shape[-2]))

    return attend


_bottom_right = _causal_variant(lambda i, j, block, offset: j <= i + offset)  # the last query sees every key
_reversed_mask = _causal_variant(lambda i, j, block, offset: j >= i)  # the future and itself, not the past
_diagonal_tiles_skipped = _causal_variant(lambda i, j, block, offset: j // block < i // block)  # earlier tiles only
_tile_local_mask = _causal_variant(lambda i, j, block, offset: (j // block <= i // block) & (j % block <= i % block))


def _stops_at_the_last_query(i, j, block, offset):
    """Key blocks kept while k_start < the query block's last query (>= where > was due): the block that
    starts at a query block's last query, its own key among them, is dropped."""
    last_query = ((i // block + 1) * block).clamp(max=i.shape[0]) - 1  # (T, 1)
    return (j <= i) & (j // block * block < last_query)


_skip_test_off_by_one = _causal_variant(_stops_at_the_last_query)


def _last_key_block_dropped(query, key, value, is_causal=False, block_size=64):
    whole = key.shape[-2] // block_size * block_size  # the keys of the full blocks only
    if whole == 0:
        return query.new_zeros(*query.shape[:-1], value.shape[-1])  # (..., T, Dv): no key at all
    return _dense_attention(query, key[..., :whole, :], value[..., :whole, :], is_causal)


def _on_causal_cases(simulator, causal: bool = True):
    """``like(simulator)``, on the cases with ``is_causal`` as given only (the others cannot show the mistake)."""
    def matches(case, got, expected) -> bool:
        return bool(case.kwargs.get("is_causal")) == causal and like(simulator)(case, got, expected)

    return matches


def _reads_future_tiles(case, got, expected) -> bool:
    """NaN in the answer on the case whose future tiles hold NaN: a tile above the diagonal was computed."""
    import torch

    value = case.args[2]
    return (bool(case.kwargs.get("is_causal")) and isinstance(got, torch.Tensor) and bool(value.isnan().any())
            and bool(got.isnan().any()))


def _value_dim_error(case, error) -> bool:
    """A size mismatch between D and Dv: the state's out was made as wide as the queries, not the values."""
    import re

    sizes = re.search(r"tensor a \((\d+)\) must match the size of tensor b \((\d+)\)", str(error))
    query_dim, value_dim = case.args[0].shape[-1], case.args[2].shape[-1]
    return (sizes is not None and query_dim != value_dim
            and {int(sizes.group(1)), int(sizes.group(2))} == {query_dim, value_dim})


def _no_full_score_matrix(function, case, got) -> str | None:
    """For the large case: no tensor inside the call may be as big as (a quarter of) the (B, H, T, S) scores."""
    if not case.watch_memory:
        return None
    query, key = case.args[0], case.args[1]
    full = query.shape[:-1].numel() * key.shape[-2]  # B * H * T * S
    largest = largest_intermediate(function, *case.args, **case.kwargs)
    if largest >= full // 4:
        return (f"a tensor of {largest} numbers was built inside your function; the full (B, H, T, S) scores "
                f"hold {full}. Nothing that large may exist, neither scores nor weights nor a (T, S) mask: flash "
                f"attention holds one (block_size, block_size) tile of scores per head at a time (loop over blocks "
                f"of queries and, inside, over blocks of keys) and builds each tile's causal mask from its "
                f"positions.")
    return None


def _long_flash_case(rng):
    return Case("T = S = 4096, block_size = 64 (peak memory measured)", long_inputs(rng), {"block_size": 64})


check_flash_attention = Check(
    name="flash_attention",
    points=3,
    make_cases=_flash_cases,
    reference=_dense_attention,  # what the tiles must add up to, not the course's own tiling
    implementation="course_lib.flash.flash_attention",
    outputs=(Output("output", kind="torch"),),
    mistakes=(
        Mistake(f"your answer has NaN: your code read keys {FUTURE_KEYS}..11, which lie in every query's future and "
                "hold NaN here (0 × NaN is NaN, even at weight 0). The tiles above the causal diagonal must be "
                "skipped, as the exercise asks, not computed and masked: stop the key loop at the first key block "
                "that starts after the query block's last query (if k_start > q_start + Bq - 1: break). That "
                "saves about half the work.",
                _reads_future_tiles),
        Mistake("the scores are not scaled by 1/√D (D = query.shape[-1]).", like(_dense_attention_unscaled)),
        Mistake("is_causal=True is ignored: query i may only see keys j <= i.",
                _on_causal_cases(_dense_attention_ignoring_is_causal)),
        Mistake("this is the bottom-right causal convention (flash-attn >= 2.1, Hugging Face): with T < S the "
                "last query sees every key, as a new token does against a KV cache (lesson 06). This exercise uses "
                "top-left, as torch's is_causal and lesson 03's sdpa do: query i sees keys j <= i, whatever S.",
                _on_causal_cases(_bottom_right)),
        Mistake("the causal mask is reversed: query i sees keys j <= i (the past and itself); yours lets it see "
                "j >= i. Inside a tile, mask the keys with cols > rows.",
                _on_causal_cases(_reversed_mask)),
        Mistake("the tiles on the diagonal are skipped: a key block that starts at or before the query block's "
                "last query holds keys j <= i, the diagonal's own among them. Skip only the key blocks that start "
                "after the last query, k_start > q_start + Bq - 1, and mask inside the others.",
                _on_causal_cases(_diagonal_tiles_skipped)),
        Mistake("the causal mask inside a tile compares the tile's own indices (0..block-1): compare positions in "
                "the sequence, rows = q_start + arange(Bq) and cols = k_start + arange(Bk), so that a tile below "
                "the diagonal keeps every key.",
                _on_causal_cases(_tile_local_mask)),
        Mistake("the skip test drops one tile too many: a key block that starts at the query block's last query "
                "holds that query's own key. Stop only when k_start > q_start + Bq - 1 (>, not >=).",
                _on_causal_cases(_skip_test_off_by_one)),
        Mistake("the last, smaller block of keys is left out: when S is not a multiple of block_size the keys after "
                "the last full block form a shorter block. Loop with range(0, S, block_size) and slice "
                "key[..., start:start + block_size, :] (a slice stops at S by itself).",
                _on_causal_cases(_last_key_block_dropped, causal=False)),
        Mistake("the tiles on the diagonal are not masked: skipping the tiles above the diagonal is not enough, "
                "inside a tile that crosses it set the scores of keys j > i to -inf (masked_fill) before the update.",
                _on_causal_cases(_tiles_without_diagonal_mask)),
    ),
    extra=_no_full_score_matrix,
    error_hints=(
        (_value_dim_error,
         "The output is as wide as the values, Dv = value.shape[-1], which need not equal the queries' D: start "
         "each state with online_softmax_start(q_block, value.shape[-1])."),
        (torch_shape_error,
         "The last block is smaller when T or S is not a multiple of block_size: slice with "
         "x[..., start:start + block_size, :] and take the block's size from the slice, not from block_size."),
    ),
    what="Equal to dense attention for any T, S and block size, causal included, without ever building the "
         "(T, S) scores.",
    withholds=("course_lib.flash.flash_attention_forward", "course_lib.flash.FlashAttentionFunction",
               "course_lib.flash.flash_attention_backward", *COURSE_ATTENTION),
    library=TORCH_ATTENTION,
    memory_probe=_long_flash_case,
    memory_advice=("Flash attention holds one (block_size, block_size) tile of scores per head at a time: loop over "
                   "blocks of queries and, inside, over blocks of keys."),
)


CHECKS = (check_online_softmax_update, check_flash_attention)
