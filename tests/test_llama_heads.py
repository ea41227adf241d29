"""Lesson 10, sections 5 and 7 (course_lib/llama/heads.py, course_lib/widgets/l10_capstone.py): SmolLM2's heads
recorded, scored with lesson 04's scores and silenced; a generation recorded step by step for the explorer.

The recording hook computes attention in full (lesson 03's sdpa) and must give torch's logits; silencing the
heads that score highest as induction heads must break copying on repeated random tokens, while silencing as many
heads that score lowest must not. The tokens here are drawn with another seed than the lesson's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import cost, llama
from course_lib.llama import heads
from course_lib.widgets import l10_capstone

HOOK_TOLERANCE = 3e-4  # as in tests/test_llama.py: another attention in 30 float32 layers


@pytest.fixture(scope="module")
def model():
    return llama.load()


@pytest.fixture(scope="module")
def repeats(model):
    return heads.random_repeats(model, batch=3, length=30, seed=7)  # (3, 60)


@pytest.fixture(scope="module")
def scores(model, repeats):
    return heads.head_scores(model, repeats)


def test_recorded_weights_are_causal_distributions_and_give_torchs_logits(model):
    ids = torch.tensor([model.tokenizer.encode("The trophy would not fit in the suitcase.")])  # (1, T)
    length = ids.shape[1]
    store = []
    with torch.inference_mode():
        recorded = model(ids, attention=heads.recording(store))  # (1, T, vocab)
        expected = model(ids)  # (1, T, vocab)
    assert (recorded - expected).abs().max() < HOOK_TOLERANCE
    assert len(store) == model.config.num_layers
    weights = torch.stack(store)  # (L, 1, H, T, T)
    assert weights.shape == (model.config.num_layers, 1, model.config.num_heads, length, length)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5, rtol=0)
    assert weights.triu(diagonal=1).abs().max() == 0  # no token looks ahead


def test_repeats_are_ordinary_tokens_shown_twice(model, repeats):
    first, second = repeats[:, :30], repeats[:, 30:]
    assert torch.equal(first, second)
    assert repeats.min() >= 100 and repeats.max() < model.config.vocab_size
    assert all(len(set(row.tolist())) == 30 for row in first)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_silencing_induction_or_previous_token_heads_breaks_copying_and_other_heads_of_those_layers_do_not(
        model, repeats, scores, seed):
    induction = heads.top_heads(scores["induction"], 3)
    previous = heads.top_heads(scores["previous_token"], 3)
    controls = heads.same_layer_controls(model, induction, avoid=previous, seed=seed)
    assert scores["induction"][induction[0]] > 0.5 and scores["previous_token"][previous[0]] > 0.5  # real heads
    accuracy = lambda silence: heads.copying_loss(model, repeats, heads.silenced(model, silence))["second copy accuracy"]
    base = heads.copying_loss(model, repeats)
    assert base["second copy accuracy"] > 0.3 and base["second copy loss"] < base["first copy loss"] / 2
    assert accuracy(induction) < base["second copy accuracy"] / 2
    assert accuracy(previous) < base["second copy accuracy"] / 2  # the induction heads compose with these
    assert {layer for layer, _ in controls} <= {layer for layer, _ in induction} and not set(controls) & set(induction)
    assert accuracy(controls) > 0.75 * base["second copy accuracy"]


def test_the_previous_token_heads_sit_in_earlier_layers_than_the_induction_heads(scores):
    """Induction needs a previous-token head to compose with: the best one comes first."""
    previous_layer = heads.top_heads(scores["previous_token"], 1)[0][0]
    induction_layer = heads.top_heads(scores["induction"], 1)[0][0]
    assert previous_layer < induction_layer


def test_silencing_nothing_changes_nothing_and_a_head_that_does_not_exist_is_named(model, repeats):
    with torch.inference_mode():
        assert torch.equal(model(repeats[:1], attention=heads.silenced(model, [])), model(repeats[:1]))
    with pytest.raises(ValueError, match=r"no head \(30, 0\): layers run 0..29"):
        heads.silenced(model, [(30, 0)])
    with pytest.raises(ValueError, match="one function per layer, 30, got 2"):
        model(repeats[:1], attention=[None, None])


def test_top_heads_are_the_best_first():
    scores = np.array([[0.1, 0.9], [0.5, 0.2]])
    assert heads.top_heads(scores, 3) == [(0, 1), (1, 0), (1, 1)]


@pytest.fixture(scope="module")
def record(model):
    prompt = torch.tensor([model.tokenizer.encode("Once upon a time")])  # (1, P)
    return heads.record_generation(model, prompt, steps=6), prompt


def test_a_recorded_generation_is_the_models_greedy_generation_with_its_cache(model, record):
    record, prompt = record
    length = prompt.shape[1]
    ids = model.generate(prompt, 6, stop_ids=())  # (1, P + 6)
    assert record["pieces"] == [model.tokenizer.decode([int(i)]) for i in ids[0]]
    c = model.config
    for step, (weights, size) in enumerate(zip(record["weights"], record["cache_bytes"])):
        assert weights.shape == (c.num_layers, c.num_heads, length + step)
        torch.testing.assert_close(weights.sum(-1), torch.ones(c.num_layers, c.num_heads), atol=1e-5, rtol=0)
        assert size == cost.kv_cache_bytes(c.num_layers, c.num_kv_heads, c.head_dim, length + step, 1, 4)


def test_the_generation_view_names_the_step_and_bad_controls(record):
    record, prompt = record
    view = l10_capstone.generation_view(record, step=2, layer=5, head=1)
    assert len(view["weights"]) == prompt.shape[1] + 2 == len(view["pieces"])
    assert f"followed by {record['pieces'][prompt.shape[1] + 2]!r}" in view["title"]
    with pytest.raises(ValueError, match="step must be in 0..5, got 6"):
        l10_capstone.generation_view(record, step=6)
    with pytest.raises(ValueError, match="head must be a whole number >= 0, got -1"):
        l10_capstone.generation_view(record, head=-1)
    with pytest.raises(ValueError, match="step must be a whole number >= 0, got 1.5"):
        l10_capstone.generation_view(record, step=1.5)
    with pytest.raises(ValueError, match="record must be what course_lib.llama.heads.record_generation returns"):
        l10_capstone.generation_view({})


def test_the_generation_explorer_starts_at_its_defaults_and_every_control_changes_the_picture(record):
    record, _ = record
    box = l10_capstone.generation_explorer(record)
    assert box.start == {"step": 0, "layer": 0, "head": 0}
    first = box.draw(box.start)
    for name, value in (("step", 5), ("layer", 17), ("head", 4)):
        assert box.draw({**box.start, name: value}) != first, name


def test_every_tokens_name_and_the_title_fit_in_the_figure_at_every_step():
    """A long word that is generated late must fit too (the layout is fixed when the explorer is built)."""
    pieces = ["Once", " upon", " a", " time", " extraordinarily", " long"]
    weights = [torch.softmax(torch.randn(2, 2, 2 + step, generator=torch.Generator().manual_seed(step)), dim=-1)
               for step in range(4)]  # (L, H, S) per step, S = 2 + step
    record = {"pieces": pieces, "weights": weights, "cache_bytes": [100 * (2 + step) for step in range(4)],
              "prompt_length": 2}
    box = l10_capstone.generation_explorer(record)
    figure = box.figure
    for step in range(4):
        box.draw({**box.start, "step": step})
        renderer = figure.canvas.get_renderer()
        inside = figure.bbox.padded(1)  # a pixel of slack
        shown = lambda ax: [tick.label1 for tick in ax.xaxis.get_major_ticks()
                            if min(ax.get_xlim()) <= tick.get_loc() <= max(ax.get_xlim())]  # drawn ticks only
        texts = [label for ax in figure.axes for label in (*shown(ax), ax.title) if label.get_text()]
        for text in texts:
            extent = text.get_window_extent(renderer)
            assert inside.contains(extent.x0, extent.y0) and inside.contains(extent.x1, extent.y1), (step, text.get_text())


@pytest.mark.parametrize("bad", [(0, 1), None, [("0", "1")], [(0, 0, 1)], [(0.5, 1)], [(True, 1)]])
def test_heads_to_silence_must_be_pairs_of_whole_numbers(model, bad):
    with pytest.raises(TypeError, match=r"list of \(layer, head\) pairs of whole numbers"):
        heads.silenced(model, bad)


def test_heads_to_silence_may_come_as_a_tensor(model):
    hooks = heads.silenced(model, torch.tensor([[17, 1]]))
    assert hooks[17] is not None and sum(hook is not None for hook in hooks) == 1


@pytest.mark.parametrize("prompt", [torch.zeros(1, 0, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long)])
def test_a_recording_needs_one_nonempty_prompt(model, prompt):
    with pytest.raises(ValueError, match=r"a \(1, P\) LongTensor with P >= 1"):
        heads.record_generation(model, prompt, steps=2)
