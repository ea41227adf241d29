"""A :class:`Check`: everything needed to check one graded function against the course's implementation, in the
four steps that let a grader run step 2 in a sandbox and the rest in its own process: 1) make cases, 2) call
the function, 3) compare with the reference, 4) diagnose.

Part of :mod:`course_lib.checking`. Tests: tests/checks/test_framework.py.
"""
from __future__ import annotations

import copy
import importlib
import inspect
import itertools
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from course_lib.checking.comparing import (close, describe_type, first_difference, precision_lost, structure_problem,
                                          to_numpy)
from course_lib.checking.lending import (learners_namespace, lent_functions, notes_on_lent, standing_in,
                                        withheld_with)
from course_lib.checking.library import NOT_AVAILABLE, course_code_used, library_message, library_used
from course_lib.checking.nbgrader_mode import raise_if_graded
from course_lib.checking.results import Attempt, Case, CheckResult, ErrorInfo, Mistake, Output
from course_lib.checking.running import gradients_of, preflight, run_case

DEFAULT_TIME_LIMIT = 10.0  # seconds per case; the reference needs milliseconds


@dataclass
class Check:
    """Everything needed to check one graded function against its reference."""

    name: str
    points: float
    make_cases: Callable[[np.random.Generator], list[Case]]
    implementation: str  # dotted path of the course's own implementation: the reference, and worth no points
    reference: Callable[..., Any] | None = None  # only where the answer is not the implementation's (flash: dense)
    outputs: Sequence[Output] = (Output(),)
    mistakes: Sequence[Mistake] = ()
    error_hints: Sequence[tuple[Callable[[Case, BaseException], bool], str]] = ()
    call: Callable[[Callable, Case], Any] | None = None  # how to call the learner's code (default fn(*args))
    validate: Callable[[Callable], str | None] | None = None  # static checks on the function/class itself
    extra: Callable[[Callable, Case, Any], str | None] | None = None  # further checks of one case's answer
    what: str = ""  # what a pass verified, in words
    withholds: tuple[str, ...] = ()  # other course code that does the same job: absent while grading, like it
    library: tuple[str, ...] = ()  # names of library functions (torch's) that do the job: using one earns 0
    memory_probe: Callable[[np.random.Generator], Case] | None = None  # a long case whose memory the grader measures
    memory_advice: str = ""  # what to do when the probe finds a (T, S) tensor
    time_limit: float = DEFAULT_TIME_LIMIT

    def __post_init__(self):
        self.withholds = tuple(path for path in self.withholds if path != self.implementation)

    @property
    def solution(self):
        """The course's own implementation (a function or a class), imported from ``implementation``."""
        module, _, name = self.implementation.rpartition(".")
        return getattr(importlib.import_module(module), name)

    def answer(self, *args, **kwargs):
        """The right answer for these inputs: the reference's, or the implementation called as the learner's is."""
        if self.reference is not None:
            return self.reference(*args, **kwargs)
        return self.invoke(self.solution, Case("the reference", args, kwargs))

    # 2) call the learner's function ------------------------------------------------------------------------
    def invoke(self, function: Callable, case: Case):
        if self.call is not None:
            return self.call(function, case)
        return function(*case.args, **case.kwargs)

    def expected(self, case: Case):
        with np.errstate(all="ignore"):
            answer = self.answer(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        return answer if len(self.outputs) > 1 else (answer,)

    # 3) and 4) compare and diagnose ------------------------------------------------------------------------
    def judge(self, case: Case, got) -> str | None:
        """None if ``got`` is right for ``case``; otherwise the diagnosis."""
        expected = self.expected(case)
        names = ", ".join(o.name for o in self.outputs)
        if len(self.outputs) > 1:
            if not isinstance(got, (tuple, list)) or len(got) != len(self.outputs):
                if hasattr(got, "shape") and close(got, expected[0]):
                    return f"you returned only {self.outputs[0].name}; return the tuple ({names})."
                return f"expected a tuple ({names}), got {describe_type(got)}."
            order = _reordering(got, expected)
            if order is not None and len(order) == 2:
                return f"your two results are swapped: return ({names}) in that order."
            if order is not None:
                return (f"your results are in another order, ({', '.join(self.outputs[i].name for i in order)}): "
                        f"return ({names}) in that order.")
            gots = tuple(got)
        else:
            gots = (got,)
        # 1) the right kind of value, 2) the right values, 3) else the most specific diagnosis we have
        for spec, want, have in zip(self.outputs, expected, gots):
            problem = structure_problem(have, spec) or precision_lost(case, want, have, spec)
            if problem:
                return problem
        if all(close(want, have) for want, have in zip(expected, gots)):
            return None
        for mistake in self.mistakes:
            if mistake.recognises(case, got, expected if len(self.outputs) > 1 else expected[0]):
                return mistake.message
        for spec, want, have in zip(self.outputs, expected, gots):
            want_np, have_np = to_numpy(want), to_numpy(have)
            if want_np.shape != have_np.shape:
                return f"{spec.name}: expected shape {want_np.shape}, got {have_np.shape}."
            if np.isnan(have_np.astype(float)).any() and not np.isnan(want_np.astype(float)).any():
                return f"{spec.name}: your answer contains NaN where every expected value is a number."
            if not close(want_np, have_np):
                if want_np.dtype == bool:
                    wrong = tuple(int(i) for i in np.argwhere(want_np != have_np)[0])
                    return (f"{spec.name}: wrong at index {wrong}: expected {bool(want_np[wrong])}, "
                            f"got {bool(have_np[wrong])}.")
                return f"{spec.name}: values differ from the reference; {first_difference(want_np, have_np)}."
        return None

    # the whole check ---------------------------------------------------------------------------------------
    def run(self, function, seed: int = 0, cases: list[Case] | None = None) -> CheckResult:
        """Check ``function`` on the cases made with ``seed`` (:meth:`verdict`). It never raises, except under
        nbgrader, where a failing check raises its verdict (:mod:`.nbgrader_mode`) so that nbgrader sees it."""
        __tracebackhide__ = True  # IPython leaves this frame out of the traceback nbgrader shows
        return raise_if_graded(self.verdict(function, seed, cases))

    def verdict(self, function, seed: int = 0, cases: list[Case] | None = None) -> CheckResult:
        """Check ``function`` on the cases made with ``seed``, with the course's versions of the exercise's
        earlier graded functions lent to the learner's notebook meanwhile (:mod:`.lending`). Never raises."""
        problem = self.preflight(function)
        if problem is None and self.library:  # what the grader reads in the source, read here in the live code
            used = library_used(function, self.library)
            if used:
                problem = Attempt("library-call", message=library_message(self.name, used))
        if problem is None and learners_namespace(function) is not None:  # a notebook's function: what the
            used = course_code_used(function, withheld_with(self))  # grader takes out of the sandbox, refused here too
            if used:
                problem = Attempt("not-available", message=f"your {self.name} calls the course's own code: "
                                                           f"{NOT_AVAILABLE.format(name=used[0])}")
        if problem is not None:
            return self.score([], [], problem)
        cases = self.make_cases(np.random.default_rng(seed)) if cases is None else cases
        namespace, lent = lent_functions(self, function)
        with standing_in(namespace, lent):
            attempts = (self.attempt(function, case) for case in cases)  # lazily: stop at the first failure
            result = self.score(cases, attempts)
        result.message += notes_on_lent(self, function, namespace, lent)
        return result

    def preflight(self, function) -> "Attempt | None":
        """Is ``function`` something to call, and does it pass the static checks (``validate``)? None if so."""
        return preflight(self.name, function, self.validate)

    def attempt(self, function: Callable, case: Case) -> "Attempt":
        """Step 2: call the learner's code on one case (:func:`run_case`), then the check's further in-process
        checks of the answer. Never raises. The grader's sandbox calls :func:`run_case` itself."""
        attempt = run_case(lambda: self.invoke(function, case), case, self.time_limit)
        if attempt.status == "returned" and self.extra is not None:
            try:
                attempt.extra = self.extra(function, case, attempt.got)
            except Exception as error:
                attempt.extra = f"checking your answer further raised {type(error).__name__}: {error}"
        return attempt

    def score(self, cases: Sequence[Case], attempts, problem: "Attempt | None" = None) -> CheckResult:
        """Steps 3 and 4: judge each case's attempt (in the grader: in the grader's own process)."""
        fail = lambda status, message: CheckResult(self.name, False, 0, self.points, f"❌ {self.name}: {message}", status)
        if problem is not None:
            return fail(problem.status, problem.message)
        checked = 0
        for case, attempt in zip(cases, attempts):
            if attempt.status == "error" and attempt.error is not None:
                return fail("error", self.describe_error(case, attempt.error))
            if attempt.status == "mutated":
                return fail("failed", attempt.message)
            if attempt.status != "returned":
                return fail(attempt.status, attempt.message)
            verdict = self.judge(case, attempt.got) or self.judge_gradients(case, attempt.gradients)
            if verdict is None:
                verdict = attempt.extra
            if verdict:
                return fail("failed", f"on {case.label}: {verdict}")
            checked += 1
        if checked < len(cases):  # every case must be answered: a report with fewer was tampered with
            return fail("incomplete", f"answers came back for only {checked} of the {len(cases)} cases: something "
                                      f"in your notebook interfered with the checking, so nothing can be credited.")
        verified = f" {self.what}" if self.what else ""
        message = f"✅ {self.name}: passed {checked} cases.{verified} ({self.points:g}/{self.points:g} points)"
        return CheckResult(self.name, True, self.points, self.points, message, "passed")

    def describe_error(self, case: Case, error: "ErrorInfo | BaseException") -> str:
        info = error if isinstance(error, ErrorInfo) else ErrorInfo.of(error)
        where = f" (in your code: `{info.line}`)" if info.line else ""
        said = f"{info.message}{where}"
        message = f"on {case.label}, your code raised {info.name}: {said}{'' if said.endswith('.') else '.'}"
        if info.name == "EOFError":  # the grader's functions read from an empty stdin
            return (f"on {case.label}, your function asked for input (input(), getpass() or sys.stdin){where}: a "
                    f"graded function gets everything it needs from its arguments; remove that call.")
        rebuilt = info.rebuild()
        for applies, hint in self.error_hints:
            try:
                if applies(case, rebuilt):
                    return f"{message} {hint}"
            except Exception:
                continue
        return message

    def judge_gradients(self, case: Case, gradients: dict | None) -> str | None:
        """For a case whose inputs require grad: do the learner's gradients equal the reference's? None if so."""
        if gradients is None:
            return None
        args, kwargs = copy.deepcopy((case.args, case.kwargs))  # fresh leaf tensors for a second gradient
        with np.errstate(all="ignore"):
            answer = self.answer(*args, **kwargs)
        expected = gradients_of(Case(case.label, args, kwargs), answer)
        if expected is None:
            return None
        if all(g is None for g in gradients.values()):
            return ("your output is not connected to autograd: no gradient reaches any input. Avoid .detach(), "
                    ".numpy(), torch.no_grad() and torch.tensor(...) on intermediate results, so that training can "
                    "backpropagate.")
        for name, want in expected.items():
            have = gradients.get(name)
            if want is None:
                continue
            name = self.argument_name(name)
            if have is None:
                return (f"no gradient reaches {name}: something in your function cuts it off from autograd "
                        f"(.detach(), .numpy(), torch.tensor(...), or a state that is detached).")
            if not close(want, have, rtol=1e-3, atol=1e-4):
                if not bool(np.isfinite(to_numpy(have)).all()):
                    return (f"the gradient with respect to {name} is not finite. A common cause: torch.where "
                            f"(or masking) keeps a branch it did not choose in the backward pass, so exp of a large "
                            f"number (inf) times 0 gives NaN; clamp inside that branch, or use torch's function.")
                return f"the gradient with respect to {name} is wrong: {first_difference(want, have)}."
        return None

    def argument_name(self, position: str) -> str:
        """``"argument 2"`` as the parameter's name, ``value``, when the function is called with the case's arguments."""
        index = int(position.rpartition(" ")[2])
        if self.call is not None:  # an adapter builds the call: the case's arguments are not the parameters
            return position
        try:
            parameters = list(inspect.signature(self.solution).parameters)
        except (TypeError, ValueError):
            return position
        return f"`{parameters[index]}`" if index < len(parameters) else position

    def __call__(self, function, seed: int = 0) -> CheckResult:
        """Run the check and print its verdict (what the learner calls in a notebook)."""
        __tracebackhide__ = True
        return self.run(function, seed=seed).show()


def _reordering(got, expected) -> tuple[int, ...] | None:
    """The order of the outputs when ``got`` holds the right results in another order, e.g. (1, 0, 2) for
    (l, m, out) where (m, l, out) was due; None when no reordering of them is right."""
    for order in itertools.permutations(range(len(expected))):
        if list(order) != sorted(order) and all(close(got[position], expected[i]) for position, i in enumerate(order)):
            return order
    return None
