"""The explorer of lesson 01: which words does a query attend to?.

A pure ``*_view`` function computes what to draw from the controls' values; the ``*_explorer`` builder wires
ipywidgets to it (:mod:`course_lib.widgets.figures`).

Lesson: notebooks/01_attention_by_hand.ipynb. Tests: tests/test_widgets.py.
"""
from __future__ import annotations

import numpy as np

from course_lib import plots, trophy
from course_lib.widgets.figures import interactive_figure, new_figure


def attention_view(sentence: str = "big", query: int | str = "it", temperature: float = 1.0,
                   step: str = "resolve") -> dict:
    """Weights of the trophy example for one sentence, one query (token or position) and a temperature."""
    result = trophy.resolve(sentence, temperature=temperature)
    tokens = result["tokens"]
    weights = result[f"{step}_weights"]  # (T, T)
    row = tokens.index(query) if isinstance(query, str) else int(query)
    return {"tokens": tokens, "weights": weights, "row": row, "query_weights": weights[row],
            "top": tokens[int(np.argmax(weights[row]))]}


def attention_explorer():
    """Lesson 01 widget: pick the sentence, the query token, a temperature and the step."""
    import ipywidgets as widgets

    tokens = trophy.SENTENCES["big"]
    figure, (bars_ax, heat_ax) = new_figure(2, width=5.5, height=4.2)
    first = attention_view()
    bars = plots.weight_bars(bars_ax, first["query_weights"], tokens)
    heatmap = plots.attention_heatmap(heat_ax, first["weights"], tokens, tokens, title="every query's weights")
    row_lines = [heat_ax.axhline(0, color="white", linewidth=1.5) for _ in range(2)]

    def update(sentence, query, temperature, step):
        view = attention_view(sentence, query, temperature, step)
        plots.set_bars(bars, view["query_weights"], highlight=int(np.argmax(view["query_weights"])))
        bars_ax.set_title(f"'{view['tokens'][view['row']]}' attends most to '{view['top']}'")
        for ax in (bars_ax, heat_ax):  # the last word is "big" or "small"
            ax.set_xticks(range(len(view["tokens"])), view["tokens"], rotation=90)
        heat_ax.set_yticks(range(len(view["tokens"])), view["tokens"])
        heatmap.set_data(view["weights"])
        for line, y in zip(row_lines, (view["row"] - 0.5, view["row"] + 0.5)):
            line.set_ydata([y, y])

    return interactive_figure(
        figure, update, colorbars=[(heatmap, "weight")],
        sentence=widgets.ToggleButtons(options=[("…too big", "big"), ("…too small", "small")], value="big"),
        query=widgets.Dropdown(options=[(t, i) for i, t in enumerate(tokens)], value=tokens.index("it"),
                               description="query"),
        temperature=widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=1, step=0.05, description="temperature"),
        step=widgets.ToggleButtons(options=[("1: describe", "describe"), ("2: resolve", "resolve")], value="resolve"),
    )
