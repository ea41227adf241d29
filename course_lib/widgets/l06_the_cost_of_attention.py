"""The explorer of lesson 06: the context-window calculator.

A pure ``*_view`` function computes what to draw from the controls' values; the ``*_explorer`` builder wires
ipywidgets to it (:mod:`course_lib.widgets.figures`).

Lesson: notebooks/06_the_cost_of_attention.ipynb. Tests: tests/test_widgets.py.
"""
from __future__ import annotations

import numpy as np

from course_lib import measure
from course_lib.widgets.figures import interactive_figure, new_figure


def context_view(embed_dim: int = 4096, num_layers: int = 32, num_heads: int = 32, num_kv_heads: int = 8,
                 length: int = 4096, dtype: str = "float16") -> dict:
    """Memory of one (T, T) score matrix, of all of one layer's, and of the KV cache with MHA, GQA and MQA."""
    from course_lib import cost

    if embed_dim % num_heads or num_heads % num_kv_heads:
        raise ValueError(f"need embed_dim divisible by num_heads and num_heads by num_kv_heads, got "
                         f"embed_dim={embed_dim}, num_heads={num_heads}, num_kv_heads={num_kv_heads}")
    size = cost.DTYPE_BYTES[dtype]
    head_dim = embed_dim // num_heads
    kv_cache = {f"MHA ({num_heads} KV heads)": cost.kv_cache_bytes(num_layers, num_heads, head_dim, length, 1, size),
                f"GQA ({num_kv_heads} KV heads)": cost.kv_cache_bytes(num_layers, num_kv_heads, head_dim, length, 1, size),
                "MQA (1 KV head)": cost.kv_cache_bytes(num_layers, 1, head_dim, length, 1, size)}
    one_matrix = cost.score_matrix_bytes(length, length, 1, 1, size)
    layer_scores = cost.score_matrix_bytes(length, length, num_heads, 1, size)
    return {"head_dim": head_dim, "score_matrix": one_matrix, "layer_scores": layer_scores, "kv_cache": kv_cache,
            "title": f"T = {length:,} tokens, {dtype}: one score matrix {measure.format_bytes(one_matrix)}, "
                     f"all heads of a layer {measure.format_bytes(layer_scores)}"}


def bar_names(view: dict) -> list[str]:
    """The calculator's bars: two of scores (one layer, computed and thrown away) and three of KV cache
    (kept for every token of every layer)."""
    return ["scores, one matrix", "scores, one layer", *(f"KV cache, {name}" for name in view["kv_cache"])]


def context_explorer():
    """Lesson 06 widget: model dimensions, sequence length and dtype -> memory of scores and KV cache."""
    import ipywidgets as widgets

    from course_lib import cost

    figure, (ax,) = new_figure(1, width=8.0, height=3.6)
    first = context_view()
    names = bar_names(first)
    bars = ax.barh(range(len(names)), np.ones(len(names)), color=["tab:gray", "tab:gray", "tab:red", "tab:orange", "tab:green"])
    ax.set_yticks(range(len(names)), names)
    ax.set_xscale("log")
    ax.set_xlabel("bytes (log scale); grey: scores of one layer, colours: KV cache of all layers")
    labels = [ax.text(1, i, "", va="center", fontsize=9) for i in range(len(names))]
    ax.set_title(first["title"], fontsize=9)

    def update(embed_dim, num_layers, num_heads, num_kv_heads, length, dtype):
        view = context_view(embed_dim, num_layers, num_heads, num_kv_heads, length, dtype)
        values = [view["score_matrix"], view["layer_scores"], *view["kv_cache"].values()]
        ax.set_yticks(range(len(values)), bar_names(view))
        for bar, label, value in zip(bars, labels, values):
            bar.set_width(value)
            label.set_position((value * 1.1, label.get_position()[1]))
            label.set_text(measure.format_bytes(value))
        ax.set_xlim(min(values) / 2, max(values) * 20)
        ax.set_title(view["title"], fontsize=9)

    return interactive_figure(
        figure, update,
        embed_dim=widgets.Dropdown(options=[1024, 2048, 4096, 8192], value=4096, description="embed dim"),
        num_layers=widgets.IntSlider(value=32, min=1, max=96, description="layers"),
        num_heads=widgets.Dropdown(options=[8, 16, 32, 64], value=32, description="heads"),
        num_kv_heads=widgets.Dropdown(options=[1, 2, 4, 8], value=8, description="KV heads"),
        length=widgets.SelectionSlider(options=[2**k for k in range(9, 21)], value=4096, description="tokens"),
        dtype=widgets.Dropdown(options=list(cost.DTYPE_BYTES), value="float16", description="dtype"),
    )
