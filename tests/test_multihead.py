"""course_lib.multihead.MultiHeadAttention equals torch.nn.MultiheadAttention (property-based).

Tolerance 1e-6 absolute (and relative) in float32: the same products in a slightly different order; the
inputs are scaled so every value stays of order 1, where float32 round-off is about 1e-7.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from course_lib.attention import causal_mask, scaled_dot_product_attention
from course_lib.multihead import MultiHeadAttention, grouped_query_attention, mask_from_torch, merge_heads, split_heads

TOLERANCE = dict(atol=1e-6, rtol=1e-6)


@st.composite
def configurations(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    torch.manual_seed(seed)
    num_heads = draw(st.integers(1, 4))
    embed_dim = num_heads * draw(st.integers(1, 6))
    batch, length, source = draw(st.integers(1, 3)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    torch_module = torch.nn.MultiheadAttention(embed_dim, num_heads, bias=draw(st.booleans()), batch_first=True)
    query = torch.randn(batch, length, embed_dim)
    self_attention = draw(st.booleans())
    memory = query if self_attention else torch.randn(batch, source, embed_dim)
    keys = memory.shape[1]
    allowed = None
    if draw(st.booleans()):
        allowed = torch.rand(length, keys) < 0.7
        allowed[:, 0] = True  # torch's module returns NaN for fully masked rows; keep one key per query
    padding = None
    if draw(st.booleans()):
        padding = torch.ones(batch, keys, dtype=torch.bool)
        padding[0, 1:] = torch.rand(keys - 1) < 0.6
    return torch_module, query, memory, allowed, padding


@settings(max_examples=200, deadline=None)
@given(configurations())
def test_equals_torch_multihead_attention(configuration):
    torch_module, query, memory, allowed, padding = configuration
    ours = MultiHeadAttention.from_torch(torch_module)
    expected, expected_weights = torch_module(query, memory, memory, attn_mask=mask_from_torch(allowed),
                                              key_padding_mask=mask_from_torch(padding))
    output, weights = ours(query, memory, memory, attn_mask=allowed, key_padding_mask=padding)
    assert output.shape == expected.shape and weights.shape == (query.shape[0], ours.num_heads, query.shape[1], memory.shape[1])
    assert torch.allclose(output, expected, **TOLERANCE)
    assert torch.allclose(weights.mean(dim=1), expected_weights, **TOLERANCE)  # torch averages over heads


def test_sequence_first_torch_module_gives_the_same_numbers_transposed():
    torch.manual_seed(0)
    torch_module = torch.nn.MultiheadAttention(8, 2)  # batch_first=False: inputs are (T, B, E)
    x = torch.randn(3, 5, 8)  # (B, T, E)
    expected, _ = torch_module(x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1))  # (T, B, E)
    output, _ = MultiHeadAttention.from_torch(torch_module)(x)
    assert torch.allclose(output, expected.transpose(0, 1), **TOLERANCE)


def test_additive_float_mask_and_defaults():
    torch.manual_seed(1)
    torch_module = torch.nn.MultiheadAttention(6, 3, batch_first=True)
    x = torch.randn(2, 4, 6)
    bias = torch.randn(4, 4).masked_fill(torch.ones(4, 4, dtype=torch.bool).triu(1), float("-inf"))
    expected, _ = torch_module(x, x, x, attn_mask=bias)
    output, _ = MultiHeadAttention.from_torch(torch_module)(x, attn_mask=bias)
    assert torch.allclose(output, expected, **TOLERANCE)


def test_split_and_merge_are_inverse_and_keep_each_heads_features():
    x = torch.arange(2 * 3 * 6, dtype=torch.float32).view(2, 3, 6)  # (B, T, E)
    heads = split_heads(x, 2)  # (B, H, T, D)
    assert heads.shape == (2, 2, 3, 3)
    assert torch.equal(heads[0, 1, 2], x[0, 2, 3:])  # head 1 of position 2 = its features 3..5
    assert torch.equal(merge_heads(heads), x)
    assert torch.equal(torch.einsum("bthd->bhtd", x.view(2, 3, 2, 3)), heads)  # the einsum version agrees


@pytest.mark.parametrize("make, message", [
    (lambda: MultiHeadAttention(10, 3), "embed_dim=10 is not divisible by num_heads=3"),
    (lambda: split_heads(torch.randn(2, 3, 10), 4), "embed_dim=10 is not divisible by num_heads=4"),
    (lambda: MultiHeadAttention(8, 2)(torch.randn(5, 8)), "query must have 3 dimensions, got shape (5, 8)"),
    (lambda: MultiHeadAttention(8, 2)(torch.randn(2, 5, 6)), "query has feature size 6, expected embed_dim=8"),
    (lambda: MultiHeadAttention(8, 2)(torch.randn(2, 5, 8), torch.randn(2, 4, 8), torch.randn(2, 3, 8)),
     "key and value must have the same batch size and length, got key (2, 4, 8) and value (2, 3, 8)"),
    (lambda: MultiHeadAttention(8, 2)(torch.randn(2, 5, 8), attn_mask=torch.ones(5, 4, dtype=torch.bool)),
     "attn_mask of shape (5, 4) does not broadcast to the attention scores' shape (2, 2, 5, 5)"),
    # B = H = 2: a (B, T, S) mask would broadcast silently, sequence b's mask landing on head b
    (lambda: MultiHeadAttention(8, 2)(torch.randn(2, 5, 8), attn_mask=torch.ones(2, 5, 5, dtype=torch.bool)),
     "attn_mask of shape (2, 5, 5) is ambiguous for multi-head scores (2, 2, 5, 5)"),
    (lambda: MultiHeadAttention(8, 2)(torch.randn(2, 5, 8), key_padding_mask=torch.ones(2, 4, dtype=torch.bool)),
     "key_padding_mask must have shape (B, S) = (2, 5), got (2, 4)"),
    (lambda: MultiHeadAttention.from_torch(torch.nn.MultiheadAttention(8, 2, kdim=4, vdim=4)), "kdim = vdim = embed_dim"),
])
def test_bad_input_raises_a_value_error_that_names_the_shapes(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value)


# ---------------------------------------------------------------------------------------------------------
# Lesson 06: grouped-query and multi-query attention, against torch's enable_gqa (same 1e-6 tolerance,
# with 1e-5 for the functional form whose inputs are not scaled down)
# ---------------------------------------------------------------------------------------------------------

@st.composite
def grouped_inputs(draw):
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    num_kv_heads, groups = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch, length, source = draw(st.integers(1, 3)), draw(st.integers(1, 8)), draw(st.integers(1, 8))
    dim, value_dim = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    query = torch.randn(batch, num_kv_heads * groups, length, dim, generator=generator)
    key = torch.randn(batch, num_kv_heads, source, dim, generator=generator)
    value = torch.randn(batch, num_kv_heads, source, value_dim, generator=generator)
    options = {}
    kind = draw(st.sampled_from(["none", "mask", "per-head mask", "causal"]))
    if kind == "mask":
        options["attn_mask"] = torch.rand(length, source, generator=generator) < 0.7
    elif kind == "per-head mask":
        options["attn_mask"] = torch.rand(batch, num_kv_heads * groups, length, source, generator=generator) < 0.7
    elif kind == "causal":
        options["attn_mask"] = causal_mask(length, source)
    return query, key, value, options


@settings(max_examples=200, deadline=None)
@given(grouped_inputs())
def test_grouped_query_attention_equals_torch_enable_gqa(inputs):
    query, key, value, options = inputs
    output, weights = grouped_query_attention(query, key, value, **options)
    expected = torch.nn.functional.scaled_dot_product_attention(query, key, value, enable_gqa=True, **options)
    assert output.shape == expected.shape and weights.shape == query.shape[:-1] + key.shape[-2:-1]
    assert torch.allclose(output, expected, atol=1e-5, rtol=1e-5)


def test_grouped_query_attention_shares_kv_head_h_over_groups():
    torch.manual_seed(0)
    query, key, value = torch.randn(1, 4, 3, 2), torch.randn(1, 2, 5, 2), torch.randn(1, 2, 5, 2)
    output, _ = grouped_query_attention(query, key, value)
    for head in range(4):  # query heads 0, 1 use KV head 0; heads 2, 3 use KV head 1
        alone, _ = scaled_dot_product_attention(query[:, head], key[:, head // 2], value[:, head // 2])
        assert torch.allclose(output[:, head], alone, atol=1e-6)


@pytest.mark.parametrize("options", [{}, {"is_causal": True}, {"attn_mask": torch.ones(7, 5, dtype=torch.bool)}])
def test_grouped_query_attention_never_copies_the_keys_or_values(options):
    """No tensor built inside holds more (S, D) blocks than key and value have: the heads share, not repeat."""
    built = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            built.extend(t for t in (result if isinstance(result, (tuple, list)) else (result,))
                         if isinstance(t, torch.Tensor))
            return result

    query, key, value = torch.randn(2, 6, 7, 3), torch.randn(2, 2, 5, 3), torch.randn(2, 2, 5, 4)  # G = 3
    with Record():
        grouped_query_attention(query, key, value, **options)
    blocks = [t for t in built if tuple(t.shape[-2:]) in ((5, 3), (3, 5), (5, 4), (4, 5))]  # (S, D) or (S, Dv)
    assert blocks and max(t.numel() for t in blocks) <= value.numel()  # a repeat would hold 3x as many


def test_multihead_module_with_fewer_kv_heads():
    torch.manual_seed(0)
    layer = MultiHeadAttention(12, 6, num_kv_heads=2)
    assert layer.key.weight.shape == (4, 12) and layer.value.weight.shape == (4, 12)  # 2 KV heads of D = 2
    x = torch.randn(2, 5, 12)
    output, weights = layer(x, attn_mask=causal_mask(5), key_padding_mask=torch.tensor([[True] * 5, [True] * 3 + [False] * 2]))
    assert output.shape == (2, 5, 12) and weights.shape == (2, 6, 5, 5)
    assert torch.all(weights[1, :, :, 3:] == 0)  # padding is never attended
    # the same layer as multi-head attention with every KV head repeated for its query heads
    full = MultiHeadAttention(12, 6)
    with torch.no_grad():
        for name in ("query", "output"):
            getattr(full, name).load_state_dict(getattr(layer, name).state_dict())
        for name in ("key", "value"):
            grouped = getattr(layer, name)
            getattr(full, name).weight.copy_(grouped.weight.view(2, 1, 2, 12).expand(2, 3, 2, 12).reshape(12, 12))
            getattr(full, name).bias.copy_(grouped.bias.view(2, 1, 2).expand(2, 3, 2).reshape(12))
    expected, _ = full(x, attn_mask=causal_mask(5))
    assert torch.allclose(layer(x, attn_mask=causal_mask(5))[0], expected, **TOLERANCE)


@pytest.mark.parametrize("make, message", [
    (lambda: MultiHeadAttention(12, 6, num_kv_heads=4), "num_heads=6 is not divisible by num_kv_heads=4"),
    (lambda: grouped_query_attention(
        torch.randn(1, 6, 2, 4), torch.randn(1, 4, 2, 4), torch.randn(1, 4, 2, 4)),
     "query has 6 heads but key and value have 4"),
    (lambda: grouped_query_attention(
        torch.randn(1, 4, 2, 4), torch.randn(1, 2, 2, 4), torch.randn(1, 1, 2, 4)), "key has 2 heads but value has 1"),
])
def test_grouped_bad_input(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value)
