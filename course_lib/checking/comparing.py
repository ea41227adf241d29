"""Comparing an answer with the reference: tolerances, the kind of value, where two arrays differ, and
:func:`like`, the predicate that recognises a mistake by the output it produces.

Part of :mod:`course_lib.checking`. Tests: tests/checks/test_framework.py.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np

from course_lib.checking.results import Case, Output


def to_numpy(value) -> np.ndarray:
    """A numpy copy of an array or tensor (detached from autograd), for comparing."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def close(a, b, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Same shape and values within tolerance; NaNs only where the other has NaNs; integers exactly.

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
    if np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer):
        return bool(np.array_equal(a, b))  # counts: exactly, or not at all
    try:
        return bool(np.allclose(a.astype(np.float64), b.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True))
    except (TypeError, ValueError):
        return False


def like(wrong: Callable[..., Any]) -> Callable[[Case, Any, Any], bool]:
    """A mistake predicate: the learner's answer equals what ``wrong(*case.args, **case.kwargs)`` returns, on a
    case where that differs from the right answer (a mistake that comes out right here explains nothing)."""

    def matches(case: Case, got, expected) -> bool:
        try:
            with np.errstate(all="ignore"):
                mistaken = wrong(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        except Exception:
            return False
        if isinstance(mistaken, tuple):
            if isinstance(expected, tuple) and len(expected) == len(mistaken) and all(
                    close(m, e) for m, e in zip(mistaken, expected)):
                return False
            return (isinstance(got, (tuple, list)) and len(got) == len(mistaken)
                    and all(close(g, m, rtol=1e-3, atol=1e-4) for g, m in zip(got, mistaken)))
        if close(mistaken, expected):
            return False
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
    if spec.dtype == "count" and not np.issubdtype(to_numpy(got).dtype, np.number):
        return f"{spec.name}: expected a number, got dtype {got.dtype}."
    if spec.dtype == "float" and not (np.issubdtype(to_numpy(got).dtype, np.floating)):
        return f"{spec.name}: expected floating-point numbers, got dtype {got.dtype}."
    return None


def precision_lost(case: Case, want, got, spec: Output) -> str | None:
    """Why a torch answer to float64 inputs came back in a lower precision (a .float() or a float32 constant
    inside), or None. Within the tolerance it would pass, yet it halves the precision of float64 work. (Numpy
    lessons may compute in float32 on purpose, to save memory: only torch answers are held to this.)"""
    if spec.kind != "torch" or spec.dtype != "float" or not hasattr(got, "dtype") or not hasattr(want, "dtype"):
        return None
    inputs = [arg for arg in (*case.args, *case.kwargs.values()) if hasattr(arg, "dtype") and hasattr(arg, "detach")]
    if not inputs or any(str(arg.dtype) != "torch.float64" for arg in inputs if arg.is_floating_point()):
        return None
    if str(want.dtype) == "torch.float64" and got.is_floating_point() and str(got.dtype) != "torch.float64":
        return (f"{spec.name}: the inputs are float64 and your answer is {got.dtype}: keep the input's dtype (no "
                f".float() or float32 constants inside), so that float64 work keeps its precision.")
    return None


def first_difference(expected, got) -> str:
    """Where and by how much two same-shaped arrays differ, in a sentence."""
    expected, got = to_numpy(expected).astype(np.float64), to_numpy(got).astype(np.float64)
    with np.errstate(invalid="ignore"):
        gap = np.abs(expected - got)
    gap = np.where(np.isnan(gap), np.inf, gap)
    index = np.unravel_index(int(np.argmax(gap)), gap.shape) if gap.size else ()
    want, have = float(expected[index]), float(got[index])
    if want.is_integer() and have.is_integer() and max(abs(want), abs(have)) >= 1e6:  # counts: every digit shows
        return f"largest difference {gap[index]:,.0f}: expected {want:,.0f}, got {have:,.0f}"
    return (
        f"largest difference {float(gap[index]):.3g} at index {tuple(int(i) for i in index)}: "
        f"expected {want:.6g}, got {have:.6g}"
    )
