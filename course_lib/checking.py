"""The machinery behind the learner checks (:mod:`course_lib.checks`) and, later, the grader.

A :class:`Check` knows, for one graded function: how to make seeded test cases, how to call the learner's
function on a case, the reference answer, and the mistakes learners really make (each recognised by the wrong
output it produces, or by a property of the output). Running a check never raises: stubs, exceptions,
infinite loops and odd return types all end in a :class:`CheckResult` whose message a learner can act on.

The steps are kept apart so that a grader can run step 2 in the learner's kernel and steps 1, 3, 4 in its
own process: 1) make cases, 2) call the function and turn its answer into plain data, 3) compare with the
reference, 4) diagnose.
"""
from __future__ import annotations

import contextlib
import copy
import dis
import importlib
import signal
import threading
import time
import traceback
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

DEFAULT_TIME_LIMIT = 10.0  # seconds per case; the reference needs milliseconds


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
    dtype: str = "float"  # "float" or "bool"


@dataclass
class Mistake:
    """A typical mistake: recognised when ``matches(case, got, expected)`` is true; ``message`` says what to fix."""

    message: str
    matches: Callable[[Case, Any, Any], bool]


@dataclass
class CheckResult:
    """The verdict of one check, shared by the in-notebook checks and the grader."""

    name: str
    passed: bool
    points: float
    max_points: float
    message: str
    status: str  # "passed", "failed", "not-implemented", "error", "timeout"
    shown: bool = field(default=False, repr=False)

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


class CheckTimeout(Exception):
    """Raised inside the learner's function when it runs past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Interrupt the body after ``seconds`` (SIGALRM on the main thread; elsewhere only measured afterwards)."""
    if seconds is None or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        start = time.perf_counter()
        yield
        if seconds is not None and time.perf_counter() - start > seconds:
            raise CheckTimeout()
        return

    def on_alarm(signum, frame):
        raise CheckTimeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def gradient_seed(output):
    """The fixed upstream gradient used for gradient checks: the same on the learner's side and the grader's."""
    import torch

    generator = torch.Generator().manual_seed(0)
    return torch.rand(output.shape, generator=generator, dtype=torch.float64).to(output.dtype) + 0.5


def _gradients(case: "Case", got) -> dict | None:
    """For a case with tensor inputs that require grad: d(sum(output * seed))/d(input) for each, or None for
    those the output does not depend on. None when no input requires grad."""
    import torch

    inputs = {f"argument {i}": a for i, a in enumerate(case.args) if isinstance(a, torch.Tensor) and a.requires_grad}
    if not inputs:
        return None
    output = got[0] if isinstance(got, (tuple, list)) and got else got
    if not isinstance(output, torch.Tensor) or not output.requires_grad or not output.is_floating_point():
        return {name: None for name in inputs}
    grads = torch.autograd.grad(output, list(inputs.values()), grad_outputs=gradient_seed(output), allow_unused=True)
    return {name: (None if g is None else g.detach()) for name, g in zip(inputs, grads)}


def run_case(invoke: Callable[[], Any], case: "Case", seconds: float | None) -> Attempt:
    """Call the learner's code on one case (``invoke`` does the call). Never raises.

    The one way learner code is called: in a notebook's check cell, and in the grader's sandbox. It stops the
    code after ``seconds``, notes an exception as :class:`ErrorInfo`, refuses answers that changed the inputs
    in place, and computes the gradients of inputs that require grad.
    """
    inputs = copy.deepcopy((case.args, case.kwargs))
    try:
        with time_limit(seconds), np.errstate(all="ignore"):
            got = invoke()
            gradients = _gradients(case, got)
    except NotImplementedError:
        return Attempt("not-implemented", message=NOT_IMPLEMENTED)
    except CheckTimeout:
        return Attempt("timeout", message=f"on {case.label}, your function ran for more than {seconds:g} s (the "
                                          f"reference takes milliseconds). Look for an endless loop.")
    except KeyboardInterrupt:
        raise
    except MemoryError:
        return Attempt("memory-limit", message=f"on {case.label}, your function ran out of memory. Look for an "
                                               f"array far larger than the inputs, or a list that never stops "
                                               f"growing.")
    except BaseException as error:  # the learner's code failed (sys.exit() included): say where and why
        return Attempt("error", error=ErrorInfo.of(error))
    if not _same_inputs(inputs, (case.args, case.kwargs)):
        return Attempt("mutated", message=f"on {case.label}, your function changed its inputs in place (e.g. "
                                          f"`x -= ...`, `x[...] = ...` or `x.add_(...)`). Compute into a new "
                                          f"array or tensor instead.")
    return Attempt("returned", got=got, gradients=gradients)


# ----------------------------------------------------------------------------------------------------------
# Comparing outputs
# ----------------------------------------------------------------------------------------------------------

def to_numpy(value) -> np.ndarray:
    """A numpy copy of an array or tensor (detached from autograd), for comparing."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def close(a, b, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Same shape and values within tolerance; NaNs only where the other has NaNs.

    The tolerances accept float32 round-off (about 1e-7 relative per operation, a few dozen operations deep)
    and any correct float64 answer, while every mistake the checks diagnose moves values by far more.
    """
    try:
        a, b = to_numpy(a), to_numpy(b)
    except Exception:
        return False
    if a.shape != b.shape:
        return False
    if a.dtype == bool or b.dtype == bool:
        return a.dtype == b.dtype and bool(np.array_equal(a, b))
    try:
        return bool(np.allclose(a.astype(np.float64), b.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True))
    except (TypeError, ValueError):
        return False


def like(wrong: Callable[..., Any]) -> Callable[[Case, Any, Any], bool]:
    """A mistake predicate: the learner's answer equals what ``wrong(*case.args, **case.kwargs)`` returns."""

    def matches(case: Case, got, expected) -> bool:
        try:
            with np.errstate(all="ignore"):
                mistaken = wrong(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        except Exception:
            return False
        if isinstance(mistaken, tuple):
            return (isinstance(got, (tuple, list)) and len(got) == len(mistaken)
                    and all(close(g, m, rtol=1e-3, atol=1e-4) for g, m in zip(got, mistaken)))
        return close(got, mistaken, rtol=1e-3, atol=1e-4)

    return matches


def describe_type(value) -> str:
    if type(value).__name__ == "Returned":  # the grader's stand-in for an object returned in the learner's kernel
        return value.description
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{type(value).__module__.split('.')[0]}.{type(value).__name__} of shape {tuple(value.shape)}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"a {type(value).__name__}"


def structure_problem(got, spec: Output) -> str | None:
    """Why ``got`` is not the kind of value ``spec`` asks for, or None when it is."""
    if spec.kind == "numpy":
        if isinstance(got, list):
            return f"{spec.name}: you returned a Python list; return a numpy array (wrap it in np.array(...))."
        if hasattr(got, "detach"):
            return f"{spec.name}: you returned a torch tensor; this lesson works in numpy, return a numpy array."
        if not isinstance(got, np.ndarray):
            return f"{spec.name}: expected a numpy array, got {describe_type(got)}."
    else:
        if isinstance(got, np.ndarray):
            return f"{spec.name}: you returned a numpy array; return a torch tensor (avoid .numpy() inside)."
        if not hasattr(got, "detach"):
            return f"{spec.name}: expected a torch tensor, got {describe_type(got)}."
    if spec.dtype == "bool" and got.dtype not in (bool, np.bool_) and str(got.dtype) != "torch.bool":
        return f"{spec.name}: expected a boolean array (True = may attend), got dtype {got.dtype}. Use dtype=bool."
    if spec.dtype == "float" and not (np.issubdtype(to_numpy(got).dtype, np.floating)):
        return f"{spec.name}: expected floating-point numbers, got dtype {got.dtype}."
    return None


def first_difference(expected, got) -> str:
    """Where and by how much two same-shaped arrays differ, in a sentence."""
    expected, got = to_numpy(expected).astype(np.float64), to_numpy(got).astype(np.float64)
    with np.errstate(invalid="ignore"):
        gap = np.abs(expected - got)
    gap = np.where(np.isnan(gap), np.inf, gap)
    index = np.unravel_index(int(np.argmax(gap)), gap.shape) if gap.size else ()
    return (
        f"largest difference {float(gap[index]):.3g} at index {tuple(int(i) for i in index)}: "
        f"expected {float(expected[index]):.6g}, got {float(got[index]):.6g}"
    )


# ----------------------------------------------------------------------------------------------------------
# A check
# ----------------------------------------------------------------------------------------------------------

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
            if len(self.outputs) == 2 and close(got[0], expected[1]) and close(got[1], expected[0]):
                return f"your two results are swapped: return ({names}) in that order."
            gots = tuple(got)
        else:
            gots = (got,)
        # 1) the right kind of value, 2) the right values, 3) else the most specific diagnosis we have
        for spec, have in zip(self.outputs, gots):
            problem = structure_problem(have, spec)
            if problem:
                return problem
        if all(close(want, have) for want, have in zip(expected, gots)):
            return None
        for mistake in self.mistakes:
            if mistake.matches(case, got, expected if len(self.outputs) > 1 else expected[0]):
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
        """Check ``function`` on the cases made with ``seed``. Never raises."""
        problem = self.preflight(function)
        if problem is None and self.library:  # what the grader reads in the source, read here in the live code
            used = library_used(function, self.library)
            if used:
                problem = Attempt("library-call", message=library_message(self.name, used))
        if problem is not None:
            return self.score([], [], problem)
        cases = self.make_cases(np.random.default_rng(seed)) if cases is None else cases
        attempts = (self.attempt(function, case) for case in cases)  # lazily: stop at the first failure
        return self.score(cases, attempts)

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
        message = f"on {case.label}, your code raised {info.name}: {info.message}{where}."
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
        expected = _gradients(Case(case.label, args, kwargs), answer)
        if expected is None:
            return None
        if all(g is None for g in gradients.values()):
            return ("your output is not connected to autograd (requires_grad is False): avoid .detach(), .numpy() "
                    "and torch.tensor(...) on intermediate results, so that training can backpropagate.")
        for name, want in expected.items():
            have = gradients.get(name)
            if want is None:
                continue
            if have is None:
                return (f"no gradient reaches {name}: something in your function cuts it off from autograd "
                        f"(.detach(), .numpy(), torch.tensor(...), or a state that is detached).")
            if not close(want, have, rtol=1e-3, atol=1e-4):
                if not bool(np.isfinite(to_numpy(have)).all()):
                    return f"the gradient with respect to {name} is not finite."
                return f"the gradient with respect to {name} is wrong: {first_difference(want, have)}."
        return None

    def __call__(self, function, seed: int = 0) -> CheckResult:
        """Run the check and print its verdict (what the learner calls in a notebook)."""
        return self.run(function, seed=seed).show()


def library_message(name: str, used: list[str]) -> str:
    """The verdict on a function that hands its job to a library (the check cell's and the grader's words)."""
    return (f"your {name} uses a library function that does the whole job: {', '.join(used[:3])}. The exercise is "
            f"to write it yourself, so it earns no points.")


def library_used(function, library: tuple[str, ...]) -> list[str]:
    """The ``library`` names (matched inside identifiers) that ``function`` reaches, read from its live code:
    attributes and imports in its bytecode, the objects its global names are bound to, string constants given
    to ``getattr``, and the same in the learner's own functions and classes that it calls (followed through
    globals, closures and decorators). The check cell's hint; the grader reads the submitted source instead
    (:mod:`course_lib.grading.sources`)."""
    found: list[str] = []
    todo, seen = [function], set()

    def hit(text: str, where: str) -> None:
        if isinstance(text, str) and any(name in text for name in library):
            found.append(f"`{text[:60]}` ({where})")

    while todo:
        target = todo.pop()
        if id(target) in seen:
            continue
        seen.add(id(target))
        if isinstance(target, type):  # its methods, and its bases that the learner wrote too
            todo += [getattr(v, "__func__", getattr(v, "fget", v)) for v in vars(target).values()]
            todo += [base for base in target.__mro__[1:] if base.__module__ == target.__module__]
            continue
        code = getattr(target, "__code__", None)
        if not isinstance(code, types.CodeType):
            continue
        scope = getattr(target, "__globals__", {})
        todo += [c.cell_contents for c in (target.__closure__ or ()) if _cell_filled(c)]
        codes = [code]
        while codes:
            current = codes.pop()
            where = f"in `{current.co_name}`"
            codes += [c for c in current.co_consts if isinstance(c, types.CodeType)]
            names = {i.argval for i in dis.get_instructions(current) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
            owner = None  # the module an attribute is read from, when it is a global name
            for instruction in dis.get_instructions(current):
                if instruction.opname in ("LOAD_ATTR", "LOAD_METHOD", "IMPORT_NAME", "IMPORT_FROM"):
                    if owner is not SELF and not getattr(owner, "__name__", "").startswith("course_lib"):
                        hit(instruction.argval, where)  # (the course's is withheld instead; self.x is the learner's)
                if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                    owner = scope.get(instruction.argval)
                else:
                    owner = SELF if instruction.opname == "LOAD_FAST" and instruction.argval in ("self", "cls") else None
            if names & {"getattr", "vars"}:
                for constant in current.co_consts:
                    hit(constant, where)
            for name in names:
                value = scope.get(name)
                if _is_learners(value, scope):
                    todo.append(value)
                elif callable(value):
                    hit(getattr(value, "__name__", ""), f"`{name}` {where}")
    return list(dict.fromkeys(found))


SELF = object()  # an attribute read from self or cls


def _cell_filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _is_learners(value, scope: dict) -> bool:
    """A function or class defined in the learner's notebook (the same globals), not a library's."""
    if isinstance(value, type):
        return value.__module__ == scope.get("__name__")
    return getattr(value, "__globals__", None) is scope


def preflight(name: str, function, validate: Callable[[Callable], str | None] | None) -> "Attempt | None":
    """Is ``function`` something to call, and does it pass the static checks ``validate``? None if so.
    Runs next to the learner's code (in a notebook, and in the grader's sandbox)."""
    if function is None or not callable(function):
        return Attempt("failed", message=f"expected a function, got {describe_type(function)}. Pass the "
                                         f"function itself, without calling it: check_{name}({name}).")
    if validate is not None:
        try:
            problem = validate(function)
        except NotImplementedError:
            return Attempt("not-implemented", message=NOT_IMPLEMENTED)
        except Exception as error:
            problem = f"{type(error).__name__}: {error}"
        if problem:
            return Attempt("failed", message=problem)
    return None


def memory_budget(case: Case) -> int:
    """Bytes a function may use beyond the course's solution on a memory probe: a quarter of the float32
    (..., T, S) scores, which only an implementation that builds them (or the weights, or the mask) exceeds."""
    query, key = case.args[0], case.args[1]
    return int(np.prod(query.shape[:-1])) * int(key.shape[-2])  # 4 bytes a score, a quarter of them


def _same_inputs(before, after) -> bool:
    """True when the case's inputs are unchanged (the learner did not modify them in place)."""
    flat_before, flat_after = _leaves(before), _leaves(after)
    if len(flat_before) != len(flat_after):
        return False
    for a, b in zip(flat_before, flat_after):
        if hasattr(a, "shape"):
            if not (hasattr(b, "shape") and close(a, b, rtol=0, atol=0)):
                return False
    return True


def _leaves(tree) -> list:
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in _leaves(item)]
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in _leaves(tree[key])]
    return [tree]
