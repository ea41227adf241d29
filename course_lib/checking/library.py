"""Does a learner's function hand its job to a library function (torch's attention)? Read from its live code,
for the check cell's hint; the grader reads the submitted source instead (:mod:`course_lib.grading.sources`).

Part of :mod:`course_lib.checking`. Tests: tests/checks/test_l03_self_attention_in_pytorch.py.
"""
from __future__ import annotations

import dis
import importlib
import types

NOT_AVAILABLE = ("{name} is not available while grading: it does the job of a function you are graded on. "
                 "Write it yourself.")  # the grader's words too (course_lib.grading.view)


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

    def hit(text: str, where: str) -> None:
        if isinstance(text, str) and any(name in text for name in library):
            found.append(f"`{text[:60]}` ({where})")

    for current, scope, names in learners_code(function):
        where = f"in `{current.co_name}`"
        owner = None  # the module an attribute is read from, when it is a global name
        previous = None
        for instruction in dis.get_instructions(current):
            if instruction.opname == "KW_NAMES" or (instruction.opname in ("CALL_KW", "CALL_FUNCTION_KW")
                                                    and previous is not None and previous.opname == "LOAD_CONST"):
                keywords = (current.co_consts[instruction.arg] if instruction.opname == "KW_NAMES"  # 3.11
                            else previous.argval)
                for keyword in keywords if isinstance(keywords, tuple) else ():
                    hit(keyword, f"a keyword {where}")  # e.g. enable_gqa=True
            previous = instruction
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
            if callable(value) and not _is_learners(value, scope):
                hit(getattr(value, "__name__", ""), f"`{name}` {where}")
    return list(dict.fromkeys(found))


def global_names(function) -> set[str]:
    """The global names that ``function`` reads, and that the learner's own functions and classes it calls
    read (followed as :func:`library_used` follows them): which of the exercise's other functions it uses."""
    return {name for _, _, names in learners_code(function) for name in names}


def learners_code(function):
    """Each code object that ``function`` runs, with its globals and the global names it reads: its own, its
    nested functions', and those of the learner's functions and classes that it reaches through its global
    names, closures and decorators (a library's code is not entered)."""
    todo, seen = [function], set()
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
            codes += [c for c in current.co_consts if isinstance(c, types.CodeType)]
            names = {i.argval for i in dis.get_instructions(current) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
            yield current, scope, names
            todo += [scope.get(name) for name in names if _is_learners(scope.get(name), scope)]


def course_code_used(function, withheld: set[str]) -> list[str]:
    """The dotted names in ``withheld`` (the course code that the grader takes out of an exercise's sandbox) that
    ``function`` reaches, read from its live code: global names bound to them, attributes of course modules
    (``llama.cached_attention``, ``course_lib.llama.model.bottom_right_mask``), imports inside the function,
    default arguments, base classes, and the same in the learner's own functions that it calls. The check cell
    says "not available" where the grader would, instead of giving points that the grader then takes away."""
    targets = {}
    for dotted in withheld:
        found = _resolve(dotted)
        if found is not None:
            targets[id(found)] = dotted
    hits: list[str] = []

    def hit(value) -> None:
        if id(value) in targets:
            hits.append(targets[id(value)])

    for value in (*(getattr(function, "__defaults__", None) or ()),
                  *(getattr(function, "__kwdefaults__", None) or {}).values(),
                  *(function.__mro__[1:] if isinstance(function, type) else ())):
        hit(value)
    for current, scope, _ in learners_code(function):
        chain = module = fromlist = None  # the value just loaded, the module just imported, its import's fromlist
        bound: dict = {}  # the function's local names bound to course modules or functions
        for instruction in dis.get_instructions(current):
            op, name = instruction.opname, instruction.argval
            if op in ("LOAD_GLOBAL", "LOAD_NAME"):
                chain = scope.get(name)
            elif op == "LOAD_FAST":
                chain = bound.get(name)
            elif op in ("LOAD_ATTR", "LOAD_METHOD"):
                chain = getattr(chain, name, None) if isinstance(chain, types.ModuleType) else None
            elif op == "IMPORT_NAME":  # `import a.b` gives a, `from a.b import c` and `import a.b as c` a.b
                is_course = isinstance(name, str) and name.split(".")[0] == "course_lib"
                module = chain = _module(name if fromlist is not None else name.split(".")[0]) if is_course else None
            elif op == "IMPORT_FROM":
                chain = None if module is None else getattr(module, name, None) or _module(f"{module.__name__}.{name}")
            elif op in ("STORE_FAST", "STORE_NAME"):
                if chain is not None:
                    bound[name] = chain
                chain = None
            else:
                chain = None
            fromlist = instruction.argval if op == "LOAD_CONST" else None
            if chain is not None:
                hit(chain)
    return list(dict.fromkeys(hits))


def _module(name: str):
    try:
        return importlib.import_module(name)
    except Exception:
        return None


def _resolve(dotted: str):
    """The object a dotted name of the course stands for (a module's attribute), or None."""
    module, _, attribute = dotted.rpartition(".")
    found = _module(module)
    return getattr(found, attribute, None) if found is not None else None


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
