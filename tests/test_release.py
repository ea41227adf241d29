"""The exercise generator: regions replaced, errors that name the notebook and cell, no drift, no outputs."""
from __future__ import annotations

import json
import shutil

import nbformat
import pytest

from course_files import ROOT, all_notebooks, grading
from course_lib import release
from course_lib.checks import CHECKS
from course_lib.release import ReleaseError


def solution_cell(source: str, grade_id: str = "f", **extra) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": False, "grade_id": grade_id, "locked": False, "schema_version": 3,
                                 "solution": True, "task": False, **extra}
    return cell


def write(tmp_path, cells, name="01_demo.ipynb"):
    notebook = nbformat.v4.new_notebook(cells=cells)
    folder = tmp_path / "solutions"
    folder.mkdir(exist_ok=True)
    path = folder / name
    nbformat.write(notebook, str(path))
    return path


def exercise_cells(tmp_path, cells):
    path = write(tmp_path, cells)
    return release.exercise_from_solution(release.read_notebook(path), path).cells


def test_solution_region_becomes_a_stub_indented_like_the_markers(tmp_path):
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n"
    [cell] = exercise_cells(tmp_path, [solution_cell(source)])
    assert cell.source == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"


def test_markdown_answer_hidden_tests_outputs_and_counts(tmp_path):
    answer = nbformat.v4.new_markdown_cell("Q?\n### BEGIN SOLUTION\nThe answer.\n### END SOLUTION")
    answer.metadata["nbgrader"] = {"grade": True, "grade_id": "q", "points": 1, "solution": True, "locked": False}
    check = nbformat.v4.new_code_cell("check(f)\n### BEGIN HIDDEN TESTS\nassert secret(f)\n### END HIDDEN TESTS")
    check.outputs = [nbformat.v4.new_output("stream", text="✅")]
    check.execution_count = 7
    cells = exercise_cells(tmp_path, [answer, check])
    assert cells[0].source == "Q?\nYOUR ANSWER HERE"
    assert cells[1].source == "check(f)"
    assert cells[1].outputs == [] and cells[1].execution_count is None


@pytest.mark.parametrize("source, complaint", [
    ("### BEGIN SOLUTION\nx = 1\n", "line 1 is never closed"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "nested '### BEGIN SOLUTION' at line 2"),
    ("x = 1\n### END SOLUTION\n", "without a '### BEGIN SOLUTION' before it"),
])
def test_bad_markers_stop_the_release_naming_notebook_and_cell(tmp_path, source, complaint):
    cells = [nbformat.v4.new_markdown_cell("intro"), solution_cell(source, grade_id="softmax")]
    with pytest.raises(ReleaseError) as error:
        exercise_cells(tmp_path, cells)
    assert "01_demo.ipynb, cell 1 (grade_id 'softmax')" in str(error.value)
    assert complaint in str(error.value)


def test_solution_region_without_nbgrader_metadata_is_refused(tmp_path):
    cell = nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")
    with pytest.raises(ReleaseError, match="cell 0: has a solution region but no nbgrader metadata"):
        exercise_cells(tmp_path, [cell])


def test_malformed_notebook_gives_a_clear_error(tmp_path):
    folder = tmp_path / "solutions"
    folder.mkdir()
    (folder / "01_broken.ipynb").write_text('{"cells": [')
    with pytest.raises(ReleaseError, match=r"01_broken.ipynb: not a valid notebook"):
        release.release(folder, tmp_path / "exercises")
    (folder / "01_broken.ipynb").write_text(json.dumps({"cells": "not a list"}))
    with pytest.raises(ReleaseError, match=r"01_broken.ipynb: not a valid notebook"):
        release.release(folder, tmp_path / "exercises")


def test_graded_cells_are_locked_as_nbgraders_release_locks_them(tmp_path):
    """Does a solution cell become undeletable, and a check cell undeletable and read-only, as in nbgrader's
    release (its LockCells), while an ordinary cell stays free?"""
    check = nbformat.v4.new_code_cell("checks.check_f(f)")
    check.metadata["nbgrader"] = {"grade": True, "grade_id": "check_f", "locked": True, "points": 1,
                                  "schema_version": 3, "solution": False, "task": False}
    answer = nbformat.v4.new_markdown_cell("### BEGIN SOLUTION\nIt is.\n### END SOLUTION")
    answer.metadata["nbgrader"] = {"grade": True, "grade_id": "q", "points": 1, "solution": True, "locked": False}
    free = nbformat.v4.new_code_cell("print(1)")
    cells = exercise_cells(tmp_path, [solution_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x\n"
                                                    "    ### END SOLUTION"), check, answer, free])
    locks = [{key: cell.metadata[key] for key in ("deletable", "editable") if key in cell.metadata} for cell in cells]
    assert locks == [{"deletable": False}, {"deletable": False, "editable": False}, {"deletable": False}, {}]


def test_every_graded_cell_of_the_committed_exercises_is_locked():
    for path in sorted((ROOT / "exercises").glob("*.ipynb")):
        for index, cell in enumerate(nbformat.read(str(path), as_version=4).cells):
            meta = grading(cell)
            if meta.get("solution"):
                assert cell.metadata.get("deletable") is False, f"{path.name} cell {index}: a solution can be deleted"
            elif meta.get("grade") or meta.get("locked"):
                assert (cell.metadata.get("deletable"), cell.metadata.get("editable")) == (False, False), \
                    f"{path.name} cell {index} ({meta.get('grade_id')}): a check cell is not locked"
            else:
                assert "deletable" not in cell.metadata and "editable" not in cell.metadata, f"{path.name} cell {index}"


def test_a_check_cell_unlocked_by_hand_is_drift(tmp_path):
    shutil.copytree(ROOT / "solutions", tmp_path / "solutions")
    shutil.copytree(ROOT / "exercises", tmp_path / "exercises")
    release.main(["--solutions", str(tmp_path / "solutions"), "--exercises", str(tmp_path / "exercises")])
    edited = tmp_path / "exercises" / "01_attention_by_hand.ipynb"
    notebook = nbformat.read(str(edited), as_version=4)
    [check] = [cell for cell in notebook.cells if grading(cell).get("grade_id") == "check_softmax"]
    del check.metadata["editable"]
    edited.write_text(release.notebook_text(notebook), encoding="utf-8")
    assert release.stale_exercises(tmp_path / "solutions", tmp_path / "exercises") == [
        "01_attention_by_hand.ipynb: differs from its solutions notebook"]


def test_committed_exercises_are_exactly_what_the_generator_writes():
    assert release.stale_exercises() == []


def test_drift_is_detected_when_a_solution_changes(tmp_path):
    shutil.copytree(ROOT / "solutions", tmp_path / "solutions")
    shutil.copytree(ROOT / "exercises", tmp_path / "exercises")
    assert release.main(["--check", "--solutions", str(tmp_path / "solutions"),
                         "--exercises", str(tmp_path / "exercises")]) == 0
    edited = tmp_path / "solutions" / "01_attention_by_hand.ipynb"
    notebook = nbformat.read(str(edited), as_version=4)
    notebook.cells[0].source += "\nA new sentence in the introduction."
    nbformat.write(notebook, str(edited))
    problems = release.stale_exercises(tmp_path / "solutions", tmp_path / "exercises")
    assert problems == ["01_attention_by_hand.ipynb: differs from its solutions notebook"]
    assert release.main(["--check", "--solutions", str(tmp_path / "solutions"),
                         "--exercises", str(tmp_path / "exercises")]) == 1
    # hand-editing an exercise is drift too, and so is an exercise without a solution
    assert release.main(["--solutions", str(tmp_path / "solutions"), "--exercises", str(tmp_path / "exercises")]) == 0
    (tmp_path / "exercises" / "99_orphan.ipynb").write_text(edited.read_text())
    assert release.stale_exercises(tmp_path / "solutions", tmp_path / "exercises") == [
        "99_orphan.ipynb: has no solutions notebook"]


@pytest.mark.parametrize("path", all_notebooks(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebooks_are_committed_without_outputs(path):
    assert release.stored_outputs(path) == []


def test_the_no_outputs_test_catches_outputs_and_counts(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1"), nbformat.v4.new_code_cell("2")])
    notebook.cells[0].outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1)]
    notebook.cells[1].execution_count = 3
    path = tmp_path / "dirty.ipynb"
    nbformat.write(notebook, str(path))
    assert release.stored_outputs(path) == ["dirty.ipynb, cell 0", "dirty.ipynb, cell 1"]


def graded_cells():
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        for index, cell in enumerate(nbformat.read(str(path), as_version=4).cells):
            if cell.cell_type == "code" and grading(cell).get("grade"):
                yield path, index, cell


def test_every_check_cell_is_worth_what_its_check_is_worth():
    seen = set()
    for path, index, cell in graded_cells():
        name = grading(cell)["grade_id"].removeprefix("check_")
        assert name in CHECKS, f"{path.name} cell {index} grades {name!r}, which has no check in course_lib.checks"
        assert grading(cell)["points"] == CHECKS[name].points, f"{path.name} cell {index}: points differ from the check"
        assert grading(cell)["locked"] and not grading(cell)["solution"]
        assert f"checks.check_{name}({name})" in cell.source
        seen.add(name)
    assert seen == set(CHECKS), f"checks without an exercise: {set(CHECKS) - seen}"


def test_grade_ids_are_unique_in_each_notebook():
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        ids = [grading(c)["grade_id"] for c in nbformat.read(str(path), as_version=4).cells if grading(c)]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate grade_id"
