"""What a batch writes: a table for one submission, grades.csv, grades.json and one HTML feedback page per
submission. Pages show only the submission's own verdicts and notes (no paths, environment or command line);
CSV cells that a spreadsheet would run as a formula are neutralised; a batch graded without a sandbox says so
on every page and in the CSV."""
from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import re
from pathlib import Path

TRUSTED_BANNER = ("Graded WITHOUT a sandbox (--trusted): the submissions' code ran with the teacher's rights. "
                  "Use this only for code you trust.")


def table(result: dict) -> str:
    """The plain-text report of one submission, as printed by ``course-grade FILE``."""
    student = f" (student {result['student']})" if result.get("student") else ""
    lines = [f"{result['file']}{student}: {result['exercise'] or '-'}  status {result['status']}"]
    if result.get("trusted"):
        lines.insert(0, f"!! {TRUSTED_BANNER}")
    rows = [(e["function"], f"{e['points']:g}/{e['max_points']:g}", e["status"], e["feedback"])
            for e in result["exercises"]]
    if rows:
        width = max(len(r[0]) for r in rows)
        lines.append(f"  {'function':<{width}}  points  verdict          feedback")
        for function, score, status, feedback in rows:
            lines.append(f"  {function:<{width}}  {score:<6}  {status:<15}  {feedback}")
    for note in result["notes"]:
        lines.append(f"  note: {note}")
    lines.append(f"  total: {result['total']:g}/{result['max_total']:g} ({result['percent']:g}%)")
    return "\n".join(lines)


def spreadsheet_safe(value) -> str:
    """A CSV cell that a spreadsheet shows as text: one starting with = + - @ (or a tab or CR) gets a quote."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv(results: list[dict], path: Path, functions: list[str], trusted: bool = False) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file", "student", "exercise", *functions, "total", "max", "percent", "status", "notes"])
    for r in results:
        scored = {e["function"]: e["points"] for e in r["exercises"]}
        notes = list(r["notes"]) + ([TRUSTED_BANNER] if r.get("trusted") else [])
        row = [r["file"], r.get("student", ""), r["exercise"] or "", *[f"{scored[f]:g}" if f in scored else "" for f in functions],
               f"{r['total']:g}", f"{r['max_total']:g}", r["percent"], r["status"], " | ".join(notes)]
        writer.writerow([spreadsheet_safe(cell) if isinstance(cell, str) else cell for cell in row])
    write_atomic(path, buffer.getvalue())


def write_json(results: list[dict], path: Path) -> None:
    write_atomic(path, json.dumps(results, indent=1, ensure_ascii=False))  # a lone surrogate is written as \udXXX: valid JSON


def _marked_up(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))  # `code` as in the notebook


def feedback_page(result: dict) -> str:
    """A self-contained HTML page a teacher can hand back: total, then each function's verdict and feedback."""
    e = _marked_up
    name = Path(result["file"]).name
    rows = "".join(
        f"<tr class='{'pass' if x['status'] == 'passed' else 'fail'}'><td><code>{e(x['function'])}</code></td>"
        f"<td>{x['points']:g} / {x['max_points']:g}</td><td>{e(x['status'])}</td><td>{e(x['feedback'])}</td></tr>"
        for x in result["exercises"])
    notes = "".join(f"<li>{e(note)}</li>" for note in result["notes"])
    banner = f"<p class='banner'>{e(TRUSTED_BANNER)}</p>" if result.get("trusted") else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Feedback: {e(name)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}}
table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #ccc;padding:.4em;vertical-align:top;text-align:left}}
tr.pass td:nth-child(3){{color:#1a7f37}}tr.fail td:nth-child(3){{color:#b42318}}
.banner{{background:#fff3cd;border:1px solid #b58105;padding:.6em}}</style></head>
<body>{banner}<h1>Feedback on {e(name)}</h1>
<p>Exercise: <b>{e(result['exercise'] or 'not recognised')}</b> · status: <b>{e(result['status'])}</b> ·
score: <b>{result['total']:g} / {result['max_total']:g}</b> ({result['percent']:g}%)</p>
<table><tr><th>function</th><th>points</th><th>verdict</th><th>feedback</th></tr>{rows}</table>
{f'<h2>Notes</h2><ul>{notes}</ul>' if notes else ''}
<p><small>Graded by course-grade with the same checks as the notebook's check cells, on the cases you saw and on
hidden ones. Run the check cells in your notebook to see the same messages while you work.</small></p>
</body></html>
"""


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` whole or not at all. Characters UTF-8 cannot hold (a lone surrogate in a learner's error
    message, a file name that is not UTF-8) are written as backslash escapes, never an error."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8", errors="backslashreplace")
    os.replace(temporary, path)


def page_names(keys: list[str]) -> dict[str, str]:
    """One feedback page name per submission: its path below the folder common to all, made file-name safe;
    two names that would collide (``bob/03.ipynb`` and ``bob_03.ipynb``) get a short hash of the path."""
    paths = sorted(keys)
    root = os.path.commonpath([str(Path(p).parent) for p in paths]) if paths else ""
    names = {}
    for path in paths:
        relative = os.path.relpath(path, root) if root else Path(path).name
        names[path] = "".join(c if c.isalnum() or c in "-_." else "_" for c in relative).removesuffix(".ipynb")[:150]
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    return {path: (name if counts[name] == 1 else f"{name}-{hashlib.sha1(path.encode()).hexdigest()[:6]}") + ".html"
            for path, name in names.items()}
