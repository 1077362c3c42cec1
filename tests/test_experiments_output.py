"""Experiment output folders: only a finished run's files land there, together, and they replace the
earlier run's; a failed or interrupted run leaves the folder as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlab.cli.main import main
from rnnlab.experiments import EXPERIMENTS, charmodel
from rnnlab.experiments.registry import OUTPUTS_FILE, Experiment, run_experiment
from rnnlab.experiments.report import ExperimentsFailed, run_all

TEXT = "To be, or not to be: that is the question. Whether 'tis nobler in the mind to suffer.\n" * 40


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> dict:
    """An experiment 'zz' whose behaviour the test sets: files to write, then fail or not."""
    plan: dict = {"files": {"fig.png": b"png-1", "summary.txt": b"the first summary"}, "fail": None}

    def run(out_dir: Path, *, seed: int = 0, quick: bool = False, data: str | None = None) -> dict:
        for name, content in plan["files"].items():
            (out_dir / name).write_bytes(content)
        if plan["fail"] is not None:
            raise plan["fail"]
        return {"experiment": "zz", "summary": plan["files"].get("summary.txt", b"").decode()}

    monkeypatch.setitem(EXPERIMENTS, "zz", Experiment("zz", "A test experiment", run))
    return plan


def test_a_new_run_replaces_the_earlier_runs_files_only(tmp_path: Path, fake: dict) -> None:
    out = tmp_path / "zz"
    run_experiment("zz", out)
    (out / "notes.md").write_text("mine", encoding="utf-8")  # not the experiment's: stays
    fake["files"] = {"other.png": b"png-2", "summary.txt": b"two"}
    run_experiment("zz", out)
    files = _files(out)
    assert files.pop(OUTPUTS_FILE) == b'{"files": ["other.png", "summary.txt"], "experiment": "zz"}\n'
    assert files == {"other.png": b"png-2", "summary.txt": b"two", "notes.md": b"mine"}  # fig.png went


@pytest.mark.parametrize("failure", [ValueError("boom"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_run_leaves_the_folder_as_it_was(tmp_path: Path, fake: dict, failure) -> None:
    out = tmp_path / "zz"
    run_experiment("zz", out)
    before = _files(out)
    fake["files"], fake["fail"] = {"fig.png": b"half", "extra.csv": b"x"}, failure
    with pytest.raises(type(failure)):
        run_experiment("zz", out)
    assert _files(out) == before and [p.name for p in out.iterdir() if p.name.startswith(".")] == [OUTPUTS_FILE]
    # and a first run that fails leaves no folder at all
    with pytest.raises(type(failure)):
        run_experiment("zz", tmp_path / "new" / "zz")
    assert not (tmp_path / "new").exists()


def test_the_report_never_shows_an_earlier_runs_figure_under_a_failure(tmp_path: Path, fake: dict) -> None:
    run_all(tmp_path, names=["zz"])
    assert 'src="data:image/png;base64,' in (tmp_path / "report.html").read_text(encoding="utf-8")
    fake["fail"] = ValueError("too short")
    with pytest.raises(ExperimentsFailed):
        run_all(tmp_path, names=["zz"])
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "too short" in page and "data:image/png" not in page and "the first summary" not in page
    assert (tmp_path / "zz" / "fig.png").read_bytes() == b"png-1"  # still there, from the run that finished


def test_an_interrupted_all_reports_what_finished(tmp_path: Path, fake: dict, monkeypatch) -> None:
    def stop(out_dir, **_):
        raise KeyboardInterrupt

    monkeypatch.setitem(EXPERIMENTS, "zz-stop", Experiment("zz-stop", "Stopped", stop))
    with pytest.raises(KeyboardInterrupt):
        run_all(tmp_path, names=["zz", "zz-stop"])
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert [e["name"] for e in report["experiments"]] == ["zz"]
    assert report["settings"]["interrupted"] == "during zz-stop; 1 experiment(s) not run"
    assert not (tmp_path / "zz-stop").exists()


def test_an_interrupted_all_keeps_the_complete_report_of_an_earlier_run(
    tmp_path: Path, fake: dict, monkeypatch
) -> None:
    run_all(tmp_path, names=["zz"])
    complete = {name: (tmp_path / name).read_bytes() for name in ("report.html", "report.json")}

    def stop(out_dir, **_):
        raise KeyboardInterrupt

    monkeypatch.setitem(EXPERIMENTS, "zz-stop", Experiment("zz-stop", "Stopped", stop))
    with pytest.raises(KeyboardInterrupt):
        run_all(tmp_path, names=["zz", "zz-stop"], seed=3)
    assert {name: (tmp_path / name).read_bytes() for name in complete} == complete
    partial = json.loads((tmp_path / "report-interrupted.json").read_text(encoding="utf-8"))
    assert partial["settings"]["interrupted"] == "during zz-stop; 1 experiment(s) not run"
    assert (tmp_path / "report-interrupted.html").is_file()


def test_only_a_complete_report_is_kept_beside_an_interrupted_one(tmp_path: Path, fake: dict, monkeypatch) -> None:
    def stop(out_dir, **_):
        raise KeyboardInterrupt

    monkeypatch.setitem(EXPERIMENTS, "zz-stop", Experiment("zz-stop", "Stopped", stop))
    for _ in range(2):  # no complete report yet: each interrupted run's report is the report
        with pytest.raises(KeyboardInterrupt):
            run_all(tmp_path, names=["zz", "zz-stop"])
        assert not (tmp_path / "report-interrupted.json").exists()
    run_all(tmp_path, names=["zz"])
    with pytest.raises(KeyboardInterrupt):
        run_all(tmp_path, names=["zz", "zz-stop"])
    assert "interrupted" not in json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["settings"]
    assert (tmp_path / "report-interrupted.json").is_file()
    run_all(tmp_path, names=["zz"])  # a complete report supersedes the interrupted one beside it
    assert not (tmp_path / "report-interrupted.json").exists() and not (tmp_path / "report-interrupted.html").exists()


def test_another_experiments_folder_is_refused(tmp_path: Path, fake: dict, monkeypatch, capsys) -> None:
    def other(out_dir: Path, **_) -> dict:
        raise AssertionError("should not run")

    monkeypatch.setitem(EXPERIMENTS, "yy", Experiment("yy", "Another experiment", other))
    out = tmp_path / "same"
    run_experiment("zz", out)  # fig.png, summary.txt
    before = _files(out)
    assert main(["experiment", "yy", "--out", str(out)]) == 2
    assert (
        capsys.readouterr().err
        == f"error: out: {out} holds the results of the experiment zz; choose another --out for yy\n"
    )
    assert _files(out) == before


def test_data_for_an_experiment_that_reads_no_text_is_refused(tmp_path: Path, fake: dict, capsys) -> None:
    text = tmp_path / "t.txt"
    text.write_text(TEXT, encoding="utf-8")
    assert main(["experiment", "zz", "--data", str(text), "--out", str(tmp_path / "zz")]) == 2
    assert (
        capsys.readouterr().err
        == f"error: --data: the experiment zz does not train on a text corpus, got --data {text}\n"
    )
    assert not (tmp_path / "zz").exists()


def test_an_out_folder_that_cannot_be_written_is_one_line_before_any_work(
    tmp_path: Path, fake: dict, capsys, monkeypatch
) -> None:
    (tmp_path / "ro").mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if Path(path) == tmp_path / "ro" else real_access(path, mode)
    )
    fake["fail"] = AssertionError("the experiment should not run")
    for argv in (["experiment", "zz"], ["experiment", "all"]):
        assert main([*argv, "--out", str(tmp_path / "ro")]) == 2
        assert capsys.readouterr().err == (
            f"error: out: cannot write into the folder {tmp_path / 'ro'} (no permission, or a read-only file system)\n"
        )


def test_all_takes_a_url_for_its_data(tmp_path: Path, fake: dict, monkeypatch) -> None:
    import http.server
    import threading
    from functools import partial

    served = tmp_path / "www"
    served.mkdir()
    (served / "corpus.txt").write_text(TEXT, encoding="utf-8")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    try:
        report = run_all(tmp_path / "out", names=["zz"], data=f"http://127.0.0.1:{server.server_address[1]}/corpus.txt")
    finally:
        server.shutdown()
        server.server_close()
    assert report.is_file()
    cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.suffix != ".sha256"]
    assert [p.read_text(encoding="utf-8") for p in cached] == [TEXT]  # downloaded, then read by the check


def test_cli_interrupt_says_no_checkpoint(tmp_path: Path, fake: dict, capsys) -> None:
    fake["fail"] = KeyboardInterrupt()
    assert main(["experiment", "zz", "--out", str(tmp_path / "zz")]) == 130
    assert capsys.readouterr().err == "interrupted\n"
    assert not (tmp_path / "zz").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["experiment", "zz", "--out", ""], "error: --out: expected a folder, got an empty string\n"),
        (["visualize", "RUN", "--text", "t.txt", "--out", "FOLDER"], "error: out: expected the path of an HTML file"),
    ],
)
def test_bad_out_is_one_line(tmp_path: Path, fake: dict, capsys, argv: list[str], message: str) -> None:
    (tmp_path / "FOLDER").mkdir()
    argv = [str(tmp_path / a) if a in ("RUN", "t.txt", "FOLDER") else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_a_model_trained_by_one_experiment_serves_the_next(tmp_path: Path, monkeypatch) -> None:
    corpus = tmp_path / "text.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    runs = tmp_path / "runs"
    charmodel._TRAINED.clear()
    run_experiment("temperature", runs / "temperature", quick=True, data=str(corpus))
    charmodel._TRAINED.clear()  # as in a new process: found beside it, by its experiment_model.json

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(charmodel, "train_char_model", no_training)
    run_experiment("lstm-gates", runs / "lstm-gates", quick=True, data=str(corpus))
    for name in ("model.safetensors", "metrics.jsonl", charmodel.MODEL_KEY_FILE):
        a = (runs / "temperature" / "model" / name).read_bytes()
        assert a == (runs / "lstm-gates" / "model" / name).read_bytes(), name
    weights = (runs / "lstm-gates" / "model" / "model.safetensors").read_bytes()
    # another seed is another model: trained, not copied
    with pytest.raises(AssertionError, match="trained again"):
        run_experiment("lstm-gates", runs / "lstm-gates", quick=True, data=str(corpus), seed=1)
    assert (runs / "lstm-gates" / "model" / "model.safetensors").read_bytes() == weights  # the failure changed nothing


def test_a_users_files_in_the_way_are_moved_aside_not_deleted(tmp_path: Path, fake: dict, capsys) -> None:
    out = tmp_path / "zz"
    (out / "summary.txt").parent.mkdir()
    (out / "summary.txt").write_text("my notes", encoding="utf-8")  # the user's, not an earlier run's
    run_experiment("zz", out)
    kept = [p for p in out.iterdir() if p.name.startswith("earlier-files-")]
    assert len(kept) == 1 and (kept[0] / "summary.txt").read_text(encoding="utf-8") == "my notes"
    assert (out / "summary.txt").read_bytes() == b"the first summary"
    assert f"note: moved summary.txt out of the way of this run's files, into {kept[0]}" in capsys.readouterr().err


def test_a_folder_written_before_outputs_were_listed_is_replaced_as_the_experiments(tmp_path: Path, fake: dict) -> None:
    out = tmp_path / "zz"
    out.mkdir()
    (out / "summary.json").write_text('{"experiment": "zz"}', encoding="utf-8")
    (out / "old.png").write_bytes(b"old figure")
    run_experiment("zz", out)
    assert sorted(p.name for p in out.iterdir()) == [OUTPUTS_FILE, "fig.png", "summary.txt"]


def _dead_pid() -> int:
    """The id of a process that has ended (that of a child which ran and exited)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(tmp_path: Path, fake: dict) -> None:
    out = tmp_path / "zz"
    stale = out / f".partial-{_dead_pid()}-0123abcd"
    stale.mkdir(parents=True)
    (stale / "model.bin").write_bytes(b"x" * 100)
    run_experiment("zz", out)
    assert not stale.exists()


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


@pytest.mark.parametrize("renames_before_kill", range(9))  # 8 renames: journal, 2 aside, 1 kept, 3 in, outputs
def test_a_run_killed_while_it_moves_its_files_in_is_finished_by_the_next(
    tmp_path: Path, fake: dict, monkeypatch: pytest.MonkeyPatch, renames_before_kill: int
) -> None:
    from rnnlab.experiments import registry

    out = tmp_path / "zz"
    run_experiment("zz", out)  # the earlier run: fig.png and summary.txt
    (out / "table.csv").write_text("mine", encoding="utf-8")  # a user's file, in the way of a new one
    fake["files"] = {"summary.txt": b"second", "table.csv": b"new table", "extra.png": b"png-2"}
    real, calls = registry.os.replace, []

    def replace(src, dst):  # the kill lands after `renames_before_kill` renames of the swap
        if len(calls) == renames_before_kill:
            raise _Killed
        calls.append((src, dst))
        real(src, dst)

    monkeypatch.setattr(registry.os, "replace", replace)
    try:
        run_experiment("zz", out)
        finished = True
    except _Killed:
        finished = False
    monkeypatch.setattr(registry.os, "replace", real)
    if not finished:  # the killed process is gone: give its folders a dead process's id
        dead = _dead_pid()
        for p in out.glob(".*partial-*"):
            p.rename(p.with_name(p.name.replace(f"-{os.getpid()}-", f"-{dead}-")))
        registry._remove_dead_stages(out)
    files = _files(out)
    if renames_before_kill == 0:  # killed as it wrote its journal: before the swap began, so the earlier run stands
        assert json.loads(files.pop(OUTPUTS_FILE)) == {"files": ["fig.png", "summary.txt"], "experiment": "zz"}
        assert files == {"fig.png": b"png-1", "summary.txt": b"the first summary", "table.csv": b"mine"}
        assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [OUTPUTS_FILE]
        return
    # after it: the second run's files, listed; the earlier run's gone; the user's file kept aside
    kept = [k for k in files if k.startswith("earlier-files-")]
    assert len(kept) == 1 and files.pop(kept[0]) == b"mine"
    assert json.loads(files.pop(OUTPUTS_FILE)) == {
        "files": ["extra.png", "summary.txt", "table.csv"],
        "experiment": "zz",  # also when the next run finished the swap from the journal
    }
    assert files == {"extra.png": b"png-2", "summary.txt": b"second", "table.csv": b"new table"}
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [OUTPUTS_FILE]
