"""A run whose data files moved: `eval` reads only the split it scores, `--resume` takes the new places.

For the three tasks with separate validation and test files (classify, tag, seq2seq).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnnlab.training.checkpoint import load_checkpoint
from task_support import assert_one_error_line, cli, one_thread  # noqa: F401 (one_thread: autouse)

COMMON = ["--threads", "1", "--quiet", "--schedule", "constant", "--eval-every", "2"]
TINY = {
    "classify": ["--hidden-size", "8", "--embedding-dim", "8", "--batch-size", "8"],
    "tag": ["--hidden-size", "8", "--embedding-dim", "8", "--char-dim", "4", "--char-hidden", "4", "--batch-size", "8"],
    "seq2seq": ["--hidden-size", "8", "--embedding-dim", "8", "--batch-size", "8"],
}
WORDS = ["the", "cat", "sees", "a", "dog", "big", "red", "house"]


def write_split(task: str, path: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    sentences = [list(rng.choice(WORDS, rng.integers(2, 6))) for _ in range(n)]
    if task == "classify":
        text = "".join(f"{len(s) % 2}\t{' '.join(s)}\n" for s in sentences)
    elif task == "tag":
        text = "".join(
            "".join(
                f"{i}\t{w}\t{w}\t{'NOUN' if w in ('cat', 'dog', 'house') else 'X'}\t_\t_\t0\tdep\t_\t_\n"
                for i, w in enumerate(s, 1)
            )
            + "\n"
            for s in sentences
        )
    else:
        text = "".join(f"{' '.join(s)}\t{' '.join(reversed(s))}\n" for s in sentences)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_files(task: str, folder: Path) -> dict[str, Path]:
    return {
        role: write_split(task, folder / f"{role}.txt", n, k)
        for k, (role, n) in enumerate([("data", 40), ("val", 12), ("test", 10)])
    }


def train(capsys, task: str, out: Path, files: dict[str, Path], steps: int) -> None:
    argv = ["train", task, *(a for role, path in files.items() for a in (f"--{role}", path))]
    rc, _, err = cli(capsys, *argv, "--out", out, "--max-steps", steps, *TINY[task], *COMMON)
    assert rc == 0, err


@pytest.mark.parametrize("task", ["classify", "tag", "seq2seq"])
def test_eval_does_not_need_the_training_file(task, tmp_path, capsys):
    files = write_files(task, tmp_path / "data")
    train(capsys, task, tmp_path / "run", files, 2)
    scores = {split: cli(capsys, "eval", tmp_path / "run", "--split", split)[1] for split in ("val", "test")}
    files["data"].rename(tmp_path / "elsewhere.txt")
    for split in ("val", "test"):
        rc, out, err = cli(capsys, "eval", tmp_path / "run", "--split", split)
        assert rc == 0, err
        assert json.loads(out) == json.loads(scores[split])
    # a changed validation file is still refused
    write_split(task, files["val"], 12, 99)
    line = assert_one_error_line(cli(capsys, "eval", tmp_path / "run")[2])
    assert f"{files['val']} is not the val file the run was trained on" in line


def test_eval_of_a_held_out_split_still_needs_the_training_file(tmp_path, capsys):
    files = write_files("classify", tmp_path / "data")
    del files["val"], files["test"]
    train(capsys, "classify", tmp_path / "run", files, 2)
    files["data"].rename(tmp_path / "elsewhere.txt")
    rc, _, err = cli(capsys, "eval", tmp_path / "run")
    assert rc == 2
    assert f"file not found: {files['data']}" in assert_one_error_line(err)


@pytest.mark.parametrize("task", ["classify", "tag", "seq2seq"])
def test_resume_takes_the_new_places_of_moved_files_and_continues_exactly(task, tmp_path, capsys):
    files = write_files(task, tmp_path / "data")
    train(capsys, task, tmp_path / "full", files, 6)
    train(capsys, task, tmp_path / "half", files, 3)
    (tmp_path / "moved").mkdir()
    moved = {role: path.rename(tmp_path / "moved" / path.name) for role, path in files.items()}

    rc, _, err = cli(capsys, "train", task, "--resume", tmp_path / "half", "--data", moved["data"], "--max-steps", 6)
    assert rc == 2
    assert f"--val: file not found: {files['val']}" in assert_one_error_line(err)

    argv = [a for role, path in moved.items() for a in (f"--{role}", path)]
    rc, _, err = cli(capsys, "train", "--resume", tmp_path / "half", *argv, "--max-steps", 6, "--quiet")
    assert rc == 0, err
    full, resumed = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "half")
    for name in full.weights:
        np.testing.assert_array_equal(full.weights[name], resumed.weights[name], err_msg=name)
    # the run now names the new places, so eval finds them
    assert resumed.configs["task_options"]["val"] == str(moved["val"])
    assert resumed.configs["task_options"]["test"] == str(moved["test"])
    rc, out, err = cli(capsys, "eval", tmp_path / "half", "--split", "test")
    assert rc == 0 and json.loads(out)["data"] == str(moved["test"]), err


def test_resume_refuses_val_or_test_files_the_run_did_not_have(tmp_path, capsys):
    files = write_files("classify", tmp_path / "data")
    val, test = files.pop("val"), files.pop("test")
    train(capsys, "classify", tmp_path / "run", files, 2)
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    rc, _, err = cli(capsys, "train", "classify", "--resume", tmp_path / "run", "--val", val, "--max-steps", 4)
    assert rc == 2
    assert assert_one_error_line(err) == (
        f"error: --val: the run {tmp_path / 'run'} holds its validation split out of --data; "
        f"--val with --resume only gives a moved file's new place, got {val}"
    )
    rc, _, err = cli(capsys, "train", "classify", "--resume", tmp_path / "run", "--test", test, "--max-steps", 4)
    assert rc == 2
    assert "--test: the run" in assert_one_error_line(err) and "has no test file" in err
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()} == before


@pytest.mark.parametrize("task", ["classify", "tag", "seq2seq"])
def test_eval_reads_only_the_file_of_the_split_it_scores(task, tmp_path, capsys):
    files = write_files(task, tmp_path / "data")
    train(capsys, task, tmp_path / "run", files, 2)
    files["val"].rename(tmp_path / "val-elsewhere.txt")
    rc, out, err = cli(capsys, "eval", tmp_path / "run", "--split", "test")
    assert rc == 0 and json.loads(out)["data"] == str(files["test"]), err
    (tmp_path / "val-elsewhere.txt").rename(files["val"])
    files["test"].rename(tmp_path / "test-elsewhere.txt")
    rc, out, err = cli(capsys, "eval", tmp_path / "run")
    assert rc == 0 and json.loads(out)["data"] == str(files["val"]), err


def test_resume_with_moved_files_repoints_best_too(tmp_path, capsys):
    files = write_files("classify", tmp_path / "data")
    train(capsys, "classify", tmp_path / "run", files, 2)
    (tmp_path / "moved").mkdir()
    moved = {role: path.rename(tmp_path / "moved" / path.name) for role, path in files.items()}
    argv = [a for role, path in moved.items() for a in (f"--{role}", path)]
    # the budget is spent: nothing trains, so no new best would rewrite best/ by itself
    rc, _, err = cli(capsys, "train", "--resume", tmp_path / "run", *argv, "--max-steps", 2, "--quiet")
    assert rc == 0, err
    for split in ("val", "test"):
        rc, out, err = cli(capsys, "eval", tmp_path / "run" / "best", "--split", split)
        assert rc == 0 and json.loads(out)["data"] == str(moved[split]), err
