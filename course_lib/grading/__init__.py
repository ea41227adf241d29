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
* :mod:`.class_report`, :mod:`.class_page`, :mod:`.gradebook` — the class's view: what the report shows (data),
  the report's page, and the gradebook CSV (``course-grade report grades.json``);
* :mod:`.cluster` — grading a batch on a Dask cluster's workers (``--cluster``);
* :mod:`.progress` — the learner's own exercises, graded in trusted mode (``python3 course.py progress``);
* :mod:`.batch` — one submission's steps, batches, and the command line (``course-grade``).

Tests: tests/test_grade.py (grading), tests/test_grade_sandbox.py (attacks), tests/test_class_report.py,
tests/test_grade_cluster.py, tests/test_progress.py. Guide: TEACHERS.md.
"""
