"""Binder: binder/environment.yml is the course's environment, and binder/postBuild, run in a scratch
environment on a copy of the repository, installs the course and puts lesson 10's model in place, offline
(the model already on this machine stands in for the 93 MB download, so fetch finds it and stops)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import yaml

from course_lib.llama import files as model_files
from course_lib.release import ROOT

BINDER = ROOT / "binder"


def dependencies(path: Path) -> tuple[set[str], set[str]]:
    """An environment file's conda dependencies and its pip ones (the course itself, ``-e .``, aside)."""
    conda, pip = set(), set()
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        if isinstance(dep, dict):
            pip |= {d for d in dep.get("pip", []) if not d.startswith("-e")}
        else:
            conda.add(dep)
    return conda, pip


def test_binder_s_environment_is_the_course_s_with_setuptools_for_the_editable_install():
    """Does binder/environment.yml list what environment.yml does (which tests/test_project.py holds to
    pyproject.toml), plus setuptools for postBuild's install, and not the course itself?"""
    conda, pip = dependencies(ROOT / "environment.yml")
    assert dependencies(BINDER / "environment.yml") == (conda | {"setuptools>=61"}, pip)
    assert "-e ." not in (BINDER / "environment.yml").read_text()  # relative to binder/, it would miss the course


def test_post_build_is_an_executable_script_that_stops_at_the_first_error():
    script = BINDER / "postBuild"
    assert os.access(script, os.X_OK)
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/bin/bash" and "set -euo pipefail" in lines
    assert "python -m course_lib.llama fetch" in lines


def repository_copy(target: Path) -> Path:
    """The repository's files as a fresh clone would have them (tracked and new ones, not the ignored)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_post_build_installs_the_course_and_puts_the_model_in_place_offline(tmp_path):
    """Run binder/postBuild as Binder does, in a scratch environment whose packages are this environment's:
    is the copy's course_lib what the scratch Python imports, does course-grade run, and is the model where
    lesson 10 looks for it, without a download (pip can reach no index)?"""
    repository = repository_copy(tmp_path / "repository")
    scratch = tmp_path / "scratch"
    # no pip or setuptools of its own (Python's bundled setuptools can be too old to build a wheel): this
    # environment's, as Binder's conda environment has its own
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(scratch)], check=True, timeout=120)
    site = Path(subprocess.run([scratch / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "course-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")  # numpy, torch, ... offline
    shared = scratch / "share" / "self-attention-course" / model_files.GGUF_NAME
    shared.parent.mkdir(parents=True)
    shared.symlink_to(model_files.model_path())  # what fetch would have unpacked there
    environment = {**{k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))},
                   "PATH": f"{scratch / 'bin'}:{os.environ['PATH']}", "PIP_NO_INDEX": "1",
                   "PIP_INDEX_URL": "http://127.0.0.1:9/nothing-here", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    environment.pop(model_files.ENVIRONMENT_VARIABLE, None)
    done = subprocess.run([str(repository / "binder" / "postBuild")], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    probe = ("import course_lib, course_lib.llama.files as f; print(course_lib.__file__); print(f.model_path()); "
             "print(f.is_fetched())")
    where = subprocess.run([scratch / "bin" / "python", "-c", probe], cwd=tmp_path, env=environment,
                           capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr
    assert where.stdout.split() == [str(repository / "course_lib" / "__init__.py"), str(shared), "True"]
    grade = subprocess.run([scratch / "bin" / "course-grade", "--help"], env=environment, capture_output=True,
                           text=True, timeout=120)
    assert grade.returncode == 0 and "--cluster" in grade.stdout
