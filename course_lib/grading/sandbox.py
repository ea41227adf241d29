"""The OS sandbox a submission runs in: the one module that knows about bubblewrap and cgroups.

:func:`command` turns a command into a sandboxed one. Inside there is no network, a PID namespace of its own
(everything started inside dies with it and cannot signal the grader), a read-only view of the Python
environment and of the folders the grader chooses, a private size-capped scratch folder, an empty environment
but for the variables given, and nothing of the teacher's home, checkout, solutions, other submissions or
grades. :class:`Limits` are applied to every process inside: memory (a cgroup where the system lets us make one,
and an address-space limit on each process), processes, file size, CPU time; the grader enforces wall time.

Where bubblewrap cannot run, :func:`unavailable` says why and how to get it; the grader then refuses to run
submissions unless told ``--trusted``, and :func:`command` runs them with the same limits but no isolation.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

HOW_TO_GET_ONE = ("Install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; Fedora: `sudo dnf install "
                  "bubblewrap`), or grade on Linux, WSL2 or a Linux VM. Only for code you trust: --trusted runs "
                  "submissions without a sandbox.")
SCRATCH = "/tmp"  # the private, size-capped folder inside: the working directory, HOME, TMPDIR
SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib32", "/lib64", "/sbin")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/fonts",
                "/etc/alternatives")


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 3072  # all processes together (cgroup) and each process's address space
    processes: int = 64  # processes and threads inside the sandbox
    file_mb: int = 64  # the largest file a process may write
    scratch_mb: int = 256  # the private scratch folder
    cpu_seconds: int = 900  # CPU time of each process


@functools.lru_cache(maxsize=1)
def unavailable() -> str | None:
    """None when bubblewrap works here; otherwise why not, and how to get a sandbox."""
    if not sys.platform.startswith("linux"):
        return f"there is no sandbox on {sys.platform}: bubblewrap needs Linux. {HOW_TO_GET_ONE}"
    if shutil.which("bwrap") is None:
        return f"bubblewrap (bwrap) is not installed. {HOW_TO_GET_ONE}"
    probe = [shutil.which("bwrap"), *_isolation(), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap could not start ({error}). {HOW_TO_GET_ONE}"
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        return (f"bubblewrap is installed but cannot make a sandbox here ({reason[0]}); user namespaces may be "
                f"switched off (kernel.unprivileged_userns_clone, or AppArmor's restrict_unprivileged_userns). "
                f"{HOW_TO_GET_ONE}")
    return None


def _isolation() -> list[str]:
    return ["--unshare-all", "--unshare-user", "--disable-userns", "--uid", "1000", "--gid", "1000",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--as-pid-1"]


def python_paths() -> list[str]:
    """The folders the Python environment lives in, to be seen read-only inside: its prefixes, and the entries of
    its search path that lie inside them. Never the working directory or a script's folder (``''`` and
    ``sys.path[0]``: a grader started from the submissions folder would show every submission to every
    sandbox), and nothing inside the course checkout but its virtual environment."""
    from course_lib.release import ROOT

    venv = Path(sys.prefix).resolve()
    prefixes = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    found = []
    for entry in {*map(str, prefixes), *sys.path}:
        if not entry or not os.path.isdir(entry):
            continue
        path = Path(entry).resolve()
        if not any(path == prefix or prefix in path.parents for prefix in prefixes):
            continue
        inside_checkout = path == ROOT or ROOT in path.parents
        if inside_checkout and not (path == venv or venv in path.parents):
            continue
        found.append(str(path))
    # a folder inside another is already seen through it
    return sorted(p for p in set(found) if not any(other != p and p.startswith(other + os.sep) for other in found))


def command(argv: list[str], *, read_only: dict[str, str], env: dict[str, str], limits: Limits,
            trusted: bool = False, workdir: str | None = None) -> list[str]:
    """``argv`` run in a sandbox that sees the Python environment and ``read_only`` (inside path -> host path),
    with only ``env`` as its environment. With ``trusted``, the same command without isolation (the caller runs
    it in ``workdir``)."""
    if trusted:
        return [*argv]
    bwrap = shutil.which("bwrap")
    args = [bwrap, *_isolation(), "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    # the scratch first: what is bound below may live under /tmp on the host (a checkout there) and must not
    # be hidden by it
    args += ["--perms", "1777", "--size", str(limits.scratch_mb * 2 ** 20), "--tmpfs", SCRATCH]
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in SYSTEM_FILES:
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    for path in python_paths():
        args += ["--ro-bind", path, path]
    for inside, host in read_only.items():
        args += ["--ro-bind", host, inside]
    # /proc read-only: nothing inside can write /proc/self/clear_refs, which resets the peak memory the grader reads
    args += ["--proc", "/proc", "--remount-ro", "/proc", "--dev", "/dev", "--chdir", SCRATCH, "--", *argv]
    return args


class Cgroup:
    """A memory and process-count cgroup holding one sandbox and everything it starts, where we may make one.

    cgroup v1 (memory and pids hierarchies) and v2 (a writable subtree with both controllers) are tried; when
    neither can be made, :meth:`make` returns None and the per-process limits alone apply.
    """

    def __init__(self, folders: list[Path], version: int):
        self.folders, self.version = folders, version

    @classmethod
    def make(cls, limits: Limits) -> "Cgroup | None":
        name = f"course-grade-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        memory = str(limits.memory_mb * 2 ** 20)
        v1 = [Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup/pids")]
        v2 = Path("/sys/fs/cgroup")
        if all((base / "cgroup.procs").exists() for base in v1):
            group, settings = cls([], 1), {"memory.limit_in_bytes": memory, "pids.max": str(limits.processes)}
            bases = v1
        elif "memory" in _read(v2 / "cgroup.subtree_control").split():
            group, bases = cls([], 2), [v2]
            settings = {"memory.max": memory, "memory.swap.max": "0", "pids.max": str(limits.processes)}
        else:
            return None
        try:
            for base in bases:
                (base / name).mkdir()
                group.folders.append(base / name)
            for setting, value in settings.items():  # each file lives in exactly one of the folders
                next(f for f in group.folders if (f / setting).exists()).joinpath(setting).write_text(value)
        except (OSError, StopIteration):
            group.remove()
            return None
        return group

    def out_of_memory(self) -> bool:
        """Did the memory limit kill or refuse anything?"""
        try:
            if self.version == 1:
                return int((self.folders[0] / "memory.failcnt").read_text()) > 0
            events = dict(line.split() for line in (self.folders[0] / "memory.events").read_text().splitlines())
            return int(events.get("oom_kill", 0)) > 0 or int(events.get("max", 0)) > 0
        except (OSError, ValueError):
            return False

    def pids(self) -> list[int]:
        pids = set()
        for folder in self.folders:
            try:
                pids |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
            except (OSError, ValueError):
                pass
        return sorted(pids)

    def remove(self) -> None:
        """Kill whatever is left inside and remove the cgroup."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            time.sleep(0.02)
        for folder in self.folders:
            try:
                folder.rmdir()
            except OSError:
                pass


LAUNCHER = """
import json, os, sys
spec = json.loads(sys.argv[1])
for folder in spec["cgroups"]:
    with open(os.path.join(folder, "cgroup.procs"), "w") as file:
        file.write(str(os.getpid()))
try:
    import resource
    for name, value in spec["limits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
except ImportError:
    pass
child = os.fork()
if child == 0:
    try:
        os.close(spec["report"])
        os.execv(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(child, 0)
os.write(spec["report"], str(usage.ru_maxrss).encode())
code = os.waitstatus_to_exitcode(status)
os._exit(code if code >= 0 else 128 - code)
"""


def launched(argv: list[str], limits: Limits, cgroup: "Cgroup | None", report: int) -> list[str]:
    """``argv`` started by a small launcher that first joins ``cgroup`` and sets the per-process limits, so that
    everything the command starts is inside both. (The process count is limited by the worker itself, inside
    the sandbox's user namespace, where it counts only the sandbox's own processes.)

    The launcher runs ``argv`` in a child of its own and, when that ends, writes the child's peak resident size
    (kilobytes, from ``wait4``) to the file descriptor ``report``. A process forked from the grader would
    inherit the grader's own peak, which grows during a batch: the launcher is small, so its child's peak is
    the sandbox's."""
    memory = limits.memory_mb * 2 ** 20
    spec = {"cgroups": [str(folder) for folder in cgroup.folders] if cgroup else [], "report": report,
            "limits": {"RLIMIT_AS": memory, "RLIMIT_FSIZE": limits.file_mb * 2 ** 20,
                       "RLIMIT_CPU": limits.cpu_seconds, "RLIMIT_CORE": 0}}
    program = argv[0] if os.path.isabs(argv[0]) else shutil.which(argv[0]) or argv[0]
    return [sys.executable, "-I", "-S", "-c", LAUNCHER, json.dumps(spec), program, *argv[1:]]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
