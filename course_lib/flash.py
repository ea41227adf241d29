"""Lesson 08: flash attention — exact attention, one key block at a time, with an online softmax.

The softmax over a row of scores needs its maximum and its sum, which seem to need the whole row. They do not:
keep a running maximum ``m``, a running normaliser ``l`` and an unnormalised output ``out``; when a new block
of scores raises the maximum, rescale what you have by ``exp(m_old - m_new)`` (FlashAttention, Dao et al.
2022, Algorithm 1; the FlashAttention-2 form divides by ``l`` once, at the end). The result is the exact
softmax, not an approximation, and no more than one block x block tile of scores per head ever exists.

Also here: a simulator of the memory traffic between a large slow memory and a small fast one, which is why
this is fast on a GPU (the work is the same; the bytes moved are not).

Lesson: notebooks/08_flash_attention.ipynb. Tests: tests/test_flash.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from course_lib.validation import require_attention_inputs

DEFAULT_BLOCK_SIZE = 256  # on a CPU, tiles of a few hundred keys keep the loop's overhead small (benchmarks/flash_attention.py)


# ----------------------------------------------------------------------------------------------------------
# The online softmax
# ----------------------------------------------------------------------------------------------------------

def online_softmax_start(query: Tensor, value_dim: int) -> tuple[Tensor, Tensor, Tensor]:
    """The state before any key is seen: m = -inf, l = 0, out = 0, for the rows of ``query`` (..., T, D)."""
    rows = query.shape[:-1]  # (..., T)
    m = torch.full(rows, float("-inf"), dtype=query.dtype)  # (..., T) running maximum of the scores
    l = torch.zeros(rows, dtype=query.dtype)  # (..., T) running sum of exp(score - m)
    out = torch.zeros(*rows, value_dim, dtype=query.dtype)  # (..., T, Dv) running sum of exp(score - m) * value
    return m, l, out


def online_softmax_update(m: Tensor, l: Tensor, out: Tensor, scores_block: Tensor, values_block: Tensor,
                          in_place: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Fold one block of keys into the running state; return the new ``(m, l, out)``.

    m (..., T): the largest score seen so far in each row (-inf before any key, or if all were masked)
    l (..., T): the sum of exp(score - m) over the keys seen so far
    out (..., T, Dv): the sum of exp(score - m) * value over the keys seen so far (not yet divided by l)
    scores_block (..., T, Sb): the scaled scores of the rows against this block's keys (-inf = masked)
    values_block (..., Sb, Dv): this block's values
    After the last block, the attention output is ``out / l`` (see :func:`online_softmax_finish`).

    ``in_place=True`` computes the same numbers in the memory of ``l``, ``out`` and ``scores_block``, which the
    caller then no longer has (3-D tensors only; not under autograd). Flash attention does this: allocating
    a fresh tile and state for every block cost it a quarter of its time on a CPU.
    """
    m_new = torch.maximum(m, scores_block.amax(dim=-1))  # (..., T)
    # a row that has seen only masked keys keeps m = -inf; shift it by 0 so that exp gives 0, not NaN
    shift = m_new.nan_to_num(neginf=0.0)  # (..., T)
    rescale = torch.exp(m - shift)  # (..., T) how much the old sums shrink when the maximum grows
    if in_place:
        weights = scores_block.sub_(shift.unsqueeze(-1)).exp_()  # (N, T, Sb): the tile becomes its weights
        l.mul_(rescale).add_(weights.sum(dim=-1))  # (N, T)
        out.mul_(rescale.unsqueeze(-1)).baddbmm_(weights, values_block)  # (N, T, Dv): += weights @ values
        return m_new, l, out
    weights = torch.exp(scores_block - shift.unsqueeze(-1))  # (..., T, Sb) unnormalised softmax of the block
    l_new = rescale * l + weights.sum(dim=-1)  # (..., T)
    out_new = rescale.unsqueeze(-1) * out + weights @ values_block  # (..., T, Dv)
    return m_new, l_new, out_new


def online_softmax_finish(l: Tensor, out: Tensor) -> Tensor:
    """The attention output ``out / l`` (..., T, Dv); rows that saw no allowed key give zeros, as in lesson 02."""
    safe = torch.where(l > 0, l, torch.ones_like(l))  # (..., T)
    return out / safe.unsqueeze(-1)  # (..., T, Dv)


def online_softmax_steps(scores: Tensor, values: Tensor, block_size: int) -> list[dict]:
    """The running state after each key block, for one query row: what the lesson 08 widget steps through.

    scores (S,): one query's scaled scores; values (S, Dv). Each step holds ``m``, ``l``, the output so far
    ``out / l`` (already the exact softmax-weighted average of the keys seen) and how many keys were seen.
    """
    m, l, out = online_softmax_start(scores[:1].unsqueeze(-1), values.shape[-1])  # (1,), (1,), (1, Dv)
    steps = []
    for start in range(0, scores.shape[-1], block_size):
        block = slice(start, start + block_size)
        m, l, out = online_softmax_update(m, l, out, scores[block].unsqueeze(0), values[block])
        steps.append({"m": float(m[0]), "l": float(l[0]), "output": online_softmax_finish(l, out)[0],
                      "seen": min(start + block_size, scores.shape[-1])})
    return steps


# ----------------------------------------------------------------------------------------------------------
# Tiled attention
# ----------------------------------------------------------------------------------------------------------

def flash_attention(query: Tensor, key: Tensor, value: Tensor, is_causal: bool = False,
                    block_size: int = DEFAULT_BLOCK_SIZE, scale: float | None = None) -> Tensor:
    """Exact attention output (..., T, Dv) computed tile by tile: at most one (block, block) score tile per head.

    Same result as ``scaled_dot_product_attention(query, key, value, is_causal=is_causal)[0]`` (lesson 03) for
    any T, S and block size. With ``is_causal``, query i sees keys j <= i, and tiles wholly above the diagonal
    are skipped, not computed and masked. (Autograd would store every tile for the backward pass; see
    :class:`FlashAttentionFunction` for a backward pass that recomputes them instead.)
    """
    return flash_attention_forward(query, key, value, is_causal, block_size, scale)[0]


def _check_inputs(query: Tensor, key: Tensor, value: Tensor, block_size: int) -> None:
    require_attention_inputs(query, key, value)
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")


def _key_blocks(q_start: int, q_length: int, num_keys: int, block_size: int, is_causal: bool):
    """The (start, end) of each key block a query block [q_start, q_start + q_length) must see."""
    for k_start in range(0, num_keys, block_size):
        if is_causal and k_start > q_start + q_length - 1:
            return  # this tile and all after it lie above the diagonal: every key is in the future
        yield k_start, min(k_start + block_size, num_keys)


def _masked_tile(scores: Tensor, q_start: int, k_start: int, is_causal: bool) -> Tensor:
    """A tile of scores (..., Bq, Bk) with the future keys set to -inf when it crosses the causal diagonal."""
    q_length, k_length = scores.shape[-2], scores.shape[-1]
    if not is_causal or k_start + k_length - 1 <= q_start:  # wholly on or below the diagonal
        return scores
    rows = torch.arange(q_start, q_start + q_length).unsqueeze(-1)  # (Bq, 1)
    cols = torch.arange(k_start, k_start + k_length)  # (Bk,)
    return scores.masked_fill(cols > rows, float("-inf"))  # (..., Bq, Bk)


def flash_attention_forward(query: Tensor, key: Tensor, value: Tensor, is_causal: bool = False,
                            block_size: int = DEFAULT_BLOCK_SIZE, scale: float | None = None) -> tuple[Tensor, Tensor]:
    """The tiled forward pass: the output (..., T, Dv) and each row's log-sum-exp m + log l (..., T).

    The log-sum-exp is all the backward pass needs to recompute any tile's weights exactly:
    weights = exp(scores - logsumexp). Rows that see no key get output 0 and logsumexp -inf.
    """
    _check_inputs(query, key, value, block_size)
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    batch = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])  # (...): batch, heads
    query, key, value = (x.expand(*batch, *x.shape[-2:]).reshape(math.prod(batch), *x.shape[-2:])
                         for x in (query, key, value))  # (N, T, D), (N, S, D), (N, S, Dv): N = every head
    # the state and each tile are overwritten in place, unless autograd must keep them for a backward pass
    in_place = not (torch.is_grad_enabled() and any(x.requires_grad for x in (query, key, value)))
    outputs, logsumexps = [], []
    for q_start in range(0, query.shape[-2], block_size):
        q_block = query[:, q_start:q_start + block_size] * scale  # (N, Bq, D): scaled once, not every tile
        m, l, out = online_softmax_start(q_block, value.shape[-1])
        for k_start, k_end in _key_blocks(q_start, q_block.shape[-2], key.shape[-2], block_size, is_causal):
            scores = q_block @ key[:, k_start:k_end].transpose(-2, -1)  # (N, Bq, Bk): the only score tile
            scores = _masked_tile(scores, q_start, k_start, is_causal)
            m, l, out = online_softmax_update(m, l, out, scores, value[:, k_start:k_end], in_place)
        outputs.append(online_softmax_finish(l, out))  # (N, Bq, Dv)
        logsumexps.append(m + torch.log(l))  # (N, Bq): -inf where l = 0
    output, logsumexp = torch.cat(outputs, dim=-2), torch.cat(logsumexps, dim=-1)  # (N, T, Dv), (N, T)
    return output.reshape(*batch, *output.shape[-2:]), logsumexp.reshape(*batch, -1)  # (..., T, Dv), (..., T)


def flash_attention_backward(query: Tensor, key: Tensor, value: Tensor, output: Tensor, logsumexp: Tensor,
                             grad_output: Tensor, is_causal: bool = False, block_size: int = DEFAULT_BLOCK_SIZE,
                             scale: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients (dquery, dkey, dvalue), recomputing each tile's weights from the saved log-sum-exp.

    For one tile: P = exp(S - logsumexp); dV += Pᵀ dO; dP = dO Vᵀ; dS = P * (dP - rowsum(dO * O));
    dQ += dS K * scale; dK += dSᵀ Q * scale (FlashAttention-2, Algorithm 2). No (T, S) matrix is stored.
    """
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    grad_query, grad_key, grad_value = torch.zeros_like(query), torch.zeros_like(key), torch.zeros_like(value)
    row_dot = (grad_output * output).sum(dim=-1)  # (..., T): rowsum(dO * O)
    # rows that saw no key have logsumexp -inf and weights 0: shift them by +inf so that exp gives 0, not NaN
    shift = torch.where(torch.isinf(logsumexp), torch.full_like(logsumexp, float("inf")), logsumexp)  # (..., T)
    for q_start in range(0, query.shape[-2], block_size):
        rows = slice(q_start, q_start + block_size)
        q_block, d_out = query[..., rows, :], grad_output[..., rows, :]  # (..., Bq, D), (..., Bq, Dv)
        for k_start, k_end in _key_blocks(q_start, q_block.shape[-2], key.shape[-2], block_size, is_causal):
            k_block, v_block = key[..., k_start:k_end, :], value[..., k_start:k_end, :]  # (..., Bk, D|Dv)
            scores = _masked_tile(q_block @ k_block.transpose(-2, -1) * scale, q_start, k_start, is_causal)
            weights = torch.exp(scores - shift[..., rows].unsqueeze(-1))  # (..., Bq, Bk) recomputed, exact
            grad_value[..., k_start:k_end, :] += weights.transpose(-2, -1) @ d_out  # (..., Bk, Dv)
            grad_weights = d_out @ v_block.transpose(-2, -1)  # (..., Bq, Bk)
            grad_scores = weights * (grad_weights - row_dot[..., rows].unsqueeze(-1))  # (..., Bq, Bk)
            grad_query[..., rows, :] += grad_scores @ k_block * scale  # (..., Bq, D)
            grad_key[..., k_start:k_end, :] += grad_scores.transpose(-2, -1) @ q_block * scale  # (..., Bk, D)
    return grad_query, grad_key, grad_value


class FlashAttentionFunction(torch.autograd.Function):
    """Flash attention with its own backward pass: saves only the output and the log-sum-exp, not the tiles.

    ``FlashAttentionFunction.apply(query, key, value, is_causal, block_size)`` returns the output.
    """

    @staticmethod
    def forward(ctx, query, key, value, is_causal=False, block_size=DEFAULT_BLOCK_SIZE):
        output, logsumexp = flash_attention_forward(query, key, value, is_causal, block_size)
        ctx.save_for_backward(query, key, value, output, logsumexp)
        ctx.is_causal, ctx.block_size = is_causal, block_size
        return output

    @staticmethod
    def backward(ctx, grad_output):
        query, key, value, output, logsumexp = ctx.saved_tensors
        grads = flash_attention_backward(query, key, value, output, logsumexp, grad_output,
                                         ctx.is_causal, ctx.block_size)
        return (*grads, None, None)


# ----------------------------------------------------------------------------------------------------------
# Memory traffic: a slow large memory (HBM) and a fast small one (SRAM) of `fast_bytes`
# ----------------------------------------------------------------------------------------------------------

@dataclass
class MemoryTraffic:
    """Counts bytes moved between slow and fast memory, and checks that fast memory never overflows."""

    fast_bytes: int
    bytes_per_number: int = 4
    read: int = 0
    written: int = 0
    in_fast: int = 0
    peak_fast: int = 0

    def load(self, numbers: int) -> None:
        """Bring ``numbers`` values from slow into fast memory."""
        self.read += numbers * self.bytes_per_number
        self.hold(numbers)

    def store(self, numbers: int) -> None:
        """Write ``numbers`` values from fast memory back to slow memory."""
        self.written += numbers * self.bytes_per_number

    def hold(self, numbers: int) -> None:
        """Keep ``numbers`` more values in fast memory (loaded or computed there)."""
        self.in_fast += numbers * self.bytes_per_number
        self.peak_fast = max(self.peak_fast, self.in_fast)
        if self.in_fast > self.fast_bytes:
            raise ValueError(f"fast memory overflow: {self.in_fast} bytes held, only {self.fast_bytes} available")

    def drop(self, numbers: int) -> None:
        """Free ``numbers`` values of fast memory."""
        self.in_fast -= numbers * self.bytes_per_number

    @property
    def total(self) -> int:
        return self.read + self.written


def _matmul_block(fast_numbers: int, inner: int) -> int:
    """The largest b with two (b, inner) operand blocks and a (b, b) result tile in fast memory."""
    b = int((math.sqrt(inner ** 2 + fast_numbers) - inner))  # solves b^2 + 2 b inner = fast_numbers
    if b < 1:
        raise ValueError(f"fast memory of {fast_numbers} numbers cannot hold even one row pair of length {inner}")
    return b


def standard_attention_traffic(length: int, head_dim: int, fast_bytes: int, bytes_per_number: int = 4) -> MemoryTraffic:
    """Traffic of standard attention (FlashAttention paper, Algorithm 0): S = QKᵀ, P = softmax(S), O = PV,
    each step reading its inputs from slow memory and writing its (T, T) result back. Θ(T·D + T²) bytes."""
    T, D = length, head_dim
    traffic = MemoryTraffic(fast_bytes, bytes_per_number)
    fast = fast_bytes // bytes_per_number
    b = min(_matmul_block(fast, D), T)
    # 1) S = Q Kᵀ, in (b, b) tiles: a block of Q rows stays while every block of K passes through
    for q_start in range(0, T, b):
        rows = min(b, T - q_start)
        traffic.load(rows * D)
        for k_start in range(0, T, b):
            cols = min(b, T - k_start)
            traffic.load(cols * D)
            traffic.hold(rows * cols)
            traffic.store(rows * cols)
            traffic.drop(rows * cols + cols * D)
        traffic.drop(rows * D)
    # 2) P = softmax(S), row by row: one pass if a row fits in fast memory, else three (max, sum, write)
    passes = 1 if T <= fast else 3
    traffic.read += passes * T * T * bytes_per_number
    traffic.written += T * T * bytes_per_number
    # 3) O = P V, in tiles: a (b, D) block of O accumulates over (b, b) tiles of P and (b, D) blocks of V
    for q_start in range(0, T, b):
        rows = min(b, T - q_start)
        traffic.hold(rows * D)
        for k_start in range(0, T, b):
            cols = min(b, T - k_start)
            traffic.load(rows * cols + cols * D)
            traffic.drop(rows * cols + cols * D)
        traffic.store(rows * D)
        traffic.drop(rows * D)
    return traffic


def flash_attention_traffic(length: int, head_dim: int, fast_bytes: int, bytes_per_number: int = 4) -> MemoryTraffic:
    """Traffic of tiled attention (Algorithm 1): blocks of K, V stay in fast memory while every block of Q, O,
    l, m passes through; no (T, T) matrix is ever written. Θ(T²·D²/M) bytes for fast memory of M bytes."""
    T, D = length, head_dim
    traffic = MemoryTraffic(fast_bytes, bytes_per_number)
    fast = fast_bytes // bytes_per_number
    key_block = min(fast // (4 * D), T)  # Bc = ⌊M / 4D⌋ in the paper
    # Br = min(Bc, D) in the paper, shrunk if need be so that K_j, V_j, Q_i, O_i, l_i, m_i and S_ij all fit
    query_block = min(key_block, D, (fast - 2 * key_block * D) // (2 * D + key_block + 2))
    if key_block < 1 or query_block < 1:
        raise ValueError(f"fast memory of {fast_bytes} bytes is too small for head_dim={D}: it must hold at "
                         f"least {(6 * D + 3) * bytes_per_number} bytes")
    traffic.written += 3 * T * bytes_per_number  # O, l, m initialised to 0, 0, -inf in slow memory
    for k_start in range(0, T, key_block):
        cols = min(key_block, T - k_start)
        traffic.load(2 * cols * D)  # K_j, V_j
        for q_start in range(0, T, query_block):
            rows = min(query_block, T - q_start)
            traffic.load(2 * rows * D + 2 * rows)  # Q_i, O_i, l_i, m_i
            traffic.hold(rows * cols)  # the score tile S_ij (and then P_ij, in place)
            traffic.store(rows * D + 2 * rows)  # O_i, l_i, m_i updated
            traffic.drop(rows * cols + 2 * rows * D + 2 * rows)
        traffic.drop(2 * cols * D)
    return traffic
