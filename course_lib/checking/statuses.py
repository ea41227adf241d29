"""Every status word the checks and the grader use, with what it means: one enumeration, so that a report, the
CSV, TEACHERS.md and the code agree (tests/test_statuses.py holds them to it).

Part of :mod:`course_lib.checking`; the grader's submission statuses are here too, so that one file lists all.
"""
from __future__ import annotations

FUNCTION_STATUSES = {  # a graded function's verdict (CheckResult.status): all but "passed" are worth 0 points
    "passed": "every case right",
    "failed": "a case came out wrong (the message names the likely mistake)",
    "not-implemented": "the cell still raises NotImplementedError",
    "error": "its code raised",
    "timeout": "it ran past its time limit",
    "crashed": "the sandbox died while it ran",
    "memory-limit": "it ran out of memory",
    "missing": "deleted or renamed",
    "incomplete": "fewer answers came back than cases were sent: code in the notebook interfered with the grading",
    "not-available": "it called the course's own code for the job",
    "library-call": "it uses a torch function that does the whole job",
    "unverifiable": "it builds what it calls at run time, so what it calls cannot be read",
}
ATTEMPT_STATUSES = {  # what happened on one case (Attempt.status), before it is judged
    "returned": "it returned an answer, to be judged",
    "mutated": "it changed its inputs in place (judged as failed)",
    **{status: FUNCTION_STATUSES[status] for status in ("failed", "not-implemented", "error", "timeout",
                                                        "memory-limit", "incomplete", "library-call",
                                                        "not-available")},
}
SUBMISSION_STATUSES = {  # how grading went for one notebook (the grader's "status" column)
    "ok": "the notebook ran and every function was graded (scores may still be low)",
    "timeout": "a cell or a function ran past its limit",
    "crashed": "the sandbox died, or a cell wrote into the grader's channel",
    "memory-limit": "the notebook ran out of memory",
    "invalid-notebook": "the file is not a readable notebook",
    "not-a-file": "a symbolic link, FIFO, device or folder named *.ipynb",
    "too-large": "too many bytes, cells or characters in a cell to be parsed",
    "not-an-exercise": "a valid notebook without any of the exercises' graded functions",
    "grader-error": "the grader itself failed on this file",
}
KINDS = {"function": FUNCTION_STATUSES, "attempt": ATTEMPT_STATUSES, "submission": SUBMISSION_STATUSES}


def require_status(status: str, kind: str) -> str:
    """``status`` if it is one of the ``kind`` statuses, else a ValueError that names the known ones."""
    if status not in KINDS[kind]:
        raise ValueError(f"{status!r} is not a {kind} status; the {kind} statuses are {', '.join(KINDS[kind])}")
    return status
