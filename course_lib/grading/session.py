"""One sandboxed worker (:mod:`.worker`) running one submission, driven from the grader's side.

The grader sends requests and waits for each answer until its deadline; an answer that does not come in time,
a worker that dies, or an answer that breaks the protocol's caps ends the session (the sandbox and everything
in it is killed). What the learner's code prints is drained and counted, never trusted. Peak memory is taken
from the kernel's accounting of the finished sandbox (``wait4``'s rusage), not from anything inside.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from course_lib.grading import protocol, sandbox

MAX_OUTPUT_BYTES = 1_000_000  # printed output kept per submission; the rest is dropped (the feedback says so)
REPLIES = {"cell": "cell", "grade": "graded", "lend": "lent"}  # the reply each request gets
LIBRARY = "/grader/lib"  # where the sandbox sees the course library's view (:mod:`.view`)


class Ended(Exception):
    """The session ended: ``kind`` is "timeout", "dead" (the worker died) or "protocol" (a malformed answer)."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(kind)
        self.kind, self.detail = kind, detail


@dataclass
class Usage:
    peak_bytes: int  # the largest resident size of any process in the sandbox
    out_of_memory: bool  # the memory limit refused or killed something


class Session:
    """A fresh sandbox running the worker, with the course library view at ``library`` (a host folder)."""

    def __init__(self, library: Path, limits: sandbox.Limits, trusted: bool = False):
        self.limits, self.trusted = limits, trusted
        self.output_bytes, self.truncated, self.usage = 0, False, None
        self._scratch = tempfile.mkdtemp(prefix="course-grade-scratch-") if trusted else None
        home = self._scratch or sandbox.SCRATCH
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "USER": "student",
               "LOGNAME": "student", "LANG": "C.UTF-8", "PYTHONPATH": str(library) if trusted else LIBRARY,
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg",
               "MPLCONFIGDIR": f"{home}/.matplotlib", "IPYTHONDIR": f"{home}/.ipython", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2",
               "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "PIP_NO_INDEX": "1"}
        for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # some CPUs need these for a correct OpenBLAS
            if key in os.environ:
                env[key] = os.environ[key]
        commands_read, self._commands = os.pipe()
        self._replies_read, replies_write = os.pipe()
        worker = [sys.executable, "-s", "-m", "course_lib.grading.worker", str(commands_read), str(replies_write),
                  str(limits.processes)]
        argv = sandbox.command(worker, read_only={LIBRARY: str(library)}, env=env, limits=limits, trusted=trusted)
        self.cgroup = sandbox.Cgroup.make(limits)
        self._usage_read, usage_write = os.pipe()
        argv = sandbox.launched(argv, limits, self.cgroup, usage_write)
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, pass_fds=(commands_read, replies_write, usage_write),
                                        start_new_session=True, cwd=self._scratch or "/",
                                        env=env if trusted else {"PATH": env["PATH"]})
        os.close(commands_read)
        os.close(replies_write)
        os.close(usage_write)
        self.reader = protocol.Reader(self._replies_read)
        self._drain = threading.Thread(target=self._drain_output, daemon=True)
        self._drain.start()

    def _drain_output(self) -> None:
        stream = self.process.stdout
        while True:
            chunk = stream.read1(1 << 16) if hasattr(stream, "read1") else stream.read(1 << 16)
            if not chunk:
                return
            self.output_bytes += len(chunk)
            if self.output_bytes > MAX_OUTPUT_BYTES:
                self.truncated = True

    def request(self, header: dict, payload: bytes, timeout: float) -> tuple[dict, bytes]:
        """Send one request and wait at most ``timeout`` seconds for its answer."""
        deadline = time.monotonic() + max(0.5, timeout)
        try:
            protocol.write_message(self._commands, header, payload)
            answer, data = self.reader.read(deadline)
            if answer.get("op") != REPLIES.get(header.get("op")):  # out of step: something else wrote to the channel
                raise protocol.ProtocolError(f"a {answer.get('op')!r} reply to a {header.get('op')!r} request")
            return answer, data
        except TimeoutError:
            self.close()
            raise Ended("timeout") from None
        except (EOFError, BrokenPipeError, OSError):
            self.close()
            raise Ended("dead") from None
        except protocol.ProtocolError as error:
            self.close()
            raise Ended("protocol", str(error)) from None

    def finish(self, timeout: float = 10) -> Usage:
        """Ask the worker to exit, wait for the sandbox to end, and return what the kernel measured."""
        try:
            protocol.write_message(self._commands, {"op": "exit"})
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        while not self._reap(block=False) and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.close()

    def _reap(self, block: bool) -> bool:
        """Collect the sandbox's exit and its rusage; False while it still runs (``block`` waits for it)."""
        if self.process.returncode is not None:
            return True
        try:
            pid, status, _ = os.wait4(self.process.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            self.process.returncode = -1
            return True
        if pid == 0:
            return False
        self.process.returncode = os.waitstatus_to_exitcode(status)
        try:  # the launcher's report on its child (the launcher's own rusage carries the grader's peak)
            os.set_blocking(self._usage_read, False)
            self._peak = int(os.read(self._usage_read, 32) or 0) * 1024  # kilobytes on Linux
        except (OSError, ValueError):
            self._peak = 0
        return True

    def close(self) -> Usage:
        """Kill the sandbox and all it started (idempotent); the kernel's peak resident size of its processes."""
        if self.usage is not None:
            return self.usage
        if not self._reap(block=False):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # the launcher's session: bwrap; inside dies with it
            except OSError:
                pass
            self._reap(block=True)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # anything left in its session (only when trusted)
        except OSError:
            pass
        out_of_memory = bool(self.cgroup and self.cgroup.out_of_memory())
        if self.cgroup is not None:
            self.cgroup.remove()
        for fd in (self._commands, self._replies_read, self._usage_read):
            try:
                os.close(fd)
            except OSError:
                pass
        self._drain.join(timeout=5)
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
        self.usage = Usage(getattr(self, "_peak", 0), out_of_memory)
        return self.usage
