"""The learner's side: `python3 course.py progress` grades their own exercises with the grader's checks
(trusted: their own code) and prints a table, a bar per lesson and what to fix; it writes nothing."""
from __future__ import annotations

import nbformat

import submissions
from course_lib.grading import progress


def test_progress_shows_what_passes_and_what_to_fix(tmp_path, capsys):
    """Does a finished lesson show full bars and ✓, a lesson with one wrong function its lost point, a ✗ and
    the check's own message, and is nothing written next to the notebooks?"""
    wrong = submissions.base()
    submissions.replace_function("softmax", submissions.WRONG_SOFTMAX)(wrong)
    nbformat.write(submissions.base(), str(tmp_path / "01_attention_by_hand.ipynb"))
    nbformat.write(wrong, str(tmp_path / "01_again.ipynb"))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert progress.main([str(tmp_path), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("01_attention_by_hand  ")]
    assert ["01_attention_by_hand", "softmax", "0/1", "✗", "failed"] in rows
    assert rows.count(["01_attention_by_hand", "softmax", "1/1", "✓"]) == 1
    assert "01_attention_by_hand  " + "█" * 24 + "  4/4" in out  # the finished one, in the order given
    assert "█" * 18 + "░" * 6 + "  3/4" in out and "7/8 points (88%)" in out
    assert "To fix:" in out and "you divided by the sum of the whole array" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_untouched_exercise_shows_not_started_and_an_empty_bar():
    result = {"file": "02.ipynb", "exercise": "02_masks_and_stability", "status": "ok", "total": 0, "max_total": 4,
              "notes": [], "exercises": [{"function": "causal_mask", "points": 0, "max_points": 1,
                                          "status": "not-implemented", "feedback": "❌ not implemented"}]}
    assert progress.table([result]).splitlines()[1].split() == ["02_masks_and_stability", "causal_mask", "0/1", "·"]
    assert "░" * 24 + "  0/4" in progress.bar_chart([result]) and progress.problems([result]) == []


def test_progress_names_a_folder_that_is_not_there(tmp_path, capsys):
    assert progress.main([str(tmp_path / "exercizes")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
