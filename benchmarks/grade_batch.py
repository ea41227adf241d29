"""How long does a classroom batch take? Grade 30 submissions with ``course-grade --jobs 2`` and print the time.

    python benchmarks/grade_batch.py [--jobs 2] [--count 30]

The submissions are made from the course's own notebooks, six per exercise: two complete, two untouched, and
two with one function left unfinished (its cell replaced by the exercise's stub), so every kind of verdict
and every exercise is in the batch. Target: under 3 minutes on 2 cores.
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
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        make_batch(folder, args.count)
        out = folder / "grades.csv"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "course_lib.grade", str(folder), "--out", str(out),
                        "--jobs", str(args.jobs)], check=True, cwd=ROOT, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        results = json.loads(out.with_suffix(".json").read_text())
    statuses = {}
    for result in results:
        statuses[result["status"]] = statuses.get(result["status"], 0) + 1
    full = sum(r["total"] == r["max_total"] for r in results)
    print(f"{len(results)} submissions, --jobs {args.jobs}, {os.cpu_count()} CPUs: {seconds:.1f} s in all, "
          f"{seconds / len(results):.2f} s per submission (target: under 180 s in all)")
    print(f"statuses: {statuses}; full marks: {full}; mean score "
          f"{sum(r['percent'] for r in results) / len(results):.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
