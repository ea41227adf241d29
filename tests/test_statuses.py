"""The status words (course_lib/checking/statuses.py): one enumeration that the code enforces and TEACHERS.md
documents word for word."""
from __future__ import annotations

import re

import pytest

from course_lib.checking import FUNCTION_STATUSES, SUBMISSION_STATUSES, CheckResult, require_status
from course_lib.release import ROOT


def teachers_guide() -> str:
    return (ROOT / "TEACHERS.md").read_text(encoding="utf-8")


def test_the_submission_status_table_lists_exactly_the_submission_statuses():
    table = re.findall(r"^\| `([a-z-]+)` \|", teachers_guide(), re.M)
    assert table == list(SUBMISSION_STATUSES)


def test_the_guide_names_every_function_status():
    paragraph = teachers_guide().split("Each function gets", 1)[1].split("\n\n", 1)[0]
    named = set(re.findall(r"`([a-z-]+)`", paragraph)) - {"eval", "exec", "importlib"}  # the examples of code
    assert named == set(FUNCTION_STATUSES), named ^ set(FUNCTION_STATUSES)


def test_an_unknown_status_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="'passd' is not a function status; the function statuses are passed, failed"):
        CheckResult("softmax", False, 0, 1, "❌", "passd")
    with pytest.raises(ValueError, match="'fine' is not a submission status"):
        require_status("fine", "submission")
    assert require_status("ok", "submission") == "ok"
