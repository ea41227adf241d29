"""The figure machinery every lesson's explorer shares: a figure outside pyplot, its PNG, and a box of controls
that redraws it in place on every change.

The builder owns the layout, so no lesson repeats it: controls wrap onto the next line instead of squeezing
each other, sliders keep a usable track, descriptions are never cut off, heatmaps get colorbars, and the figure
is rendered at twice its size and shown at its natural size (crisp on a projector, never stretched).
Only ipywidgets and matplotlib: no CDN, no custom JavaScript, so everything works offline in JupyterLab.
Lessons: every explorer in course_lib/widgets/. Tests: tests/test_widgets.py and tests/browser/.
"""
from __future__ import annotations

import io
import math
import time
from typing import Callable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

CSS_DPI = 80  # pixels of the page per inch of figure: the size an explorer is shown at
RENDER_SCALE = 2  # the PNG has twice as many pixels, so text stays sharp on a projector or a HiDPI screen
SLIDER_WIDTH = "360px"  # description + track + readout: the track stays over 110 px beside the longest description
SLIDERS = ("IntSlider", "FloatSlider", "FloatLogSlider", "IntRangeSlider", "FloatRangeSlider",
           "SelectionSlider", "SelectionRangeSlider")


def blank_figure(width: float, height: float, dpi: int = CSS_DPI) -> Figure:
    """A figure outside pyplot (so the notebook does not show it by itself) that renders to PNG with Agg.

    ``width`` and ``height`` are in inches at ``dpi`` pixels per inch on the page; the figure itself holds
    ``RENDER_SCALE`` times as many pixels, and ``css_width`` records the width to show it at.
    """
    figure = Figure(figsize=(width, height), dpi=dpi * RENDER_SCALE)
    FigureCanvasAgg(figure)
    figure.css_width = round(width * dpi)
    return figure


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 4.0, dpi: int = CSS_DPI):
    """A blank figure with ``ncols`` plots side by side, each ``width`` wide: (figure, [axes, ...])."""
    figure = blank_figure(width * ncols, height, dpi)
    return figure, [figure.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def render_png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.canvas.print_png(buffer)
    return buffer.getvalue()


def lay_out_control(control) -> None:
    """A control's description at its full width (never "temperat…"), and sliders wide enough to drag."""
    if hasattr(control, "style") and hasattr(control.style, "description_width"):
        control.style.description_width = "initial"
    if type(control).__name__ in SLIDERS:
        control.layout.width = SLIDER_WIDTH


def add_colorbars(figure, colorbars) -> None:
    """A colorbar beside each (image, label) pair's image, then the figure's layout redone around them."""
    for image, label in colorbars:
        figure.colorbar(image, ax=image.axes, label=label, fraction=0.046, pad=0.04)
    figure.tight_layout()


def interactive_figure(figure, update: Callable[..., None], colorbars=(), **controls):
    """A box of ``controls`` above ``figure``; on every change ``update(**values)`` edits the figure in place.

    The figure is drawn once and only its data change (bar heights, image pixels, titles), then it is
    rendered to a PNG shown in an ``ipywidgets.Image`` at the figure's natural size: no re-layout, so
    updates stay fast. ``colorbars`` is a list of (image, label): heatmaps that get a colorbar. The box gets
    ``controls``, ``figure``, ``start`` (the controls' starting values), ``refresh()``, ``draw(values)``
    (the PNG of those values, the controls untouched) and ``last_seconds`` (how long the last update took,
    rendering included).
    """
    import ipywidgets as widgets

    add_colorbars(figure, colorbars)
    for control in controls.values():
        lay_out_control(control)
    width = getattr(figure, "css_width", None)
    image = widgets.Image(format="png", layout=widgets.Layout(
        width=f"{width}px" if width else "auto", max_width="100%", height="auto", object_fit="contain"))
    row = widgets.HBox(list(controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
    box = widgets.VBox([row, image])

    def draw(values: dict) -> bytes:
        update(**values)
        return render_png(figure)

    def refresh(change=None):
        start = time.perf_counter()
        image.value = draw({name: control.value for name, control in controls.items()})
        box.last_seconds = time.perf_counter() - start

    for control in controls.values():
        control.observe(refresh, names="value")
    box.refresh, box.draw, box.controls, box.figure = refresh, draw, controls, figure
    box.start = {name: control.value for name, control in controls.items()}
    refresh()
    return box


def on_grid(control, value) -> bool:
    """Whether ``value`` is one the control can hold as it is: a browser snaps any other value to its grid and
    sends the snapped one back (a FloatLogSlider set to 5.0 comes back as 10**0.7 = 5.0119)."""
    if hasattr(control, "options"):
        values = [option[1] if isinstance(option, tuple) else option for option in control.options]
        return value in values
    if not hasattr(control, "step"):
        return True  # a checkbox or a text box: no grid
    for part in (value if isinstance(value, (tuple, list)) else (value,)):
        position = math.log(part, control.base) if hasattr(control, "base") else part
        steps = (position - control.min) / control.step
        if not control.min - 1e-9 <= position <= control.max + 1e-9 or abs(steps - round(steps)) > 1e-6:
            return False
    return True


def time_updates(box, control: str, values) -> float:
    """Median seconds per redraw (update and PNG) when ``box.controls[control]`` takes each of ``values``.

    The controls are never touched, so nothing goes to the browser and the explorer stays exactly at the
    state it was in; the figure is redrawn at that state at the end. Every value must lie on the control's
    grid, so that what is timed is what a learner can choose.
    """
    widget = box.controls[control]
    off_grid = [value for value in values if not on_grid(widget, value)]
    if off_grid:
        raise ValueError(f"{control}: {off_grid} not on the control's grid (min {getattr(widget, 'min', None)}, "
                         f"max {getattr(widget, 'max', None)}, step {getattr(widget, 'step', None)}); "
                         f"a browser would snap them, so time values a learner can choose")
    current = {name: widget.value for name, widget in box.controls.items()}
    seconds = []
    for value in values:
        start = time.perf_counter()
        box.draw({**current, control: value})
        seconds.append(time.perf_counter() - start)
    box.draw(current)
    return float(np.median(seconds))
