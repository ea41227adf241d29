"""What the grader reads in a submission's source, in its own process, before anything runs.

* which top-level names each cell binds (so a notebook stripped of its nbgrader metadata, or renamed, is still
  recognised by its functions, and a cell that defines a function is known as that function's cell);
* a graded function's *closure*: its definition and the top-level definitions, assignments and imports it
  refers to, followed name by name;
* in that closure, any use of a library function that does the graded function's job (the check's
  ``library`` names: as an attribute, an imported name, a keyword, or ``getattr(module, "name")``), and code
  whose calls the grader cannot read (eval, exec, __import__, importlib, a computed attribute of a module);
* a later import from course_lib that replaced the learner's own function.
"""
from __future__ import annotations

import ast
import functools
import symtable
import threading
from dataclasses import dataclass, field

DYNAMIC_CALLS = {"eval", "exec", "compile", "__import__", "globals", "vars", "locals", "breakpoint"}
DYNAMIC_NAMES = {"importlib", "__builtins__", "builtins", "__dict__", "__getattribute__", "attrgetter",
                 "methodcaller", "__globals__", "__code__", "__closure__", "dis", "inspect", "linecache",
                 # looking at the grader's own frames and objects (where its requests are)
                 "_getframe", "currentframe", "_current_frames", "f_back", "f_locals", "f_globals", "tb_frame",
                 "get_objects", "get_referrers", "get_referents",
                 # work done in another process, where the grader's memory measurement does not look
                 "fork", "forkpty", "subprocess", "multiprocessing", "Popen", "posix_spawn", "ProcessPoolExecutor"}

_PARSING = threading.Lock()


def parse(text: str) -> ast.Module:
    """ast.parse, one thread at a time: CPython 3.11 builds AST objects with a recursion counter that threads
    share, and two threads parsing at once can fail with 'SystemError: AST constructor recursion depth mismatch'
    (CPython gh-106905); the grader grades --jobs submissions in threads."""
    with _PARSING:
        return ast.parse(text)


@dataclass
class Binding:
    name: str
    cell: int  # index of the notebook cell
    line: int  # line in the cell
    node: ast.AST
    kind: str  # "def", "class", "assign", "import"
    module: str = ""  # for an import: the module it comes from
    imported: str = ""  # for an import: the name imported ("*" for a star import)


@dataclass
class Source:
    """The parsed code cells of a notebook, and the top-level bindings in cell order."""

    cells: dict[int, str]
    trees: dict[int, ast.Module] = field(default_factory=dict)
    bindings: list[Binding] = field(default_factory=list)
    unparsable: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, cells: dict[int, str]) -> "Source":
        source = cls(cells)
        for index, text in cells.items():
            try:
                tree = parse(python_of(text))
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                source.unparsable.append(index)
                continue
            source.trees[index] = tree
            for node in tree.body:
                found = _bindings(node, index)
                named = {b.name for b in found}
                line = getattr(node, "lineno", 0)
                # names bound any other way (for, with, :=, match, `global` in a function) and containers or
                # attributes filled in place (TOOLS.update(...), obj.attr = ...): the statement binds them too
                found += [Binding(name, index, line, node, "assign") for name in sorted(bound_names(node) - named)]
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    found += [Binding(name, index, line, node, "mutate") for name in sorted(_mutated(node) - named)]
                source.bindings += found
        return source

    def defined(self, name: str) -> Binding | None:
        """The last top-level def or class of ``name``."""
        found = [b for b in self.bindings if b.name == name and b.kind in ("def", "class", "assign")]
        return found[-1] if found else None

    def defining_cells(self) -> dict[int, set[str]]:
        cells: dict[int, set[str]] = {}
        for binding in self.bindings:
            if binding.kind in ("def", "class"):
                cells.setdefault(binding.cell, set()).add(binding.name)
        return cells

    def closure(self, name: str, lent: set[str] = frozenset()) -> list[Binding]:
        """The bindings the function ``name`` depends on, itself first, following names through top-level code
        (but not into ``lent``: the grader's own versions stand in for those while ``name`` is graded)."""
        by_name: dict[str, list[Binding]] = {}
        for binding in self.bindings:
            by_name.setdefault(binding.name, []).append(binding)
        todo, seen, found = [name], set(), []
        while todo:
            current = todo.pop()
            if current in seen or (current in lent and current != name):
                continue
            seen.add(current)
            for binding in by_name.get(current, []):
                found.append(binding)
                todo += sorted(global_names(binding.node))
        return found

    def imports(self) -> list[Binding]:
        return [b for b in self.bindings if b.kind == "import"]

    @staticmethod
    def statements(bindings: list[Binding]) -> list[str]:
        """The source of these bindings' statements, each once, in notebook order: a function's own code without
        the demo code that shares its cells."""
        unique = {id(b.node): b for b in bindings}.values()
        return [ast.unparse(b.node) for b in sorted(unique, key=lambda b: (b.cell, b.line))]

    def replaced_by_import(self, name: str) -> Binding | None:
        """An import after the learner's own def of ``name`` that binds ``name`` again (star imports included,
        when the module exports it)."""
        own = [b for b in self.bindings if b.name == name and b.kind in ("def", "class")]
        if not own:
            return None
        last = (own[-1].cell, own[-1].line)
        for binding in self.bindings:
            if binding.kind != "import" or (binding.cell, binding.line) <= last:
                continue
            if binding.name == name or (binding.imported == "*" and _exports(binding.module, name)):
                return binding
        return None


MUTATORS = {"update", "append", "extend", "insert", "setdefault", "add", "__setitem__", "__setattr__"}


def bound_names(node: ast.AST) -> frozenset[str]:
    """The names a top-level statement binds in the notebook's namespace, however it binds them."""
    return _bound_names(ast.unparse(node))


@functools.lru_cache(maxsize=4096)
def _bound_names(text: str) -> frozenset[str]:
    try:
        top = symtable.symtable(text, "<cell>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return frozenset()
    names = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    tables = list(top.get_children())
    while tables:
        table = tables.pop()
        names |= {s.get_name() for s in table.get_symbols() if s.is_declared_global() and s.is_assigned()}
        tables += table.get_children()
    return frozenset(names)


def _mutated(node: ast.AST) -> set[str]:
    """Names a statement fills in place: ``X.update(...)``, ``X[k] = ...``, ``X.a = ...``, ``setattr(X, ...)``."""
    names = set()
    for part in ast.walk(node):
        if isinstance(part, ast.Call):
            function = part.func
            if isinstance(function, ast.Attribute) and function.attr in MUTATORS:
                names.add(_root(function.value))
            elif isinstance(function, ast.Name) and function.id == "setattr" and part.args:
                names.add(_root(part.args[0]))
        elif isinstance(part, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            for target in part.targets if isinstance(part, ast.Assign) else [part.target]:
                if isinstance(target, (ast.Subscript, ast.Attribute)):
                    names.add(_root(target))
    return {n for n in names if n}


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def global_names(node: ast.AST) -> frozenset[str]:
    """The names a top-level statement looks up in the notebook's namespace: for a def, its free names (not its
    parameters or locals, which may share a name with some demo cell's variable), in nested functions too."""
    return _global_names(ast.unparse(node))


@functools.lru_cache(maxsize=4096)
def _global_names(text: str) -> frozenset[str]:
    try:
        top = symtable.symtable(text, "<cell>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # unparse output is valid, but be safe
        return frozenset(n.id for n in ast.walk(parse(text)) if isinstance(n, ast.Name))
    names, tables = set(), [(top, True)]
    while tables:
        table, at_top = tables.pop()
        names |= {s.get_name() for s in table.get_symbols() if s.is_referenced() and (at_top or s.is_global())}
        tables += [(child, False) for child in table.get_children()]
    return frozenset(names)


def python_of(text: str) -> str:
    """A cell's source as plain Python (IPython magics and shell escapes turned into calls)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(text)
    except Exception:
        return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("%", "!")))


def _bindings(node: ast.stmt, cell: int) -> list[Binding]:
    line = getattr(node, "lineno", 0)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [Binding(node.name, cell, line, node, "def")]
    if isinstance(node, ast.ClassDef):
        return [Binding(node.name, cell, line, node, "class")]
    if isinstance(node, ast.Import):
        return [Binding((a.asname or a.name).split(".")[0], cell, line, node, "import", a.name, a.name)
                for a in node.names]
    if isinstance(node, ast.ImportFrom):
        return [Binding(a.asname or a.name, cell, line, node, "import", node.module or "", a.name) for a in node.names]
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        return [Binding(n, cell, line, node, "assign") for n in names]
    found = []
    if isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):  # definitions nested in top-level blocks
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                found += _bindings(child, cell)
            for grandchild in ast.iter_child_nodes(child) if isinstance(child, ast.ExceptHandler) else ():
                if isinstance(grandchild, ast.stmt):
                    found += _bindings(grandchild, cell)
    return found


def _exports(module: str, name: str) -> bool:
    if not module.startswith("course_lib"):
        return False
    try:
        import importlib

        target = importlib.import_module(module)
    except Exception:
        return False
    exported = getattr(target, "__all__", None)
    return name in exported if exported is not None else hasattr(target, name) and not name.startswith("_")


def library_uses(bindings: list[Binding], library: tuple[str, ...], course_names: set[str] = frozenset()) -> list[str]:
    """The library names (``library``, matched inside identifiers) used in these bindings, as ``text (line)``.
    Attributes of ``course_names`` (names bound to course_lib modules) are the course's code, not a library's:
    the sandbox withholds those instead."""
    if not library:
        return []
    found = []
    for binding in bindings:
        if binding.kind == "import" and binding.module.startswith("course_lib"):
            continue  # the course's own code: withheld in the sandbox instead (see course_lib.grading.view)
        docstrings = {id(n.body[0].value) for n in ast.walk(binding.node)
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(binding.node):
            texts = []
            if isinstance(node, ast.Attribute):
                if not _is_module(node, set(course_names)) and not _is_own(node.value):  # self._scaled_dot_product
                    texts.append(node.attr)
            elif isinstance(node, ast.alias):
                texts.append(node.name)
            elif isinstance(node, ast.keyword) and node.arg:
                texts.append(node.arg)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                  and len(node.args) >= 2 and constant_string(node.args[1]) is not None):
                texts.append(constant_string(node.args[1]))  # getattr(F, "name") is F.name
            elif isinstance(node, ast.Subscript) and _is_namespace(node.value) and constant_string(node.slice):
                texts.append(constant_string(node.slice))  # vars(F)["name"], F.__dict__["na" + "me"]
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier()
                  and id(node) not in docstrings):
                texts.append(node.value)  # a name as a string, for reduce(getattr, [...]) and its like
            for text in texts:
                hit = next((name for name in library if name in text), None)
                if hit:
                    found.append(f"`{text[:60]}` (cell {binding.cell + 1}, line {getattr(node, 'lineno', binding.line)})")
    return list(dict.fromkeys(found))


def dynamic_code(bindings: list[Binding]) -> list[str]:
    """Calls in these bindings that the grader cannot read: eval, exec, __import__, importlib, ..., or an
    attribute fetched by a computed name (``getattr(F, name)``, ``vars(F)[key]``), from anything but the
    object's own ``self`` or ``cls``."""
    found = []
    for binding in bindings:
        if binding.kind == "import":
            if binding.module.split(".")[0] == "importlib" or binding.imported.split(".")[0] == "importlib":
                found.append(f"`import importlib` (cell {binding.cell + 1})")
            elif not _installed(binding.module.split(".")[0]):
                found.append(f"`{binding.module}`, a module that is not installed (written by the notebook itself?) "
                             f"(cell {binding.cell + 1})")
            continue
        for node in ast.walk(binding.node):
            where = f"(cell {binding.cell + 1}, line {getattr(node, 'lineno', binding.line)})"
            if isinstance(node, ast.Name) and (node.id in DYNAMIC_CALLS or node.id in DYNAMIC_NAMES):
                found.append(f"`{node.id}` {where}")
            elif isinstance(node, ast.Attribute) and (node.attr in DYNAMIC_NAMES or _is_sys_modules(node)):
                found.append(f"`.{node.attr}` {where}")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                  and len(node.args) >= 2 and constant_string(node.args[1]) in DYNAMIC_NAMES):
                found.append(f"`getattr(…, {constant_string(node.args[1])!r})` {where}")
            elif isinstance(node, ast.Name) and node.id == "getattr" and not _is_called(node, binding.node):
                found.append(f"`getattr` passed as a value {where}")
            elif isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                    (a.name if isinstance(node, ast.Import) else node.module or "").split(".")[0] == "importlib"
                    for a in node.names):
                found.append(f"`import importlib` {where}")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("getattr", "setattr", "hasattr") and len(node.args) >= 2
                  and constant_string(node.args[1]) is None and not _is_own(node.args[0])):
                found.append(f"`{node.func.id}` with a computed name {where}")
    return list(dict.fromkeys(found))


def constant_string(node: ast.AST) -> str | None:
    """The string an expression always is: a constant, or constants joined by ``+`` (``'scaled_' + 'dot'``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = constant_string(node.left), constant_string(node.right)
        return None if left is None or right is None else left + right
    return None


@functools.lru_cache(maxsize=256)
def _installed(module: str) -> bool:
    """Is this top-level module part of Python or the environment (so its code is what the grader expects)?"""
    import importlib.util

    if not module or module == "course_lib":
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _is_sys_modules(node: ast.Attribute) -> bool:
    return node.attr == "modules" and isinstance(node.value, ast.Name) and node.value.id == "sys"


def _is_called(name: ast.Name, tree: ast.AST) -> bool:
    """Is this use of a name the function of a call (``getattr(x, "a")``), rather than a value passed on?"""
    return any(isinstance(n, ast.Call) and n.func is name for n in ast.walk(tree))


def _is_namespace(node: ast.AST) -> bool:
    """``vars(x)`` or ``x.__dict__``: a lookup in it by a constant key is an attribute by another name."""
    return ((isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "vars")
            or (isinstance(node, ast.Attribute) and node.attr == "__dict__"))


def _is_own(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def _is_module(node: ast.AST, modules: set[str]) -> bool:
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id in modules
