"""Where the course's files are, and how to load the functions a notebook defines: shared by the tests.

A module of its own, not conftest.py: tests/browser has a conftest.py too, and ``from conftest import`` would
get whichever conftest was imported last.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIRS = ("notebooks", "solutions", "exercises")


def all_notebooks() -> list[Path]:
    return sorted(path for folder in NOTEBOOK_DIRS for path in (ROOT / folder).glob("*.ipynb"))


def grading(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def notebook_namespace(path: Path) -> dict:
    """Execute a notebook's code cells, except the graded check cells, and return the names they define.

    This is how the tests get hold of the functions a solutions or exercise notebook defines.
    """
    notebook = nbformat.read(str(path), as_version=4)
    namespace: dict = {"__name__": f"notebook_{path.stem}"}
    for cell in notebook.cells:
        if cell.cell_type == "code" and not grading(cell).get("grade"):
            exec(compile(cell.source, f"<{path.name}>", "exec"), namespace)
    return namespace


def graded_functions(folder: str) -> dict:
    """{graded name: what the notebook in ``folder`` that grades it defines under that name}."""
    found = {}
    for path in sorted((ROOT / folder).glob("*.ipynb")):
        notebook = nbformat.read(str(path), as_version=4)
        names = [grading(c)["grade_id"].removeprefix("check_") for c in notebook.cells
                 if c.cell_type == "code" and grading(c).get("grade")]
        if names:
            namespace = notebook_namespace(path)
            found.update({name: namespace.get(name) for name in names})
    return found
