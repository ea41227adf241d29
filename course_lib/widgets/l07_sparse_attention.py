"""The explorer of lesson 07: sparse patterns and how far information travels.

A pure ``*_view`` function computes what to draw from the controls' values; the ``*_explorer`` builder wires
ipywidgets to it (:mod:`course_lib.widgets.figures`).

Lesson: notebooks/07_sparse_attention.ipynb. Tests: tests/test_widgets.py.
"""
from __future__ import annotations

import numpy as np

from course_lib.widgets.figures import blank_figure, interactive_figure


SPARSE_PATTERNS = ("sliding window", "dilated window", "strided", "fixed", "window + global", "BigBird")


def pattern_mask(pattern: str, n: int, size: int, extra: int, seed: int = 0):
    """The (n, n) mask of a named pattern. ``size`` is the window, stride or block size; ``extra`` is the
    dilation, the number of summary positions, of global tokens or of random blocks."""
    from course_lib import sparse

    if pattern == "sliding window":
        return sparse.sliding_window_mask(n, size)
    if pattern == "dilated window":
        return sparse.dilated_window_mask(n, size, max(extra, 1))
    if pattern == "strided":
        return sparse.strided_mask(n, size)
    if pattern == "fixed":
        return sparse.fixed_mask(n, size, summary=min(max(extra, 1), size))
    if pattern == "window + global":
        return sparse.sliding_window_mask(n, size) | sparse.global_mask(n, range(min(extra, n)))
    if pattern == "BigBird":
        return sparse.bigbird_mask(n, size, num_random=extra, num_global=1, seed=seed)
    raise ValueError(f"unknown pattern {pattern!r}; choose one of {', '.join(SPARSE_PATTERNS)}")


def sparse_view(pattern: str = "sliding window", size: int = 3, extra: int = 2, query: int = 40,
                n: int = 64) -> dict:
    """A pattern's mask, its density, and which keys reach ``query`` through 1, 2 and 3 layers of it."""
    from course_lib import sparse

    mask = pattern_mask(pattern, n, size, extra)  # (n, n)
    reach = np.stack([sparse.reachable(mask, layers)[query].numpy() for layers in (1, 2, 3)])  # (3, n)
    counts = [int(row.sum()) for row in reach]
    return {"mask": mask.numpy(), "density": sparse.density(mask), "reach": reach, "counts": counts,
            "title": f"{pattern}: density {sparse.density(mask):.1%}",
            "reach_title": f"query {query} sees {counts[0]}, {counts[1]}, {counts[2]} of {n} keys after 1, 2, 3 layers"}


def sparse_explorer(n: int = 64):
    """Lesson 07 widget: a pattern and its parameters -> the mask, its density, one query's reach per layer."""
    import ipywidgets as widgets

    figure = blank_figure(10.0, 4.2)
    grid = figure.add_gridspec(2, 2, height_ratios=(4, 1))
    mask_ax, reach_ax = figure.add_subplot(grid[:, 0]), figure.add_subplot(grid[0, 1])
    first = sparse_view(n=n)
    image = mask_ax.imshow(first["mask"], cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    mask_ax.set_xlabel("key")
    mask_ax.set_ylabel("query")
    row_line = mask_ax.axhline(40, color="tab:orange", linewidth=1)
    reach_image = reach_ax.imshow(first["reach"], cmap="viridis", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    reach_ax.set_yticks(range(3), ["1 layer", "2 layers", "3 layers"])
    reach_ax.set_xlabel("key position")
    mask_ax.set_title(first["title"])
    reach_ax.set_title(first["reach_title"], fontsize=9)

    def update(pattern, size, extra, query):
        view = sparse_view(pattern, size, extra, query, n)
        image.set_data(view["mask"])
        reach_image.set_data(view["reach"])
        row_line.set_ydata([query, query])
        mask_ax.set_title(view["title"])
        reach_ax.set_title(view["reach_title"], fontsize=9)

    return interactive_figure(
        figure, update,
        pattern=widgets.Dropdown(options=list(SPARSE_PATTERNS), value="sliding window", description="pattern"),
        size=widgets.IntSlider(value=3, min=1, max=16, description="window/stride/block"),
        extra=widgets.IntSlider(value=2, min=0, max=8, description="dilation/global/random"),
        query=widgets.IntSlider(value=40, min=0, max=n - 1, description="query"),
    )
