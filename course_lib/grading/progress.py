"""The learner's side of grading: how do my exercises stand before I hand them in?

``python3 course.py progress`` (or ``python -m course_lib.grading.progress [FOLDER or NOTEBOOK ...]``) grades
the learner's own ``exercises/`` with the grader's own judging (:mod:`.submission`): the same checks, and the
hidden cases too. It is their own code, so it runs in trusted mode, without the sandbox (nothing to install).
It prints a table of every graded function and a bar per lesson, and writes nothing.
Tests: tests/test_progress.py.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import sys
from pathlib import Path

from course_lib.grading import files
from course_lib.grading.context import Context, Options
from course_lib.grading.judging import GraderError
from course_lib.grading.submission import grade_safely
from course_lib.release import ROOT

EXERCISES = ROOT / "exercises"
MARKS = {"passed": "✓", "not-implemented": "·"}  # anything else is a ✗ with its status


def grade_own(paths: list[Path], options: Options, jobs: int = 2, say=None) -> list[dict]:
    """Grade the learner's notebooks in trusted mode, in the order given; ``say`` hears of each as it is done."""
    context = Context(options)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
            futures = {pool.submit(grade_safely, path, context): path for path in paths}
            for future in concurrent.futures.as_completed(futures):
                if say is not None:
                    say(future.result())
            return [future.result() for future in futures]  # in the order given
    finally:
        context.close()


def table(results: list[dict]) -> str:
    """One line per graded function: lesson, function, points, and a mark (✓ passed, · not started, ✗ status)."""
    rows = [(r["exercise"] or Path(r["file"]).name, e["function"], f"{e['points']:g}/{e['max_points']:g}",
             MARKS.get(e["status"], f"✗ {e['status']}")) for r in results for e in r["exercises"]]
    rows += [(Path(r["file"]).name, "-", "-", f"✗ {r['status']}") for r in results if not r["exercises"]]
    widths = [max(len(row[i]) for row in rows + [("lesson", "function", "points", "")]) for i in range(3)]
    lines = [f"{'lesson':<{widths[0]}}  {'function':<{widths[1]}}  {'points':<{widths[2]}}  verdict"]
    lines += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}" for a, b, c, d in rows]
    return "\n".join(lines)


def bar_chart(results: list[dict], width: int = 24) -> str:
    """A text bar per lesson, filled in proportion to the points scored, and the total."""
    graded = [r for r in results if r["exercise"]]
    if not graded:
        return "no exercise notebooks were graded"
    name = max(len(r["exercise"]) for r in graded)
    lines = []
    for r in graded:
        filled = round(width * r["total"] / r["max_total"]) if r["max_total"] else 0
        lines.append(f"{r['exercise']:<{name}}  {'█' * filled}{'░' * (width - filled)}  "
                     f"{r['total']:g}/{r['max_total']:g}")
    total, top = sum(r["total"] for r in graded), sum(r["max_total"] for r in graded)
    lines.append(f"{'all':<{name}}  {total:g}/{top:g} points ({100 * total / top:.0f}%)" if top else "")
    return "\n".join(lines)


def problems(results: list[dict]) -> list[str]:
    """What to fix first: each function that was tried and failed, with its check's message."""
    return [e["feedback"] for r in results for e in r["exercises"] if e["status"] not in MARKS] + \
           [f"{Path(r['file']).name}: {r['status']}: {' '.join(r['notes'])[:300]}" for r in results
            if not r["exercises"] and r["status"] != "ok"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course.py progress", description="Grade your own exercises/ with "
                                     "the grader's checks (your own code: run without a sandbox) and show "
                                     "what passes, before you hand in.")
    parser.add_argument("paths", nargs="*", default=[str(EXERCISES)],
                        help="exercise notebooks or folders (default: the course's exercises/)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks graded at once (default 2)")
    parser.add_argument("--timeout", type=float, default=Options.cell_timeout, help="seconds per cell (default 30)")
    args = parser.parse_args(argv)
    try:
        if args.jobs < 1:
            raise GraderError(f"--jobs must be at least 1, got {args.jobs}.")
        paths = files.collect(args.paths)
        say = lambda r: print(f"  graded {Path(r['file']).name}: {r['total']:g}/{r['max_total']:g}",
                              file=sys.stderr, flush=True)
        print(f"Grading {len(paths)} notebook(s) with the grader's checks, hidden cases included ...",
              file=sys.stderr, flush=True)
        results = grade_own(paths, Options(cell_timeout=args.timeout, trusted=True), args.jobs, say)
    except GraderError as error:
        print(f"progress: error: {error}", file=sys.stderr)
        return 2
    print(table(results))
    print("(✓ passed, · not started, ✗ tried and not passed: see below)\n")
    print(bar_chart(results))
    failing = problems(results)
    if failing:
        print("\nTo fix:")
        print("\n".join(f"  {message}" for message in failing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
