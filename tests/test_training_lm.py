"""Tests of rnnlab.training.lm: data loading, the training loop, evaluation, checkpoints, the schedule."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from rnnlab.config import ModelConfig, TrainConfig
from rnnlab.data.text import DataError, StreamBatcher
from rnnlab.scratch.losses import cross_entropy
from rnnlab.scratch.models import LanguageModel
from rnnlab.training import lm as lm_module
from rnnlab.training.lm import (
    TrainingError,
    evaluate,
    load_lm,
    load_lm_data,
    train_lm,
)
from rnnlab.training.metrics import METRICS_FILE
from rnnlab.training.schedule import Schedule

TINY_TRAIN = {"batch_size": 4, "seq_len": 8, "max_steps": 20, "eval_every": 10}


def _tiny_model(vocab_size: int, **kw) -> ModelConfig:
    return ModelConfig(vocab_size=vocab_size, hidden_size=kw.pop("hidden_size", 16), embedding_dim=8, **kw)


def _write(tmp_path: Path, text: str, name: str = "data.txt") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------------------------------------
# data


def test_load_lm_data_plain_text_split(tmp_path: Path) -> None:
    text = "héllo wörld 🙂 " * 50
    data = load_lm_data(TrainConfig(data=_write(tmp_path, text), max_steps=1, batch_size=4, seq_len=8))
    assert not data.per_line and data.vocab.boundary_id is None
    assert len(data.vocab) == len(set(text))
    assert len(data.train) + len(data.val) == len(text)
    assert len(data.val) == len(text) - int(len(text) * 0.9)
    assert data.vocab.decode(np.concatenate([data.train, data.val])) == text


def test_load_lm_data_per_line_is_shuffled_by_seed(tmp_path: Path) -> None:
    lines = [f"w{i:03d}" for i in range(100)]
    path = _write(tmp_path, "\n".join(lines) + "\n\n   \n")
    cfg = TrainConfig(data=path, per_line=True, max_steps=1, batch_size=4, seq_len=8, val_fraction=0.2)
    a, b = load_lm_data(cfg), load_lm_data(cfg)
    c = load_lm_data(cfg.replace(seed=cfg.seed + 1))
    assert a.per_line and a.vocab.boundary_id == 0
    assert np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val)
    assert not np.array_equal(a.val, c.val)
    bd = a.vocab.boundary_id
    # every split starts and ends at a boundary, and holds whole lines: 20 in validation
    for split in (a.train, a.val):
        assert split[0] == bd and split[-1] == bd
    assert int((a.val == bd).sum()) == 20 + 1
    items = a.vocab.decode(a.val, boundary_as="\n").strip("\n").split("\n")
    train_items = a.vocab.decode(a.train, boundary_as="\n").strip("\n").split("\n")
    assert sorted(items + train_items) == lines  # empty and blank lines dropped, nothing else


@pytest.mark.parametrize(
    ("text", "per_line", "needle"),
    [
        ("abcdefghij" * 3, False, "too short"),
        ("ab\ncd\nef\n", True, "too short"),
        ("justone\n", True, "at least 2"),
    ],
)
def test_load_lm_data_too_short(tmp_path: Path, text: str, per_line: bool, needle: str) -> None:
    cfg = TrainConfig(data=_write(tmp_path, text), per_line=per_line, max_steps=1, batch_size=4, seq_len=8)
    with pytest.raises(DataError, match=needle):
        load_lm_data(cfg)


def test_load_lm_data_default_is_census_names() -> None:
    pytest.importorskip("names")
    data = load_lm_data(TrainConfig(max_steps=1))
    assert data.per_line and data.vocab.boundary_id == 0
    assert "names" in data.name
    assert set(data.vocab.itos[1:]) == set("abcdefghijklmnopqrstuvwxyz")
    assert len(data.train) > 10 * len(data.val) / 2


# ---------------------------------------------------------------------------------------------
# training


@pytest.mark.parametrize(
    ("text", "factor"),
    [
        ("abc" * 400, 0.1),
        ("the quick brown fox jumps over the lazy dog. " * 40, 0.25),
    ],
)
def test_loss_decreases_on_repetitive_text(tmp_path: Path, text: str, factor: float) -> None:
    cfg = TrainConfig(
        data=_write(tmp_path, text), batch_size=4, seq_len=16, max_steps=120, eval_every=40, lr=2e-2, seed=1
    )
    data = load_lm_data(cfg)
    record = train_lm(_tiny_model(len(data.vocab), hidden_size=32), cfg, tmp_path / "run", data, progress=False)
    chance = math.log(len(data.vocab))
    records = [json.loads(x) for x in (tmp_path / "run" / METRICS_FILE).read_text().splitlines()]
    assert [r["step"] for r in records] == [40, 80, 120]
    assert record == records[-1]
    assert records[0]["val_loss"] < chance
    assert record["val_loss"] < factor * chance, (record, chance)
    assert record["train_loss"] < factor * chance
    assert record["val_loss"] <= records[0]["val_loss"]


def test_evaluate_scores_every_prediction_once_with_context() -> None:
    rng = np.random.default_rng(0)
    model = LanguageModel(_tiny_model(7), seed=0)
    tokens = rng.integers(0, 7, size=300)
    logits, _ = model.forward(tokens[None, :-1])
    expected, _ = cross_entropy(logits, tokens[None, 1:])
    assert evaluate(model, tokens) == pytest.approx(expected, rel=1e-5)
    # a short split is not cut into 128 context-free streams
    assert evaluate(model, tokens, batch_size=128, seq_len=32) == pytest.approx(expected, rel=1e-3)
    assert model.training is True  # restored


def test_train_lm_writes_checkpoints_and_metrics(tmp_path: Path) -> None:
    cfg = TrainConfig(data=_write(tmp_path, "ab cd ef " * 30), **TINY_TRAIN)
    data = load_lm_data(cfg)
    out = tmp_path / "run"
    logged: list[str] = []
    record = train_lm(_tiny_model(len(data.vocab)), cfg, out, data, progress=False, log=logged.append)
    assert record["step"] == 20 and record["tokens"] == 20 * 4 * 8
    assert len(logged) == 2 and logged[0].startswith("step 10:")
    state = json.loads((out / "train_state.json").read_text())
    assert state["step"] == 20 and state["val_loss"] == pytest.approx(record["val_loss"])
    # a second new run in the same folder is refused: it would write over this one
    metrics = (out / METRICS_FILE).read_text()
    with pytest.raises(ValueError, match=r"^out_dir: .* already holds a run; pass resume=True to continue it"):
        train_lm(_tiny_model(len(data.vocab)), cfg, out, data, progress=False)
    assert (out / METRICS_FILE).read_text() == metrics


def test_train_lm_state_resets(tmp_path: Path) -> None:
    cfg = TrainConfig(data=_write(tmp_path, "ab cd ef " * 30), **TINY_TRAIN)
    data = load_lm_data(cfg)
    losses = {}
    for p in (0.0, 0.5, 1.0):
        record = train_lm(
            _tiny_model(len(data.vocab)), cfg.replace(state_reset_prob=p), tmp_path / str(p), data, progress=False
        )
        assert math.isfinite(record["train_loss"]) and math.isfinite(record["val_loss"])
        losses[p] = record["train_loss"]
    assert len(set(losses.values())) == 3  # the resets change what the model sees


def test_train_lm_with_a_time_budget(tmp_path: Path) -> None:
    cfg = TrainConfig(data=_write(tmp_path, "ab cd ef " * 30), batch_size=4, seq_len=8, max_time=0.05, eval_every=1000)
    data = load_lm_data(cfg)
    record = train_lm(_tiny_model(len(data.vocab)), cfg, tmp_path / "run", data, progress=False)
    assert record["step"] >= 1 and record["elapsed_s"] >= 0.05
    assert math.isfinite(record["val_loss"])


def test_train_lm_rejects_mismatched_vocab_and_short_data(tmp_path: Path) -> None:
    cfg = TrainConfig(data=_write(tmp_path, "ab cd ef " * 30), **TINY_TRAIN)
    data = load_lm_data(cfg)
    with pytest.raises(ValueError, match="vocab_size"):
        train_lm(_tiny_model(len(data.vocab) + 1), cfg, tmp_path / "a", data, progress=False)
    with pytest.raises(DataError, match="too short"):
        train_lm(_tiny_model(len(data.vocab)), cfg.replace(batch_size=64), tmp_path / "b", data, progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize(("bad_step", "bad_value"), [(14, float("nan")), (14, float("inf")), (0, float("nan"))])
def test_train_lm_stops_on_a_non_finite_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad_step: int, bad_value: float
) -> None:
    cfg = TrainConfig(data=_write(tmp_path, "ab cd ef " * 30), **TINY_TRAIN)
    data = load_lm_data(cfg)
    calls = {"n": 0}

    def flaky(logits, targets, **kw):
        loss, grad = cross_entropy(logits, targets, **kw)
        if "mask" in kw:  # evaluation
            return loss, grad
        calls["n"] += 1
        return (bad_value if calls["n"] == bad_step + 1 else loss), grad

    monkeypatch.setattr(lm_module, "cross_entropy", flaky)
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match=f"loss: became {bad_value} at step {bad_step}") as exc:
        train_lm(_tiny_model(len(data.vocab)), cfg, out, data, progress=False)
    assert "\n" not in str(exc.value)
    if bad_step < cfg.eval_every:
        assert "nothing was saved" in str(exc.value)
        assert not out.exists()
    else:
        assert "last good checkpoint" in str(exc.value)
        records = [json.loads(x) for x in (out / METRICS_FILE).read_text().splitlines()]
        assert [r["step"] for r in records] == [10]
        assert load_lm(out).train_config == cfg


def test_train_lm_never_saves_non_finite_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = TrainConfig(data=_write(tmp_path, "ab cd ef " * 30), **TINY_TRAIN)
    data = load_lm_data(cfg)
    out = tmp_path / "run"
    train_lm(_tiny_model(len(data.vocab)), cfg, out, data, progress=False)
    before = (out / "model.safetensors").read_bytes()
    real_evaluate = lm_module.evaluate

    def poisoning_evaluate(model, tokens, *args, **kw):
        model.head.params["bias"][0] = np.inf
        return real_evaluate(model, tokens, *args, **kw)

    monkeypatch.setattr(lm_module, "evaluate", poisoning_evaluate)
    with pytest.raises(TrainingError, match="non-finite"):
        train_lm(_tiny_model(len(data.vocab)), cfg.replace(max_steps=30), out, data, progress=False, resume=True)
    assert (out / "model.safetensors").read_bytes() == before


# ---------------------------------------------------------------------------------------------
# loading


@pytest.mark.parametrize(("cell", "layers"), [("lstm", 1), ("gru", 2), ("rnn", 1)])
def test_load_lm_reproduces_the_trained_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cell: str, layers: int
) -> None:
    created: list[LanguageModel] = []

    class Recording(LanguageModel):
        def __init__(self, *args, **kw) -> None:
            super().__init__(*args, **kw)
            created.append(self)

    monkeypatch.setattr(lm_module, "LanguageModel", Recording)
    cfg = TrainConfig(data=_write(tmp_path, "Grüße, κόσμε! 🙂 " * 30), **TINY_TRAIN)
    data = load_lm_data(cfg)
    model_config = _tiny_model(len(data.vocab), cell=cell, num_layers=layers, dropout=0.1 if layers > 1 else 0.0)
    train_lm(model_config, cfg, tmp_path / "run", data, progress=False)
    trained = created[0]

    loaded = load_lm(tmp_path / "run")
    assert loaded.model is not trained
    assert loaded.model_config == model_config and loaded.train_config == cfg
    assert loaded.vocab == data.vocab and loaded.per_line is False
    assert loaded.model.training is False
    trained.eval()
    x = data.val[None, :40]
    want, _ = trained.forward(x)
    got, _ = loaded.model.forward(x)
    np.testing.assert_array_equal(got, want)
    for name, value in trained.state_dict().items():
        np.testing.assert_array_equal(loaded.model.state_dict()[name], value)


def test_load_lm_per_line_flag(tmp_path: Path) -> None:
    cfg = TrainConfig(
        data=_write(tmp_path, "\n".join(["anna", "bob", "cléo", "dave"] * 20)), per_line=True, **TINY_TRAIN
    )
    data = load_lm_data(cfg)
    train_lm(_tiny_model(len(data.vocab)), cfg, tmp_path / "run", data, progress=False)
    loaded = load_lm(tmp_path / "run")
    assert loaded.per_line is True and loaded.vocab.boundary_id == 0


@pytest.mark.parametrize("per_line", [True, False])
def test_train_lm_deals_per_line_items_in_a_new_order_every_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_line: bool
) -> None:
    # one fixed order would let a model that carries its state learn which item follows which
    names = ["anna", "bob", "cléo", "dave", "eve", "fay", "gus", "hal", "ida", "jo", "kim", "lu"] * 2
    cfg = TrainConfig(
        data=_write(tmp_path, "\n".join(names)), per_line=per_line, batch_size=2, seq_len=8, max_steps=40, eval_every=40
    )
    data = load_lm_data(cfg)
    seen: list[np.ndarray] = []
    next_batch = StreamBatcher.next_batch

    def spy(self: StreamBatcher) -> tuple[np.ndarray, np.ndarray, bool]:
        batch = next_batch(self)
        seen.append(batch[0])
        return batch

    monkeypatch.setattr(StreamBatcher, "next_batch", spy)
    train_lm(_tiny_model(len(data.vocab)), cfg, tmp_path / "run", data, progress=False)
    per_epoch = (len(data.train) - 1) // cfg.batch_size // cfg.seq_len
    assert len(seen) == 40 > 2 * per_epoch
    epochs = [np.stack(seen[k * per_epoch : (k + 1) * per_epoch]) for k in range(2)]
    assert np.array_equal(epochs[0], epochs[1]) is not per_line


# ---------------------------------------------------------------------------------------------
# the learning-rate schedule


def test_schedule_cosine_endpoints() -> None:
    cfg = TrainConfig(max_steps=100, lr=1.0, lr_min_ratio=0.1)
    assert Schedule(cfg).lr(0, 0.0) == pytest.approx(1.0)
    assert Schedule(cfg).lr(50, 0.0) == pytest.approx(0.55)
    assert Schedule(cfg).lr(100, 0.0) == pytest.approx(0.1)
    assert Schedule(cfg).lr(500, 0.0) == pytest.approx(0.1)  # clamped past the budget
    values = [Schedule(cfg).lr(s, 0.0) for s in range(101)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_schedule_follows_time_without_max_steps() -> None:
    cfg = TrainConfig(max_time=10.0, lr=2.0, lr_min_ratio=0.0)
    assert Schedule(cfg).lr(1234, 0.0) == pytest.approx(2.0)
    assert Schedule(cfg).lr(0, 5.0) == pytest.approx(1.0)
    assert Schedule(cfg).lr(0, 10.0) == pytest.approx(0.0, abs=1e-12)


def test_schedule_warmup_then_cosine() -> None:
    cfg = TrainConfig(max_steps=100, lr=1.0, warmup_steps=10)
    assert Schedule(cfg).lr(0, 0.0) == pytest.approx(0.1)
    assert Schedule(cfg).lr(4, 0.0) == pytest.approx(0.5)
    assert Schedule(cfg).lr(9, 0.0) == pytest.approx(1.0)
    assert Schedule(cfg).lr(10, 0.0) <= 1.0
    ramp = [Schedule(cfg).lr(s, 0.0) for s in range(10)]
    assert all(a < b for a, b in itertools.pairwise(ramp))


def test_schedule_constant() -> None:
    cfg = TrainConfig(max_steps=100, lr=0.3, lr_schedule="constant", warmup_steps=3)
    assert Schedule(cfg).lr(0, 0.0) == pytest.approx(0.1)
    assert [Schedule(cfg).lr(s, 0.0) for s in (3, 50, 100)] == [0.3, 0.3, 0.3]


def test_train_lm_draws_the_loss_curve(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    backend = matplotlib.get_backend()
    cfg = TrainConfig(data=_write(tmp_path, "ab cd ef " * 30), **TINY_TRAIN)
    data = load_lm_data(cfg)
    train_lm(_tiny_model(len(data.vocab)), cfg, tmp_path / "run", data, progress=False)
    assert (tmp_path / "run" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == backend  # the caller's plotting session is left alone


def test_train_lm_keeps_the_best_stops_early_and_cuts_the_rate_on_a_plateau(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = TrainConfig(
        data=_write(tmp_path, "ab cd ef " * 30), batch_size=4, seq_len=8, max_steps=100, eval_every=5, lr=0.01,
        lr_schedule="plateau", plateau_patience=1, plateau_factor=0.5, lr_min_ratio=0.1, patience=2,
    )  # fmt: skip
    data = load_lm_data(cfg)
    val_losses = iter([3.0, 2.5, 2.7, 2.4, 2.6, 2.45, 2.0])

    def scripted_evaluate(model, tokens, *args, **kw):
        return next(val_losses)

    monkeypatch.setattr(lm_module, "evaluate", scripted_evaluate)
    out = tmp_path / "run"
    record = train_lm(_tiny_model(len(data.vocab)), cfg, out, data, progress=False)
    records = [json.loads(x) for x in (out / METRICS_FILE).read_text().splitlines()]
    # two evaluations in a row without a new best (2.6, 2.45 after 2.4): stopped after the sixth
    assert [r["step"] for r in records] == [5, 10, 15, 20, 25, 30]
    assert record["stopped_early"] is True and record["step"] == 30 and record["best_val_loss"] == 2.4
    # each evaluation that failed to improve halved the rate the next steps used
    assert [r["lr"] for r in records] == pytest.approx([0.01, 0.01, 0.01, 0.005, 0.005, 0.0025])
    best = json.loads((out / "best" / "train_state.json").read_text())
    assert best == {"task": "lm", "step": 20, "val_loss": 2.4}
    assert load_lm(out / "best").model.state_dict().keys() == load_lm(out).model.state_dict().keys()


def test_load_lm_data_is_for_characters(tmp_path: Path) -> None:
    cfg = TrainConfig(data=_write(tmp_path, "ab cd ef " * 30), level="word", **TINY_TRAIN)
    with pytest.raises(ValueError, match=r"^level: load_lm_data builds character data, got level='word'"):
        load_lm_data(cfg)
