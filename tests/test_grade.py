"""The grader: full marks for the solutions, 0 for the blank exercises, exactly one function's points lost for
one wrong function, and a status (never a crashed batch) for every kind of bad submission."""
from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import submissions
from course_lib import checks
from course_lib.grading import batch as grade
from course_lib.grading import files, judging, protocol, reports, sandbox
from course_lib.release import ROOT

# Sandboxed wherever bubblewrap works (always in CI: tests/test_grade_sandbox.py fails there without it);
# elsewhere the same grading runs --trusted, so that a learner's machine without bubblewrap still tests it.
TRUSTED = sandbox.unavailable() is not None
FAST = grade.Options(cell_timeout=5, total_timeout=120, memory_mb=1536, trusted=TRUSTED)  # limits hit sooner


def by_name(results):
    return {Path(r["file"]).name: r for r in results}


@pytest.fixture(scope="module")
def course_batch(tmp_path_factory):
    """Every solutions and exercise notebook, graded as one batch with two jobs."""
    out = tmp_path_factory.mktemp("course") / "grades.csv"
    paths = files.collect([str(ROOT / "solutions"), str(ROOT / "exercises")])
    return grade.grade_batch(paths, out, grade.Options(trusted=TRUSTED), jobs=2, progress=grade.Progress(len(paths), stream=io.StringIO())), out


@pytest.fixture(scope="module")
def bad_batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    expected = submissions.make_bad(folder)
    one_wrong = submissions.make_one_wrong(folder)
    out = folder / "out" / "grades.csv"
    stream = io.StringIO()
    results = grade.grade_batch([*expected, one_wrong], out, FAST, jobs=2,
                                progress=grade.Progress(len(expected) + 1, stream=stream))
    return {Path(r["file"]): r for r in results}, expected, one_wrong, out, stream.getvalue()


def test_every_solutions_notebook_scores_full_marks(course_batch):
    results, _ = course_batch
    solved = [r for r in results if "/solutions/" in r["file"]]
    assert len(solved) == len(list((ROOT / "solutions").glob("*.ipynb"))) >= 5
    for result in solved:
        assert result["status"] == "ok", result
        assert result["total"] == result["max_total"] > 0, reports.table(result)
        assert all(e["status"] == "passed" for e in result["exercises"])


def test_every_untouched_exercise_scores_zero_with_not_implemented(course_batch):
    results, _ = course_batch
    blank = [r for r in results if "/exercises/" in r["file"]]
    assert len(blank) == len(list((ROOT / "exercises").glob("*.ipynb"))) >= 5
    for result in blank:
        assert result["status"] == "ok" and result["total"] == 0 and result["max_total"] > 0
        for entry in result["exercises"]:
            assert entry["status"] == "not-implemented", entry
            assert "not implemented" in entry["feedback"]


def test_the_batch_writes_csv_json_and_a_feedback_page_per_submission(course_batch):
    results, out = course_batch
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(results)
    for row in rows:
        assert row["status"] == "ok"
        assert float(row["percent"]) == (100.0 if "/solutions/" in row["file"] else 0.0)
    assert {"softmax", "MultiHeadAttention", "apply_rope", "total", "max"} <= set(rows[0])
    stored = json.loads(out.with_suffix(".json").read_text())
    assert {r["file"] for r in stored} == {r["file"] for r in results}
    pages = sorted((out.parent / "grades_feedback").glob("*.html"))
    assert len(pages) == len(results)
    page = next(p for p in pages if "solutions_04" in p.name).read_text()
    assert "MultiHeadAttention" in page and "5 / 5" in page and "<!DOCTYPE html>" in page


def test_one_wrong_function_loses_exactly_its_points_with_the_notebook_check_s_message(bad_batch):
    results, _, one_wrong, _, _ = bad_batch
    result = results[one_wrong]
    assert result["status"] == "ok"
    assert result["total"] == result["max_total"] - 1 == 3
    entries = {e["function"]: e for e in result["exercises"]}
    assert entries["softmax"]["points"] == 0 and entries["softmax"]["status"] == "failed"
    assert all(e["points"] == e["max_points"] for name, e in entries.items() if name != "softmax")
    # feedback and grade never disagree: the grader says what the learner's own check cell says
    namespace = {}
    exec(submissions.WRONG_SOFTMAX, namespace)
    assert entries["softmax"]["feedback"] == checks.CHECKS["softmax"].run(namespace["softmax"]).message
    # the functions that use softmax were judged with the course's, and say so, as the check cell does
    sdpa = entries["scaled_dot_product_attention"]["feedback"]
    assert "Note: your `softmax` fails its own check, so the course's softmax stood in for it here" in sdpa
    assert "Note" not in entries["attention_scores"]["feedback"]  # it does not use softmax


@pytest.mark.parametrize("name", sorted(submissions.BAD))
def test_a_bad_submission_gets_its_status_and_does_not_stop_the_batch(bad_batch, name):
    results, expected, _, _, _ = bad_batch
    path = next(p for p in expected if p.stem == name)
    want, result = expected[path], results[path]
    assert result["status"] == want.status, reports.table(result)
    statuses = {e["function"]: e["status"] for e in result["exercises"]}
    if result["exercise"]:
        for function in submissions.FUNCTIONS:
            assert statuses[function] == want.functions.get(function, "passed"), reports.table(result)
    words = " ".join([*result["notes"], *(e["feedback"] for e in result["exercises"])])
    assert want.says in words, reports.table(result)


def test_the_progress_bar_reports_every_submission(bad_batch):
    results, _, _, _, progress = bad_batch
    assert progress.count("\n") == len(results)
    assert f"{len(results)}/{len(results)}" in progress


def test_a_rerun_skips_graded_files_unless_forced_or_changed(bad_batch, tmp_path, monkeypatch):
    results, expected, one_wrong, out, _ = bad_batch
    graded = []  # the files the batch really grades (a stored result is not graded again)
    real = grade.grade_safely
    monkeypatch.setattr(grade, "grade_safely", lambda path, context: graded.append(Path(path).name) or real(path, context))
    stream = io.StringIO()
    again = grade.grade_batch([one_wrong], out, FAST, progress=grade.Progress(0, skipped=1, stream=stream))
    assert "skipping 1 already graded" in stream.getvalue()
    assert graded == [] and again[0] == results[one_wrong]  # the stored result, not a new grading
    copy = tmp_path / "copy.ipynb"
    copy.write_bytes(one_wrong.read_bytes())
    out2 = tmp_path / "grades.csv"
    first = grade.grade_batch([copy], out2, FAST, progress=grade.Progress(1, stream=io.StringIO()))[0]
    forced = grade.grade_batch([copy], out2, FAST, force=True, progress=grade.Progress(1, stream=io.StringIO()))[0]
    assert graded == ["copy.ipynb", "copy.ipynb"] and forced["total"] == first["total"]
    copy.write_bytes((ROOT / "solutions" / "01_attention_by_hand.ipynb").read_bytes())  # the learner resubmits
    changed = grade.grade_batch([copy], out2, FAST, progress=grade.Progress(1, stream=io.StringIO()))[0]
    assert graded[-1] == "copy.ipynb" and changed["total"] == changed["max_total"] == 4


def test_single_submission_prints_a_table_or_json(capsys):
    path = str(ROOT / "solutions" / "02_masks_and_stability.ipynb")
    trusted = ["--trusted"] if TRUSTED else []
    assert grade.main([path, *trusted]) == 0
    table = capsys.readouterr().out
    assert "causal_mask" in table and "total: 4/4 (100%)" in table
    assert grade.main([path, "--json", *trusted]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"status", "total", "max_total", "exercises"} <= set(result)
    assert result["status"] == "ok" and result["total"] == result["max_total"] == 4
    assert {"function", "points", "max_points", "status", "feedback"} <= set(result["exercises"][0])


@pytest.mark.parametrize("argv, says", [
    (["no/such/file.ipynb"], "no such file or folder: no/such/file.ipynb"),
    (["solutions", "--jobs", "0"], "--jobs must be at least 1"),
    (["tests/*.nothing"], "no files match"),
    (["course_lib"], "no notebooks (*.ipynb) found"),
])
def test_the_grader_exits_non_zero_only_when_it_cannot_run(capsys, monkeypatch, argv, says):
    monkeypatch.chdir(ROOT)
    assert grade.main(argv) == 2
    assert says in capsys.readouterr().err


def test_the_console_script_runs():
    script = shutil.which("course-grade", path=str(Path(sys.executable).parent))
    assert script, "course-grade is not installed next to this Python (pip install -e . declares it)"
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "usage: course-grade" in done.stdout, done.stderr


# ----------------------------------------------------------------------------------------------------------
# The pieces: plain data both ways, the reference watch, the course's versions of other functions
# ----------------------------------------------------------------------------------------------------------

def test_plain_data_round_trips_without_pickle(tmp_path):
    shared = torch.randn(2, 3)
    tree = {"args": (np.arange(6.0).reshape(2, 3), shared, shared, torch.ones(2, dtype=torch.bool)),
            "more": [1, 2.5, float("-inf"), None, True, "text", np.float32(1.5), np.array(3.0), 2 ** 40],
            "grad": torch.zeros(3, dtype=torch.float64).requires_grad_(), "half": torch.ones(2, dtype=torch.bfloat16)}
    protocol.save(tmp_path / "tree.npz", tree)
    back = protocol.load(tmp_path / "tree.npz")
    assert np.array_equal(back["args"][0], tree["args"][0]) and isinstance(back["args"][0], np.ndarray)
    assert torch.equal(back["args"][1], shared) and back["args"][1] is back["args"][2]  # identity kept
    assert back["args"][3].dtype == torch.bool
    assert back["more"][:6] == [1, 2.5, float("-inf"), None, True, "text"] and back["more"][8] == 2 ** 40
    assert type(back["more"][6]) is np.float32 and back["more"][6] == 1.5
    assert isinstance(back["more"][7], np.ndarray) and back["more"][7].shape == () and back["more"][7] == 3.0
    assert back["grad"].requires_grad and back["grad"].dtype == torch.float64
    assert back["half"].dtype == torch.bfloat16


def test_objects_come_back_only_as_a_description(tmp_path):
    class Anything:
        def __eq__(self, other):
            return True

    protocol.save(tmp_path / "answer.npz", (Anything(), np.array([object()], dtype=object)))
    back = protocol.load(tmp_path / "answer.npz")
    assert all(isinstance(value, protocol.Returned) for value in back)
    assert back[0].description == "a Anything" and back[1].description == "numpy.ndarray of shape (1,)"
    assert checks.CHECKS["softmax"].judge(checks.CHECKS["softmax"].make_cases(np.random.default_rng(0))[0],
                                          back[0]) == "weights: expected a numpy array, got a Anything."


def test_a_pickled_answer_file_is_refused(tmp_path):
    import zipfile

    np.save(tmp_path / "evil.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(tmp_path / "evil.npz", "w") as archive:
        archive.write(tmp_path / "evil.npy", "a0.npy")
    with pytest.raises(protocol.ProtocolError, match="not plain data"):
        protocol.load(tmp_path / "evil.npz")


def test_the_sandbox_s_course_library_refuses_what_does_the_exercise_s_job(tmp_path):
    import subprocess
    import sys

    from course_lib.grading import view

    exercise = judging.catalogue()["09_linear_attention"]
    assert {"course_lib.linear.linear_attention", "course_lib.linear.kernel_attention"} <= exercise.withheld()
    view.build(tmp_path, exercise.withheld())
    probe = ("import torch, course_lib.linear as linear\n"
             "x = torch.randn(1, 4, 2)\n"
             "for name in ('linear_attention', 'kernel_attention', 'causal_linear_attention'):\n"
             "    try:\n        getattr(linear, name)(x, x, x)\n    except RuntimeError as error:\n        print(error)\n"
             "print(linear.sample_omega(4, 2).shape)\n"  # what is not the exercise's job still works
             "import course_lib.checks as checks\ntry:\n    checks.CHECKS\nexcept AttributeError as error:\n    print(error)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    lines = done.stdout.splitlines()
    assert len(lines) == 5 and all("not available while grading" in line for line in lines[:3] + lines[4:]), done
    assert "course_lib.linear.kernel_attention is not available" in lines[1]
    assert lines[3] == "torch.Size([4, 2])"


def test_only_the_earlier_graded_functions_are_lent_with_the_exercise_s_signature():
    exercise = judging.catalogue()["09_linear_attention"]
    assert exercise.lent_source("elu_feature_map") == ""
    scope = {}
    exec(exercise.lent_source("causal_linear_attention"), scope)
    assert scope["__lent__"] == ["elu_feature_map", "linear_attention"]
    assert "causal_linear_attention" not in scope  # a function is never lent to itself, nor anything after it
    x = torch.randn(1, 3, 2)
    with pytest.raises(TypeError, match="is_causal"):  # exactly the exercise's function, no more
        scope["linear_attention"](x, x, x, is_causal=True)


def test_graded_cases_include_hidden_ones_from_a_secret():
    seeds, again, other = judging.Seeds("teacher's secret"), judging.Seeds("teacher's secret"), judging.Seeds()
    for name, check in checks.CHECKS.items():
        assert seeds.for_function(name) == again.for_function(name) != other.for_function(name)
        assert seeds.for_function(name)[0] == 0 and 0 not in seeds.for_function(name)[1:]
        seen = check.make_cases(np.random.default_rng(0))
        hidden = [case for seed in seeds.for_function(name)[1:] for case in check.make_cases(np.random.default_rng(seed))]
        assert len(hidden) >= len(seen)
        inputs = lambda cases: [repr(case.args) + repr(case.kwargs) for case in cases]
        assert not set(inputs(hidden)) <= set(inputs(seen)), f"{name}: the hidden cases are the ones the learner sees"


def test_a_bug_in_the_grader_costs_one_submission_not_the_batch(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated grader bug")

    monkeypatch.setattr(judging, "identify", broken)
    paths = [ROOT / "solutions" / "01_attention_by_hand.ipynb", ROOT / "exercises" / "01_attention_by_hand.ipynb"]
    results = grade.grade_batch(paths, tmp_path / "grades.csv", FAST, progress=grade.Progress(2, stream=io.StringIO()))
    assert [r["status"] for r in results] == ["grader-error", "grader-error"]
    assert "simulated grader bug" in results[0]["notes"][0]
    assert len(list(csv.DictReader((tmp_path / "grades.csv").open()))) == 2


def test_submissions_are_known_by_their_absolute_path_and_pages_never_collide(tmp_path, monkeypatch):
    solution = (ROOT / "solutions" / "01_attention_by_hand.ipynb").read_bytes()
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "01.ipynb").write_bytes(solution)
    (tmp_path / "bob_01.ipynb").write_bytes(solution)
    out = tmp_path / "grades.csv"
    quiet = lambda n: grade.Progress(n, stream=io.StringIO())
    first = grade.grade_batch(files.collect([str(tmp_path)]), out, FAST, progress=quiet(2))
    pages = sorted(p.name for p in (tmp_path / "grades_feedback").glob("*.html"))
    assert len(pages) == 2 and pages[0] != pages[1]  # bob/01 and bob_01 would both be "bob_01.html"
    assert all("bob" in page for page in pages)
    monkeypatch.chdir(tmp_path)  # the same folder typed another way: nothing to regrade
    stream = io.StringIO()
    again = grade.grade_batch(files.collect(["."]), out, FAST, progress=grade.Progress(0, skipped=2, stream=stream))
    assert "skipping 2 already graded" in stream.getvalue()
    assert [r["seconds"] for r in again] == [r["seconds"] for r in first]
    (tmp_path / "bob_01.ipynb").unlink()  # a deleted file drops out of the reports
    grade.grade_batch(files.collect(["."]), out, FAST, progress=quiet(0))
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 1 and rows[0]["file"].endswith(str(Path("bob") / "01.ipynb"))
    assert "notes" in rows[0] and "❌" not in rows[0]["notes"]
    assert "✅" in out.with_suffix(".json").read_text(encoding="utf-8")  # readable, not \u escapes


def test_feedback_pages_show_code_as_code():
    result = {"file": "alice.ipynb", "exercise": "01_attention_by_hand", "status": "ok", "total": 0,
              "max_total": 1, "percent": 0.0, "notes": ["The cell starting `x = 1` raised <NameError>"],
              "exercises": [{"function": "softmax", "points": 0, "max_points": 1, "status": "failed",
                             "feedback": "❌ softmax: use `np.max(x, axis=axis, keepdims=True)` first."}]}
    page = reports.feedback_page(result)
    assert "<code>np.max(x, axis=axis, keepdims=True)</code>" in page
    assert "&lt;NameError&gt;" in page and "<NameError>" not in page  # escaped before code is marked up


def test_a_file_hit_by_cpythons_ast_race_is_graded_again_and_any_other_grader_bug_is_reported(monkeypatch, tmp_path):
    """CPython 3.11's spurious 'AST constructor recursion depth mismatch' (gh-106905) turned one notebook of a
    fresh-clone run into grader-error; the grader grades such a file again. Any other bug is still reported."""
    from course_lib.grading import submission

    calls = []

    def flaky(path, context):
        calls.append(path)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=48, after=44)")
        return {"status": "ok"}

    monkeypatch.setattr(submission, "grade_submission", flaky)
    assert submission.grade_safely(tmp_path / "a.ipynb", context=None) == {"status": "ok"} and len(calls) == 2

    def broken(path, context):
        raise SystemError("something else")

    monkeypatch.setattr(submission, "grade_submission", broken)
    (tmp_path / "b.ipynb").write_text("{}")
    result = submission.grade_safely(tmp_path / "b.ipynb", context=type("C", (), {"options": FAST})())
    assert result["status"] == "grader-error" and "SystemError: something else" in result["notes"][0]
