"""Exact resume of NumPy-engine training runs: in-process, after SIGKILL, and the errors around it.

Needs NumPy only: the NumPy engine's checkpoints hold their own optimiser, data, RNG and carried
state, and `rnnlab train --resume RUN` picks the engine that trained RUN.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resume_support import TEXT, assert_same_weights, metrics, run_cli, subprocess_env, train_and_sigkill
from rnnlab.config import ModelConfig, TrainConfig
from rnnlab.training import lm as lm_module
from rnnlab.training.checkpoint import CheckpointError, load_safetensors, save_checkpoint
from rnnlab.training.lm import load_lm_data, train_lm

# the same BLAS threads in every process: the same rounding
_ENV = subprocess_env(OPENBLAS_NUM_THREADS="1")

NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "zoë"] * 6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "hamlet.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def _config(data: Path, **kw) -> TrainConfig:
    base = dict(
        engine="numpy", data=str(data), batch_size=4, seq_len=16, max_steps=24, eval_every=5, optimizer="adamw",
        lr=3e-3, warmup_steps=4, state_reset_prob=0.3, seed=3,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def _model(vocab_size: int, cell: str, **kw) -> ModelConfig:
    base = dict(cell=cell, hidden_size=24, embedding_dim=8, num_layers=2, dropout=0.2)
    base.update(kw)
    return ModelConfig(vocab_size=vocab_size, **base)


def _without_times(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("elapsed_s", "wall_s")} for r in records]


@pytest.mark.parametrize(("cell", "tied"), [("rnn", False), ("lstm", False), ("gru", False), ("gru", True)])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path: Path, corpus: Path, cell: str, tied: bool) -> None:
    config = _config(corpus)
    data = load_lm_data(config)
    model = _model(len(data.vocab), cell, **(dict(tie_weights=True, embedding_dim=24) if tied else {}))
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_lm(model, config, straight, data, progress=False)

    # stopped between evaluations: pending losses, carried state, mid-schedule, dropout drawn
    train_lm(model, config, split, data, progress=False, stop_at_step=12)
    state = json.loads((split / "train_state.json").read_text(encoding="utf-8"))
    assert state["step"] == 12 and len(state["pending_losses"]) == 2 and state["carry"] == (2 if cell == "lstm" else 1)
    assert [r["step"] for r in metrics(split)] == [5, 10]
    np.random.seed(999)  # noqa: NPY002 - disturbing the legacy global generator on purpose
    record = train_lm(model, config, split, load_lm_data(config), progress=False, resume=True)

    assert record["step"] == 24
    assert_same_weights(straight, split)
    assert [r["step"] for r in metrics(split)] == [5, 10, 15, 20, 24]
    assert _without_times(metrics(split)) == _without_times(metrics(straight))
    # the final checkpoints hold the same optimiser, RNG and data state too: a longer budget goes on identically
    longer = config.replace(max_steps=27)
    for run in (straight, split):
        assert train_lm(model, longer, run, data, progress=False, resume=True)["step"] == 27
    assert_same_weights(straight, split)


def test_per_line_resume_across_reshuffled_epochs(tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("\n".join(NAMES), encoding="utf-8")
    config = _config(names, per_line=True, batch_size=2, seq_len=8, max_steps=60, eval_every=100, checkpoint_every=20)
    data = load_lm_data(config)
    model = _model(len(data.vocab), "gru", dropout=0.0, num_layers=1)
    assert (len(data.train) - 1) // (2 * 8) < 20  # the run spans several epochs, each in a new order
    train_lm(model, config, tmp_path / "straight", data, progress=False)
    train_lm(model, config, tmp_path / "split", data, progress=False, stop_at_step=37)
    assert json.loads((tmp_path / "split" / "train_state.json").read_text(encoding="utf-8"))["step"] == 37
    train_lm(model, config, tmp_path / "split", data, progress=False, resume=True)
    assert_same_weights(tmp_path / "straight", tmp_path / "split")


def test_checkpoint_every_saves_between_evaluations(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(corpus, max_steps=12, eval_every=100, checkpoint_every=4)
    data = load_lm_data(config)
    saved: list[int] = []
    save_checkpoint = lm_module.save_checkpoint

    def spy(directory, **kwargs):
        if kwargs.get("extra_tensors") is not None:  # the resumable checkpoint, not best/
            saved.append(kwargs["state"]["step"])
        return save_checkpoint(directory, **kwargs)

    monkeypatch.setattr(lm_module, "save_checkpoint", spy)
    train_lm(_model(len(data.vocab), "lstm"), config, tmp_path / "run", data, progress=False)
    assert saved == [4, 8, 12]  # the last one with the final evaluation
    assert [r["step"] for r in metrics(tmp_path / "run")] == [12]


def _train_argv(corpus: Path, out: Path, steps: int, every: int) -> list[str]:
    return [
        "train", "lm", "--engine", "numpy", "--data", str(corpus), "--out", str(out), "--max-steps", str(steps),
        "--checkpoint-every", str(every), "--eval-every", "1000", "--hidden-size", "64", "--embedding-dim", "16",
        "--layers", "2", "--dropout", "0.1", "--batch-size", "8", "--seq-len", "32", "--seed", "5",
        "--state-reset-prob", "0.1", "--quiet",
    ]  # fmt: skip


def _rnnlab(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rnnlab", *argv], capture_output=True, text=True, env=_ENV, timeout=300, **kw
    )


def test_sigkill_then_resume_equals_uninterrupted(tmp_path: Path, corpus: Path) -> None:
    steps, half = 600, 300
    reference = tmp_path / "reference"
    proc = _rnnlab(_train_argv(corpus, reference, steps, half))
    assert proc.returncode == 0, proc.stderr
    run = train_and_sigkill(lambda out: _train_argv(corpus, out, steps, half), tmp_path, half, _ENV)

    proc = _rnnlab(["train", "--resume", str(run), "--quiet"])  # no --engine: the run's own
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["step"] == steps
    assert_same_weights(reference, run)
    assert metrics(reference)[-1]["val_loss"] == metrics(run)[-1]["val_loss"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    out = tmp_path_factory.mktemp("runs") / "done"
    rc, _, err = run_cli([*_train_argv(corpus, out, 6, 3), "--eval-every", "3", "--hidden-size", "16"])
    assert rc == 0, err
    return out


def test_resume_can_extend_the_budget(tmp_path: Path, finished_run: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    rc, out, err = run_cli(["train", "--resume", run, "--max-steps", "9"])
    assert rc == 0, err
    assert err.splitlines()[0] == f"resuming {run} at step 6 (numpy engine)"
    assert json.loads(out)["step"] == 9
    assert [r["step"] for r in metrics(run)] == [3, 6, 9]
    rc, out, err = run_cli(["train", "--resume", run, "--quiet"])  # nothing left to do: the last record again
    assert rc == 0, err
    assert json.loads(out)["step"] == 9 and len(metrics(run)) == 3


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            ["--engine", "torch"],
            "--engine: {run} was trained with --engine numpy and resumes on it, got --engine torch",
        ),
        (["--threads", "1"], "threads: --threads is implemented by --engine torch only"),
        (["--lr", "0.1"], "resume: continues the saved run with its own options; cannot change --lr"),
    ],
)
def test_resume_refuses_what_it_cannot_do(finished_run: Path, extra: list[str], needle: str) -> None:
    before = (finished_run / "model.safetensors").read_bytes()
    rc, out, err = run_cli(["train", "--resume", finished_run, *extra])
    assert rc == 2 and out == "" and "Traceback" not in err
    assert err.startswith("error: " + needle.format(run=finished_run)), err
    assert (finished_run / "model.safetensors").read_bytes() == before


def test_resume_of_a_damaged_checkpoint_is_one_clear_error(tmp_path: Path, finished_run: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "train_state.json").write_text('{"step": 6}', encoding="utf-8")  # the manifest says otherwise
    rc, out, err = run_cli(["train", "--resume", run])
    assert rc == 2 and out == "" and "Traceback" not in err
    assert (
        err.strip()
        == f"error: {run / 'train_state.json'}: truncated or altered: 11 bytes, checkpoint.json says "
        + str(json.loads((run / "checkpoint.json").read_text(encoding="utf-8"))["files"]["train_state.json"]["bytes"])
    )


@pytest.mark.parametrize("key", ["rng", "step", "data"])
def test_resume_of_an_edited_and_rehashed_state_is_one_clear_error(
    tmp_path: Path, finished_run: Path, key: str
) -> None:
    import hashlib

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    state = json.loads((run / "train_state.json").read_text(encoding="utf-8"))
    del state[key]
    raw = json.dumps(state).encode()
    (run / "train_state.json").write_bytes(raw)
    manifest = json.loads((run / "checkpoint.json").read_text(encoding="utf-8"))
    manifest["files"]["train_state.json"] = {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}
    (run / "checkpoint.json").write_text(json.dumps(manifest), encoding="utf-8")
    rc, out, err = run_cli(["train", "--resume", run, "--max-steps", "30"])
    assert (rc, out) == (2, "") and err.endswith(
        f"error: checkpoint: {run} is incomplete or damaged: no '{key}' where a saved run has one\n"
    )


def test_resume_needs_the_training_state(tmp_path: Path, finished_run: Path) -> None:
    # a folder with weights and configs but no optimiser state (as written before resume existed)
    config = TrainConfig.from_dict(json.loads((finished_run / "train_config.json").read_text(encoding="utf-8")))
    model = ModelConfig.from_dict(json.loads((finished_run / "model_config.json").read_text(encoding="utf-8")))
    save_checkpoint(
        tmp_path, weights=load_safetensors(finished_run / "model.safetensors"), configs={}, state={"step": 6}
    )
    with pytest.raises(CheckpointError, match="holds weights but no training state, so it cannot be resumed"):
        train_lm(model, config, tmp_path, load_lm_data(config), progress=False, resume=True)


def test_a_crash_between_the_metrics_and_the_checkpoint_loses_no_record(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(corpus, max_steps=15)
    data = load_lm_data(config)
    model = _model(len(data.vocab), "lstm")
    train_lm(model, config, tmp_path / "straight", data, progress=False)

    class Crash(Exception):
        pass

    save_checkpoint = lm_module.save_checkpoint

    def crash_at_step_10(directory, **kwargs):
        if kwargs.get("extra_tensors") is not None and kwargs["state"]["step"] == 10:
            raise Crash  # the process dies while the checkpoint of the evaluation at step 10 is written
        return save_checkpoint(directory, **kwargs)

    run = tmp_path / "crashed"
    monkeypatch.setattr(lm_module, "save_checkpoint", crash_at_step_10)
    with pytest.raises(Crash):
        train_lm(model, config, run, data, progress=False)
    monkeypatch.setattr(lm_module, "save_checkpoint", save_checkpoint)
    assert [r["step"] for r in metrics(run)] == [5, 10]  # written, though its checkpoint was not
    train_lm(model, config, run, data, progress=False, resume=True)  # from the checkpoint at step 5
    assert_same_weights(tmp_path / "straight", run)
    assert [r["step"] for r in metrics(run)] == [5, 10, 15]


def test_ctrl_c_before_the_first_checkpoint_leaves_nothing_and_says_so(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_train_lm = lm_module.train_lm

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    argv = ["train", "--engine", "numpy", "--data", corpus, "--max-steps", "4", "--hidden-size", "8", "--quiet"]
    monkeypatch.setattr(lm_module, "train_lm", interrupted)
    rc, _, err = run_cli([*argv, "--out", tmp_path / "a" / "fresh"])
    assert (rc, err) == (130, "interrupted before the first checkpoint; nothing was saved\n")
    assert not (tmp_path / "a").exists()  # not even the data/ folder it built

    monkeypatch.setattr(lm_module, "train_lm", real_train_lm)
    assert run_cli([*argv, "--out", tmp_path / "run"])[0] == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    monkeypatch.setattr(lm_module, "train_lm", interrupted)
    rc, _, err = run_cli([*argv, "--out", tmp_path / "run", "--overwrite"])
    assert (rc, err) == (
        130,
        f"interrupted before the first checkpoint; the earlier run in {tmp_path / 'run'} is kept\n",
    )
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()} == before

    def after_a_checkpoint(model_config, train_config, out_dir, *args, **kwargs):
        real_train_lm(model_config, train_config.replace(max_steps=2), out_dir, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(lm_module, "train_lm", after_a_checkpoint)
    rc, _, err = run_cli([*argv, "--out", tmp_path / "later"])
    assert (rc, err) == (130, "interrupted; the last checkpoint is kept\n")
    assert json.loads((tmp_path / "later" / "train_state.json").read_text(encoding="utf-8"))["step"] == 2


def test_a_relative_data_path_is_recorded_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "text.txt").write_text(TEXT, encoding="utf-8")
    monkeypatch.chdir(tmp_path / "work")
    argv = ["train", "--engine", "numpy", "--data", "text.txt", "--max-steps", "2", "--hidden-size", "8", "--quiet"]
    assert run_cli([*argv, "--out", tmp_path / "run"])[0] == 0
    config = json.loads((tmp_path / "run" / "train_config.json").read_text(encoding="utf-8"))
    assert config["data"] == str(tmp_path / "work" / "text.txt")
    monkeypatch.chdir(tmp_path)  # elsewhere: eval and --resume still find the data
    rc, _, err = run_cli(["eval", tmp_path / "run"])
    assert rc == 0, err
    assert run_cli(["train", "--resume", tmp_path / "run", "--max-steps", "3"])[0] == 0


def test_a_run_killed_just_after_its_commit_point_is_still_a_run(tmp_path: Path, finished_run: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "checkpoint.json").rename(run / "checkpoint.json.next")  # killed before the last rename
    rc, _, err = run_cli(["train", "--engine", "numpy", "--data", run / "x.txt", "--out", run])
    assert rc == 2 and "already holds a run" in err
    rc, _, err = run_cli(["sample", run, "--length", "5"])
    assert rc == 0, err
    assert (run / "checkpoint.json").is_file() and not (run / "checkpoint.json.next").exists()  # completed


def test_tie_weights_alone_sizes_the_numpy_embedding(tmp_path: Path, corpus: Path) -> None:
    argv = ["train", "--engine", "numpy", "--level", "word", "--tie-weights", "--data", corpus]
    rc, _, err = run_cli([*argv, "--hidden-size", "16", "--max-steps", "2", "--seq-len", "8", "--out", tmp_path / "r"])
    assert rc == 0, err
    config = json.loads((tmp_path / "r" / "model_config.json").read_text(encoding="utf-8"))
    assert (config["tie_weights"], config["embedding_dim"], config["hidden_size"]) == (True, 16, 16)


@pytest.mark.parametrize("rank", ["0", "1"])
def test_every_rank_takes_the_same_folder_for_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rank: str) -> None:
    # under torchrun each rank refuses an occupied --out by itself: by the same test as rank 0's
    from rnnlab.cli.main import _new_run_in

    monkeypatch.setenv("RANK", rank)
    for held in ("best/checkpoint.json", "checkpoint.json.next"):
        out = tmp_path / held.replace("/", "_")
        (out / held).parent.mkdir(parents=True)
        (out / held).write_text("{}", encoding="utf-8")
        with pytest.raises(ValueError, match="already holds a run"), _new_run_in(out, overwrite=False):
            pass
