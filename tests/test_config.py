"""Tests of rnnlab.config: validation naming the field, JSON round trips, unknown keys."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from rnnlab.config import ModelConfig, SampleConfig, TrainConfig


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"vocab_size": 0}, "vocab_size"),
        ({"vocab_size": 2.5}, "vocab_size"),
        ({"vocab_size": True}, "vocab_size"),
        ({"cell": "transformer"}, "cell"),
        ({"nonlinearity": "sigmoid"}, "nonlinearity"),
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"hidden_size": -8}, "hidden_size"),
        ({"hidden_size": "512"}, "hidden_size"),
        ({"num_layers": 0}, "num_layers"),
        ({"dropout": -0.1}, "dropout"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": math.nan}, "dropout"),
        ({"init": "zeros"}, "init"),
        ({"init": "identity", "cell": "lstm"}, "init"),
        ({"forget_bias": math.inf}, "forget_bias"),
        ({"forget_bias": "1"}, "forget_bias"),
    ],
)
def test_model_config_rejects(changes: dict, field: str) -> None:
    kwargs = {"vocab_size": 10, **changes}
    with pytest.raises(ValueError, match=rf"^{field}: "):
        ModelConfig(**kwargs)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"engine": "jax"}, "engine"),
        ({"batch_size": 0}, "batch_size"),
        ({"seq_len": 0}, "seq_len"),
        ({"seq_len": 8.0}, "seq_len"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"lr": 0}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"lr": math.inf}, "lr"),
        ({"lr": math.nan}, "lr"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"lr_min_ratio": 1.5}, "lr_min_ratio"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"warmup_steps": 1.5}, "warmup_steps"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"momentum": 1.1}, "momentum"),
        ({"clip_mode": "both"}, "clip_mode"),
        ({"grad_clip": 0}, "grad_clip"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_time": 0}, "max_time"),
        ({"max_steps": None, "max_time": None}, "max_steps/max_time"),
        ({"eval_every": 0}, "eval_every"),
        ({"eval_batch_size": 0}, "eval_batch_size"),
        ({"val_fraction": 0}, "val_fraction"),
        ({"val_fraction": 0.6}, "val_fraction"),
        ({"state_reset_prob": -0.1}, "state_reset_prob"),
        ({"state_reset_prob": 1.5}, "state_reset_prob"),
        ({"seed": 1.5}, "seed"),
        ({"seed": None}, "seed"),
    ],
)
def test_train_config_rejects(changes: dict, field: str) -> None:
    kwargs = {"max_steps": 10, **changes}
    with pytest.raises(ValueError, match=rf"^{field}: "):
        TrainConfig(**kwargs)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"length": 0}, "length"),
        ({"num_samples": 0}, "num_samples"),
        ({"temperature": 0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": math.inf}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"unknown": "ignore"}, "unknown"),
        ({"unknown": "map", "replacement": "ab"}, "replacement"),
        ({"replacement": ""}, "replacement"),
    ],
)
def test_sample_config_rejects(changes: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        SampleConfig(**changes)


def test_the_message_shows_the_bad_value() -> None:
    with pytest.raises(ValueError) as exc:
        ModelConfig(vocab_size=10, hidden_size=-8)
    assert "-8" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(ValueError) as exc:
        TrainConfig(max_steps=10, optimizer="lbfgs")
    assert "'lbfgs'" in str(exc.value) and "adam" in str(exc.value)


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(vocab_size=65),
        ModelConfig(vocab_size=30, cell="rnn", nonlinearity="relu", init="identity", num_layers=3, dropout=0.2),
        ModelConfig(vocab_size=30, cell="lstm", forget_bias=1.0),
        TrainConfig(max_steps=10),
        TrainConfig(data="input.txt", per_line=True, max_time=60.0, optimizer="sgd", clip_mode="none", warmup_steps=5),
        SampleConfig(),
        SampleConfig(
            length=10, num_samples=3, temperature=0.7, top_k=5, prime="Καλή 🙂", unknown="map", replacement=" ", seed=4
        ),
    ],
)
def test_round_trip(config) -> None:
    cls = type(config)
    d = config.to_dict()
    assert cls.from_dict(d) == config
    assert cls.from_dict(json.loads(json.dumps(d))) == config  # through JSON text too


@pytest.mark.parametrize(
    ("cls", "base"),
    [(ModelConfig, {"vocab_size": 10}), (TrainConfig, {"max_steps": 10}), (SampleConfig, {})],
)
def test_from_dict_rejects_unknown_keys(cls, base: dict) -> None:
    with pytest.raises(ValueError, match=rf"^{cls.__name__}: unknown option\(s\) hiden_size, zzz"):
        cls.from_dict({**base, "hiden_size": 8, "zzz": 1})


@pytest.mark.parametrize("cls", [ModelConfig, TrainConfig, SampleConfig])
def test_from_dict_rejects_non_objects(cls) -> None:
    with pytest.raises(TypeError, match=cls.__name__):
        cls.from_dict([1, 2])


def test_from_dict_validates_values() -> None:
    with pytest.raises(ValueError, match=r"^hidden_size: "):
        ModelConfig.from_dict({"vocab_size": 10, "hidden_size": 0})
    with pytest.raises(TypeError):
        ModelConfig.from_dict({"hidden_size": 8})  # vocab_size is required


def test_configs_are_frozen_and_replace_validates() -> None:
    cfg = TrainConfig(max_steps=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0  # type: ignore[misc]
    assert cfg.replace(lr=0.1).lr == 0.1 and cfg.lr == 3e-3
    with pytest.raises(ValueError, match=r"^lr: "):
        cfg.replace(lr=-1.0)


def test_defaults() -> None:
    m = ModelConfig(vocab_size=65)
    assert (m.cell, m.hidden_size, m.num_layers, m.dropout) == ("lstm", 512, 1, 0.0)
    t = TrainConfig(max_time=120)
    assert (t.batch_size, t.seq_len, t.optimizer, t.max_steps) == (32, 64, "adam", None)
    s = SampleConfig()
    assert (s.length, s.num_samples, s.temperature, s.unknown, s.seed) == (500, 1, 1.0, "error", None)
