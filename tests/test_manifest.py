"""The lesson manifest (course_lib/lessons.py) against the files: every row's notebooks, checks, modules,
widgets and tests exist and agree, and every lesson file the course has is in a row. A failure names the
lesson and what is missing."""
from __future__ import annotations

import importlib
import json

import pytest

from course_lib import checks, widgets
from course_lib.lessons import LESSONS
from course_lib.release import ROOT

IDS = [lesson.stem for lesson in LESSONS]


def graded(stem: str) -> dict[str, float]:
    """The graded functions of a solutions notebook, in order, with the points of their check cells."""
    notebook = json.loads((ROOT / "solutions" / f"{stem}.ipynb").read_text(encoding="utf-8"))
    found = {}
    for cell in notebook["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] == "code" and meta.get("grade") and meta.get("grade_id", "").startswith("check_"):
            found[meta["grade_id"].removeprefix("check_")] = meta.get("points", 0)
    return found


def test_every_lesson_notebook_has_a_row_and_the_rows_are_in_order():
    on_disk = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb") if not p.name.startswith("00_"))
    assert IDS == on_disk, f"lessons on disk without a row, or rows without a notebook: {set(IDS) ^ set(on_disk)}"
    assert [lesson.number for lesson in LESSONS] == list(range(1, len(LESSONS) + 1))


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_the_three_notebooks_exist(lesson):
    missing = [f"{folder}/{lesson.stem}.ipynb" for folder in ("notebooks", "solutions", "exercises")
               if not (ROOT / folder / f"{lesson.stem}.ipynb").exists()]
    assert not missing, f"lesson {lesson.number:02d} is missing {missing}"


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_the_exercise_grades_the_rows_checks_with_the_checks_points(lesson):
    found = graded(lesson.stem)
    assert tuple(found) == lesson.checks, (f"solutions/{lesson.stem}.ipynb grades {list(found)}, the manifest "
                                           f"says {list(lesson.checks)}")
    for name, points in found.items():
        assert name in checks.CHECKS, f"lesson {lesson.number:02d}: no check for {name} in course_lib.checks"
        assert checks.CHECKS[name].points == points, (f"{name}: the check cell gives {points} points, "
                                                      f"the check {checks.CHECKS[name].points}")


def test_every_check_belongs_to_exactly_one_lesson():
    owners = [name for lesson in LESSONS for name in lesson.checks]
    assert sorted(owners) == sorted(checks.CHECKS), f"checks without a lesson: {set(checks.CHECKS) - set(owners)}"
    assert len(owners) == len(set(owners))


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_each_module_names_its_lesson_and_tests_and_the_tests_exist(lesson):
    for path in lesson.tests:
        assert (ROOT / path).exists(), f"lesson {lesson.number:02d} names {path}, which does not exist"
    for name in lesson.modules:
        doc = importlib.import_module(name).__doc__ or ""
        assert lesson.notebook in doc, f"the docstring of {name} does not name {lesson.notebook}"
        named = [path for path in lesson.tests if path in doc]
        assert named, f"the docstring of {name} names none of its lesson's tests {list(lesson.tests)}"


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_the_lesson_shows_its_widgets(lesson):
    text = (ROOT / lesson.notebook).read_text(encoding="utf-8")
    for name in lesson.widgets:
        assert callable(getattr(widgets, name, None)), f"course_lib.widgets has no {name} (lesson {lesson.number:02d})"
        assert f"{name}(" in text, f"{lesson.notebook} never calls widgets.{name}"


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_the_start_page_links_the_lesson_and_its_exercise(lesson):
    start = (ROOT / "notebooks" / "00_start_here.ipynb").read_text(encoding="utf-8")
    for link in (f"{lesson.stem}.ipynb", f"../exercises/{lesson.stem}.ipynb"):
        assert f"({link})" in start, f"the start page does not link {link}"
