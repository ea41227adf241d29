"""Matplotlib drawings shared by the lessons and their widgets: attention heatmaps, weight bars, masks.

Every function draws onto an ``Axes`` it is given and returns what it drew, so widgets and lessons compose
them freely and widgets can update the drawing in place. Nothing here computes attention: that stays in the lesson modules.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def attention_heatmap(ax, weights, query_labels: Sequence[str] | None = None, key_labels: Sequence[str] | None = None,
                      title: str = "", highlight_row: int | None = None, vmax: float | None = 1.0, cmap: str = "viridis"):
    """Draw a (T, S) weight (or score, or mask) matrix: rows are queries, columns are keys."""
    weights = np.asarray(weights, dtype=float)  # (T, S)
    image = ax.imshow(weights, cmap=cmap, vmin=0.0 if vmax is not None else None, vmax=vmax, aspect="auto")
    if key_labels is not None:
        ax.set_xticks(range(len(key_labels)), key_labels, rotation=90)
    if query_labels is not None:
        ax.set_yticks(range(len(query_labels)), query_labels)
    if highlight_row is not None:
        ax.axhline(highlight_row - 0.5, color="white", linewidth=1.5)
        ax.axhline(highlight_row + 0.5, color="white", linewidth=1.5)
    ax.set_xlabel("key (what is attended to)")
    ax.set_ylabel("query (who is attending)")
    ax.set_title(title)
    return image


def weight_bars(ax, weights, labels: Sequence[str], title: str = ""):
    """Draw one query's weights over the keys as bars; returns the bars, to update with :func:`set_bars`."""
    bars = ax.bar(range(len(labels)), np.asarray(weights, dtype=float))
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("attention weight")
    ax.set_title(title)
    return bars


def set_bars(bars, weights, highlight: int | None = None) -> None:
    """New heights for bars drawn by :func:`weight_bars`; the highlighted one turns orange."""
    for i, (bar, weight) in enumerate(zip(bars, np.asarray(weights, dtype=float))):
        bar.set_height(weight)
        bar.set_color("tab:orange" if i == highlight else "tab:blue")
