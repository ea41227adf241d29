"""How long does a classroom batch take, and what does the sandbox cost? Grade 30 submissions with
``course-grade --jobs 2``, sandboxed and ``--trusted``, one after the other in one run, and print both times
and their ratio.

    python benchmarks/grade_batch.py [--jobs 2] [--count 30]

The submissions are made from the course's own notebooks, six per exercise: two complete, two untouched, and
two with one function left unfinished (its cell replaced by the exercise's stub), so every kind of verdict
and every exercise is in the batch. Targets: under 3 minutes on 2 cores; the sandbox adds at most 25%.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def make_batch(folder: Path, count: int) -> list[Path]:
    made = []
    solutions = sorted((ROOT / "solutions").glob("*.ipynb"))
    for number in range(count):
        solution = solutions[number % len(solutions)]
        kind = ("complete", "untouched", "one unfinished")[(number // len(solutions)) % 3]
        if kind == "untouched":
            notebook = nbformat.read(str(ROOT / "exercises" / solution.name), as_version=4)
        else:
            notebook = nbformat.read(str(solution), as_version=4)
        if kind == "one unfinished":  # the last graded function keeps the exercise's stub
            blank = nbformat.read(str(ROOT / "exercises" / solution.name), as_version=4)
            graded = [i for i, cell in enumerate(notebook.cells)
                      if cell.get("metadata", {}).get("nbgrader", {}).get("solution") and cell.cell_type == "code"]
            notebook.cells[graded[-1]] = blank.cells[graded[-1]]
        path = folder / f"student{number:02d}_{solution.name}"
        nbformat.write(notebook, str(path))
        made.append(path)
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--count", type=int, default=30)
    args = parser.parse_args()
    times, outcomes = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "submissions").mkdir()
        make_batch(folder / "submissions", args.count)
        for mode, extra in (("sandboxed", []), ("trusted", ["--trusted"])):
            out = folder / mode / "grades.csv"
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "course_lib.grading", str(folder / "submissions"), "--out", str(out),
                            "--jobs", str(args.jobs), *extra], check=True, cwd=ROOT, stderr=subprocess.DEVNULL)
            times[mode] = time.perf_counter() - start
            outcomes[mode] = json.loads(out.with_suffix(".json").read_text())
    for mode, results in outcomes.items():
        statuses = {}
        for result in results:
            statuses[result["status"]] = statuses.get(result["status"], 0) + 1
        full = sum(r["total"] == r["max_total"] for r in results)
        print(f"{mode:>9}: {len(results)} submissions, --jobs {args.jobs}, {os.cpu_count()} CPUs: {times[mode]:.1f} s "
              f"in all, {times[mode] / len(results):.2f} s per submission; statuses {statuses}; full marks {full}; "
              f"mean score {sum(r['percent'] for r in results) / len(results):.1f}%")
    same = [(r["file"], r["total"]) for r in outcomes["sandboxed"]] == [(r["file"], r["total"]) for r in outcomes["trusted"]]
    print(f"sandboxed / trusted time: {times['sandboxed'] / times['trusted']:.2f} (target: at most 1.25); "
          f"the same scores both ways: {same}; target under 180 s in all: {times['sandboxed'] < 180}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
