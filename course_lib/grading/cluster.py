"""``course-grade … --cluster tcp://HOST:8786``: a batch's submissions graded on an existing Dask distributed
cluster, when one machine is not enough.

Each submission travels as its bytes and its file name; a worker writes it into a private folder and grades
it exactly as :func:`.submission.grade_safely` does locally, in its own sandbox, with the batch's options and
secret (so the hidden cases are the same everywhere); the result comes back as plain data and is written as
it arrives. Before anything is sent, every worker must hold the same course (its ``course_lib`` and
solutions, by hash) and be able to grade (bubblewrap, unless --trusted). When a worker dies, the scheduler
hands its submissions to another; one that loses its worker again and again is reported (``grader-error``),
and the batch finishes. A file that cannot be read is judged here, as locally: nothing of it is sent.

Needs the ``distributed`` package where course-grade runs and on every worker (``pip install distributed``).
:func:`local_cluster` starts a scheduler and workers on this machine (tests and benchmarks/grading_throughput.py).
Tests: tests/test_grade_cluster.py.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import course_lib
from course_lib.grading import files, judging
from course_lib.grading.context import Context, Options, require_sandbox
from course_lib.grading.judging import GraderError
from course_lib.grading.submission import grade_safely, not_graded

CONNECT_TIMEOUT = 30  # seconds to reach the scheduler and see a worker
KEPT_CONTEXTS = 4  # on a worker: the grading contexts of the latest batches (one per batch's options)
_contexts: dict[str, Context] = {}
_lock = threading.Lock()


def client_for(address: str):
    """A client of the cluster at ``address``; a clear error when distributed is missing or nobody answers."""
    try:
        from distributed import Client
    except ImportError:
        raise GraderError("--cluster needs the `distributed` package (Dask): pip install distributed, here and on "
                          "every worker.") from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise GraderError(f"cannot reach a Dask scheduler at {address} ({type(error).__name__}: {error}). Start "
                          f"one with `dask scheduler` and workers with `dask worker {address}`.") from None


def fingerprint(solutions: Path) -> str:
    """The course a machine grades with: a hash of its course_lib's code and of the solutions notebooks."""
    digest = hashlib.sha256()
    package = Path(course_lib.__file__).parent
    for path in sorted([*package.rglob("*.py"), *Path(solutions).glob("*.ipynb")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def plain(options: Options) -> dict:
    """The options as plain data for the workers; the course's own solutions are each worker's own copy."""
    data = dataclasses.asdict(options)
    data["solutions"] = None if Path(options.solutions) == judging.SOLUTIONS else str(options.solutions)
    return data


def _options(data: dict) -> Options:
    return Options(**{**data, "solutions": Path(data["solutions"] or judging.SOLUTIONS)})


def worker_ready(options: dict) -> dict:
    """Runs on each worker before the batch: its course's fingerprint, and why it cannot grade (or None).
    It also makes the worker's grading context (the course's import, once), so that grading starts at once."""
    try:
        real = _options(options)
        require_sandbox(real)
        _context(options)
        return {"fingerprint": fingerprint(real.solutions), "problem": None}
    except Exception as error:
        return {"fingerprint": None, "problem": f"{type(error).__name__}: {error}"}


def _context(options: dict) -> Context:
    """The worker's grading context for these options: made once per batch; the oldest is closed when more
    than KEPT_CONTEXTS batches have come (a worker may serve many batches in its life)."""
    key = json.dumps(options, sort_keys=True)
    with _lock:
        if key not in _contexts:
            _contexts[key] = Context(_options(options))
            atexit.register(_contexts[key].close)
            while len(_contexts) > KEPT_CONTEXTS:
                _contexts.pop(next(iter(_contexts))).close()
        return _contexts[key]


def grade_on_worker(name: str, data: bytes, options: dict) -> dict:
    """Runs on a worker: the submission, written under its own name into a private folder, graded as locally."""
    context = _context(options)
    with tempfile.TemporaryDirectory(prefix="course-grade-submission-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        return grade_safely(path, context)


def check_workers(client, options: dict, solutions: Path) -> None:
    """Refuse a cluster without workers, or with a worker that cannot grade or holds another course."""
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
    except (TimeoutError, OSError):
        raise GraderError(f"the cluster has no workers after {CONNECT_TIMEOUT} s: start some with `dask worker "
                          f"{client.scheduler.address}`.") from None
    before = fingerprint(solutions)
    answers = sorted(client.run(worker_ready, options).items())
    mine = {before, fingerprint(solutions)}  # (a file saved meanwhile, here: either version is this machine's)
    for worker, answer in answers:
        if answer["problem"]:
            raise GraderError(f"the worker {worker} cannot grade: {answer['problem']}")
        if answer["fingerprint"] not in mine:
            raise GraderError(f"the worker {worker} has another version of the course (its course_lib or solutions "
                              f"differ from this machine's: {str(answer['fingerprint'])[:12]} there, {before[:12]} here): "
                              f"install the same commit on every worker.")


def grade_on_cluster(address: str, paths: list[Path], options: Options, context: Context) -> Iterator[dict]:
    """Grade ``paths`` on the cluster at ``address``, yielding each result as it arrives (in any order). A file
    that cannot be read is judged here with ``context`` (nothing of it runs)."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    if options.secret is None:  # one secret for the batch, or each worker would make up its own hidden cases
        options = dataclasses.replace(options, secret=secrets.token_hex(16))
    data = plain(options)
    client = client_for(address)
    try:
        check_workers(client, data, Path(options.solutions))
        futures, batch = {}, secrets.token_hex(4)  # task keys unique to this batch (the cluster may serve others)
        for number, path in enumerate(paths):
            try:
                content = files.read_bytes(path)
            except (files.Unreadable, OSError):
                yield grade_safely(path, context)
                continue
            future = client.submit(grade_on_worker, path.name, content, data, pure=False,
                                   key=f"course-grade-{batch}-{number}-{hashlib.sha256(content).hexdigest()[:12]}")
            futures[future] = path
        for future in as_completed(futures, loop=client.loop):
            path = futures[future]
            try:
                result = future.result()
            except KilledWorker:
                result = not_graded(path, options.trusted, "the cluster lost the worker grading this file as often "
                                                           "as its scheduler allows (Dask's allowed-failures: did the "
                                                           "machines run out of memory?); a rerun of the batch grades "
                                                           "it again.")
            except GraderError:
                raise
            except Exception as error:
                result = not_graded(path, options.trusted, f"the cluster could not grade this file "
                                                           f"({type(error).__name__}: {error}); a rerun grades it again.")
            result.update(file=str(path), path=files.key(path))  # where it is here, not in the worker's folder
            yield result
    finally:
        client.close()


@dataclasses.dataclass
class LocalCluster:
    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen]

    def kill_worker(self, index: int) -> None:
        """Kill one worker at once, as a machine that dies does (no goodbye to the scheduler)."""
        self.workers[index].send_signal(signal.SIGKILL)
        self.workers[index].wait()


@contextlib.contextmanager
def local_cluster(workers: int, folder: Path, threads: int = 1,
                  allowed_failures: int | None = None) -> Iterator[LocalCluster]:
    """A Dask scheduler and ``workers`` workers on 127.0.0.1, started with the ``dask`` command of this
    environment (workers without a nanny, so a killed worker stays dead), stopped at the end.
    ``allowed_failures``: how many of its workers a task may lose before it is given up (Dask's default: 3)."""
    dask = Path(sys.executable).with_name("dask")
    if not dask.exists():
        raise GraderError(f"no `dask` command next to {sys.executable}: pip install distributed.")
    folder.mkdir(parents=True, exist_ok=True)
    scheduler_file = folder / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)
    started: list[subprocess.Popen] = []

    def start(arguments: list[str], log: str, environment: dict | None = None) -> subprocess.Popen:
        with open(folder / log, "wb") as output:
            started.append(subprocess.Popen([str(dask), *arguments], stdout=output, stderr=subprocess.STDOUT,
                                            start_new_session=True, env={**os.environ, **(environment or {})}))
        return started[-1]

    try:
        scheduler = start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                           "--scheduler-file", str(scheduler_file)], "scheduler.log",
                          {} if allowed_failures is None else
                          {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(allowed_failures)})
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while not scheduler_file.exists() and time.monotonic() < deadline and scheduler.poll() is None:
            time.sleep(0.1)
        if not scheduler_file.exists():
            raise GraderError(f"the Dask scheduler did not start: see {folder / 'scheduler.log'}")
        time.sleep(0.2)  # (the file is written whole, but give it a moment)
        address = json.loads(scheduler_file.read_text())["address"]
        pool = [start(["worker", address, "--host", "127.0.0.1", "--nthreads", str(threads), "--no-nanny",
                       "--no-dashboard", "--name", f"worker-{index}"], f"worker-{index}.log")
                for index in range(workers)]
        client = client_for(address)
        try:
            client.wait_for_workers(workers, timeout=90)
        finally:
            client.close()
        yield LocalCluster(address, scheduler, pool)
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.terminate()
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
