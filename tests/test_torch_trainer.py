"""The generic Trainer with a minimal task: the Task interface, schedules, early stopping, keep-best."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from rnnlab.config import TrainConfig  # noqa: E402
from rnnlab.training.checkpoint import load_checkpoint  # noqa: E402
from rnnlab.training.trainer import Schedule, Task, Trainer, select_device  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class _LinearConfig:
    def __init__(self, n_in: int, n_out: int) -> None:
        self.n_in, self.n_out = n_in, n_out

    def to_dict(self) -> dict:
        return {"n_in": self.n_in, "n_out": self.n_out}


class Blobs(Task):
    """Classify points of 3 Gaussian blobs: a task without carried state, with accuracy."""

    name = "blobs"

    def __init__(self, scripted_val: list[float] | None = None) -> None:
        rng = np.random.default_rng(0)
        centres = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]])
        self.y = rng.integers(0, 3, 300)
        self.x = (centres[self.y] + rng.standard_normal((300, 2))).astype(np.float32)
        self.model_config = _LinearConfig(2, 3)
        self.position = 0
        self.scripted_val = scripted_val  # force a validation-loss sequence
        self.evals = 0

    def build_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Linear(2, 3)

    def next_batch(self, step: int):
        idx = np.arange(self.position, self.position + 20) % 240
        self.position = int(idx[-1] + 1) % 240
        idx = self.shard(idx)
        return torch.from_numpy(self.x[idx]), torch.from_numpy(self.y[idx])

    def loss(self, model, batch, carry):
        x, y = batch
        return F.cross_entropy(model(x), y), None

    def eval_sums(self, model, split):
        x, y = torch.from_numpy(self.x[240:]), torch.from_numpy(self.y[240:])
        logits = model(x)
        loss = F.cross_entropy(logits, y, reduction="sum").item()
        if self.scripted_val is not None:
            loss = self.scripted_val[min(self.evals, len(self.scripted_val) - 1)] * len(y)
            self.evals += 1
        return {"loss_sum": loss, "count": len(y), "correct": (logits.argmax(-1) == y).sum().item()}

    def summarize(self, sums):
        return {"loss": sums["loss_sum"] / sums["count"], "accuracy": sums["correct"] / sums["count"]}

    def data_state(self):
        return {"position": self.position}

    def load_data_state(self, state):
        self.position = state["position"]

    def artifacts(self):
        return {"labels": {"names": ["east", "west", "north"]}}


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def test_a_custom_task_trains_and_reports_its_metrics(tmp_path: Path) -> None:
    config = TrainConfig(engine="torch", max_steps=60, eval_every=20, lr=0.05, optimizer="sgd", lr_schedule="constant")
    record = Trainer(Blobs(), config, tmp_path / "run").fit()
    assert record["val_accuracy"] > 0.8 and record["val_loss"] < 0.6
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt.configs["labels"] == {"names": ["east", "west", "north"]}
    assert ckpt.configs["model_config"] == {"n_in": 2, "n_out": 3}
    assert ckpt.state is not None and ckpt.state["data"] == {"position": 60 * 20 % 240}
    assert set(ckpt.weights) == {"weight", "bias"}


def test_early_stopping_and_keep_best(tmp_path: Path) -> None:
    # validation: 1.0, 0.8 (best), 0.9, 0.95 -> with patience 2, stop after the 4th evaluation
    task = Blobs(scripted_val=[1.0, 0.8, 0.9, 0.95, 0.5])
    config = TrainConfig(engine="torch", max_steps=100, eval_every=5, patience=2, lr=0.01)
    record = Trainer(task, config, tmp_path / "run").fit()
    records = _records(tmp_path / "run")
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert record["stopped_early"] is True and record["step"] == 20
    best = load_checkpoint(tmp_path / "run" / "best")
    assert best.state == {"task": "blobs", "step": 10, "val_loss": 0.8}
    assert records[-1]["best_val_loss"] == 0.8
    # the latest checkpoint is still the last step's (for --resume)
    assert load_checkpoint(tmp_path / "run").state["step"] == 20


def test_plateau_schedule_halves_after_a_stall() -> None:
    s = Schedule(TrainConfig(max_steps=100, lr=1.0, lr_schedule="plateau", plateau_patience=2, lr_min_ratio=0.2))
    rates = []
    for val in [1.0, 0.9, 0.95, 0.97, 0.96, 0.99, 0.98, 0.97, 0.99, 0.99]:
        s.observe(val)
        rates.append(s.lr(50, 0.0))
    assert rates == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2]


def test_cosine_follows_steps_or_time_after_warmup() -> None:
    s = Schedule(TrainConfig(max_steps=110, lr=1.0, warmup_steps=10, lr_min_ratio=0.1))
    assert [s.lr(k, 0.0) for k in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert s.lr(10, 0.0) == 1.0 and s.lr(60, 0.0) == pytest.approx(0.55) and s.lr(110, 0.0) == pytest.approx(0.1)
    t = Schedule(TrainConfig(max_time=100.0, lr=1.0, lr_min_ratio=0.0))
    assert t.lr(10**6, 50.0) == pytest.approx(0.5) and t.lr(0, 100.0) == pytest.approx(0.0)


def test_nan_loss_stops_without_a_checkpoint(tmp_path: Path) -> None:
    class Exploding(Blobs):
        def loss(self, model, batch, carry):
            loss, _ = super().loss(model, batch, carry)
            return loss * math.nan, None

    config = TrainConfig(engine="torch", max_steps=10, eval_every=5)
    with pytest.raises(RuntimeError, match=r"^loss: became nan at step 0 .*nothing was saved"):
        Trainer(Exploding(), config, tmp_path / "run").fit()
    assert not (tmp_path / "run").exists()


def test_select_device() -> None:
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match=r"^device: "):
        select_device("abacus")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")


def test_the_trainer_records_that_torch_trained_the_run(tmp_path: Path) -> None:
    Trainer(Blobs(), TrainConfig(max_steps=2, eval_every=2, engine="numpy"), tmp_path / "run").fit()
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text(encoding="utf-8"))
    assert saved["engine"] == "torch"  # what --resume and load_run go by, whatever the config said


def test_trainer_rejects_wrong_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"^task: "):
        Trainer(object(), TrainConfig(max_steps=1), tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^config: "):
        Trainer(Blobs(), {"max_steps": 1}, tmp_path)  # type: ignore[arg-type]
    task = Blobs()
    task.model_config = None  # would only fail at the first checkpoint, after the training
    with pytest.raises(TypeError, match=r"^task.model_config: expected a config with to_dict\(\) .*, got NoneType"):
        Trainer(task, TrainConfig(max_steps=1), tmp_path)


def test_the_checkpoint_is_saved_before_an_evaluation_is_logged(tmp_path: Path) -> None:
    # `rnnlab train ... 2>&1 | head -2`: the log's pipe closes as the first evaluation is said
    def closed_pipe(line: str) -> None:
        if line.startswith("step "):
            raise BrokenPipeError(32, "Broken pipe")

    config = TrainConfig(engine="torch", max_steps=6, eval_every=2, lr=0.05, batch_size=32)
    with pytest.raises(BrokenPipeError):
        Trainer(Blobs(), config, tmp_path / "run", log=closed_pipe).fit()
    state = json.loads((tmp_path / "run" / "train_state.json").read_text(encoding="utf-8"))
    assert state["step"] == 2  # resumable, not a best/ alone
    record = Trainer(Blobs(), config, tmp_path / "run", resume=True).fit()
    assert record["step"] == 6


def test_a_new_run_never_writes_over_an_earlier_one(tmp_path: Path) -> None:
    config = TrainConfig(engine="torch", max_steps=2, eval_every=2, lr=0.05)
    Trainer(Blobs(), config, tmp_path / "run").fit()
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    with pytest.raises(ValueError) as e:
        Trainer(Blobs(), config, tmp_path / "run")
    assert str(e.value) == (
        f"out_dir: {tmp_path / 'run'} already holds a run; pass resume=True to continue it, or choose another "
        "folder (the command line's --overwrite moves an earlier run aside)"
    )
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before
    assert Trainer(Blobs(), config.replace(max_steps=4), tmp_path / "run", resume=True).fit()["step"] == 4


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ({"optimizer": "sgd"}, "optimizer ('adamw' saved, 'sgd' given)"),
        ({"weight_decay": 0.5}, "weight_decay (0.01 saved, 0.5 given)"),
        ({"lr": 0.1, "momentum": 0.5}, "lr (0.05 saved, 0.1 given), momentum (0.9 saved, 0.5 given)"),
    ],
)
def test_resume_refuses_a_training_config_that_changed(tmp_path: Path, change: dict, shown: str) -> None:
    # the saved optimiser state would not fit another optimiser (a torch KeyError mid-fit), and the
    # run folder must not record settings it was not trained with
    config = TrainConfig(engine="torch", max_steps=4, eval_every=2, lr=0.05, optimizer="adamw", weight_decay=0.01)
    Trainer(Blobs(), config, tmp_path / "run").fit(stop_at_step=2)
    with pytest.raises(ValueError) as e:
        Trainer(Blobs(), config.replace(**change), tmp_path / "run", resume=True)
    assert str(e.value).startswith(
        f"resume: the training config differs from the one saved in {tmp_path / 'run'}/train_config.json: {shown}; "
        "a resumed run may change only checkpoint_every, data, device, max_steps, max_time, patience, threads"
    )
    # what a resume may change, it may
    record = Trainer(Blobs(), config.replace(max_steps=6, patience=3), tmp_path / "run", resume=True).fit()
    assert record["step"] == 6
