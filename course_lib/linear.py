"""Linear attention: the kernel view, attention as an RNN, and random features (lesson 09).

Softmax attention weighs key j for query i by ``exp(q_i·k_j / √D)``. Replace that by a product of features,
``φ(q_i)·φ(k_j)``, and associativity does the rest: ``(φ(Q) φ(K)ᵀ) V = φ(Q) (φ(K)ᵀ V)``, so the ``(T, S)``
matrix never forms and the cost drops from ``O(T·S·D)`` to ``O((T + S)·D·Dv)`` (Katharopoulos et al.,
"Transformers are RNNs", 2020, with ``φ(x) = elu(x) + 1``). Causal linear attention is a running sum: a
recurrent network whose state ``(U, z)`` has the same size at every step. Random features (Performer,
Choromanski et al., 2021) choose ``φ`` so that ``φ(q)·φ(k)`` estimates ``exp(q·k)`` itself.

Three forms of the same causal computation, proven equal in ``tests/test_linear.py``: the masked quadratic
form (:func:`kernel_attention_weights`), cumulative sums (:func:`causal_linear_attention`) and a loop
(:func:`recurrent_linear_attention`, one :func:`linear_attention_step` per token); and the chunked form fast
implementations use, which mixes the first two (:func:`chunked_causal_linear_attention`).
Shapes: ``B`` batch, ``H`` heads, ``T`` query positions, ``S`` key positions, ``D`` query/key dim, ``Dv``
value dim, ``M`` random features. ``S`` always counts keys; the recurrent state is ``U = Σ_j φ(k_j) v_jᵀ``
(a (D, Dv) matrix) with its normaliser ``z = Σ_j φ(k_j)``.

Lesson: notebooks/09_linear_attention.ipynb. Tests: tests/test_linear.py.
"""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from course_lib.attention import SelfAttention, causal_mask
from course_lib.validation import (require_attention_inputs, require_matching_features, require_rank,
                                   require_whole_numbers)


def _require_self_attention(query: torch.Tensor, key: torch.Tensor) -> None:
    """Causal linear attention runs along one sequence: as many queries as keys."""
    if query.shape[-2] != key.shape[-2]:
        raise ValueError(
            f"causal linear attention needs as many queries as keys (each query i sums keys 0..i of the same "
            f"sequence); got T={query.shape[-2]} queries and S={key.shape[-2]} keys"
        )


# ----------------------------------------------------------------------------------------------------------
# The kernel view
# ----------------------------------------------------------------------------------------------------------

def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """φ(x) = elu(x) + 1, feature by feature: x + 1 for x > 0, exp(x) for x <= 0; always positive.

    Positive features make every weight φ(q)·φ(k) positive, like exp(q·k), so the normalised weights are an
    average of the values (Katharopoulos et al., 2020).
    """
    return F.elu(x) + 1  # (..., D)


def kernel_attention_weights(query_features: torch.Tensor, key_features: torch.Tensor,
                             is_causal: bool = False) -> torch.Tensor:
    """(..., T, S): the weights φ(q_i)·φ(k_j) / Σ_j φ(q_i)·φ(k_j), the quadratic form of kernel attention.

    This builds the whole (T, S) matrix, as softmax attention does: it is here to look at the weights and to
    prove the fast forms equal, not to be fast. Causal: keys j <= i only.
    """
    require_matching_features("query_features", query_features, "key_features", key_features)
    similarities = query_features @ key_features.transpose(-2, -1)  # (..., T, S)
    if is_causal:
        _require_self_attention(query_features, key_features)
        mask = causal_mask(query_features.shape[-2], device=similarities.device)  # (T, S)
        similarities = similarities * mask  # (..., T, S): the future weighs 0
    return similarities / similarities.sum(dim=-1, keepdim=True)  # (..., T, S): rows sum to 1


def kernel_attention(query_features: torch.Tensor, key_features: torch.Tensor, value: torch.Tensor,
                     is_causal: bool = False) -> torch.Tensor:
    """Attention with weights φ(q)·φ(k), computed right to left: φ(Q) (φ(K)ᵀ V), never a (T, S) matrix.

    Non-causal: one (D, Dv) summary ``U = φ(K)ᵀ V`` of all keys and values, and one normaliser ``z = Σ_j φ(k_j)``.
    Causal: the same sums over keys 0..i for query i, as cumulative sums along the positions, which hold a
    (D, Dv) state per position: ``O(T·D·Dv)`` memory (:func:`chunked_causal_linear_attention` needs less).
    """
    require_attention_inputs(query_features, key_features, value)
    if is_causal:
        _require_self_attention(query_features, key_features)
        outer = key_features.unsqueeze(-1) * value.unsqueeze(-2)  # (..., S, D, Dv): φ(k_j) v_jᵀ
        states = torch.cumsum(outer, dim=-3)  # (..., T, D, Dv): U_i = Σ_{j<=i} φ(k_j) v_jᵀ
        normalisers = torch.cumsum(key_features, dim=-2)  # (..., T, D): z_i = Σ_{j<=i} φ(k_j)
        numerators = (query_features.unsqueeze(-2) @ states).squeeze(-2)  # (..., T, Dv): φ(q_i)ᵀ U_i
        denominators = (query_features * normalisers).sum(dim=-1, keepdim=True)  # (..., T, 1): φ(q_i)·z_i
    else:
        summary = key_features.transpose(-2, -1) @ value  # (..., D, Dv): U = Σ_j φ(k_j) v_jᵀ
        normaliser = key_features.sum(dim=-2, keepdim=True)  # (..., 1, D): z = Σ_j φ(k_j)
        numerators = query_features @ summary  # (..., T, Dv)
        denominators = query_features @ normaliser.transpose(-2, -1)  # (..., T, 1): φ(q_i)·z
    return numerators / denominators  # (..., T, Dv)


def linear_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     is_causal: bool = False) -> torch.Tensor:
    """Linear attention (Katharopoulos et al., 2020): weights φ(q)·φ(k) with φ = elu + 1; output (..., T, Dv).

    query (..., T, D), key (..., S, D), value (..., S, Dv). Cost ``O((T + S)·D·Dv)`` instead of softmax
    attention's ``O(T·S·D)``. ``is_causal=True`` lets query i see keys 0..i (needs T = S).
    """
    require_attention_inputs(query, key, value)
    return kernel_attention(elu_feature_map(query), elu_feature_map(key), value, is_causal=is_causal)


def causal_linear_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Causal linear attention by cumulative sums: output i = φ(q_i)ᵀ U_i / φ(q_i)·z_i, sums over keys 0..i."""
    return linear_attention(query, key, value, is_causal=True)


# ----------------------------------------------------------------------------------------------------------
# Attention as a recurrent network
# ----------------------------------------------------------------------------------------------------------

def linear_attention_step(state: torch.Tensor, normaliser: torch.Tensor, query: torch.Tensor, key: torch.Tensor,
                          value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One token of causal linear attention: returns (output (..., Dv), new state (..., D, Dv), new z (..., D)).

    query and key (..., D) and value (..., Dv) are the newest token's. The state ``U = Σ φ(k_j) v_jᵀ`` and the
    normaliser ``z = Σ φ(k_j)`` summarise every token so far in a fixed size: the memory of an RNN, where
    softmax attention's KV cache grows by a key and a value per token.
    """
    query_features, key_features = elu_feature_map(query), elu_feature_map(key)  # (..., D) each
    state = state + key_features.unsqueeze(-1) * value.unsqueeze(-2)  # (..., D, Dv)
    normaliser = normaliser + key_features  # (..., D)
    numerator = (query_features.unsqueeze(-2) @ state).squeeze(-2)  # (..., Dv)
    denominator = (query_features * normaliser).sum(dim=-1, keepdim=True)  # (..., 1)
    return numerator / denominator, state, normaliser


def recurrent_linear_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Causal linear attention one token at a time with :func:`linear_attention_step`; output (..., T, Dv).

    Slow in Python (T small steps) but the form generation uses: constant memory and time per token.
    """
    require_attention_inputs(query, key, value)
    _require_self_attention(query, key)
    batch_shape = query.shape[:-2]
    state = query.new_zeros(*batch_shape, query.shape[-1], value.shape[-1])  # (..., D, Dv)
    normaliser = query.new_zeros(*batch_shape, query.shape[-1])  # (..., D)
    outputs = []
    for position in range(query.shape[-2]):
        output, state, normaliser = linear_attention_step(
            state, normaliser, query[..., position, :], key[..., position, :], value[..., position, :])
        outputs.append(output)  # (..., Dv)
    return torch.stack(outputs, dim=-2)  # (..., T, Dv)


def chunked_causal_linear_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                    chunk_size: int = 64) -> torch.Tensor:
    """Causal linear attention in chunks, the form fast implementations use; output (..., T, Dv).

    Inside each chunk of ``chunk_size`` positions: the masked quadratic form, a (C, C) tile. Between chunks:
    the state (U, z) of all earlier chunks, one (D, Dv) matrix per chunk. Memory ``O(T·C + (T/C)·D·Dv)``
    instead of the cumulative sums' ``O(T·D·Dv)``; equal to :func:`causal_linear_attention`.
    """
    require_attention_inputs(query, key, value)
    _require_self_attention(query, key)
    require_whole_numbers(chunk_size=chunk_size)
    batch_shape, length = query.shape[:-2], query.shape[-2]
    padding = -length % chunk_size  # positions added at the end so that the chunks tile the sequence
    query_features = F.pad(elu_feature_map(query), (0, 0, 0, padding), value=1.0)  # (..., T', D): never 0/0
    key_features = F.pad(elu_feature_map(key), (0, 0, 0, padding))  # (..., T', D): padded keys weigh 0
    value = F.pad(value, (0, 0, 0, padding))  # (..., T', Dv)
    num_chunks = (length + padding) // chunk_size
    queries = query_features.reshape(*batch_shape, num_chunks, chunk_size, -1)  # (..., N, C, D)
    keys = key_features.reshape(*batch_shape, num_chunks, chunk_size, -1)  # (..., N, C, D)
    values = value.reshape(*batch_shape, num_chunks, chunk_size, -1)  # (..., N, C, Dv)
    # 1) within each chunk: the masked quadratic form
    mask = causal_mask(chunk_size, device=query.device)  # (C, C)
    local = (queries @ keys.transpose(-2, -1)) * mask  # (..., N, C, C)
    # 2) between chunks: the state of every earlier chunk, a cumulative sum over chunks that leaves out its own
    chunk_states = keys.transpose(-2, -1) @ values  # (..., N, D, Dv)
    chunk_normalisers = keys.sum(dim=-2)  # (..., N, D)
    earlier_states = torch.cumsum(chunk_states, dim=-3) - chunk_states  # (..., N, D, Dv)
    earlier_normalisers = torch.cumsum(chunk_normalisers, dim=-2) - chunk_normalisers  # (..., N, D)
    # 3) both parts together
    numerators = local @ values + queries @ earlier_states  # (..., N, C, Dv)
    denominators = local.sum(dim=-1, keepdim=True) + queries @ earlier_normalisers.unsqueeze(-1)  # (..., N, C, 1)
    output = (numerators / denominators).reshape(*batch_shape, length + padding, -1)  # (..., T', Dv)
    return output[..., :length, :]  # (..., T, Dv)


def recurrent_state_bytes(head_dim: int, value_dim: int | None = None, bytes_per_value: int = 4) -> int:
    """Bytes of one head's recurrent state (U, z): D·Dv + D numbers, whatever the length of the sequence."""
    value_dim = head_dim if value_dim is None else value_dim
    require_whole_numbers(head_dim=head_dim, value_dim=value_dim, bytes_per_value=bytes_per_value)
    return (head_dim * value_dim + head_dim) * bytes_per_value


def linear_attention_flops(num_queries: int, num_keys: int, head_dim: int, value_dim: int | None = None) -> int:
    """FLOPs of non-causal linear attention for one head (feature maps not counted): ``2·(T + S)·D·(Dv + 1)``.

    ``U = φ(K)ᵀ V`` and ``z`` take ``2·S·D·(Dv + 1)``, a multiply and an add per term, counting ``z`` as one
    more column of V (a column of ones; summed directly, ``z`` takes only ``S·D`` additions, so the exact count is
    ``S·D`` lower); ``φ(Q)`` times both takes ``2·T·D·(Dv + 1)``. Compare ``4·T·S·D`` for softmax attention
    (:func:`course_lib.cost.attention_flops`).
    """
    value_dim = head_dim if value_dim is None else value_dim
    require_whole_numbers(num_queries=num_queries, num_keys=num_keys, head_dim=head_dim, value_dim=value_dim)
    return 2 * (num_queries + num_keys) * head_dim * (value_dim + 1)


class LinearSelfAttention(SelfAttention):
    """One head of linear self-attention: lesson 03's :class:`~course_lib.attention.SelfAttention` with
    ``exp(q·k/√D)`` replaced by ``φ(q)·φ(k)``. The same parameters (``query``, ``key``, ``value``), so the two
    can be trained side by side from the same initial weights; ``last_weights`` holds the (detached) weights."""

    def forward(self, x: torch.Tensor, is_causal: bool = False) -> torch.Tensor:
        require_rank("x", x, at_least=2)
        if x.shape[-1] != self.query.in_features:
            raise ValueError(f"x has feature size {x.shape[-1]}, expected d_model={self.query.in_features}")
        queries, keys, values = self.query(x), self.key(x), self.value(x)  # (B, T, D) each
        with torch.no_grad():  # the weights are for looking at; the output never forms them
            self.last_weights = kernel_attention_weights(
                elu_feature_map(queries), elu_feature_map(keys), is_causal=is_causal)  # (B, T, T)
        return linear_attention(queries, keys, values, is_causal=is_causal)  # (B, T, D)


# ----------------------------------------------------------------------------------------------------------
# Random features for softmax itself (Performer, FAVOR+)
# ----------------------------------------------------------------------------------------------------------

def sample_omega(num_features: int, dim: int, orthogonal: bool = True, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(M, D): M random directions ω_i ~ N(0, I_D), the rows of the random-feature projection.

    ``orthogonal=True`` makes the rows of each block of D exactly orthogonal, keeping the length each would
    have as a Gaussian vector (Performer's ORF): the features then cover the directions more evenly, which
    lowers the estimate's variance at no cost. M > D takes several independent blocks.
    """
    require_whole_numbers(num_features=num_features, dim=dim)
    gaussian = torch.randn(num_features, dim, generator=generator, dtype=torch.float64)  # (M, D)
    if not orthogonal:
        return gaussian.to(dtype)
    blocks = []
    for start in range(0, num_features, dim):
        square = torch.randn(dim, dim, generator=generator, dtype=torch.float64)  # (D, D)
        q, r = torch.linalg.qr(square)  # (D, D) each; q's columns are orthonormal
        q = q * torch.sign(torch.diagonal(r))  # (D, D): fix the signs, so that q is uniformly random
        blocks.append(q.T[: num_features - start])  # (≤D, D): orthonormal rows
    directions = torch.cat(blocks, dim=0)  # (M, D), unit rows
    lengths = gaussian.norm(dim=-1, keepdim=True)  # (M, 1): chi-distributed, as a Gaussian vector's
    return (directions * lengths).to(dtype)  # (M, D)


def _random_feature_logits(x: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """(..., T, M): ω_iᵀx − ‖x‖²/2, the exponents of the positive random features."""
    require_rank("x", x, at_least=1)
    require_rank("omega", omega, at_least=2, at_most=2)
    if x.shape[-1] != omega.shape[-1]:
        raise ValueError(f"x has feature size {x.shape[-1]} but omega has rows of size {omega.shape[-1]}: "
                         f"omega must be (M, D) with D = x.shape[-1]; got x {tuple(x.shape)}, omega "
                         f"{tuple(omega.shape)}")
    projections = x @ omega.transpose(-2, -1)  # (..., T, M): ω_iᵀx
    half_norms = (x * x).sum(dim=-1, keepdim=True) / 2  # (..., T, 1): ‖x‖²/2
    return projections - half_norms  # (..., T, M)


def positive_random_features(x: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """(..., T, M): φ(x)_i = exp(ω_iᵀx − ‖x‖²/2) / √M, so that E[φ(q)·φ(k)] = exp(q·k), ω_i ~ N(0, I).

    Every feature is positive, so every estimated weight is too; and an estimate of a small exp(q·k) has a
    small error (Performer's FAVOR+, Choromanski et al., 2021).
    """
    return torch.exp(_random_feature_logits(x, omega)) / math.sqrt(omega.shape[0])  # (..., T, M)


def trigonometric_random_features(x: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """(..., T, 2M): exp(‖x‖²/2)/√M · [sin(ω_iᵀx), cos(ω_iᵀx)], random Fourier features for exp(q·k).

    Also unbiased, but the features can be negative: where the true exp(q·k) is small, the estimate keeps a
    large error and can even fall below zero. Here to be compared with :func:`positive_random_features`.
    """
    require_rank("omega", omega, at_least=2, at_most=2)
    projections = x @ omega.transpose(-2, -1)  # (..., T, M)
    scale = torch.exp((x * x).sum(dim=-1, keepdim=True) / 2) / math.sqrt(omega.shape[0])  # (..., T, 1)
    return scale * torch.cat([torch.sin(projections), torch.cos(projections)], dim=-1)  # (..., T, 2M)


def performer_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, num_features: int,
                        orthogonal: bool = True, generator: torch.Generator | None = None,
                        omega: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax attention approximated by M positive random features (FAVOR+); output (..., T, Dv).

    Queries and keys are scaled by D^(-1/4), so that q'·k' = q·k/√D, the softmax's score. Each query's
    features are divided by their largest, and all keys' by the keys' largest: positive factors that cancel
    in the normalisation but keep exp from overflowing. Pass ``omega`` (M, D) to reuse one draw.
    """
    require_attention_inputs(query, key, value)
    dim = query.shape[-1]
    if omega is None:
        omega = sample_omega(num_features, dim, orthogonal=orthogonal, generator=generator, dtype=query.dtype)
    elif omega.shape != (num_features, dim):
        raise ValueError(f"omega must have shape (num_features, D) = {(num_features, dim)}, got {tuple(omega.shape)}")
    scale = dim ** -0.25
    query_logits = _random_feature_logits(query * scale, omega)  # (..., T, M)
    key_logits = _random_feature_logits(key * scale, omega)  # (..., S, M)
    query_features = torch.exp(query_logits - query_logits.amax(dim=-1, keepdim=True))  # (..., T, M)
    key_features = torch.exp(key_logits - key_logits.amax(dim=(-2, -1), keepdim=True))  # (..., S, M)
    return kernel_attention(query_features, key_features, value)  # (..., T, Dv)
