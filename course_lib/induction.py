"""Heads that specialise, for real: induction heads in a tiny attention-only transformer (lesson 04).

A two-layer, attention-only transformer (no MLPs) learns next-token prediction on random sequences that are
followed by an exact repeat. The only way to predict the second half is to copy from the first, and the model
learns to do it with two heads in two layers working together:

1. a *previous-token head* in layer 0: every position looks one step back and writes "my previous token
   was A" into the residual stream;
2. an *induction head* in layer 1: at a token A it looks for the position whose previous token was A, i.e.
   the position right after the earlier A, and copies the token found there: "A B ... A -> B".

:func:`previous_token_score` and :func:`induction_score` measure each head's attention pattern against
those two ideals; :func:`head_scores` scores every head of a model. Training takes a few seconds on a CPU.
Shapes: ``B`` batch, ``H`` heads, ``T`` positions, ``E`` model dim, ``V`` vocabulary size, ``L`` layers.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from course_lib.attention import causal_mask
from course_lib.multihead import MultiHeadAttention
from course_lib.validation import require_rank

DEFAULT_CONFIG = dict(vocab_size=32, half_length=12, shortest_half=6, embed_dim=32, num_heads=2, num_layers=2,
                      batch=64, learning_rate=3e-3, steps=600, final_norm=True)


def repeated_sequences(batch: int, half_length: int, vocab_size: int, generator: torch.Generator) -> torch.Tensor:
    """Tokens (B, 2 * half_length): a random sequence, then the same sequence again.

    The first half holds distinct tokens (a random draw without replacement), so every token of the second
    half has exactly one earlier occurrence, and "copy what followed it last time" has one right answer.
    """
    if half_length < 1 or vocab_size < half_length:
        raise ValueError(f"need 1 <= half_length <= vocab_size to draw distinct tokens, got "
                         f"half_length={half_length}, vocab_size={vocab_size}")
    shuffled = torch.rand(batch, vocab_size, generator=generator).argsort(dim=-1)  # (B, V): a permutation per row
    first = shuffled[:, :half_length]  # (B, T/2)
    return torch.cat([first, first], dim=1)  # (B, T)


class AttentionOnlyTransformer(nn.Module):
    """Token and position embeddings, ``num_layers`` causal attention layers on a residual stream, unembedding.

    No MLPs: whatever the model computes, its heads compute. After each forward pass ``last_weights`` holds
    every layer's attention weights, (B, H, T, T) each, detached, for plots and widgets.
    """

    def __init__(self, vocab_size: int, embed_dim: int, num_heads: int, num_layers: int = 2,
                 max_length: int = 32, final_norm: bool = True):
        super().__init__()
        self.max_length = max_length
        self.token_embedding = nn.Embedding(vocab_size, embed_dim)
        self.position_embedding = nn.Embedding(max_length, embed_dim)
        self.layers = nn.ModuleList(MultiHeadAttention(embed_dim, num_heads) for _ in range(num_layers))
        self.norm = nn.LayerNorm(embed_dim) if final_norm else nn.Identity()
        self.unembedding = nn.Linear(embed_dim, vocab_size)
        self.last_weights: list[torch.Tensor] = []

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, V) for the next token at every position."""
        require_rank("tokens", tokens, at_least=2, at_most=2)
        length = tokens.shape[1]
        if length > self.max_length:
            raise ValueError(f"tokens have length {length}, longer than max_length={self.max_length}")
        positions = torch.arange(length, device=tokens.device)  # (T,)
        x = self.token_embedding(tokens) + self.position_embedding(positions)  # (B, T, E)
        mask = causal_mask(length, device=tokens.device)  # (T, T), True = may attend
        self.last_weights = []
        for attention in self.layers:
            attended, weights = attention(x, attn_mask=mask)  # (B, T, E), (B, H, T, T)
            x = x + attended  # (B, T, E): each layer adds to the residual stream
            self.last_weights.append(weights.detach())
        return self.unembedding(self.norm(x))  # (B, T, V)


def second_half_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the predictions made in the second half, the only ones that can be right.

    The prediction at position t is of token t + 1; from t = T/2 on it is a copy of token t + 1 - T/2.
    """
    half = _half_length(tokens.shape[-1])
    predicted = logits[:, half:-1]  # (B, T/2 - 1, V)
    targets = tokens[:, half + 1:]  # (B, T/2 - 1)
    return nn.functional.cross_entropy(predicted.reshape(-1, predicted.shape[-1]), targets.reshape(-1))


def train_induction(steps: int | None = None, seed: int = 0, **options) -> dict:
    """Train an AttentionOnlyTransformer on repeated sequences; return model, losses, seconds and config.

    Each step draws a batch whose half length is random in [shortest_half, half_length], so the copy can
    not be found by position alone (a fixed offset) and must be found by content. Two CPU threads, seeded.
    """
    config = {**DEFAULT_CONFIG, **options, "seed": seed}
    if steps is not None:
        config["steps"] = steps
    unknown = set(config) - set(DEFAULT_CONFIG) - {"seed"}
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}; the options are {sorted(DEFAULT_CONFIG)}")
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = AttentionOnlyTransformer(config["vocab_size"], config["embed_dim"], config["num_heads"],
                                     config["num_layers"], 2 * config["half_length"], config["final_norm"])
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    losses = []
    start = time.perf_counter()
    for _ in range(config["steps"]):
        half = int(torch.randint(config["shortest_half"], config["half_length"] + 1, (), generator=generator))
        tokens = repeated_sequences(config["batch"], half, config["vocab_size"], generator)  # (B, 2 * half)
        loss = second_half_loss(model(tokens), tokens)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    seconds = time.perf_counter() - start
    return {"model": model.eval(), "losses": losses, "seconds": seconds, "config": config}


def _half_length(length: int) -> int:
    if length < 2 or length % 2:
        raise ValueError(f"a repeated sequence has an even length of at least 2, got length {length}")
    return length // 2


def _require_weights(weights: torch.Tensor) -> None:
    require_rank("weights", weights, at_least=4, at_most=4)
    if weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"self-attention weights (B, H, T, T) are square, got shape {tuple(weights.shape)}")


def previous_token_score(weights: torch.Tensor) -> torch.Tensor:
    """Per head (H,): the mean attention from each position t >= 1 to position t - 1.

    1 for a head that always looks exactly one step back; about 1/t for a head that spreads evenly.
    """
    _require_weights(weights)
    one_back = weights.diagonal(offset=-1, dim1=-2, dim2=-1)  # (B, H, T-1): weights[..., t, t-1]
    return one_back.mean(dim=(0, 2))  # (H,)


def induction_score(weights: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Per head (H,): in the second half, the mean attention from t to t - T/2 + 1.

    The token at t first occurred at t - T/2; an induction head looks at the token that came right after it.
    """
    _require_weights(weights)
    require_rank("tokens", tokens, at_least=2, at_most=2)
    length = weights.shape[-1]
    if tuple(tokens.shape) != (weights.shape[0], length):
        raise ValueError(f"tokens must have shape (B, T) = {(weights.shape[0], length)} to match weights "
                         f"{tuple(weights.shape)}, got {tuple(tokens.shape)}")
    half = _half_length(length)
    if not torch.equal(tokens[:, :half], tokens[:, half:]):
        raise ValueError("tokens must be a sequence followed by its exact repeat (see repeated_sequences)")
    after_first = weights.diagonal(offset=-(half - 1), dim1=-2, dim2=-1)  # (B, H, half+1): weights[..., t, t-half+1]
    return after_first[..., 1:].mean(dim=(0, 2))  # (H,): only t >= half, the second half


def head_scores(model: AttentionOnlyTransformer, tokens: torch.Tensor) -> dict[str, np.ndarray]:
    """Both scores for every head: {"previous_token": (L, H), "induction": (L, H)} on these tokens."""
    with torch.no_grad():
        model(tokens)
    return {
        "previous_token": np.stack([previous_token_score(w).numpy() for w in model.last_weights]),  # (L, H)
        "induction": np.stack([induction_score(w, tokens).numpy() for w in model.last_weights]),  # (L, H)
    }


def accuracy_by_half(model: AttentionOnlyTransformer, tokens: torch.Tensor) -> dict[str, float]:
    """Next-token accuracy of the predictions made in the first half and in the second half.

    The first half is random (about 1/V right by chance); the second half can be copied from the first.
    """
    half = _half_length(tokens.shape[-1])
    with torch.no_grad():
        correct = model(tokens)[:, :-1].argmax(dim=-1) == tokens[:, 1:]  # (B, T-1)
    return {"first": float(correct[:, :half].float().mean()),
            "second": float(correct[:, half:].float().mean())}
