"""A Llama decoder in plain torch, small enough to read in one sitting, with a slot for your own attention.

Each of the 30 layers does what lessons 03-06 built: RMSNorm, the query/key/value projections, RoPE on the
queries and keys (lesson 05's interleaved ``apply_rope``: see :mod:`course_lib.llama.weights` for why the
GGUF's rows fit it as they are), grouped-query attention (9 query heads share 3 key/value heads, lesson 06),
the output projection and a residual; then RMSNorm, a SwiGLU feed-forward block and a residual. The logits
come from the final norm times the token embeddings (the LM head is tied to them).

**The attention hook.** ``model(ids, attention=fn)`` calls ``fn`` in every layer in place of torch's kernel,
with query ``(B, H, T, D)``, key and value ``(B, H, S, D)`` (each key/value head repeated for the query heads
that share it) or, with ``grouped=True``, ``(B, Hkv, S, D)`` as lesson 06's ``grouped_query_attention``
takes them. It is called as:

* ``fn(q, k, v, is_causal=True)`` when there is no cache (T = S: query i sees keys 0..i);
* ``fn(q, k, v)`` for one new token against the cache (it sees every cached key and itself);
* ``fn(q, k, v, attn_mask=mask)`` for several new tokens against a cache, ``mask`` (T, S) bool aligned
  **bottom-right**: new token i, at position S - T + i, sees keys j <= S - T + i. torch's ``is_causal=True``
  is aligned top-left and would be wrong here; ``causal="top-left"`` passes it anyway, to show the bug.

``fn`` may return the output or a tuple whose first element is the output (lesson 03's sdpa returns the
weights too). ``attention`` may also be a list with one hook per layer (lesson 10 records or silences
chosen layers' heads that way: :mod:`course_lib.llama.heads`). The KV cache (:class:`KVCache`) keeps every layer's keys and values, after RoPE.

Lesson: notebooks/10_capstone.ipynb. Tests: tests/test_llama.py.
"""
from __future__ import annotations

import time
from typing import Callable

import torch
import torch.nn.functional as F

from course_lib.llama.weights import Config
from course_lib.positional import apply_rope, apply_rope_rotate_half
from course_lib.validation import require_whole_numbers


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(mean(x²) + eps) * weight, over the last axis (Llama's RMSNorm: no mean subtracted, no bias)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight  # (..., E)


def torch_attention(query, key, value, attn_mask=None, is_causal=False):
    """The default: torch's fused kernel, with the same calling convention as the hook."""
    return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, is_causal=is_causal)


def bottom_right_mask(num_queries: int, num_keys: int) -> torch.Tensor:
    """(T, S) bool: the last T of S positions are the queries, so query i sees keys j <= S - T + i."""
    return torch.ones(num_queries, num_keys, dtype=torch.bool).tril(diagonal=num_keys - num_queries)  # (T, S)


def cached_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Causal attention for the T newest tokens against all S tokens so far (S >= T): output (..., T, Dv).

    query (..., T, D) holds the new tokens, at positions S - T .. S - 1; key (..., S, D) and value (..., S, Dv)
    hold every token, the cached ones first. New token i sees keys j <= S - T + i (the mask aligned
    bottom-right). T = S is ordinary causal attention; T = 1 one decoding step, which sees every key.
    Exercise 10's first graded function.
    """
    from course_lib.attention import masked_softmax

    num_queries, num_keys = query.shape[-2], key.shape[-2]
    if num_queries > num_keys:
        raise ValueError(f"query holds {num_queries} new tokens but key only {num_keys}: the keys include the new "
                         f"tokens, so S >= T (query {tuple(query.shape)}, key {tuple(key.shape)})")
    scores = query @ key.transpose(-2, -1) / query.shape[-1] ** 0.5  # (..., T, S)
    hidden = ~bottom_right_mask(num_queries, num_keys)  # (T, S): True above the shifted diagonal
    return masked_softmax(scores.masked_fill(hidden, float("-inf"))) @ value  # (..., T, Dv)


def window_with_sinks_mask(length: int, window: int, sinks: int = 0) -> torch.Tensor:
    """(T, T) bool: token i sees the ``window`` latest tokens up to itself (i - window < j <= i) and the first
    ``sinks`` tokens of the text (StreamingLLM's attention sinks, Xiao et al., 2023)."""
    require_whole_numbers(window=window)
    require_whole_numbers(0, length=length, sinks=sinks)
    rows = torch.arange(length).unsqueeze(-1)  # (T, 1)
    cols = torch.arange(length)  # (T,)
    recent = (cols <= rows) & (cols > rows - window)  # (T, T): the window, the token itself included
    return recent | ((cols < sinks) & (cols <= rows))  # (T, T)


def masked(mask: torch.Tensor) -> Callable:
    """An attention hook that applies ``mask`` (T, T) in every layer, whatever the model asks (no cache).

    The mask must be boolean (True = may attend): torch adds a float mask to the scores as a bias, so a 0/1
    float mask would hide nothing, silently."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.dim() != 2:
        described = f"a {mask.dtype} tensor of shape {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a (T, T) bool tensor, True where a token may attend, got {described} (a float "
                         f"mask would be added to the scores as a bias and hide nothing)")

    def attention(query, key, value, attn_mask=None, is_causal=False):
        return torch_attention(query, key, value, attn_mask=mask)  # (B, H, T, D)

    return attention


def generation_speed(model: "Llama", prompt: torch.Tensor, tokens: int, cache: bool = True) -> tuple[torch.Tensor, float]:
    """Generate exactly ``tokens`` tokens greedily after ``prompt`` (1, T), never stopping early: the ids
    (1, T + tokens) and the tokens per second, wall-clock."""
    start = time.perf_counter()
    ids = model.generate(prompt, tokens, cache=cache, stop_ids=())  # (1, T + tokens)
    return ids, tokens / (time.perf_counter() - start)


@torch.inference_mode()
def perplexity(model: "Llama", ids: torch.Tensor, attention: Callable | None = None) -> float:
    """exp of the mean negative log-likelihood of each token of ids (1, T) given the ones before it."""
    logits = model(ids, attention=attention)[0, :-1]  # (T - 1, vocab): the prediction for each next token
    return float(torch.nn.functional.cross_entropy(logits, ids[0, 1:]).exp())


class KVCache:
    """Every layer's keys and values so far, (B, Hkv, S, D) each, after RoPE; ``length`` = S."""

    def __init__(self, num_layers: int):
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers

    @property
    def length(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[-2]

    def append(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add this step's (B, Hkv, T, D) keys and values to layer ``layer``'s; return all of them, (B, Hkv, S, D)."""
        if self.keys[layer] is not None:
            key = torch.cat([self.keys[layer], key], dim=-2)  # (B, Hkv, S, D)
            value = torch.cat([self.values[layer], value], dim=-2)  # (B, Hkv, S, D)
        self.keys[layer], self.values[layer] = key, value
        return key, value

    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values) if t is not None)


class Llama:
    """The model: ``model(ids)`` gives logits (B, T, vocab); ``model.generate(ids, max_new_tokens)`` decodes."""

    def __init__(self, config: Config, weights: dict[str, torch.Tensor], tokenizer=None, rope: Callable = apply_rope):
        self.config, self.weights, self.tokenizer, self.rope = config, weights, tokenizer, rope
        self.embedding = weights["token_embd.weight"]  # (vocab, E), also the LM head

    def layer_weight(self, layer: int, name: str) -> torch.Tensor:
        return self.weights[f"blk.{layer}.{name}.weight"]

    def num_parameters(self) -> int:
        return sum(w.numel() for w in self.weights.values())

    def __call__(self, ids: torch.Tensor, attention: Callable | None = None, cache: KVCache | None = None,
                 grouped: bool = False, causal: str = "bottom-right") -> torch.Tensor:
        """Logits (B, T, vocab) for token ids (B, T); with ``cache``, the ids follow the cached ones."""
        ids = _require_ids(ids, self.config.vocab_size)
        if causal not in ("bottom-right", "top-left"):
            raise ValueError(f"causal must be 'bottom-right' or 'top-left', got {causal!r}")
        hooks = self.layer_hooks(attention)
        start = 0 if cache is None else cache.length
        positions = torch.arange(start, start + ids.shape[1])  # (T,)
        x = self.embedding[ids]  # (B, T, E)
        for layer in range(self.config.num_layers):
            h = rms_norm(x, self.layer_weight(layer, "attn_norm"), self.config.norm_eps)  # (B, T, E)
            x = x + self.attention_block(layer, h, positions, hooks[layer], cache, grouped, causal)
            h = rms_norm(x, self.layer_weight(layer, "ffn_norm"), self.config.norm_eps)  # (B, T, E)
            x = x + self.feed_forward(layer, h)  # (B, T, E)
        x = rms_norm(x, self.weights["output_norm.weight"], self.config.norm_eps)  # (B, T, E)
        return x @ self.embedding.T  # (B, T, vocab)

    def layer_hooks(self, attention) -> list[Callable]:
        """One attention function per layer: torch's kernel for None, the same function everywhere, or a list."""
        layers = self.config.num_layers
        if not isinstance(attention, (list, tuple)):
            return [attention or torch_attention] * layers
        if len(attention) != layers:
            raise ValueError(f"attention as a list needs one function per layer, {layers}, got {len(attention)}")
        return [hook or torch_attention for hook in attention]

    def attention_block(self, layer, h, positions, attention, cache, grouped, causal) -> torch.Tensor:
        """Layer ``layer``'s attention on normalised inputs h (B, T, E): (B, T, E), to add to the residual."""
        config = self.config
        batch, length, _ = h.shape
        heads = lambda x, n: x.view(batch, length, n, config.head_dim).transpose(1, 2)  # (B, n, T, D)
        query = heads(h @ self.layer_weight(layer, "attn_q").T, config.num_heads)  # (B, H, T, D)
        key = heads(h @ self.layer_weight(layer, "attn_k").T, config.num_kv_heads)  # (B, Hkv, T, D)
        value = heads(h @ self.layer_weight(layer, "attn_v").T, config.num_kv_heads)  # (B, Hkv, T, D)
        query = self.rope(query, positions, config.rope_base)  # (B, H, T, D)
        key = self.rope(key, positions, config.rope_base)  # (B, Hkv, T, D)
        if cache is not None:
            key, value = cache.append(layer, key, value)  # (B, Hkv, S, D) each
        if not grouped:
            group = config.num_heads // config.num_kv_heads
            key = key.repeat_interleave(group, dim=1)  # (B, H, S, D): head h reads key head h // group
            value = value.repeat_interleave(group, dim=1)  # (B, H, S, D)
        output = _attend(attention, query, key, value, causal)  # (B, H, T, D)
        output = output.transpose(1, 2).reshape(batch, length, config.hidden_size)  # (B, T, H * D)
        return output @ self.layer_weight(layer, "attn_output").T  # (B, T, E)

    def feed_forward(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """SwiGLU: (silu(h W_gate) * (h W_up)) W_down, (B, T, E) -> (B, T, E) through (B, T, 1536)."""
        gate = F.silu(h @ self.layer_weight(layer, "ffn_gate").T)  # (B, T, F)
        up = h @ self.layer_weight(layer, "ffn_up").T  # (B, T, F)
        return (gate * up) @ self.layer_weight(layer, "ffn_down").T  # (B, T, E)

    @torch.inference_mode()
    def generate(self, ids, max_new_tokens: int, attention: Callable | None = None, cache: bool = True,
                 temperature: float = 0.0, top_k: int | None = None, seed: int = 0, grouped: bool = False,
                 stop_ids: tuple[int, ...] | None = None) -> torch.Tensor:
        """Ids (B, T + n): the prompt and up to ``max_new_tokens`` more, greedy at temperature 0, else sampled
        from the top_k most likely (all if None). Stops early when every row has produced a stop id."""
        ids = _require_ids(ids, self.config.vocab_size)
        require_whole_numbers(0, max_new_tokens=max_new_tokens)
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if stop_ids is None and self.tokenizer is not None:
            stop_ids = (self.tokenizer.end_of_turn_id, self.tokenizer.eos_id)
        generator = torch.Generator().manual_seed(seed)
        kv = KVCache(self.config.num_layers) if cache else None
        logits = self(ids, attention, kv, grouped)  # (B, T, vocab): the prompt, once
        finished = torch.zeros(ids.shape[0], dtype=torch.bool)  # (B,)
        for _ in range(max_new_tokens):
            token = _choose(logits[:, -1], temperature, top_k, generator)  # (B,)
            ids = torch.cat([ids, token[:, None]], dim=1)  # (B, T + 1)
            finished |= torch.isin(token, torch.tensor(stop_ids or (), dtype=torch.long))
            if finished.all():
                break
            logits = self(token[:, None], attention, kv, grouped) if cache else self(ids, attention, None, grouped)
        return ids


def in_rotate_half_layout(model: Llama, reorder: Callable | None = None) -> Llama:
    """The same model in Hugging Face's layout: every layer's query and key rows reordered by ``reorder``
    (weight (H * D, in), num_heads) -> (H * D, in), by default :func:`~course_lib.llama.weights.rotate_half_order`,
    and RoPE applied rotate-half. Right reordering gives the same logits; the other weights are shared."""
    from course_lib.llama.weights import rotate_half_order

    reorder = rotate_half_order if reorder is None else reorder
    if not callable(reorder):
        raise TypeError(f"reorder must be a function (weight, num_heads) -> weight, got {type(reorder).__name__}")
    config, weights = model.config, dict(model.weights)
    for layer in range(config.num_layers):
        for name, heads in (("attn_q", config.num_heads), ("attn_k", config.num_kv_heads)):
            key = f"blk.{layer}.{name}.weight"
            original = model.weights[key]  # (heads * D, E): given as a copy, so an in-place reorder leaves the model be
            reordered = reorder(original.clone(), heads)
            if not isinstance(reordered, torch.Tensor):
                raise TypeError(f"reordering {key} returned {type(reordered).__name__}, not a tensor: does your "
                                f"function end with a return?")
            if reordered.shape != original.shape or reordered.dtype != original.dtype:
                raise ValueError(f"reordering {key} {tuple(original.shape)} {original.dtype} with {heads} heads gave "
                                 f"{tuple(reordered.shape)} {reordered.dtype}: the rows move, the shape and dtype stay")
            weights[key] = reordered  # (heads * D, E)
    return Llama(config, weights, model.tokenizer, rope=apply_rope_rotate_half)


def _choose(logits: torch.Tensor, temperature: float, top_k: int | None, generator) -> torch.Tensor:
    """The next token of each row (B,) from its logits (B, vocab): the argmax, or a sample."""
    if temperature == 0:
        return logits.argmax(dim=-1)  # (B,)
    if top_k is not None:
        threshold = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest logit
        logits = logits.masked_fill(logits < threshold, float("-inf"))  # (B, vocab)
    probabilities = torch.softmax(logits / temperature, dim=-1)  # (B, vocab)
    return torch.multinomial(probabilities, 1, generator=generator)[:, 0]  # (B,)


def _attend(attention: Callable, query, key, value, causal: str) -> torch.Tensor:
    """Call the hook with the mask convention for these lengths (see the module's docstring)."""
    num_queries, num_keys = query.shape[-2], key.shape[-2]
    if num_queries == num_keys:
        result = attention(query, key, value, is_causal=True)
    elif num_queries == 1:
        result = attention(query, key, value)  # one new token: it sees every key
    elif causal == "top-left":
        result = attention(query, key, value, is_causal=True)  # the bug: query i sees keys 0..i only
    else:
        try:
            result = attention(query, key, value, attn_mask=bottom_right_mask(num_queries, num_keys))
        except TypeError as error:
            if "attn_mask" not in str(error):
                raise
            raise TypeError(f"{getattr(attention, '__name__', 'this attention')} takes no attn_mask, and "
                            f"{num_queries} new tokens on top of a cache need one (bottom-right causal). Use it "
                            f"with cache=False, or prefill one token at a time.") from None
    return result[0] if isinstance(result, (tuple, list)) else result  # (B, H, T, D)


def _require_ids(ids, vocab_size: int) -> torch.Tensor:
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype != torch.long:
        described = f"a {ids.dtype} tensor of shape {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"ids must be a (B, T) LongTensor of token ids, got {described}; for one text use "
                         f"torch.tensor([model.tokenizer.encode(text)])")
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"token ids must lie in 0..{vocab_size - 1}, got values from {int(ids.min())} to {int(ids.max())}")
    return ids
