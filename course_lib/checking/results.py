"""What a check works with and produces, as plain data that crosses from a sandbox to the grader: a case, the
shape of an answer, a diagnosis, the verdict, and the statuses they carry (:mod:`.statuses`).

Part of :mod:`course_lib.checking`. Tests: tests/checks/test_framework.py.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from course_lib.checking.statuses import require_status


@dataclass
class Case:
    """One input for the function being checked. ``label`` says in words what the case is about."""

    label: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    watch_memory: bool = False  # the check's further checks measure what the function builds on this case


@dataclass
class Output:
    """What a returned value must look like: numpy array or torch tensor, dtype family, and a name."""

    name: str = "result"
    kind: str = "numpy"  # "numpy" or "torch"
    dtype: str = "float"  # "float", "bool", or "count" (a whole number, compared exactly; a float by value)


@dataclass
class Mistake:
    """A typical mistake: recognised when ``matches(case, got, expected)`` is true; ``message`` says what to fix."""

    message: str
    matches: Callable[[Case, Any, Any], bool]

    def recognises(self, case: Case, got, expected) -> bool:
        """``matches``, where a predicate that raises (on an answer of a shape it did not expect) is no match."""
        try:
            return bool(self.matches(case, got, expected))
        except Exception:
            return False


@dataclass
class CheckResult:
    """The verdict of one check, shared by the in-notebook checks and the grader."""

    name: str
    passed: bool
    points: float
    max_points: float
    message: str
    status: str  # one of statuses.FUNCTION_STATUSES
    shown: bool = field(default=False, repr=False)

    def __post_init__(self):
        require_status(self.status, "function")

    def show(self) -> "CheckResult":
        print(self.message)
        self.shown = True
        return self

    def _ipython_display_(self) -> None:
        # A check prints its verdict itself; as a cell's last value it adds nothing more.
        if not self.shown:
            self.show()


NOT_IMPLEMENTED = ("not implemented yet: replace `raise NotImplementedError()` with your code, run that cell, "
                   "then this one again.")


@dataclass
class ErrorInfo:
    """An exception raised by the learner's code, as plain data: its class names (most specific first), its
    message and the line of the learner's code it came from. It crosses from a sandbox to the grader."""

    types: tuple[str, ...]
    message: str
    line: str = ""

    @classmethod
    def of(cls, error: BaseException) -> "ErrorInfo":
        frames = [f for f in traceback.extract_tb(error.__traceback__)
                  if f.filename.startswith("<") or "ipykernel" in f.filename]
        line = frames[-1].line if frames and frames[-1].line else ""
        return cls(tuple(k.__name__ for k in type(error).__mro__), str(error)[:2000], line[:200])

    def rebuild(self) -> BaseException:
        """An exception of the most specific built-in class among ``types``, with the message (for error hints)."""
        import builtins

        for name in self.types:
            kind = getattr(builtins, name, None)
            if isinstance(kind, type) and issubclass(kind, BaseException):
                try:
                    return kind(self.message)
                except Exception:
                    continue
        return Exception(self.message)

    @property
    def name(self) -> str:
        return self.types[0] if self.types else "Exception"


@dataclass
class Attempt:
    """What happened when the learner's code ran on one case: it returned ``got``, or it failed.

    ``status`` is "returned" or a failure: "not-implemented", "timeout", "error", "failed", "memory-limit",
    "mutated". ``error`` describes an exception; ``gradients`` holds, for a case whose inputs require grad,
    the gradient of each such input (None where none flowed back). ``extra`` holds the verdict of the check's
    further in-process checks (None when they found nothing wrong; the grader does not run them).
    """

    status: str
    got: Any = None
    message: str = ""
    extra: str | None = None
    error: ErrorInfo | None = None
    gradients: dict | None = None
