"""The class view of a batch: whose each submission is (the collected layout and the flat one), the class
report's data (pure functions, tested on data), its page (self-contained, offline), and the gradebook CSV."""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import submissions
from course_lib.grading import class_page, class_report, files, gradebook, sandbox
from course_lib.release import ROOT

TRUSTED = sandbox.unavailable() is not None  # as in tests/test_grade.py: sandboxed wherever bubblewrap works
DIVIDED = "you divided by the sum of the whole array; divide by the sum along `axis`"
KNOWN = {"softmax": [DIVIDED, "you forgot the exponential"], "attention_scores": ["you forgot to scale by 1/√D"]}


def entry(function: str, status: str = "passed", feedback: str = "", points: float = 1) -> dict:
    return {"function": function, "points": points if status == "passed" else 0, "max_points": points,
            "status": status, "feedback": feedback or f"✅ {function}: passed"}


def result(student: str, entries: list[dict], lesson: str = "01_attention_by_hand", status: str = "ok",
           notes=()) -> dict:
    total, top = sum(e["points"] for e in entries), sum(e["max_points"] for e in entries)
    return {"file": f"/class/{student}/{lesson}.ipynb", "student": student, "exercise": lesson if entries else None,
            "lesson": lesson, "status": status, "total": total, "max_total": top,
            "percent": round(100 * total / top, 1) if top else 0.0, "exercises": entries, "notes": list(notes)}


def divided(student: str) -> dict:
    return entry("softmax", "failed", f"❌ softmax: on a (4, 4) matrix seen by {student}: {DIVIDED}, so rows sum to 1.")


CLASS = [  # three of four divide by the whole sum; one forgot to scale; one did not finish; one crashed
    result("ana", [divided("ana"), entry("attention_scores")]),
    result("ben", [divided("ben"), entry("attention_scores", "failed", "❌ on a case: you forgot to scale by 1/√D.")]),
    result("cho", [divided("cho"), entry("attention_scores", "not-implemented", "❌ not implemented")]),
    result("dev", [entry("softmax"), entry("attention_scores")]),
    result("eve", [entry("softmax", "crashed", "❌ softmax: the kernel died"), entry("attention_scores")],
           status="crashed"),
    result("fay", [], lesson="holiday_photos", status="not-an-exercise", notes=["holds none of the functions"]),
]


@pytest.mark.parametrize("relative, root, student", [
    ("submissions/alice/01_attention_by_hand.ipynb", "submissions", "alice"),  # the collected layout
    ("submitted/bob/01_attention_by_hand/01_attention_by_hand.ipynb", "submitted", "bob"),  # nbgrader's
    ("flat/carol_01_attention_by_hand.ipynb", "flat", "carol"),  # today's flat folder
    ("flat/01_attention_by_hand-dan.ipynb", "flat", "dan"),
    ("flat/01_attention_by_hand.ipynb", "flat", "01_attention_by_hand"),  # nothing but the lesson: the name
    ("flat/homework.ipynb", None, "homework"),  # a file named on its own
])
def test_whose_submission_is_read_from_its_folder_or_its_name(tmp_path, relative, root, student):
    """Is the student the folder below the root in the collected layout, and the file's name without the
    lesson's in a flat one?"""
    path = tmp_path / relative
    assert files.student_of(path, None if root is None else tmp_path / root, "01_attention_by_hand") == student


def test_collected_files_keep_the_folder_they_were_found_in(tmp_path):
    """Does a folder or a glob pattern give its files a root, and a file named alone none?"""
    for student in ("alice", "bob"):
        (tmp_path / "class" / student).mkdir(parents=True)
        (tmp_path / "class" / student / "01.ipynb").write_text("{}")
    found = files.collected([str(tmp_path / "class")])
    assert [(p.parent.name, root) for p, root in found] == [("alice", tmp_path / "class"), ("bob", tmp_path / "class")]
    globbed = files.collected([str(tmp_path / "class" / "*" / "01.ipynb")])
    assert {root for _, root in globbed} == {tmp_path / "class"}
    assert files.collected([str(tmp_path / "class" / "bob" / "01.ipynb")])[0][1] is None


def test_score_distribution_and_pass_rates_count_every_submission_of_a_lesson():
    assert class_report.score_distribution(CLASS) == {"01_attention_by_hand": [50.0, 0.0, 0.0, 100.0, 50.0]}
    rates = {r.function: r for r in class_report.pass_rates(CLASS)}
    assert [(r.passed, r.graded, r.unfinished) for r in rates.values()] == [(1, 5, 0), (3, 5, 1)]
    assert rates["softmax"].rate == pytest.approx(0.2)


def test_the_most_frequent_mistake_comes_first_counted_over_its_lesson_with_an_anonymous_example():
    """Is "3 of 5: you divided by the sum of the whole array" first, its example free of the student's name,
    and an unfinished function no mistake?"""
    mistakes = class_report.frequent_mistakes(CLASS, KNOWN)
    first = mistakes[0]
    assert (first.function, first.diagnosis, first.count, first.out_of) == ("softmax", DIVIDED, 3, 5)
    assert DIVIDED in first.example and not any(name in first.example for name in ("ana", "ben", "cho"))
    assert not first.example.startswith("❌")
    diagnoses = {(m.function, m.diagnosis): m.count for m in mistakes}
    assert diagnoses[("attention_scores", "you forgot to scale by 1/√D")] == 1
    assert diagnoses[("softmax", "the sandbox died while it ran")] == 1  # a status in words when no diagnosis
    assert not any(m.diagnosis == "the cell still raises NotImplementedError" for m in mistakes)


def test_an_example_that_names_nobody_is_preferred_to_one_with_a_name_cut_out():
    plain = entry("softmax", "failed", f"❌ softmax: on a (4, 4) matrix: {DIVIDED}.")
    example = class_report.frequent_mistakes([result("ana", [divided("ana")]), result("ben", [plain])], KNOWN)[0].example
    assert example == f"softmax: on a (4, 4) matrix: {DIVIDED}."
    cut = class_report.anonymised("seen by ana, in banana", {"file": "/x/ana/01.ipynb", "student": "ana"})
    assert cut == "seen by …, in banana"  # a name as a word only


@pytest.mark.parametrize("status, feedback, says", [
    ("error", "❌ softmax: on a case, your code raised IndexError: index 3 is out of bounds", "its code raised IndexError"),
    ("failed", "❌ softmax: on a case: result: expected shape (2, 3), got (3, 2).", "an answer of the wrong shape"),
    ("failed", "❌ softmax: on a case: result: values differ from the reference; at [0, 1]", "no typical mistake"),
    ("timeout", "❌ softmax: ran past the time limit", "ran past its time limit"),
])
def test_a_verdict_without_a_known_diagnosis_is_grouped_by_what_went_wrong(status, feedback, says):
    assert says in class_report.diagnosis(entry("softmax", status, feedback), KNOWN)


def test_the_course_s_own_diagnoses_are_what_is_looked_for():
    """Are the known mistakes the course's checks' own messages (so the report groups by them)?"""
    from course_lib.checks import CHECKS

    known = class_report.course_mistakes()
    assert set(known) == set(CHECKS) and any(known.values())
    assert known["softmax"] == [m.message for m in CHECKS["softmax"].mistakes]


def test_statuses_and_who_needs_a_second_look():
    assert class_report.statuses(CLASS) == {"crashed": 1, "ok": 4, "not-an-exercise": 1}
    twice = CLASS + [result("dev", [entry("softmax"), divided("dev")])]
    looks = {(x.student, x.reason.split(":")[0].split(" (")[0]) for x in class_report.second_look(twice)}
    assert looks == {("eve", "status crashed"), ("fay", "status not-an-exercise"),
                     ("dev", "handed in 2 times")}


def test_the_gradebook_has_a_row_per_student_a_column_per_lesson_and_the_best_of_two(tmp_path):
    other = result("ana", [entry("causal_mask", points=2)], lesson="02_masks_and_stability")
    again = result("dev", [divided("dev"), entry("attention_scores")])  # worse than dev's first: not counted
    header, rows = gradebook.gradebook(CLASS + [other, again])
    assert header == ["student", "01_attention_by_hand", "02_masks_and_stability", "total"]
    assert rows == [["ana", "1", "2", "3"], ["ben", "0", "", "0"], ["cho", "0", "", "0"], ["dev", "2", "", "2"],
                    ["eve", "1", "", "1"]]
    path = tmp_path / "gradebook.csv"
    gradebook.write_gradebook(CLASS + [result("=cmd", [entry("softmax")])], path)
    assert ["'=cmd", "1", "1"] in list(csv.reader(path.open()))  # a spreadsheet formula stays text


def test_the_page_is_self_contained_with_its_figures_and_the_top_mistake():
    """Is the page one file that fetches nothing (no http(s) URL, script or link), with both figures as PNG
    data URIs and "3 of 5" heading the mistakes?"""
    page = class_page.page(CLASS, KNOWN)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?://", page) and "<script" not in page and "<link" not in page
    assert page.count("src='data:image/png;base64,") == 2
    mistakes = page[page.index("The most frequent mistakes"):]
    assert mistakes.index("3 of 5: you divided by the sum of the whole array") < mistakes.index("1 of 5")
    assert "eve" in page[page.index("Who needs a second look"):] and "ana" not in page


def test_report_command_writes_the_page_and_gradebook_and_refuses_a_wrong_file(tmp_path, capsys):
    from course_lib.grading.batch import main

    grades = tmp_path / "grades.json"
    grades.write_text(json.dumps(CLASS))
    assert main(["report", str(grades)]) == 0
    assert (tmp_path / "class_report.html").read_text().count("data:image/png") == 2
    assert (tmp_path / "gradebook.csv").read_text().splitlines()[0] == "student,01_attention_by_hand,total"
    (tmp_path / "notes.json").write_text('{"answer": 42}')
    assert main(["report", str(tmp_path / "notes.json")]) == 2
    assert "is not course-grade's results" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "absent.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_a_batch_in_the_collected_layout_names_its_students_and_writes_the_class_report(tmp_path):
    """Does course-grade, on submissions/<student>/<lesson>.ipynb, put the student and lesson in its results
    and the CSV, and write the class report and the gradebook after the batch?"""
    folder = tmp_path / "submissions"
    wrong = submissions.base()
    submissions.replace_function("softmax", submissions.WRONG_SOFTMAX)(wrong)
    for student, notebook in (("alice", submissions.base()), ("bob", wrong)):
        (folder / student).mkdir(parents=True)
        nbformat.write(notebook, str(folder / student / "01_attention_by_hand.ipynb"))
    out = tmp_path / "out" / "grades.csv"
    command = [sys.executable, "-m", "course_lib.grading", str(folder), "--out", str(out), "--jobs", "2",
               *(["--trusted"] if TRUSTED else [])]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    stored = {r["student"]: r for r in json.loads((tmp_path / "out" / "grades.json").read_text())}
    assert {s: (r["lesson"], r["total"]) for s, r in stored.items()} == {"alice": ("01_attention_by_hand", 4),
                                                                          "bob": ("01_attention_by_hand", 3)}
    assert [row["student"] for row in csv.DictReader(out.open())] == ["alice", "bob"]
    assert (tmp_path / "out" / "gradebook.csv").read_text().splitlines() == [
        "student,01_attention_by_hand,total", "alice,4,4", "bob,3,3"]
    page = (tmp_path / "out" / "class_report.html").read_text()
    assert "1 of 2: you divided by the sum of the whole array" in page and "class_report.html" in done.stdout
