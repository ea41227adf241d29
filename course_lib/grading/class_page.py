"""The class report as one self-contained HTML page: the data of :mod:`.class_report`, its two figures drawn
with matplotlib and embedded as PNG data URIs, no script, no link, nothing fetched (it opens offline).

    course-grade report grades.json      # writes class_report.html and gradebook.csv beside grades.json

``course-grade FOLDER --out grades.csv`` writes both at the end of every batch. Tests: tests/test_class_report.py.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import json
import re
import sys
from pathlib import Path

from course_lib.grading import class_report as data
from course_lib.grading import files
from course_lib.grading.gradebook import write_gradebook
from course_lib.grading.judging import GraderError
from course_lib.grading.reports import TRUSTED_BANNER, write_atomic


def class_outputs(json_path: Path) -> tuple[Path, Path]:
    """Where the class report and the gradebook of ``grades.json`` go: beside it, ``class_report.html`` and
    ``gradebook.csv`` (prefixed with the stem when it is not ``grades``, so two batches in a folder do not clash)."""
    prefix = "" if json_path.stem == "grades" else json_path.stem + "_"
    return json_path.with_name(prefix + "class_report.html"), json_path.with_name(prefix + "gradebook.csv")


def headline(diagnosis: str, width: int = 110) -> str:
    """A diagnosis's first clause, as a heading: "you divided by the sum of the whole array"."""
    first = re.split(r"(?<=[^.])[.;:](?=\s)", diagnosis, maxsplit=1)[0].strip()
    return first if len(first) <= width else first[:width - 1].rstrip() + "…"


def png_data_uri(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def distribution_figure(distribution: dict[str, list[float]]):
    """One histogram of percent scored per lesson, side by side, on the same 0-100 axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    count = max(len(distribution), 1)
    columns = min(count, 4)
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    for ax, (lesson, percents) in zip(axes.flat, distribution.items()):
        ax.hist(percents, bins=[0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100.01], color="#3b6ea5")
        ax.set_title(f"{lesson} (n={len(percents)})", fontsize=8)
        ax.set_xlim(0, 100)
        ax.set_xlabel("score, %", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # a count of submissions
    figure.tight_layout()
    return figure


def pass_rate_figure(rates: list[data.PassRate]):
    """A horizontal bar per graded function: the share of its submissions that passed it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(7, 0.28 * max(len(rates), 3) + 0.8))
    labels = [f"{r.lesson[:2]} {r.function}" for r in rates]
    ax.barh(range(len(rates)), [100 * r.rate for r in rates], color="#1a7f37")
    ax.set_yticks(range(len(rates)), labels, fontsize=7)
    ax.invert_yaxis()  # lesson order, top to bottom
    ax.set_xlim(0, 100)
    ax.set_xlabel("passed, % of submissions", fontsize=8)
    figure.tight_layout()
    return figure


def page(results: list[dict], known: dict[str, list[str]] | None = None) -> str:
    """The whole report, one HTML page with everything inline."""
    e = html.escape
    distribution, rates = data.score_distribution(results), data.pass_rates(results)
    mistakes, looks = data.frequent_mistakes(results, known), data.second_look(results)
    figures = ""
    if distribution:
        figures = (f"<h2>Scores per lesson</h2><img alt='score distribution per lesson' "
                   f"src='{png_data_uri(distribution_figure(distribution))}'>"
                   f"<h2>Pass rate of every graded function</h2><img alt='pass rate per function' "
                   f"src='{png_data_uri(pass_rate_figure(rates))}'>")
    rate_rows = "".join(f"<tr><td>{e(r.lesson)}</td><td><code>{e(r.function)}</code></td>"
                        f"<td>{r.passed} of {r.graded}</td><td>{100 * r.rate:.0f}%</td><td>{r.unfinished}</td></tr>"
                        for r in rates)
    mistake_items = "".join(
        f"<li><b>{m.count} of {m.out_of}: {e(headline(m.diagnosis))}</b> (<code>{e(m.function)}</code>, "
        f"{e(m.lesson)})<br><small>one of them: {e(m.example)}</small></li>" for m in mistakes)
    status_rows = "".join(f"<tr><td>{e(s)}</td><td>{n}</td><td>{e(data.SUBMISSION_STATUSES[s])}</td></tr>"
                          for s, n in data.statuses(results).items())
    look_rows = "".join(f"<tr><td>{e(x.student)}</td><td>{e(x.lesson)}</td><td>{e(x.reason)}</td></tr>" for x in looks)
    scores = "".join(f"<li>{e(lesson)}: {len(p)} submission(s), median {sorted(p)[len(p) // 2]:g}%, "
                     f"{sum(x == 100 for x in p)} full marks</li>" for lesson, p in distribution.items())
    banner = f"<p class='banner'>{e(TRUSTED_BANNER)}</p>" if any(r.get("trusted") for r in results) else ""
    students = len({r.get("student") or r["file"] for r in results})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Class report</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto;line-height:1.4}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}}
img{{max-width:100%}}li{{margin-bottom:.6em}}.banner{{background:#fff3cd;border:1px solid #b58105;padding:.6em}}</style>
</head><body>{banner}<h1>Class report</h1>
<p>{len(results)} submission(s) from {students} student(s).</p><ul>{scores}</ul>
<h2>The most frequent mistakes</h2>
<p>What the checks diagnosed, most frequent first: what to re-teach. Each comes with one verdict as the student
saw it (the message only). Functions left unfinished are counted in the pass rates below.</p>
<ol>{mistake_items or '<li>none: every function that was tried passed</li>'}</ol>
{figures}
<table><tr><th>lesson</th><th>function</th><th>passed</th><th>rate</th><th>unfinished</th></tr>{rate_rows}</table>
<h2>Statuses</h2><table><tr><th>status</th><th>submissions</th><th>meaning</th></tr>{status_rows}</table>
<h2>Who needs a second look</h2>
{f'<table><tr><th>student</th><th>lesson</th><th>why</th></tr>{look_rows}</table>' if looks else '<p>nobody</p>'}
</body></html>
"""


def write_class_report(results: list[dict], json_path: Path) -> tuple[Path, Path]:
    """Write the class report and the gradebook beside ``json_path``; return their paths."""
    report, book = class_outputs(json_path)
    write_atomic(report, page(results))
    write_gradebook(results, book)
    return report, book


def read_results(json_path: Path) -> list[dict]:
    """The grader's results from its JSON, or a clear error saying what is wrong with the file."""
    try:
        results = json.loads(Path(json_path).read_text(encoding="utf-8"))
    except OSError as error:
        raise GraderError(f"cannot read {json_path}: {error.strerror}.") from None
    except json.JSONDecodeError as error:
        raise GraderError(f"{json_path} is not JSON ({error}); give the grades.json that course-grade wrote.") from None
    if isinstance(results, dict):
        results = [results]  # `course-grade FILE --json` prints one result alone
    needed = {"file", "exercise", "status", "total", "max_total", "percent", "exercises", "notes"}
    if not isinstance(results, list) or not all(isinstance(r, dict) and needed <= set(r) for r in results):
        raise GraderError(f"{json_path} is not course-grade's results: each entry needs {', '.join(sorted(needed))}.")
    root = files.common_root(r["file"] for r in results)
    return [r if "student" in r else files.label(r, root) for r in results]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course-grade report", description="Write the class report and the "
                                     "gradebook of a batch from its grades.json. See TEACHERS.md.")
    parser.add_argument("json", type=Path, help="the grades.json that course-grade --out wrote")
    args = parser.parse_args(argv)
    try:
        report, book = write_class_report(read_results(args.json), args.json)
    except GraderError as error:
        print(f"course-grade report: error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {report} and {book}")
    return 0
