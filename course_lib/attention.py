"""Self-attention in PyTorch: the reference implementations of lesson 03, imported by every later lesson.

:func:`scaled_dot_product_attention` follows the conventions of
``torch.nn.functional.scaled_dot_product_attention`` (a boolean mask with True = may attend, or an additive
float mask; ``is_causal``; ``scale``) but also returns the attention weights, so lessons can look at them.
It is proven equal to torch's own function in ``tests/test_attention_torch.py``.
Shapes: ``B`` batch, ``H`` heads, ``T`` query positions, ``S`` key positions, ``D`` head dim, ``E`` model dim.

Lesson: notebooks/03_self_attention_in_pytorch.ipynb. Tests: tests/test_attention_torch.py.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from course_lib.validation import require_attention_inputs, require_mask_shape, require_rank


def masked_softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis where a row that is entirely -inf (nothing to attend to) gives zeros, not NaN.

    Dividing by ``where(totals > 0, totals, 1)`` rather than masking the quotient keeps gradients finite too.
    """
    largest = scores.amax(dim=-1, keepdim=True)  # (..., T, 1)
    largest = torch.where(torch.isfinite(largest), largest, torch.zeros_like(largest))  # shift all -inf rows by 0
    exps = torch.exp(scores - largest)  # (..., T, S); masked entries are exactly 0
    totals = exps.sum(dim=-1, keepdim=True)  # (..., T, 1)
    return exps / torch.where(totals > 0, totals, torch.ones_like(totals))  # (..., T, S)


def causal_mask(num_queries: int, num_keys: int | None = None, device=None) -> torch.Tensor:
    """Boolean (T, S) mask, True where query i may attend key j, i.e. j <= i (torch's top-left alignment)."""
    num_keys = num_queries if num_keys is None else num_keys
    return torch.ones(num_queries, num_keys, dtype=torch.bool, device=device).tril()  # (T, S)


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention with torch's conventions; returns ``(output (..., T, Dv), weights (..., T, S))``.

    query (..., T, D), key (..., S, D), value (..., S, Dv). ``attn_mask`` broadcasts to (..., T, S): boolean
    (True = may attend) or float (added to the scores). ``scale`` defaults to 1/sqrt(D). A query that may
    attend to no key gets zero weights and a zero output, as torch >= 2.5 does.
    """
    require_attention_inputs(query, key, value)
    if is_causal and attn_mask is not None:
        raise ValueError("pass either attn_mask or is_causal=True, not both (as torch requires)")
    num_queries, num_keys = query.shape[-2], key.shape[-2]
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale

    # 1) score every query against every key
    scores = query @ key.transpose(-2, -1) * scale  # (..., T, S)
    # 2) hide what a query may not see
    if is_causal:
        attn_mask = causal_mask(num_queries, num_keys, device=query.device)  # (T, S)
    if attn_mask is not None:
        require_mask_shape(attn_mask, scores.shape, name="attn_mask")
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))  # (..., T, S)
        else:
            scores = scores + attn_mask  # (..., T, S); an additive mask holds 0 or -inf (or any bias)
    # 3) turn scores into weights, 4) average the values
    weights = masked_softmax(scores)  # (..., T, S)
    output = weights @ value  # (..., T, Dv)
    return output, weights


class SelfAttention(nn.Module):
    """One head of self-attention: project x to queries, keys and values, then attend (lesson 03).

    ``query``, ``key`` and ``value`` are ``nn.Linear(d_model, d_head, bias=False)``. After each forward pass the
    attention weights are kept in ``last_weights`` (detached) so that lessons can draw them.
    """

    def __init__(self, d_model: int, d_head: int):
        super().__init__()
        self.query = nn.Linear(d_model, d_head, bias=False)
        self.key = nn.Linear(d_model, d_head, bias=False)
        self.value = nn.Linear(d_model, d_head, bias=False)
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        require_rank("x", x, at_least=2)
        if x.shape[-1] != self.query.in_features:
            raise ValueError(f"x has feature size {x.shape[-1]}, expected d_model={self.query.in_features}")
        queries = self.query(x)  # (B, T, D)
        keys = self.key(x)  # (B, T, D)
        values = self.value(x)  # (B, T, D)
        output, weights = scaled_dot_product_attention(queries, keys, values, attn_mask=attn_mask)  # (B, T, D)
        self.last_weights = weights.detach()  # (B, T, T)
        return output
