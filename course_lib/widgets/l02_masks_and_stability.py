"""The explorer of lesson 02: masks.

A pure ``*_view`` function computes what to draw from the controls' values; the ``*_explorer`` builder wires
ipywidgets to it (:mod:`course_lib.widgets.figures`).

Lesson: notebooks/02_masks_and_stability.ipynb. Tests: tests/test_widgets.py.
"""
from __future__ import annotations

import numpy as np

from course_lib import numpy_attention, plots
from course_lib.widgets.figures import interactive_figure, new_figure


def mask_view(lengths=(6, 4, 2), sequence: int = 1, causal: bool = True, seed: int = 0, max_length: int = 6) -> dict:
    """Scores, mask and weights of one sequence in a batch padded to ``max_length``, causal or not."""
    n = max_length
    rng = np.random.default_rng(seed)
    queries = rng.standard_normal((len(lengths), n, 4))  # (B, n, D)
    keys = rng.standard_normal((len(lengths), n, 4))  # (B, n, D)
    mask = numpy_attention.attention_mask(lengths, n, causal=causal)  # (B, n, n)
    scores = numpy_attention.attention_scores(queries, keys)  # (B, n, n)
    _, weights = numpy_attention.scaled_dot_product_attention(queries, keys, keys, mask)  # (B, n, n)
    masked_scores = np.where(mask, scores, -np.inf)  # (B, n, n)
    return {"mask": mask[sequence], "masked_scores": masked_scores[sequence], "weights": weights[sequence],
            "length": int(lengths[sequence]), "fully_masked_rows": int((~mask[sequence].any(-1)).sum())}


def mask_explorer(max_length: int = 6):
    """Lesson 02 widget: toggle causal, slide the three sequences' lengths, pick which one to look at.

    Moving a sequence's length shows that sequence: the picture always answers the control just moved."""
    import ipywidgets as widgets

    figure, axes = new_figure(3, width=4.0, height=3.8)
    labels = [str(i) for i in range(max_length)]
    empty = np.zeros((max_length, max_length))
    images = [
        plots.attention_heatmap(axes[0], empty, labels, labels, title="mask (yellow = may attend)"),
        plots.attention_heatmap(axes[1], empty, labels, labels, title="scores (blank = -inf)", vmax=None, cmap="coolwarm"),
        plots.attention_heatmap(axes[2], empty, labels, labels, title="weights"),
    ]
    images[1].set_clim(-2.5, 2.5)

    def update(causal, sequence, length_0, length_1, length_2):
        lengths = (length_0, length_1, length_2)
        view = mask_view(lengths, sequence, causal, max_length=max_length)
        images[0].set_data(view["mask"].astype(float))
        images[1].set_data(np.where(np.isfinite(view["masked_scores"]), view["masked_scores"], np.nan))
        images[2].set_data(view["weights"])
        axes[0].set_title(f"mask: sequence {sequence}, length {view['length']}")
        axes[2].set_title(f"weights ({view['fully_masked_rows']} all-zero rows)")

    sequence = widgets.Dropdown(options=[0, 1, 2], value=1, description="sequence")
    sliders = {f"length_{i}": widgets.IntSlider(value=v, min=0, max=max_length, description=f"length {i}")
               for i, v in enumerate((6, 4, 2))}
    for index, slider in enumerate(sliders.values()):  # registered before the redraw: it draws that sequence
        slider.observe(lambda change, index=index: setattr(sequence, "value", index), names="value")
    return interactive_figure(
        figure, update, colorbars=[(images[1], "score"), (images[2], "weight")],
        causal=widgets.Checkbox(value=True, description="causal"), sequence=sequence, **sliders,
    )
