"""Grading one submission, and batches: the steps in order, and ``course-grade``'s command line.

1. The file is read safely (:mod:`.files`) and the exercise recognised (:mod:`.judging`).
2. The source is read (:mod:`.sources`): a graded function that uses a library function doing its job, or code
   the grader cannot read, is judged from the source alone.
3. A fresh sandbox (:mod:`.sandbox`, :mod:`.session`) sees a course library without the code that does the
   exercise's job (:mod:`.view`); the notebook's code cells run there (check cells are skipped), then each
   graded function is called on cases with secret seeds, with the exercise's earlier graded functions lent.
   A cell or call that runs too long or kills the sandbox is reported, and a fresh sandbox grades the rest.
4. What came back, plain data, is judged here with the learner's own checks (:mod:`.judging`), and the
   reports are written (:mod:`.reports`).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course_lib import calling
from course_lib.checking import CheckResult, require_status
from course_lib.grading import files, judging, protocol, reports, sandbox
from course_lib.grading import sources as source_analysis
from course_lib.grading import view as course_view
from course_lib.grading.judging import GraderError
from course_lib.grading.session import MAX_OUTPUT_BYTES, Ended, Session

MAX_RESTARTS = 4  # fresh sandboxes per submission after a cell or function timed out or crashed
CASE_MARGIN = 5.0  # seconds, on top of a case's time limit, for the request around it
STATUS_ORDER = ("crashed", "timeout", "memory-limit", "ok")  # a submission's status: the first that applies


@dataclass
class Options:
    cell_timeout: float = 30.0  # seconds per notebook cell, and per case of a graded function
    total_timeout: float = 600.0  # seconds per submission, all cells and checks together
    memory_mb: int = 3072  # all the sandbox's processes together, and each one's address space
    solutions: Path = judging.SOLUTIONS
    trusted: bool = False  # run without a sandbox (only for code the teacher trusts)
    secret: str | None = None  # the hidden seeds' secret; a fresh one for each batch when None

    def limits(self) -> sandbox.Limits:
        return sandbox.Limits(memory_mb=self.memory_mb, cpu_seconds=int(self.total_timeout) + 60)


def require_sandbox(options: Options) -> None:
    """Refuse to run submissions without a sandbox unless the teacher said --trusted."""
    if not options.trusted:
        why = sandbox.unavailable()
        if why:
            raise GraderError(f"refusing to run submissions without a sandbox: {why}")


class Context:
    """What a batch shares: the exercises, the seeds, and one course-library view per exercise."""

    def __init__(self, options: Options):
        require_sandbox(options)
        self.options = options
        self.exercises = judging.catalogue(options.solutions)
        self.seeds = judging.Seeds(options.secret)
        self._folder = Path(tempfile.mkdtemp(prefix="course-grade-views-"))
        self._views: dict[str, Path] = {}
        self._reference_peaks: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def view(self, exercise: judging.Exercise) -> Path:
        with self._lock:
            if exercise.name not in self._views:
                self._views[exercise.name] = course_view.build(self._folder / exercise.name, exercise.withheld())
            return self._views[exercise.name]

    def probe(self, exercise, check, case, cells: list[str], lent: str, deadline: float) -> tuple[int | None, str, Any]:
        """The peak memory of a fresh sandbox that runs ``cells`` and then the function on ``case``, and the
        function's answer; or None and why it did not run to the end."""
        session = Session(self.view(exercise), self.options.limits(), self.options.trusted)
        try:
            if lent:
                session.request({"op": "lend"}, lent.encode(), min(30.0, max(1.0, deadline - time.monotonic())))
            for source in cells:
                session.request({"op": "cell"}, source.encode(), min(self.options.cell_timeout,
                                                                     max(1.0, deadline - time.monotonic())))
            header = {"op": "grade", "name": check.name, "time_limit": 60, "call": _calling_name(check.call),
                      "validate": None}
            request = {"cases": [{"label": case.label, "args": case.args, "kwargs": case.kwargs}], "lent": lent}
            _, payload = session.request(header, protocol.dumps(request), min(90.0, max(1.0, deadline - time.monotonic())))
            attempts = protocol.loads(payload).get("attempts") or [{}]
        except Ended as ended:
            usage = session.close()
            return None, (f"it ran out of memory (over {self.options.memory_mb} MiB)" if usage.out_of_memory
                          else {"timeout": "it ran past the time limit", "protocol": "it broke the grader's channel"}
                          .get(ended.kind, "the kernel died")), None
        except (protocol.ProtocolError, AttributeError) as error:
            session.close()
            return None, f"its answer could not be read ({error})", None
        usage = session.finish()
        first = attempts[0] if isinstance(attempts[0], dict) else {}
        if first.get("status") != "returned":
            error = first.get("error") if isinstance(first.get("error"), dict) else {}
            return None, f"it did not return ({str(error.get('message') or first.get('message') or first.get('status'))[:200]})", None
        if not usage.peak_bytes:
            return None, "its peak memory could not be measured", None
        return usage.peak_bytes, "", first.get("got")

    def reference_peak(self, exercise, check, case) -> int:
        """:meth:`probe` for the course's solution of the function (measured once per batch)."""
        key = (exercise.name, check.name)
        with self._lock:
            if key in self._reference_peaks:
                return self._reference_peaks[key]
        upto = [*exercise.earlier(check.name), check.name]
        cells = [exercise.imports, *(exercise.solutions[name] for name in upto)]
        peak, why, _ = self.probe(exercise, check, case, cells, "", time.monotonic() + 180)
        if peak is None:
            raise RuntimeError(f"the course's own {check.name} could not be measured on {case.label}: {why}")
        with self._lock:
            self._reference_peaks[key] = peak
        return peak

    def close(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)


class _Restart(Exception):
    pass


def _first_line(source: str) -> str:
    lines = [line for line in source.splitlines() if line.strip()]
    return (lines[0][:60] + ("…" if len(lines[0]) > 60 else "")) if lines else ""


def _calling_name(function) -> str | None:
    """The name in :mod:`course_lib.calling` of a check's call adapter or validator (all the sandbox may run)."""
    if function is None:
        return None
    for name, value in vars(calling).items():
        if value is function:
            return name
    raise GraderError(f"{function!r} is not in course_lib.calling: the sandbox could not run it.")


@dataclass
class Grading:
    """One submission being graded: the notebook's cells and what happened to them, and each function's verdict."""

    notebook: Any
    exercise: judging.Exercise
    context: Context
    deadline: float
    source: source_analysis.Source = None
    verdicts: dict[str, CheckResult] = field(default_factory=dict)
    events: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    skipped: set[int] = field(default_factory=set)
    cell_errors: dict[int, str] = field(default_factory=dict)
    owner: dict[int, str] = field(default_factory=dict)  # cell index -> the graded function it defines

    def __post_init__(self):
        cells = self.notebook.cells
        self.runnable = [i for i, cell in enumerate(cells)
                         if cell.cell_type == "code" and not judging.is_check_cell(cell) and cell.source.strip()]
        self.source = source_analysis.Source.of({i: cells[i].source for i in self.runnable})
        points = dict(self.exercise.functions)
        for index, names in self.source.defining_cells().items():
            graded = [n for n in names if n in points]
            if graded:
                self.owner[index] = graded[0]
        self.points = points
        self.options = self.context.options

    def fail(self, name: str, status: str, message: str) -> CheckResult:
        return judging.fail(name, self.points[name], status, message)

    def run(self) -> None:
        from course_lib.checks import CHECKS

        for name in self.points:  # judged from the source alone: nothing of theirs needs to run
            found = judging.source_verdict(CHECKS[name], self.source, set(self.exercise.earlier(name)))
            if found is not None:
                self.verdicts[name] = found
        for _ in range(MAX_RESTARTS + 1):
            if all(name in self.verdicts for name in self.points) or time.monotonic() >= self.deadline:
                break
            session = Session(self.context.view(self.exercise), self.options.limits(), self.options.trusted)
            try:
                self.run_cells(session)
                self.grade_functions(session)
                break
            except _Restart:
                continue
            finally:
                if session.truncated and not any("output" in note for note in self.notes):
                    self.notes.append(f"Your notebook printed more than {MAX_OUTPUT_BYTES // 1000} kB of output; "
                                      f"the rest was dropped.")
                if session.close().out_of_memory:
                    self.events.add("memory-limit")
        for name in self.points:
            if name not in self.verdicts:
                if time.monotonic() >= self.deadline:
                    self.events.add("timeout")
                    self.verdicts[name] = self.fail(name, "timeout", f"not graded: the whole notebook ran past the "
                                                                     f"total time limit of {self.options.total_timeout:g} s.")
                else:
                    self.verdicts[name] = self.fail(name, "crashed", "not graded: the sandbox had to be restarted "
                                                                     "too often.")
        for index, error in sorted(self.cell_errors.items())[:5]:
            if self.owner.get(index) and self.verdicts[self.owner[index]].status == "missing":
                self.verdicts[self.owner[index]].message += f" Its cell raised {error}."
            cell = f"The cell starting `{_first_line(self.notebook.cells[index].source)}`"
            if error.startswith("EOFError"):  # stdin is empty in the sandbox
                self.notes.append(f"{cell} asked for input (input(), getpass() or sys.stdin), and nobody types while "
                                  f"grading, so it raised {error}. A notebook you hand in must run without input.")
            else:
                self.notes.append(f"{cell} raised {error}")

    def run_cells(self, session: Session) -> None:
        for index in self.runnable:
            if index in self.skipped:
                continue
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                return
            source = self.notebook.cells[index].source
            try:
                answer, _ = session.request({"op": "cell", "index": index}, source.encode(),
                                            min(self.options.cell_timeout, remaining))
            except Ended as ended:
                self.skipped.add(index)
                self.cell_incident(index, ended.kind, session)
                raise _Restart() from None
            if answer.get("kind") == "error":
                self.cell_errors[index] = str(answer.get("error", ""))[:300]
                if self.cell_errors[index].startswith("MemoryError"):  # what it holds may starve the rest
                    self.events.add("memory-limit")
                    self.skipped.add(index)
                    self.notes.append(f"The cell starting `{_first_line(source)}` ran out of memory (over "
                                      f"{self.options.memory_mb} MiB); it was skipped and the rest graded.")
                    raise _Restart()
            if answer.get("exit") and not any(f"`{_first_line(source)}`" in note for note in self.notes):
                self.notes.append(f"The cell starting `{_first_line(source)}` asks the kernel to exit (in Jupyter "
                                  f"that stops your kernel, and the cells after it do not run). The grader ignored "
                                  f"it and ran the rest; remove it.")

    def cell_incident(self, index: int, kind: str, session: Session) -> None:
        """Record a cell that timed out or killed the sandbox: against its function, or as a note."""
        cell = f"the cell starting `{_first_line(self.notebook.cells[index].source)}`"
        if kind == "timeout":
            self.events.add("timeout")
            what, status = (f"{cell} ran for more than {self.options.cell_timeout:g} s and was stopped; look for an "
                            f"endless loop."), "timeout"
        elif kind == "protocol":
            self.events.add("crashed")
            what, status = (f"{cell} wrote something to the grader's own channel, so the grader stopped it."), "crashed"
        elif session.close().out_of_memory:
            self.events.add("memory-limit")
            what, status = f"{cell} used more than {self.options.memory_mb} MiB of memory and was stopped.", "memory-limit"
        else:
            self.events.add("crashed")
            what, status = (f"the kernel died while running {cell} (os._exit(), a crash in native code, or "
                            f"running out of memory)."), "crashed"
        function = self.owner.get(index)
        if function is not None and function not in self.verdicts:
            self.verdicts[function] = self.fail(function, status, what[0].upper() + what[1:] + " It was skipped.")
        else:
            self.notes.append(what[0].upper() + what[1:] + " The cell was skipped and the rest graded.")

    def grade_functions(self, session: Session) -> None:
        for name in self.points:
            if name in self.verdicts:
                continue
            if time.monotonic() >= self.deadline:
                return
            self.verdicts[name] = verdict = self.grade_function(name, session)
            if verdict.status in ("timeout", "crashed", "memory-limit"):
                self.events.add(verdict.status)
            if session.usage is not None:  # the sandbox was stopped: grade the rest in a fresh one
                raise _Restart()

    def grade_function(self, name: str, session: Session) -> CheckResult:
        from course_lib.checks import CHECKS

        check = CHECKS[name]
        cases = judging.cases_for(check, self.context.seeds)
        limit = min(check.time_limit, self.options.cell_timeout)
        header = {"op": "grade", "name": name, "time_limit": limit, "call": _calling_name(check.call),
                  "validate": _calling_name(check.validate)}
        report: dict = {"missing": False, "preflight": None, "attempts": []}
        for index, case in enumerate(cases):  # one case per request: the grader's clock bounds each one
            request = {"cases": [{"label": case.label, "args": case.args, "kwargs": case.kwargs}],
                       "lent": self.exercise.lent_source(name), "preflight": index == 0}
            timeout = min(limit + CASE_MARGIN, max(1.0, self.deadline - time.monotonic()))
            try:
                _, payload = session.request(header, protocol.dumps(request), timeout)
                part = protocol.loads(payload)
            except Ended as ended:
                return self.ended_verdict(name, ended, session, limit)
            except protocol.ProtocolError as error:
                return self.fail(name, "error", f"the grader could not read your function's answer ({error}).")
            if not isinstance(part, dict) or not isinstance(part.get("attempts"), list):
                return self.fail(name, "error", "the grader got no usable answer back from your notebook.")
            if part.get("missing") or part.get("preflight"):
                report = part
                break
            if len(part["attempts"]) != 1 or not isinstance(part["attempts"][0], dict):
                report["attempts"].append({"status": "incomplete", "message": (
                    f"the grader asked for one answer on {case.label} and got {len(part['attempts'])}: something in "
                    f"your notebook interfered with the checking, so nothing can be credited.")})
                break
            report["attempts"].append(part["attempts"][0])
            if part["attempts"][0].get("status") != "returned":
                break
        result = judging.verdict(check, cases, report)
        if result.passed and check.memory_probe is not None:
            excess = self.memory_probe(check)
            if excess:
                result = self.fail(name, "failed", excess)
        replaced = self.source.replaced_by_import(name)
        if replaced is not None and not result.passed:
            line = self.notebook.cells[replaced.cell].source.splitlines()[replaced.line - 1].strip()[:80]
            result.message += (f" (Line {replaced.line} of the cell starting "
                               f"`{_first_line(self.notebook.cells[replaced.cell].source)}`, `{line}`, replaced "
                               f"your own {name} with the course's: remove that import.)")
        return result

    def ended_verdict(self, name: str, ended: Ended, session: Session, limit: float) -> CheckResult:
        """The verdict on a function whose sandbox timed out, died or broke the protocol while it ran."""
        if ended.kind == "timeout":
            return self.fail(name, "timeout", f"checking your function ran past the time limit ({limit:g} s "
                                              f"per case) and was stopped. Look for an endless loop.")
        if session.close().out_of_memory:
            return self.fail(name, "memory-limit", f"your function used more than {self.options.memory_mb} "
                                                   f"MiB of memory and was stopped.")
        if ended.kind == "protocol":
            return self.fail(name, "error", "the grader got no usable answer back from your notebook (does it "
                                            "print to or close the grader's channel?).")
        return self.fail(name, "crashed", "the kernel died while your function ran (os._exit(), a crash in "
                                          "native code, or running out of memory).")

    def memory_probe(self, check) -> str | None:
        """Run the function's own code (the lent functions, then the imports and the statements of its closure,
        not the rest of their cells) and one long case in a fresh sandbox; judge the answer, and compare the
        sandbox's peak memory, as the kernel measured it, with the same run of the course's solution. None when
        the answer is right and the peak within :func:`~course_lib.checking.memory_budget` of the solution's."""
        from course_lib.checking import memory_budget
        from course_lib.measure import format_bytes

        case = check.memory_probe(self.context.seeds.generator(check.name))
        lent = set(self.exercise.earlier(check.name))
        lent_source = self.exercise.lent_source(check.name)
        code = self.source.statements(self.source.closure(check.name, lent) + self.source.imports())
        peak, why, got = self.context.probe(self.exercise, check, case, code, lent_source, self.deadline)
        if peak is None:  # unmeasured is not within budget
            return (f"on {case.label}: the memory check runs your function's own code and then your function on "
                    f"this long case in a fresh sandbox, and {why}, so its memory could not be measured.")
        wrong = check.judge(case, got)
        if wrong:  # the long case counts like any other: an answer kept small only there is wrong
            return f"on {case.label}: {wrong}"
        reference = self.context.reference_peak(self.exercise, check, case)
        budget = memory_budget(case)
        if peak - reference <= budget:
            return None
        return (f"on {case.label}: your function's sandbox peaked at {format_bytes(peak)} of memory, "
                f"{format_bytes(peak - reference)} more than the course's solution; the (..., T, S) scores alone "
                f"would take {format_bytes(4 * budget)}. It builds a (T, S) tensor. {check.memory_advice}")

def _finish(result: dict, status: str, notes: list[str], started: float) -> dict:
    result["status"] = require_status(status, "submission")
    result["notes"] = list(notes)
    result["percent"] = round(100 * result["total"] / result["max_total"], 1) if result["max_total"] else 0.0
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def grade_submission(path: Path | str, options: Options | None = None, context: Context | None = None) -> dict:
    """Grade one notebook file; never raises for a bad submission (only :class:`GraderError`)."""
    options = options or (context.options if context else Options())
    own = context is None
    context = context or Context(options)
    path = Path(path)
    started = time.monotonic()
    result: dict[str, Any] = {"file": str(path), "path": files.key(path), "sha256": files.sha256(path),
                              "exercise": None, "status": "ok", "total": 0, "max_total": 0, "percent": 0.0,
                              "exercises": [], "notes": [], "seconds": 0.0, "trusted": options.trusted}
    try:
        try:
            notebook = files.read_submission(path)
        except files.Unreadable as error:
            return _finish(result, error.status, [str(error)], started)
        cells = {i: c.source for i, c in enumerate(notebook.cells) if c.cell_type == "code"}
        defined = {b.name for b in source_analysis.Source.of(cells).bindings if b.kind in ("def", "class")}
        exercise, note = judging.identify(notebook, path, context.exercises, defined)
        if exercise is None:
            return _finish(result, "not-an-exercise", [
                f"{path.name} holds none of the graded functions of the exercises "
                f"({', '.join(context.exercises)}). Submit the exercise notebook itself, with its cells in place."],
                started)
        result["exercise"] = exercise.name
        grading = Grading(notebook, exercise, context, started + options.total_timeout)
        if note:
            grading.notes.append(f"{path.name} was {note}")
        grading.run()
        for name, points in exercise.functions:
            verdict = grading.verdicts[name]
            result["exercises"].append({"function": name, "points": verdict.points, "max_points": points,
                                        "status": verdict.status, "feedback": verdict.message})
        result["total"] = sum(e["points"] for e in result["exercises"])
        result["max_total"] = exercise.max_points
        status = next(s for s in STATUS_ORDER if s == "ok" or s in grading.events)
        return _finish(result, status, grading.notes, started)
    finally:
        if own:
            context.close()


def grade_safely(path: Path | str, context: Context) -> dict[str, Any]:
    """:func:`grade_submission`, except that a bug in the grader costs one submission, not the whole batch."""
    try:
        return grade_submission(path, context=context)
    except GraderError:
        raise
    except Exception as error:  # a grader bug: report it against this file and carry on
        result = {"file": str(path), "path": files.key(path), "sha256": files.sha256(Path(path)), "exercise": None,
                  "total": 0, "max_total": 0, "exercises": [], "trusted": context.options.trusted}
        return _finish(result, "grader-error", [f"the grader failed on this file ({type(error).__name__}: "
                                                f"{error}); please report it with the notebook."], time.monotonic())


def outputs(out: Path) -> tuple[Path, Path]:
    """Where a batch writes its feedback: grades.json and grades_feedback/ beside grades.csv."""
    return out.with_suffix(".json"), out.with_name(out.stem + "_feedback")


def grade_batch(paths: list[Path], out: Path, options: Options, jobs: int = 1, force: bool = False,
                progress=None) -> list[dict]:
    """Grade many submissions, writing CSV, JSON and HTML after each one; skip those already graded.

    Submissions are known by their absolute path, so a rerun from another folder or with the folder typed
    differently still skips what is graded; files that no longer exist drop out of the reports.
    """
    context = Context(options)
    try:
        json_path, pages = outputs(out)
        try:
            pages.mkdir(parents=True, exist_ok=True)
            previous = json.loads(json_path.read_text(encoding="utf-8")) if json_path.exists() else []
        except (OSError, json.JSONDecodeError) as error:
            raise GraderError(f"cannot use the output next to {out}: {error}") from None
        results = {r.get("path") or files.key(r["file"]): r for r in previous if isinstance(r, dict) and "file" in r}
        results = {k: r for k, r in results.items() if Path(k).exists() or Path(k).is_symlink()}
        todo = [p for p in paths if force or files.key(p) not in results
                or results[files.key(p)].get("sha256") != files.sha256(p)
                or results[files.key(p)].get("trusted", False) != options.trusted]
        progress = progress or Progress(len(todo), len(paths) - len(todo))
        names = reports.page_names(sorted({*results, *(files.key(p) for p in paths)}))
        functions = list(dict.fromkeys(name for e in context.exercises.values() for name, _ in e.functions))
        lock = threading.Lock()

        def write_reports() -> None:
            ordered = [results[k] for k in sorted(results)]
            used = [f for f in functions if any(f == e["function"] for r in ordered for e in r["exercises"])]
            reports.write_csv(ordered, out, used)
            reports.write_json(ordered, json_path)

        def record(result: dict) -> None:
            with lock:
                results[result["path"]] = result
                result["feedback_page"] = str(pages / names[result["path"]])
                write_reports()
                reports.write_atomic(pages / names[result["path"]], reports.feedback_page(result))
                progress.update(result)

        if jobs <= 1:
            for path in todo:
                record(grade_safely(path, context))
        else:
            with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
                for future in concurrent.futures.as_completed([pool.submit(grade_safely, p, context) for p in todo]):
                    record(future.result())
        progress.close()
        write_reports()  # also when nothing was regraded (e.g. after the report files were deleted)
        return [results[files.key(p)] for p in paths if files.key(p) in results]
    finally:
        context.close()


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
    for stream in (sys.stdout, sys.stderr):  # a learner's lone surrogate or a non-UTF-8 file name prints escaped
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = argparse.ArgumentParser(prog="course-grade", description="Grade exercise notebooks, each in a "
                                     "sandbox, with the same checks learners run. See TEACHERS.md.")
    parser.add_argument("paths", nargs="+", help="notebooks, folders of notebooks, or glob patterns")
    parser.add_argument("--out", type=Path, help="write a CSV here, with a .json and a _feedback/ folder beside it")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    parser.add_argument("--force", action="store_true", help="regrade submissions already in the output")
    parser.add_argument("--timeout", type=float, default=Options.cell_timeout, help="seconds per cell (default 30)")
    parser.add_argument("--total-timeout", type=float, default=Options.total_timeout,
                        help="seconds per submission (default 600)")
    parser.add_argument("--memory-mb", type=int, default=Options.memory_mb,
                        help="memory limit of each submission's sandbox, MiB (default 3072)")
    parser.add_argument("--solutions", type=Path, default=judging.SOLUTIONS,
                        help="the solutions notebooks (default: the course's)")
    parser.add_argument("--trusted", action="store_true",
                        help="run submissions WITHOUT a sandbox: only for code you trust (every report says so)")
    parser.add_argument("--secret", default=os.environ.get("COURSE_GRADE_SECRET"),
                        help="derive the hidden cases from this secret (default: $COURSE_GRADE_SECRET, else a fresh "
                             "one per run); never put it where students can read it")
    args = parser.parse_args(argv)
    options = Options(args.timeout, args.total_timeout, args.memory_mb, args.solutions, args.trusted, args.secret)
    try:
        if args.jobs < 1:
            raise GraderError(f"--jobs must be at least 1, got {args.jobs}.")
        paths = files.collect(args.paths)
        if args.out is not None:
            results = grade_batch(paths, args.out, options, jobs=args.jobs, force=args.force)
            counts: dict[str, int] = {}
            for r in results:
                counts[r["status"]] = counts.get(r["status"], 0) + 1
            summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            print(f"graded {len(results)} submission(s): {summary}. Wrote {args.out}, "
                  f"{outputs(args.out)[0]} and {outputs(args.out)[1]}/")
            return 0
        context = Context(options)
        try:
            results = [grade_safely(path, context) for path in paths]
        finally:
            context.close()
    except GraderError as error:
        print(f"course-grade: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=1, ensure_ascii=False))
    else:
        print("\n\n".join(reports.table(result) for result in results))
    return 0
