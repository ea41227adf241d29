import sys

from course_lib.grading.batch import main

sys.exit(main())
