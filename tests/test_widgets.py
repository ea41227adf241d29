"""Widgets, headlessly: the pure view functions, and the builders wired to them."""
from __future__ import annotations

import numpy as np
import pytest

from course_lib import toy_tasks, widgets


def test_attention_view_follows_sentence_query_and_temperature():
    big = widgets.attention_view("big", "it", 1.0)
    small = widgets.attention_view("small", "it", 1.0)
    assert (big["top"], small["top"]) == ("trophy", "suitcase")
    assert big["weights"].shape == (14, 14) and np.allclose(big["weights"].sum(-1), 1)
    assert np.allclose(widgets.attention_view("big", 9)["query_weights"], big["query_weights"])  # by position
    assert widgets.attention_view("big", "it", 0.2)["query_weights"].max() > big["query_weights"].max()
    assert widgets.attention_view("big", "it", 1.0, step="describe")["top"] == "big"


def test_mask_view_counts_fully_masked_rows():
    view = widgets.mask_view(lengths=(6, 0, 2), sequence=1, causal=True)
    assert view["fully_masked_rows"] == 6 and np.all(view["weights"] == 0)
    view = widgets.mask_view(lengths=(6, 4, 2), sequence=0, causal=True)
    assert np.array_equal(view["mask"], np.tril(np.ones((6, 6), dtype=bool)))
    assert np.isneginf(view["masked_scores"][0, 1]) and view["fully_masked_rows"] == 0


@pytest.mark.parametrize("build, control, value", [
    (widgets.attention_explorer, "temperature", 5.0),
    (widgets.attention_explorer, "sentence", "small"),
    (widgets.mask_explorer, "length_1", 1),
    (widgets.mask_explorer, "causal", False),
])
def test_changing_a_control_redraws_the_picture(build, control, value):
    box = build()
    before = box.children[1].value
    assert before[:4] == b"\x89PNG"
    box.controls[control].value = value
    assert box.children[1].value != before  # the update callback ran and drew something else


def test_training_explorer_shows_each_recorded_step():
    history = toy_tasks.train_retrieval(steps=20, record_every=10)
    view = widgets.training_view(history, 0)
    assert view["step"] == 0 and view["weights"].shape == (7, 7)
    box = widgets.training_explorer(history)
    last = box.children[1].value
    box.controls["index"].value = 0
    assert box.children[1].value != last


def test_time_updates_reports_the_median_of_the_redraws(monkeypatch):
    import ipywidgets

    from course_lib.widgets import figures

    figure, _ = widgets.new_figure()
    ticks = iter([0.0, 0.1, 1.0, 1.3, 2.0, 2.1, 3.0, 3.2])  # the first draw, then redraws of 0.3, 0.1, 0.2 s
    monkeypatch.setattr(figures.time, "perf_counter", lambda: next(ticks))
    box = widgets.interactive_figure(figure, lambda n: None, n=ipywidgets.IntSlider(value=0))
    assert widgets.time_updates(box, "n", [1, 2, 3]) == pytest.approx(0.2)


def test_positions_view_dot_products_fall_off_with_distance():
    view = widgets.positions_view(position_a=10, position_b=11, band=(0, 64))
    assert view["encoding"].shape == (64, 64)
    similarity = view["similarity"]
    assert similarity.argmax() == 10 and similarity[10] > similarity[11] > similarity[20] > similarity[60]
    assert abs(view["dot"] - similarity[11]) < 1e-9
    slow = widgets.positions_view(10, 11, band=(48, 64))  # slow features barely change over 64 positions
    assert slow["encoding"].shape == (64, 16) and np.ptp(slow["similarity"]) < np.ptp(similarity)


def test_heads_view_and_explorer():
    record = {"weights": [np.eye(4)[None].repeat(2, 0), np.ones((2, 4, 4)) / 4], "labels": list("abcd"),
              "scores": {"previous-token": np.array([[0.1, 0.2], [0.3, 0.4]])}}
    view = widgets.heads_view(record, layer=1, head=0)
    assert np.allclose(view["weights"], 0.25) and view["scores"] == {"previous-token": 0.3}
    assert "layer 1, head 0: previous-token 0.30" == view["title"]
    box = widgets.heads_explorer(record)
    before = box.children[1].value
    box.controls["layer"].value = 1
    assert box.children[1].value != before


def test_positions_explorer_redraws():
    box = widgets.positions_explorer()
    before = box.children[1].value
    box.controls["band"].value = (40, 64)
    assert box.children[1].value != before


def test_context_view_compares_mha_gqa_and_mqa():
    view = widgets.context_view(embed_dim=4096, num_layers=32, num_heads=32, num_kv_heads=8, length=4096, dtype="float16")
    assert view["head_dim"] == 128 and view["score_matrix"] == 4096 * 4096 * 2
    assert list(view["kv_cache"].values()) == [2 * 2**30, 2**29, 2**26]  # 32, 8 and 1 KV heads
    assert view["layer_scores"] == 32 * view["score_matrix"]
    with pytest.raises(ValueError, match="num_kv_heads=3"):
        widgets.context_view(num_heads=32, num_kv_heads=3)


def test_context_explorer_redraws():
    box = widgets.context_explorer()
    before = box.children[1].value
    box.controls["length"].value = 2**16
    assert box.children[1].value != before


@pytest.mark.parametrize("pattern", widgets.SPARSE_PATTERNS)
def test_sparse_view_every_pattern_reaches_at_least_as_far_with_each_layer(pattern):
    view = widgets.sparse_view(pattern, size=4, extra=2, query=30, n=48)
    assert view["mask"].shape == (48, 48) and 0 < view["density"] < 1
    assert view["counts"] == sorted(view["counts"]) and view["reach"][0].sum() == view["mask"][30].sum()


def test_sparse_view_of_a_window_grows_by_one_window_per_layer():
    assert widgets.sparse_view("sliding window", size=3, extra=0, query=40)["counts"] == [7, 13, 19]
    with pytest.raises(ValueError, match="unknown pattern"):
        widgets.pattern_mask("diagonal", 8, 2, 0)


def test_sparse_explorer_redraws():
    box = widgets.sparse_explorer()
    before = box.children[1].value
    box.controls["pattern"].value = "strided"
    assert box.children[1].value != before


@pytest.mark.parametrize("block_size", [1, 3, 4, 16])
def test_online_softmax_view_ends_at_the_exact_softmax_with_a_growing_maximum(block_size):
    last = widgets.online_softmax_view(block_size, step=100)  # past the end: clamped to the last block
    assert last["seen"] == 16 and last["num_steps"] == -(-16 // block_size)
    assert last["error"] < 1e-12
    assert last["m"] == sorted(last["m"]) and last["m"][-1] == pytest.approx(last["scores"].max())
    scores = last["scores"]
    assert last["l"][-1] == pytest.approx(np.exp(scores - scores.max()).sum())


def test_online_softmax_view_before_the_end_is_the_average_of_the_keys_seen():
    view = widgets.online_softmax_view(block_size=4, step=2)
    assert view["seen"] == 8 and view["error"] > 1e-3  # half the keys: not the answer yet
    full = widgets.online_softmax_view(block_size=8, step=1)  # the same eight keys in one block
    np.testing.assert_allclose(view["outputs"][-1], full["outputs"][-1], rtol=1e-12)


def test_online_softmax_explorer_redraws():
    box = widgets.online_softmax_explorer()
    before = box.children[1].value
    box.controls["step"].value = 3
    assert box.children[1].value != before
    box.controls["block_size"].value = 5
    assert box.controls["step"].value == 3


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, read from its header."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_time_updates_leaves_the_controls_and_the_picture_at_their_starting_state():
    """Does timing leave the explorer as the learner met it, with nothing sent to the browser?"""
    box = widgets.attention_explorer()
    shown = box.children[1].value
    sent = []
    for control in box.controls.values():
        control.observe(sent.append, names="value")
    assert widgets.time_updates(box, "temperature", [0.1, 10 ** -0.5, 10 ** 0.5, 10.0]) > 0
    assert sent == [] and box.children[1].value == shown
    assert {name: c.value for name, c in box.controls.items()} == box.start
    assert box.draw(box.start) == shown  # the figure itself was redrawn at the starting state


@pytest.mark.parametrize("control, value, on_grid", [
    ("temperature", 5.0, False),  # what lesson 01 used to time: the browser snapped it to 5.0119
    ("temperature", 10 ** 0.7, True),
    ("temperature", 20.0, False),  # past the end
    ("query", 9, True),
    ("query", 99, False),
])
def test_on_grid_tells_values_a_browser_would_snap(control, value, on_grid):
    box = widgets.attention_explorer()
    assert widgets.figures.on_grid(box.controls[control], value) is on_grid


def test_time_updates_refuses_values_off_the_grid_and_names_them():
    box = widgets.attention_explorer()
    with pytest.raises(ValueError, match=r"temperature: \[5.0\] not on the control's grid"):
        widgets.time_updates(box, "temperature", [1.0, 5.0])


def test_blocks_seen_ends_at_the_last_block_of_the_chosen_size():
    """Does lesson 08's "blocks seen" slider stop at the last block (16 keys in blocks of 6: 3 blocks)?"""
    box = widgets.online_softmax_explorer(num_keys=16)
    step, block_size = box.controls["step"], box.controls["block_size"]
    assert step.max == 4
    step.value = 4
    block_size.value = 6
    assert (step.max, step.value) == (3, 3)
    block_size.value = 2
    assert step.max == 8 and step.value == 3
    assert box.children[1].value == box.draw({"block_size": 2, "step": 3})


@pytest.mark.parametrize("build", [widgets.attention_explorer, widgets.mask_explorer, widgets.positions_explorer,
                                   widgets.context_explorer, widgets.sparse_explorer, widgets.online_softmax_explorer])
def test_the_builder_lays_out_every_explorer_for_small_screens_and_projectors(build):
    """Do controls wrap, keep their full descriptions and a wide slider, and is the figure shown at its size?"""
    box = build()
    row, image = box.children
    assert row.layout.flex_flow == "row wrap"
    for control in box.controls.values():
        assert control.style.description_width == "initial"
        if "Slider" in type(control).__name__:
            assert control.layout.width == widgets.figures.SLIDER_WIDTH
    width, _ = png_size(image.value)
    assert image.layout.width == f"{box.figure.css_width}px" and width == 2 * box.figure.css_width


def test_heatmaps_get_colorbars_and_the_kv_cache_is_named():
    assert len(widgets.attention_explorer().figure.axes) == 3  # bars, heatmap, its colorbar
    assert len(widgets.mask_explorer().figure.axes) == 5  # three heatmaps, two colorbars (the mask is yes/no)
    labels = [t.get_text() for t in widgets.context_explorer().figure.axes[0].get_yticklabels()]
    assert labels[2:] == ["KV cache, MHA (32 KV heads)", "KV cache, GQA (8 KV heads)", "KV cache, MQA (1 KV head)"]


@pytest.mark.parametrize("tokens_seen", [1, 2, 7, 16])
def test_recurrent_state_view_keeps_its_size_and_gives_the_weights_average(tokens_seen):
    """Is the state after t steps the sum of φ(k_j) v_jᵀ, its output the newest query's weighted average?"""
    import torch

    from course_lib import linear

    view = widgets.recurrent_state_view(tokens_seen, num_tokens=16, head_dim=4, seed=0)
    assert view["state"].shape == (4, 4) and view["weights"].shape == (tokens_seen,)
    assert view["weights"].sum() == pytest.approx(1.0, abs=1e-12) and view["error"] < 1e-12
    generator = torch.Generator().manual_seed(0)
    queries, keys, values = (torch.randn(16, 4, generator=generator, dtype=torch.float64) for _ in range(3))
    features = linear.elu_feature_map(keys[:tokens_seen])  # (t, D)
    np.testing.assert_allclose(view["state"], (features.T @ values[:tokens_seen]).numpy(), rtol=1e-12)
    assert view["cache_numbers"][tokens_seen - 1] == 8 * tokens_seen and set(view["state_numbers"]) == {20}
    with pytest.raises(ValueError, match="tokens_seen=0 must be between 1 and num_tokens=16"):
        widgets.recurrent_state_view(0)


def test_recurrent_state_explorer_redraws_and_starts_at_the_first_token():
    box = widgets.recurrent_state_explorer()
    assert box.start == {"tokens_seen": 1}
    before = box.children[1].value
    box.controls["tokens_seen"].value = 5
    assert box.children[1].value != before and len(box.figure.axes) == 4  # three plots and the state's colorbar


def test_moving_a_length_shows_that_sequence():
    """Does the mask explorer show the sequence whose length the learner just moved (else nothing changes)?"""
    box = widgets.mask_explorer()
    assert box.controls["sequence"].value == 1
    box.controls["length_0"].value = 3
    assert box.controls["sequence"].value == 0
    assert box.children[1].value == box.draw({**box.start, "length_0": 3, "sequence": 0})
