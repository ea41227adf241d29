"""The explorer of lesson 08: the online softmax, one key block at a time.

A pure ``*_view`` function computes what to draw from the controls' values; the ``*_explorer`` builder wires
ipywidgets to it (:mod:`course_lib.widgets.figures`).

Lesson: notebooks/08_flash_attention.ipynb. Tests: tests/test_widgets.py.
"""
from __future__ import annotations

import numpy as np

from course_lib.widgets.figures import interactive_figure, new_figure


def online_softmax_view(block_size: int = 4, step: int = 1, num_keys: int = 16, seed: int = 0) -> dict:
    """One query row of ``num_keys`` scores and 2-D values: the state after ``step`` blocks, and the exact answer.

    Returns the scores, the running maximum ``m`` and normaliser ``l`` after each block so far, the output
    estimate ``out / l`` after each block, the exact softmax average, and how many keys have been seen.
    """
    import torch

    from course_lib.flash import online_softmax_steps

    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(num_keys, generator=generator, dtype=torch.float64) * 2  # (S,)
    values = torch.randn(num_keys, 2, generator=generator, dtype=torch.float64)  # (S, 2)
    steps = online_softmax_steps(scores, values, block_size)
    step = max(1, min(step, len(steps)))
    exact = torch.softmax(scores, dim=-1) @ values  # (2,)
    shown = steps[:step]
    return {"scores": scores.numpy(), "seen": shown[-1]["seen"], "num_steps": len(steps),
            "m": [s["m"] for s in shown], "l": [s["l"] for s in shown],
            "outputs": np.array([s["output"].numpy() for s in shown]), "exact": exact.numpy(),
            "error": float((shown[-1]["output"] - exact).abs().max())}


def online_softmax_explorer(num_keys: int = 16, seed: int = 0):
    """Lesson 08 widget: block size and step -> the scores seen so far, m and l, and the output converging."""
    import ipywidgets as widgets

    figure, (left, right) = new_figure(2, width=5.0, height=3.6)
    view = online_softmax_view(4, 1, num_keys, seed)
    bars = left.bar(range(num_keys), view["scores"], color="lightgray")
    (max_line,) = left.plot([], [], "k--", label="running max m")
    left.set_xlabel("key")
    left.set_ylabel("score")
    left.legend(loc="lower right", fontsize=8)
    exact = view["exact"]
    right.plot([exact[0]], [exact[1]], "*", color="tab:red", markersize=14, label="exact softmax average")
    (path,) = right.plot([], [], "o-", color="tab:blue", label="out / l after each block")
    right.set_xlabel("output[0]")
    right.set_ylabel("output[1]")
    right.legend(loc="best", fontsize=8)
    left.set_title("scores"), right.set_title("output")

    def update(block_size, step):
        view = online_softmax_view(block_size, step, num_keys, seed)
        for index, bar in enumerate(bars):
            block = index // block_size
            bar.set_color(("tab:blue", "tab:cyan")[block % 2] if index < view["seen"] else "lightgray")
        xs = [x for i in range(len(view["m"])) for x in (i * block_size - 0.5, min((i + 1) * block_size, num_keys) - 0.5)]
        max_line.set_data(xs, [m for m in view["m"] for _ in range(2)])
        path.set_data(view["outputs"][:, 0], view["outputs"][:, 1])
        points = np.vstack([view["outputs"], view["exact"][None]])
        low, high = points.min(axis=0), points.max(axis=0)
        pad = 0.1 * max(high.max() - low.min(), 1e-3)
        right.set_xlim(low[0] - pad, high[0] + pad)
        right.set_ylim(low[1] - pad, high[1] + pad)
        left.set_title(f"{view['seen']}/{num_keys} keys seen: m = {view['m'][-1]:.2f}, l = {view['l'][-1]:.2f}")
        right.set_title(f"after block {len(view['m'])}/{view['num_steps']}: error {view['error']:.1e}")

    block_size = widgets.IntSlider(value=4, min=1, max=num_keys, description="block size")
    step = widgets.IntSlider(value=1, min=1, max=num_blocks(num_keys, 4), description="blocks seen")

    def follow_block_size(change):  # registered before the redraw, so the redraw sees the new range
        step.max = num_blocks(num_keys, change["new"])  # a value past the new end is clamped to it

    block_size.observe(follow_block_size, names="value")
    return interactive_figure(figure, update, block_size=block_size, step=step)


def num_blocks(num_keys: int, block_size: int) -> int:
    """How many blocks of ``block_size`` keys cover ``num_keys`` keys (the last one may be short)."""
    return -(-num_keys // block_size)
