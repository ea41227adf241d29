"""The figure machinery every lesson's explorer shares: a figure outside pyplot, its PNG, and a box of controls
that redraws it in place on every change.

Only ipywidgets and matplotlib: no CDN, no custom JavaScript, so everything works offline in JupyterLab.
Lessons: every explorer in course_lib/widgets/. Tests: tests/test_widgets.py.
"""
from __future__ import annotations

import io
import time
from typing import Callable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def blank_figure(width: float, height: float, dpi: int = 80) -> Figure:
    """A figure outside pyplot (so the notebook does not show it by itself) that renders to PNG with Agg."""
    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 4.0, dpi: int = 80):
    """A blank figure with ``ncols`` plots side by side, each ``width`` wide: (figure, [axes, ...])."""
    figure = blank_figure(width * ncols, height, dpi)
    return figure, [figure.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def render_png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.canvas.print_png(buffer)
    return buffer.getvalue()


def interactive_figure(figure, update: Callable[..., None], **controls):
    """A box of ``controls`` above ``figure``; on every change ``update(**values)`` edits the figure in place.

    The figure is drawn once and only its data change (bar heights, image pixels, titles), then it is
    rendered to a PNG shown in an ``ipywidgets.Image``: no re-layout, so updates stay fast. The box gets a
    ``refresh()`` method and ``last_seconds`` (how long the last update took, rendering included).
    """
    import ipywidgets as widgets

    image = widgets.Image(format="png")
    box = widgets.VBox([widgets.HBox(list(controls.values())), image])

    def refresh(change=None):
        start = time.perf_counter()
        update(**{name: control.value for name, control in controls.items()})
        image.value = render_png(figure)
        box.last_seconds = time.perf_counter() - start

    for control in controls.values():
        control.observe(refresh, names="value")
    box.refresh, box.controls, box.figure = refresh, controls, figure
    refresh()
    return box


def time_updates(box, control: str, values) -> float:
    """Median seconds per redraw when ``box.controls[control]`` steps through ``values``."""
    seconds = []
    for value in values:
        box.controls[control].value = value
        seconds.append(box.last_seconds)
    return float(np.median(seconds))
