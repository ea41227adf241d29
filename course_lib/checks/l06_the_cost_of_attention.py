"""The checks of lesson 06, the cost of attention: counting FLOPs and KV-cache bytes, and grouped-query attention.

Lesson: notebooks/06_the_cost_of_attention.ipynb, its exercise solutions/06_the_cost_of_attention.ipynb.
Tests: tests/checks/test_l06_the_cost_of_attention.py.
"""
from __future__ import annotations

from course_lib import calling
from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import TORCH_MODULE_ATTENTION, tensor, torch_shape_error


# attention_flops -------------------------------------------------------------------------------------------

def _flops_cases(rng):
    # the generation step comes before the cross-attention case: with 2 heads there, a missing head count
    # (4·T·S·D) equals half the count (2·T·S·D·H), and a divided one (4·T·S·D / H) equals T·S·D·H
    return [
        Case("T = S = 1024, D = 64, one head", (1024, 1024, 64, 1)),
        Case("T = 1 query (one generation step), S = 4096 keys, D = 128, 32 heads", (1, 4096, 128, 32)),
        Case("T = 10 queries, S = 30 keys (cross-attention), D = 8, 2 heads", (10, 30, 8, 2)),
        Case("random sizes", (int(rng.integers(2, 500)), int(rng.integers(2, 500)), int(rng.integers(2, 128)),
                              int(rng.integers(2, 16)))),
    ]


def _flops_of_one_product(num_queries, num_keys, head_dim, num_heads):
    """2·T·S·D per head: one of the two products (or both, counted as multiply-adds)."""
    return 2 * num_queries * num_keys * head_dim * num_heads


def _multiplies_of_one_product(num_queries, num_keys, head_dim, num_heads):
    """T·S·D per head: the multiplies of one product, without its adds and without the other product."""
    return num_queries * num_keys * head_dim * num_heads


def _flops_of_one_head(num_queries, num_keys, head_dim, num_heads):
    """4·T·S·D: one head's count, the number of heads left out."""
    return 4 * num_queries * num_keys * head_dim


def _flops_with_queries_squared(num_queries, num_keys, head_dim, num_heads):
    """4·T²·D·H: the scores taken as T × T."""
    return 4 * num_queries * num_queries * head_dim * num_heads


def _flops_with_keys_squared(num_queries, num_keys, head_dim, num_heads):
    """4·S²·D·H: the scores taken as S × S."""
    return 4 * num_keys * num_keys * head_dim * num_heads


def _length_squared(case, got, expected) -> bool:
    """A case with T ≠ S, answered as if the scores were T × T or S × S."""
    return case.args[0] != case.args[1] and (like(_flops_with_queries_squared)(case, got, expected)
                                             or like(_flops_with_keys_squared)(case, got, expected))


def _flops_divided_by_heads(num_queries, num_keys, head_dim, num_heads):
    """4·T·S·D / H: the heads' count shared out, as if D were the model dimension."""
    return 4 * num_queries * num_keys * head_dim / num_heads


def _in_larger_units(case, got, expected) -> bool:
    """The count divided by 1024, 1024², 1024³ or by 1000, 10⁶, 10⁹: KiB, MiB, GiB (kB, MB, GB), or kFLOP,
    MFLOP, GFLOP, where a plain number was asked for."""
    try:
        got, expected = float(got), float(expected)
    except (TypeError, ValueError):
        return False
    return got != 0 and any(abs(expected / got / unit - 1) < 1e-6 for unit in (2**10, 2**20, 2**30, 2**40, 1e3, 1e6,
                                                                                 1e9, 1e12))


def _projections_added(case, got, expected) -> bool:
    """The four E × E projections counted too (E = H·D): 2·E² FLOPs per query for the query and output
    projections, per key for the key and value projections (or 8·T·E² for all four over the queries)."""
    num_queries, num_keys, head_dim, num_heads = case.args
    try:
        difference = float(got) - float(expected)
    except (TypeError, ValueError):
        return False
    squared = (head_dim * num_heads) ** 2  # E²
    return any(abs(difference - projections) < 0.5 for projections in (
        4 * squared * (num_queries + num_keys), 8 * squared * num_queries, 8 * squared * num_keys))


def _per_score_extra(case, got, expected) -> int | None:
    """The learner's count minus 4·T·S·D·H, in operations per score (per T·S·H, or per T·S), when that is a
    small whole number: the softmax's or the scaling's few operations per score added, or D − 1 adds per dot
    product instead of D. None otherwise."""
    num_queries, num_keys, head_dim, num_heads = case.args
    try:
        difference = float(got) - float(expected)
    except (TypeError, ValueError):
        return None
    for scores in (num_queries * num_keys * num_heads, num_queries * num_keys):
        extra = difference / scores
        if extra and abs(extra - round(extra)) < 1e-6 and abs(extra) <= 16 and abs(extra) < head_dim:
            return round(extra)
    return None


def _softmax_added(case, got, expected) -> bool:
    """A few operations per score on top of the two products: the softmax (max, subtract, exp, sum, divide)
    or the 1/√D scaling counted."""
    extra = _per_score_extra(case, got, expected)
    return extra is not None and extra > 0


def _one_add_fewer(case, got, expected) -> bool:
    """A few operations per score fewer: a dot product of length D counted as D multiplies and D − 1 adds."""
    extra = _per_score_extra(case, got, expected)
    return extra is not None and extra < 0


check_attention_flops = Check(
    name="attention_flops",
    points=1,
    make_cases=_flops_cases,
    implementation="course_lib.cost.attention_flops",
    call=calling.as_number,
    validate=calling.validate_attention_flops,
    outputs=(Output("flops", dtype="count"),),
    mistakes=(
        Mistake("you have half the count: 4·T·S·D per head counts both matrix products (Q·Kᵀ and weights·V), each "
                "with 2 FLOPs (a multiply and an add) per term. Yours counts one product, or multiply-adds (or halves "
                "the count for a causal mask: this exercise counts full attention, every query against every key).",
                like(_flops_of_one_product)),
        Mistake("you counted T·S·D once per head: each of the two products takes T·S·D multiplies and as many "
                "adds, 4·T·S·D in all.", like(_multiplies_of_one_product)),
        Mistake("the number of heads is missing: every head does its own 4·T·S·D.", like(_flops_of_one_head)),
        Mistake("you used T² (or S²): queries meet keys, so the scores are T·S, which differ in cross-attention "
                "and generation.", _length_squared),
        Mistake("you divided by the number of heads: with the head dimension D given, each head costs 4·T·S·D, "
                "so H heads cost H times as much.", like(_flops_divided_by_heads)),
        Mistake("you counted the projections too (lesson 04's count of a whole layer did): this exercise counts "
                "attention itself, the two products 4·T·S·D per head, without the E × E projections.",
                _projections_added),
        Mistake("your count is in larger units (thousands, millions, GFLOP): return the number of FLOPs itself.",
                _in_larger_units),
        Mistake("you added a few operations per score (the softmax's max, exp, sum and divide, or the 1/√D "
                "scaling): this exercise counts only the two matrix products, 4·T·S·D per head, as the lesson "
                "does; the softmax adds O(T·S), D times fewer, and is left out of the count.", _softmax_added),
        Mistake("you counted a dot product of length D as D multiplies and D − 1 adds: the usual convention, and "
                "this exercise's, is 2 FLOPs per multiply-add, 2·D per dot product, so 4·T·S·D per head.",
                _one_add_fewer),
    ),
    what="4·T·S·D·H: both products, 2 FLOPs per multiply-add, every head, T ≠ S included.",
)


# kv_cache_bytes --------------------------------------------------------------------------------------------

def _kv_cache_cases(rng):
    # the int8 case comes first: with 1 byte per value, counting numbers instead of bytes is right there, and
    # counting only the keys is not. Where bytes_per_value = 2 the two mistakes give the same answer, so only
    # a learner who passed the int8 case can be told that they counted numbers.
    random_sizes = (int(rng.integers(1, 40)), int(rng.integers(1, 9)), int(rng.integers(8, 129)),
                    int(rng.integers(1, 5000)))
    return [
        Case("random sizes, batch_size=3, bytes_per_value=1 (int8)", random_sizes,
             {"batch_size": 3, "bytes_per_value": 1}),
        Case("LLaMA-2-7B: 32 layers, 32 KV heads, head_dim 128, 4096 tokens (float16: 2 bytes by default)",
             (32, 32, 128, 4096)),
        Case("grouped-query: 80 layers, 8 KV heads, head_dim 128, 8192 tokens, batch_size=4",
             (80, 8, 128, 8192), {"batch_size": 4}),
        Case("multi-query in float32: 12 layers, 1 KV head, head_dim 64, 1024 tokens, bytes_per_value=4",
             (12, 1, 64, 1024), {"bytes_per_value": 4}),
    ]


def _numbers_not_bytes(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    """The numbers in the cache, never multiplied by bytes_per_value."""
    return 2 * num_layers * num_kv_heads * head_dim * length * batch_size


def _two_bytes_always(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    """bytes_per_value fixed at 2 (float16), whatever is passed."""
    return 2 * num_layers * num_kv_heads * head_dim * length * batch_size * 2


def _four_bytes_always(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    """bytes_per_value fixed at 4 (float32), whatever is passed."""
    return 2 * num_layers * num_kv_heads * head_dim * length * batch_size * 4


def _one_token_more(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    """The cache of length + 1 tokens: the token about to be generated counted too."""
    return 2 * num_layers * batch_size * num_kv_heads * (length + 1) * head_dim * bytes_per_value


def _bytes_per_value_ignored(case, got, expected) -> bool:
    """A case that passes bytes_per_value, answered with 1, 2 or 4 bytes per value instead."""
    return "bytes_per_value" in case.kwargs and any(
        like(simulator)(case, got, expected) for simulator in (_numbers_not_bytes, _two_bytes_always,
                                                               _four_bytes_always))


def _default_bytes_per_value_wrong(case, got, expected) -> bool:
    """A case that leaves bytes_per_value at its default, answered with 1, 4 or 8 bytes per value: the
    signature's default is not 2."""
    if "bytes_per_value" in case.kwargs:
        return False
    try:
        ratio = float(got) / float(expected)
    except (TypeError, ValueError, ZeroDivisionError):
        return False
    return any(abs(ratio - wrong / 2) < 1e-9 for wrong in (1, 4, 8))


def _keys_only(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    """The keys' bytes (or the values'), not both: the factor 2 missing."""
    return num_layers * num_kv_heads * head_dim * length * batch_size * bytes_per_value


def _one_sequence_only(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    """One sequence's cache, batch_size never multiplied in."""
    return 2 * num_layers * num_kv_heads * head_dim * length * bytes_per_value


def _batch_size_ignored(case, got, expected) -> bool:
    """A case with a batch of several sequences, answered for one."""
    return case.kwargs.get("batch_size", 1) != 1 and like(_one_sequence_only)(case, got, expected)


def _one_layer_only(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    """One layer's cache, num_layers never multiplied in."""
    return 2 * num_kv_heads * head_dim * length * batch_size * bytes_per_value


def _bits_not_bytes(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    """The cache in bits: the bytes multiplied by 8."""
    return 16 * num_layers * num_kv_heads * head_dim * length * batch_size * bytes_per_value


check_kv_cache_bytes = Check(
    name="kv_cache_bytes",
    points=1,
    make_cases=_kv_cache_cases,
    implementation="course_lib.cost.kv_cache_bytes",
    call=calling.as_number,
    validate=calling.validate_kv_cache_bytes,
    outputs=(Output("bytes", dtype="count"),),
    mistakes=(
        Mistake("you count length + 1 tokens: the cache holds a key and a value for each of the `length` tokens "
                "seen so far; the next token's are added when it has been generated.", like(_one_token_more)),
        Mistake("bytes_per_value is ignored (or fixed): multiply by the bytes of one number, 2 for float16, "
                "4 for float32, 1 for int8.", _bytes_per_value_ignored),
        # before 'only the keys': on the float16 cases the two agree, and a learner who counted only the keys
        # has already failed the int8 case, where they do not
        Mistake("you counted numbers, not bytes: multiply by bytes_per_value.", like(_numbers_not_bytes)),
        Mistake("you counted only the keys (or only the values): the cache holds both, a factor 2.",
                like(_keys_only)),
        Mistake("batch_size is ignored: every sequence in the batch has its own cache.", _batch_size_ignored),
        Mistake("the number of layers is missing: every layer keeps its own keys and values.",
                like(_one_layer_only)),
        Mistake("your default bytes_per_value is not 2: the signature is kv_cache_bytes(..., batch_size=1, "
                "bytes_per_value=2), 2 bytes for float16, the usual inference dtype.", _default_bytes_per_value_wrong),
        Mistake("you counted bits: 1 byte = 8 bits, and bytes_per_value is already in bytes.",
                like(_bits_not_bytes)),
        Mistake("you returned the size in larger units (KiB, MiB, GiB, or kB, MB, GB): return the number of "
                "bytes itself, an int; the lesson formats it for reading with measure.format_bytes.",
                _in_larger_units),
    ),
    what="2 (keys and values) · layers · batch · KV heads · tokens · head_dim · bytes per value.",
    withholds=("course_lib.measure.cache_bytes",),
)


# grouped_query_attention -----------------------------------------------------------------------------------

def _gqa_cases(rng):
    import torch

    return [
        Case("query (2, 8, 5, 4) with key and value (2, 2, 5, 4): 4 query heads per KV head",
             (tensor(rng, 2, 8, 5, 4), tensor(rng, 2, 2, 5, 4), tensor(rng, 2, 2, 5, 4))),
        Case("multi-query: query (1, 4, 3, 8), key (1, 1, 6, 8), value (1, 1, 6, 2) (one KV head, S ≠ T)",
             (tensor(rng, 1, 4, 3, 8), tensor(rng, 1, 1, 6, 8), tensor(rng, 1, 1, 6, 2))),
        Case("H = Hkv = 3 (plain multi-head attention): query (2, 3, 4, 4), key and value (2, 3, 4, 4)",
             (tensor(rng, 2, 3, 4, 4), tensor(rng, 2, 3, 4, 4), tensor(rng, 2, 3, 4, 4))),
        Case("query (1, 6, 4, 4), key and value (1, 2, 7, 4): the KV heads differ, so grouping order matters",
             (tensor(rng, 1, 6, 4, 4), tensor(rng, 1, 2, 7, 4) * torch.tensor([1.0, 3.0]).view(1, 2, 1, 1),
              tensor(rng, 1, 2, 7, 4))),
    ]


def _attend_with_kv_heads(query, key, value, spread, scale=None):
    """Attention after ``spread(key or value, groups)`` gives every query head a KV head: the core of the
    simulators below (the right spread is ``repeat_interleave``, the right scale 1/√D)."""
    from course_lib.attention import scaled_dot_product_attention

    groups = query.shape[-3] // key.shape[-3]  # query heads per KV head
    keys, values = spread(key, groups), spread(value, groups)  # (B, H or 1, S, D) each
    return scaled_dot_product_attention(query, keys, values, scale=scale)  # (B, H, T, Dv), (B, H, T, S)


def _interleave(heads, groups):
    return heads.repeat_interleave(groups, dim=1)  # (B, H, S, D): KV heads 0, 0, 1, 1, … (right)


def _unscaled(query, key, value):
    """The scores never divided by √D."""
    return _attend_with_kv_heads(query, key, value, _interleave, scale=1.0)


def _scaled_by_one_over_dim(query, key, value):
    """The scores divided by D instead of √D."""
    return _attend_with_kv_heads(query, key, value, _interleave, scale=1.0 / query.shape[-1])


def _scaled_by_value_dim(query, key, value):
    """The scores divided by √Dv, the values' size, instead of √D."""
    return _attend_with_kv_heads(query, key, value, _interleave, scale=value.shape[-1] ** -0.5)


def _causal(query, key, value):
    """A causal mask applied (torch's is_causal, top-left): this attention has none."""
    from course_lib.attention import scaled_dot_product_attention

    groups = query.shape[1] // key.shape[1]
    return scaled_dot_product_attention(query, _interleave(key, groups), _interleave(value, groups), is_causal=True)


def _softmax_over_queries(query, key, value):
    """The softmax taken over the queries (dim −2) instead of over the keys."""
    import torch

    keys, values = _interleave(key, query.shape[1] // key.shape[1]), _interleave(value, query.shape[1] // key.shape[1])
    scores = query @ keys.transpose(-2, -1) / query.shape[-1] ** 0.5  # (B, H, T, S)
    weights = torch.softmax(scores, dim=-2)  # (B, H, T, S): each column sums to 1
    return weights @ values, weights  # (B, H, T, Dv), (B, H, T, S)


def _tile(heads, groups):
    return heads.repeat(1, groups, 1, 1)  # (B, H, S, D): KV heads 0, 1, 0, 1, … (torch's .repeat)


def _kv_heads_tiled(query, key, value):
    """Query head h given KV head h % Hkv (tiled) instead of h // (H / Hkv)."""
    return _attend_with_kv_heads(query, key, value, _tile)


def _first_head(heads, groups):
    return heads[:, :1]  # (B, 1, S, D), broadcast to every query head


def _first_kv_head_only(query, key, value):
    """Every query head given KV head 0."""
    return _attend_with_kv_heads(query, key, value, _first_head)


check_grouped_query_attention = Check(
    name="grouped_query_attention",
    points=2,
    make_cases=_gqa_cases,
    implementation="course_lib.multihead.grouped_query_attention",
    outputs=(Output("output", kind="torch"), Output("weights", kind="torch")),
    mistakes=(
        Mistake("query heads are matched to the wrong KV heads: head h must use KV head h // (H / Hkv), so "
                "consecutive query heads share one (torch's enable_gqa does the same); yours uses KV head h % Hkv "
                "(0, 1, 0, 1, …), which is what .repeat(...), or a view of the heads as (Hkv, G) in the wrong "
                "order, gives. Use .repeat_interleave(H // Hkv, dim=1) (0, 0, 1, 1, …).",
                like(_kv_heads_tiled)),
        Mistake("every query head uses the first KV head: the Hkv key/value heads must be shared out, "
                "H // Hkv query heads per KV head.", like(_first_kv_head_only)),
        Mistake("you applied a causal mask: this grouped-query attention has no mask, every query sees every key "
                "(the lesson's decoding step needs none either).", like(_causal)),
        Mistake("the scores are not scaled: divide them by √D (D = query.shape[-1]) before the softmax, as "
                "scaled_dot_product_attention does.", like(_unscaled)),
        Mistake("you divide the scores by D: the scale is 1/√D.", like(_scaled_by_one_over_dim)),
        Mistake("you scale by the values' size: the scale is 1/√D with D the size of queries and keys "
                "(query.shape[-1]); the values' size Dv may differ.", like(_scaled_by_value_dim)),
        Mistake("the softmax runs over the queries (dim −2): each query's weights over the keys must sum to 1, "
                "so take it over the last axis (dim −1).", like(_softmax_over_queries)),
    ),
    error_hints=(
        (torch_shape_error,
         "key and value have fewer heads than query: repeat each KV head H // Hkv times along the head axis "
         "(repeat_interleave(groups, dim=1)) before attending, or group the query heads with a view."),
    ),
    what="Query head h attends with KV head h // (H/Hkv), as torch's enable_gqa=True; MQA (Hkv = 1) and MHA "
         "(Hkv = H) are the two ends.",
    library=("enable_gqa", *TORCH_MODULE_ATTENTION),
)


CHECKS = (check_attention_flops, check_kv_cache_bytes, check_grouped_query_attention)
