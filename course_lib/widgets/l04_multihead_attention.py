"""The explorer of lesson 04: which head does what?.

A pure ``*_view`` function computes what to draw from the controls' values; the ``*_explorer`` builder wires
ipywidgets to it (:mod:`course_lib.widgets.figures`).

Lesson: notebooks/04_multihead_attention.ipynb. Tests: tests/test_widgets.py.
"""
from __future__ import annotations

from course_lib import plots
from course_lib.widgets.figures import interactive_figure, new_figure


def heads_view(record: dict, layer: int, head: int) -> dict:
    """One head's attention map from a record {"weights": L x (H, T, T), "labels", "scores": {name: (L, H)}}."""
    scores = {name: float(values[layer][head]) for name, values in record["scores"].items()}
    return {"weights": record["weights"][layer][head], "labels": record["labels"], "scores": scores,
            "title": f"layer {layer}, head {head}: " + ", ".join(f"{name} {value:.2f}" for name, value in scores.items())}


def heads_explorer(record: dict):
    """Lesson 04 widget: pick a layer and a head, see its attention map with tokens on the axes."""
    import ipywidgets as widgets

    num_layers, num_heads = len(record["weights"]), len(record["weights"][0])
    figure, (ax,) = new_figure(1, width=6.5, height=6.0)
    first = heads_view(record, 0, 0)
    image = plots.attention_heatmap(ax, first["weights"], first["labels"], first["labels"], title=first["title"])
    ax.tick_params(labelsize=7)

    def update(layer, head):
        view = heads_view(record, layer, head)
        image.set_data(view["weights"])
        ax.set_title(view["title"], fontsize=9)

    return interactive_figure(
        figure, update, colorbars=[(image, "weight")],
        layer=widgets.Dropdown(options=list(range(num_layers)), value=0, description="layer"),
        head=widgets.Dropdown(options=list(range(num_heads)), value=0, description="head"),
    )
