"""The checks of lesson 06, the cost of attention: counting FLOPs and KV-cache bytes, and grouped-query attention.

Lesson: notebooks/06_the_cost_of_attention.ipynb, its exercise solutions/06_the_cost_of_attention.ipynb. Tests: tests/checks/test_l06_the_cost_of_attention.py.
"""
from __future__ import annotations

from course_lib import calling
from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import TORCH_MODULE_ATTENTION, tensor, torch_shape_error


check_attention_flops = Check(
    name="attention_flops",
    points=1,
    make_cases=lambda rng: [
        Case("T = S = 1024, D = 64, one head", (1024, 1024, 64, 1)),
        Case("T = 10 queries, S = 30 keys (cross-attention), D = 8, 2 heads", (10, 30, 8, 2)),
        Case("T = 1 query (one generation step), S = 4096 keys, D = 128, 32 heads", (1, 4096, 128, 32)),
        Case("random sizes", (int(rng.integers(2, 500)), int(rng.integers(2, 500)), int(rng.integers(2, 128)),
                              int(rng.integers(2, 16)))),
    ],
    implementation="course_lib.cost.attention_flops",
    call=calling.as_number,
    validate=calling.validate_attention_flops,
    outputs=(Output("flops"),),
    mistakes=(
        Mistake("you have half the count: 4·T·S·D per head counts both matrix products (Q·Kᵀ and weights·V), each "
                "with 2 FLOPs (a multiply and an add) per term. Yours counts one product, or multiply-adds.",
                like(lambda t, s, d, h: 2 * t * s * d * h)),
        Mistake("you counted T·S·D once per head: each of the two products takes T·S·D multiplies and as many "
                "adds, 4·T·S·D in all.", like(lambda t, s, d, h: t * s * d * h)),
        Mistake("the number of heads is missing: every head does its own 4·T·S·D.", like(lambda t, s, d, h: 4 * t * s * d)),
        Mistake("you used T² (or S²): queries meet keys, so the scores are T·S, which differ in cross-attention "
                "and generation.", lambda case, got, exp: case.args[0] != case.args[1] and (
                    like(lambda t, s, d, h: 4 * t * t * d * h)(case, got, exp) or like(lambda t, s, d, h: 4 * s * s * d * h)(case, got, exp))),
        Mistake("you divided by the number of heads: with the head dimension D given, each head costs 4·T·S·D, "
                "so H heads cost H times as much.", like(lambda t, s, d, h: 4 * t * s * d / h)),
    ),
    what="4·T·S·D·H: both products, 2 FLOPs per multiply-add, every head, T ≠ S included.",
)


check_kv_cache_bytes = Check(
    name="kv_cache_bytes",
    points=1,
    make_cases=lambda rng: [
        Case("LLaMA-2-7B: 32 layers, 32 KV heads, head_dim 128, 4096 tokens (float16: 2 bytes by default)",
             (32, 32, 128, 4096)),
        Case("grouped-query: 80 layers, 8 KV heads, head_dim 128, 8192 tokens, batch_size=4",
             (80, 8, 128, 8192), {"batch_size": 4}),
        Case("multi-query in float32: 12 layers, 1 KV head, head_dim 64, 1024 tokens, bytes_per_value=4",
             (12, 1, 64, 1024), {"bytes_per_value": 4}),
        Case("random sizes, batch_size=3, bytes_per_value=1 (int8)",
             (int(rng.integers(1, 40)), int(rng.integers(1, 9)), int(rng.integers(8, 129)), int(rng.integers(1, 5000))),
             {"batch_size": 3, "bytes_per_value": 1}),
    ],
    implementation="course_lib.cost.kv_cache_bytes",
    call=calling.as_number,
    validate=calling.validate_kv_cache_bytes,
    outputs=(Output("bytes"),),
    mistakes=(
        Mistake("bytes_per_value is ignored (or fixed): multiply by the bytes of one number, 2 for float16, "
                "4 for float32, 1 for int8.",
                lambda case, got, exp: "bytes_per_value" in case.kwargs and any(
                    like(lambda l, h, d, t, batch_size=1, bytes_per_value=2, k=k: 2 * l * h * d * t * batch_size * k)(
                        case, got, exp) for k in (1, 2, 4))),
        Mistake("you counted only the keys (or only the values): the cache holds both, a factor 2.",
                like(lambda l, h, d, t, batch_size=1, bytes_per_value=2: l * h * d * t * batch_size * bytes_per_value)),
        Mistake("batch_size is ignored: every sequence in the batch has its own cache.",
                lambda case, got, exp: case.kwargs.get("batch_size", 1) != 1 and like(
                    lambda l, h, d, t, batch_size=1, bytes_per_value=2: 2 * l * h * d * t * bytes_per_value)(case, got, exp)),
        Mistake("you counted numbers, not bytes: multiply by bytes_per_value.",
                like(lambda l, h, d, t, batch_size=1, bytes_per_value=2: 2 * l * h * d * t * batch_size)),
        Mistake("the number of layers is missing: every layer keeps its own keys and values.",
                like(lambda l, h, d, t, batch_size=1, bytes_per_value=2: 2 * h * d * t * batch_size * bytes_per_value)),
        Mistake("you counted bits: 1 byte = 8 bits, and bytes_per_value is already in bytes.",
                like(lambda l, h, d, t, batch_size=1, bytes_per_value=2: 16 * l * h * d * t * batch_size * bytes_per_value)),
    ),
    what="2 (keys and values) · layers · batch · KV heads · tokens · head_dim · bytes per value.",
    withholds=("course_lib.measure.cache_bytes",),
)


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


def _gqa_variant(repeat="interleave"):
    """Grouped-query attention with the KV heads spread over the query heads in a given (maybe wrong) way."""

    def attend(query, key, value):
        from course_lib.attention import scaled_dot_product_attention

        groups = query.shape[-3] // key.shape[-3]
        if repeat == "tile":  # head h uses KV head h % Hkv: torch's .repeat, the wrong order
            key, value = key.repeat(1, groups, 1, 1), value.repeat(1, groups, 1, 1)
        elif repeat == "first":  # every query head uses KV head 0
            key, value = key[:, :1], value[:, :1]
        else:
            key, value = key.repeat_interleave(groups, dim=-3), value.repeat_interleave(groups, dim=-3)
        return scaled_dot_product_attention(query, key, value)

    return attend


check_grouped_query_attention = Check(
    name="grouped_query_attention",
    points=2,
    make_cases=_gqa_cases,
    implementation="course_lib.multihead.grouped_query_attention",
    outputs=(Output("output", kind="torch"), Output("weights", kind="torch")),
    mistakes=(
        Mistake("query heads are matched to the wrong KV heads: head h must use KV head h // (H / Hkv), so "
                "consecutive query heads share one (torch's enable_gqa does the same). .repeat(...) tiles the "
                "KV heads (0, 1, 0, 1, …); use .repeat_interleave(H // Hkv, dim=1) (0, 0, 1, 1, …).",
                like(_gqa_variant("tile"))),
        Mistake("every query head uses the first KV head: the Hkv key/value heads must be shared out, "
                "H // Hkv query heads per KV head.", like(_gqa_variant("first"))),
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
