"""Regenerate the README's gallery: each chosen lesson's explorer as a learner first meets it, after Run All in
JupyterLab at 1366x768, screenshotted with the browser tests' own code (tests/browser/browser_lab.py).

    .venv/bin/python tests/browser/make_gallery.py          # lessons 01, 05, 07 and 09 into gallery/
    .venv/bin/python tests/browser/make_gallery.py 02 06    # others (the README shows the default four)

Needs chromium (Debian: apt-get install chromium). The browser tests write every explorer's screenshot too, when
COURSE_GALLERY names a folder.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import browser_lab  # noqa: E402

GALLERY = browser_lab.ROOT / "gallery"
SHOWN = ("01", "05", "07", "09")  # quick to run, and four different kinds of picture


def main(lessons: list[str]) -> int:
    why = browser_lab.chromium_missing()
    if why:
        print(f"make_gallery: {why}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    notebooks = {path.name[:2]: path.name for path in sorted((browser_lab.ROOT / "notebooks").glob("*.ipynb"))}
    unknown = [lesson for lesson in lessons if lesson not in notebooks]
    if unknown:
        print(f"make_gallery: no lesson {', '.join(unknown)}; lessons are {', '.join(notebooks)}", file=sys.stderr)
        return 2
    GALLERY.mkdir(exist_ok=True)
    lab = browser_lab.Lab()
    try:
        with tempfile.TemporaryDirectory(prefix="course-chromium-") as profile, sync_playwright() as playwright:
            learner = browser_lab.Learner(browser_lab.browser_context(playwright, profile), lab)
            for lesson in lessons:
                run = browser_lab.run_notebook(learner, f"notebooks/{notebooks[lesson]}")
                try:
                    for number, explorer in enumerate(browser_lab.explorers(run)):
                        path = GALLERY / f"{Path(notebooks[lesson]).stem}{f'_{number}' if number else ''}.png"
                        size = browser_lab.save_screenshot(explorer, path)
                        print(f"{path.relative_to(browser_lab.ROOT)}: {size / 1024:.0f} KiB")
                finally:
                    browser_lab.close(run)
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(SHOWN)))
