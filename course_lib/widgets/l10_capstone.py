"""The explorer of lesson 10: step through generation, one token at a time, and watch the newest token's
attention over the context for a chosen layer and head, with the KV cache growing beside it.

A pure ``*_view`` function computes what to draw from the controls' values; the ``*_explorer`` builder wires
ipywidgets to it (:mod:`course_lib.widgets.figures`). The generation itself is recorded once, beforehand, by
:func:`course_lib.llama.heads.record_generation`, so moving a control only redraws.

Lesson: notebooks/10_capstone.ipynb. Tests: tests/test_widgets.py.
"""
from __future__ import annotations

import numpy as np

from course_lib import measure
from course_lib.plots import set_bars, weight_bars
from course_lib.validation import require_whole_numbers
from course_lib.widgets.figures import interactive_figure, new_figure


def generation_view(record: dict, step: int = 0, layer: int = 0, head: int = 0) -> dict:
    """What step ``step`` of a recorded generation shows for (layer, head): the weights (S,) of the newest token
    over the S tokens so far, their texts, the cache's size at every step and a title."""
    if not isinstance(record, dict) or not record.get("weights") or "pieces" not in record:
        raise ValueError("record must be what course_lib.llama.heads.record_generation returns (with at least one step)")
    steps = len(record["weights"])
    layers, heads, _ = record["weights"][0].shape
    require_whole_numbers(0, step=step, layer=layer, head=head)
    for name, value, count in (("step", step, steps), ("layer", layer, layers), ("head", head, heads)):
        if not 0 <= value < count:
            raise ValueError(f"{name} must be in 0..{count - 1}, got {value}")
    weights = record["weights"][step][layer, head].numpy()  # (S,)
    length = weights.shape[0]
    pieces = record["pieces"]
    strongest = int(weights.argmax())
    return {
        "weights": weights, "pieces": pieces[:length], "cache_bytes": record["cache_bytes"],
        "title": f"step {step}: {pieces[length - 1]!r} looks at {length} tokens\n(most at {pieces[strongest]!r}, "
                 f"{weights[strongest]:.2f}) and is followed by {pieces[length]!r}",
        "cache_title": f"KV cache: {measure.format_bytes(record['cache_bytes'][step])} after {length} tokens",
    }


def generation_explorer(record: dict):
    """Lesson 10 widget: generation step, layer and head -> the newest token's attention, and the cache size."""
    import ipywidgets as widgets

    steps = len(record["weights"])
    layers, heads, _ = record["weights"][0].shape
    longest = record["weights"][-1].shape[-1]
    figure, (ax, cache_ax) = new_figure(2, width=6.0, height=4.0)
    bars = weight_bars(ax, np.zeros(longest), record["pieces"][:longest])
    ax.set_xlim(-0.5, longest - 0.5)
    cache_bars = cache_ax.bar(range(steps), np.asarray(record["cache_bytes"]) / 2**10, color="lightgray")
    cache_ax.set_xlabel("generation step")
    cache_ax.set_ylabel("KV cache (KiB, float32, 30 layers)")

    def update(step, layer, head):
        view = generation_view(record, step, layer, head)
        length = len(view["weights"])
        set_bars(bars, np.pad(view["weights"], (0, longest - length)), highlight=length - 1)  # the newest: orange
        ax.set_xticks(range(length), view["pieces"], rotation=90, fontsize=9)
        for position, label in enumerate(ax.get_xticklabels()):  # the query's name marked: its bar is often near 0
            label.set_color("tab:orange" if position == length - 1 else "black")
            label.set_fontweight("bold" if position == length - 1 else "normal")
        ax.set_title(view["title"], fontsize=10)
        for index, bar in enumerate(cache_bars):
            bar.set_color("tab:orange" if index <= step else "lightgray")
        cache_ax.set_title(view["cache_title"], fontsize=10)

    update(step=steps - 1, layer=0, head=0)  # every token's name in place before the layout is fixed
    return interactive_figure(
        figure, update,
        step=widgets.IntSlider(value=0, min=0, max=steps - 1, description="step"),
        layer=widgets.IntSlider(value=0, min=0, max=layers - 1, description="layer"),
        head=widgets.IntSlider(value=0, min=0, max=heads - 1, description="head"),
    )
