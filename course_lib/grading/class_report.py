"""What the class report shows, computed from the grader's results (grades.json) as plain data.

A teacher wants to look, not read thirty feedback pages: the score distribution of each lesson, the pass rate
of every graded function, the mistakes the course's checks diagnosed most often across the class ("11 of 30:
you divided by the sum of the whole array"), the submissions' statuses, and who needs a second look.
Each is a pure function of the results; :mod:`.class_page` draws them into one self-contained HTML page.
Tests: tests/test_class_report.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from course_lib.checking.statuses import FUNCTION_STATUSES, SUBMISSION_STATUSES
from course_lib.grading.gradebook import graded

# verdicts that say the grader could not judge the code as written: a person should read it
SUSPECT = {"library-call", "unverifiable", "not-available", "incomplete"}
UNFINISHED = {"not-implemented", "missing"}  # not tried (or not found): counted apart, not among the mistakes


@dataclass
class PassRate:
    lesson: str
    function: str
    passed: int
    graded: int
    unfinished: int = 0

    @property
    def rate(self) -> float:
        return self.passed / self.graded if self.graded else 0.0


@dataclass
class FrequentMistake:
    """``count`` of the ``out_of`` submissions of ``lesson`` got ``diagnosis`` for ``function``; ``example`` is
    one of those verdicts, the check's message alone (no name, no file)."""

    lesson: str
    function: str
    diagnosis: str
    count: int
    out_of: int
    example: str


@dataclass
class SecondLook:
    student: str
    lesson: str
    reason: str


def lessons(results: list[dict]) -> list[str]:
    return sorted({r["exercise"] for r in graded(results)})


def score_distribution(results: list[dict]) -> dict[str, list[float]]:
    """lesson -> the percent scored by each of its submissions."""
    return {lesson: [r["percent"] for r in graded(results) if r["exercise"] == lesson] for lesson in lessons(results)}


def pass_rates(results: list[dict]) -> list[PassRate]:
    """Every graded function, in lesson and notebook order, with how many of its submissions passed it."""
    rates: dict[tuple[str, str], PassRate] = {}
    for result in graded(results):
        for entry in result["exercises"]:
            rate = rates.setdefault((result["exercise"], entry["function"]),
                                    PassRate(result["exercise"], entry["function"], 0, 0))
            rate.graded += 1
            rate.passed += entry["status"] == "passed"
            rate.unfinished += entry["status"] in UNFINISHED
    return sorted(rates.values(), key=lambda r: r.lesson)  # stable: notebook order within a lesson


def course_mistakes() -> dict[str, list[str]]:
    """function -> the messages of the mistakes its check diagnoses (course_lib.checks)."""
    from course_lib.checks import CHECKS

    return {name: [m.message for m in check.mistakes] for name, check in CHECKS.items()}


def diagnosis(entry: dict, known: dict[str, list[str]]) -> str:
    """The one mistake a failed verdict names: the check's diagnosis when its message is in the feedback (the
    longest such, the most specific); else the exception raised, or what the verdict's status means."""
    feedback = entry["feedback"]
    found = [message for message in known.get(entry["function"], []) if message and message in feedback]
    if found:
        return max(found, key=len)
    if entry["status"] == "error":
        raised = re.search(r"raised (\w+(?:\.\w+)*)", feedback)
        return f"its code raised {raised.group(1)}" if raised else FUNCTION_STATUSES["error"]
    if entry["status"] == "failed":
        for pattern, words in ((r"expected shape", "an answer of the wrong shape"),
                               (r"contains NaN", "NaN in the answer"),
                               (r"expected a tuple|return the tuple|swapped|another order", "the wrong outputs"),
                               (r"expected (a |an )?(numpy|torch|float|bool|dtype)", "the wrong type of answer")):
            if re.search(pattern, feedback):
                return words
        return "wrong values, no typical mistake recognised"
    return FUNCTION_STATUSES.get(entry["status"], entry["status"])


def names_in(text: str, results: list[dict]) -> bool:
    """Does ``text`` mention any student's name (as a word) or any submission's file?"""
    names = {r.get("student") or "" for r in results} | {r["file"] for r in results}
    return any(len(name) >= 3 and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text) for name in names)


def anonymised(text: str, result: dict) -> str:
    """A verdict with its submission's student and file names taken out, should the message quote them."""
    for name in sorted({result.get("student") or "", result["file"], result["file"].rsplit("/", 1)[-1]}, key=len,
                       reverse=True):
        if len(name) >= 3:
            text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", "…", text)
    return text


def frequent_mistakes(results: list[dict], known: dict[str, list[str]] | None = None,
                      limit: int = 10) -> list[FrequentMistake]:
    """The diagnoses given most often, most frequent first: what to re-teach on Monday. A function left
    unfinished is no mistake (the pass rates count those)."""
    known = course_mistakes() if known is None else known
    out_of = {lesson: len(scores) for lesson, scores in score_distribution(results).items()}
    found: dict[tuple[str, str, str], list[tuple[str, dict]]] = {}  # -> (verdict, its result) for each
    for result in graded(results):
        for entry in result["exercises"]:
            if entry["status"] == "passed" or entry["status"] in UNFINISHED:
                continue
            key = (result["exercise"], entry["function"], diagnosis(entry, known))
            found.setdefault(key, []).append((entry["feedback"].removeprefix("❌ "), result))
    mistakes = []
    for key, verdicts in found.items():
        unnamed = [text for text, _ in verdicts if not names_in(text, results)]  # one that names nobody, or
        example = unnamed[0] if unnamed else anonymised(*verdicts[0])  # the first with its names cut out
        mistakes.append(FrequentMistake(*key, len(verdicts), out_of[key[0]], example))
    ranked = sorted(mistakes, key=lambda m: (-m.count, -m.count / m.out_of, m.lesson, m.function))
    return ranked[:limit]


def statuses(results: list[dict]) -> dict[str, int]:
    """Submission status -> how many, in the order of SUBMISSION_STATUSES (only those that occur)."""
    counts = {status: sum(r["status"] == status for r in results) for status in SUBMISSION_STATUSES}
    return {status: count for status, count in counts.items() if count}


def second_look(results: list[dict]) -> list[SecondLook]:
    """Submissions a person should open: not graded normally (a status other than ok), a verdict that says the
    code could not be judged as written, a note from the grader, or a lesson handed in twice."""
    looks = []
    seen: dict[tuple[str, str], int] = {}
    for result in results:
        student, lesson = result.get("student") or result["file"], result.get("exercise") or "-"
        reasons = []
        if result["status"] != "ok":
            reasons.append(f"status {result['status']}: {SUBMISSION_STATUSES.get(result['status'], '')}")
        reasons += [f"{e['function']}: {e['status']} ({FUNCTION_STATUSES[e['status']]})"
                    for e in result["exercises"] if e["status"] in SUSPECT]
        if result["status"] == "ok" and result["notes"]:
            reasons.append(f"{len(result['notes'])} note(s) from the grader, e.g. {result['notes'][0][:160]}")
        if result.get("trusted"):
            reasons.append("graded without a sandbox (--trusted)")
        if result.get("exercise"):
            seen[(student, lesson)] = seen.get((student, lesson), 0) + 1
        looks += [SecondLook(student, lesson, reason) for reason in reasons]
    looks += [SecondLook(student, lesson, f"handed in {count} times: the gradebook counts the best")
              for (student, lesson), count in sorted(seen.items()) if count > 1]
    return sorted(looks, key=lambda look: (look.student, look.lesson))
