"""The explorer of lesson 09: causal linear attention as a recurrent network, one token at a time.

A pure ``*_view`` function computes what to draw from the controls' values; the ``*_explorer`` builder wires
ipywidgets to it (:mod:`course_lib.widgets.figures`).

Lesson: notebooks/09_linear_attention.ipynb. Tests: tests/test_widgets.py.
"""
from __future__ import annotations

import numpy as np

from course_lib.widgets.figures import interactive_figure, new_figure


def recurrent_state_view(tokens_seen: int = 1, num_tokens: int = 16, head_dim: int = 4, seed: int = 0) -> dict:
    """The state (U, z) after ``tokens_seen`` steps of :func:`course_lib.linear.linear_attention_step`, the
    newest token's output, the weights over the keys so far that give the same output, and both memories.

    Returns U (D, Dv) and z (D,), the weights (tokens_seen,), the gap between the state's output and the
    weights' average of the values, and how many numbers the state and a KV cache hold after each token.
    """
    import torch

    from course_lib import linear

    if not 1 <= tokens_seen <= num_tokens:
        raise ValueError(f"tokens_seen={tokens_seen} must be between 1 and num_tokens={num_tokens}")
    generator = torch.Generator().manual_seed(seed)
    queries, keys, values = (torch.randn(num_tokens, head_dim, generator=generator, dtype=torch.float64)
                             for _ in range(3))  # (T, D) each, Dv = D
    state = torch.zeros(head_dim, head_dim, dtype=torch.float64)  # (D, Dv)
    normaliser = torch.zeros(head_dim, dtype=torch.float64)  # (D,)
    for position in range(tokens_seen):
        output, state, normaliser = linear.linear_attention_step(
            state, normaliser, queries[position], keys[position], values[position])  # (Dv,), (D, Dv), (D,)
    newest = tokens_seen - 1
    weights = linear.kernel_attention_weights(linear.elu_feature_map(queries[newest:tokens_seen]),
                                              linear.elu_feature_map(keys[:tokens_seen]))[0]  # (tokens_seen,)
    tokens = np.arange(1, num_tokens + 1)  # (T,)
    return {"state": state.numpy(), "normaliser": normaliser.numpy(), "output": output.numpy(),
            "weights": weights.numpy(), "error": float((weights @ values[:tokens_seen] - output).abs().max()),
            "state_numbers": np.full(num_tokens, head_dim * head_dim + head_dim),  # (T,): U and z, fixed
            "cache_numbers": 2 * head_dim * tokens,  # (T,): a key and a value per token
            "title": f"after token {tokens_seen}: state U ({head_dim}×{head_dim}), the sum of φ(k) vᵀ"}


def recurrent_state_explorer(num_tokens: int = 16, head_dim: int = 4, seed: int = 0):
    """Lesson 09 widget: step through a sequence; the state keeps its size, the KV cache grows, and the state's
    output is the newest query's weighted average of every value so far."""
    import ipywidgets as widgets

    figure, (state_ax, weights_ax, memory_ax) = new_figure(3, width=3.6, height=3.4)
    first = recurrent_state_view(1, num_tokens, head_dim, seed)
    limit = float(np.abs(recurrent_state_view(num_tokens, num_tokens, head_dim, seed)["state"]).max())
    state_image = state_ax.imshow(first["state"], cmap="RdBu", vmin=-limit, vmax=limit)
    state_ax.set_xticks(range(head_dim)), state_ax.set_yticks(range(head_dim))
    state_ax.set_xlabel("value feature")
    state_ax.set_ylabel("key feature")
    bars = weights_ax.bar(range(1, num_tokens + 1), np.zeros(num_tokens), color="tab:blue")
    weights_ax.set_xlabel("key (token)")
    weights_ax.set_ylabel("weight of the newest query")
    weights_ax.set_ylim(0, 1)
    tokens = np.arange(1, num_tokens + 1)  # (T,)
    memory_ax.plot(tokens, first["cache_numbers"], color="tab:red", label="KV cache (softmax)")
    memory_ax.plot(tokens, first["state_numbers"], color="tab:green", label="state U, z (linear)")
    (now,) = memory_ax.plot([], [], "ko")
    memory_ax.set_xlabel("tokens seen")
    memory_ax.set_ylabel("numbers kept")
    memory_ax.legend(loc="upper left", fontsize=8)
    state_ax.set_title(first["title"], fontsize=9)
    weights_ax.set_title("weights", fontsize=9)
    memory_ax.set_title("memory", fontsize=9)

    def update(tokens_seen):
        view = recurrent_state_view(tokens_seen, num_tokens, head_dim, seed)
        state_image.set_data(view["state"])
        state_ax.set_title(view["title"], fontsize=9)
        for index, bar in enumerate(bars):
            bar.set_height(view["weights"][index] if index < tokens_seen else 0.0)
        weights = "1 weight" if tokens_seen == 1 else f"{tokens_seen} weights"
        weights_ax.set_title(f"the same output from {weights} (gap {view['error']:.0e})", fontsize=9)
        now.set_data([tokens_seen, tokens_seen], [view["cache_numbers"][tokens_seen - 1], view["state_numbers"][0]])
        memory_ax.set_title(f"{view['cache_numbers'][tokens_seen - 1]} vs {view['state_numbers'][0]} numbers",
                            fontsize=9)

    return interactive_figure(
        figure, update, colorbars=[(state_image, "state value")],
        tokens_seen=widgets.IntSlider(value=1, min=1, max=num_tokens, description="tokens seen"),
    )
