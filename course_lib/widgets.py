"""Widgets for the lessons: a pure function computes what to draw, a thin builder wires ipywidgets to it.

The ``*_view`` functions take the widgets' values and return plain data (unit-tested headlessly); each
explorer draws its figure once and its ``update`` puts a new view into it; ``interactive_figure`` wires the
controls to ``update``.
Only ipywidgets and matplotlib: no CDN, no custom JavaScript, so everything works offline in JupyterLab.
"""
from __future__ import annotations

import io
import time
from typing import Callable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from course_lib import numpy_attention, plots, trophy


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 4.0, dpi: int = 80):
    """A figure outside pyplot (so the notebook does not show it by itself) that renders to PNG with Agg."""
    figure = Figure(figsize=(width * ncols, height), dpi=dpi)
    FigureCanvasAgg(figure)
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


# ----------------------------------------------------------------------------------------------------------
# Lesson 01: which words does a query attend to?
# ----------------------------------------------------------------------------------------------------------

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
    figure.tight_layout()

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
        figure, update,
        sentence=widgets.ToggleButtons(options=[("…too big", "big"), ("…too small", "small")], value="big"),
        query=widgets.Dropdown(options=[(t, i) for i, t in enumerate(tokens)], value=tokens.index("it"),
                               description="query"),
        temperature=widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=1, step=0.05, description="temperature"),
        step=widgets.ToggleButtons(options=[("1: describe", "describe"), ("2: resolve", "resolve")], value="resolve"),
    )


# ----------------------------------------------------------------------------------------------------------
# Lesson 02: masks
# ----------------------------------------------------------------------------------------------------------

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
    """Lesson 02 widget: toggle causal, slide the three sequences' lengths, pick which one to look at."""
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
    figure.tight_layout()

    def update(causal, sequence, length_0, length_1, length_2):
        lengths = (length_0, length_1, length_2)
        view = mask_view(lengths, sequence, causal, max_length=max_length)
        images[0].set_data(view["mask"].astype(float))
        images[1].set_data(np.where(np.isfinite(view["masked_scores"]), view["masked_scores"], np.nan))
        images[2].set_data(view["weights"])
        axes[0].set_title(f"mask: sequence {sequence}, length {view['length']}")
        axes[2].set_title(f"weights ({view['fully_masked_rows']} all-zero rows)")

    sliders = {f"length_{i}": widgets.IntSlider(value=v, min=0, max=max_length, description=f"length {i}")
               for i, v in enumerate((6, 4, 2))}
    return interactive_figure(
        figure, update,
        causal=widgets.Checkbox(value=True, description="causal"),
        sequence=widgets.Dropdown(options=[0, 1, 2], value=1, description="sequence"),
        **sliders,
    )


# ----------------------------------------------------------------------------------------------------------
# Lesson 03: attention sharpening while a model trains
# ----------------------------------------------------------------------------------------------------------

def training_view(history: dict, index: int) -> dict:
    """The recorded attention map and accuracy at one recorded training step."""
    return {"step": history["steps"][index], "weights": history["weights"][index],
            "accuracy": history["accuracy"][index], "labels": history["labels"]}


def training_explorer(history: dict):
    """Lesson 03 widget: a slider over the training steps at which attention maps were recorded."""
    import ipywidgets as widgets

    figure, (ax,) = new_figure(1, width=6.0, height=4.2)
    image = plots.attention_heatmap(ax, history["weights"][0], history["labels"], history["labels"], title="step")
    figure.tight_layout()

    def update(index):
        view = training_view(history, index)
        image.set_data(view["weights"])
        ax.set_title(f"step {view['step']}: test accuracy {view['accuracy']:.0%}")

    return interactive_figure(
        figure, update,
        index=widgets.IntSlider(value=len(history["steps"]) - 1, min=0, max=len(history["steps"]) - 1,
                                description="recording"),
    )


# ----------------------------------------------------------------------------------------------------------
# Lesson 05: positions
# ----------------------------------------------------------------------------------------------------------

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
    right.set_ylabel("dot product with position a")
    left.set_title("features"), right.set_title("a·b")  # placeholders, so that the layout leaves room
    figure.tight_layout()

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
        figure, update,
        position_a=widgets.IntSlider(value=10, min=0, max=num_positions - 1, description="position a"),
        position_b=widgets.IntSlider(value=20, min=0, max=num_positions - 1, description="position b"),
        band=widgets.IntRangeSlider(value=(0, dim), min=0, max=dim, step=2, description="features"),
    )


# ----------------------------------------------------------------------------------------------------------
# Lesson 04: which head does what?
# ----------------------------------------------------------------------------------------------------------

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
    figure.tight_layout()

    def update(layer, head):
        view = heads_view(record, layer, head)
        image.set_data(view["weights"])
        ax.set_title(view["title"], fontsize=9)

    return interactive_figure(
        figure, update,
        layer=widgets.Dropdown(options=list(range(num_layers)), value=0, description="layer"),
        head=widgets.Dropdown(options=list(range(num_heads)), value=0, description="head"),
    )


# ----------------------------------------------------------------------------------------------------------
# Lesson 06: the context-window calculator
# ----------------------------------------------------------------------------------------------------------

def context_view(embed_dim: int = 4096, num_layers: int = 32, num_heads: int = 32, num_kv_heads: int = 8,
                 length: int = 4096, dtype: str = "float16") -> dict:
    """Memory of one (T, T) score matrix, of all of one layer's, and of the KV cache with MHA, GQA and MQA."""
    from course_lib import cost

    if embed_dim % num_heads or num_heads % num_kv_heads:
        raise ValueError(f"need embed_dim divisible by num_heads and num_heads by num_kv_heads, got "
                         f"embed_dim={embed_dim}, num_heads={num_heads}, num_kv_heads={num_kv_heads}")
    size = cost.DTYPE_BYTES[dtype]
    head_dim = embed_dim // num_heads
    kv_cache = {f"MHA ({num_heads} KV heads)": cost.kv_cache_bytes(num_layers, num_heads, head_dim, length, 1, size),
                f"GQA ({num_kv_heads} KV heads)": cost.kv_cache_bytes(num_layers, num_kv_heads, head_dim, length, 1, size),
                "MQA (1 KV head)": cost.kv_cache_bytes(num_layers, 1, head_dim, length, 1, size)}
    one_matrix = cost.score_matrix_bytes(length, length, 1, 1, size)
    layer_scores = cost.score_matrix_bytes(length, length, num_heads, 1, size)
    return {"head_dim": head_dim, "score_matrix": one_matrix, "layer_scores": layer_scores, "kv_cache": kv_cache,
            "title": f"T = {length:,} tokens, {dtype}: one score matrix {measure.format_bytes(one_matrix)}, "
                     f"all heads of a layer {measure.format_bytes(layer_scores)}"}


def context_explorer():
    """Lesson 06 widget: model dimensions, sequence length and dtype -> memory of scores and KV cache."""
    import ipywidgets as widgets

    from course_lib import cost

    figure, (ax,) = new_figure(1, width=8.0, height=3.6)
    first = context_view()
    names = ["one score matrix", "scores, all heads", *first["kv_cache"]]
    bars = ax.barh(range(len(names)), np.ones(len(names)), color=["tab:gray", "tab:gray", "tab:red", "tab:orange", "tab:green"])
    ax.set_yticks(range(len(names)), names)
    ax.set_xscale("log")
    ax.set_xlabel("bytes (log scale)")
    labels = [ax.text(1, i, "", va="center", fontsize=9) for i in range(len(names))]
    ax.set_title(first["title"], fontsize=9)
    figure.tight_layout()

    def update(embed_dim, num_layers, num_heads, num_kv_heads, length, dtype):
        view = context_view(embed_dim, num_layers, num_heads, num_kv_heads, length, dtype)
        values = [view["score_matrix"], view["layer_scores"], *view["kv_cache"].values()]
        ax.set_yticks(range(len(values)), ["one score matrix", "scores, all heads", *view["kv_cache"]])
        for bar, label, value in zip(bars, labels, values):
            bar.set_width(value)
            label.set_position((value * 1.1, label.get_position()[1]))
            label.set_text(measure.format_bytes(value))
        ax.set_xlim(min(values) / 2, max(values) * 20)
        ax.set_title(view["title"], fontsize=9)

    return interactive_figure(
        figure, update,
        embed_dim=widgets.Dropdown(options=[1024, 2048, 4096, 8192], value=4096, description="embed dim"),
        num_layers=widgets.IntSlider(value=32, min=1, max=96, description="layers"),
        num_heads=widgets.Dropdown(options=[8, 16, 32, 64], value=32, description="heads"),
        num_kv_heads=widgets.Dropdown(options=[1, 2, 4, 8], value=8, description="KV heads"),
        length=widgets.SelectionSlider(options=[2**k for k in range(9, 21)], value=4096, description="tokens"),
        dtype=widgets.Dropdown(options=list(cost.DTYPE_BYTES), value="float16", description="dtype"),
    )


# ----------------------------------------------------------------------------------------------------------
# Lesson 07: sparse patterns and how far information travels
# ----------------------------------------------------------------------------------------------------------

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

    figure = Figure(figsize=(10.0, 4.2), dpi=80)
    FigureCanvasAgg(figure)
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
    figure.tight_layout()

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


# ----------------------------------------------------------------------------------------------------------
# Lesson 08: the online softmax, one key block at a time
# ----------------------------------------------------------------------------------------------------------

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
    figure.tight_layout()

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

    return interactive_figure(
        figure, update,
        block_size=widgets.IntSlider(value=4, min=1, max=num_keys, description="block size"),
        step=widgets.IntSlider(value=1, min=1, max=num_keys, description="blocks seen"))
