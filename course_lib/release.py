"""Write the learner notebooks in ``exercises/`` from the complete ones in ``solutions/`` (the one source).

    python -m course_lib.release           # regenerate exercises/
    python -m course_lib.release --check   # exit 1 if exercises/ differs from what would be generated

The nbgrader conventions are used, so a teacher's nbgrader set-up can take ``solutions/`` as it is:

* in a code cell, the lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` become
  ``# YOUR CODE HERE`` and ``raise NotImplementedError()`` (indented like the markers);
* in a markdown cell, such a region becomes ``YOUR ANSWER HERE``;
* lines between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` are removed;
* outputs and execution counts are cleared;
* graded cells are locked in JupyterLab as nbgrader's own release locks them (its ``LockCells``): solution
  cells cannot be deleted, check cells and other locked cells can be neither deleted nor edited.

Unclosed, nested or stray markers, and solution cells without nbgrader metadata, stop the release with an
error that names the notebook and the cell.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
REGIONS = {
    "SOLUTION": ("### BEGIN SOLUTION", "### END SOLUTION"),
    "HIDDEN TESTS": ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"),
}


class ReleaseError(ValueError):
    """A solutions notebook cannot be turned into an exercise; the message says where and why."""


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read and validate a notebook, with an error that names the file when it is not one."""
    try:
        notebook = nbformat.read(str(path), as_version=4)
    except (json.JSONDecodeError, nbformat.reader.NotJSONError) as error:
        raise ReleaseError(f"{path}: not a valid notebook (the file is not notebook JSON: {error})") from None
    except Exception as error:
        raise ReleaseError(f"{path}: not a valid notebook ({type(error).__name__}: {error})") from None
    try:
        nbformat.validate(notebook)
    except nbformat.ValidationError as error:
        raise ReleaseError(f"{path}: not a valid notebook ({error.message})") from None
    return notebook


def notebook_text(notebook: nbformat.NotebookNode) -> str:
    """The canonical JSON of a notebook (what is committed), so that regenerating is byte-for-byte stable."""
    return nbformat.writes(notebook, version=4) + "\n"


def cell_name(path: Path, index: int, cell) -> str:
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    return f"{path.name}, cell {index}" + (f" (grade_id '{grade_id}')" if grade_id else "")


def replace_regions(source: str, where: str, replacement: list[str] | None, region: str) -> str:
    """Replace each BEGIN/END ``region`` of ``source`` by ``replacement`` lines (indented like the marker)."""
    begin, end = REGIONS[region]
    result: list[str] = []
    opened_at = None
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == begin:
            if opened_at is not None:
                raise ReleaseError(f"{where}: nested '{begin}' at line {number} (the one at line {opened_at} is "
                                   f"not closed yet)")
            opened_at = number
            indent = line[: len(line) - len(line.lstrip())]
            result.extend(indent + text for text in (replacement or []))
        elif stripped == end:
            if opened_at is None:
                raise ReleaseError(f"{where}: '{end}' at line {number} without a '{begin}' before it")
            opened_at = None
        elif opened_at is None:
            result.append(line)
    if opened_at is not None:
        raise ReleaseError(f"{where}: '{begin}' at line {opened_at} is never closed with '{end}'")
    return "\n".join(result)


def has_region(source: str, region: str) -> bool:
    return any(line.strip() == REGIONS[region][0] for line in source.splitlines())


def lock(cell) -> None:
    """Lock ``cell`` in JupyterLab as nbgrader's release does: a solution cannot be deleted (it is written in),
    a check cell or another locked cell can be neither deleted nor edited."""
    grading = cell.get("metadata", {}).get("nbgrader", {})
    if grading.get("solution"):
        cell.metadata["deletable"] = False
    elif grading.get("grade") or grading.get("locked"):
        cell.metadata["deletable"] = False
        cell.metadata["editable"] = False


def exercise_from_solution(solution: nbformat.NotebookNode, path: Path) -> nbformat.NotebookNode:
    """The learner version of one solutions notebook."""
    exercise = copy.deepcopy(solution)
    for index, cell in enumerate(exercise.cells):
        where = cell_name(path, index, cell)
        if has_region(cell.source, "SOLUTION"):
            grading = cell.get("metadata", {}).get("nbgrader", {})
            if not (grading.get("solution") and grading.get("grade_id")):
                raise ReleaseError(f"{where}: has a solution region but no nbgrader metadata "
                                   f"(metadata.nbgrader with solution: true and a grade_id)")
        if cell.cell_type == "code":
            cell.source = replace_regions(cell.source, where, ["# YOUR CODE HERE", "raise NotImplementedError()"],
                                          "SOLUTION")
            cell.source = replace_regions(cell.source, where, None, "HIDDEN TESTS").rstrip("\n")
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
        elif cell.cell_type == "markdown":
            cell.source = replace_regions(cell.source, where, ["YOUR ANSWER HERE"], "SOLUTION")
        lock(cell)
    exercise.metadata.pop("widgets", None)
    return exercise


def release(solutions_dir: Path = ROOT / "solutions", exercises_dir: Path = ROOT / "exercises") -> dict[Path, str]:
    """Compute every exercise notebook: a map from its path to its text. Raises ReleaseError on a bad source."""
    sources = sorted(solutions_dir.glob("*.ipynb"))
    if not sources:
        raise ReleaseError(f"no solutions notebooks found in {solutions_dir}")
    return {exercises_dir / path.name: notebook_text(exercise_from_solution(read_notebook(path), path))
            for path in sources}


def stored_outputs(path: Path) -> list[str]:
    """The cells of a notebook file that carry outputs or execution counts (the course stores notebooks clean)."""
    notebook = read_notebook(path)
    return [cell_name(path, index, cell) for index, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)]


def stale_exercises(solutions_dir: Path = ROOT / "solutions", exercises_dir: Path = ROOT / "exercises") -> list[str]:
    """Which exercise notebooks differ from what ``release`` generates (missing, changed or extra)."""
    wanted = release(solutions_dir, exercises_dir)
    problems = [f"{path.name}: {'missing' if not path.exists() else 'differs from its solutions notebook'}"
                for path, text in wanted.items()
                if not path.exists() or path.read_text(encoding="utf-8") != text]
    problems += [f"{path.name}: has no solutions notebook" for path in sorted(exercises_dir.glob("*.ipynb"))
                 if path not in wanted]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report whether exercises/ is up to date")
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    parser.add_argument("--exercises", type=Path, default=ROOT / "exercises")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = stale_exercises(args.solutions, args.exercises)
            for problem in problems:
                print(f"exercises/{problem}: run `python -m course_lib.release`", file=sys.stderr)
            return 1 if problems else 0
        notebooks = release(args.solutions, args.exercises)
    except ReleaseError as error:
        print(f"release stopped: {error}", file=sys.stderr)
        return 1
    args.exercises.mkdir(parents=True, exist_ok=True)
    for path, text in notebooks.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
