"""Heads that specialise, for real: induction heads in a tiny attention-only transformer (lesson 04).

A two-layer transformer with attention and nothing else (no MLPs) learns to continue random sequences that
repeat. The only way to predict a repeat is to copy, and the model learns to copy with two heads in two layers:

1. a *previous-token head* in layer 0: every position looks one step back and writes "my previous token
   was A" into the residual stream;
2. an *induction head* in layer 1: at a token A it looks for the position whose previous token was A, i.e.
   the position right after the earlier A, and predicts the token found there: "A B ... A -> B".

:func:`previous_token_score` and :func:`induction_score` compare each head's attention with those two ideals,
on :func:`repeated_sequences` (a random sequence, then the same again); :func:`head_scores` scores every head.
Training (:func:`train_induction`) takes about ten seconds on one CPU thread.
Shapes: ``B`` batch, ``H`` heads, ``T`` positions, ``E`` model dim, ``V`` vocabulary, ``R`` repeat length.

Lesson: notebooks/04_multihead_attention.ipynb. Tests: tests/test_induction.py.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from course_lib.attention import causal_mask
from course_lib.multihead import MultiHeadAttention
from course_lib.validation import require_rank

# Tuned on 8 seeds: the loss drops (the induction "phase change") between steps 310 and 430 of 1000, every time.
DEFAULT_CONFIG = dict(vocab_size=32, half_length=12, shortest_repeat=3, embed_dim=64, num_heads=2, num_layers=2,
                      batch=64, learning_rate=2e-3, steps=1000, final_norm=True)
TRAINING_THREADS = 1  # pinned, so that a run is the same on every machine; one thread stays fast when the machine is busy


def echo_sequences(batch: int, length: int, repeat_length: int, vocab_size: int,
                   generator: torch.Generator) -> torch.Tensor:
    """Tokens (B, length): distinct random tokens, then their last ``repeat_length`` tokens once more.

    Tokens are drawn without replacement, so every echoed token occurred exactly once before, and "copy what
    followed it last time" has one right answer.
    """
    if not 1 <= repeat_length <= length // 2:
        raise ValueError(f"need 1 <= repeat_length <= length / 2, got repeat_length={repeat_length}, "
                         f"length={length}")
    if vocab_size < length - repeat_length:
        raise ValueError(f"vocab_size={vocab_size} is too small to draw {length - repeat_length} distinct tokens "
                         f"(length - repeat_length); use a larger vocabulary or shorter sequences")
    shuffled = torch.rand(batch, vocab_size, generator=generator).argsort(dim=-1)  # (B, V): a permutation per row
    fresh = shuffled[:, :length - repeat_length]  # (B, T - R): distinct tokens
    return torch.cat([fresh, fresh[:, -repeat_length:]], dim=1)  # (B, T)


def repeated_sequences(batch: int, half_length: int, vocab_size: int, generator: torch.Generator) -> torch.Tensor:
    """Tokens (B, 2 * half_length): a random sequence of distinct tokens, then the same sequence again."""
    return echo_sequences(batch, 2 * half_length, half_length, vocab_size, generator)  # (B, T)


class AttentionOnlyTransformer(nn.Module):
    """Token and position embeddings, ``num_layers`` causal attention layers on a residual stream, unembedding.

    No MLPs: whatever the model computes, its heads compute. After each forward pass ``last_weights`` holds
    every layer's attention weights, (B, H, T, T) each, detached, for plots and widgets.
    """

    def __init__(self, vocab_size: int, embed_dim: int, num_heads: int, num_layers: int = 2,
                 max_length: int = 24, final_norm: bool = True):
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
            self.last_weights.append(weights.detach())  # (B, H, T, T)
        return self.unembedding(self.norm(x))  # (B, T, V)


def copying_loss(logits: torch.Tensor, tokens: torch.Tensor, repeat_length: int) -> torch.Tensor:
    """Cross-entropy of the predictions made inside the echo, the only ones that can be right.

    From t = T - R on, the next token t + 1 repeats token t + 1 - R. Earlier tokens are random: a loss there
    would only teach token frequencies (uniform here) and dilute the copying signal.
    """
    start = tokens.shape[1] - repeat_length
    predicted = logits[:, start:-1]  # (B, R - 1, V)
    targets = tokens[:, start + 1:]  # (B, R - 1)
    return nn.functional.cross_entropy(predicted.reshape(-1, predicted.shape[-1]), targets.reshape(-1))


def train_induction(steps: int | None = None, seed: int = 0, **options) -> dict:
    """Train an AttentionOnlyTransformer to copy; return {"model", "losses", "seconds", "config"}.

    Sequences have length 2 * half_length and end in an echo of random length in [shortest_repeat, half_length],
    so the copy's source sits at no fixed offset and anywhere in the sequence: only its content finds it.
    """
    config = _training_config(steps, seed, options)
    threads = torch.get_num_threads()
    torch.set_num_threads(TRAINING_THREADS)
    try:
        return _train(config)
    finally:
        torch.set_num_threads(threads)  # leave the caller's setting as it was


def _training_config(steps: int | None, seed: int, options: dict) -> dict:
    unknown = set(options) - set(DEFAULT_CONFIG)
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}; the options are {sorted(DEFAULT_CONFIG)}")
    config = {**DEFAULT_CONFIG, **options, "seed": seed}
    config["steps"] = config["steps"] if steps is None else steps
    if not 2 <= config["shortest_repeat"] <= config["half_length"]:
        raise ValueError(f"need 2 <= shortest_repeat <= half_length, got shortest_repeat="
                         f"{config['shortest_repeat']}, half_length={config['half_length']}")
    return config


def _train(config: dict) -> dict:
    """The training loop, seeded: parameters from torch's global seed, batches from their own generator."""
    torch.manual_seed(config["seed"])
    generator = torch.Generator().manual_seed(config["seed"])
    length = 2 * config["half_length"]
    model = AttentionOnlyTransformer(config["vocab_size"], config["embed_dim"], config["num_heads"],
                                     config["num_layers"], length, config["final_norm"])
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    losses = []
    start = time.perf_counter()
    for _ in range(config["steps"]):
        repeat = int(torch.randint(config["shortest_repeat"], config["half_length"] + 1, (), generator=generator))
        tokens = echo_sequences(config["batch"], length, repeat, config["vocab_size"], generator)  # (B, T)
        loss = copying_loss(model(tokens), tokens, repeat)
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
    if weights.shape[-1] != weights.shape[-2] or weights.shape[-1] < 2:
        raise ValueError(f"self-attention weights (B, H, T, T) are square with T >= 2, got shape "
                         f"{tuple(weights.shape)}")


def previous_token_score(weights: torch.Tensor) -> torch.Tensor:
    """Per head (H,): the mean attention from each position t >= 1 to position t - 1.

    1 for a head that always looks exactly one step back; the mean of 1/(t+1) for one that spreads evenly.
    """
    _require_weights(weights)
    one_back = weights.diagonal(offset=-1, dim1=-2, dim2=-1)  # (B, H, T-1): weights[..., t, t-1]
    return one_back.mean(dim=(0, 2))  # (H,)


def induction_score(weights: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Per head (H,): over the second half of repeated sequences, the mean attention from t to t - T/2 + 1.

    The token at t occurred before at t - T/2; an induction head looks at the token that came right after it.
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
    after_earlier = weights.diagonal(offset=1 - half, dim1=-2, dim2=-1)  # (B, H, T/2+1): [..., t, t-T/2+1]
    return after_earlier[..., 1:].mean(dim=(0, 2))  # (H,): rows t = T/2 .. T-1, the second half


def head_scores(model: AttentionOnlyTransformer, tokens: torch.Tensor) -> dict[str, np.ndarray]:
    """Both scores for every head on repeated-sequence tokens: {"previous_token": (L, H), "induction": (L, H)}."""
    with torch.no_grad():
        model(tokens)
    return {
        "previous_token": np.stack([previous_token_score(w).numpy() for w in model.last_weights]),  # (L, H)
        "induction": np.stack([induction_score(w, tokens).numpy() for w in model.last_weights]),  # (L, H)
    }


def _next_token_predictions(model: AttentionOnlyTransformer, tokens: torch.Tensor):
    """Logits (B, T-1, V) made at positions 0 .. T-2, their targets (B, T-1), and the half length T/2."""
    require_rank("tokens", tokens, at_least=2, at_most=2)
    half = _half_length(tokens.shape[1])
    with torch.no_grad():
        logits = model(tokens)[:, :-1]  # (B, T-1, V): position t predicts token t + 1
    return logits, tokens[:, 1:], half  # (B, T-1, V), (B, T-1)


def accuracy_by_half(model: AttentionOnlyTransformer, tokens: torch.Tensor) -> dict[str, float]:
    """Next-token accuracy of the predictions made at positions in the first half and in the second half.
    ``model`` is anything that maps tokens (B, T) to logits (B, T, V): the toy, or lesson 10's SmolLM2.

    The first half is random (right about 1/V of the time by luck); the second half can be copied.
    """
    logits, targets, half = _next_token_predictions(model, tokens)
    correct = (logits.argmax(dim=-1) == targets).float()  # (B, T-1)
    return {"first": float(correct[:, :half].mean()),  # positions 0 .. T/2-1
            "second": float(correct[:, half:].mean())}  # positions T/2 .. T-2


def loss_by_half(model: AttentionOnlyTransformer, tokens: torch.Tensor) -> dict[str, float]:
    """Mean next-token cross-entropy in the first and the second half (same positions as accuracy_by_half).

    Uniform guessing gives log V (3.47 nats for V = 32). A model trained only to copy tries to copy everywhere,
    so in the random first half it is confidently wrong and can do worse than that; in the second, near 0.
    """
    logits, targets, half = _next_token_predictions(model, tokens)
    losses = nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, T-1)
    return {"first": float(losses[:, :half].mean()), "second": float(losses[:, half:].mean())}


def accuracy_without_heads(model: AttentionOnlyTransformer, tokens: torch.Tensor,
                           heads: list[tuple[int, int]]) -> dict[str, float]:
    """:func:`accuracy_by_half` with some heads removed: each (layer, head) in ``heads`` is silenced.

    A head is removed by zeroing its D columns of its layer's output projection, so what it computes never
    reaches the residual stream (an ablation). The model is restored afterwards, whatever happens.
    """
    for layer, head in heads:
        if not (0 <= layer < len(model.layers) and 0 <= head < model.layers[layer].num_heads):
            raise ValueError(f"no head {head} in layer {layer}: the model has {len(model.layers)} layers of "
                             f"{model.layers[0].num_heads} heads")
    saved = [attention.output.weight.detach().clone() for attention in model.layers]  # L x (E, E)
    try:
        with torch.no_grad():
            for layer, head in heads:
                attention = model.layers[layer]
                columns = slice(head * attention.head_dim, (head + 1) * attention.head_dim)
                attention.output.weight[:, columns] = 0.0  # (E, D): this head's share of the merged heads
        return accuracy_by_half(model, tokens)
    finally:
        with torch.no_grad():
            for attention, weight in zip(model.layers, saved):
                attention.output.weight.copy_(weight)
