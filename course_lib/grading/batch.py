"""Grading batches: many submissions side by side, their reports, and ``course-grade``'s command line.

One submission (:mod:`.submission`) goes through these steps:
1. The file is read safely (:mod:`.files`) and the exercise recognised (:mod:`.judging`).
2. The source is read (:mod:`.sources`): a graded function that uses a library function doing its job, or code
   the grader cannot read, is judged from the source alone.
3. A fresh sandbox (:mod:`.sandbox`, :mod:`.session`) sees a course library without the code that does the
   exercise's job (:mod:`.view`); the notebook's code cells run there (check cells are skipped), then each
   graded function is called on cases with secret seeds, with the exercise's earlier graded functions lent.
   A cell or call that runs too long or kills the sandbox is reported, and a fresh sandbox grades the rest.
4. What came back, plain data, is judged here with the learner's own checks (:mod:`.judging`), and the
   reports are written (:mod:`.reports`).
What the submissions of a batch share (options, sandbox views, reference memory) is :mod:`.context`.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import threading
import time
from pathlib import Path

from course_lib.grading import class_page, files, judging, reports
from course_lib.grading.context import Context, Options
from course_lib.grading.judging import GraderError
from course_lib.grading.submission import grade_safely


def outputs(out: Path) -> tuple[Path, Path]:
    """Where a batch writes its feedback: grades.json and grades_feedback/ beside grades.csv."""
    return out.with_suffix(".json"), out.with_name(out.stem + "_feedback")


def grade_batch(paths: list[Path], out: Path, options: Options, jobs: int = 1, force: bool = False,
                progress=None, roots: dict[str, Path | None] | None = None, cluster: str | None = None) -> list[dict]:
    """Grade many submissions, writing CSV, JSON and HTML after each one; skip those already graded. At the
    end, write the class report and the gradebook (:mod:`.class_page`).

    Submissions are known by their absolute path, so a rerun from another folder or with the folder typed
    differently still skips what is graded; files that no longer exist drop out of the reports. ``roots``
    (absolute path -> the folder it was collected from, :func:`.files.collected`) tells whose each one is;
    without it, the folder common to them all is the root. With ``cluster`` (a Dask scheduler's address), the
    submissions are graded on its workers (:mod:`.cluster`) instead of in local threads.
    """
    context = Context(options, here=cluster is None)
    try:
        json_path, pages = outputs(out)
        try:
            pages.mkdir(parents=True, exist_ok=True)
            previous = json.loads(json_path.read_text(encoding="utf-8")) if json_path.exists() else []
        except (OSError, json.JSONDecodeError) as error:
            raise GraderError(f"cannot use the output next to {out}: {error}") from None
        results = {r.get("path") or files.key(r["file"]): r for r in previous if isinstance(r, dict) and "file" in r}
        results = {k: r for k, r in results.items() if Path(k).exists() or Path(k).is_symlink()}
        todo = [p for p in paths if force or files.key(p) not in results
                or results[files.key(p)].get("sha256") != files.sha256(p)
                or results[files.key(p)].get("trusted", False) != options.trusted
                or results[files.key(p)].get("status") == "grader-error"]  # not graded: try again
        progress = progress or Progress(len(todo), len(paths) - len(todo))
        names = reports.page_names(sorted({*results, *(files.key(p) for p in paths)}))
        functions = list(dict.fromkeys(name for e in context.exercises.values() for name, _ in e.functions))
        lock = threading.Lock()
        common = files.common_root(paths)
        root_of = lambda result: (roots or {}).get(result["path"], common)

        def write_reports() -> None:
            ordered = [results[k] for k in sorted(results)]
            used = [f for f in functions if any(f == e["function"] for r in ordered for e in r["exercises"])]
            reports.write_csv(ordered, out, used)
            reports.write_json(ordered, json_path)

        def record(result: dict) -> None:
            with lock:
                results[result["path"]] = files.label(result, root_of(result))
                result["feedback_page"] = str(pages / names[result["path"]])
                write_reports()
                reports.write_atomic(pages / names[result["path"]], reports.feedback_page(result))
                progress.update(result)

        if cluster is not None:
            from course_lib.grading.cluster import grade_on_cluster

            for result in grade_on_cluster(cluster, todo, options, context):
                record(result)
        elif jobs <= 1:
            for path in todo:
                record(grade_safely(path, context))
        else:
            with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
                for future in concurrent.futures.as_completed([pool.submit(grade_safely, p, context) for p in todo]):
                    record(future.result())
        progress.close()
        write_reports()  # also when nothing was regraded (e.g. after the report files were deleted)
        graded = [results[files.key(p)] for p in paths if files.key(p) in results]
        class_page.write_class_report([results[k] for k in sorted(results)], json_path)
        return graded
    finally:
        context.close()


class Progress:
    """A progress bar on stderr (one line per submission when stderr is not a terminal)."""

    def __init__(self, total: int, skipped: int = 0, stream=None):
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self.started = time.monotonic()
        if skipped:
            self.stream.write(f"skipping {skipped} already graded (unchanged) submission(s); --force regrades them\n")

    def update(self, result: dict) -> None:
        self.done += 1
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"{time.monotonic() - self.started:5.0f}s  {result['file']}: {result['status']} "
                f"{result['total']:g}/{result['max_total']:g}")
        if self.stream.isatty():
            self.stream.write("\r" + line[:120].ljust(120))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.stream.isatty() and self.done:
            self.stream.write("\n")


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a learner's lone surrogate or a non-UTF-8 file name prints escaped
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = argparse.ArgumentParser(prog="course-grade", description="Grade exercise notebooks, each in a "
                                     "sandbox, with the same checks learners run. See TEACHERS.md.")
    parser.add_argument("paths", nargs="+", help="notebooks, folders of notebooks, or glob patterns")
    parser.add_argument("--out", type=Path, help="write a CSV here, with a .json and a _feedback/ folder beside it")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    parser.add_argument("--force", action="store_true", help="regrade submissions already in the output")
    parser.add_argument("--cluster", metavar="tcp://HOST:8786", help="grade on the workers of this Dask scheduler "
                        "(each in its own sandbox there) instead of here; needs --out and the distributed package")
    parser.add_argument("--timeout", type=float, default=Options.cell_timeout, help="seconds per cell (default 30)")
    parser.add_argument("--total-timeout", type=float, default=Options.total_timeout,
                        help="seconds per submission (default 600)")
    parser.add_argument("--memory-mb", type=int, default=Options.memory_mb,
                        help="memory limit of each submission's sandbox, MiB (default 3072)")
    parser.add_argument("--solutions", type=Path, default=judging.SOLUTIONS,
                        help="the solutions notebooks (default: the course's)")
    parser.add_argument("--trusted", action="store_true",
                        help="run submissions WITHOUT a sandbox: only for code you trust (every report says so)")
    parser.add_argument("--secret", default=os.environ.get("COURSE_GRADE_SECRET"),
                        help="derive the hidden cases from this secret (default: $COURSE_GRADE_SECRET, else a fresh "
                             "one per run); never put it where students can read it")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["report"]:
        return class_page.main(argv[1:])
    args = parser.parse_args(argv)
    options = Options(args.timeout, args.total_timeout, args.memory_mb, args.solutions, args.trusted, args.secret)
    try:
        if args.jobs < 1:
            raise GraderError(f"--jobs must be at least 1, got {args.jobs}.")
        if args.cluster and args.out is None:
            raise GraderError("--cluster needs --out: the results are written there as they arrive.")
        found = files.collected(args.paths)
        paths, roots = [path for path, _ in found], {files.key(path): root for path, root in found}
        if args.out is not None:
            results = grade_batch(paths, args.out, options, jobs=args.jobs, force=args.force, roots=roots,
                                  cluster=args.cluster)
            counts: dict[str, int] = {}
            for r in results:
                counts[r["status"]] = counts.get(r["status"], 0) + 1
            summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            print(f"graded {len(results)} submission(s): {summary}. Wrote {args.out}, "
                  f"{outputs(args.out)[0]}, {outputs(args.out)[1]}/ and "
                  f"{' and '.join(map(str, class_page.class_outputs(outputs(args.out)[0])))}")
            return 0
        context = Context(options)
        try:
            results = [files.label(grade_safely(path, context), roots[files.key(path)]) for path in paths]
        finally:
            context.close()
    except GraderError as error:
        print(f"course-grade: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=1, ensure_ascii=False))
    else:
        print("\n\n".join(reports.table(result) for result in results))
    return 0
