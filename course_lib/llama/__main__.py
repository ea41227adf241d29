"""``python -m course_lib.llama fetch``: download lesson 10's model once (what course.py's set-up does)."""
from __future__ import annotations

import sys

from course_lib.llama.files import fetch


def main(argv: list[str]) -> int:
    if argv != ["fetch"]:
        print(__doc__.strip())
        return 2
    fetch()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
