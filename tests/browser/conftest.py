"""The browser tests' set-up: one JupyterLab server and one headless chromium for the whole session.

With CI=true these tests must run, never skip; elsewhere they skip, saying why, when chromium or Playwright is
missing. Run them alone with ``python3 course.py test --browser`` (or ``pytest -m browser``).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import browser_lab  # noqa: E402

WHY = browser_lab.chromium_missing()
if WHY and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI must run the browser tests, but {WHY}")


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: runs in JupyterLab in headless chromium (tests/browser)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)
            if WHY:
                item.add_marker(pytest.mark.skip(reason=f"browser tests skipped: {WHY}"))


@pytest.fixture(scope="session")
def lab():
    server = browser_lab.Lab()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def context():
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="course-chromium-") as profile, sync_playwright() as playwright:
        browser = browser_lab.browser_context(playwright, profile)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def learner(lab, context):
    """One JupyterLab tab at 1366x768 with a reset workspace (file browser open), for every notebook in turn."""
    return browser_lab.Learner(context, lab)


@pytest.fixture
def report(record_property):
    """``report(line)``: printed now (with -s) and in the session's summary, also under xdist (where a worker's
    output is hidden): Run All times and latencies are read, not asserted."""
    def add(line: str) -> None:
        print(line)
        record_property("browser", line)
    return add


def pytest_terminal_summary(terminalreporter):
    lines = [value for reports in terminalreporter.stats.values() for report in reports
             if getattr(report, "when", None) == "call"
             for name, value in getattr(report, "user_properties", ()) if name == "browser"]
    if lines:
        terminalreporter.section("in the browser: Run All times and input-to-image latencies (read, not asserted)")
        for line in lines:
            terminalreporter.write_line(line)
