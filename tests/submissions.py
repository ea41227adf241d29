"""Submissions for testing the grader: good ones, one with a single wrong function, and a set of bad ones,
each made from a solutions notebook by one edit, with the status the grader must give it.

Used by tests/test_grade.py and by benchmarks/grade_batch.py.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "solutions" / "01_attention_by_hand.ipynb"  # numpy only: quick to grade
FUNCTIONS = {"softmax": 1, "attention_scores": 1, "scaled_dot_product_attention": 2}


@dataclass
class Expected:
    """What the grader must say about a submission: its status, and the status of some of its functions."""

    status: str
    functions: dict[str, str] = field(default_factory=dict)  # function -> its status (others: "passed")
    says: str = ""  # a phrase that must appear in the feedback or notes


def base() -> nbformat.NotebookNode:
    return nbformat.read(str(BASE), as_version=4)


def solution_cell(notebook, name: str):
    return next(cell for cell in notebook.cells if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == name)


def replace_function(name: str, source: str):
    def edit(notebook):
        solution_cell(notebook, name).source = source
    return edit


def add_cell(source: str, position: int = 2):
    def edit(notebook):
        notebook.cells.insert(position, nbformat.v4.new_code_cell(source))
    return edit


def delete_function(name: str):
    def edit(notebook):
        notebook.cells.remove(solution_cell(notebook, name))
    return edit


def edit_check_cells(source: str):
    def edit(notebook):
        for cell in notebook.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution") and cell.cell_type == "code":
                cell.source = source
    return edit


WRONG_SOFTMAX = "import numpy as np\ndef softmax(x, axis=-1):\n    return np.exp(x) / np.exp(x).sum()\n"

# name -> (edit of the base notebook, or raw bytes for a file that is not a notebook; expected verdict)
BAD = {
    "invalid_json": (b'{"cells": [{"cell_type": "code", "source": "def softmax(x', Expected("invalid-notebook", says="not valid notebook JSON")),
    "not_a_notebook": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", Expected("invalid-notebook", says="not a notebook")),
    "json_not_a_notebook": (b'{"answer": 42}', Expected("invalid-notebook", says="not a valid notebook")),
    "lesson_not_exercise": (ROOT / "notebooks" / "01_attention_by_hand.ipynb", Expected("not-an-exercise", says="none of the graded functions")),
    "infinite_loop": (replace_function("softmax", "def softmax(x, axis=-1):\n    while True:\n        pass\n"),
                      Expected("timeout", {"softmax": "timeout"}, says="endless loop")),
    "infinite_loop_in_a_cell": (add_cell("while True:\n    try:\n        pass\n    except KeyboardInterrupt:\n        pass\n"),
                                Expected("timeout", says="was skipped")),
    # 1 GiB at a time, never written to: it hits the kernel's limit at once, however busy the machine is
    "memory_bomb": (add_cell("import numpy as np\nhoard = []\nwhile True:\n    hoard.append(np.empty(2**27))\n"),
                    Expected("memory-limit", says="MemoryError")),
    "os_exit": (replace_function("attention_scores", "import os\ndef attention_scores(queries, keys):\n    os._exit(1)\n"),
                Expected("crashed", {"attention_scores": "crashed"}, says="kernel died")),
    "os_exit_in_a_cell": (add_cell("import os\nos._exit(1)\n", position=3),
                          Expected("crashed", says="kernel died")),
    "sys_exit": (replace_function("softmax", "import sys\ndef softmax(x, axis=-1):\n    sys.exit()\n"),
                 Expected("ok", {"softmax": "error"}, says="SystemExit")),
    "function_deleted": (delete_function("attention_scores"), Expected("ok", {"attention_scores": "missing"}, says="renamed")),
    "function_renamed": (replace_function("softmax", "import numpy as np\ndef my_softmax(x, axis=-1):\n    e = np.exp(x - x.max(axis=axis, keepdims=True))\n    return e / e.sum(axis=axis, keepdims=True)\n"),
                         Expected("ok", {"softmax": "missing"}, says="Found `my_softmax`: if that is it, rename it to `softmax`")),
    "always_equal": (replace_function("softmax", "class Anything:\n    def __eq__(self, other):\n        return True\n    __array_priority__ = 1000\ndef softmax(x, axis=-1):\n    return Anything()\n"),
                     Expected("ok", {"softmax": "failed"}, says="Anything")),
    "patched_checks": (lambda nb: (replace_function("softmax", WRONG_SOFTMAX)(nb), add_cell(
        "from course_lib import checks, checking\n"
        "checking.close = lambda *args, **kwargs: True\n"
        "for check in checks.CHECKS.values():\n"
        "    check.judge = lambda *args, **kwargs: None\n"
        "    check.mistakes = ()\n", position=3)(nb)),
        Expected("ok", {"softmax": "failed"})),
    "overridden_showtraceback": (lambda nb: (replace_function("softmax", "def softmax(x, axis=-1):\n    return x.undefined_attribute\n")(nb),
                                             add_cell("get_ipython().showtraceback = lambda *args, **kwargs: None\n")(nb)),
                                 Expected("ok", {"softmax": "error"}, says="AttributeError")),
    "edited_check_cells": (lambda nb: (replace_function("softmax", WRONG_SOFTMAX)(nb),
                                       edit_check_cells("print('✅ passed (10/10 points)')\n")(nb)),
                           Expected("ok", {"softmax": "failed"})),
    "megabytes_of_output": (add_cell("print('x' * 5_000_000)\nfor i in range(2000):\n    print(i, 'y' * 1000)\n"),
                            Expected("ok", says="output")),
    "calls_the_reference": (replace_function("softmax", "from course_lib.numpy_attention import softmax as course_softmax\n"
                                                        "def softmax(x, axis=-1):\n    return course_softmax(x, axis=axis)\n"),
                            Expected("ok", {"softmax": "not-available"}, says="not available while grading")),
    "calls_the_reference_through_its_module": (replace_function("scaled_dot_product_attention",
                                              "import course_lib.numpy_attention as hidden\n"
                                              "scaled_dot_product_attention = lambda *a, **k: hidden.scaled_dot_product_attention(*a, **k)\n"),
                             Expected("ok", {"scaled_dot_product_attention": "not-available"})),
}


def write(folder: Path, name: str, content) -> Path:
    path = folder / f"{name}.ipynb"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, Path):
        shutil.copy(content, path)
    else:
        notebook = base()
        content(notebook)
        nbformat.write(notebook, str(path))
    return path


def make_bad(folder: Path) -> dict[Path, Expected]:
    """Write every bad submission into ``folder``; return each file with its expected verdict."""
    folder.mkdir(parents=True, exist_ok=True)
    return {write(folder, name, content): expected for name, (content, expected) in BAD.items()}


def make_one_wrong(folder: Path) -> Path:
    """Solutions 01 with only softmax wrong (it forgets the axis): must lose exactly softmax's point."""
    folder.mkdir(parents=True, exist_ok=True)
    return write(folder, "one_wrong", replace_function("softmax", WRONG_SOFTMAX))
