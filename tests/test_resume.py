"""Exact resume of torch training runs: in-process, and after SIGKILL; damaged checkpoints; no pickle."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from resume_support import TEXT, assert_same_weights, metrics, run_cli, subprocess_env, train_and_sigkill  # noqa: E402
from rnnlab.config import TrainConfig  # noqa: E402
from rnnlab.training.lm_run import load_run  # noqa: E402
from rnnlab.training.lm_task import LMTask  # noqa: E402
from rnnlab.training.trainer import Trainer  # noqa: E402

_ENV = subprocess_env(OMP_NUM_THREADS="1")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny models gain nothing from threads, and a busy machine makes spinning threads very slow
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "hamlet.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def _config(corpus: Path, **kw) -> TrainConfig:
    base = dict(
        engine="torch", data=str(corpus), batch_size=4, seq_len=16, max_steps=24, eval_every=5, optimizer="adamw",
        lr=3e-3, warmup_steps=4, lr_schedule="cosine", state_reset_prob=0.3, threads=1, seed=3,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


MODEL = dict(cell="lstm", hidden_size=24, embedding_dim=8, num_layers=2, dropout=0.2)


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path: Path, corpus: Path, schedule: str) -> None:
    config = _config(corpus, lr_schedule=schedule, plateau_patience=1, plateau_factor=0.5)
    straight = tmp_path / "straight"
    Trainer(LMTask.from_config(config, MODEL), config, straight).fit()

    split = tmp_path / "split"
    first = Trainer(LMTask.from_config(config, MODEL), config, split)
    first.fit(stop_at_step=12)  # between evaluations: pending losses, carried state, mid-schedule
    assert json.loads((split / "train_state.json").read_text(encoding="utf-8"))["step"] == 12
    # the second half runs in a fresh trainer with fresh data, the process's generators disturbed
    torch.manual_seed(999)
    np.random.seed(999)  # noqa: NPY002 - disturbing the legacy global generator on purpose
    second = Trainer(LMTask.from_config(config, MODEL), config, split, resume=True)
    assert second.step == 12
    record = second.fit()

    assert_same_weights(straight, split)
    assert metrics(straight) == [
        {**r, "wall_s": s["wall_s"], "elapsed_s": s["elapsed_s"]}
        for r, s in zip(metrics(split), metrics(straight), strict=True)
    ]
    assert record["step"] == 24 and [r["step"] for r in metrics(split)] == [5, 10, 15, 20, 24]
    # the final checkpoints hold the same optimiser, RNG and data state too: one more step is identical.
    # (one trainer after the other: dropout draws from the process-wide torch generator)
    longer = config.replace(max_steps=25)
    for run in (straight, split):
        Trainer(LMTask.from_config(longer, MODEL), longer, run, resume=True).fit()
    assert_same_weights(straight, split)


def test_per_line_resume_across_reshuffled_epochs(tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("\n".join(["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper"] * 6), "utf-8")
    config = _config(names, per_line=True, batch_size=2, seq_len=8, max_steps=60, eval_every=100)
    model = {**MODEL, "dropout": 0.0}
    task = LMTask.from_config(config, model)
    assert task.batcher.batches_per_epoch < 20  # the run spans several epochs, each in a new order
    assert not np.array_equal(task.batcher.epoch_tokens(1), task.batcher.epoch_tokens(2))
    Trainer(task, config, tmp_path / "straight").fit()
    Trainer(LMTask.from_config(config, model), config, tmp_path / "split").fit(stop_at_step=37)
    resumed = LMTask.from_config(config, model)
    Trainer(resumed, config, tmp_path / "split", resume=True).fit()
    assert resumed.batcher.epoch >= 3
    assert_same_weights(tmp_path / "straight", tmp_path / "split")


def _train_argv(corpus: Path, out: Path, steps: int, every: int) -> list[str]:
    return [
        "train", "lm", "--data", str(corpus), "--out", str(out), "--max-steps", str(steps), "--checkpoint-every",
        str(every), "--eval-every", "1000", "--hidden-size", "48", "--embedding-dim", "16", "--layers", "2",
        "--dropout", "0.1", "--batch-size", "8", "--seq-len", "32", "--threads", "1", "--seed", "5",
        "--state-reset-prob", "0.1", "--quiet",
    ]  # fmt: skip


def test_sigkill_then_resume_equals_uninterrupted(tmp_path: Path, corpus: Path) -> None:
    steps, half = 400, 200
    reference = tmp_path / "reference"
    proc = subprocess.run(
        [sys.executable, "-m", "rnnlab", *_train_argv(corpus, reference, steps, half)],
        capture_output=True, text=True, env=_ENV, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run = train_and_sigkill(lambda out: _train_argv(corpus, out, steps, half), tmp_path, half, _ENV)

    rc, out, err = run_cli(["train", "--resume", run, "--threads", "1", "--quiet"])
    assert rc == 0, err
    assert json.loads(out)["step"] == steps
    assert_same_weights(reference, run)
    assert metrics(reference)[-1]["val_loss"] == metrics(run)[-1]["val_loss"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    out = tmp_path_factory.mktemp("runs") / "done"
    rc, _, err = run_cli([*_train_argv(corpus, out, 10, 5), "--eval-every", "5"])
    assert rc == 0, err
    return out


def test_resume_can_extend_the_budget(tmp_path: Path, finished_run: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    rc, out, err = run_cli(["train", "--resume", run, "--max-steps", "15", "--quiet"])
    assert rc == 0, err
    assert json.loads(out)["step"] == 15
    assert [r["step"] for r in metrics(run)] == [5, 10, 15]


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("flip_state", "train_state.safetensors: altered"),
        ("truncate_state", "train_state.safetensors: truncated"),
        ("delete_manifest", "no checkpoint.json"),
        ("edit_state_json", "train_state.json: altered"),
    ],
)
def test_damaged_checkpoint_is_one_clear_error(tmp_path: Path, finished_run: Path, damage: str, needle: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    if damage == "flip_state":
        raw = bytearray((run / "train_state.safetensors").read_bytes())
        raw[len(raw) // 2] ^= 0x01
        (run / "train_state.safetensors").write_bytes(bytes(raw))
    elif damage == "truncate_state":
        raw = (run / "train_state.safetensors").read_bytes()
        (run / "train_state.safetensors").write_bytes(raw[:-100])
    elif damage == "delete_manifest":
        (run / "checkpoint.json").unlink()
    else:
        text = (run / "train_state.json").read_text(encoding="utf-8")
        (run / "train_state.json").write_text(text.replace('"step": 10', '"step": 11'), encoding="utf-8")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    rc, out, err = run_cli(["train", "--resume", run, "--max-steps", "20", "--quiet"])
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_resume_refuses_changed_options_and_best_folder(finished_run: Path) -> None:
    rc, _, err = run_cli(["train", "--resume", finished_run, "--lr", "0.1"])
    assert rc == 2 and "--lr" in err and "cannot change" in err
    rc, _, err = run_cli(["train", "--resume", finished_run / "best"])
    assert rc == 2 and "no training state" in err


def test_checkpoints_never_unpickle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, finished_run: Path) -> None:
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint must never be unpickled")

    for module, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(module, name, refuse)
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    assert load_run(run).model_config.hidden_size == 48
    assert load_run(run, engine="numpy").engine == "numpy"
    rc, _, err = run_cli(["train", "--resume", run, "--max-steps", "12", "--quiet"])
    assert rc == 0, err
    names = {p.name for p in run.iterdir()}
    assert not any(n.endswith((".pt", ".pth", ".pkl", ".bin")) for n in names)
