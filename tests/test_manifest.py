"""The lesson manifest (course_lib/lessons.py) against the files: every row's notebooks, checks, modules,
widgets and tests exist and agree, and every lesson file the course has is in a row. A failure names the
lesson and what is missing."""
from __future__ import annotations

import importlib
import json
import sys

import pytest

from course_lib import checks, widgets
from course_lib.lessons import LESSONS
from course_lib.release import ROOT

IDS = [lesson.stem for lesson in LESSONS]
sys.path.insert(0, str(ROOT / "tests" / "checks"))  # the lessons' fixture modules, as pytest imports them
from verdicts import diagnoses_triggered  # noqa: E402


def fixtures(lesson):
    """The lesson's check-fixture module (tests/checks/test_l<stem>.py), or a failure that says it is missing."""
    if not (ROOT / lesson.checks_tests).exists():
        pytest.fail(f"lesson {lesson.number:02d} has no {lesson.checks_tests}: its checks' WRONG and RIGHT fixtures "
                    f"go there")
    return importlib.import_module(f"test_l{lesson.stem}")


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


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_the_rows_checks_are_its_checks_module(lesson):
    try:
        module = importlib.import_module(lesson.checks_module)
    except ModuleNotFoundError:
        pytest.fail(f"lesson {lesson.number:02d} has no {lesson.checks_module.replace('.', '/')}.py")
    names = tuple(check.name for check in module.CHECKS)
    assert names == lesson.checks, f"{lesson.checks_module} defines the checks {list(names)}, the row {list(lesson.checks)}"
    assert module in checks.LESSON_MODULES, f"course_lib/checks/__init__.py does not import {lesson.checks_module}"
    doc = module.__doc__ or ""
    for named in (lesson.notebook, lesson.checks_tests):
        assert named in doc, f"the docstring of {lesson.checks_module} does not name {named}"


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_every_check_has_wrong_and_right_fixtures(lesson):
    module = fixtures(lesson)
    for name in lesson.checks:
        wrong = [entry for entry in module.WRONG if entry[0] == name]
        right = [entry for entry in module.RIGHT if entry[0] == name]
        assert wrong, f"{lesson.checks_tests} has no WRONG fixture for the check {name}"
        assert right, f"{lesson.checks_tests} has no RIGHT fixture (a correct solution written differently) for {name}"
    strays = {entry[0] for entry in module.WRONG + module.RIGHT} - set(lesson.checks)
    assert not strays, f"{lesson.checks_tests} has fixtures for {sorted(strays)}, which are not lesson {lesson.number:02d}'s"


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_every_diagnosis_is_triggered_by_a_wrong_fixture(lesson):
    module = fixtures(lesson)
    untriggered = []
    for name in lesson.checks:
        for message, triggered_by in diagnoses_triggered(checks.CHECKS[name], module.WRONG).items():
            if not triggered_by:
                untriggered.append(f"  {name}: {message[:100]}")
    assert not untriggered, (f"{len(untriggered)} diagnoses of lesson {lesson.number:02d} are triggered by no WRONG "
                             f"fixture in {lesson.checks_tests}, so they could stop matching unseen:\n"
                             + "\n".join(untriggered))


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
def test_the_lesson_shows_its_widgets_from_its_widgets_module(lesson):
    text = (ROOT / lesson.notebook).read_text(encoding="utf-8")
    if not lesson.widgets:
        return
    try:
        module = importlib.import_module(lesson.widgets_module)
    except ModuleNotFoundError:
        pytest.fail(f"lesson {lesson.number:02d} shows {list(lesson.widgets)} but has no "
                    f"{lesson.widgets_module.replace('.', '/')}.py")
    assert lesson.notebook in (module.__doc__ or ""), f"the docstring of {lesson.widgets_module} does not name {lesson.notebook}"
    for name in lesson.widgets:
        assert callable(getattr(module, name, None)), f"{lesson.widgets_module} has no {name}"
        assert getattr(widgets, name, None) is getattr(module, name), f"course_lib.widgets does not export {name}"
        assert f"{name}(" in text, f"{lesson.notebook} never calls widgets.{name}"


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_the_start_page_links_the_lesson_and_its_exercise(lesson):
    start = (ROOT / "notebooks" / "00_start_here.ipynb").read_text(encoding="utf-8")
    for link in (f"{lesson.stem}.ipynb", f"../exercises/{lesson.stem}.ipynb"):
        assert f"({link})" in start, f"the start page does not link {link}"


def test_every_lesson_module_of_checks_and_widgets_has_a_row():
    named = {lesson.checks_module for lesson in LESSONS} | {lesson.widgets_module for lesson in LESSONS}
    on_disk = {f"course_lib.{folder}.{path.stem}" for folder in ("checks", "widgets")
               for path in (ROOT / "course_lib" / folder).glob("l[0-9][0-9]_*.py")}
    assert on_disk <= named, f"lesson modules that no row names: {sorted(on_disk - named)}"
    fixtures_on_disk = {f"tests/checks/{path.name}" for path in (ROOT / "tests" / "checks").glob("test_l[0-9][0-9]_*.py")}
    assert fixtures_on_disk <= {lesson.checks_tests for lesson in LESSONS}, "check fixtures for a lesson without a row"


def test_the_package_docstring_lists_every_lesson_module():
    import course_lib

    for lesson in LESSONS:
        for name in lesson.modules:
            assert f":mod:`{name}`" in course_lib.__doc__, f"course_lib/__init__.py's docstring does not list {name}"
