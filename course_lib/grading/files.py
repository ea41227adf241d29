"""Collecting submissions and reading them safely, before anything is parsed or run.

Only regular files are read (a symlink, FIFO, device or folder named ``*.ipynb`` gets ``not-a-file``), never
more than a size cap; a notebook over the size or cell cap gets ``too-large``; a file reached by two paths
(a hard link, a folder given twice) is graded once.
"""
from __future__ import annotations

import glob
import hashlib
import itertools
import json
import os
import stat
from pathlib import Path
from typing import Iterable

import nbformat

from course_lib.grading.judging import GraderError

MAX_NOTEBOOK_BYTES = 20 * 2 ** 20
MAX_CELLS = 2000
MAX_CELL_BYTES = 2 * 2 ** 20


class Unreadable(ValueError):
    """The file cannot be graded; ``status`` says why in a word, the message in a sentence."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def collect(paths: Iterable[str]) -> list[Path]:
    """The files named by ``paths``: files, folders (searched, not following links) and glob patterns. Odd
    files named ``*.ipynb`` are kept, to be reported; the same file reached twice is kept once."""
    return [path for path, _ in collected(paths)]


def collected(paths: Iterable[str]) -> list[tuple[Path, Path | None]]:
    """:func:`collect`, each file with the folder it was found in (the folder given, or a glob pattern's folder
    part; None for a file named on its own): the root below which a student's folder is looked for."""
    paths = list(paths)
    found: list[tuple[Path, Path | None]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir() and not path.is_symlink():
            for folder, folders, files in os.walk(path):  # os.walk does not follow symlinked folders
                folders[:] = sorted(f for f in folders if f != ".ipynb_checkpoints")
                found += [(Path(folder) / name, path) for name in sorted(files + folders) if name.endswith(".ipynb")]
        elif os.path.lexists(path):
            found.append((path, None))
        elif any(char in given for char in "*?["):
            matches = sorted(Path(p) for p in glob.glob(given, recursive=True))
            if not matches:
                raise GraderError(f"no files match {given!r}.")
            fixed = Path(*[part for part in itertools.takewhile(lambda p: not any(c in p for c in "*?["), path.parts)])
            found += [(match, fixed) for match in matches]
        else:
            raise GraderError(f"no such file or folder: {given}")
    unique, seen = [], set()
    for path, root in found:
        try:
            info = path.lstat()
            identity = (info.st_dev, info.st_ino) if stat.S_ISREG(info.st_mode) else str(path.absolute())
        except OSError:
            identity = str(path.absolute())
        if identity not in seen:
            seen.add(identity)
            unique.append((path, root))
    if not unique:
        raise GraderError(f"no notebooks (*.ipynb) found in {', '.join(paths)}.")
    return unique


def student_of(path: Path | str, root: Path | str | None, lesson: str | None) -> str:
    """Whose submission this is. In the collected layout, ``root/<student>/<lesson>.ipynb`` (nbgrader's, also
    ``root/<student>/<assignment>/<notebook>.ipynb``), the first folder below the root; in a flat folder
    (``alice_01_attention_by_hand.ipynb``), the file name without the lesson's name, or the whole name."""
    path = Path(path)
    if root is not None:
        try:
            parts = Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).parts
        except ValueError:
            parts = ()
        if len(parts) >= 2:
            return parts[0]
    stem = path.name.removesuffix(".ipynb")
    if lesson and lesson in stem:
        rest = stem.replace(lesson, " ").strip(" _-.")
        return rest or stem
    return stem


def common_root(paths: Iterable[Path | str]) -> Path | None:
    """The folder common to all these files' folders: the root when a batch's roots are not known."""
    folders = [os.path.dirname(os.path.abspath(p)) for p in paths]
    return Path(os.path.commonpath(folders)) if folders else None


def label(result: dict, root: Path | str | None) -> dict:
    """Add to a result whose submission it is (``student``) and which lesson (``lesson``: the exercise, or the
    file's name when the notebook is not one)."""
    result["student"] = student_of(result["file"], root, result.get("exercise"))
    result["lesson"] = result.get("exercise") or Path(result["file"]).name.removesuffix(".ipynb")
    return result


def read_bytes(path: Path, limit: int = MAX_NOTEBOOK_BYTES) -> bytes:
    """The file's bytes: only a regular file (not through a link), never more than ``limit``."""
    try:
        info = path.lstat()
    except OSError as error:
        raise Unreadable("not-a-file", f"{path.name} cannot be read ({error.strerror}).") from None
    if not stat.S_ISREG(info.st_mode):
        kind = ("a symbolic link" if stat.S_ISLNK(info.st_mode) else "a folder" if stat.S_ISDIR(info.st_mode)
                else "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or socket")
        raise Unreadable("not-a-file", f"{path.name} is {kind}, not a notebook file: only plain files are graded.")
    if info.st_size > limit:
        raise Unreadable("too-large", f"{path.name} is {info.st_size / 2 ** 20:.0f} MB; notebooks over "
                                      f"{limit // 2 ** 20} MB are not graded. Clear its outputs and submit it again.")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped between the check and the open
            raise Unreadable("not-a-file", f"{path.name} is not a plain file.")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise Unreadable("too-large", f"{path.name} is over {limit // 2 ** 20} MB; it is not graded.")
    return b"".join(chunks)


def sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(read_bytes(path)).hexdigest()
    except (Unreadable, OSError):
        return None


def read_submission(path: Path):
    """The submission as a validated notebook, or :class:`Unreadable` saying what is wrong with the file."""
    data = read_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable("invalid-notebook", f"{path.name} is not a notebook: it is not even text (a binary "
                                             f"file?).") from None
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise Unreadable("invalid-notebook", f"{path.name} is not valid notebook JSON ({error}). Was it "
                                             f"truncated, or edited outside Jupyter? Open it in JupyterLab and "
                                             f"save it again.") from None
    cells = raw.get("cells") if isinstance(raw, dict) else None
    if isinstance(cells, list) and len(cells) > MAX_CELLS:
        raise Unreadable("too-large", f"{path.name} has {len(cells)} cells; notebooks with more than {MAX_CELLS} "
                                      f"are not graded.")
    try:
        notebook = nbformat.reads(text, as_version=4)  # (joins each cell's source lines into one string)
        nbformat.validate(notebook)
    except nbformat.ValidationError as error:
        raise Unreadable("invalid-notebook", f"{path.name} is JSON but not a valid notebook: "
                                             f"{error.message[:300]}") from None
    except Exception as error:
        raise Unreadable("invalid-notebook", f"{path.name} is not a valid notebook ({type(error).__name__}: "
                                             f"{str(error)[:200]}).") from None
    for cell in notebook.cells:
        if len(cell.get("source", "")) > MAX_CELL_BYTES:
            raise Unreadable("too-large", f"{path.name} has a cell of over {MAX_CELL_BYTES // 2 ** 20} MB of "
                                          f"source; it is not graded.")
    return notebook


def key(path: Path | str) -> str:
    """A submission's identity across runs: its absolute path, however it was typed (links not followed)."""
    return os.path.abspath(path)
