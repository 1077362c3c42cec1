"""Language-model data on disk: memory-mapped token ids and saved splits in the run folder (RUN/data)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rnnlab.data.names  # noqa: E402
import rnnlab.data.text  # noqa: E402
import rnnlab.training.lm  # noqa: E402
from resume_support import run_cli  # noqa: E402
from rnnlab.config import ModelConfig, TrainConfig  # noqa: E402
from rnnlab.data.corpus import MemmapTokens, load_split  # noqa: E402
from rnnlab.data.text import CharVocab, DataError, StreamBatcher, iterate_eval_batches, read_text, split_text  # noqa: E402
from rnnlab.data.words import WordVocab  # noqa: E402
from rnnlab.training import lm_data  # noqa: E402
from rnnlab.training.lm_data import load_lm_splits, open_lm_splits, open_run_splits  # noqa: E402
from rnnlab.training.lm_task import LMTask, lm_loss_sums  # noqa: E402

TINY = [
    "--hidden-size", "16", "--embedding-dim", "8", "--batch-size", "4", "--seq-len", "8",
    "--max-steps", "3", "--eval-every", "2", "--threads", "1", "--quiet",
]  # fmt: skip

# Greek (2 bytes), CJK (3 bytes), emoji (4 bytes, a ZWJ sequence), accents, CRLF line ends
MIXED = "Καλημέρα κόσμε! Café naïve 🙂 déjà vu.\r\n你好，世界。 👨‍👩‍👧 The cat sat on the mat.\r\n"
TEXTS = {
    "ascii": "It was the best of times, it was the worst of times.\n" * 30,
    "non_ascii": MIXED * 20,
    "bom_no_newline": "\ufeff" + "Καλημέρα κόσμε! Ο καφές είναι ζεστός. 🙂 " * 30,
    # no space or line end after the 90% mark: the old rule cuts inside a word ("abcd" -> "ab" | "cd")
    "no_space_at_the_cut": "one two three four five six seven " * 8 + "abcd," * 40,
}
NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "ζωή"] * 12


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _one_line_error(rc: int, err: str) -> str:
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _write(tmp_path: Path, text: str, name: str = "corpus.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def _old_split_at_space(text: str, val_fraction: float) -> tuple[str, str]:
    # the word-level split as it was computed in memory before the data moved to disk
    train, _ = split_text(text, val_fraction)
    cut = len(train)
    nearest = [i for i in (text.find("\n", cut), text.find(" ", cut)) if i != -1]
    if nearest:
        cut = min(nearest) + 1
    return text[:cut], text[cut:]


def _old_encoding(path: Path, level: str, val_fraction: float = 0.1):
    """(vocab, train ids, val ids) as the in-memory code made them: whole text read, split, encoded."""
    text = read_text(path)
    if level == "char":
        vocab = CharVocab.from_text(text)
        train, val = split_text(text, val_fraction)
        return vocab, vocab.encode(train), vocab.encode(val)
    train, val = _old_split_at_space(text, val_fraction)
    vocab = WordVocab.from_text(train)
    return vocab, vocab.encode_text(train), vocab.encode_text(val)


def _old_per_line(lines: list[str], config: TrainConfig) -> tuple[list[str], list[str], list[str]]:
    order = np.random.default_rng(config.seed).permutation(len(lines))
    lines = [lines[i] for i in order]
    test: list[str] = []
    if config.test_size:
        lines, test = lines[: -config.test_size], lines[-config.test_size :]
    n_val = max(1, round(len(lines) * config.val_fraction))
    return lines[:-n_val], lines[-n_val:], test


def _config(path: Path | None, **kw) -> TrainConfig:
    base = dict(engine="torch", data=None if path is None else str(path), batch_size=2, seq_len=4, max_steps=3)
    return TrainConfig(**{**base, **kw})


# ---------------------------------------------------------------------------------------------
# the same vocabulary, ids and batches as the in-memory encoding


@pytest.mark.parametrize("chunk", [7, 1 << 20])
@pytest.mark.parametrize("level", ["char", "word"])
@pytest.mark.parametrize("kind", list(TEXTS))
def test_memmap_splits_equal_the_in_memory_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, level: str, chunk: int
) -> None:
    monkeypatch.setattr(lm_data, "CHUNK_CHARS", chunk)  # small chunks cut characters, words and "\r\n"
    path = _write(tmp_path, TEXTS[kind])
    vocab, train, val = _old_encoding(path, level)
    if kind == "no_space_at_the_cut" and level == "word":
        assert "ab" in vocab.itos and "abcd" in vocab.itos  # the case this text is here for
    config = _config(path, level=level)
    splits = load_lm_splits(config, data_dir=tmp_path / "data")

    assert isinstance(splits.tokens, MemmapTokens)
    assert splits.vocab == vocab
    assert np.asarray(splits.train).tolist() == train.tolist()
    assert np.asarray(splits.val).tolist() == val.tolist()
    # the same batches: training (int64 tensors from the task) and evaluation
    task = LMTask(splits, ModelConfig(vocab_size=len(vocab), hidden_size=8, embedding_dim=4), config)
    task.setup(torch.device("cpu"), 0, 1)
    old = StreamBatcher(train, config.batch_size, config.seq_len)
    for step in range(old.batches_per_epoch + 2):
        x, y, reset, _ = task.next_batch(step)
        ox, oy, oreset = old.next_batch()
        assert x.dtype == torch.int64 and x.tolist() == ox.tolist() and y.tolist() == oy.tolist() and reset == oreset
    for (x1, y1, m1), (x2, y2, m2) in zip(
        iterate_eval_batches(splits.val, 3, 5), iterate_eval_batches(val, 3, 5), strict=True
    ):
        assert x1.tolist() == x2.tolist() and y1.tolist() == y2.tolist() and (m1 == m2).all()
    # and the same validation loss, over the whole split
    model = task.build_model(0).eval()
    assert lm_loss_sums(model, splits.val, batch_size=3, seq_len=5) == lm_loss_sums(model, val, batch_size=3, seq_len=5)


@pytest.mark.parametrize("level", ["char", "word"])
@pytest.mark.parametrize("test_size", [0, 7])
def test_per_line_splits_equal_the_in_memory_ones_and_record_the_lines(
    tmp_path: Path, level: str, test_size: int
) -> None:
    path = _write(tmp_path, "\n".join(NAMES) + "\n", "names.txt")
    config = _config(path, per_line=True, level=level, test_size=test_size, seed=11)
    splits = load_lm_splits(config, data_dir=tmp_path / "data")
    train, val, test = _old_per_line(NAMES, config)
    if level == "char":
        vocab = CharVocab.from_lines(train + val + test)
        encode = lambda ls: rnnlab.training.lm._encode_lines(vocab, ls)  # noqa: E731
    else:
        vocab = WordVocab.from_text("\n".join(train) + "\n")
        encode = lambda ls: lm_data._word_lines(vocab, ls)  # noqa: E731
    assert splits.vocab == vocab and splits.tokens is None
    assert splits.train.tolist() == encode(train).tolist() and splits.val.tolist() == encode(val).tolist()
    assert (splits.test is None) if not test_size else splits.test.tolist() == encode(test).tolist()

    # the saved split says which lines went where, in training order, and what the file was
    saved = load_split(tmp_path / "data" / "split.json")
    assert saved.kind == "indices" and saved.num_items == len(NAMES) and saved.seed == 11
    assert [NAMES[i] for i in saved.part("train").tolist()] == train
    assert [NAMES[i] for i in saved.part("val").tolist()] == val
    assert saved.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not (tmp_path / "data" / "tokens.bin").exists()
    again = open_lm_splits(tmp_path / "data", config)
    assert again.vocab == splits.vocab and again.train.tolist() == splits.train.tolist()


def test_char_per_line_data_is_still_the_numpy_engines(tmp_path: Path) -> None:
    path = _write(tmp_path, "\n".join(NAMES) + "\n", "names.txt")
    config = _config(path, per_line=True)
    ours, numpy_engine = load_lm_splits(config), rnnlab.training.lm.load_lm_data(config)
    assert ours.vocab == numpy_engine.vocab
    assert ours.train.tolist() == numpy_engine.train.tolist() and ours.val.tolist() == numpy_engine.val.tolist()


# ---------------------------------------------------------------------------------------------
# training reads through the memory map, never the whole file


def _no_whole_file_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path):
        raise AssertionError(f"read_text({path!r}): running text must be streamed, not read whole")

    for module in (rnnlab.data.text, rnnlab.data.names, rnnlab.training.lm, lm_data):
        monkeypatch.setattr(module, "read_text", refuse, raising=False)  # lm_data: should it ever import it


@pytest.mark.parametrize("level", ["char", "word"])
def test_training_reads_the_memory_mapped_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: str) -> None:
    path = _write(tmp_path, TEXTS["non_ascii"])
    _no_whole_file_reads(monkeypatch)
    task = LMTask.from_config(_config(path, level=level), {"hidden_size": 8, "embedding_dim": 4})
    assert isinstance(task.data.tokens, MemmapTokens)
    assert isinstance(task.data.train, np.memmap) and isinstance(task.data.val, np.memmap)
    assert np.shares_memory(task.batcher.tokens, task.data.tokens.array)  # batches come from the file

    out = tmp_path / "run"
    rc, stdout, err = run_cli(["train", "lm", "--level", level, "--data", path, "--out", out, *TINY])
    assert rc == 0, err
    assert json.loads(stdout)["step"] == 3
    rc, stdout, err = run_cli(["train", "--resume", out, "--max-steps", "5", "--quiet"])
    assert rc == 0, err
    rc, stdout, err = run_cli(["eval", out])
    assert rc == 0, err


def test_numpy_engine_trains_on_the_same_memory_mapped_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, TEXTS["non_ascii"])
    _no_whole_file_reads(monkeypatch)
    seen = []
    train_lm = rnnlab.training.lm.train_lm

    def spy(model_config, train_config, out_dir, data, **kw):
        seen.append(data)
        return train_lm(model_config, train_config, out_dir, data, **kw)

    monkeypatch.setattr(rnnlab.training.lm, "train_lm", spy)
    out = tmp_path / "run"
    argv = ["--hidden-size", "8", "--embedding-dim", "4", "--batch-size", "2", "--seq-len", "4"]
    rc, stdout, err = run_cli(["train", "--engine", "numpy", "--data", path, "--out", out, *argv, "--max-steps", "3",
                               "--eval-every", "2", "--quiet"])  # fmt: skip
    assert rc == 0, err
    (data,) = seen
    assert isinstance(data.train, np.memmap) and isinstance(data.val, np.memmap)  # batches come from the file
    assert {p.name for p in (out / "data").iterdir()} == {"tokens.bin", "tokens.bin.json", "split.json"}
    vocab, train, val = _old_encoding(path, "char")
    assert data.vocab == vocab and np.asarray(data.train).tolist() == train.tolist()
    assert np.asarray(data.val).tolist() == val.tolist()
    rc, scored, err = run_cli(["eval", out, "--engine", "numpy"])  # on the saved split
    assert rc == 0, err
    assert json.loads(scored)["loss"] == pytest.approx(json.loads(stdout)["val_loss"], rel=1e-6)

    path.write_bytes(b"\xff\xfe not UTF-8")  # a data error removes the run folder it created
    rc, _, err = run_cli(["train", "--engine", "numpy", "--data", path, "--out", tmp_path / "bad", *argv, "--quiet"])
    assert rc == 2 and err.startswith("error: ") and not (tmp_path / "bad").exists()


# ---------------------------------------------------------------------------------------------
# the run folder keeps its data; reopening reuses it; a changed source is refused


@pytest.mark.parametrize("level", ["char", "word"])
def test_run_folder_holds_the_token_file_and_the_split(tmp_path: Path, level: str) -> None:
    path = _write(tmp_path, TEXTS["non_ascii"])
    out = tmp_path / "run"
    rc, _, err = run_cli(["train", "lm", "--level", level, "--data", path, "--out", out, *TINY])
    assert rc == 0, err
    data = out / "data"
    assert {p.name for p in data.iterdir()} == {"tokens.bin", "tokens.bin.json", "split.json"}
    split = json.loads((data / "split.json").read_text(encoding="utf-8"))
    assert split["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert split["kind"] == "offsets" and split["extra"]["level"] == level

    vocab, train, val = _old_encoding(path, level)
    config = TrainConfig.from_dict(json.loads((out / "train_config.json").read_text(encoding="utf-8")))
    for where in (out, out / "best"):
        reopened = open_run_splits(where, config)
        assert reopened.vocab == vocab
        assert np.asarray(reopened.train).tolist() == train.tolist()
        assert np.asarray(reopened.val).tolist() == val.tolist()
    # eval scores the saved validation split: the loss of the last evaluation
    last = json.loads((out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    rc, stdout, err = run_cli(["eval", out])
    assert rc == 0, err
    assert json.loads(stdout)["loss"] == pytest.approx(last["val_loss"], rel=1e-6)
    assert json.loads(stdout)["tokens"] == len(val) - 1


def test_reopening_does_not_recompute_the_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "\n".join(NAMES) + "\n", "names.txt")
    config = _config(path, per_line=True, test_size=5)
    made = load_lm_splits(config, data_dir=tmp_path / "data")
    # a different permutation now would change every split that is recomputed, not a saved one
    monkeypatch.setattr(np.random, "default_rng", lambda *a, **k: pytest.fail("the split was recomputed"))
    again = open_lm_splits(tmp_path / "data", config)
    assert again.train.tolist() == made.train.tolist() and again.test.tolist() == made.test.tolist()


@pytest.mark.parametrize(
    "argv", [["--level", "char"], ["--level", "word"], ["--per-line"], ["--per-line", "--test-size", "5"]]
)
def test_a_changed_data_file_stops_resume_and_eval_with_one_line(tmp_path: Path, argv: list[str]) -> None:
    per_line = "--per-line" in argv
    path = _write(tmp_path, "\n".join(NAMES) + "\n" if per_line else TEXTS["non_ascii"])
    out = tmp_path / "run"
    rc, _, err = run_cli(["train", "lm", *argv, "--data", path, "--out", out, *TINY])
    assert rc == 0, err
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    original = path.read_bytes()
    path.write_bytes(original.replace(b"a", b"o", 1))
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    for command in (["train", "--resume", out, "--max-steps", "6"], ["eval", out], ["eval", out / "best"]):
        rc, stdout, err = run_cli(command)
        line = _one_line_error(rc, err)
        assert str(path) in line and expected in line and actual in line and "changed" in line
        assert stdout == ""
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing was touched

    # the original bytes back (or a moved copy of them): the run goes on
    path.write_bytes(original)
    rc, _, err = run_cli(["train", "--resume", out, "--max-steps", "5", "--quiet"])
    assert rc == 0, err


def test_resume_accepts_a_moved_copy_of_the_data(tmp_path: Path) -> None:
    path = _write(tmp_path, TEXTS["ascii"])
    out = tmp_path / "run"
    assert run_cli(["train", "lm", "--data", path, "--out", out, *TINY])[0] == 0
    moved = tmp_path / "elsewhere.txt"
    shutil.move(path, moved)
    rc, _, err = run_cli(["train", "--resume", out, "--data", moved, "--max-steps", "5", "--quiet"])
    assert rc == 0, err


def test_damaged_or_mismatched_data_folder_is_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, TEXTS["ascii"])
    out = tmp_path / "run"
    assert run_cli(["train", "lm", "--data", path, "--out", out, *TINY])[0] == 0
    tokens = out / "data" / "tokens.bin"
    tokens.write_bytes(tokens.read_bytes()[:-2])
    line = _one_line_error(*run_cli(["eval", out])[::2])
    assert "tokens.bin" in line and "truncated" in line
    config = TrainConfig.from_dict(json.loads((out / "train_config.json").read_text(encoding="utf-8")))
    with pytest.raises(DataError, match="made with level='char', but the run's config has level='word'"):
        open_lm_splits(out / "data", config.replace(level="word"))


def test_a_run_without_a_saved_split_is_rebuilt_as_it_was(tmp_path: Path) -> None:
    # run folders written before the data moved into RUN/data: eval rebuilds the split, writes nothing
    path = _write(tmp_path, TEXTS["ascii"])
    out = tmp_path / "run"
    assert run_cli(["train", "lm", "--data", path, "--out", out, *TINY])[0] == 0
    rc, with_data, err = run_cli(["eval", out])
    assert rc == 0, err
    shutil.rmtree(out / "data")
    rc, without, err = run_cli(["eval", out])
    assert rc == 0, err
    assert json.loads(without) == json.loads(with_data)
    assert not (out / "data").exists()


# ---------------------------------------------------------------------------------------------
# a run that fails before its first checkpoint leaves nothing


@pytest.mark.parametrize(
    ("text", "argv", "needle"),
    [
        ("one two three four five six seven eight nine ten\n" * 2, ["--level", "word"], "too short"),
        ("abcdefgh" * 50, ["--device", "tpu"], "device:"),
        ("abcdefgh" * 50, ["--lr", "1e100", "--optimizer", "sgd", "--clip-mode", "none"], "non-finite"),
    ],
)
def test_a_failed_start_leaves_no_run_folder(tmp_path: Path, text: str, argv: list[str], needle: str) -> None:
    path = _write(tmp_path, text)
    out = tmp_path / "run"
    rc, _, err = run_cli(["train", "lm", "--data", path, "--out", out, *TINY, *argv, "--eval-every", "1"])
    assert rc in (1, 2) and needle in err.strip().splitlines()[-1], err
    assert not out.exists()


def test_a_new_run_replaces_the_data_of_an_old_one_in_its_folder(tmp_path: Path) -> None:
    text, names = _write(tmp_path, TEXTS["ascii"]), _write(tmp_path, "\n".join(NAMES) + "\n", "names.txt")
    out = tmp_path / "run"
    assert run_cli(["train", "lm", "--data", text, "--out", out, *TINY])[0] == 0
    assert run_cli(["train", "lm", "--per-line", "--data", names, "--out", out, *TINY])[0] == 2  # not unasked
    assert run_cli(["train", "lm", "--per-line", "--data", names, "--out", out, "--overwrite", *TINY])[0] == 0
    assert {p.name for p in (out / "data").iterdir()} == {"split.json", "lines.txt"}  # no stale token file
    rc, _, err = run_cli(["eval", out])
    assert rc == 0, err
    assert run_cli(["train", "lm", "--data", text, "--out", out, "--overwrite", *TINY])[0] == 0
    assert {p.name for p in (out / "data").iterdir()} == {"split.json", "tokens.bin", "tokens.bin.json"}
