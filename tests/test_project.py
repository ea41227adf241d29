"""The project's own promises: two commands, CI runs the test one, same dependencies for pip and conda."""
from __future__ import annotations

import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

import yaml

from course_files import ROOT

# conda-forge names the torch package "pytorch"
CONDA_NAMES = {"pytorch": "torch"}


def requirement_name(spec: str) -> str:
    return re.split(r"[<>=!~\s\[]", spec.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_same_runtime_dependencies_as_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pip_deps = {requirement_name(d): d for d in pyproject["project"]["dependencies"]}
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_deps = {}
    for dep in environment["dependencies"]:
        if isinstance(dep, str) and requirement_name(dep) not in ("python", "pip"):
            name = CONDA_NAMES.get(requirement_name(dep), requirement_name(dep))
            conda_deps[name] = dep
        if isinstance(dep, dict):  # the pip: section, for what conda-forge lacks (the course itself aside)
            conda_deps.update({requirement_name(d): d for d in dep.get("pip", []) if not d.startswith("-e")})
    assert set(conda_deps) == set(pip_deps), (
        f"environment.yml and pyproject.toml disagree: only in environment.yml {set(conda_deps) - set(pip_deps)}, "
        f"only in pyproject.toml {set(pip_deps) - set(conda_deps)}")
    for name, spec in pip_deps.items():  # same version bounds, too
        assert spec.replace(" ", "")[len(name):] == conda_deps[name].replace(" ", "")[len(requirement_name(conda_deps[name])):], (
            f"{name}: pyproject.toml says {spec!r} but environment.yml says {conda_deps[name]!r}")


def test_torch_is_pinned_to_a_tested_range():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    torch_spec = next(d for d in pyproject["project"]["dependencies"] if requirement_name(d) == "torch")
    assert "<" in torch_spec and ">=" in torch_spec, "an unbounded torch lets pip pick a multi-GB CUDA build"


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh|shell)?\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_opens_with_the_two_commands():
    commands = readme_commands()
    assert commands[:2] == ["python3 course.py lab", "python3 course.py test"], commands[:2]


def test_ci_runs_the_readme_test_command_and_nothing_else():
    script = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
              if line.strip() and not line.strip().startswith("#")]
    commands = [line for line in script if not line.startswith(("set ", "cd "))]
    assert commands[-1] == f"exec {readme_commands()[1]}", commands
    setup = commands[:-1]  # only what a learner's machine may lack: bubblewrap (the grader's sandbox), chromium
    tools = ("bubblewrap", "bwrap", "chromium", "missing")  # (the browser tests) and the list of those missing
    assert not setup or all((any(tool in line for tool in tools) or line in ("else", "fi")
                             or line.startswith(("if ", "apt-get"))) for line in setup), setup


def test_the_readmes_example_verdict_is_what_the_check_prints():
    """The README shows a learner the verdict of a softmax over the wrong axis: it must be the check's own words."""
    import re

    import numpy as np

    from course_lib import checks

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"read its verdict:\n\n```\n(.*?)\n```", readme, re.S).group(1)

    def softmax(x, axis=-1):
        e = np.exp(x - x.max(axis=0, keepdims=True))  # the mistake: axis 0, whatever axis says
        return e / e.sum(axis=0, keepdims=True)

    printed = checks.CHECKS["softmax"].run(softmax).message
    assert " ".join(shown.split()) == " ".join(printed.split())
