"""Fixtures for the checks of lesson 08, course_lib/checks/l08_flash_attention.py: wrong solutions, each with the
diagnosis a learner must see (``WRONG``), and right solutions written differently (``RIGHT``).
tests/test_manifest.py proves that every diagnosis of these checks is triggered by a WRONG fixture and that
every check has a RIGHT one."""
from __future__ import annotations

import torch

from course_lib import attention, flash
from verdicts import fixture_tests


# The online softmax update as learners get it wrong: the usual update with one step missing or turned round.

def online_out_not_rescaled(m, l, out, scores_block, values_block):
    """Shrinks l when the maximum grows, but adds the block to out as it is."""
    m_new = torch.maximum(m, scores_block.max(dim=-1).values)
    safe = torch.where(m_new == float("-inf"), 0.0, m_new)
    p = torch.exp(scores_block - safe[..., None])
    l_new = l * torch.exp(m - safe) + p.sum(dim=-1)
    out_new = out + p @ values_block  # out is still relative to the old maximum
    return m_new, l_new, out_new


def online_l_not_rescaled(m, l, out, scores_block, values_block):
    """Shrinks out when the maximum grows, but not the running sum l."""
    m_new = torch.maximum(m, scores_block.max(dim=-1).values)
    safe = torch.where(m_new == float("-inf"), 0.0, m_new)
    p = torch.exp(scores_block - safe[..., None])
    alpha = torch.exp(m - safe)
    return m_new, l + p.sum(dim=-1), alpha[..., None] * out + p @ values_block


def online_divides_each_block(m, l, out, scores_block, values_block):
    """Returns the running average instead of the running sum: the next block then adds to an average."""
    m_new = torch.maximum(m, scores_block.max(dim=-1).values)
    safe = torch.where(m_new == float("-inf"), 0.0, m_new)
    p = torch.exp(scores_block - safe[..., None])
    alpha = torch.exp(m - safe)
    l_new = alpha * l + p.sum(dim=-1)
    out_new = (alpha[..., None] * out + p @ values_block) / l_new[..., None]
    return m_new, l_new, out_new


def online_keeps_old_maximum(m, l, out, scores_block, values_block):
    """Never raises the maximum: every block is shifted by the maximum it was given (0 before any)."""
    safe = torch.where(m == float("-inf"), 0.0, m)
    p = torch.exp(scores_block - safe[..., None])
    alpha = torch.exp(m - safe)
    return m, alpha * l + p.sum(dim=-1), alpha[..., None] * out + p @ values_block


def online_no_masked_row_guard(m, l, out, scores_block, values_block):
    """Subtracts m_new even where it is still -inf: exp(-inf - (-inf)) is NaN."""
    m_new = torch.maximum(m, scores_block.max(dim=-1).values)
    p = torch.exp(scores_block - m_new[..., None])
    alpha = torch.exp(m - m_new)
    return m_new, alpha * l + p.sum(dim=-1), alpha[..., None] * out + p @ values_block


def online_rescale_inverted(m, l, out, scores_block, values_block):
    """Multiplies the old sums by exp(m_new - m), which grows them, where they must shrink."""
    m_new = torch.maximum(m, scores_block.max(dim=-1).values)
    safe = torch.where(m_new == float("-inf"), 0.0, m_new)
    p = torch.exp(scores_block - safe[..., None])
    alpha = torch.exp(safe - m)
    return m_new, alpha * l + p.sum(dim=-1), alpha[..., None] * out + p @ values_block


def flash_dense(query, key, value, is_causal=False, block_size=64):
    return attention.scaled_dot_product_attention(query, key, value, is_causal=is_causal)[0]


def flash_unscaled(query, key, value, is_causal=False, block_size=64):
    return flash.flash_attention(query * query.shape[-1] ** 0.5, key, value, is_causal=is_causal, block_size=block_size)


def flash_ignores_causal(query, key, value, is_causal=False, block_size=64):
    return flash.flash_attention(query, key, value, block_size=block_size)


def flash_diagonal_unmasked(query, key, value, is_causal=False, block_size=64):
    """Skips the key tiles wholly above the diagonal, but inside a tile that crosses it every key counts."""
    num_queries, num_keys = query.shape[-2], key.shape[-2]
    results = []
    for q_start in range(0, num_queries, block_size):
        q_end = min(q_start + block_size, num_queries)
        rows = query[..., q_start:q_end, :]
        m, l, out = flash.online_softmax_start(rows, value.shape[-1])
        for k_start in range(0, num_keys, block_size):
            if is_causal and k_start >= q_end:
                break  # this tile and the rest are in the future
            k_end = min(k_start + block_size, num_keys)
            scores = rows @ key[..., k_start:k_end, :].transpose(-2, -1) / query.shape[-1] ** 0.5
            m, l, out = flash.online_softmax_update(m, l, out, scores, value[..., k_start:k_end, :])
        results.append(flash.online_softmax_finish(l, out))
    return torch.cat(results, dim=-2)


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
            if is_causal and k_start > min(q_start + block_size, T) - 1:  # a tile above the diagonal: skip it
                new.append((m[..., rows], l[..., rows], out[..., rows, :]))
                continue
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


def online_block_maximum(m, l, out, scores_block, values_block):
    """One maximum for the whole block (every row), not one per row."""
    m_new = torch.maximum(m, scores_block.max())
    safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
    p = torch.exp(scores_block - safe.unsqueeze(-1))
    alpha = torch.exp(m - safe)
    return m_new, alpha * l + p.sum(-1), alpha.unsqueeze(-1) * out + p @ values_block


def online_returns_l_first(m, l, out, scores_block, values_block):
    """The right update, returned as (l, m, out)."""
    m_new = torch.maximum(m, scores_block.amax(-1))
    safe = m_new.nan_to_num(neginf=0.0)
    p = (scores_block - safe[..., None]).exp()
    alpha = (m - safe).exp()
    return alpha * l + p.sum(-1), m_new, alpha[..., None] * out + p @ values_block


def online_clamped_guard(m, l, out, scores_block, values_block):
    """The -inf guard as a clamp: a shift of -1e30 where nothing was seen yet gives exp(-inf + 1e30) = 0 too."""
    m_new = torch.maximum(m, scores_block.amax(dim=-1))
    shift = m_new.clamp_min(-1e30)
    p = torch.exp(scores_block - shift[..., None])
    alpha = torch.exp(m - shift)
    return m_new, alpha * l + p.sum(-1), alpha[..., None] * out + torch.einsum("...ts,...sd->...td", p, values_block)


def _tiled(query, key, value, block_size, keep_tile, allowed):
    """A learner's tile loop: key tiles where keep_tile(q_start, q_end, k_start), masked with allowed(rows, cols)."""
    outputs = []
    for q_start in range(0, query.shape[-2], block_size):
        q_end = min(q_start + block_size, query.shape[-2])
        rows = query[..., q_start:q_end, :]
        m, l, out = flash.online_softmax_start(rows, value.shape[-1])
        for k_start in range(0, key.shape[-2], block_size):
            if not keep_tile(q_start, q_end, k_start):
                continue
            k_end = min(k_start + block_size, key.shape[-2])
            scores = rows @ key[..., k_start:k_end, :].transpose(-2, -1) / query.shape[-1] ** 0.5
            mask = allowed(torch.arange(q_start, q_end)[:, None], torch.arange(k_start, k_end)[None, :])
            scores = scores.masked_fill(~mask, float("-inf"))
            m, l, out = flash.online_softmax_update(m, l, out, scores, value[..., k_start:k_end, :])
        outputs.append(flash.online_softmax_finish(l, out))
    return torch.cat(outputs, dim=-2)


def flash_masks_every_tile(query, key, value, is_causal=False, block_size=64):
    """Computes every tile and masks the future keys: right numbers, but no tile is ever skipped."""
    return _tiled(query, key, value, block_size, lambda qs, qe, ks: True,
                  lambda i, j: (j <= i) if is_causal else torch.ones_like(i * j, dtype=torch.bool))


def flash_bottom_right(query, key, value, is_causal=False, block_size=64):
    """Hugging Face's alignment: query i sees keys j <= i + S - T."""
    offset = key.shape[-2] - query.shape[-2]
    return _tiled(query, key, value, block_size, lambda qs, qe, ks: not is_causal or ks <= qe - 1 + offset,
                  lambda i, j: (j <= i + offset) if is_causal else torch.ones_like(i * j, dtype=torch.bool))


def flash_reversed_mask(query, key, value, is_causal=False, block_size=64):
    """Masks the past instead of the future: query i sees keys j >= i."""
    return _tiled(query, key, value, block_size, lambda qs, qe, ks: True,
                  lambda i, j: (j >= i) if is_causal else torch.ones_like(i * j, dtype=torch.bool))


def flash_skips_diagonal(query, key, value, is_causal=False, block_size=64):
    """Stops at the key block that starts at the query block's first query: the diagonal tile is lost."""
    return _tiled(query, key, value, block_size, lambda qs, qe, ks: not is_causal or ks < qs,
                  lambda i, j: (j <= i) if is_causal else torch.ones_like(i * j, dtype=torch.bool))


def flash_skip_test_off_by_one(query, key, value, is_causal=False, block_size=64):
    """Stops at the key block that starts at the query block's last query: >= where > was due."""
    return _tiled(query, key, value, block_size, lambda qs, qe, ks: not is_causal or ks < qe - 1,
                  lambda i, j: (j <= i) if is_causal else torch.ones_like(i * j, dtype=torch.bool))


def flash_local_indices(query, key, value, is_causal=False, block_size=64):
    """Masks each kept tile with its own row and column numbers, 0..block-1, not positions in the sequence."""
    return _tiled(query, key, value, block_size, lambda qs, qe, ks: not is_causal or ks < qe,
                  lambda i, j: (j % block_size <= i % block_size) if is_causal
                  else torch.ones_like(i * j, dtype=torch.bool))


def flash_full_blocks_only(query, key, value, is_causal=False, block_size=64):
    """Loops over S // block_size key blocks: the shorter last block is never seen."""
    full_blocks = key.shape[-2] // block_size * block_size
    return _tiled(query, key, value, block_size, lambda qs, qe, ks: ks + block_size <= full_blocks and
                  (not is_causal or ks < qe),
                  lambda i, j: (j <= i) if is_causal else torch.ones_like(i * j, dtype=torch.bool))


def flash_state_as_wide_as_queries(query, key, value, is_causal=False, block_size=64):
    """Starts each state with the queries' width D: breaks as soon as the values' Dv differs."""
    outputs = []
    for q_start in range(0, query.shape[-2], block_size):
        rows = query[..., q_start:q_start + block_size, :]
        m, l, out = flash.online_softmax_start(rows, rows.shape[-1])
        for k_start in range(0, key.shape[-2], block_size):
            scores = rows @ key[..., k_start:k_start + block_size, :].transpose(-2, -1) / rows.shape[-1] ** 0.5
            m, l, out = flash.online_softmax_update(m, l, out, scores, value[..., k_start:k_start + block_size, :])
        outputs.append(flash.online_softmax_finish(l, out))
    return torch.cat(outputs, dim=-2)


def flash_precomputed_mask(query, key, value, is_causal=False, block_size=64):
    """Tiles the scores, but first builds the whole (T, S) causal mask and slices it."""
    everything = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool)
    allowed = everything.tril() if is_causal else everything  # (T, S)
    return _tiled(query, key, value, block_size, lambda qs, qe, ks: not is_causal or ks < qe,
                  lambda i, j: allowed[i, j])


def flash_query_strips_reversed(query, key, value, is_causal=False, block_size=64):
    """All queries at once against (T, block) strips of keys, last strip first, with einsum: still exact."""
    T = query.shape[-2]
    m, l, out = flash.online_softmax_start(query, value.shape[-1])
    starts = list(range(0, key.shape[-2], block_size))
    for k_start in reversed(starts):
        if is_causal and k_start > T - 1:
            continue  # every query is before this strip
        k_block = key[..., k_start:k_start + block_size, :]
        scores = torch.einsum("...td,...sd->...ts", query, k_block) * query.shape[-1] ** -0.5
        if is_causal:
            cols = torch.arange(k_start, k_start + k_block.shape[-2])
            scores = scores.masked_fill(cols > torch.arange(T)[:, None], float("-inf"))
        m, l, out = flash.online_softmax_update(m, l, out, scores, value[..., k_start:k_start + block_size, :])
    return flash.online_softmax_finish(l, out)


WRONG = [
    ("online_softmax_update", online_out_not_rescaled, "out is not rescaled"),
    ("online_softmax_update", online_l_not_rescaled, "l is not rescaled"),
    ("online_softmax_update", online_divides_each_block, "out is already divided by l"),
    ("online_softmax_update", online_keeps_old_maximum, "m never changes"),
    ("online_softmax_update", online_no_masked_row_guard, "exp(-inf - (-inf)) is NaN"),
    ("online_softmax_update", online_rescale_inverted, "the rescaling factor is upside down"),
    ("flash_attention", flash_dense, "the full (B, H, T, S) scores hold 18432"),
    ("flash_attention", flash_unscaled, "not scaled by 1/√D"),
    ("flash_attention", flash_ignores_causal, "is_causal=True is ignored"),
    ("flash_attention", flash_diagonal_unmasked, "the tiles on the diagonal are not masked"),
    ("flash_attention", flash_with_weights, "output: expected a torch tensor, got a tuple of length 2"),
    ("flash_attention", flash_fixed_last_block, "The last block is smaller"),
    ("online_softmax_update", online_block_maximum, "m is the maximum of the whole block"),
    ("online_softmax_update", online_returns_l_first, "your results are in another order, (l, m, out)"),
    ("flash_attention", flash_masks_every_tile, "The tiles above the causal diagonal must be skipped"),
    ("flash_attention", flash_bottom_right, "this is the bottom-right causal convention"),
    ("flash_attention", flash_reversed_mask, "the causal mask is reversed"),
    ("flash_attention", flash_skips_diagonal, "the tiles on the diagonal are skipped"),
    ("flash_attention", flash_local_indices, "compares the tile's own indices"),
    ("flash_attention", flash_skip_test_off_by_one, "the skip test drops one tile too many"),
    ("flash_attention", flash_full_blocks_only, "the last, smaller block of keys is left out"),
    ("flash_attention", flash_state_as_wide_as_queries, "The output is as wide as the values"),
    ("flash_attention", flash_precomputed_mask, "neither scores nor weights nor a (T, S) mask"),
]

RIGHT = [
    ("online_softmax_update", online_update_logsumexp),
    ("flash_attention", flash_keys_outside),
    ("online_softmax_update", online_clamped_guard),
    ("flash_attention", flash_query_strips_reversed),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)
