"""Grade exercise notebooks with the same checks learners run: ``course-grade`` (or ``python -m course_lib.grade``).

    course-grade SUBMISSION.ipynb                  # a table: points, verdict and feedback per graded function
    course-grade SUBMISSION.ipynb --json           # the same as one JSON object
    course-grade PATH... --out grades.csv --jobs 2 # a batch: grades.csv, grades.json, grades_feedback/*.html

How a submission is graded (the design that makes the grade trustworthy):

1. The notebook is read and validated; its outputs are cleared; the exercise is recognised by its graded cells
   (nbgrader ``grade_id``), or failing that by its file name.
2. Its code cells run top to bottom in a fresh kernel that the grader chooses (this Python, with ipykernel),
   with a per-cell timeout, a total timeout, a memory limit on the kernel process and truncated output. The
   check cells are skipped: what they print earns nothing. A cell that runs too long or kills the kernel is
   reported, skipped, and the kernel restarted, so the rest of the notebook is still graded.
3. For each graded function, the grader writes seeded cases (the learner's own seed and hidden ones) to an
   ``.npz``; the kernel calls the function on them (:mod:`course_lib.grade_kernel`) and writes back plain
   data, never pickle. Comparing and scoring happen here, in the grader's process, with the check's reference
   and diagnoses, so nothing the learner's code prints, returns as an object or patches can pass a check.
4. Calling the course's own implementation of the function being graded earns 0 points for it.

The exit status is 0 whenever grading ran, whatever the scores; 2 when the grader itself could not run.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import csv
import glob
import hashlib
import html
import io
import json
import math
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import nbformat
import numpy as np

from course_lib import grade_kernel
from course_lib.checking import Attempt, CheckResult
from course_lib.release import ROOT

SOLUTIONS = ROOT / "solutions"
GRADING_SEEDS = (0, 1001, 1002)  # seed 0 gives the cases the learner's own check cell runs; the others are hidden
MAX_RESTARTS = 4  # kernel restarts per submission after a cell or function timed out or crashed
MAX_OUTPUT_BYTES = 1_000_000  # output kept per submission; the rest is dropped (and the feedback says so)
STATUS_ORDER = ("crashed", "timeout", "memory-limit", "ok")  # a submission's status: the first that applies


class GraderError(RuntimeError):
    """The grader itself cannot run (not a problem with a submission); the message says why."""


@dataclass
class Options:
    cell_timeout: float = 30.0  # seconds per notebook cell, and per case of a graded function
    total_timeout: float = 600.0  # seconds per submission, all cells and checks together
    memory_mb: int = 3072  # address-space limit of the kernel process
    solutions: Path = SOLUTIONS


@dataclass
class Exercise:
    """One exercise notebook: its name (the file stem in solutions/) and its graded functions with points."""

    name: str
    functions: list[tuple[str, float]]

    @property
    def max_points(self) -> float:
        return sum(points for _, points in self.functions)


# ----------------------------------------------------------------------------------------------------------
# Which exercise is this?
# ----------------------------------------------------------------------------------------------------------

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
    from course_lib.checks import CHECKS
    from course_lib.release import read_notebook

    exercises = {}
    for path in sorted(Path(folder).glob("*.ipynb")):
        names = [name for name in solution_ids(read_notebook(path)) if name in CHECKS]
        if names:
            exercises[path.stem] = Exercise(path.stem, [(name, CHECKS[name].points) for name in names])
    if not exercises:
        raise GraderError(f"no exercises found in {folder}: the grader reads the graded functions from the "
                          f"solutions notebooks there.")
    return exercises


def identify(notebook, path: Path, exercises: dict[str, Exercise]) -> Exercise | None:
    """The exercise a submission is, by its graded cells; by its file name when those were all deleted."""
    present = set(solution_ids(notebook)) | {nbgrader(cell).get("grade_id", "").removeprefix("check_")
                                             for cell in notebook.cells if is_check_cell(cell)}
    overlap = {name: len(present & {f for f, _ in exercise.functions}) for name, exercise in exercises.items()}
    best = max(overlap, key=overlap.get)
    if overlap[best] > 0:
        return exercises[best]
    for name, exercise in exercises.items():
        if name in path.stem:
            return exercise
    return None


class InvalidNotebook(ValueError):
    pass


def read_submission(path: Path):
    """The submission as a validated notebook, or :class:`InvalidNotebook` saying what is wrong with the file."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidNotebook(f"{path.name} is not a notebook: it is not even text (a binary file?).") from None
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidNotebook(f"{path.name} is not valid notebook JSON ({error}). Was it truncated, or edited "
                              f"outside Jupyter? Open it in JupyterLab and save it again.") from None
    try:
        notebook = nbformat.reads(text, as_version=4)
        nbformat.validate(notebook)
    except nbformat.ValidationError as error:
        raise InvalidNotebook(f"{path.name} is JSON but not a valid notebook: {error.message}") from None
    except Exception as error:
        raise InvalidNotebook(f"{path.name} is not a valid notebook ({type(error).__name__}: {error}).") from None
    return notebook


# ----------------------------------------------------------------------------------------------------------
# A kernel with limits
# ----------------------------------------------------------------------------------------------------------

LAUNCHER = """\
import sys
limit = int(sys.argv.pop(1))
try:
    import resource  # Linux and macOS; Windows has no address-space limit, only the timeouts apply there
except ImportError:
    resource = None
if limit > 0 and resource is not None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from ipykernel import kernelapp
kernelapp.launch_new_instance()
"""

BOOTSTRAP = """\
def __course_grade_load():
    import importlib.util
    spec = importlib.util.spec_from_file_location("_course_grade_kernel", {path!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.grade_in_kernel
__course_grade = __course_grade_load()
del __course_grade_load
"""

GRADE_CALL = "__course_grade({name!r}, globals(), {others!r}, {cases!r}, {answers!r}, {limit!r})\n"


def _kernel_classes():
    """The kernel manager and notebook client used by the grader (imported late: only the grader needs them)."""
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from traitlets import Integer

    class LimitedKernelManager(AsyncKernelManager):
        """Starts this Python's ipykernel under an address-space limit, whatever kernel the notebook names."""

        memory_limit = Integer(0).tag(config=True)

        def format_kernel_cmd(self, extra_arguments=None):
            command = super().format_kernel_cmd(extra_arguments)  # [python, -m, ipykernel_launcher, -f, file]
            return [sys.executable, "-c", LAUNCHER, str(self.memory_limit), *command[command.index("-f"):]]

    class GradingClient(NotebookClient):
        """An nbclient that keeps at most MAX_OUTPUT_BYTES of output."""

        output_bytes = 0
        truncated = False

        def output(self, outs, msg, display_id, cell_index):
            self.output_bytes += len(json.dumps(msg.get("content", {}), default=str))
            if self.output_bytes > MAX_OUTPUT_BYTES:
                self.truncated = True
                return None
            return super().output(outs, msg, display_id, cell_index)

    return LimitedKernelManager, GradingClient


@dataclass
class Outcome:
    kind: str  # "ok", "error" (the cell raised), "timeout", "dead" (the kernel died)
    error: str = ""


class KernelSession:
    """One fresh kernel running a submission's cells, then the grading calls."""

    def __init__(self, notebook, workdir: Path, options: Options):
        from traitlets.config import Config

        manager, client = _kernel_classes()
        self.client = client(notebook, kernel_name="python3", kernel_manager_class=manager,
                             config=Config({manager.__name__: {"memory_limit": options.memory_mb * 2 ** 20}}),
                             allow_errors=True, interrupt_on_timeout=False, timeout=int(options.cell_timeout),
                             startup_timeout=60, resources={"metadata": {"path": str(workdir)}})
        env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1", MALLOC_ARENA_MAX="2", CUDA_VISIBLE_DEVICES="",
                   HF_HUB_OFFLINE="1", PYTHONHASHSEED="0")
        self._context = self.client.setup_kernel(env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._context.__enter__()
        except Exception as error:
            raise GraderError(f"could not start a Python kernel ({type(error).__name__}: {error}); is ipykernel "
                              f"installed in {sys.executable}?") from None

    def run(self, index: int, timeout: float) -> Outcome:
        from nbclient.exceptions import CellTimeoutError, DeadKernelError

        cell = self.client.nb.cells[index]
        self.client.timeout = max(1, math.ceil(timeout))
        try:
            self.client.execute_cell(cell, index)
        except CellTimeoutError:
            return Outcome("timeout")
        except DeadKernelError:
            return Outcome("dead")
        except RuntimeError as error:  # nbclient reports some deaths this way ("Kernel didn't respond ...")
            return Outcome("dead", str(error))
        errors = [output for output in cell.get("outputs", []) if output.get("output_type") == "error"]
        if errors:
            value = re.sub(r"\(\d+\.py, line (\d+)\)", r"(line \1 of the cell)", errors[-1].get("evalue", ""))
            return Outcome("error", f"{errors[-1].get('ename', 'Error')}: {value}"[:300])
        return Outcome("ok")

    def run_source(self, source: str, timeout: float) -> Outcome:
        self.client.nb.cells.append(nbformat.v4.new_code_cell(source))
        return self.run(len(self.client.nb.cells) - 1, timeout)

    @property
    def truncated(self) -> bool:
        return self.client.truncated

    def close(self) -> None:
        try:
            self._context.__exit__(None, None, None)
        except Exception:
            pass
        try:
            if self.client.km is not None:
                self.client.km.shutdown_kernel(now=True)
        except Exception:
            pass


# ----------------------------------------------------------------------------------------------------------
# Grading one submission
# ----------------------------------------------------------------------------------------------------------

class _Restart(Exception):
    pass


def _first_line(cell) -> str:
    lines = [line for line in cell.source.splitlines() if line.strip()]
    return (lines[0][:60] + ("…" if len(lines[0]) > 60 else "")) if lines else ""


def grade_function(name: str, others: list[str], session: KernelSession, workdir: Path, deadline: float,
                   options: Options) -> CheckResult:
    """Grade one function in the running kernel, with the course's versions of the ``others`` it may call."""
    from course_lib.checks import CHECKS

    check = CHECKS[name]
    cases = [case for seed in GRADING_SEEDS for case in check.make_cases(np.random.default_rng(seed))]
    cases_path, answers_path = workdir / f"cases_{name}.npz", workdir / f"answers_{name}.npz"
    grade_kernel.save(cases_path, [{"label": c.label, "args": c.args, "kwargs": c.kwargs} for c in cases])
    limit = min(check.time_limit, options.cell_timeout)
    source = GRADE_CALL.format(name=name, others=others, cases=str(cases_path), answers=str(answers_path),
                               limit=limit)
    outcome = session.run_source(source, min(limit * len(cases) + 10, max(1.0, deadline - time.monotonic())))
    fail = lambda status, message: CheckResult(name, False, 0, check.points, f"❌ {name}: {message}", status)
    if outcome.kind == "timeout":
        return fail("timeout", f"checking your function ran past the time limit ({limit:g} s per case) and was "
                               f"stopped. Look for an endless loop.")
    if outcome.kind == "dead":
        return fail("crashed", "the kernel died while your function ran (os._exit(), a crash in native code, or "
                               "running out of memory).")
    try:
        report = grade_kernel.load(answers_path)
    except (ValueError, KeyError, OSError):
        why = f" ({outcome.error})" if outcome.error else ""
        return fail("error", f"the grader got no answer back from your kernel{why}. Does your notebook replace "
                             f"built-in functions or modules?")
    if report.get("missing"):
        similar = report.get("similar") or []
        hint = (f" Found {', '.join(f'`{n}`' for n in similar)}: if that is it, rename it to `{name}`." if similar
                else " Was its cell deleted, or the function renamed?")
        return fail("missing", f"there is no `{name}` in your notebook: the grader looks for that exact name.{hint}")
    first = report["preflight"] or (report["attempts"] or [{"status": "returned"}])[0]
    if first["status"] == "not-implemented":
        return fail("not-implemented", "not implemented: its cell still says `raise NotImplementedError()`.")
    if report.get("preflight"):
        result = check.score([], [], Attempt(report["preflight"]["status"], message=report["preflight"]["message"]))
    else:
        attempts = [Attempt(a["status"], got=a["got"], message=a["message"], extra=a["extra"])
                    for a in report["attempts"]]
        result = check.score(cases[:len(attempts)], attempts)
    if report.get("reference_called"):
        return fail("reference-call", f"your {name} calls the course's own implementation "
                                      f"({check.implementation}), so it earns no points. Write it yourself.")
    if not report.get("watch_intact", True):
        return fail("tampered", "your code switched off the grader's call tracing (sys.setprofile), so it cannot "
                                "be graded.")
    return result


def grade_safely(path: Path | str, options: Options | None = None,
                 exercises: dict[str, Exercise] | None = None) -> dict[str, Any]:
    """:func:`grade_submission`, except that a bug in the grader costs one submission, not the whole batch."""
    try:
        return grade_submission(path, options, exercises)
    except GraderError:
        raise
    except Exception as error:  # a grader bug: report it against this file and carry on
        result = {"file": str(path), "path": _key(path), "sha256": _sha256(Path(path)), "exercise": None,
                  "total": 0, "max_total": 0, "exercises": []}
        return _finish(result, "grader-error", [f"the grader failed on this file ({type(error).__name__}: "
                                                f"{error}); please report it with the notebook."], time.monotonic())


def grade_submission(path: Path | str, options: Options | None = None,
                     exercises: dict[str, Exercise] | None = None) -> dict[str, Any]:
    """Grade one notebook file; never raises for a bad submission (only :class:`GraderError`)."""
    options = options or Options()
    path = Path(path)
    started = time.monotonic()
    result: dict[str, Any] = {"file": str(path), "path": _key(path), "sha256": _sha256(path), "exercise": None,
                              "status": "ok",
                              "total": 0, "max_total": 0, "percent": 0.0, "exercises": [], "notes": [],
                              "seconds": 0.0}
    exercises = exercises or catalogue(options.solutions)
    try:
        notebook = read_submission(path)
    except InvalidNotebook as error:
        return _finish(result, "invalid-notebook", [str(error)], started)
    exercise = identify(notebook, path, exercises)
    if exercise is None:
        return _finish(result, "not-an-exercise", [
            f"{path.name} holds none of the graded functions of the exercises ({', '.join(exercises)}). Submit "
            f"the exercise notebook itself, with its cells in place."], started)
    result["exercise"] = exercise.name
    verdicts, events, notes = _run_and_grade(notebook, exercise, options, started)
    for name, points in exercise.functions:
        verdict = verdicts[name]
        result["exercises"].append({"function": name, "points": verdict.points, "max_points": points,
                                    "status": verdict.status, "feedback": verdict.message})
    result["total"] = sum(e["points"] for e in result["exercises"])
    result["max_total"] = exercise.max_points
    status = next(s for s in STATUS_ORDER if s == "ok" or s in events)
    return _finish(result, status, notes, started)


def _run_and_grade(notebook, exercise: Exercise, options: Options, started: float):
    """Run the cells, then grade every function, restarting the kernel after a timeout or a crash."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    owner = {index: nbgrader(cell)["grade_id"] for index, cell in enumerate(notebook.cells)
             if nbgrader(cell).get("grade_id") in dict(exercise.functions) and nbgrader(cell).get("solution")}
    runnable = [index for index, cell in enumerate(notebook.cells)
                if cell.cell_type == "code" and not is_check_cell(cell) and cell.source.strip()]
    deadline = started + options.total_timeout
    verdicts: dict[str, CheckResult] = {}
    events: set[str] = set()
    notes: list[str] = []
    skipped: set[int] = set()
    cell_errors: dict[int, str] = {}
    points = dict(exercise.functions)
    fail = lambda name, status, message: CheckResult(name, False, 0, points[name], f"❌ {name}: {message}", status)
    workdir = Path(tempfile.mkdtemp(prefix="course-grade-"))
    try:
        for attempt in range(MAX_RESTARTS + 1):
            session = KernelSession(notebook, workdir, options)
            try:
                for index in runnable:
                    if index in skipped:
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    outcome = session.run(index, min(options.cell_timeout, remaining))
                    if outcome.kind == "error":
                        cell_errors[index] = outcome.error
                        if outcome.error.startswith("MemoryError"):
                            events.add("memory-limit")
                    if outcome.kind in ("timeout", "dead"):
                        skipped.add(index)
                        _cell_incident(notebook, index, owner.get(index), outcome, options, verdicts, events,
                                       notes, fail)
                        raise _Restart()
                if time.monotonic() < deadline:
                    loaded = session.run_source(BOOTSTRAP.format(path=grade_kernel.__file__), 60)
                    if loaded.kind != "ok":
                        for name in points:
                            verdicts.setdefault(name, fail(name, "error", "the grader could not run in your kernel "
                                                           f"after your cells ({loaded.error or loaded.kind})."))
                for name in points:
                    if name in verdicts:
                        continue
                    if time.monotonic() >= deadline:
                        break
                    others = [other for other in points if other != name]
                    verdict = grade_function(name, others, session, workdir, deadline, options)
                    verdicts[name] = verdict
                    if verdict.status in ("timeout", "crashed", "memory-limit"):
                        events.add(verdict.status)
                    if verdict.status in ("timeout", "crashed"):  # the kernel may be stuck or gone: restart it
                        raise _Restart()
                break
            except _Restart:
                continue
            finally:
                if session.truncated and not any("output" in note for note in notes):
                    notes.append(f"Your notebook printed more than {MAX_OUTPUT_BYTES // 1000} kB of output; the "
                                 f"rest was dropped.")
                session.close()
        for name in points:
            if name not in verdicts:
                if time.monotonic() >= deadline:
                    events.add("timeout")
                    verdicts[name] = fail(name, "timeout", f"not graded: the whole notebook ran past the total "
                                                           f"time limit of {options.total_timeout:g} s.")
                else:
                    verdicts[name] = fail(name, "crashed", "not graded: the kernel had to be restarted too often.")
        for index, error in sorted(cell_errors.items())[:5]:
            if owner.get(index) and verdicts[owner[index]].status == "missing":
                verdicts[owner[index]].message += f" Its cell raised {error}."
            notes.append(f"The cell starting `{_first_line(notebook.cells[index])}` raised {error}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return verdicts, events, notes


def _cell_incident(notebook, index, function, outcome, options, verdicts, events, notes, fail) -> None:
    """Record a cell that timed out or killed the kernel: against its function, or as a note."""
    cell = f"the cell starting `{_first_line(notebook.cells[index])}`"
    if outcome.kind == "timeout":
        events.add("timeout")
        what = f"{cell} ran for more than {options.cell_timeout:g} s and was stopped; look for an endless loop."
        status = "timeout"
    else:
        events.add("crashed")
        what = (f"the kernel died while running {cell} (os._exit(), exit(), a crash in native code, or running "
                f"out of memory).")
        status = "crashed"
    if function is not None:
        verdicts[function] = fail(function, status, what[0].upper() + what[1:] + " It was skipped.")
    else:
        notes.append(what[0].upper() + what[1:] + " The cell was skipped and the rest graded.")


def _finish(result: dict, status: str, notes: list[str], started: float) -> dict:
    result["status"] = status
    result["notes"] = list(notes)
    result["percent"] = round(100 * result["total"] / result["max_total"], 1) if result["max_total"] else 0.0
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


# ----------------------------------------------------------------------------------------------------------
# Reports: a table, CSV, JSON and HTML feedback pages
# ----------------------------------------------------------------------------------------------------------

def table(result: dict) -> str:
    """The plain-text report of one submission, as printed by ``course-grade FILE``."""
    lines = [f"{result['file']}: {result['exercise'] or '-'}  status {result['status']}"]
    rows = [(e["function"], f"{e['points']:g}/{e['max_points']:g}", e["status"], e["feedback"])
            for e in result["exercises"]]
    if rows:
        width = max(len(r[0]) for r in rows)
        lines.append(f"  {'function':<{width}}  points  verdict          feedback")
        for function, score, status, feedback in rows:
            lines.append(f"  {function:<{width}}  {score:<6}  {status:<15}  {feedback}")
    for note in result["notes"]:
        lines.append(f"  note: {note}")
    lines.append(f"  total: {result['total']:g}/{result['max_total']:g} ({result['percent']:g}%)")
    return "\n".join(lines)


def write_csv(results: list[dict], path: Path, exercises: dict[str, Exercise]) -> None:
    functions = [name for exercise in exercises.values() for name, _ in exercise.functions
                 if any(r["exercise"] == exercise.name for r in results)]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file", "exercise", *functions, "total", "max", "percent", "status", "notes"])
    for r in results:
        scored = {e["function"]: e["points"] for e in r["exercises"]}
        writer.writerow([r["file"], r["exercise"] or "", *[_number(scored[f]) if f in scored else "" for f in functions],
                         _number(r["total"]), _number(r["max_total"]), r["percent"], r["status"],
                         " | ".join(r["notes"])])  # cell errors, skipped cells, dropped output: worth a look
    _write_atomic(path, buffer.getvalue())


def _number(value) -> str:
    return f"{value:g}"


def feedback_page(result: dict) -> str:
    """A self-contained HTML page a teacher can hand back: total, then each function's verdict and feedback."""
    e = lambda text: re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))  # `code` as in the notebook
    rows = "".join(
        f"<tr class='{'pass' if x['status'] == 'passed' else 'fail'}'><td><code>{e(x['function'])}</code></td>"
        f"<td>{x['points']:g} / {x['max_points']:g}</td><td>{e(x['status'])}</td><td>{e(x['feedback'])}</td></tr>"
        for x in result["exercises"])
    notes = "".join(f"<li>{e(note)}</li>" for note in result["notes"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Feedback: {e(result['file'])}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}}
table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #ccc;padding:.4em;vertical-align:top;text-align:left}}
tr.pass td:nth-child(3){{color:#1a7f37}}tr.fail td:nth-child(3){{color:#b42318}}</style></head>
<body><h1>Feedback on {e(result['file'])}</h1>
<p>Exercise: <b>{e(result['exercise'] or 'not recognised')}</b> · status: <b>{e(result['status'])}</b> ·
score: <b>{result['total']:g} / {result['max_total']:g}</b> ({result['percent']:g}%)</p>
<table><tr><th>function</th><th>points</th><th>verdict</th><th>feedback</th></tr>{rows}</table>
{f'<h2>Notes</h2><ul>{notes}</ul>' if notes else ''}
<p><small>Graded by course-grade with the same checks as the notebook's check cells, on the cases you saw and on
hidden ones. Run the check cells in your notebook to see the same messages while you work.</small></p>
</body></html>
"""


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


# ----------------------------------------------------------------------------------------------------------
# Batches and the command line
# ----------------------------------------------------------------------------------------------------------

def collect(paths: Iterable[str]) -> list[Path]:
    """The notebook files named by ``paths``: files, folders (searched recursively) and glob patterns."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        elif path.is_file():
            found.append(path)
        elif any(char in given for char in "*?["):
            matches = sorted(Path(p) for p in glob.glob(given, recursive=True) if Path(p).is_file())
            if not matches:
                raise GraderError(f"no files match {given!r}.")
            found += matches
        else:
            raise GraderError(f"no such file or folder: {given}")
    unique = list(dict.fromkeys(found))
    if not unique:
        raise GraderError(f"no notebooks (*.ipynb) found in {', '.join(paths)}.")
    return unique


def _outputs(out: Path) -> tuple[Path, Path]:
    """Where a batch writes its feedback: grades.json and grades_feedback/ beside grades.csv."""
    return out.with_suffix(".json"), out.with_name(out.stem + "_feedback")


def _key(path: Path | str) -> str:
    """A submission's identity across runs: its absolute path, however it was typed."""
    return str(Path(path).resolve())


def page_names(results: dict[str, dict]) -> dict[str, str]:
    """One feedback page name per submission: its path below the folder common to all, made file-name safe;
    two names that would collide (``bob/03.ipynb`` and ``bob_03.ipynb``) get a short hash of the path."""
    paths = sorted(results)
    root = os.path.commonpath([str(Path(p).parent) for p in paths]) if paths else ""
    names = {}
    for path in paths:
        relative = os.path.relpath(path, root) if root else Path(path).name
        names[path] = "".join(c if c.isalnum() or c in "-_." else "_" for c in relative).removesuffix(".ipynb")
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    return {path: (name if counts[name] == 1 else f"{name}-{hashlib.sha1(path.encode()).hexdigest()[:6]}") + ".html"
            for path, name in names.items()}


def grade_batch(paths: list[Path], out: Path, options: Options, jobs: int = 1, force: bool = False,
                progress=None) -> list[dict]:
    """Grade many submissions, writing CSV, JSON and HTML after each one; skip those already graded.

    Submissions are known by their absolute path, so a rerun from another folder or with the folder typed
    differently still skips what is graded; files that no longer exist drop out of the reports.
    """
    exercises = catalogue(options.solutions)
    json_path, pages = _outputs(out)
    try:
        pages.mkdir(parents=True, exist_ok=True)
        previous = json.loads(json_path.read_text(encoding="utf-8")) if json_path.exists() else []
    except (OSError, json.JSONDecodeError) as error:
        raise GraderError(f"cannot use the output next to {out}: {error}") from None
    results = {r.get("path") or _key(r["file"]): r for r in previous if isinstance(r, dict) and "file" in r}
    results = {key: r for key, r in results.items() if Path(key).exists()}  # deleted or renamed files drop out
    todo = [p for p in paths if force or _key(p) not in results or results[_key(p)].get("sha256") != _sha256(p)]
    skipped = len(paths) - len(todo)
    progress = progress or Progress(len(todo), skipped)
    names = page_names({**results, **{_key(p): {} for p in paths}})

    def write_reports() -> list[dict]:
        ordered = [results[k] for k in sorted(results)]
        write_csv(ordered, out, exercises)
        _write_atomic(json_path, json.dumps(ordered, indent=1, ensure_ascii=False))
        return ordered

    def record(result: dict) -> None:
        results[result["path"]] = result
        result["feedback_page"] = str(pages / names[result["path"]])
        write_reports()
        _write_atomic(pages / names[result["path"]], feedback_page(result))
        progress.update(result)

    if jobs <= 1:
        for path in todo:
            record(grade_safely(path, options, exercises))
    else:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [pool.submit(grade_safely, path, options) for path in todo]
            for future in concurrent.futures.as_completed(futures):
                record(future.result())
    progress.close()
    write_reports()  # also when nothing was regraded (e.g. after the report files were deleted)
    return [results[_key(p)] for p in paths if _key(p) in results]


class Progress:
    """A progress bar on stderr (one line per submission when stderr is not a terminal)."""

    def __init__(self, total: int, skipped: int = 0, stream=None):
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self.started = time.monotonic()
        if skipped:
            self.stream.write(f"skipping {skipped} already graded (unchanged) submission(s); --force regrades them\n")

    def update(self, result: dict) -> None:
        self.done += 1
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"{time.monotonic() - self.started:5.0f}s  {result['file']}: {result['status']} "
                f"{result['total']:g}/{result['max_total']:g}")
        if self.stream.isatty():
            self.stream.write("\r" + line[:120].ljust(120))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.stream.isatty() and self.done:
            self.stream.write("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course-grade", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="notebooks, folders of notebooks, or glob patterns")
    parser.add_argument("--out", type=Path, help="write a CSV here, with a .json and a _feedback/ folder beside it")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    parser.add_argument("--force", action="store_true", help="regrade submissions already in the output")
    parser.add_argument("--timeout", type=float, default=Options.cell_timeout, help="seconds per cell (default 30)")
    parser.add_argument("--total-timeout", type=float, default=Options.total_timeout,
                        help="seconds per submission (default 600)")
    parser.add_argument("--memory-mb", type=int, default=Options.memory_mb,
                        help="memory limit of each kernel, MiB (default 3072)")
    parser.add_argument("--solutions", type=Path, default=SOLUTIONS, help="the solutions notebooks (default: the course's)")
    args = parser.parse_args(argv)
    options = Options(args.timeout, args.total_timeout, args.memory_mb, args.solutions)
    try:
        if args.jobs < 1:
            raise GraderError(f"--jobs must be at least 1, got {args.jobs}.")
        paths = collect(args.paths)
        if args.out is not None:
            results = grade_batch(paths, args.out, options, jobs=args.jobs, force=args.force)
            summary = _summary(results)
            print(f"graded {len(results)} submission(s): {summary}. Wrote {args.out}, "
                  f"{_outputs(args.out)[0]} and {_outputs(args.out)[1]}/")
            return 0
        exercises = catalogue(options.solutions)
        results = [grade_safely(path, options, exercises) for path in paths]
    except GraderError as error:
        print(f"course-grade: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=1, ensure_ascii=False))
    else:
        print("\n\n".join(table(result) for result in results))
    return 0


def _summary(results: list[dict]) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


if __name__ == "__main__":
    sys.exit(main())
