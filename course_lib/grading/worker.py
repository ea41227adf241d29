"""The grader's worker: the one program that runs inside a submission's sandbox (:mod:`.sandbox`).

It runs the notebook's cells in an IPython shell, then calls a graded function on the cases the grader sends,
and sends back what came out as plain data (:mod:`.protocol`). It decides nothing: every point is decided by
the grader, in its own process, from that data. Everything here is in reach of the learner's code, so nothing
here is trusted, and nothing secret is here: the seeds, the references and the solutions stay outside; the
graded functions that the grader lends (the exercise's earlier ones) arrive only when they are needed.

    python -m course_lib.grading.worker COMMANDS_FD REPLIES_FD MAX_PROCESSES
"""
from __future__ import annotations

import contextlib
import difflib
import os
import re
import sys
import time

from course_lib import calling, checking
from course_lib.checking.lending import standing_in
from course_lib.grading import protocol

FOREVER = 10 ** 9


def main(argv: list[str]) -> int:
    commands, replies, processes = (int(value) for value in argv[:3])
    _limit_processes(processes)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # input() gets end-of-file at once: "your function asked for input"
    os.close(null)
    shell = _shell()
    reader = protocol.Reader(commands)
    while True:
        try:
            header, payload = reader.read(time.monotonic() + FOREVER)
        except (EOFError, protocol.ProtocolError):
            return 0
        op = header.get("op")
        if op == "cell":
            protocol.write_message(replies, {"op": "cell", **run_cell(shell, payload.decode("utf-8", "replace"))})
        elif op == "grade":
            request, payload = protocol.loads(payload), b""  # no copy of the lent source stays on the stack
            report = grade(shell.user_ns, header["name"], request, header)
            protocol.write_message(replies, {"op": "graded"}, protocol.dumps(report))
        elif op == "lend":  # the probe's lent functions, for good: defined as the grader defines them
            shell.user_ns.update(defined_by(payload.decode("utf-8")))
            payload = b""
            protocol.write_message(replies, {"op": "lent"})
        elif op == "exit":
            return 0


def _limit_processes(count: int) -> None:
    """At most ``count`` processes and threads: set here, inside the sandbox's own user namespace, where the
    count covers only the sandbox's processes."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_NPROC, (count, count))
    except (ImportError, ValueError, OSError):
        pass


def _shell():
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "nocolor"
    config.InteractiveShell.xmode = "Plain"
    shell = InteractiveShell.instance(config=config)
    shell.ask_exit = lambda: setattr(shell, "exit_now", True)  # exit() in a cell: noted, and the grading goes on
    return shell


def run_cell(shell, source: str) -> dict:
    """Run one cell; say whether it raised (and what) and whether it asked to exit."""
    shell.exit_now = False
    result = shell.run_cell(source, store_history=False)
    asked_to_exit = bool(getattr(shell, "exit_now", False))
    shell.exit_now = False
    error = result.error_before_exec or result.error_in_exec
    if error is None:
        return {"kind": "ok", "exit": asked_to_exit}
    text = re.sub(r"\(<[^>]*>, line (\d+)\)", r"(line \1 of the cell)", f"{type(error).__name__}: {error}")
    return {"kind": "error", "error": text[:300], "exit": asked_to_exit or isinstance(error, SystemExit)}


def grade(namespace: dict, name: str, request: dict, header: dict) -> dict:
    """Call ``namespace[name]`` on each case until one fails; the earlier graded functions are lent meanwhile.
    (The grader sends one case per request, so that its own clock stops a case that disarmed the alarm.)"""
    function = namespace.get(name)
    report: dict = {"missing": function is None, "preflight": None, "attempts": []}
    if function is None:  # deleted or renamed: name the functions with a similar name, if any
        defined = [key for key, value in namespace.items() if callable(value) and not key.startswith("_")]
        report["similar"] = difflib.get_close_matches(name, defined, n=3, cutoff=0.6)
        return report
    invoke = _adapter(header.get("call"))
    validate = _adapter(header.get("validate"))
    with lent(namespace, request.pop("lent", "")):
        problem = checking.preflight(name, function, validate) if request.get("preflight", True) else None
        if problem is not None:
            report["preflight"] = _plain(problem)
            return report
        for case in request["cases"]:
            case = checking.Case(case["label"], tuple(case["args"]), dict(case["kwargs"]))
            call = (lambda: invoke(function, case)) if invoke else (lambda: function(*case.args, **case.kwargs))
            attempt = checking.run_case(call, case, float(header.get("time_limit", 10)))
            report["attempts"].append(_plain(attempt))
            if attempt.status != "returned":
                break
    return report


def _adapter(name):
    """A call adapter or validator of :mod:`course_lib.calling`, by name (nothing else can be named)."""
    if not name:
        return None
    value = vars(calling).get(name)
    return value if callable(value) else None


def _plain(attempt: checking.Attempt) -> dict:
    error = attempt.error
    return {"status": attempt.status, "message": attempt.message, "got": attempt.got,
            "gradients": attempt.gradients,
            "error": None if error is None else {"types": list(error.types), "message": error.message,
                                                 "line": error.line}}


def defined_by(source: str) -> dict:
    """The functions that ``source`` (the course's solutions of the exercise's earlier graded functions, with
    their imports) defines and lists in ``__lent__``, by name."""
    if not source:
        return {}
    scope: dict = {"__name__": "__lent__"}
    exec(compile(source, "<lent by the grader>", "exec"), scope)  # (no linecache entry: no getsource either)
    return {key: scope[key] for key in scope.get("__lent__", ())}


@contextlib.contextmanager
def lent(namespace: dict, source: str):
    """Within the block, the functions defined by ``source`` stand in the namespace for the learner's own, as the
    check cell lends them (:func:`course_lib.checking.lending.standing_in`)."""
    replacements = defined_by(source)
    del source  # the solutions' text is not kept where the learner's code can look (this frame stays alive)
    with standing_in(namespace, replacements):
        yield


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
