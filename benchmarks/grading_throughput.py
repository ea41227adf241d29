"""How does grading grow with Dask workers? Grade the same batch on a local cluster of 1 worker and then of 2
(each worker one submission at a time), in one run, with the same secret, and print both times, the
submissions per minute and the ratio; the two batches must give the same scores.

    python benchmarks/grading_throughput.py [--count 20] [--workers 1 2]

The batch is benchmarks/grade_batch.py's: submissions made from the course's own notebooks, every exercise,
complete, untouched and with one function unfinished. The time is the teacher's: from ``course-grade
--cluster`` connecting to the last result written, including each worker's first import of the course.
On a machine with N cores, workers beyond N add little; on a lab's machines, each worker brings its own cores.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grade_batch import make_batch  # noqa: E402

from course_lib.grading import batch, cluster, files, sandbox  # noqa: E402


class Stopwatch(batch.Progress):
    """The time each result arrived, from the start of the batch."""

    def __init__(self, total: int):
        super().__init__(total, stream=io.StringIO())
        self.arrived: list[float] = []

    def update(self, result: dict) -> None:
        super().update(result)
        self.arrived.append(time.monotonic() - self.started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20, help="submissions in the batch (default 20)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="cluster sizes (default 1 2)")
    args = parser.parse_args()
    options = batch.Options(trusted=sandbox.unavailable() is not None, secret="benchmark")
    times, scores = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "submissions").mkdir()
        paths = files.collect([str(make_batch(folder / "submissions", args.count)[0].parent)])
        for workers in args.workers:
            with cluster.local_cluster(workers, folder / f"cluster{workers}") as running:
                start, watch = time.perf_counter(), Stopwatch(len(paths))
                results = batch.grade_batch(paths, folder / f"out{workers}" / "grades.csv", options,
                                            cluster=running.address, progress=watch)
                times[workers] = time.perf_counter() - start
            scores[workers] = sorted((r["file"], r["total"], r["status"]) for r in results)
            first, last = watch.arrived[0], watch.arrived[-1]
            print(f"{workers} worker(s): {len(results)} submissions in {times[workers]:.1f} s, "
                  f"{60 * len(results) / times[workers]:.1f} per minute; the first result after {first:.1f} s "
                  f"(the workers' start), then {60 * (len(results) - 1) / max(last - first, 1e-9):.1f} per minute",
                  flush=True)
    first = args.workers[0]
    for workers in args.workers[1:]:
        print(f"{workers} workers / {first}: {times[first] / times[workers]:.2f}x the throughput "
              f"(the same scores: {scores[workers] == scores[first]}); {os.cpu_count()} CPUs here, "
              f"sandboxed: {not options.trusted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
