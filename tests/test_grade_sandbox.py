"""Attacks on the grader, as a clever or careless student would try them: each is a submission with the verdict
it must get, all graded in one sandboxed batch; afterwards nothing outside the sandboxes has changed, no
process of theirs is alive, and every report exists. Without bubblewrap these tests skip, saying why, except in
CI (CI=true), where they must run."""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
from pathlib import Path

import pytest

import submissions
from submissions import Expected, add_cell, replace_function
from course_lib.grading import batch, files, reports, sandbox
from course_lib.release import ROOT

WHY = sandbox.unavailable()
if WHY and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI must run the sandbox tests, but {WHY}")
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"no sandbox here: {WHY}")

MARKER = "COURSE_ATTACK_MARKER"
ESCAPES = [ROOT / "course_lib" / f"{MARKER}.py", ROOT / ".venv" / f"{MARKER}.pth", Path(f"/tmp/{MARKER}_escaped"),
           Path.home() / f"{MARKER}_escaped"]
SOLUTION_SOFTMAX = ("import numpy as np\ndef softmax(x, axis=-1):\n    e = np.exp(x - x.max(axis=axis, keepdims=True))\n"
                    "    return e / e.sum(axis=axis, keepdims=True)\n")
TEACHER_SECRET = "the-teachers-own-secret-value"

BASE03 = ROOT / "solutions" / "03_self_attention_in_pytorch.ipynb"
BASE09 = ROOT / "solutions" / "09_linear_attention.ipynb"


def sdpa(body: str) -> str:
    """A torch attention function for exercise 03 (graded as ``sdpa``) with the given body."""
    return ("import torch\nimport torch.nn.functional as F\n"
            f"def sdpa(query, key, value, attn_mask=None, is_causal=False):\n{body}")


# name -> (base notebook, edit, expected verdict). Escapes are checked after the batch for all of them.
ATTACKS = {
    # doing the job with the course's own code, however it is reached
    "reference_from_a_thread": (None, replace_function("softmax", (
        "import threading\nfrom course_lib import numpy_attention\n"
        "def softmax(x, axis=-1):\n    out = {}\n"
        "    worker = threading.Thread(target=lambda: out.update(r=numpy_attention.softmax(x, axis)))\n"
        "    worker.start(); worker.join()\n    return out['r']\n")),
        Expected("ok", {"softmax": "error"})),
    "reference_code_object_cloned": (None, replace_function("softmax", (
        "import types\nfrom course_lib.numpy_attention import softmax as course\n"
        "softmax = types.FunctionType(course.__code__, course.__globals__, 'softmax', course.__defaults__)\n")),
        Expected("ok", {"softmax": "unverifiable"}, says="__code__")),
    "solutions_read_from_disk": (None, replace_function("softmax", (
        "import json\n"
        f"cells = json.load(open({str(ROOT / 'solutions' / '01_attention_by_hand.ipynb')!r}))['cells']\n"
        "exec(''.join(next(c['source'] for c in cells if 'def softmax' in ''.join(c['source']))))\n")),
        Expected("ok", {"softmax": "missing"}, says="No such file")),
    "the_checks_reference": (None, replace_function("softmax", (
        "from course_lib import checks\n"
        "def softmax(x, axis=-1):\n    return checks.CHECKS['softmax'].reference(x, axis)\n")),
        Expected("ok", {"softmax": "error"}, says="not available while grading")),
    "answers_for_the_old_hidden_seeds": (None, replace_function("softmax", (
        "import numpy as np\nTABLE = {}\n"  # a table for cases the student could compute beforehand: no hit
        "def softmax(x, axis=-1):\n    return TABLE.get(x.tobytes(), np.zeros_like(x))\n")),
        Expected("ok", {"softmax": "failed"})),
    # doing the job with torch's own code
    "torch_sdpa": (BASE03, replace_function("sdpa", sdpa(
        "    output = F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, is_causal=is_causal)\n"
        "    return output, None\n")), Expected("ok", {"sdpa": "library-call"}, says="scaled_dot_product_attention")),
    "torch_sdpa_through_an_alias": (BASE03, lambda nb: (add_cell(
        "from torch.nn.functional import scaled_dot_product_attention as fast\n", position=1)(nb),
        replace_function("sdpa", sdpa("    return fast(query, key, value), None\n"))(nb)),
        Expected("ok", {"sdpa": "library-call"})),
    "torch_sdpa_by_a_computed_name": (BASE03, replace_function("sdpa", sdpa(
        "    name = 'scaled_dot' + '_product_attention'\n    return getattr(F, name)(query, key, value), None\n")),
        Expected("ok", {"sdpa": "unverifiable"}, says="cannot tell what it calls")),
    "torch_sdpa_through_eval": (BASE03, replace_function("sdpa", sdpa(
        "    return eval('F.scaled_dot' + '_product_attention')(query, key, value), None\n")),
        Expected("ok", {"sdpa": "unverifiable"})),
    # a lent function asked to do more than the exercise says
    "lent_function_asked_for_the_whole_job": (BASE09, replace_function("causal_linear_attention", (
        "def causal_linear_attention(query, key, value):\n    return linear_attention(query, key, value, is_causal=True)\n")),
        Expected("ok", {"causal_linear_attention": "error"}, says="is_causal")),
    # reaching outside the sandbox
    "kills_and_stops_its_parent": (None, add_cell(
        "import os, signal\nfor sig in (signal.SIGSTOP, signal.SIGKILL):\n    try:\n        os.kill(os.getppid(), sig)\n"
        "    except OSError:\n        pass\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n"), Expected("ok")),
    "a_setsid_child_that_outlives_it": (None, add_cell(
        "import subprocess, sys\n"
        f"code = 'import time, pathlib\\ntime.sleep(4)\\nfor p in {[str(p) for p in ESCAPES]!r}:\\n"
        f"    try:\\n        pathlib.Path(p).write_text(\"forged\")\\n    except OSError:\\n        pass\\n# {MARKER}'\n"
        "subprocess.Popen([sys.executable, '-c', code], start_new_session=True)\n"), Expected("ok")),
    "writes_into_the_course_and_the_venv": (None, add_cell(
        f"for p in {[str(p) for p in ESCAPES]!r}:\n    try:\n        open(p, 'w').write('import os  # {MARKER}')\n"
        "    except OSError as error:\n        print(error)\n"
        f"try:\n    open({str(ROOT / 'course_lib' / 'numpy_attention.py')!r}, 'a').write('# {MARKER}')\n"
        "except OSError as error:\n    print(error)\n"), Expected("ok")),
    "overwrites_a_classmate": (None, add_cell(
        "import glob\nfor path in glob.glob('/tmp/**/*.ipynb', recursive=True) + glob.glob('../*.ipynb'):\n"
        "    try:\n        open(path, 'w').write('{}')\n    except OSError:\n        pass\n"), Expected("ok")),
    "pip_installs_a_package": (None, add_cell("%pip install --quiet six\n!pip install --quiet six\n"), Expected("ok")),
    "puts_the_environment_in_its_feedback": (None, replace_function("softmax", (
        "import os, sys\ndef softmax(x, axis=-1):\n    raise ValueError(str(dict(os.environ)) + ' '.join(sys.argv))\n")),
        Expected("ok", {"softmax": "error"}, says="ValueError")),
    "forges_the_grader_s_channel": (None, add_cell(
        "import os\nfor fd in range(3, 40):\n    try:\n        os.write(fd, b'{\"op\": \"graded\", \"bytes\": 999999999999}\\n')\n"
        "    except OSError:\n        pass\n"), Expected("crashed", says="grader's own channel")),
    "a_fork_bomb": (None, add_cell(
        "import os\nchildren = 0\nfor _ in range(500):\n    try:\n        if os.fork() == 0:\n            import time\n"
        "            time.sleep(30)\n            os._exit(0)\n        children += 1\n    except OSError:\n        break\n"
        "print(children, 'children')\n"), Expected("ok")),
    "fills_the_disk": (None, add_cell(
        "try:\n    with open('big.bin', 'wb') as f:\n        for _ in range(2048):\n            f.write(b'0' * 2 ** 20)\n"
        "except OSError as error:\n    print(error)\n"), Expected("ok")),
    # careless students
    "an_exit_cell": (None, add_cell("exit()\n", position=3), Expected("ok", says="`exit()` asks the kernel to exit")),
    "a_star_import_replaces_softmax": (None, add_cell("from course_lib.numpy_attention import *\n", position=6),
                                       Expected("ok", {"softmax": "not-available"}, says="replaced your own softmax")),
    "a_function_that_asks_for_input": (None, replace_function("softmax", (
        "def softmax(x, axis=-1):\n    axis = int(input('axis? '))\n    return x\n")),
        Expected("ok", {"softmax": "error"}, says="asked for input")),
    "metadata_stripped": (None, lambda nb: [cell.metadata.clear() for cell in nb.cells],
                          Expected("ok", says="recognised by its functions")),
}


def write_attacks(folder: Path) -> dict[Path, Expected]:
    import nbformat

    made = {}
    for name, (base, edit, expected) in ATTACKS.items():
        notebook = nbformat.read(str(base or submissions.BASE), as_version=4)
        edit(notebook)
        path = folder / f"{name}.ipynb"
        nbformat.write(notebook, str(path))
        made[path] = expected
    return made


def write_odd_files(folder: Path) -> dict[Path, Expected]:
    made = {}
    (folder / "zero.ipynb").symlink_to("/dev/zero")
    made[folder / "zero.ipynb"] = Expected("not-a-file", says="symbolic link")
    os.mkfifo(folder / "fifo.ipynb")
    made[folder / "fifo.ipynb"] = Expected("not-a-file", says="FIFO")
    (folder / "folder.ipynb").mkdir()
    made[folder / "folder.ipynb"] = Expected("not-a-file", says="folder")
    (folder / "huge.ipynb").write_bytes(b" " * (files.MAX_NOTEBOOK_BYTES + 1))
    made[folder / "huge.ipynb"] = Expected("too-large", says="MB")
    many = '{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [%s]}' % ",".join(
        ['{"cell_type": "markdown", "metadata": {}, "source": "x"}'] * 100_000)
    (folder / "many_cells.ipynb").write_text(many)
    made[folder / "many_cells.ipynb"] = Expected("too-large", says="cells")
    return made


def venv_fingerprint() -> str:
    digest = hashlib.sha256()
    for folder, folders, names in sorted(os.walk(ROOT / ".venv")):
        folders.sort()
        for name in sorted(names):
            path = os.path.join(folder, name)
            info = os.lstat(path)
            digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def checkout_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored", "course_lib", "solutions", "exercises"],
                          cwd=ROOT, capture_output=True, text=True).stdout


def alive_with_marker() -> list[int]:
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if MARKER.encode() in (entry / "cmdline").read_bytes():
                    alive.append(int(entry.name))
            except OSError:
                pass
    return alive


@pytest.fixture(scope="module")
def attack_batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attacks")
    expected = write_attacks(folder)
    odd = write_odd_files(folder)
    linked = folder / "hard_link_of_the_exit_cell.ipynb"
    os.link(folder / "an_exit_cell.ipynb", linked)
    before = {"venv": venv_fingerprint(), "git": checkout_status(),
              "files": {p: p.read_bytes() for p in expected}}
    os.environ["COURSE_TEACHER_SECRET"] = TEACHER_SECRET  # in the grader's environment, never the sandbox's
    try:
        out = folder / "out" / "grades.csv"
        paths = files.collect([str(folder)])
        options = batch.Options(cell_timeout=10, total_timeout=150, memory_mb=1536)
        results = batch.grade_batch(paths, out, options, jobs=2, progress=batch.Progress(len(paths), stream=io.StringIO()))
    finally:
        del os.environ["COURSE_TEACHER_SECRET"]
    import time

    time.sleep(5)  # longer than the setsid child's sleep: had it survived, it would have written by now
    return {Path(r["file"]).name: r for r in results}, {**expected, **odd}, before, out, paths


@pytest.mark.parametrize("name", sorted(ATTACKS) + ["zero", "fifo", "folder", "huge", "many_cells"])
def test_each_attack_gets_its_verdict(attack_batch, name):
    results, expected, *_ = attack_batch
    want = next(e for p, e in expected.items() if p.stem == name)
    result = results[f"{name}.ipynb"]
    assert result["status"] == want.status, reports.table(result)
    statuses = {e["function"]: e["status"] for e in result["exercises"]}
    for function, status in statuses.items():
        assert status == want.functions.get(function, "passed"), reports.table(result)
    words = " ".join([*result["notes"], *(e["feedback"] for e in result["exercises"])])
    assert want.says in words, reports.table(result)


def test_nothing_outside_the_sandboxes_changed(attack_batch):
    _, _, before, _, _ = attack_batch
    assert not [p for p in ESCAPES if p.exists()]
    assert checkout_status() == before["git"]
    assert venv_fingerprint() == before["venv"]
    assert all(path.read_bytes() == data for path, data in before["files"].items())  # classmates untouched
    assert alive_with_marker() == []


def test_the_batch_finished_with_every_report_and_no_secret_in_them(attack_batch):
    results, expected, _, out, paths = attack_batch
    assert len(results) == len(paths) == len(expected)  # the hard link was graded once, as its first path
    json_path, pages = batch.outputs(out)
    assert out.exists() and json_path.exists() and len(list(pages.glob("*.html"))) == len(results)
    for report in (out, json_path, *pages.glob("*.html")):
        text = report.read_text(encoding="utf-8")
        assert TEACHER_SECRET not in text and str(ROOT) not in text.replace(str(ROOT / "solutions"), "")


def test_a_csv_cell_that_a_spreadsheet_would_run_is_neutralised():
    assert reports.spreadsheet_safe("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert reports.spreadsheet_safe("@sum") == "'@sum" and reports.spreadsheet_safe("fine") == "fine"


def test_without_a_sandbox_the_grader_refuses_unless_trusted(monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "unavailable", lambda: "bubblewrap (bwrap) is not installed. Install bubblewrap")
    path = str(ROOT / "solutions" / "01_attention_by_hand.ipynb")
    assert batch.main([path]) == 2
    assert "refusing to run submissions without a sandbox" in capsys.readouterr().err
    assert batch.main([path, "--trusted"]) == 0
    assert "WITHOUT a sandbox" in capsys.readouterr().out
