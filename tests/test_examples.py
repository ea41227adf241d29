"""The trophy example and the trainable toy task behave as the lessons claim."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import toy_tasks, trophy


@pytest.mark.parametrize("sentence, referent", [("big", "trophy"), ("small", "suitcase")])
def test_it_attends_mostly_to_its_referent(sentence, referent):
    result = trophy.resolve(sentence)
    row = result["resolve_weights"][result["it"]]
    assert result["referent"] == referent
    assert row[result["tokens"].index(referent)] > 0.5  # "mostly": more than all other tokens together
    describe = result["describe_weights"][result["it"]]
    assert result["tokens"][int(np.argmax(describe))] == sentence  # step 1 finds the adjective


def test_temperature_sharpens_and_flattens():
    cold, warm = (trophy.resolve("big", temperature=t) for t in (0.3, 5.0))
    it = cold["it"]
    assert cold["resolve_weights"][it].max() > 0.95 and warm["resolve_weights"][it].max() < 0.3


def test_retrieval_training_is_reproducible_and_learns_to_attend():
    torch.set_num_threads(2)
    first = toy_tasks.train_retrieval(steps=150, seed=0)
    second = toy_tasks.train_retrieval(steps=150, seed=0)
    assert first["loss"] == second["loss"]  # seeds pinned: bit-for-bit the same run
    assert first["accuracy"][0] < 0.2 and first["accuracy"][-1] > 0.95
    labels = first["labels"]
    answer = next(i for i, label in enumerate(labels[:-1]) if label.split(":")[0] == labels[-1][1:])
    assert first["weights"][-1][-1, answer] > 0.9  # the question attends to the matching pair


@pytest.mark.parametrize("sentence, referent", [("big", "trophy"), ("small", "suitcase")])
def test_function_words_lean_to_the_referent_only_at_step_two(sentence, referent):
    """Lesson 01's text: a function word is uniform at step 1, which hands it 1/T of the size, so at step 2 it
    leans (a little) towards the same referent as "it"."""
    result = trophy.resolve(sentence)
    tokens = result["tokens"]
    for word in ("the", "too"):
        step_one, step_two = (result[f"{step}_weights"][tokens.index(word)] for step in ("describe", "resolve"))
        assert np.allclose(step_one, 1 / len(tokens))  # uniform: no query features at step 1
        assert tokens[int(np.argmax(step_two))] == referent
        others = np.delete(step_two, tokens.index(referent))
        assert np.allclose(others, others[0]) and 0 < step_two.max() - others[0] < 0.05  # a lean, not a choice
