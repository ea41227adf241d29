"""While a check runs, the course lends its own versions of the exercise's earlier graded functions to the
learner's notebook, so that each function is judged on its own: one mistake in ``softmax`` costs the points of
``softmax``, not those of every function that calls it. ``course-grade`` does the same in its sandbox
(:mod:`course_lib.grading.worker`); the check cell does it in the learner's kernel, where nbgrader grades too.

A function of the learner's that fails its own check gets a note in the verdict of the function that uses it.

Part of :mod:`course_lib.checking`. Tests: tests/checks/test_lending.py.
"""
from __future__ import annotations

import contextlib
import inspect

from course_lib.checking.library import global_names


def earlier_checks(check) -> list:
    """The checks of the graded functions before ``check``'s in its exercise (lesson order, which is the
    notebook's): the functions lent while it runs. None for a check that belongs to no lesson."""
    from course_lib.checks import LESSON_MODULES

    for module in LESSON_MODULES:
        for index, member in enumerate(module.CHECKS):
            if member is check:
                return list(module.CHECKS[:index])
    return []


def withheld_with(check) -> set[str]:
    """The course code that the grader takes out of the sandbox of ``check``'s exercise (every graded function's
    implementation and what its check withholds): what the learner's function may not call."""
    from course_lib.checks import LESSON_MODULES

    for module in LESSON_MODULES:
        if any(member is check for member in module.CHECKS):
            return {name for member in module.CHECKS for name in (member.implementation, *member.withholds) if name}
    return {name for name in (check.implementation, *check.withholds) if name}


def learners_namespace(function) -> dict | None:
    """The globals of the notebook (or script) that defined ``function``: ``__main__``'s, where the learner's
    other functions live. None for a library's function or class, whose module is never changed."""
    try:
        if isinstance(function, type):
            methods = (getattr(value, "__func__", value) for value in vars(function).values())
            scopes = [method.__globals__ for method in methods if hasattr(method, "__globals__")]
            scope = scopes[0] if scopes else None
        else:
            scope = getattr(function, "__globals__", None)
    except Exception:  # an odd object that the check itself will judge: nothing to lend to
        return None
    return scope if isinstance(scope, dict) and scope.get("__name__") == "__main__" else None


@contextlib.contextmanager
def standing_in(namespace: dict | None, replacements: dict):
    """Within the block, ``replacements`` stand in ``namespace`` for what it held under those names; afterwards
    the namespace holds exactly what it held before, whatever happened (names it lacked are removed again)."""
    if namespace is None or not replacements:
        yield
        return
    missing = object()
    saved = {name: namespace.get(name, missing) for name in replacements}
    namespace.update(replacements)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is missing:
                namespace.pop(name, None)
            else:
                namespace[name] = value


def lent_functions(check, function) -> tuple[dict | None, dict]:
    """Where to lend, and what: the learner's namespace of ``function`` and the course's version of each of the
    exercise's earlier graded functions (empty when ``function`` is not the learner's)."""
    namespace = learners_namespace(function)
    if namespace is None:
        return None, {}
    return namespace, {earlier.name: as_specified(earlier.solution, namespace.get(earlier.name))
                       for earlier in earlier_checks(check)}


def as_specified(course_function, own):
    """The course's function, taking only the parameters that the learner's own version has (the exercise's
    def line), as course-grade lends the solution cell: the course's ``linear_attention`` takes ``is_causal``,
    the exercise's does not, and a later function that passes it must fail here as it fails there."""
    try:
        course, theirs = inspect.signature(course_function), inspect.signature(own)
    except (TypeError, ValueError):  # no own version (or no signature to read): the course's as it is
        return course_function
    specified = course.replace(parameters=[p for name, p in course.parameters.items() if name in theirs.parameters])
    name = course_function.__name__

    def lent(*args, **kwargs):
        try:
            specified.bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{name}() {error}") from None
        return course_function(*args, **kwargs)

    lent.__name__, lent.__signature__ = name, specified
    return lent


def notes_on_lent(check, function, namespace: dict | None, lent: dict) -> str:
    """A note for each lent function that ``function`` uses and whose own version in the notebook fails its own
    check: it was not used here, and it needs fixing. Empty when there is nothing to say."""
    if namespace is None or not lent:
        return ""
    try:
        used = global_names(function)
    except Exception:  # code that cannot be read: no note, the verdict stands
        return ""
    notes = []
    for earlier in earlier_checks(check):
        if earlier.name not in used:
            continue
        own = namespace.get(earlier.name)
        notes.append(lent_note(check.name, earlier.name, None if own is None else earlier.verdict(own).status))
    return "".join(notes)


def lent_note(name: str, earlier: str, status: str | None) -> str:
    """The note on ``name``'s verdict about the lent ``earlier``, given the status of the learner's own
    ``earlier`` (None: the notebook has none); empty when theirs passed. The check cell and course-grade both
    write it, so that feedback and grade never disagree."""
    if status == "passed":
        return ""
    problem = (f"your notebook defines no `{earlier}`" if status in (None, "missing")
               else f"your `{earlier}` is not written yet" if status == "not-implemented"
               else f"your `{earlier}` fails its own check")
    return (f"\n   Note: {problem}, so the course's {earlier} stood in for it here: this verdict is on "
            f"{name} alone. Your notebook still uses yours, so fix {earlier} too.")
