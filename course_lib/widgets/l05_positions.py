"""The explorer of lesson 05: positions.

A pure ``*_view`` function computes what to draw from the controls' values; the ``*_explorer`` builder wires
ipywidgets to it (:mod:`course_lib.widgets.figures`).

Lesson: notebooks/05_positions.ipynb. Tests: tests/test_widgets.py.
"""
from __future__ import annotations

from course_lib.widgets.figures import interactive_figure, new_figure


def positions_view(position_a: int = 10, position_b: int = 20, band=(0, 64), num_positions: int = 64,
                   dim: int = 64) -> dict:
    """Sinusoidal encodings restricted to a band of features, and the dot products they give.

    ``band`` = (first, last) feature index: low features oscillate fast, high features slowly. Returns the
    (num_positions, band width) encodings, the similarity of position_a with every position, and a . b.
    """
    from course_lib.positional import sinusoidal_encoding

    first, last = sorted(band)
    last = max(last, first + 1)
    encoding = sinusoidal_encoding(num_positions, dim)[:, first:last].double()  # (P, W)
    similarity = encoding @ encoding[position_a]  # (P,): dot product of position_a with every position
    return {"encoding": encoding.numpy(), "similarity": similarity.numpy(), "band": (first, last),
            "dot": float(encoding[position_a] @ encoding[position_b]), "a": position_a, "b": position_b}


def positions_explorer(num_positions: int = 64, dim: int = 64):
    """Lesson 05 widget: two positions and a band of features -> the encodings and their dot products."""
    import ipywidgets as widgets

    figure, (left, right) = new_figure(2, width=5.0, height=3.8)
    view = positions_view(num_positions=num_positions, dim=dim)
    image = left.imshow(view["encoding"], aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
    left.set_xlabel("feature (in the chosen band)")
    left.set_ylabel("position")
    marks = [left.axhline(0, color=color, linewidth=2) for color in ("black", "tab:orange")]
    (curve,) = right.plot(view["similarity"])
    point = right.plot([0], [0], "o", color="tab:orange")[0]
    right.set_xlabel("position")
    right.set_ylabel("dot product with position a", labelpad=12)  # clear of the left plot's colorbar label
    left.set_title("features"), right.set_title("a·b")  # placeholders, so that the layout leaves room

    def update(position_a, position_b, band):
        view = positions_view(position_a, position_b, band, num_positions, dim)
        image.set_data(view["encoding"])
        image.set_extent((-0.5, view["encoding"].shape[1] - 0.5, num_positions - 0.5, -0.5))
        for mark, position in zip(marks, (position_a, position_b)):
            mark.set_ydata([position, position])
        curve.set_ydata(view["similarity"])
        point.set_data([position_b], [view["dot"]])
        right.set_ylim(view["similarity"].min() - 0.5, view["similarity"].max() + 0.5)
        left.set_title(f"features {view['band'][0]}..{view['band'][1] - 1}")
        right.set_title(f"a·b = {view['dot']:.2f}  (a = {position_a}, b = {position_b})")

    return interactive_figure(
        figure, update, colorbars=[(image, "feature value")],
        position_a=widgets.IntSlider(value=10, min=0, max=num_positions - 1, description="position a"),
        position_b=widgets.IntSlider(value=20, min=0, max=num_positions - 1, description="position b"),
        band=widgets.IntRangeSlider(value=(0, dim), min=0, max=dim, step=2, description="features"),
    )
