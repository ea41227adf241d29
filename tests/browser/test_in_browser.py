"""Every notebook in a real JupyterLab, in headless chromium at a laptop's 1366x768 with the file browser open:
what a learner sees after Run All, and what each control does. nbval has no front end; these tests do.

Latencies (input to new image) are printed, not asserted: on a shared 2-core machine they are noisy.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import browser_lab

ROOT = browser_lab.ROOT
LESSONS = sorted(path.name for path in (ROOT / "notebooks").glob("*.ipynb"))
EXERCISES = sorted(path.name for path in (ROOT / "exercises").glob("*.ipynb"))
MIN_TRACK_PX = 80  # narrower, and a drag jumps from end to end
MAX_SCALE = 1.25  # shown larger than this times its pixels, a figure is visibly blurred
GALLERY = os.environ.get("COURSE_GALLERY")  # a folder: write a screenshot of each explorer there


def assert_ran_cleanly(run: browser_lab.Run, name: str) -> None:
    errors = [(i, error) for i, cell in enumerate(run.outputs) for error in cell["errors"]]
    assert not errors, f"{name}: cells raised {errors}"
    tracebacks = [i for i, cell in enumerate(run.outputs) if "Traceback (most recent call last)" in cell["text"]]
    assert not tracebacks, f"{name}: tracebacks in the outputs of cells {tracebacks}"
    assert run.ran_all, f"{name}: Run All did not finish every cell"
    assert not browser_lab.widget_errors(run), f"{name}: {browser_lab.widget_errors(run)}"
    assert not run.console_errors, f"{name}: JS console errors {run.console_errors}"
    assert not browser_lab.non_local(run), f"{name}: requests off this machine {browser_lab.non_local(run)}"


@pytest.mark.parametrize("name", LESSONS)
def test_a_lesson_runs_and_its_explorers_start_fit_and_respond(lab, learner, report, name):
    """Does Run All leave no error, each explorer at its starting state, laid out for a laptop, and does every
    control change the picture?"""
    run = browser_lab.run_notebook(learner, f"notebooks/{name}")
    try:
        assert_ran_cleanly(run, name)
        states = browser_lab.explorer_states(lab, run)
        for state in states:
            assert state["now"] == state["start"], f"{name}: after Run All an explorer is at {state['now']}, " \
                                                   f"not at its starting state {state['start']}"
        explorers = browser_lab.explorers(run)
        assert len(explorers) == len(states), f"{name}: {len(states)} explorers in the kernel, {len(explorers)} shown"
        report(f"{name}: Run All {run.seconds:.1f} s, {len(explorers)} explorer(s)")
        run.page.set_viewport_size(browser_lab.PROJECTOR)
        for number, explorer in enumerate(explorers):
            image = browser_lab.measure(explorer)["image"]
            assert image["scale"] <= MAX_SCALE, f"{name} explorer {number} at 1920 px: figure of " \
                                                f"{image['natural']} px shown at {image['shown']:.0f} px"
        run.page.set_viewport_size(browser_lab.LAPTOP)
        for number, explorer in enumerate(explorers):
            check_layout(explorer, f"{name} explorer {number}")
            if GALLERY:
                browser_lab.save_screenshot(explorer, Path(GALLERY) / f"{Path(name).stem}_{number}.png")
            for control in browser_lab.controls(explorer):
                action, seconds = browser_lab.latency(run, explorer, control)
                assert seconds is not None, f"{name} explorer {number}: {action} did not change the picture"
                report(f"  {action}: new image after {seconds * 1000:.0f} ms")
        assert_ran_cleanly(run, name)  # using the controls raised nothing either
    finally:
        browser_lab.close(run)


def check_layout(explorer, where: str) -> None:
    sizes = browser_lab.measure(explorer)
    narrow = [track for track in sizes["tracks"] if track["width"] < MIN_TRACK_PX]
    assert not narrow, f"{where}: slider tracks under {MIN_TRACK_PX} px: {narrow}"
    assert not sizes["truncated"], f"{where}: cut-off texts {sizes['truncated']}"
    assert not sizes["overflowing"], f"{where}: controls past the output's right edge {sizes['overflowing']}"
    image = sizes["image"]
    assert image["scale"] <= MAX_SCALE, f"{where}: figure of {image['natural']} px shown at {image['shown']:.0f} px"
    screen = browser_lab.LAPTOP["height"]
    assert sizes["height"] <= screen, f"{where}: {sizes['height']:.0f} px tall, taller than a {screen} px screen"


def test_every_exercise_check_renders_its_verdict(learner, report):
    """Does each graded check cell of every exercise, run as shipped (blank), show a ❌ verdict, not a traceback,
    and do the checks of lesson 01's solutions show ✅ (the verdict a learner works towards)?"""
    notebooks = [(f"exercises/{name}", "❌") for name in EXERCISES] + [("solutions/01_attention_by_hand.ipynb", "✅")]
    for path, mark in notebooks:
        run = browser_lab.run_notebook(learner, path)
        try:
            assert_ran_cleanly(run, path)
            checks = [cell["text"] for cell in run.outputs if cell["grade"] and cell["type"] == "code"]
            assert checks, f"{path}: no graded check cells"
            wrong = [text for text in checks if not text.lstrip().startswith(mark)]
            assert not wrong, f"{path}: check cells without a {mark} verdict: {wrong}"
            report(f"{path}: Run All {run.seconds:.1f} s, {len(checks)} verdicts, first: {checks[0][:70]!r}")
        finally:
            browser_lab.close(run)
