"""Settings for every test (seeded hypothesis, headless matplotlib); the shared helpers are in course_files.py."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest
from hypothesis import settings

# Attack notebooks are graded in the sandbox by test_grade_sandbox.py; nbval must never run them on this machine.
collect_ignore = ["red_team"]

# Property-based tests draw the same examples on every run (seeds fixed), so CI never flakes.
settings.register_profile("course", derandomize=True, print_blob=True)
settings.load_profile("course")

matplotlib.use("Agg")  # headless: widgets and plots are tested without a screen
os.environ.setdefault("MPLBACKEND", "Agg")

from course_files import ROOT, all_notebooks, grading, graded_functions, notebook_namespace  # noqa: F401


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
