"""Attacks on the grader, as a clever or careless student would try them: the catalogue in ``attacks.py`` (one
notebook per attack, by class of attack, each with the verdict it must get) and its hostile files, all graded
in one sandboxed batch, started the way a careless teacher might: from inside the submissions folder.

Afterwards nothing outside the sandboxes has changed (the checkout, its environment, the other submissions),
no process of theirs is alive, every report exists, and no feedback holds a secret of the grader's. Without
bubblewrap these tests skip, saying why, except in CI (CI=true), where they must run."""
from __future__ import annotations

import csv
import io
import os
import sys
import time
from pathlib import Path

import pytest

import attacks
from course_lib.grading import batch, class_page, files, reports, sandbox

WHY = sandbox.unavailable()
if WHY and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI must run the sandbox tests, but {WHY}")
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"no sandbox here: {WHY}")

TWICE = {"hard_original", "hard_link"}  # one file, two names: checked as a pair


@pytest.fixture(scope="module")
def attack_batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attacks")
    out = folder / "out" / "grades.csv"
    expected = attacks.make_attacks(folder, out.parent) | attacks.make_special_files(folder)
    notebooks = [p for p in expected if p.is_file() and not p.is_symlink()]
    paths = files.collect([str(folder)])
    before = attacks.checkout_fingerprint(), attacks.files_fingerprint(notebooks)
    canary = attacks.plant_canary()  # in the grader's environment: never in a sandbox's, nor in a report
    here, search = os.getcwd(), list(sys.path)
    os.chdir(folder)  # the grader started from the submissions folder: it must not show them to the sandboxes
    sys.path.insert(0, "")
    try:
        options = batch.Options(cell_timeout=10, total_timeout=150)
        results = batch.grade_batch(paths, out, options, jobs=2, progress=batch.Progress(len(paths), stream=io.StringIO()))
    finally:
        os.chdir(here)
        sys.path[:] = search
        del os.environ[attacks.CANARY_VARIABLE]
    time.sleep(attacks.DELAY + 1)  # what was left behind would have written by now
    return {"results": {Path(r["file"]).stem: r for r in results}, "expected": expected, "before": before,
            "out": out, "paths": paths, "canary": canary, "folder": folder, "notebooks": notebooks}


@pytest.mark.parametrize("name", sorted(set(attacks.ATTACKS) | {"x", "y", "z", "secret_link", "too_large_file",
                                                                "too_large_cell", "too_many_cells", "deep_json",
                                                                *attacks.ODD_NAMES}))
def test_each_attack_gets_its_verdict(attack_batch, name):
    want = next(e for p, e in attack_batch["expected"].items() if p.stem == name)
    result = attack_batch["results"][name]
    assert attacks.verdict_problems(name, result, want) == [], reports.table(result)


def test_a_file_under_two_names_is_graded_once(attack_batch):
    pairs = attacks.hard_link_pairs(attack_batch["expected"])
    assert pairs and all(set(p.stem for p in pair) == TWICE for pair in pairs)
    graded = [name for name in TWICE if name in attack_batch["results"]]
    assert len(graded) == 1 and attack_batch["results"][graded[0]]["status"] == "ok"


def test_nothing_outside_the_sandboxes_changed(attack_batch):
    folder, results = attack_batch["folder"], attack_batch["results"].values()
    assert attacks.alive_processes() == []
    assert [p for p in attacks.escape_paths(folder, attack_batch["out"].parent) if os.path.lexists(p)] == []
    ours = {*attack_batch["expected"], *(Path(r["feedback_page"]) for r in results if r.get("feedback_page"))}
    assert [p for p in attacks.escaped_files(folder, attack_batch["out"].parent) if p not in ours] == []
    checkout, notebooks = attack_batch["before"]
    assert attacks.checkout_fingerprint() == checkout  # course_lib, solutions, .venv: not a byte changed
    assert attacks.files_fingerprint(attack_batch["notebooks"]) == notebooks  # classmates untouched


def test_the_batch_finished_with_every_report_and_no_secret_in_them(attack_batch):
    results, out = attack_batch["results"], attack_batch["out"]
    assert len(results) == len(attack_batch["paths"])
    json_path, pages = batch.outputs(out)
    assert out.exists() and json_path.exists() and len(list(pages.glob("*.html"))) == len(results)
    for page in pages.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert attacks.leaked(text, attack_batch["folder"], attack_batch["canary"]) == [], page.name
        assert attacks.RAW_HTML not in text, page.name
    for report in (out, json_path):
        assert attack_batch["canary"] not in report.read_text(encoding="utf-8")
    report, gradebook = class_page.class_outputs(json_path)  # written at the end of the batch, from every result
    text = report.read_text(encoding="utf-8")
    assert attacks.leaked(text, attack_batch["folder"], attack_batch["canary"]) == [] and attacks.RAW_HTML not in text
    for table in (out, gradebook):
        assert attack_batch["canary"] not in table.read_text(encoding="utf-8")
        with table.open(encoding="utf-8", newline="") as file:
            cells = [cell for row in csv.reader(file) for cell in row]
        assert cells and not [c for c in cells if c[:1] in ("=", "+", "-", "@")], table.name  # '=1+2.ipynb' among them


def test_a_csv_cell_that_a_spreadsheet_would_run_is_neutralised():
    assert reports.spreadsheet_safe("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert reports.spreadsheet_safe("@sum") == "'@sum" and reports.spreadsheet_safe("fine") == "fine"


def test_without_a_sandbox_the_grader_refuses_unless_trusted(monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "unavailable", lambda: "bubblewrap (bwrap) is not installed. Install bubblewrap")
    path = str(attacks.ROOT / "solutions" / "01_attention_by_hand.ipynb")
    assert batch.main([path]) == 2
    assert "refusing to run submissions without a sandbox" in capsys.readouterr().err
    assert batch.main([path, "--trusted"]) == 0
    assert "WITHOUT a sandbox" in capsys.readouterr().out
