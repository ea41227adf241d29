"""Attention by hand, in numpy: the reference implementations of lessons 01 (attention) and 02 (masks).

Shapes: ``T`` query positions, ``S`` key positions, ``D`` query/key feature size, ``Dv`` value feature size;
any leading ``...`` axes are batch axes and broadcast. Mask convention: ``True`` means "may attend".
Lesson 03 moves the same ideas to PyTorch in :mod:`course_lib.attention`.

Lessons: notebooks/01_attention_by_hand.ipynb, notebooks/02_masks_and_stability.ipynb. Tests: tests/test_numpy_attention.py.
"""
from __future__ import annotations

import numpy as np

from course_lib.validation import require_mask_shape, require_matching_features, require_rank


def softmax(x, axis: int = -1) -> np.ndarray:
    """Turn scores into weights that are positive and sum to 1 along ``axis``.

    Subtracting the maximum first changes nothing mathematically (softmax is shift-invariant) but keeps
    ``exp`` from overflowing. A slice that is entirely ``-inf`` (everything masked) has nothing to attend to
    and gets all-zero weights instead of 0/0 = NaN.
    """
    x = np.asarray(x)
    largest = np.max(x, axis=axis, keepdims=True)  # same rank as x, size 1 along axis
    largest = np.where(np.isfinite(largest), largest, 0.0)  # an all -inf slice: shift by 0, not by -inf
    exps = np.exp(x - largest)  # same shape as x; every entry in (0, 1]
    totals = np.sum(exps, axis=axis, keepdims=True)  # size 1 along axis
    weights = np.divide(exps, totals, out=np.zeros_like(exps), where=totals > 0)  # zeros where all masked
    return weights


def attention_scores(queries, keys) -> np.ndarray:
    """Scaled dot-product scores: how well each query matches each key, ``queries @ keys^T / sqrt(D)``.

    queries (..., T, D), keys (..., S, D) -> scores (..., T, S). Dividing by sqrt(D) keeps the scores'
    spread independent of D, so the softmax does not saturate in high dimensions (lesson 01 measures it).
    """
    queries, keys = np.asarray(queries), np.asarray(keys)
    require_rank("queries", queries, at_least=2)
    require_rank("keys", keys, at_least=2)
    require_matching_features("queries", queries, "keys", keys)
    head_dim = queries.shape[-1]
    keys_transposed = np.swapaxes(keys, -1, -2)  # (..., D, S)
    return queries @ keys_transposed / np.sqrt(head_dim)  # (..., T, S)


def scaled_dot_product_attention(queries, keys, values, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """Attention: each query takes a weighted average of the values, weighted by softmax(scores).

    queries (..., T, D), keys (..., S, D), values (..., S, Dv), optional boolean ``mask`` broadcastable to
    (..., T, S) with True = may attend. Returns ``(output (..., T, Dv), weights (..., T, S))``.
    A query whose every key is masked gets zero weights and a zero output (as torch >= 2.5 does).
    """
    values = np.asarray(values)
    scores = attention_scores(queries, keys)  # (..., T, S)
    require_rank("values", values, at_least=2)
    if values.shape[-2] != scores.shape[-1]:
        raise ValueError(
            f"keys have {scores.shape[-1]} positions but values have {values.shape[-2]}: "
            f"keys (..., S, D) and values (..., S, Dv) must have the same S; got keys {np.shape(keys)}, "
            f"values {values.shape}"
        )
    if mask is not None:
        mask = np.asarray(mask)
        require_mask_shape(mask, scores.shape)
        if mask.dtype != bool:
            raise ValueError(f"mask must be boolean (True = may attend), got dtype {mask.dtype}")
        scores = np.where(mask, scores, -np.inf)  # (..., T, S); masked keys can never win weight
    weights = softmax(scores, axis=-1)  # (..., T, S); each row sums to 1, or is all zeros if fully masked
    output = weights @ values  # (..., T, Dv)
    return output, weights


def causal_mask(n: int) -> np.ndarray:
    """Boolean (n, n) mask for generation: query i may attend key j only when j <= i (the past and itself)."""
    return np.tril(np.ones((n, n), dtype=bool))  # (n, n); lower triangle and diagonal True


def padding_mask(lengths, n: int) -> np.ndarray:
    """Boolean (B, n) mask, True for the real tokens of each sequence and False for the padding after them."""
    lengths = np.asarray(lengths)
    if lengths.ndim != 1:
        raise ValueError(f"lengths must be a 1-D list of sequence lengths, got shape {lengths.shape}")
    if np.any(lengths < 0) or np.any(lengths > n):
        raise ValueError(f"every length must lie between 0 and n={n}, got {lengths.tolist()}")
    positions = np.arange(n)  # (n,)
    return positions[None, :] < lengths[:, None]  # (B, n)


def attention_mask(lengths, n: int, causal: bool = False) -> np.ndarray:
    """Combine padding (per key) and, optionally, causality into one (B, n, n) mask for self-attention."""
    keys_allowed = padding_mask(lengths, n)[:, None, :]  # (B, 1, n): a padded key is hidden from every query
    if not causal:
        return np.broadcast_to(keys_allowed, (len(keys_allowed), n, n))  # (B, n, n)
    return keys_allowed & causal_mask(n)[None, :, :]  # (B, n, n)


def softmax_saturation(dims=(2, 8, 32, 128, 512), num_keys: int = 16, trials: int = 400, seed: int = 0) -> dict:
    """Lesson 01's experiment: how peaked softmax(q . k) gets as the dimension d grows, with and without 1/sqrt(d).

    q and k have independent standard-normal entries, so q . k has variance d. For each d it returns the
    measured variance of the scores and the mean largest weight and mean entropy (in nats) of the softmax,
    unscaled and scaled. Uniform weights over ``num_keys`` keys have entropy log(num_keys); one-hot has 0.
    """
    rng = np.random.default_rng(seed)
    result = {name: [] for name in ("dims", "variance", "max_unscaled", "max_scaled", "entropy_unscaled", "entropy_scaled")}
    for d in dims:
        queries = rng.standard_normal((trials, 1, d))  # (N, 1, d): one query per trial
        keys = rng.standard_normal((trials, num_keys, d))  # (N, S, d)
        raw = (queries @ np.swapaxes(keys, -1, -2))[:, 0]  # (N, S): unscaled dot products
        result["dims"].append(d)
        result["variance"].append(float(raw.var()))
        for label, scores in (("unscaled", raw), ("scaled", raw / np.sqrt(d))):
            weights = softmax(scores)  # (N, S)
            entropy = -np.sum(weights * np.log(np.clip(weights, 1e-300, None)), axis=-1)  # (N,)
            result[f"max_{label}"].append(float(weights.max(axis=-1).mean()))
            result[f"entropy_{label}"].append(float(entropy.mean()))
    return {name: np.array(values) for name, values in result.items()}
