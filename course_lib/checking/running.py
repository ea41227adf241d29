"""Running the learner's code on one case, next to it (in a notebook's check cell, and in the grader's sandbox):
a time limit, exceptions turned into data, inputs changed in place refused, gradients collected.

Part of :mod:`course_lib.checking`. Tests: tests/checks/test_framework.py.
"""
from __future__ import annotations

import contextlib
import copy
import signal
import threading
import time
import traceback
from typing import Any, Callable

import numpy as np

from course_lib.checking.comparing import close, describe_type
from course_lib.checking.results import NOT_IMPLEMENTED, Attempt, Case, ErrorInfo


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


NO_FORWARD = ("your class has no `forward` method (is its name misspelt, e.g. `def foward`, or is it indented "
              "outside the class?): calling a layer, layer(x), runs its forward.")


def _no_forward(error: NotImplementedError) -> bool:
    """torch's own NotImplementedError for an nn.Module whose class defines no forward, not the exercise's stub."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and frames[-1].name == "_forward_unimplemented"


def gradient_seed(output):
    """The fixed upstream gradient used for gradient checks: the same on the learner's side and the grader's."""
    import torch

    generator = torch.Generator().manual_seed(0)
    return torch.rand(output.shape, generator=generator, dtype=torch.float64).to(output.dtype) + 0.5


def gradients_of(case: "Case", got) -> dict | None:
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
            gradients = gradients_of(case, got)
    except NotImplementedError as error:
        if _no_forward(error):
            return Attempt("failed", message=NO_FORWARD)
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
