"""course-grade --cluster: a real Dask scheduler and two workers on 127.0.0.1 grade a batch; the results are
the local ones, and a worker killed mid-batch loses nothing.

distributed is a test extra: with CI=true these tests run (a missing package fails them); elsewhere they skip
with the reason."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import nbformat
import pytest

import submissions
from course_lib.grading import batch, cluster, sandbox
from course_lib.grading.judging import GraderError
from course_lib.release import ROOT

if os.environ.get("CI") != "true":
    pytest.importorskip("distributed", reason="course-grade --cluster needs the distributed package (a test extra)")
from distributed import Client  # noqa: E402  (under CI=true a missing package is an error, never a skip)

TRUSTED = sandbox.unavailable() is not None  # as in tests/test_grade.py
OPTIONS = batch.Options(cell_timeout=5, total_timeout=120, memory_mb=1536, trusted=TRUSTED, secret="the same seeds")
COMPARED = ("status", "exercise", "student", "lesson", "total", "max_total", "percent", "sha256", "notes", "trusted")


def make_class(folder: Path) -> list[Path]:
    """Nine submissions of lesson 01 in the collected layout: complete, one wrong, blank, not a notebook, and a
    symbolic link (judged here: nothing of it is sent)."""
    wrong = submissions.base()
    submissions.replace_function("softmax", submissions.WRONG_SOFTMAX)(wrong)
    blank = nbformat.read(str(ROOT / "exercises" / "01_attention_by_hand.ipynb"), as_version=4)
    kinds = [submissions.base(), wrong, blank] * 2 + [wrong]
    for number, notebook in enumerate(kinds):
        (folder / f"student{number}").mkdir(parents=True)
        nbformat.write(notebook, str(folder / f"student{number}" / "01_attention_by_hand.ipynb"))
    (folder / "student7").mkdir()
    (folder / "student7" / "01_attention_by_hand.ipynb").write_bytes(b'{"cells": [')
    (folder / "student8").mkdir()
    (folder / "student8" / "01_attention_by_hand.ipynb").symlink_to(folder / "student0" / "01_attention_by_hand.ipynb")
    return sorted(folder.rglob("*.ipynb"))


def comparable(results: list[dict]) -> dict[str, tuple]:
    return {r["path"]: (tuple(r.get(k) for k in COMPARED),
                        tuple((e["function"], e["points"], e["status"], e["feedback"]) for e in r["exercises"]))
            for r in results}


class KillOneWorkerMidBatch(batch.Progress):
    """After the first result arrives, kill a worker that is grading a submission at that moment; and check
    that every result is in grades.json on disk when it is announced (written as it arrives)."""

    def __init__(self, local: cluster.LocalCluster, total: int, written: Path):
        super().__init__(total, stream=io.StringIO())
        self.local, self.killed, self.in_flight, self.written = local, None, [], written
        self.on_disk: list[int] = []

    def update(self, result: dict) -> None:
        super().update(result)
        self.on_disk.append(len(json.loads(self.written.read_text())))
        assert result["path"] in {r["path"] for r in json.loads(self.written.read_text())}
        if self.killed is None:
            with Client(self.local.address, set_as_default=False) as client:
                names = {address: info["name"] for address, info in client.scheduler_info()["workers"].items()}
                busy = [(address, keys) for address, keys in client.processing().items() if keys]
            address, self.in_flight = busy[0]
            self.killed = int(str(names[address]).removeprefix("worker-"))
            self.local.kill_worker(self.killed)


def test_a_cluster_grades_as_locally_and_a_worker_killed_mid_batch_loses_nothing(tmp_path):
    """Are the cluster's results the local ones (same seeds, same verdicts, same students), is every
    submission graded although a worker died while grading one, and are the reports written?"""
    paths = make_class(tmp_path / "submissions")
    roots = {str(p.absolute()): tmp_path / "submissions" for p in paths}
    local = batch.grade_batch(paths, tmp_path / "local" / "grades.csv", OPTIONS, jobs=2, roots=roots,
                              progress=batch.Progress(len(paths), stream=io.StringIO()))
    with cluster.local_cluster(2, tmp_path / "cluster") as running:
        progress = KillOneWorkerMidBatch(running, len(paths), tmp_path / "remote" / "grades.json")
        remote = batch.grade_batch(paths, tmp_path / "remote" / "grades.csv", OPTIONS, roots=roots,
                                   cluster=running.address, progress=progress)
        assert progress.killed is not None and progress.in_flight, "no worker was busy when one was killed"
        assert running.workers[progress.killed].returncode == -9
        assert running.workers[1 - progress.killed].poll() is None
    assert progress.done == len(paths) == len(remote)
    assert progress.on_disk == list(range(1, len(paths) + 1))  # one more on disk with each result
    assert comparable(remote) == comparable(local)
    assert sorted(r["status"] for r in remote) == ["invalid-notebook", "not-a-file"] + ["ok"] * 7
    assert sorted(r["total"] for r in remote if r["status"] == "ok") == [0, 0, 3, 3, 3, 4, 4]
    assert (tmp_path / "remote" / "class_report.html").exists() and (tmp_path / "remote" / "gradebook.csv").exists()


def test_a_submission_that_keeps_losing_its_worker_is_reported_and_graded_again_on_a_rerun(tmp_path):
    """With a scheduler that gives a task up at its first lost worker, is the submission being graded on the
    killed worker reported as grader-error (and only those), does the batch finish, and does a rerun grade it?"""
    paths = make_class(tmp_path / "submissions")[:4]
    out = tmp_path / "out" / "grades.csv"
    with cluster.local_cluster(2, tmp_path / "cluster", allowed_failures=0) as running:
        progress = KillOneWorkerMidBatch(running, len(paths), out.with_suffix(".json"))
        first = batch.grade_batch(paths, out, OPTIONS, cluster=running.address, progress=progress)
        lost = [r for r in first if r["status"] == "grader-error"]
        assert len(first) == len(paths) and 1 <= len(lost) <= len(progress.in_flight)
        assert all("the cluster lost the worker grading this file" in r["notes"][0] for r in lost)
        again = batch.grade_batch(paths, out, OPTIONS, cluster=running.address,
                                  progress=batch.Progress(len(lost), stream=io.StringIO()))
    assert [r["status"] for r in again] == ["ok"] * 4
    assert [r["seconds"] for r in again if r["path"] not in {x["path"] for x in lost}] == \
           [r["seconds"] for r in first if r["path"] not in {x["path"] for x in lost}]  # the rest not regraded


def test_the_command_line_refuses_a_cluster_it_cannot_use(tmp_path, capsys, monkeypatch):
    """Does --cluster without --out, or with nobody listening, end with a clear error (exit 2)?"""
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 2)
    notebook = ROOT / "solutions" / "01_attention_by_hand.ipynb"
    assert batch.main([str(notebook), "--cluster", "tcp://127.0.0.1:9"]) == 2
    assert "--cluster needs --out" in capsys.readouterr().err
    args = [str(notebook), "--cluster", "tcp://127.0.0.1:9", "--out", str(tmp_path / "grades.csv"),
            *(["--trusted"] if TRUSTED else [])]
    assert batch.main(args) == 2
    assert "cannot reach a Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err


class FakeClient:
    """What check_workers asks of a client, answering as the given workers would."""

    def __init__(self, answers: dict):
        self.answers = answers

    def wait_for_workers(self, count, timeout):
        pass

    def run(self, function, *args):
        return self.answers


@pytest.mark.parametrize("answer, says", [
    ({"fingerprint": "another", "problem": None}, "has another version of the course"),
    ({"fingerprint": None, "problem": "GraderError: refusing to run submissions without a sandbox"},
     "cannot grade: GraderError: refusing"),
])
def test_a_worker_with_another_course_or_no_sandbox_is_refused_before_anything_is_sent(answer, says):
    client = FakeClient({"tcp://10.0.0.7:40000": answer})
    with pytest.raises(GraderError, match=says):
        cluster.check_workers(client, cluster.plain(OPTIONS), OPTIONS.solutions)
    same = {"fingerprint": cluster.fingerprint(OPTIONS.solutions), "problem": None}
    cluster.check_workers(FakeClient({"tcp://10.0.0.7:40000": same}), cluster.plain(OPTIONS), OPTIONS.solutions)


def test_a_worker_reports_the_course_it_holds():
    """Does worker_ready, run here as on a worker, give this course's fingerprint and no problem?"""
    ready = cluster.worker_ready(cluster.plain(OPTIONS))
    assert ready == {"fingerprint": cluster.fingerprint(OPTIONS.solutions), "problem": None}
