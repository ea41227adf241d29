"""``python -m course_lib.grade``: the same as ``course-grade`` (:mod:`course_lib.grading`)."""
import sys

from course_lib.grading.batch import main

if __name__ == "__main__":
    sys.exit(main())
