"""The machinery behind the learner checks (:mod:`course_lib.checks`) and the grader (:mod:`course_lib.grading`).

A :class:`Check` knows, for one graded function: how to make seeded test cases, how to call the learner's
function on a case, the reference answer, and the mistakes learners really make (each recognised by the wrong
output it produces, or by a property of the output). Running a check never raises: stubs, exceptions,
infinite loops and odd return types all end in a :class:`CheckResult` whose message a learner can act on;
only under nbgrader does a failing check raise that message (:mod:`.nbgrader_mode`), so that nbgrader sees it.
While a check runs, the exercise's earlier graded functions are the course's (:mod:`.lending`), so that each
function is judged on its own.

The steps are kept apart so that a grader can run step 2 in a sandbox and steps 1, 3, 4 in its own process:
1) make cases, 2) call the function and turn its answer into plain data (:mod:`.running`), 3) compare with
the reference (:mod:`.comparing`), 4) diagnose (:mod:`.check`). :mod:`.results` holds the plain data,
:mod:`.statuses` every status word, :mod:`.library` the check cell's reading of library calls.
Tests: tests/checks/test_framework.py.
"""
from __future__ import annotations

from course_lib.checking.check import DEFAULT_TIME_LIMIT, Check
from course_lib.checking.comparing import close, describe_type, first_difference, like, structure_problem, to_numpy
from course_lib.checking.lending import earlier_checks, standing_in
from course_lib.checking.library import global_names, library_message, library_used
from course_lib.checking.nbgrader_mode import CheckFailed, under_nbgrader
from course_lib.checking.results import NOT_IMPLEMENTED, Attempt, Case, CheckResult, ErrorInfo, Mistake, Output
from course_lib.checking.running import (CheckTimeout, gradient_seed, gradients_of, memory_budget, preflight,
                                         run_case, time_limit)
from course_lib.checking.statuses import (ATTEMPT_STATUSES, FUNCTION_STATUSES, SUBMISSION_STATUSES,
                                          require_status)

__all__ = ["ATTEMPT_STATUSES", "Attempt", "Case", "Check", "CheckFailed", "CheckResult", "CheckTimeout",
           "DEFAULT_TIME_LIMIT", "ErrorInfo", "FUNCTION_STATUSES", "Mistake", "NOT_IMPLEMENTED", "Output",
           "SUBMISSION_STATUSES", "close", "describe_type", "earlier_checks", "first_difference", "global_names",
           "gradient_seed", "gradients_of", "library_message", "library_used", "like", "memory_budget", "preflight",
           "require_status", "run_case", "standing_in", "structure_problem", "time_limit", "to_numpy",
           "under_nbgrader"]
