"""What the grading of a batch shares between its submissions: the options, the sandbox's view of the course
library per exercise, and the memory the course's own solutions take on each probe (measured once).

Used by :mod:`.submission` and :mod:`.batch`. Tests: tests/test_grade.py, tests/test_grade_sandbox.py.
"""
from __future__ import annotations

import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from course_lib import calling
from course_lib.grading import judging, protocol, sandbox
from course_lib.grading import view as course_view
from course_lib.grading.judging import GraderError
from course_lib.grading.session import Ended, Session

CASE_MARGIN = 5.0  # seconds, on top of a case's time limit, for the request around it


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

    def __init__(self, options: Options, here: bool = True):
        if here:  # (not when the submissions are graded elsewhere, on a cluster's workers: see .cluster)
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
            header = {"op": "grade", "name": check.name, "time_limit": 60, "call": calling_name(check.call),
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


def calling_name(function) -> str | None:
    """The name in :mod:`course_lib.calling` of a check's call adapter or validator (all the sandbox may run)."""
    if function is None:
        return None
    for name, value in vars(calling).items():
        if value is function:
            return name
    raise GraderError(f"{function!r} is not in course_lib.calling: the sandbox could not run it.")
