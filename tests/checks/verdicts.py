"""How a lesson's check fixtures become tests: each WRONG fixture must fail with its diagnosis, each RIGHT one
must pass. Used by every tests/checks/test_lNN_*.py, and by tests/test_manifest.py to see which diagnoses the
WRONG fixtures trigger."""
from __future__ import annotations

import pytest

from course_lib.checking import Check, CheckResult
from course_lib.checks import CHECKS


def fixture_id(entry: tuple) -> str:
    return f"{entry[0]}-{getattr(entry[1], '__name__', type(entry[1]).__name__)}"


def assert_diagnosed(name: str, wrong, diagnosis: str) -> CheckResult:
    """The check of ``name`` fails ``wrong`` with 0 points and a message that contains ``diagnosis``."""
    result = CHECKS[name].run(wrong)
    assert not result.passed and result.points == 0, result.message
    assert result.message.startswith(f"❌ {name}: ")
    assert diagnosis in result.message, result.message
    return result


def fixture_tests(wrong: list[tuple], right: list[tuple]):
    """The two tests of a lesson's fixtures, parametrized by them (a lesson's test module binds them)."""

    @pytest.mark.parametrize("name, function, diagnosis", wrong, ids=[fixture_id(e) for e in wrong])
    def test_typical_mistake_fails_with_its_diagnosis(name, function, diagnosis):
        assert_diagnosed(name, function, diagnosis)

    @pytest.mark.parametrize("name, function", right, ids=[fixture_id(e) for e in right])
    def test_correct_solution_written_differently_passes(name, function):
        result = CHECKS[name].run(function)
        assert result.passed, result.message

    return test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes


def diagnoses_triggered(check: Check, wrong: list[tuple]) -> dict[str, list[str]]:
    """For each diagnosis (``Mistake``) of ``check``: the names of the WRONG fixtures whose verdict gives it."""
    found = {mistake.message: [] for mistake in check.mistakes}
    for name, function, _ in wrong:
        if name != check.name:
            continue
        message = check.run(function).message
        for text in found:
            if text in message:
                found[text].append(getattr(function, "__name__", repr(function)))
    return found
