"""The nbgrader route (TEACHERS.md, "Using nbgrader instead"): under nbgrader a failing check raises its verdict,
so that ``nbgrader validate`` fails a wrong notebook and autograde's feedback says why; outside nbgrader nothing
changes. Then the real nbgrader (a test extra) grades lessons 01 and 02 for a complete, a blank and a one-mistake
student. Without nbgrader those tests skip, saying why, except in CI (CI=true), where they must run."""
from __future__ import annotations

import nbformat
import numpy as np
import pytest

from conftest import ROOT, grading
from course_lib import checks
from course_lib.checking import CheckFailed, under_nbgrader


def softmax_over_axis_0(x, axis=-1):
    exps = np.exp(x - np.max(x, axis=0, keepdims=True))  # the maximum over the wrong axis
    return exps / np.sum(exps, axis=axis, keepdims=True)


def hidden_test(grade_id: str) -> str:
    """The hidden-test lines of a check cell of solutions/01 (nbgrader's autograde runs them, the learner never)."""
    notebook = nbformat.read(str(ROOT / "solutions" / "01_attention_by_hand.ipynb"), as_version=4)
    [cell] = [c for c in notebook.cells if grading(c).get("grade_id") == grade_id]
    source = cell.source
    return source[source.index("### BEGIN HIDDEN TESTS"):]


@pytest.mark.parametrize("mode", ["validate", "autograde"])
def test_under_nbgrader_a_failing_check_raises_the_learners_message(monkeypatch, mode):
    monkeypatch.setenv("NBGRADER_EXECUTION", mode)
    assert under_nbgrader()
    expected = checks.CHECKS["softmax"].verdict(softmax_over_axis_0).message
    with pytest.raises(CheckFailed) as raised:
        checks.check_softmax(softmax_over_axis_0)
    assert str(raised.value) == expected and expected.startswith("❌ softmax: on ")
    assert isinstance(raised.value, AssertionError)  # what nbgrader expects a failing test to raise
    assert checks.check_softmax(checks.CHECKS["softmax"].solution).passed  # a passing check still just passes


def test_a_failing_hidden_test_shows_the_checks_message_not_a_bare_assertion(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    with pytest.raises(CheckFailed, match=r"^❌ softmax: on .*differ"):
        exec(hidden_test("check_softmax"), {"checks": checks, "softmax": softmax_over_axis_0})


@pytest.mark.parametrize("value", [None, "", "formgrade", "1"])
def test_outside_nbgrader_a_check_prints_and_never_raises(monkeypatch, capsys, value):
    if value is None:
        monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    else:
        monkeypatch.setenv("NBGRADER_EXECUTION", value)
    assert not under_nbgrader()
    result = checks.check_softmax(softmax_over_axis_0)
    assert (result.passed, result.points, result.status) == (False, 0, "failed")
    assert capsys.readouterr().out.startswith("❌ softmax: on ")
