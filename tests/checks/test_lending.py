"""Is each graded function judged on its own? While a check runs, the exercise's earlier graded functions in the
learner's notebook are the course's (course_lib/checking/lending.py), as course-grade lends them in its sandbox;
the notebook gets its own back afterwards, and a verdict notes the learner's other function that fails its own
check. Notebook code is run here in a namespace named ``__main__``, as a kernel's is."""
from __future__ import annotations

import inspect

import nbformat
import numpy as np
import pytest

from course_files import ROOT, grading
from course_lib import checks
from course_lib.checking import earlier_checks, global_names, standing_in
from course_lib.checks import LESSON_MODULES

LESSON_01 = """
import numpy as np

def softmax(x, axis=-1):
    x = np.asarray(x)
    exps = np.exp(x - np.max(x, axis=0, keepdims=True))  # the mistake: the maximum over axis 0
    return exps / np.sum(exps, axis=axis, keepdims=True)

def attention_scores(queries, keys):
    return queries @ np.swapaxes(keys, -1, -2) / np.sqrt(queries.shape[-1])  # (..., T, S)

def scaled_dot_product_attention(queries, keys, values):
    weights = softmax(attention_scores(queries, keys), axis=-1)  # (..., T, S)
    return weights @ values, weights  # (..., T, Dv), (..., T, S)
"""

LESSON_03 = """
import math
import torch
from torch import nn

def sdpa(query, key, value, attn_mask=None, is_causal=False):
    weights = torch.softmax(query @ key.transpose(-2, -1), dim=-1)  # (..., T, S): the mistake, no 1/sqrt(D)
    return weights @ value, weights  # (..., T, Dv), (..., T, S)

class SelfAttention(nn.Module):
    def __init__(self, d_model, d_head):
        super().__init__()
        self.query = nn.Linear(d_model, d_head, bias=False)
        self.key = nn.Linear(d_model, d_head, bias=False)
        self.value = nn.Linear(d_model, d_head, bias=False)

    def forward(self, x, attn_mask=None):
        output, _ = sdpa(self.query(x), self.key(x), self.value(x), attn_mask=attn_mask)  # (B, T, d_head)
        return output
"""


def notebook(source: str) -> dict:
    """The names a notebook with these cells defines, in a namespace like a kernel's."""
    namespace = {"__name__": "__main__"}
    exec(compile(source, "<notebook cell>", "exec"), namespace)
    return namespace


def test_one_wrong_softmax_costs_only_the_softmax_points():
    namespace = notebook(LESSON_01)
    own = namespace["softmax"]
    results = {name: checks.CHECKS[name].run(namespace[name]) for name in
               ("softmax", "attention_scores", "scaled_dot_product_attention")}
    assert [r.points for r in results.values()] == [0, 1, 2]
    attention = results["scaled_dot_product_attention"].message
    assert "Note: your `softmax` fails its own check, so the course's softmax stood in for it here" in attention
    assert "this verdict is on scaled_dot_product_attention alone" in attention
    assert "Note:" not in results["attention_scores"].message  # it calls no other graded function
    assert namespace["softmax"] is own  # the notebook gets its own softmax back


def test_a_layer_is_judged_with_the_courses_sdpa_and_told_about_its_own():
    namespace = notebook(LESSON_03)
    assert checks.CHECKS["sdpa"].run(namespace["sdpa"]).points == 0
    result = checks.CHECKS["SelfAttention"].run(namespace["SelfAttention"])
    assert result.passed, result.message
    assert "Note: your `sdpa` fails its own check" in result.message


def test_no_note_when_the_other_function_passes_and_a_blank_one_is_named_as_not_written():
    namespace = notebook(LESSON_01.replace("axis=0", "axis=axis"))
    attention = namespace["scaled_dot_product_attention"]
    assert "Note:" not in checks.CHECKS["scaled_dot_product_attention"].run(attention).message
    namespace = notebook(LESSON_01 + "\ndef softmax(x, axis=-1):\n    raise NotImplementedError()\n")
    result = checks.CHECKS["scaled_dot_product_attention"].run(namespace["scaled_dot_product_attention"])
    assert result.passed and "Note: your `softmax` is not written yet" in result.message
    del namespace["softmax"]
    result = checks.CHECKS["scaled_dot_product_attention"].run(namespace["scaled_dot_product_attention"])
    assert result.passed and "Note: your notebook defines no `softmax`" in result.message
    assert "softmax" not in namespace  # lent for the check only


def test_later_functions_are_never_lent():
    """A function graded before another cannot pass with the help of the course's later one (as in course-grade)."""
    namespace = notebook(LESSON_01.replace("x = np.asarray(x)", "attention_scores(x, x)  # a later function")
                         + "\ndef attention_scores(queries, keys):\n    raise NotImplementedError()\n")
    assert checks.CHECKS["softmax"].run(namespace["softmax"]).status == "not-implemented"
    assert [c.name for c in earlier_checks(checks.CHECKS["attention_scores"])] == ["softmax"]


def test_a_library_module_is_never_changed():
    """Only a notebook's (``__main__``'s) names are lent to: functions defined in a module keep what they call."""
    def softmax(x, axis=-1):  # noqa: F811 - this test module's own wrong softmax, seen by the function below
        return np.exp(x) / np.exp(x).sum(axis=0, keepdims=True)

    scope = {"__name__": "some_module", "np": np, "softmax": softmax}
    exec("def attend(q, k, v):\n    w = softmax(q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]), axis=-1)\n"
         "    return w @ v, w\n", scope)
    result = checks.CHECKS["scaled_dot_product_attention"].run(scope["attend"])
    assert not result.passed and scope["softmax"] is softmax


def test_the_notebook_gets_its_names_back_whatever_happens():
    namespace = {"__name__": "__main__", "softmax": "theirs"}
    with pytest.raises(KeyboardInterrupt):
        with standing_in(namespace, {"softmax": "the course's", "attention_scores": "the course's"}):
            assert namespace == {"__name__": "__main__", "softmax": "the course's", "attention_scores": "the course's"}
            raise KeyboardInterrupt
    assert namespace == {"__name__": "__main__", "softmax": "theirs"}


def test_a_function_that_the_learner_calls_is_found_through_their_own_helpers():
    namespace = notebook(LESSON_01 + "\ndef helper(q, k):\n    return softmax(attention_scores(q, k))\n"
                                     "def outer(q, k, v):\n    return helper(q, k) @ v\n")
    assert {"helper", "softmax", "attention_scores", "np"} <= global_names(namespace["outer"])


def test_lessons_list_their_checks_in_the_notebooks_order():
    """What is lent is what comes before in the notebook, as course-grade lends it (grading.judging.Exercise)."""
    for module in LESSON_MODULES:
        stem = module.__name__.rpartition(".")[2].removeprefix("l")
        [path] = (ROOT / "solutions").glob(f"{stem}.ipynb")
        cells = nbformat.read(str(path), as_version=4).cells
        graded = [grading(c)["grade_id"] for c in cells if c.cell_type == "code" and grading(c).get("solution")]
        assert [check.name for check in module.CHECKS] == graded, path.name
        last = module.CHECKS[-1]
        assert [c.name for c in earlier_checks(last)] == graded[:-1]


def test_every_lent_function_takes_every_call_the_exercise_allows():
    """The course's version stands in for the learner's: each parameter of the exercise's function is the
    course's at the same place, with the same default; the course's extra parameters are optional."""
    solved = {}
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        for cell in nbformat.read(str(path), as_version=4).cells:
            if grading(cell).get("solution") and cell.source.startswith("def "):  # (classes are never lent)
                exec(compile(cell.source, path.name, "exec"), solved)  # a def alone: its body does not run
    lent = {check.name for module in LESSON_MODULES for check in module.CHECKS[:-1]}
    assert lent, "no exercise has two graded functions"
    for name in sorted(lent):
        course = list(inspect.signature(checks.CHECKS[name].solution).parameters.values())
        exercise = list(inspect.signature(solved[name]).parameters.values())
        assert [(p.name, p.kind) for p in course[:len(exercise)]] == [(p.name, p.kind) for p in exercise], name
        for mine, theirs in zip(course, exercise):
            assert theirs.default is inspect.Parameter.empty or mine.default == theirs.default, (name, mine.name)
        assert all(p.default is not inspect.Parameter.empty for p in course[len(exercise):]), name


def test_a_lent_function_takes_only_the_exercises_parameters():
    """The course's linear_attention has is_causal, the exercise's has not: a causal_linear_attention that
    passes it fails, as in course-grade, whose lent solution cell takes no is_causal either."""
    namespace = notebook("import torch\n"
                         "def elu_feature_map(x):\n    return torch.nn.functional.elu(x) + 1\n"
                         "def linear_attention(query, key, value):\n    raise NotImplementedError()\n"
                         "def causal_linear_attention(query, key, value):\n"
                         "    return linear_attention(query, key, value, is_causal=True)\n")
    result = checks.CHECKS["causal_linear_attention"].run(namespace["causal_linear_attention"])
    assert result.status == "error"
    assert "linear_attention() got an unexpected keyword argument 'is_causal'" in result.message


class Unreadable:
    """A callable whose globals cannot even be asked for."""

    @property
    def __globals__(self):
        raise RuntimeError("no globals here")

    def __call__(self, *args):
        raise NotImplementedError()


def test_an_object_whose_globals_cannot_be_read_still_gets_a_verdict():
    result = checks.CHECKS["scaled_dot_product_attention"].run(Unreadable())
    assert result.status == "not-implemented"


def solutions_in_a_kernel(path) -> dict:
    """A solutions notebook's imports and graded functions, run as a kernel runs them (in ``__main__``)."""
    cells = [c for c in nbformat.read(str(path), as_version=4).cells if c.cell_type == "code"]
    namespace = notebook(cells[0].source)
    for cell in cells:
        if grading(cell).get("solution"):
            exec(compile(cell.source, path.name, "exec"), namespace)
    return namespace


def test_the_solutions_pass_with_the_courses_functions_lent_and_get_no_note():
    """Where a graded function calls an earlier one, is the solution still right with the course's in its place?"""
    judged = 0
    for module in LESSON_MODULES:
        stem = module.__name__.rpartition(".")[2].removeprefix("l")
        namespace = solutions_in_a_kernel(next((ROOT / "solutions").glob(f"{stem}.ipynb")))
        for check in module.CHECKS:
            if not {c.name for c in earlier_checks(check)} & global_names(namespace[check.name]):
                continue  # calls no earlier graded function: nothing is lent that it would use
            result = check.run(namespace[check.name])
            assert result.passed and "Note:" not in result.message, result.message
            judged += 1
    assert judged >= 6  # 01's attention, 03's layer, 04's layer, 08's flash, 09's two linear attentions
