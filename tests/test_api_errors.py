"""The Python API refuses wrong arguments with errors that name them, and records what trained a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnnlab.config import ModelConfig, SampleConfig, TrainConfig
from rnnlab.data.words import WordVocab
from rnnlab.generation.sample import sample_lm, sample_next
from rnnlab.scratch.models import LanguageModel
from rnnlab.training.checkpoint import load_checkpoint, save_checkpoint
from rnnlab.training.lm import evaluate, load_lm_data, train_lm

TEXT = "the cat sat on the mat and the dog sat on the log. " * 40


@pytest.fixture
def text_file(tmp_path: Path) -> str:
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def _config(data: str, **kw) -> TrainConfig:
    return TrainConfig(data=data, batch_size=4, seq_len=16, max_steps=2, eval_every=2, **kw)


def test_train_lm_records_its_own_engine_and_checks_its_arguments(tmp_path: Path, text_file: str) -> None:
    config = _config(text_file, engine="torch")  # the NumPy trainer trains it all the same...
    data = load_lm_data(config)
    model_config = ModelConfig(vocab_size=len(data.vocab), hidden_size=8, embedding_dim=8)
    train_lm(model_config, config, tmp_path / "run", data, progress=False)
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text(encoding="utf-8"))
    assert saved["engine"] == "numpy"  # ...and says so, so that resume and load_run pick the right engine

    with pytest.raises(TypeError, match=r"^model_config: expected a ModelConfig, got dict$"):
        train_lm({"vocab_size": 5}, config, tmp_path / "r2", data)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^data: expected LMData .*got NoneType$"):
        train_lm(model_config, config, tmp_path / "r2", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^level: expected 'char' \(the data's vocabulary\), got 'word'$"):
        train_lm(model_config, config.replace(level="word"), tmp_path / "r2", data)
    (tmp_path / "a_file").write_text("mine")
    with pytest.raises(ValueError, match=r"^out_dir: expected a folder for the run, got the file "):
        train_lm(model_config, config, tmp_path / "a_file", data)
    assert not (tmp_path / "r2").exists()


def test_evaluate_checks_its_arguments() -> None:
    lm = LanguageModel(ModelConfig(vocab_size=5, hidden_size=8, embedding_dim=4), seed=0)
    tokens = np.arange(100) % 5
    for kw, message in (({"seq_len": 0}, "seq_len: expected a positive integer, got 0"),
                        ({"batch_size": -5}, "batch_size: expected a positive integer, got -5")):  # fmt: skip
        with pytest.raises(ValueError, match=f"^{message}$"):
            evaluate(lm, tokens, **kw)
    with pytest.raises(TypeError, match=r"^model: expected a NumPy-engine LanguageModel"):
        evaluate(None, tokens)  # type: ignore[arg-type]


def test_save_checkpoint_leaves_the_earlier_one_loadable_when_its_arguments_are_wrong(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, weights={"w": np.ones(3, np.float32)}, configs={"model_config": {}}, state={"step": 10})
    bad = [
        ({"weights": {"w": None}, "configs": {}}, TypeError, r"weights\['w'\]: dtype object cannot be saved"),
        ({"weights": {"w": np.ones(2)}, "configs": {"m": {"x": object()}}}, TypeError, r"configs\['m'\]: cannot"),
        ({"weights": {}, "configs": {}, "extra_tensors": {"e": np.array(["a"])}}, TypeError, r"extra_tensors\['e'\]"),
    ]
    for kwargs, error, message in bad:
        with pytest.raises(error, match=message):
            save_checkpoint(folder, **kwargs)
    assert load_checkpoint(folder).state == {"step": 10}


@pytest.mark.parametrize(
    ("logits", "kwargs", "error", "message"),
    [
        (np.zeros(5), {}, ValueError, r"logits: expected shape \(B, V\)"),
        (np.array([[0.0, np.nan]]), {}, ValueError, "logits: expected numbers, got NaN"),
        (np.zeros((1, 3)), {"temperature": 0}, ValueError, "temperature: expected a finite number > 0, got 0"),
        (np.zeros((1, 3)), {"temperature": -1.0}, ValueError, "temperature: expected a finite number > 0"),
        (np.zeros((1, 3)), {"top_k": -1}, ValueError, "top_k: expected a positive integer or None, got -1"),
        (np.zeros((1, 3)), {"top_p": 0}, ValueError, r"top_p: expected a number in \(0, 1\] or None, got 0"),
        (np.zeros((1, 3)), {"rng": None}, TypeError, "rng: expected a numpy.random.Generator, got NoneType"),
    ],
)
def test_sample_next_refuses_what_would_draw_wrong_tokens(logits, kwargs, error, message) -> None:
    kwargs = {"rng": np.random.default_rng(0), **kwargs}
    with pytest.raises(error, match=message):
        sample_next(logits, **kwargs)


def test_sample_lm_takes_a_word_vocabulary_as_loaded() -> None:
    vocab = WordVocab.from_text("the cat sat on the mat\n")
    lm = LanguageModel(ModelConfig(vocab_size=len(vocab), hidden_size=8, embedding_dim=4), seed=0)
    lm.train()  # a sample in the middle of training
    pieces: list[str] = []
    (text,) = sample_lm(lm, vocab, SampleConfig(length=12, prime="the cat", seed=1), on_text=pieces.append)
    assert isinstance(text, str) and text.startswith("the cat ") and "<pad>" not in text
    # words joined by single spaces, none at a line's start; the streamed pieces add up to the text
    assert all(not line.startswith(" ") and "  " not in line for line in text.split("\n")), repr(text)
    assert "".join(pieces) == text
    assert lm.training  # left as it was found

    def closed_pipe(piece: str) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        sample_lm(lm, vocab, SampleConfig(length=12, prime="the cat", seed=1), on_text=closed_pipe)
    assert lm.training  # also when the sampling ends in an error
    with pytest.raises(TypeError, match=r"^config: expected a SampleConfig, got dict$"):
        sample_lm(lm, vocab, {"length": 5})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^model: expected a NumPy LanguageModel or a torch one"):
        sample_lm(None, vocab, SampleConfig())


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: TrainConfig(data=5, max_steps=1), TypeError, "data: expected a path, URL or data-set name"),
        (lambda: TrainConfig(per_line="yes", max_steps=1), ValueError, "per_line: expected true or false, got 'yes'"),
        (lambda: SampleConfig(greedy="no"), ValueError, "greedy: expected true or false, got 'no'"),
        (lambda: SampleConfig(prime=5), TypeError, "prime: expected a string, got int"),
        (lambda: ModelConfig(vocab_size=3, cell="gru", forget_bias=1.0), ValueError, "forget_bias: applies to"),
        (lambda: ModelConfig(vocab_size=3, nonlinearity="relu"), ValueError, "nonlinearity: applies to cell='rnn'"),
        (lambda: LanguageModel({"vocab_size": 5}), TypeError, "config: expected a ModelConfig, got dict"),
    ],
)
def test_configs_refuse_values_they_would_misread(make, error, message) -> None:
    with pytest.raises(error, match=message):
        make()


def test_numpy_scalars_are_plain_numbers_in_a_config() -> None:
    config = ModelConfig(vocab_size=np.int64(5), hidden_size=np.int32(16), dropout=np.float32(0.25))
    assert type(config.hidden_size) is int and type(config.dropout) is float
    assert json.dumps(config.to_dict())  # saves as JSON like any other
