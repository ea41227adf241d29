"""Grading one submission, in the order of the module docstring of :mod:`.batch`: read it, judge its source,
run its cells in a fresh sandbox, call each graded function on secret cases, judge what came back.

A cell or call that runs too long or kills the sandbox is reported, and a fresh sandbox grades the rest
(at most ``MAX_RESTARTS`` times). Tests: tests/test_grade.py, tests/test_grade_sandbox.py.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course_lib.checking import CheckResult, require_status
from course_lib.grading import files, judging, protocol
from course_lib.grading import sources as source_analysis
from course_lib.grading.context import CASE_MARGIN, Context, Options, calling_name
from course_lib.grading.judging import GraderError
from course_lib.grading.session import MAX_OUTPUT_BYTES, Ended, Session

MAX_RESTARTS = 4  # fresh sandboxes per submission after a cell or function timed out or crashed
STATUS_ORDER = ("crashed", "timeout", "memory-limit", "ok")  # a submission's status: the first that applies


class _Restart(Exception):
    pass


def _first_line(source: str) -> str:
    lines = [line for line in source.splitlines() if line.strip()]
    return (lines[0][:60] + ("…" if len(lines[0]) > 60 else "")) if lines else ""


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
        self.note_lent_functions()
        for index, error in sorted(self.cell_errors.items())[:5]:
            if self.owner.get(index) and self.verdicts[self.owner[index]].status == "missing":
                self.verdicts[self.owner[index]].message += f" Its cell raised {error}."
            cell = f"The cell starting `{_first_line(self.notebook.cells[index].source)}`"
            if error.startswith("EOFError"):  # stdin is empty in the sandbox
                self.notes.append(f"{cell} asked for input (input(), getpass() or sys.stdin), and nobody types while "
                                  f"grading, so it raised {error}. A notebook you hand in must run without input.")
            else:
                self.notes.append(f"{cell} raised {error}")

    def note_lent_functions(self) -> None:
        """On each function's verdict, the note the check cell writes too: an earlier graded function that it
        uses, and that the course's version stood in for, fails its own check (or is missing, or unwritten)."""
        from course_lib.checking.lending import lent_note

        for name in self.points:
            lent = set(self.exercise.earlier(name))
            used = {used for binding in self.source.closure(name, lent)
                    for used in source_analysis.global_names(binding.node)} & lent
            for earlier in self.exercise.earlier(name):  # in the notebook's order
                if earlier in used:
                    self.verdicts[name].message += lent_note(name, earlier, self.verdicts[earlier].status)

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
        header = {"op": "grade", "name": name, "time_limit": limit, "call": calling_name(check.call),
                  "validate": calling_name(check.validate)}
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


AST_RACE = "AST constructor recursion depth mismatch"  # CPython 3.11's gh-106905, seen under --jobs threads


def grade_safely(path: Path | str, context: Context, tries: int = 3) -> dict[str, Any]:
    """:func:`grade_submission`, except that a bug in the grader costs one submission, not the whole batch.
    CPython 3.11 can raise a spurious SystemError ("AST constructor recursion depth mismatch", gh-106905) when
    threads build ASTs at once; the grader's own parsing is serialised, and a file hit by it anyway is graded again."""
    for attempt in range(tries):
        try:
            return grade_submission(path, context=context)
        except GraderError:
            raise
        except Exception as error:  # a grader bug: report it against this file and carry on
            if isinstance(error, SystemError) and AST_RACE in str(error) and attempt + 1 < tries:
                continue
            return not_graded(path, context.options.trusted, f"the grader failed on this file ({type(error).__name__}: "
                                                             f"{error}); please report it with the notebook.")


def not_graded(path: Path | str, trusted: bool, why: str) -> dict[str, Any]:
    """The result of a submission the grader could not grade (status ``grader-error``), saying why; a rerun of
    the batch grades it again."""
    result = {"file": str(path), "path": files.key(path), "sha256": files.sha256(Path(path)), "exercise": None,
              "total": 0, "max_total": 0, "exercises": [], "trusted": trusted}
    return _finish(result, "grader-error", [why], time.monotonic())
