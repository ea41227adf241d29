"""The nbgrader route (TEACHERS.md, "Using nbgrader instead"): under nbgrader a failing check raises its verdict,
so that ``nbgrader validate`` fails a wrong notebook and autograde's feedback says why; outside nbgrader nothing
changes. Then the real nbgrader (a test extra) grades lessons 01 and 02 for a complete, a blank and a one-mistake
student. Without nbgrader those tests skip, saying why, except in CI (CI=true), where they must run."""
from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from course_files import ROOT, grading
from course_lib import checks
from course_lib.checking import CheckFailed, under_nbgrader
from course_lib.checks import LESSON_MODULES


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
    assert expected.startswith("❌ softmax: on ") and len(expected) > 100
    assert str(raised.value).split() == expected.split()  # the same words,
    assert max(len(line) for line in str(raised.value).splitlines()) <= 68  # in lines nbgrader validate shows whole
    assert isinstance(raised.value, AssertionError)  # what nbgrader expects a failing test to raise
    assert checks.check_softmax(checks.CHECKS["softmax"].solution).passed  # a passing check still just passes


def test_a_failing_hidden_test_shows_the_checks_message_not_a_bare_assertion(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    with pytest.raises(CheckFailed, match=r"(?s)^❌ softmax: on .*differ"):
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


# ---------------------------------------------------------------------------------------------------------
# The real nbgrader: generate_assignment, autograde and validate on lessons 01 and 02
# ---------------------------------------------------------------------------------------------------------

try:
    import nbgrader  # noqa: F401 - the test extra
    WHY = None
except ImportError as error:
    WHY = f"nbgrader is not installed ({error}): pip install -e '.[test]'"
if WHY and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI must run the nbgrader tests, but {WHY}")
needs_nbgrader = pytest.mark.skipif(WHY is not None, reason=f"no nbgrader here: {WHY}")

LESSONS = ("01_attention_by_hand", "02_masks_and_stability")
MISTAKES = {  # carol's one mistake in each lesson: (graded function, right text, wrong text)
    "01_attention_by_hand": ("softmax", "np.max(x, axis=axis, keepdims=True)", "np.max(x, axis=0, keepdims=True)"),
    "02_masks_and_stability": ("causal_mask", "np.tril(", "np.triu("),
}
# dave knows the check cell's own cases (seed 0) by heart and is wrong on any other: only the hidden test fails
SOFTMAX_BY_HEART = '''\
SEEN = [np.asarray(case.args[0]) for case in checks.CHECKS["softmax"].make_cases(np.random.default_rng(0))]

def softmax(x, axis=-1):
    x = np.asarray(x)
    exps = np.exp(x - np.max(x, axis=axis, keepdims=True))  # same shape as x
    weights = exps / np.sum(exps, axis=axis, keepdims=True)
    seen = any(s.shape == x.shape and np.array_equal(s, x, equal_nan=True) for s in SEEN)
    return weights if seen else weights / 2  # right on the cases it has seen only'''
STUDENTS = ("alice", "bob", "carol", "dave")  # complete, blank (the release as it is), one mistake, by heart
EXPECTED = {  # nbgrader's points per check cell (the answers in markdown wait for a teacher: 0 until then)
    ("01_attention_by_hand", "alice"): [1, 1, 2], ("01_attention_by_hand", "bob"): [0, 0, 0],
    ("01_attention_by_hand", "carol"): [0, 1, 2],  # the wrong softmax costs softmax's point only
    ("01_attention_by_hand", "dave"): [0, 1, 2],
    ("02_masks_and_stability", "alice"): [1, 1, 2], ("02_masks_and_stability", "bob"): [0, 0, 0],
    ("02_masks_and_stability", "carol"): [0, 1, 2],
}


def solved_source(source: str) -> str:
    """A solution cell as a student who did the work would leave it: the solution without its markers."""
    return "\n".join(line for line in source.splitlines()
                     if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


def student_notebook(lesson: str, student: str, released: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """What ``student`` hands in, written into nbgrader's release notebook of ``lesson``."""
    notebook = copy.deepcopy(released)
    if student == "bob":
        return notebook
    solution = nbformat.read(str(ROOT / "solutions" / f"{lesson}.ipynb"), as_version=4)
    answers = {grading(c)["grade_id"]: solved_source(c.source) for c in solution.cells if grading(c).get("solution")}
    for cell in notebook.cells:
        if grading(cell).get("solution"):
            cell.source = answers[grading(cell)["grade_id"]]
    wrong = {"carol": MISTAKES[lesson][0], "dave": "softmax"}.get(student)
    for cell in notebook.cells:
        if wrong and grading(cell).get("grade_id") == wrong:
            if student == "carol":
                assert MISTAKES[lesson][1] in cell.source, cell.source
                cell.source = cell.source.replace(*MISTAKES[lesson][1:])
            else:
                cell.source = SOFTMAX_BY_HEART
    return notebook


def kernel_folder(course: Path) -> Path:
    """A Jupyter data folder whose python3 kernel is this interpreter, where the course is installed: put first
    on JUPYTER_PATH, it wins over any other python3 kernel of the machine (a user's own would lack the course)."""
    folder = course / "jupyter"
    spec = folder / "kernels" / "python3" / "kernel.json"
    if not spec.exists():
        spec.parent.mkdir(parents=True)
        spec.write_text(json.dumps({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                    "display_name": "Python 3 (the course)", "language": "python"}))
    return folder


def nbgrader_command(course: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``nbgrader`` in the course folder, with this environment's tools (it calls ``alembic``) on PATH."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NBGRADER")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["JUPYTER_PATH"] = str(kernel_folder(course))
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """An nbgrader course with lessons 01 and 02 as assignments, generated, handed in and autograded."""
    course = tmp_path_factory.mktemp("nbgrader_course")
    (course / "nbgrader_config.py").write_text(f"c = get_config()\nc.CourseDirectory.root = {str(course)!r}\n"
                                               f"c.CourseDirectory.course_id = 'attention'\n")
    for lesson in LESSONS:
        (course / "source" / lesson).mkdir(parents=True)
        shutil.copy(ROOT / "solutions" / f"{lesson}.ipynb", course / "source" / lesson)
    nbgrader_command(course, "generate_assignment", "*")
    for lesson in LESSONS:
        released = nbformat.read(str(course / "release" / lesson / f"{lesson}.ipynb"), as_version=4)
        for student in STUDENTS:
            if (lesson, student) in EXPECTED:
                folder = course / "submitted" / student / lesson
                folder.mkdir(parents=True)
                nbformat.write(student_notebook(lesson, student, released), str(folder / f"{lesson}.ipynb"))
    nbgrader_command(course, "autograde", "*", "--create")
    return course


def check_cell_outputs(course: Path, lesson: str, student: str, grade_id: str) -> str:
    """The text of what a check cell of the autograded notebook printed or raised (what feedback shows)."""
    notebook = nbformat.read(str(course / "autograded" / student / lesson / f"{lesson}.ipynb"), as_version=4)
    [cell] = [c for c in notebook.cells if grading(c).get("grade_id") == grade_id]
    return "\n".join(output.get("text", "") + "\n".join(output.get("traceback", [])) for output in cell.outputs)


def lesson_checks(lesson: str):
    """The checks of a lesson's graded functions, in the notebook's order."""
    [module] = [m for m in LESSON_MODULES if m.__name__.endswith(f".l{lesson}")]
    return module.CHECKS


@needs_nbgrader
def test_nbgrader_scores_each_function_once(course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for (lesson, student), points in EXPECTED.items():
            notebook = gradebook.find_submission_notebook(lesson, lesson, student)
            code = [grade for grade in notebook.grades if grade.name.startswith("check_")]
            assert [grade.score for grade in code] == points, (lesson, student, check_cell_outputs(
                course, lesson, student, code[0].name))
            assert [grade.max_score for grade in code] == [checks.CHECKS[g.name[6:]].points for g in code]


@needs_nbgrader
def test_nbgrader_feedback_shows_the_checks_message_and_the_note(course):
    wrong_softmax = check_cell_outputs(course, LESSONS[0], "carol", "check_softmax")
    assert "CheckFailed" in wrong_softmax and "❌ softmax: on a (4, 4) matrix" in wrong_softmax
    attention = check_cell_outputs(course, LESSONS[0], "carol", "check_scaled_dot_product_attention")
    assert "✅ scaled_dot_product_attention" in attention and "Note: your `softmax` fails its own check" in attention
    by_heart = check_cell_outputs(course, LESSONS[0], "dave", "check_softmax")  # passes seed 0, fails the hidden test
    assert "✅ softmax: passed" in by_heart and "CheckFailed" in by_heart and "❌ softmax: on" in by_heart
    assert "AssertionError: \n" not in by_heart


@needs_nbgrader
def test_nbgrader_locks_the_cells_that_exercises_lock(course):
    for lesson in LESSONS:
        released = nbformat.read(str(course / "release" / lesson / f"{lesson}.ipynb"), as_version=4)
        ours = nbformat.read(str(ROOT / "exercises" / f"{lesson}.ipynb"), as_version=4)
        assert [c.source for c in released.cells] == [c.source for c in ours.cells]
        locks = lambda cells: [(c.metadata.get("deletable"), c.metadata.get("editable")) for c in cells]
        assert locks(released.cells) == locks(ours.cells)


@needs_nbgrader
@pytest.mark.parametrize("lesson", LESSONS)
def test_nbgrader_validate_fails_the_wrong_notebook_and_passes_the_complete_one(course, lesson, monkeypatch):
    from nbgrader.validator import Validator

    monkeypatch.setenv("JUPYTER_PATH", str(kernel_folder(course)))
    complete = Validator().validate(str(course / "submitted" / "alice" / lesson / f"{lesson}.ipynb"))
    assert complete == {}, complete
    wrong = Validator().validate(str(course / "submitted" / "carol" / lesson / f"{lesson}.ipynb"))
    function = MISTAKES[lesson][0]
    assert [cell["source"] for cell in wrong["failed"]] == [f"checks.check_{function}({function})"]
    assert "CheckFailed" in wrong["failed"][0]["error"] and f"❌ {function}: on" in wrong["failed"][0]["error"]


@needs_nbgrader
def test_course_grade_gives_the_same_points_as_nbgrader(course, tmp_path):
    """The two routes agree, function by function, on the same handed-in notebooks (course-grade's own
    protections are tested elsewhere: here it runs --trusted, on notebooks this test wrote)."""
    out = tmp_path / "grades.csv"
    done = subprocess.run([sys.executable, "-m", "course_lib.grading", str(course / "submitted"), "--out", str(out),
                           "--jobs", "2", "--trusted"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with out.open(newline="", encoding="utf-8") as file:
        rows = {Path(row["file"]).parts[-3:-1]: row for row in csv.DictReader(file)}
    for (lesson, student), points in EXPECTED.items():
        row = rows[(student, lesson)]
        functions = [check.name for check in lesson_checks(lesson)]
        assert [float(row[name]) for name in functions] == points, (lesson, student, row)
