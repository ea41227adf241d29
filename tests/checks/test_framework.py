"""What every check does, whatever its lesson: it passes the course's own implementation and the solutions
notebook, fails the blank exercise with "not implemented", never raises whatever the learner's code does, and
prints its verdict once. The framework is course_lib/checking.py; each lesson's fixtures are in
tests/checks/test_lNN_*.py."""
from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from course_files import graded_functions
from course_lib import checks
from course_lib import numpy_attention as ref
from course_lib.checking import Case, Check, CheckResult


@pytest.fixture(scope="module")
def solved():
    return graded_functions("solutions")


@pytest.fixture(scope="module")
def blank():
    return graded_functions("exercises")


@pytest.mark.parametrize("name", sorted(checks.CHECKS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_check_passes_the_courses_own_implementation(name, seed):
    result = checks.CHECKS[name].run(checks.CHECKS[name].solution, seed=seed)
    assert result.passed, result.message
    assert result.points == result.max_points == checks.CHECKS[name].points
    assert result.message.startswith(f"✅ {name}")


@pytest.mark.parametrize("name", sorted(checks.CHECKS))
def test_check_passes_the_solutions_notebook(name, solved):
    result = checks.CHECKS[name].run(solved[name], seed=3)
    assert result.passed, result.message


@pytest.mark.parametrize("name", sorted(checks.CHECKS))
def test_check_fails_the_blank_exercise_with_not_implemented(name, blank):
    result = checks.CHECKS[name].run(blank[name])
    assert (result.passed, result.points, result.status) == (False, 0, "not-implemented")
    assert "not implemented yet" in result.message


# ---------------------------------------------------------------------------------------------------------
# Checks never raise
# ---------------------------------------------------------------------------------------------------------

class AlwaysEqual:
    def __eq__(self, other):
        return True

    shape = (3, 4)


def raises_type_error(x, axis=-1):
    return x + "a"


def loops_forever(x, axis=-1):
    while True:
        pass


def returns(value):
    return lambda *args, **kwargs: value


@pytest.mark.parametrize("function, status, says", [
    (raises_type_error, "error", "raised UFuncTypeError"),
    (returns(None), "failed", "expected a numpy array, got a NoneType"),
    (returns("softmax"), "failed", "got a str"),
    (returns({"weights": 1}), "failed", "got a dict"),
    (returns(AlwaysEqual()), "failed", "expected a numpy array, got a AlwaysEqual"),
    (returns(np.zeros((2, 2))), "failed", "expected shape"),
    (returns(torch.zeros(5)), "failed", "returned a torch tensor"),
    (42, "failed", "expected a function, got a int"),
    (None, "failed", "expected a function, got a NoneType"),
])
def test_odd_functions_and_return_values_are_reported_not_raised(function, status, says):
    result = checks.check_softmax.run(function)
    assert (result.passed, result.status) == (False, status)
    assert says in result.message, result.message


def test_an_endless_loop_is_stopped_and_reported():
    quick = Check(**{**checks.check_softmax.__dict__, "time_limit": 0.5})
    result = quick.run(loops_forever)
    assert result.status == "timeout" and "ran for more than 0.5 s" in result.message


def test_exception_hint_points_at_the_likely_cause():
    result = checks.check_attention_scores.run(lambda q, k: q @ k)
    assert result.status == "error"
    assert "ValueError" in result.message and "transpose" in result.message


def test_the_verdict_is_printed_once(capsys):
    result = checks.check_causal_mask(ref.causal_mask)
    assert isinstance(result, CheckResult) and result.passed
    result._ipython_display_()  # as the last value of a cell: nothing more is printed
    assert capsys.readouterr().out.count("✅ causal_mask") == 1


def test_hidden_cases_differ_from_the_notebook_ones():
    seen = checks.check_softmax.make_cases(np.random.default_rng(0))
    hidden = checks.check_softmax.make_cases(np.random.default_rng(1))
    assert not np.array_equal(seen[0].args[0], hidden[0].args[0])


def test_a_mistake_that_happens_to_be_right_is_not_reported():
    # With D = 1 an unscaled score equals the scaled one: a correct answer must still pass.
    case = Case("D = 1", (np.ones((2, 1)), np.ones((3, 1))))
    assert checks.check_attention_scores.run(lambda q, k: q @ k.T, cases=[case]).passed


def test_no_test_file_defines_a_name_twice():
    """Two helpers or tests of the same name: the later silently replaces the earlier (in WRONG and RIGHT too)."""
    tests = Path(__file__).resolve().parent.parent
    for path in sorted(tests.rglob("*.py")):
        if "red_team" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = Counter(node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef)))
        assert [name for name, count in names.items() if count > 1] == [], path.name


class SelfAttentionWithAMisspeltForward(torch.nn.Module):
    def __init__(self, d_model, d_head):
        super().__init__()
        self.query, self.key, self.value = (torch.nn.Linear(d_model, d_head, bias=False) for _ in range(3))

    def foward(self, x, attn_mask=None):
        return x


def test_a_class_without_forward_is_not_called_unimplemented():
    result = checks.CHECKS["SelfAttention"].run(SelfAttentionWithAMisspeltForward)
    assert result.status == "failed" and "no `forward` method" in result.message and "def foward" in result.message
    assert "not implemented" not in result.message


def test_a_diagnosis_whose_predicate_raises_is_skipped_not_raised():
    def breaks(case, got, expected):
        raise IndexError("a predicate that expected another shape")

    from course_lib.checking import Mistake

    check = Check(**{**checks.check_softmax.__dict__, "mistakes": (Mistake("never said", breaks),
                                                                    *checks.check_softmax.mistakes)})
    result = check.run(lambda x, axis=-1: np.exp(x) / np.exp(x).sum(axis=axis, keepdims=True))  # no shift
    assert not result.passed and "never said" not in result.message and "overflow" in result.message


LEARNER_CALLS_THE_COURSE = '''
from course_lib import llama
import course_lib.numpy_attention as na
import numpy as np

def cached_attention(query, key, value):
    return llama.cached_attention(query, key, value)

def softmax(x, axis=-1):
    return na.softmax(x, axis)

def window_with_sinks_mask(length, window, sinks):
    from course_lib.llama.model import bottom_right_mask  # withheld in exercise 10's sandbox too
    return bottom_right_mask(length, length) & ~bottom_right_mask(length, length).tril(-window) | (
        bottom_right_mask(length, length) & (np.arange(length) < sinks))

def attention_scores(query, key):
    return query @ np.swapaxes(key, -1, -2) / np.sqrt(query.shape[-1])
'''


@pytest.mark.parametrize("name, withheld", [("cached_attention", "course_lib.llama.model.cached_attention"),
                                            ("softmax", "course_lib.numpy_attention.softmax"),
                                            ("window_with_sinks_mask", "course_lib.llama.model.bottom_right_mask")])
def test_a_notebook_function_that_calls_withheld_course_code_gets_the_graders_verdict(name, withheld):
    """The grader takes the course's code for the exercise out of the sandbox; the check cell must not give
    points that the grader then takes away."""
    notebook = {"__name__": "__main__"}  # how a notebook's functions see their globals
    exec(LEARNER_CALLS_THE_COURSE, notebook)
    result = checks.CHECKS[name].run(notebook[name])
    assert result.status == "not-available" and result.points == 0
    assert f"calls the course's own code: {withheld} is not available while grading" in result.message


def test_a_notebook_function_that_calls_no_withheld_code_is_judged_as_usual():
    notebook = {"__name__": "__main__"}
    exec(LEARNER_CALLS_THE_COURSE, notebook)
    assert checks.CHECKS["attention_scores"].run(notebook["attention_scores"]).passed
