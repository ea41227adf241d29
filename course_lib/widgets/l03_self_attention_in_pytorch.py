"""The explorer of lesson 03: attention sharpening while a model trains.

A pure ``*_view`` function computes what to draw from the controls' values; the ``*_explorer`` builder wires
ipywidgets to it (:mod:`course_lib.widgets.figures`).

Lesson: notebooks/03_self_attention_in_pytorch.ipynb. Tests: tests/test_widgets.py.
"""
from __future__ import annotations

from course_lib import plots
from course_lib.widgets.figures import interactive_figure, new_figure


def training_view(history: dict, index: int) -> dict:
    """The recorded attention map and accuracy at one recorded training step."""
    return {"step": history["steps"][index], "weights": history["weights"][index],
            "accuracy": history["accuracy"][index], "labels": history["labels"]}


def training_explorer(history: dict):
    """Lesson 03 widget: a slider over the training steps at which attention maps were recorded."""
    import ipywidgets as widgets

    figure, (ax,) = new_figure(1, width=6.0, height=4.2)
    image = plots.attention_heatmap(ax, history["weights"][0], history["labels"], history["labels"], title="step")

    def update(index):
        view = training_view(history, index)
        image.set_data(view["weights"])
        ax.set_title(f"step {view['step']}: test accuracy {view['accuracy']:.0%}")

    return interactive_figure(
        figure, update, colorbars=[(image, "weight")],
        index=widgets.IntSlider(value=len(history["steps"]) - 1, min=0, max=len(history["steps"]) - 1,
                                description="recording"),
    )
