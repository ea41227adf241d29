"""course-grade: grading exercise notebooks that no student can fool, each submission in an OS sandbox.

One job per module:

* :mod:`.files` — collecting the submissions and reading them safely (caps, only plain files, once each);
* :mod:`.sources` — what the grader reads in a submission's source before anything runs;
* :mod:`.sandbox` — the OS sandbox (bubblewrap) and its limits: the only module that knows about it;
* :mod:`.view` — the course library as the sandbox sees it, without the code that does the exercise's job;
* :mod:`.worker` — the program that runs inside the sandbox: cells, then calls on the grader's cases;
* :mod:`.protocol` — what grader and worker say to each other: plain, bounded data, never pickle;
* :mod:`.session` — one sandboxed worker, driven and measured from outside;
* :mod:`.judging` — exercises, secret seeds, what is lent and withheld, verdicts from data;
* :mod:`.reports` — the table, CSV, JSON and feedback pages;
* :mod:`.batch` — one submission's steps, batches, and the command line (``course-grade``).

Tests: tests/test_grade.py (grading), tests/test_grade_sandbox.py (attacks). Guide: TEACHERS.md.
"""
