"""The part of the grader (:mod:`course_lib.grade`) that runs inside the learner's kernel, and the plain-data
format both sides speak.

The grader writes a check's seeded cases to an ``.npz`` file; :func:`grade_in_kernel` reads them, calls the
learner's function on each (step 2 of a check, :meth:`Check.attempt`), and writes back what came out as plain
data: arrays as ``.npy`` bytes inside an ``.npz``, everything else as JSON. Nothing is pickled either way, so
no object from the learner's kernel ever reaches the grader: an answer is judged by its numbers alone, in the
grader's own process.

While the learner's code runs, a profile hook (``sys.setprofile``) watches for calls into the course's own
implementation of the function being graded, however it was imported or renamed.
"""
from __future__ import annotations

import difflib
import importlib
import json
import sys
import zipfile
from typing import Any

import numpy as np

MAX_ARRAY_BYTES = 64 * 2 ** 20  # an answer larger than this is described, not sent back
_META = "__meta__"


# ----------------------------------------------------------------------------------------------------------
# Plain data: a tree of arrays, tensors, numbers, strings, tuples, lists and dicts, without pickle
# ----------------------------------------------------------------------------------------------------------

class Returned:
    """Stands in, on the grader's side, for a returned object that is not plain data (only its description)."""

    def __init__(self, description: str):
        self.description = description

    def __repr__(self) -> str:
        return f"<{self.description}>"


def _describe(value) -> str:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{type(value).__module__.split('.')[0]}.{type(value).__name__} of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def encode(tree, arrays: dict[str, np.ndarray]):
    """A JSON-able description of ``tree``; its arrays and tensors go into ``arrays`` (identity preserved)."""
    seen: dict[int, str] = {}

    def walk(value):
        if value is None or isinstance(value, (bool, str)):
            return {"type": "value", "value": value}
        if isinstance(value, (int, float)) and type(value) in (int, float):
            if isinstance(value, float) and not np.isfinite(value):
                return {"type": "float", "value": repr(value)}
            return {"type": "value", "value": value}
        if isinstance(value, (tuple, list)) and type(value) in (tuple, list):
            return {"type": type(value).__name__, "items": [walk(item) for item in value]}
        if isinstance(value, dict) and type(value) is dict and all(isinstance(key, str) for key in value):
            return {"type": "dict", "items": {key: walk(item) for key, item in value.items()}}
        if id(value) in seen:
            return {"type": "same", "key": seen[id(value)]}
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(value, torch.Tensor):
            dtype = str(value.dtype)
            plain = value.detach().cpu()
            if plain.dtype in (torch.bfloat16, torch.float16):
                plain = plain.float()
            data = plain.resolve_conj().resolve_neg().numpy()
            kind = {"type": "torch", "dtype": dtype, "requires_grad": bool(value.requires_grad)}
        elif isinstance(value, np.ndarray) or isinstance(value, np.generic):
            data, kind = value, {"type": "numpy" if isinstance(value, np.ndarray) else "numpy-scalar"}
        else:
            return {"type": "object", "description": _describe(value)}
        data = np.array(data, copy=True, subok=False)  # a plain ndarray, whatever subclass came in
        if data.dtype.hasobject or data.nbytes > MAX_ARRAY_BYTES:
            return {"type": "object", "description": _describe(value)}
        key = f"a{len(arrays)}"
        arrays[key] = np.array(data, order="C", subok=False)  # (ascontiguousarray would make 0-d arrays 1-d)
        seen[id(value)] = key
        return {**kind, "key": key}

    return walk(tree)


def decode(node, arrays, made: dict[str, Any] | None = None):
    """The value that :func:`encode` described (tensors as torch tensors, other objects as :class:`Returned`)."""
    made = {} if made is None else made
    kind = node["type"]
    if kind == "value":
        return node["value"]
    if kind == "float":
        return float(node["value"])
    if kind in ("tuple", "list"):
        items = [decode(item, arrays, made) for item in node["items"]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {key: decode(item, arrays, made) for key, item in node["items"].items()}
    if kind == "same":
        return made[node["key"]]
    if kind == "object":
        return Returned(node["description"])
    data = np.array(arrays[node["key"]], copy=True)
    if kind == "numpy":
        value = data
    elif kind == "numpy-scalar":
        value = data[()]
    else:
        import torch

        value = torch.from_numpy(data).to(getattr(torch, node["dtype"].replace("torch.", "")))
        if node.get("requires_grad"):
            value.requires_grad_()
    made[node["key"]] = value
    return value


def save(path, tree) -> None:
    """Write ``tree`` as an ``.npz``: its arrays, and a JSON description stored as bytes (no pickle)."""
    arrays: dict[str, np.ndarray] = {}
    meta = encode(tree, arrays)
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def load(path):
    """Read what :func:`save` wrote, refusing anything pickled."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"unreadable answer file {path}: {error}") from None
    meta = json.loads(arrays.pop(_META).tobytes().decode())
    return decode(meta, arrays)


# ----------------------------------------------------------------------------------------------------------
# In the learner's kernel
# ----------------------------------------------------------------------------------------------------------

def fresh_checks():
    """A private copy of :mod:`course_lib.checks`, so that patches the learner made to it do not apply."""
    saved = {name: sys.modules.pop(name) for name in ("course_lib.checking", "course_lib.checks") if name in sys.modules}
    try:
        return importlib.import_module("course_lib.checks")
    finally:
        sys.modules.update(saved)


def implementation_codes(dotted: str) -> set:
    """The code objects of the course's implementation at ``dotted`` (a function, or every method of a class)."""
    if not dotted:
        return set()
    module_name, _, attribute = dotted.rpartition(".")
    target = getattr(importlib.import_module(module_name), attribute)
    functions = [target]
    if isinstance(target, type):
        functions = [vars(target)[name] for name in vars(target)]
    codes = set()
    for function in functions:
        function = getattr(function, "__func__", function)  # classmethod, staticmethod
        function = getattr(function, "__wrapped__", function)
        if hasattr(function, "__code__"):
            codes.add(function.__code__)
    return codes


class ReferenceWatch:
    """A profile hook that notes whether any of ``codes`` is called while it is installed."""

    def __init__(self, codes: set):
        self.codes = codes
        self.called = False
        self.intact = True

    def hook(self, frame, event, arg):
        if event == "call" and frame.f_code in self.codes:
            self.called = True

    def __enter__(self):
        self.previous = sys.getprofile()
        sys.setprofile(self.hook)
        return self

    def __exit__(self, *exc):
        self.intact = sys.getprofile() == self.hook  # switched off or replaced by the learner's code?
        sys.setprofile(self.previous)
        return False


def grade_in_kernel(name: str, namespace: dict, others: list[str], cases_path: str, answers_path: str,
                    time_limit: float) -> None:
    """Run the learner's ``namespace[name]`` on the cases in ``cases_path``; write what happened to ``answers_path``.

    While it runs, the exercise's ``others`` graded functions in ``namespace`` are replaced by the course's own,
    so that each function is graded on its own: a mistake in ``softmax`` does not cost points again in the
    attention function that calls it.
    """
    checks = fresh_checks()
    check = checks.CHECKS[name]
    check.time_limit = min(check.time_limit, time_limit)
    cases = [checks.Case(case["label"], tuple(case["args"]), dict(case["kwargs"])) for case in load(cases_path)]
    function = namespace.get(name)
    report: dict[str, Any] = {"preflight": None, "attempts": [], "missing": function is None}
    if function is None:  # deleted or renamed: name the functions with a similar name, if any
        defined = [key for key, value in namespace.items() if callable(value) and not key.startswith("_")]
        report["similar"] = difflib.get_close_matches(name, defined, n=3, cutoff=0.6)
        save(answers_path, report)
        return
    watch = ReferenceWatch(implementation_codes(check.implementation))
    with course_versions(namespace, {other: checks.CHECKS[other].implementation for other in others}), watch:
        problem = check.preflight(function)
        if problem is not None:
            report["preflight"] = {"status": problem.status, "message": problem.message}
        else:
            for case in cases:
                attempt = check.attempt(function, case)
                report["attempts"].append({"status": attempt.status, "message": attempt.message,
                                           "extra": attempt.extra, "got": attempt.got})
                if attempt.status != "returned":
                    break
    report["reference_called"] = watch.called
    report["watch_intact"] = watch.intact
    save(answers_path, report)


class course_versions:
    """Within the block, ``namespace[name]`` is the course's implementation (a dotted path) for each name given."""

    def __init__(self, namespace: dict, implementations: dict[str, str]):
        self.namespace, self.implementations = namespace, implementations

    def __enter__(self):
        self.saved = {name: self.namespace[name] for name in self.implementations if name in self.namespace}
        for name, dotted in self.implementations.items():
            module_name, _, attribute = dotted.rpartition(".")
            self.namespace[name] = getattr(importlib.import_module(module_name), attribute)
        return self

    def __exit__(self, *exc):
        for name in self.implementations:
            self.namespace.pop(name, None)
        self.namespace.update(self.saved)
        return False
