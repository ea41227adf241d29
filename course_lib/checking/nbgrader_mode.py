"""Checks under nbgrader: a failing check raises, so that ``nbgrader validate`` and ``autograde`` see it.

For a learner a check never crashes the notebook: it prints its verdict. nbgrader, though, counts a test cell
as failed only when it raises, and says so in its environment: ``NBGRADER_EXECUTION`` is ``"validate"`` while
``nbgrader validate`` (the student's Validate button) runs a notebook, and ``"autograde"`` while ``nbgrader
autograde`` does (nbgrader/validator.py and nbgrader/converters/autograde.py, 0.9). Then a failing check raises
:class:`CheckFailed` with the very message the learner would have read (in lines short enough for nbgrader).

Part of :mod:`course_lib.checking`. Tests: tests/test_nbgrader.py.
"""
from __future__ import annotations

import os
import textwrap

NBGRADER_MODES = ("validate", "autograde")  # the values nbgrader gives NBGRADER_EXECUTION
WIDTH = 68  # nbgrader validate cuts each line of an error at 87 characters; "CheckFailed: " and its indent come first


class CheckFailed(AssertionError):
    """A check failed while nbgrader ran the notebook; the message is the check's verdict."""


def under_nbgrader() -> bool:
    """Is nbgrader validating or autograding the notebook this runs in?"""
    return os.environ.get("NBGRADER_EXECUTION", "") in NBGRADER_MODES


def raise_if_graded(result):
    """``result`` itself, except under nbgrader, where a failing verdict is raised as :class:`CheckFailed`."""
    if not result.passed and under_nbgrader():
        # nbgrader is validating or grading this notebook, and the check failed: its verdict follows
        raise CheckFailed(wrapped(result.message))  # (IPython shows these lines, the frame that raises)
    return result


def wrapped(message: str) -> str:
    """The verdict in lines that ``nbgrader validate`` prints whole (it cuts long lines): the same words."""
    return "\n".join(textwrap.fill(line, WIDTH, subsequent_indent="   ") if line else line
                     for line in message.splitlines())
