"""The course library as a submission's sandbox sees it: course_lib with the code that does the job of the
exercise's graded functions taken out.

Each function or class named by the exercise's checks (their ``implementation`` and ``withholds``) keeps its
name and signature, but calling it raises :class:`NotAvailableWhileGrading`; the package ``course_lib.checks``,
which holds the mistake simulators, is replaced by one module that says checks are off (its lesson modules are
left out). Everything else is the course's own code, so the exercise's own imports (an earlier lesson's
function) still work.
"""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import course_lib
from course_lib.checking.library import NOT_AVAILABLE
from course_lib.grading.sources import parse

ABSENT = {"course_lib.checks": '''"""Not available while grading: the grader runs the checks itself, outside your notebook."""


def __getattr__(name):
    if name.startswith("check_"):
        return lambda *args, **kwargs: print(f"({name} does not run while grading: the grader checks your "
                                             f"functions itself.)")
    raise AttributeError(f"course_lib.checks.{name} is not available while grading: write it yourself.")
'''}
STUB_MODULE = "course_lib._withheld"
STUB = '''"""What the grader put in place of the course's code for the graded functions (see course_lib.grading.view)."""


NOT_AVAILABLE = %r


class NotAvailableWhileGrading(RuntimeError):
    pass


def refuse(name):
    raise NotAvailableWhileGrading(NOT_AVAILABLE.format(name=name))


class _Refusing(type):
    def __getattr__(cls, attribute):
        refuse(cls.__withheld__)


def withheld_class(name):
    def init(self, *args, **kwargs):
        refuse(name)

    def init_subclass(cls, **kwargs):
        refuse(name)

    return _Refusing(name.rpartition(".")[2], (), {"__withheld__": name, "__init__": init,
                                                   "__init_subclass__": classmethod(init_subclass)})
'''


def build(folder: Path, withheld: set[str]) -> Path:
    """Write the sandbox's course_lib into ``folder/course_lib``; return ``folder`` (for the search path)."""
    source = Path(course_lib.__file__).parent
    target = folder / "course_lib"
    if target.exists():
        shutil.rmtree(target)
    for path in sorted(source.rglob("*.py")):
        relative = path.relative_to(source)
        module = ".".join(("course_lib", *relative.with_suffix("").parts)).removesuffix(".__init__")
        if any(module.startswith(f"{absent}.") for absent in ABSENT):
            continue  # a package that is absent has no modules either (course_lib.checks.l01_..., _common)
        out = target / relative
        out.parent.mkdir(parents=True, exist_ok=True)
        if module in ABSENT:
            out.write_text(ABSENT[module], encoding="utf-8")
            continue
        names = {dotted.rpartition(".")[2] for dotted in withheld if dotted.rpartition(".")[0] == module}
        text = path.read_text(encoding="utf-8")
        out.write_text(strip(text, module, names) if names else text, encoding="utf-8")
    (target / "_withheld.py").write_text(STUB % NOT_AVAILABLE, encoding="utf-8")
    return folder


def strip(text: str, module: str, names: set[str]) -> str:
    """``text`` with the top-level functions and classes in ``names`` replaced by stubs that refuse to run."""
    tree = parse(text)
    missing = set(names)
    body = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names:
            missing.discard(node.name)
            refusal = parse(f"import {STUB_MODULE}\n{STUB_MODULE}.refuse({module + '.' + node.name!r})").body
            node.body, node.decorator_list = refusal, []
            node.returns = None
        elif isinstance(node, ast.ClassDef) and node.name in names:
            missing.discard(node.name)
            node = parse(f"import {STUB_MODULE}\n{node.name} = {STUB_MODULE}.withheld_class("
                             f"{module + '.' + node.name!r})").body
        body.extend(node if isinstance(node, list) else [node])
    if missing:
        raise ValueError(f"{module} has no {', '.join(sorted(missing))} to withhold (renamed? update the checks)")
    tree.body = body
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"
