"""Flash attention equals dense attention (1e-12 in float64, 1e-5 in float32) for any length and block size,
holds one score tile at a time, skips tiles above the causal diagonal; the traffic simulator follows the
paper's Θ(T·D + T²) and Θ(T²·D²/M)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from course_lib import flash
from course_lib.attention import scaled_dot_product_attention


@st.composite
def attention_inputs(draw, dtype=torch.float64, spreads=(0.1, 1.0, 10.0)):
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    num_queries, num_keys = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    head_dim, value_dim = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 16)))
    spread = draw(st.sampled_from(spreads))  # 10: scores ~100 times larger, a sharp softmax
    make = lambda *shape: torch.randn(*batch, *shape, generator=generator, dtype=dtype) * spread
    return make(num_queries, head_dim), make(num_keys, head_dim), make(num_keys, value_dim)


@settings(max_examples=300, deadline=None)
@given(inputs=attention_inputs(), block_size=st.integers(1, 17), is_causal=st.booleans())
def test_flash_attention_equals_dense_attention_in_float64(inputs, block_size, is_causal):
    query, key, value = inputs
    expected, _ = scaled_dot_product_attention(query, key, value, is_causal=is_causal)
    got = flash.flash_attention(query, key, value, is_causal=is_causal, block_size=block_size)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=150, deadline=None)
@given(inputs=attention_inputs(dtype=torch.float32, spreads=(0.1, 1.0)), block_size=st.integers(1, 64),
       is_causal=st.booleans())
def test_flash_attention_equals_torch_in_float32(inputs, block_size, is_causal):
    # 1e-5 for inputs of the usual size (scores of order √D). In float32 a score s is rounded by about
    # s * 6e-8 and exp turns that into a relative error of the same size, so for any implementation the gap
    # grows with the scores (about 1e-4 at scores of 1000); float64 (above) covers the sharp cases.
    query, key, value = inputs
    expected = F.scaled_dot_product_attention(query, key, value, is_causal=is_causal)
    got = flash.flash_attention(query, key, value, is_causal=is_causal, block_size=block_size)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_extreme_logits_do_not_overflow():
    query = torch.tensor([[[1e4, 0.0], [-1e4, 0.0]]])  # (1, 2, 2): scores of ±1e8 / sqrt(2)
    key = torch.tensor([[[1.0, 0.0], [0.5, 0.0], [-1.0, 0.0]]])
    value = torch.arange(6.0).reshape(1, 3, 2)
    got = flash.flash_attention(query, key, value, block_size=1)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, torch.tensor([[[0.0, 1.0], [4.0, 5.0]]]))


@settings(max_examples=50, deadline=None)
@given(inputs=attention_inputs(spreads=(0.1, 1.0, 3.0)), block_size=st.integers(1, 17), is_causal=st.booleans())
def test_under_autograd_flash_attention_keeps_its_state_and_equals_dense_gradients(inputs, block_size, is_causal):
    """Inputs that require grad take the path that overwrites nothing (in place, autograd could not go back)."""
    leaves = [tensor.clone().requires_grad_() for tensor in inputs]
    dense, _ = scaled_dot_product_attention(*leaves, is_causal=is_causal)
    grad_output = torch.randn_like(dense)
    expected = torch.autograd.grad(dense, leaves, grad_output)
    copies = [tensor.clone().requires_grad_() for tensor in inputs]
    output = flash.flash_attention(*copies, is_causal=is_causal, block_size=block_size)
    torch.testing.assert_close(output, dense.detach(), rtol=1e-12, atol=1e-12)
    for got, want in zip(torch.autograd.grad(output, copies, grad_output), expected):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_flash_attention_broadcasts_leading_axes_as_dense_attention_does():
    query = torch.randn(2, 3, 10, 4, dtype=torch.float64)  # (B, H, T, D)
    key, value = torch.randn(3, 7, 4, dtype=torch.float64), torch.randn(1, 1, 7, 5, dtype=torch.float64)
    dense, _ = scaled_dot_product_attention(query, key, value)  # (2, 3, 10, 5)
    torch.testing.assert_close(flash.flash_attention(query, key, value, block_size=3), dense, rtol=1e-12, atol=1e-12)


@given(seed=st.integers(0, 1000), rows=st.integers(1, 5), keys=st.integers(1, 9))
@settings(max_examples=50, deadline=None)
def test_the_in_place_update_gives_the_same_state_as_the_one_that_allocates(seed, rows, keys):
    generator = torch.Generator().manual_seed(seed)
    start = flash.online_softmax_start(torch.zeros(2, rows, 1, dtype=torch.float64), value_dim=3)
    scores = torch.randn(2, rows, keys, generator=generator, dtype=torch.float64) * 5  # (N, T, Sb)
    scores[0, 0] = float("-inf")  # a row whose keys are all masked
    values = torch.randn(2, keys, 3, generator=generator, dtype=torch.float64)  # (N, Sb, Dv)
    state = flash.online_softmax_update(*start, scores, values)
    for _ in range(2):  # a first block, then a second on top of it
        fresh = flash.online_softmax_update(*state, scores * 1.5, values)
        state = flash.online_softmax_update(*(x.clone() for x in state), scores.clone() * 1.5, values, in_place=True)
        for got, want in zip(state, fresh):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_a_row_that_sees_no_allowed_key_gives_zeros():
    m, l, out = flash.online_softmax_start(torch.zeros(2, 3), value_dim=4)
    masked = torch.full((2, 5), float("-inf"))  # every key masked
    m, l, out = flash.online_softmax_update(m, l, out, masked, torch.randn(5, 4))
    result = flash.online_softmax_finish(l, out)
    assert not torch.isnan(result).any() and torch.equal(result, torch.zeros(2, 4))


@given(order_seed=st.integers(0, 1000), num_blocks=st.integers(1, 6))
@settings(max_examples=50, deadline=None)
def test_online_softmax_does_not_depend_on_the_order_of_the_blocks(order_seed, num_blocks):
    generator = torch.Generator().manual_seed(order_seed)
    scores = torch.randn(3, 4 * num_blocks, generator=generator, dtype=torch.float64) * 5  # (T, S)
    values = torch.randn(4 * num_blocks, 2, generator=generator, dtype=torch.float64)  # (S, Dv)
    exact = torch.softmax(scores, dim=-1) @ values
    state = flash.online_softmax_start(torch.zeros(3, 1, dtype=torch.float64), value_dim=2)
    for block in torch.randperm(num_blocks, generator=generator).tolist():
        columns = slice(4 * block, 4 * block + 4)
        state = flash.online_softmax_update(*state, scores[:, columns], values[columns])
    torch.testing.assert_close(flash.online_softmax_finish(state[1], state[2]), exact, rtol=1e-12, atol=1e-12)


class Allocations(TorchDispatchMode):
    """Records the shape of every tensor an operation returns."""

    def __init__(self):
        super().__init__()
        self.shapes, self.matmuls = [], 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for item in (result if isinstance(result, (tuple, list)) else (result,)):
            if isinstance(item, torch.Tensor):
                self.shapes.append(tuple(item.shape))
        if func.__name__.startswith(("bmm", "baddbmm", "mm", "matmul")):
            self.matmuls += 1
        return result


@pytest.mark.parametrize("is_causal", [False, True])
def test_no_tensor_larger_than_one_score_tile_per_head_besides_the_output(is_causal):
    T, block = 96, 16
    query, key, value = (torch.randn(2, 3, T, 8) for _ in range(3))  # (B, H, T, D)
    with Allocations() as seen:
        flash.flash_attention(query, key, value, is_causal=is_causal, block_size=block)
    # numbers per head, in (2, 3, ...) or flattened (6, ...) tensors other than the (..., T, 8) inputs and output
    per_head = [math.prod(shape[2:]) if shape[:2] == (2, 3) else math.prod(shape[1:]) for shape in seen.shapes
                if (shape[:2] == (2, 3) or shape[:1] == (6,)) and shape[-1] != 8]
    assert max(per_head) == block * block  # the score tiles, and nothing larger
    assert not [shape for shape in seen.shapes if shape[-2:] == (T, T)]


def test_causal_attention_skips_the_tiles_above_the_diagonal():
    query, key, value = (torch.randn(1, 64, 4) for _ in range(3))
    with Allocations() as full:
        flash.flash_attention(query, key, value, block_size=16)
    with Allocations() as causal:
        flash.flash_attention(query, key, value, is_causal=True, block_size=16)
    # 4 x 4 tiles, two matmuls each (scores, then weights @ values); causal keeps 4 + 3 + 2 + 1 = 10 of the 16
    assert full.matmuls == 2 * 16 and causal.matmuls == 2 * 10


@pytest.mark.parametrize("bad, message", [
    (dict(block_size=0), "block_size must be a positive integer, got 0"),
    (dict(key=torch.randn(5, 3)), "must share D"),
    (dict(value=torch.randn(6, 4)), "key has 5 positions but value has 6"),
])
def test_bad_inputs_are_named(bad, message):
    inputs = dict(query=torch.randn(4, 4), key=torch.randn(5, 4), value=torch.randn(5, 4))
    inputs.update(bad)
    with pytest.raises(ValueError, match=message):
        flash.flash_attention(**inputs)


# ----------------------------------------------------------------------------------------------------------
# Memory traffic
# ----------------------------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(length=st.integers(16, 2048), head_dim=st.sampled_from([16, 32, 64, 128]), fast_kib=st.integers(16, 1024))
def test_traffic_matches_the_paper_s_orders_of_growth(length, head_dim, fast_kib):
    fast = fast_kib * 1024
    standard = flash.standard_attention_traffic(length, head_dim, fast)
    tiled = flash.flash_attention_traffic(length, head_dim, fast)
    T, D, M = length, head_dim, fast / 4  # M in numbers of 4 bytes
    assert standard.peak_fast <= fast and tiled.peak_fast <= fast  # the simulator never cheats on fast memory
    # standard: at least the (T, T) matrix written twice and read twice, plus Q, K, V, O
    assert standard.total >= 4 * (4 * T * T + 4 * T * D)
    # tiled: never a (T, T) matrix. Each of the ⌈T / Bc⌉ passes over the key blocks (Bc = ⌊M / 4D⌋ >= M / 8D
    # here) reads Q, O, l, m and writes O, l, m once: Θ(T² D² / M), plus reading K, V and writing O
    bound = 4 * (5 * T * D + 7 * T + 24 * T * T * D * D / M + 32 * T * T * D / M)
    assert 4 * 4 * T * D <= tiled.total <= bound


def test_tiled_traffic_falls_as_fast_memory_grows_while_standard_traffic_stays_quadratic():
    tiled = [flash.flash_attention_traffic(2048, 64, kib * 1024).total for kib in (32, 64, 128, 256)]
    assert all(later < earlier for earlier, later in zip(tiled, tiled[1:]))
    standard = [flash.standard_attention_traffic(T, 64, 128 * 1024).total for T in (512, 1024, 2048)]
    assert 3.5 < standard[2] / standard[1] < 4.5  # doubling T: four times the bytes
    ratios = [flash.standard_attention_traffic(2048, 64, kib * 1024).total
              / flash.flash_attention_traffic(2048, 64, kib * 1024).total for kib in (128, 1024)]
    assert ratios[0] > 3 and ratios[1] > 12  # a GPU core's ~100-200 KiB of SRAM already cuts the traffic


def test_fast_memory_overflow_and_too_small_memory_are_named():
    traffic = flash.MemoryTraffic(fast_bytes=100)
    with pytest.raises(ValueError, match="fast memory overflow: 104 bytes held, only 100 available"):
        traffic.load(26)
    with pytest.raises(ValueError, match="too small for head_dim=64"):
        flash.flash_attention_traffic(128, 64, fast_bytes=1000)


# ----------------------------------------------------------------------------------------------------------
# The backward pass, recomputed from the log-sum-exp (the lesson's stretch goal)
# ----------------------------------------------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(inputs=attention_inputs(spreads=(0.1, 1.0, 3.0)), block_size=st.integers(1, 17), is_causal=st.booleans())
def test_the_recomputing_backward_pass_equals_autograd_of_dense_attention(inputs, block_size, is_causal):
    leaves = [tensor.clone().requires_grad_() for tensor in inputs]
    dense, _ = scaled_dot_product_attention(*leaves, is_causal=is_causal)
    grad_output = torch.randn_like(dense)
    expected = torch.autograd.grad(dense, leaves, grad_output)
    copies = [tensor.clone().requires_grad_() for tensor in inputs]
    output = flash.FlashAttentionFunction.apply(*copies, is_causal, block_size)
    torch.testing.assert_close(output, dense.detach(), rtol=1e-12, atol=1e-12)
    for got, want in zip(torch.autograd.grad(output, copies, grad_output), expected):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_the_backward_pass_handles_rows_that_see_no_key():
    query, key, value = (torch.randn(1, 5, 4, dtype=torch.float64) for _ in range(3))
    output, logsumexp = flash.flash_attention_forward(query[:, :, :], key[:, :0], value[:, :0], block_size=2)
    assert torch.equal(output, torch.zeros(1, 5, 4, dtype=torch.float64)) and torch.isinf(logsumexp).all()
    grads = flash.flash_attention_backward(query, key[:, :0], value[:, :0], output, logsumexp, torch.ones_like(output),
                                           block_size=2)
    assert all(torch.isfinite(g).all() for g in grads) and torch.equal(grads[0], torch.zeros_like(query))


def test_the_backward_pass_holds_one_tile_at_a_time():
    T, block = 96, 16
    leaves = [torch.randn(2, T, 8, requires_grad=True) for _ in range(3)]
    output = flash.FlashAttentionFunction.apply(*leaves, True, block)
    with Allocations() as seen:
        output.sum().backward()
    # (B, rows, keys) tensors other than the (B, T, 8) gradients: the recomputed tiles
    assert max(math.prod(shape[-2:]) for shape in seen.shapes if len(shape) == 3 and shape[-1] != 8) <= block * block
