"""What SmolLM2's heads do: record their attention, score them as lesson 04 did, and silence them.

Lesson 04 trained a two-layer toy until a previous-token head and an induction head appeared. A real model
learns them too. On a random sequence of tokens shown twice, a model can only predict the second copy by
copying, "A B ... A -> B": a previous-token head looks one step back, an induction head looks at the token
after the earlier copy of the current one. :func:`head_scores` scores all 30 x 9 heads with lesson 04's
:func:`course_lib.induction.previous_token_score` and :func:`~course_lib.induction.induction_score`;
:func:`silenced` is a per-layer hook list that sets chosen heads' outputs to zero (zero ablation), and
:func:`copying_loss` measures what that does to copying.

Shapes: ``L`` layers, ``H`` heads, ``B`` batch, ``T`` positions, ``R`` the length of the random sequence.

Lesson: notebooks/10_capstone.ipynb (sections 5-7). Tests: tests/test_llama_heads.py.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from course_lib.attention import scaled_dot_product_attention
from course_lib.induction import (accuracy_by_half, induction_score, loss_by_half, previous_token_score,
                                  repeated_sequences)
from course_lib.llama.model import Llama, torch_attention


def recording(store: list) -> Callable:
    """An attention hook that computes attention in full, as lesson 03 did, and appends its weights
    (B, H, T, S) to ``store``: one entry per call, so one per layer in a forward pass."""

    def attention(query, key, value, attn_mask=None, is_causal=False):
        output, weights = scaled_dot_product_attention(query, key, value, attn_mask, is_causal)  # (B, H, T, D), (B, H, T, S)
        store.append(weights)
        return output

    return attention


@torch.inference_mode()
def attention_weights(model: Llama, ids: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's attention weights for ids (B, T), without a cache: L tensors (B, H, T, T)."""
    store: list[torch.Tensor] = []
    model(ids, attention=recording(store))
    return store


def random_repeats(model: Llama, batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """Tokens (B, 2R): R distinct random ids, then the same R again (lesson 04's repeated_sequences), drawn from
    ordinary vocabulary ids (not the control tokens at the start of SmolLM2's vocabulary)."""
    first_ordinary = 100  # SmolLM2's ids 0..16 are control tokens; leave a margin
    generator = torch.Generator().manual_seed(seed)
    tokens = repeated_sequences(batch, length, model.config.vocab_size - first_ordinary, generator)  # (B, 2R)
    return tokens + first_ordinary  # (B, 2R)


def head_scores(model: Llama, tokens: torch.Tensor) -> dict[str, np.ndarray]:
    """Lesson 04's two scores for every head on repeated tokens (B, 2R): {"previous_token": (L, H),
    "induction": (L, H)}. 1 is a perfect head; a head that spreads evenly scores a few hundredths."""
    weights = attention_weights(model, tokens)  # L x (B, H, T, T)
    return {
        "previous_token": np.stack([previous_token_score(w).numpy() for w in weights]),  # (L, H)
        "induction": np.stack([induction_score(w, tokens).numpy() for w in weights]),  # (L, H)
    }


def top_heads(scores: np.ndarray, count: int) -> list[tuple[int, int]]:
    """The ``count`` (layer, head) pairs with the highest scores (L, H), best first."""
    order = np.argsort(scores, axis=None)[::-1][:count]  # flat indices, best first
    return [tuple(int(i) for i in np.unravel_index(flat, scores.shape)) for flat in order]


def same_layer_controls(model: Llama, chosen: list[tuple[int, int]], avoid=(), seed: int = 0) -> list[tuple[int, int]]:
    """As many heads as ``chosen``, drawn at random from the same layers, none of them chosen or in ``avoid``:
    the control for an ablation (silencing any heads of those layers, not these ones, should matter less)."""
    layers = sorted({layer for layer, _ in chosen})
    others = [(layer, head) for layer in layers for head in range(model.config.num_heads)
              if (layer, head) not in chosen and (layer, head) not in avoid]
    picks = np.random.default_rng(seed).choice(len(others), size=min(len(chosen), len(others)), replace=False)
    return [others[i] for i in sorted(picks)]


def silenced(model: Llama, heads: list[tuple[int, int]]) -> list[Callable]:
    """One hook per layer: torch's attention, with the output of each (layer, head) in ``heads`` set to zero."""
    by_layer: dict[int, list[int]] = {}
    for pair in _pairs(heads):
        layer, head = pair
        if not (0 <= layer < model.config.num_layers and 0 <= head < model.config.num_heads):
            raise ValueError(f"no head ({layer}, {head}): layers run 0..{model.config.num_layers - 1}, heads "
                             f"0..{model.config.num_heads - 1}")
        by_layer.setdefault(layer, []).append(head)
    return [_without(by_layer[layer]) if layer in by_layer else None for layer in range(model.config.num_layers)]


def _pairs(heads) -> list[tuple[int, int]]:
    """``heads`` as a list of (layer, head) pairs of ints, or a clear error."""
    import numbers

    if isinstance(heads, torch.Tensor) or isinstance(heads, np.ndarray):
        heads = heads.tolist()
    message = f"heads must be a list of (layer, head) pairs of whole numbers, such as [(17, 3), (18, 6)]; got {heads!r}"
    if not isinstance(heads, (list, tuple)):
        raise TypeError(message)
    pairs = []
    for pair in heads:
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in pair)):
            raise TypeError(message)
        pairs.append((int(pair[0]), int(pair[1])))
    return pairs


def _without(heads: list[int]) -> Callable:
    def attention(query, key, value, attn_mask=None, is_causal=False):
        output = torch_attention(query, key, value, attn_mask, is_causal).clone()  # (B, H, T, D)
        output[:, heads] = 0  # (B, H, T, D): these heads write nothing into the residual stream
        return output

    return attention


def copying_loss(model: Llama, tokens: torch.Tensor, attention=None) -> dict[str, float]:
    """Lesson 04's measures on repeated tokens (B, 2R), for SmolLM2 with ``attention`` in its layers: the mean
    next-token loss in the first copy (random: nothing to copy from) and in the second (predictable by copying),
    and the share of the second copy predicted exactly (:func:`course_lib.induction.loss_by_half`,
    :func:`~course_lib.induction.accuracy_by_half`)."""
    run = lambda ids: model(ids, attention=attention)  # (B, 2R, vocab), as lesson 04's toy model is called
    losses, accuracy = loss_by_half(run, tokens), accuracy_by_half(run, tokens)
    return {"first copy loss": losses["first"], "second copy loss": losses["second"],
            "second copy accuracy": accuracy["second"]}


@torch.inference_mode()
def record_generation(model: Llama, prompt: torch.Tensor, steps: int) -> dict:
    """Generate ``steps`` tokens greedily after ``prompt`` (1, P) on a KV cache, recording at each step the
    newest token's attention over the context and the cache's size.

    Step k's query is the token at position P - 1 + k (the prompt's last token, then each generated one); it
    sees keys 0 .. P - 1 + k and predicts token P + k. Returns {"pieces": the text of every position (P + steps),
    "weights": per step an (L, H, P + k) tensor, "cache_bytes": per step the cache's size after it,
    "prompt_length": P}.
    """
    from course_lib.llama.model import KVCache
    from course_lib.validation import require_whole_numbers

    require_whole_numbers(1, steps=steps)
    if not isinstance(prompt, torch.Tensor) or prompt.dim() != 2 or prompt.shape[0] != 1 or prompt.shape[1] == 0:
        shape = tuple(prompt.shape) if isinstance(prompt, torch.Tensor) else type(prompt).__name__
        raise ValueError(f"prompt must be one text's token ids, a (1, P) LongTensor with P >= 1, got {shape}")
    store: list[torch.Tensor] = []
    hook, cache = recording(store), KVCache(model.config.num_layers)
    ids, weights, sizes = prompt, [], []
    logits = model(prompt, attention=hook, cache=cache)  # (1, P, vocab): the prompt fills the cache
    for step in range(steps):
        weights.append(torch.stack([w[0, :, -1] for w in store]))  # (L, H, S): the newest token's row
        sizes.append(cache.bytes())
        token = logits[:, -1].argmax(dim=-1, keepdim=True)  # (1, 1)
        ids = torch.cat([ids, token], dim=1)  # (1, P + step + 1)
        store.clear()
        if step + 1 < steps:
            logits = model(token, attention=hook, cache=cache)  # (1, 1, vocab): one step, T = 1
    pieces = [model.tokenizer.decode([int(i)]) for i in ids[0]]
    return {"pieces": pieces, "weights": weights, "cache_bytes": sizes, "prompt_length": prompt.shape[1]}
