"""The gradebook: one row per student, one column per lesson, the points each scored, for import into an LMS.

Read from the grader's results (grades.json): a student is known by their folder in the collected layout
(``submissions/<student>/<lesson>.ipynb``) or by their file's name (:func:`.files.student_of`). When a student
handed in a lesson twice, the better score counts (the class report lists both for a second look).
Tests: tests/test_class_report.py.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from course_lib.grading.reports import spreadsheet_safe, write_atomic


def graded(results: list[dict]) -> list[dict]:
    """The results that are an exercise's (a file that is not one has no lesson to score)."""
    return [r for r in results if r.get("exercise")]


def best_scores(results: list[dict]) -> dict[str, dict[str, dict]]:
    """student -> lesson -> the best of that student's results for that lesson."""
    best: dict[str, dict[str, dict]] = {}
    for result in graded(results):
        lessons = best.setdefault(result.get("student") or result["file"], {})
        held = lessons.get(result["exercise"])
        if held is None or result["total"] > held["total"]:
            lessons[result["exercise"]] = result
    return best


def gradebook(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The header (student, each lesson in course order, total) and one row per student, by name: a lesson's
    cell is the points scored, empty when nothing was handed in for it."""
    best = best_scores(results)
    lessons = sorted({lesson for by_lesson in best.values() for lesson in by_lesson})
    rows = []
    for student in sorted(best):
        scores = [best[student].get(lesson) for lesson in lessons]
        total = sum(r["total"] for r in scores if r is not None)
        rows.append([student, *("" if r is None else f"{r['total']:g}" for r in scores), f"{total:g}"])
    return ["student", *lessons, "total"], rows


def write_gradebook(results: list[dict], path: Path) -> None:
    """Write the gradebook CSV: the header, then a row per student (what each lesson is out of is in the class
    report; an LMS maps columns to assignments by the header)."""
    header, rows = gradebook(results)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([spreadsheet_safe(cell) for cell in header])
    for row in rows:
        writer.writerow([spreadsheet_safe(cell) for cell in row])
    write_atomic(path, buffer.getvalue())
