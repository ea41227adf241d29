"""Judging, in the grader's own process: what the exercises are, which cases each function gets (with seeds
that are secret for each batch), what is lent and what withheld, and the verdict on each function from the
plain data its sandbox sent back, with the same :class:`~course_lib.checking.Check` the learner's check cell uses.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from course_lib.checking import ATTEMPT_STATUSES, Attempt, Case, CheckResult, ErrorInfo, library_message
from course_lib.grading import sources as source_analysis
from course_lib.release import ROOT

SOLUTIONS = ROOT / "solutions"
HIDDEN_CASES = 2  # seeds per function besides seed 0, whose cases the learner's own check cell runs


class GraderError(RuntimeError):
    """The grader itself cannot run (not a problem with a submission); the message says why."""


@dataclass
class Exercise:
    """One exercise: its name (the file stem in solutions/), its graded functions in notebook order with their
    points, and, from the solutions notebook, each function's solution cell and the notebook's imports (what
    the grader lends)."""

    name: str
    functions: list[tuple[str, float]]
    solutions: dict[str, str] = field(default_factory=dict)
    imports: str = ""

    @property
    def max_points(self) -> float:
        return sum(points for _, points in self.functions)

    def withheld(self) -> set[str]:
        """The course code absent from this exercise's sandbox: whatever does a graded function's job."""
        from course_lib.checks import CHECKS

        names = set()
        for function, _ in self.functions:
            check = CHECKS[function]
            names |= {check.implementation, *check.withholds} - {""}
        return names

    def earlier(self, function: str) -> list[str]:
        """The graded functions before ``function`` in the notebook: the ones lent while it is graded."""
        names = [name for name, _ in self.functions]
        return names[:names.index(function)]

    def lent_source(self, function: str) -> str:
        """The code that lends ``function`` the exercise's earlier graded functions: the solutions notebook's
        imports and their solution cells. Nothing later is lent, so nothing lent can help a function that is
        graded after it; and a lent function does exactly what the exercise specifies (its signature)."""
        earlier = self.earlier(function)
        if not earlier:
            return ""
        cells = "\n\n".join(self.solutions[name] for name in earlier)
        return f"{self.imports}\n\n{cells}\n\n__lent__ = {earlier!r}\n"


def nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_check_cell(cell) -> bool:
    """An autograded test cell (nbgrader ``grade`` without ``solution``): in our notebooks, a check call."""
    meta = nbgrader(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def solution_ids(notebook) -> list[str]:
    """The grade_ids of a notebook's code solution cells, in order: the names of its graded functions."""
    return [nbgrader(cell)["grade_id"] for cell in notebook.cells
            if cell.get("cell_type") == "code" and nbgrader(cell).get("solution") and nbgrader(cell).get("grade_id")]


def catalogue(folder: Path = SOLUTIONS) -> dict[str, Exercise]:
    """Every exercise, read from the solutions notebooks (the one source), with each check's points."""
    import ast

    from course_lib.checks import CHECKS
    from course_lib.release import read_notebook

    exercises = {}
    for path in sorted(Path(folder).glob("*.ipynb")):
        notebook = read_notebook(path)
        names = [name for name in solution_ids(notebook) if name in CHECKS]
        if not names:
            continue
        solutions = {nbgrader(c)["grade_id"]: c.source for c in notebook.cells
                     if c.cell_type == "code" and nbgrader(c).get("grade_id") in names and nbgrader(c).get("solution")}
        imports = []
        for cell in notebook.cells:
            if cell.cell_type != "code" or is_check_cell(cell):
                continue
            try:
                tree = source_analysis.parse(source_analysis.python_of(cell.source))
            except SyntaxError:
                continue
            imports += [ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
                        and not any("checks" in (a.name or "") for a in node.names)]
        exercises[path.stem] = Exercise(path.stem, [(name, CHECKS[name].points) for name in names], solutions,
                                        "\n".join(dict.fromkeys(imports)))
    if not exercises:
        raise GraderError(f"no exercises found in {folder}: the grader reads the graded functions from the "
                          f"solutions notebooks there.")
    return exercises


def identify(notebook, path: Path, exercises: dict[str, Exercise], defined: set[str]) -> tuple[Exercise | None, str]:
    """The exercise a submission is: by its graded cells; else by the functions it defines (a notebook rebuilt
    without its metadata); else by its file name. Also a note when it was not recognised by its cells."""
    present = set(solution_ids(notebook)) | {nbgrader(cell).get("grade_id", "").removeprefix("check_")
                                             for cell in notebook.cells if is_check_cell(cell)}
    for names, note in ((present, ""), (defined, "recognised by its functions: its cells lost their nbgrader "
                                                 "metadata (rebuilt, or copied into a new notebook?).")):
        overlap = {name: len(names & {f for f, _ in exercise.functions}) for name, exercise in exercises.items()}
        best = max(overlap, key=overlap.get)
        if overlap[best] > 0:
            return exercises[best], note
    for name, exercise in exercises.items():
        if name in path.stem:
            return exercise, ""
    return None, ""


class Seeds:
    """The seeds of a batch: 0 (the cases the learner's check cell runs) and hidden ones derived from a secret,
    fresh for each batch unless the teacher gives one, and never in the source."""

    def __init__(self, secret: str | None = None):
        self.secret = (secret or secrets.token_hex(16)).encode()

    def for_function(self, name: str) -> list[int]:
        hidden = [int.from_bytes(hmac.new(self.secret, f"{name}/{k}".encode(), hashlib.sha256).digest()[:4], "big")
                  for k in range(HIDDEN_CASES)]
        return [0, *hidden]

    def generator(self, name: str) -> np.random.Generator:
        """A generator for a function's secret long case (its memory probe)."""
        return np.random.default_rng(self.for_function(name + "/probe")[1])


def cases_for(check, seeds: Seeds) -> list[Case]:
    return [case for seed in seeds.for_function(check.name) for case in check.make_cases(np.random.default_rng(seed))]


def fail(name: str, points: float, status: str, message: str) -> CheckResult:
    return CheckResult(name, False, 0, points, f"❌ {name}: {message}", status)


def verdict(check, cases: list[Case], report: dict) -> CheckResult:
    """The verdict on one function from its sandbox's report (plain data), judged as the check cell judges."""
    name = check.name
    if report.get("missing"):
        similar = [str(n) for n in report.get("similar") or []][:3]
        hint = (f" Found {', '.join(f'`{n}`' for n in similar)}: if that is it, rename it to `{name}`." if similar
                else " Was its cell deleted, or the function renamed?")
        return fail(name, check.points, "missing", f"there is no `{name}` in your notebook: the grader looks for "
                                                   f"that exact name.{hint}")
    rows = [report["preflight"]] if report.get("preflight") else list(report.get("attempts") or [])
    attempts = [_attempt(row) for row in rows]
    withheld = next((a for a in attempts if a.error is not None and "NotAvailableWhileGrading" in a.error.types), None)
    if withheld is not None:
        return fail(name, check.points, "not-available", f"your {name} calls the course's own code: "
                                                         f"{withheld.error.message}")
    if attempts and attempts[0].status == "not-implemented":
        return fail(name, check.points, "not-implemented", "not implemented: its cell still says "
                                                           "`raise NotImplementedError()`.")
    if report.get("preflight"):
        return check.score([], [], attempts[0])
    return check.score(cases[:len(attempts)], attempts)


def _attempt(row: dict) -> Attempt:
    error = row.get("error")
    info = None if not error else ErrorInfo(tuple(str(t) for t in error.get("types", ())), str(error.get("message", "")),
                                            str(error.get("line", "")))
    gradients = row.get("gradients")
    status = str(row.get("status", "error"))
    if status not in ATTEMPT_STATUSES:  # the sandbox's word is data: a status no worker sends was forged
        status, row = "incomplete", {"message": "an answer came back in a form the grader never asked for, so "
                                                "nothing can be credited."}
    return Attempt(status, got=row.get("got"), message=str(row.get("message", ""))[:2000],
                   error=info, gradients=gradients if isinstance(gradients, dict) else None)


def source_verdict(check, source: source_analysis.Source, lent: set[str] = frozenset()) -> CheckResult | None:
    """A verdict from the submitted source alone: a library function that does the job, or code whose calls
    cannot be read, in the function's closure (``lent`` functions are the grader's). None when it is fine."""
    closure = source.closure(check.name, lent)
    course = {b.name for b in source.bindings if b.kind == "import" and b.module.startswith("course_lib")}
    used = source_analysis.library_uses(closure, check.library, course)
    if used:
        return fail(check.name, check.points, "library-call", library_message(check.name, used))
    dynamic = source_analysis.dynamic_code(closure)
    if dynamic:
        return fail(check.name, check.points, "unverifiable",
                    f"your {check.name} does what the grader cannot verify ({', '.join(dynamic[:3])}): code built at "
                    f"run time, a look into the grader's own frames, or work in another process, so the grader "
                    f"cannot tell what it calls or how much memory it takes. Write plain calls instead.")
    return None
