"""Fixtures for the checks of lesson 08, course_lib/checks/l08_flash_attention.py: wrong solutions, each with the
diagnosis a learner must see (``WRONG``), and right solutions written differently (``RIGHT``).
tests/test_manifest.py proves that every diagnosis of these checks is triggered by a WRONG fixture and that
every check has a RIGHT one."""
from __future__ import annotations

import torch

from course_lib import attention, flash
from course_lib.checks import l08_flash_attention
from verdicts import fixture_tests


def flash_dense(query, key, value, is_causal=False, block_size=64):
    return attention.scaled_dot_product_attention(query, key, value, is_causal=is_causal)[0]


def flash_unscaled(query, key, value, is_causal=False, block_size=64):
    return flash.flash_attention(query * query.shape[-1] ** 0.5, key, value, is_causal=is_causal, block_size=block_size)


def flash_ignores_causal(query, key, value, is_causal=False, block_size=64):
    return flash.flash_attention(query, key, value, block_size=block_size)


def flash_with_weights(query, key, value, is_causal=False, block_size=64):
    return flash.flash_attention(query, key, value, is_causal=is_causal, block_size=block_size), None


def flash_fixed_last_block(query, key, value, is_causal=False, block_size=64):
    """Assumes every block is full: breaks when T is not a multiple of block_size."""
    outputs = []
    for start in range(0, query.shape[-2], block_size):
        rows = query[..., start:start + block_size, :]
        state = flash.online_softmax_start(rows, value.shape[-1])
        for k_start in range(0, key.shape[-2], block_size):
            scores = rows @ key[..., k_start:k_start + block_size, :].transpose(-2, -1) / query.shape[-1] ** 0.5
            scores = scores + torch.zeros(*rows.shape[:-1], block_size)  # a (block, block) tile, assumed full
            state = flash.online_softmax_update(*state, scores, value[..., k_start:k_start + block_size, :])
        outputs.append(flash.online_softmax_finish(state[1], state[2]))
    return torch.cat(outputs, dim=-2)


def flash_keys_outside(query, key, value, is_causal=False, block_size=64):
    """FlashAttention-1 loop order: key blocks outside, every query block's state kept (still one tile)."""
    m, l, out = flash.online_softmax_start(query, value.shape[-1])
    T = query.shape[-2]
    for k_start in range(0, key.shape[-2], block_size):
        k_block, v_block = key[..., k_start:k_start + block_size, :], value[..., k_start:k_start + block_size, :]
        new = []
        for q_start in range(0, T, block_size):
            rows = slice(q_start, q_start + block_size)
            scores = query[..., rows, :] @ k_block.transpose(-2, -1) / query.shape[-1] ** 0.5
            if is_causal:
                allowed = torch.arange(k_start, k_start + k_block.shape[-2]) <= torch.arange(T)[rows, None]
                scores = scores.masked_fill(~allowed, float("-inf"))
            new.append(flash.online_softmax_update(m[..., rows], l[..., rows], out[..., rows, :], scores, v_block))
        m, l, out = (torch.cat([n[i] for n in new], dim=-1 if i < 2 else -2) for i in range(3))
    return flash.online_softmax_finish(l, out)


def online_update_logsumexp(m, l, out, scores_block, values_block):
    """The same update through torch.logaddexp on log l (one of many correct ways to write it)."""
    m_new = torch.maximum(m, scores_block.amax(dim=-1))
    shift = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
    weights = torch.exp(scores_block - shift[..., None])
    log_l = torch.logaddexp(torch.log(l) + m - shift, torch.log(weights.sum(-1)))
    rescale = torch.exp(m - shift)
    return m_new, torch.exp(log_l), rescale[..., None] * out + weights @ values_block


WRONG = [
    ("online_softmax_update", l08_flash_attention._online_variant(rescale_out=False), "out is not rescaled"),
    ("online_softmax_update", l08_flash_attention._online_variant(rescale_l=False), "l is not rescaled"),
    ("online_softmax_update", l08_flash_attention._online_variant(normalise=True), "out is already divided by l"),
    ("online_softmax_update", l08_flash_attention._online_variant(keep_m=True), "m never changes"),
    ("online_softmax_update", l08_flash_attention._online_variant(nan_guard=False), "exp(-inf - (-inf)) is NaN"),
    ("online_softmax_update", l08_flash_attention._online_variant(inverted=True), "the rescaling factor is upside down"),
    ("flash_attention", flash_dense, "the full (B, H, T, S) scores hold 18432"),
    ("flash_attention", flash_unscaled, "not scaled by 1/√D"),
    ("flash_attention", flash_ignores_causal, "is_causal=True is ignored"),
    ("flash_attention", l08_flash_attention._flash_diagonal_unmasked, "the tiles on the diagonal are not masked"),
    ("flash_attention", flash_with_weights, "output: expected a torch tensor, got a tuple of length 2"),
    ("flash_attention", flash_fixed_last_block, "The last block is smaller"),
]

RIGHT = [
    ("online_softmax_update", online_update_logsumexp),
    ("flash_attention", flash_keys_outside),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)
