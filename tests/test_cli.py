"""End-to-end tests of the `rnnlab` command line: train, sample, gradcheck, and every user error."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlab.cli.main import main
from rnnlab.training.lm import load_lm

# a model and a budget small enough that a run takes a fraction of a second on one CPU core
TINY = [
    "--hidden-size", "16", "--embedding-dim", "8", "--batch-size", "4", "--seq-len", "8",
    "--max-steps", "20", "--eval-every", "10",
]  # fmt: skip

# UTF-8 running text with Greek, accents and an emoji (a code point outside the BMP); no newlines
GREEK_TEXT = "Καλημέρα κόσμε! Ο καφές είναι ζεστός. Café naïve façade 🙂 déjà vu. " * 40

WORDS = ["ámbar", "café", "naïve", "ζέστη", "κόσμος", "emma", "olivia", "ava", "sophia", "mia"] * 12


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """`rnnlab argv` in-process; returns (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def _train(tmp: Path, name: str, argv: list[str]) -> Path:
    out = tmp / name
    rc, _, err = run_cli(["train", *argv, "--out", out, "--quiet", *TINY])
    assert rc == 0, err
    return out


@pytest.fixture(scope="module")
def greek_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "greek.txt"
    path.write_text(GREEK_TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def greek_run(tmp_path_factory: pytest.TempPathFactory, greek_file: Path) -> Path:
    """A run folder trained on GREEK_TEXT (plain text). Do not modify it: copy it first."""
    return _train(tmp_path_factory.mktemp("runs"), "greek", ["--data", greek_file])


@pytest.fixture(scope="module")
def words_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A per-line run folder trained on WORDS, one word per line. Do not modify it."""
    path = tmp_path_factory.mktemp("data") / "words.txt"
    path.write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    return _train(tmp_path_factory.mktemp("runs"), "words", ["--data", path, "--per-line"])


RUN_FILES = {
    "model.safetensors",
    "model_config.json",
    "train_config.json",
    "vocab.json",
    "checkpoint.json",
    "metrics.jsonl",
}


def _vocab_chars(run: Path) -> set[str]:
    return set(load_lm(run).vocab.itos)


def _assert_one_line_error(rc: int, err: str, expected_rc: int = 2) -> str:
    assert rc == expected_rc, err
    assert "Traceback" not in err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


# ---------------------------------------------------------------------------------------------
# train, then sample


def test_train_writes_a_complete_run_folder(greek_run: Path) -> None:
    names = {p.name for p in greek_run.iterdir()}
    assert RUN_FILES <= names
    records = [json.loads(line) for line in (greek_run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in records] == [10, 20]
    for r in records:
        for key in ("step", "elapsed_s", "train_loss", "val_loss"):
            assert key in r
            assert isinstance(r[key], (int, float)) and math.isfinite(r[key])
    vocab = json.loads((greek_run / "vocab.json").read_text(encoding="utf-8"))
    assert set(vocab["tokens"]) == set(GREEK_TEXT)
    assert vocab["per_line"] is False
    train_config = json.loads((greek_run / "train_config.json").read_text(encoding="utf-8"))
    assert train_config["max_steps"] == 20 and train_config["batch_size"] == 4


def test_train_prints_the_last_record_as_json(tmp_path: Path, greek_file: Path) -> None:
    rc, out, err = run_cli(["train", "--data", greek_file, "--out", tmp_path / "run", *TINY])
    assert rc == 0, err
    record = json.loads(out)
    assert record["run"] == str(tmp_path / "run") and record["step"] == 20
    assert math.isfinite(record["val_loss"])
    # without --quiet: a summary line and one line per evaluation on stderr
    assert "vocabulary" in err and "step 10:" in err and "step 20:" in err


def test_sample_prints_vocabulary_characters(greek_run: Path) -> None:
    rc, out, err = run_cli(["sample", greek_run, "--length", "50", "--seed", "1"])
    assert rc == 0, err
    assert err == ""
    assert out.endswith("\n")
    text = out[:-1]
    assert len(text) == 50  # a random start character, then 49 generated: --length in all
    assert set(text) <= _vocab_chars(greek_run)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--beam-size", "5"], "--beam-size: does not apply to a language model (it is for seq2seq runs)"),
        (
            ["--input", "x"],
            "--input: does not apply to a language model (it is for classify, forecast, seq2seq, tag runs)",
        ),
        (["--replacement", "a"], "--replacement: applies with --unknown map, got --unknown error"),
        (
            ["--greedy", "--temperature", "0.5"],
            "--temperature: does not apply with --greedy (it always takes the most likely token), got --temperature 0.5",
        ),
        (
            ["--greedy", "--top-k", "5", "--top-p", "0.9"],
            "--top-k: does not apply with --greedy (it always takes the most likely token), got --top-k 5",
        ),
    ],
)
def test_sample_refuses_options_that_do_not_apply(greek_run: Path, argv: list[str], message: str) -> None:
    rc, out, err = run_cli(["sample", greek_run, *argv])
    assert _assert_one_line_error(rc, err) == f"error: {message}"
    assert out == ""


def test_sample_with_a_device_uses_the_torch_engine_for_a_numpy_run(
    tmp_path: Path, greek_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rnnlab.training.lm_run as lm_run
    import rnnlab.training.trainer as trainer

    out = _train(tmp_path, "numpy-run", ["--engine", "numpy", "--data", greek_file])
    asked: list[object] = []

    class Stop(Exception):
        pass

    def fake_load_run(run, engine=None, device="cpu"):
        asked.append((engine, device))
        raise Stop

    monkeypatch.setattr(trainer, "select_device", lambda name: "cuda:0")  # as on a machine with a GPU
    monkeypatch.setattr(lm_run, "load_run", fake_load_run)
    with pytest.raises(Stop):
        main(["sample", str(out), "--device", "cuda"])
    assert asked == [("torch", "cuda:0")]  # not NumPy with the device dropped


def test_a_closed_stdout_is_one_line_not_a_traceback(greek_run: Path) -> None:
    argv = [sys.executable, "-m", "rnnlab", "sample", str(greek_run), "--length", "5"]
    for extra in ([], ["--num-samples", "2"]):
        proc = subprocess.run(
            ["bash", "-c", '"$@" >&-', "bash", *argv, *extra], capture_output=False, stderr=subprocess.PIPE, text=True
        )
        assert proc.returncode == 2
        assert (
            proc.stderr
            == "error: stdout: closed; nothing to write the output to (give the command an output, such as > FILE)\n"
        )


def test_sample_same_seed_same_output(greek_run: Path) -> None:
    a = run_cli(["sample", greek_run, "--length", "50", "--seed", "1"])
    b = run_cli(["sample", greek_run, "--length", "50", "--seed", "1"])
    c = run_cli(["sample", greek_run, "--length", "50", "--seed", "2"])
    assert a == b
    assert a[1] != c[1]


def test_sample_greedy_is_deterministic_and_equals_top_k_1(greek_run: Path) -> None:
    prime = "Καλη"
    g1 = run_cli(["sample", greek_run, "--prime", prime, "--length", "40", "--greedy", "--seed", "1"])
    g2 = run_cli(["sample", greek_run, "--prime", prime, "--length", "40", "--greedy", "--seed", "99"])
    k1 = run_cli(["sample", greek_run, "--prime", prime, "--length", "40", "--top-k", "1", "--seed", "5"])
    assert g1[0] == g2[0] == k1[0] == 0
    assert g1[1] == g2[1] == k1[1]
    assert g1[1].startswith(prime)
    # without a prime, top-k 1 draws the start character (the same seed gives the same one); greedy
    # takes the vocabulary's first, as char-rnn's argmax does, so any seed gives the same text
    a = run_cli(["sample", greek_run, "--length", "30", "--top-k", "1", "--seed", "3"])
    b = run_cli(["sample", greek_run, "--length", "30", "--top-k", "1", "--seed", "3"])
    assert a == b
    c = run_cli(["sample", greek_run, "--length", "30", "--greedy"])
    d = run_cli(["sample", greek_run, "--length", "30", "--greedy", "--seed", "3"])
    assert c == d and c[0] == 0 and c[1][0] == load_lm(greek_run).vocab.itos[0]


def test_sample_temperature_changes_the_output(greek_run: Path) -> None:
    outs = {
        t: run_cli(["sample", greek_run, "--length", "80", "--seed", "1", "--temperature", t])[1]
        for t in ("0.3", "1.0", "3.0")
    }
    assert len(set(outs.values())) == 3
    vocab = _vocab_chars(greek_run)
    for text in outs.values():
        assert set(text[:-1]) <= vocab


def test_sample_several_samples_are_headed(greek_run: Path) -> None:
    rc, out, _ = run_cli(["sample", greek_run, "--length", "20", "--num-samples", "3", "--seed", "1"])
    assert rc == 0
    assert out.count("--- sample ") == 3
    assert "--- sample 3 ---" in out


def test_sample_prime_file(tmp_path: Path, greek_run: Path) -> None:
    prime = tmp_path / "prime.txt"
    prime.write_text("Café\n", encoding="utf-8")
    rc, out, err = run_cli(["sample", greek_run, "--prime-file", prime, "--length", "10", "--seed", "1"])
    assert rc == 0, err
    assert out.startswith("Café") and len(out[:-1]) == len("Café") + 10


def test_per_line_sample_prints_one_item_per_line(words_run: Path) -> None:
    vocab = _vocab_chars(words_run)
    rc, out, err = run_cli(["sample", words_run, "--num-samples", "12", "--seed", "1"])
    assert rc == 0, err
    lines = out.split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert len(lines) == 12
    for line in lines:
        assert set(line) <= vocab
        assert len(line) <= 40  # the default cap per item for per-line models
    # an empty item can legitimately be drawn, but not most of them
    assert sum(1 for line in lines if line) >= 8
    # default: 10 samples for a per-line model
    rc, out, _ = run_cli(["sample", words_run, "--seed", "2"])
    assert rc == 0 and out.count("\n") == 10


def test_per_line_run_records_the_words(words_run: Path) -> None:
    vocab = json.loads((words_run / "vocab.json").read_text(encoding="utf-8"))
    assert vocab["per_line"] is True and vocab["boundary_id"] == 0
    assert set(vocab["tokens"][1:]) == set("".join(WORDS))


def test_numpy_per_line_run_with_a_test_split_and_the_best_weights(tmp_path: Path) -> None:
    path = tmp_path / "words.txt"
    path.write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    rc, stdout, err = run_cli(
        [
            "train",
            "--engine",
            "numpy",
            "--data",
            path,
            "--per-line",
            "--test-size",
            "10",
            "--out",
            out,
            "--quiet",
            *TINY,
        ]
    )
    assert rc == 0, err
    record = json.loads(stdout)
    assert record["step"] == 20 and math.isfinite(record["test_loss"])
    split = json.loads((out / "data" / "split.json").read_text(encoding="utf-8"))
    assert len(split["parts"]["test"]) == 10  # the held-out items, saved with the run
    rc, stdout, err = run_cli(["eval", out, "--split", "test", "--engine", "numpy"])
    assert rc == 0, err
    assert json.loads(stdout)["loss"] == pytest.approx(record["test_loss"], abs=1e-6)
    best = json.loads((out / "best" / "train_state.json").read_text(encoding="utf-8"))
    assert best["val_loss"] == record["best_val_loss"]
    rc, stdout, err = run_cli(["sample", out / "best", "--num-samples", "2", "--seed", "0"])
    assert rc == 0 and len(stdout.split()) == 2, err


@pytest.mark.parametrize("per_line", [False, True])
def test_numpy_word_level_run(tmp_path: Path, per_line: bool) -> None:
    words = "the cat sat on a mat and the dog ran to the park while a bird sang in the tree".split()
    lines = [" ".join(words[(7 * i + j) % len(words)] for j in range(9)) for i in range(120)]
    path = tmp_path / "words.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    argv = ["train", "--engine", "numpy", "--level", "word", "--data", path, "--out", out, "--quiet", *TINY]
    rc, stdout, err = run_cli(argv + (["--per-line"] if per_line else []))
    assert rc == 0, err
    record = json.loads(stdout)
    vocab = json.loads((out / "vocab.json").read_text(encoding="utf-8"))
    assert set(words) <= set(vocab["tokens"]) and vocab["per_line"] is per_line
    rc, stdout, err = run_cli(["eval", out, "--engine", "numpy"])
    assert rc == 0, err
    assert json.loads(stdout)["unit"] == "word" and json.loads(stdout)["loss"] == record["val_loss"]
    rc, stdout, err = run_cli(["sample", out, "--seed", "0", "--length", "12"])
    assert rc == 0, err
    assert set(stdout.split()) <= set(vocab["tokens"]) and len(stdout.split()) >= 2
    assert not any(line.startswith(" ") for line in stdout.splitlines()), repr(stdout)
    rc, stdout, err = run_cli(["sample", out, "--seed", "0", "--length", "12", "--prime", "the cat"])
    assert rc == 0 and stdout.startswith("the cat "), (err, stdout)


def test_numpy_run_takes_momentum_and_eval_batch_size(tmp_path: Path, greek_file: Path) -> None:
    from rnnlab.scratch.optim import SGD
    from rnnlab.training.lm import make_optimizer

    out = _train(
        tmp_path,
        "sgd",
        [
            "--engine",
            "numpy",
            "--data",
            greek_file,
            "--optimizer",
            "sgd",
            "--momentum",
            "0.5",
            "--eval-batch-size",
            "7",
        ],
    )
    config = load_lm(out).train_config
    assert (config.optimizer, config.momentum, config.eval_batch_size) == ("sgd", 0.5, 7)
    opt = make_optimizer(load_lm(out).model, config)
    assert isinstance(opt, SGD) and opt.momentum == 0.5


def test_default_data_is_the_census_names(tmp_path: Path) -> None:
    pytest.importorskip("names")
    out = tmp_path / "names_run"
    rc, stdout, err = run_cli(["train", "--out", out, "--quiet", *TINY])
    assert rc == 0, err
    assert json.loads(stdout)["step"] == 20
    vocab = load_lm(out).vocab
    assert vocab.boundary_id == 0
    assert set(vocab.itos[1:]) == set("abcdefghijklmnopqrstuvwxyz")
    rc, stdout, err = run_cli(["sample", out, "--num-samples", "10", "--seed", "1"])
    assert rc == 0, err
    lines = stdout.split("\n")[:-1]
    assert len(lines) == 10
    assert all(set(line) <= set("abcdefghijklmnopqrstuvwxyz") for line in lines)
    assert sum(1 for line in lines if line) >= 7


# ---------------------------------------------------------------------------------------------
# bad training input: one line, exit 2, nothing written


def _bad_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.txt"
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "whitespace":
        path.write_bytes(b"  \n\t\n \r\n")
    elif kind == "binary":
        path.write_bytes(b"PK\x03\x04\x00\x00binary\x00stuff" * 10)
    elif kind == "latin1":
        path.write_bytes(b"caf\xe9 au lait " * 20)
    elif kind == "too_short":
        path.write_text("abcdefghij" * 3, encoding="utf-8")  # 27 train tokens < 4*8+1
    return path


@pytest.mark.parametrize(
    ("kind", "needles"),
    [
        ("missing", ["not found"]),
        ("directory", ["directory"]),
        ("empty", ["empty"]),
        ("whitespace", ["whitespace"]),
        ("binary", ["binary", "NUL"]),
        ("latin1", ["UTF-8", "0xe9"]),
        ("too_short", ["too short", "batch_size", "seq_len"]),
    ],
)
@pytest.mark.parametrize("per_line", [False, True])
def test_train_bad_data_is_one_line_and_writes_nothing(
    tmp_path: Path, kind: str, needles: list[str], per_line: bool
) -> None:
    path = _bad_file(tmp_path, kind)
    if per_line and kind == "too_short":
        path.write_text("ab\ncd\nef\n", encoding="utf-8")  # 2 training lines: <b>ab<b>cd<b>, 7 tokens
    out = tmp_path / "out"
    rc, stdout, err = run_cli(["train", "--data", path, "--out", out, *TINY, *(["--per-line"] if per_line else [])])
    line = _assert_one_line_error(rc, err)
    for needle in needles:
        assert needle in line
    assert stdout == ""
    assert not out.exists()


def test_train_per_line_needs_two_lines(tmp_path: Path) -> None:
    path = tmp_path / "one.txt"
    path.write_text("onlyoneline\n", encoding="utf-8")
    out = tmp_path / "out"
    rc, _, err = run_cli(["train", "--data", path, "--per-line", "--out", out, *TINY])
    line = _assert_one_line_error(rc, err)
    assert "line" in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "value", "field"),
    [
        ("--hidden-size", "0", "hidden_size"),
        ("--embedding-dim", "-3", "embedding_dim"),
        ("--layers", "0", "num_layers"),
        ("--lr", "-1", "lr"),
        ("--lr", "0", "lr"),
        ("--lr", "nan", "lr"),
        ("--dropout", "2", "dropout"),
        ("--batch-size", "0", "batch_size"),
        ("--seq-len", "0", "seq_len"),
        ("--max-steps", "0", "max_steps"),
        ("--eval-every", "0", "eval_every"),
        ("--val-fraction", "0.9", "val_fraction"),
        ("--grad-clip", "0", "grad_clip"),
        ("--weight-decay", "-0.1", "weight_decay"),
        ("--max-time", "-5", "max_time"),
        ("--state-reset-prob", "2", "state_reset_prob"),
    ],
)
def test_train_bad_numbers_are_one_line_and_write_nothing(
    tmp_path: Path, greek_file: Path, option: str, value: str, field: str
) -> None:
    out = tmp_path / "out"
    rc, stdout, err = run_cli(["train", "--data", greek_file, "--out", out, *TINY, option, value])
    line = _assert_one_line_error(rc, err)
    # the config names its field ({field}); the command line names the option
    assert line.startswith(f"error: {option}:"), (field, line)
    assert stdout == ""
    assert not out.exists()


def test_train_identity_init_needs_a_vanilla_rnn(tmp_path: Path, greek_file: Path) -> None:
    out = tmp_path / "out"
    rc, _, err = run_cli(["train", "--data", greek_file, "--out", out, *TINY, "--cell", "gru", "--init", "identity"])
    assert "init:" in _assert_one_line_error(rc, err)
    assert not out.exists()


def test_unparsable_option_is_an_argparse_error(
    tmp_path: Path, greek_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(greek_file), "--out", str(tmp_path / "out"), "--hidden-size", "many"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "--hidden-size" in err and "invalid int value" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # --val is an option of classify, tag and seq2seq; argparse used to take it for --val-fraction
        (
            ["train", "lm", "--val", "x.txt"],
            "error: rnnlab train lm: unrecognized arguments: --val x.txt (see rnnlab train lm --help)",
        ),
        (
            ["train", "forecast", "--val", "x"],
            "error: rnnlab train forecast: unrecognized arguments: --val x (see rnnlab train forecast --help)",
        ),
        (
            ["sample", "RUN", "--temp", "0.5"],
            "error: rnnlab sample: unrecognized arguments: --temp 0.5 (see rnnlab sample --help)",
        ),
        (
            ["gradcheck", "--lay", "2"],
            "error: rnnlab gradcheck: unrecognized arguments: --lay 2 (see rnnlab gradcheck --help)",
        ),
    ],
)
def test_options_are_never_abbreviated_and_unknown_ones_name_their_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err == expected + "\n"
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_console_script_missing_file_subprocess(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("rnnlab.exe" if os.name == "nt" else "rnnlab")
    if not exe.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(exe), "train", "--data", str(tmp_path / "nope.txt"), "--out", str(out), *TINY],
        capture_output=True, text=True, encoding="utf-8", timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: data: file not found: {tmp_path / 'nope.txt'} (not a URL, and not a named data set: tinyshakespeare)"
    ]
    assert proc.stdout == ""
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# a diverging run


@pytest.mark.filterwarnings("error")  # NumPy's overflow warnings would be noise beside the one error line
def test_nan_run_stops_with_one_line_and_keeps_the_good_checkpoint(tmp_path: Path, greek_file: Path) -> None:
    out = tmp_path / "run"
    rc, _, err = run_cli(["train", "--data", greek_file, "--out", out, "--quiet", *TINY])
    assert rc == 0, err
    before = {name: (out / name).read_bytes() for name in RUN_FILES}
    broken = ["train", "--data", greek_file, "--out", out, "--quiet", *TINY, "--lr", "1e100", "--optimizer", "sgd"]
    broken += ["--clip-mode", "none"]

    # a new run never takes a run's folder unasked
    assert "already holds a run" in _assert_one_line_error(*run_cli(broken)[::2])
    # asked to (--overwrite), it replaces the run only once it has a checkpoint of its own
    rc, stdout, err = run_cli([*broken, "--overwrite"])
    line = _assert_one_line_error(rc, err, 1)
    assert "nan" in line.lower() or "non-finite" in line
    assert "kept" in line and str(out) in line
    assert stdout == ""
    after = {name: (out / name).read_bytes() for name in RUN_FILES}
    assert after == before
    load_lm(out)  # still a valid checkpoint


@pytest.mark.filterwarnings("error")
def test_divergence_at_the_last_step_saves_nothing(tmp_path: Path, greek_file: Path) -> None:
    # the loss of step 0 is finite, but its update makes the weights non-finite: the checkpoint
    # after the last step must not be written with them
    out = tmp_path / "run"
    rc, stdout, err = run_cli(
        ["train", "--data", greek_file, "--out", out, "--quiet", *TINY[:-4], "--max-steps", "1", "--eval-every", "1",
         "--lr", "1e100", "--optimizer", "sgd", "--clip-mode", "none"]
    )  # fmt: skip
    line = _assert_one_line_error(rc, err, 1)
    assert "non-finite" in line or "nan" in line.lower()
    assert "nothing was saved" in line
    assert stdout == ""
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# sample: primes outside the vocabulary, bad run folders


def test_sample_unknown_prime_is_an_error_by_default(greek_run: Path) -> None:
    rc, out, err = run_cli(["sample", greek_run, "--prime", "Καfq€", "--length", "10", "--seed", "1"])
    line = _assert_one_line_error(rc, err)
    assert out == ""
    assert "'q'" in line and "U+0071" in line
    assert "'€'" in line and "U+20AC" in line
    assert "nothing was generated" in line
    assert "2 character(s)" in line
    assert "'a'" not in line  # known characters are not listed


def test_sample_unknown_prime_skip(greek_run: Path) -> None:
    rc, out, err = run_cli(
        ["sample", greek_run, "--prime", "Καfq€ό", "--length", "10", "--seed", "1", "--unknown", "skip"]
    )
    assert rc == 0, err
    lines = err.strip().split("\n")
    assert len(lines) == 1 and lines[0].startswith("warning: ")
    assert "U+0071" in lines[0] and "U+20AC" in lines[0] and "skipped" in lines[0]
    assert out.startswith("Καfό")
    assert len(out[:-1]) == len("Καfό") + 10
    assert set(out[:-1]) <= _vocab_chars(greek_run)


def test_sample_unknown_prime_map(greek_run: Path) -> None:
    rc, out, err = run_cli(
        [
            "sample",
            greek_run,
            "--prime",
            "Καfq",
            "--length",
            "10",
            "--seed",
            "1",
            "--unknown",
            "map",
            "--replacement",
            "a",
        ]
    )
    assert rc == 0, err
    assert err.startswith("warning: ") and "U+0071" in err
    assert out.startswith("Καfa")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--unknown", "map", "--replacement", "Q"], "replacement"),
        (["--unknown", "map"], "replacement"),
        (["--unknown", "map", "--replacement", "ab"], "replacement"),
    ],
)
def test_sample_bad_replacement(greek_run: Path, extra: list[str], needle: str) -> None:
    rc, out, err = run_cli(["sample", greek_run, "--prime", "Καfq", "--length", "10", *extra])
    assert needle in _assert_one_line_error(rc, err)
    assert out == ""


@pytest.mark.parametrize(
    ("option", "value", "field"),
    [
        ("--length", "0", "length"),
        ("--num-samples", "0", "num_samples"),
        ("--temperature", "0", "temperature"),
        ("--temperature", "-1", "temperature"),
        ("--top-k", "0", "top_k"),
    ],
)
def test_sample_bad_numbers(greek_run: Path, option: str, value: str, field: str) -> None:
    rc, out, err = run_cli(["sample", greek_run, option, value])
    assert _assert_one_line_error(rc, err).startswith(f"error: {option}:"), field
    assert out == ""


def test_sample_missing_prime_file(tmp_path: Path, greek_run: Path) -> None:
    rc, out, err = run_cli(["sample", greek_run, "--prime-file", tmp_path / "nope.txt"])
    assert "not found" in _assert_one_line_error(rc, err)
    assert out == ""


@pytest.mark.parametrize("what", ["empty_dir", "missing_dir", "a_file"])
def test_sample_not_a_checkpoint(tmp_path: Path, what: str) -> None:
    target = tmp_path / what
    if what == "empty_dir":
        target.mkdir()
        (target / "notes.txt").write_text("hello", encoding="utf-8")
    elif what == "a_file":
        target.write_text("hello", encoding="utf-8")
    rc, out, err = run_cli(["sample", target])
    line = _assert_one_line_error(rc, err)
    assert "checkpoint" in line and str(target) in line
    assert out == ""


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_sample_damaged_weights(tmp_path: Path, greek_run: Path, damage: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(greek_run, run)
    weights = run / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
        weights.write_bytes(bytes(raw))
    elif damage == "truncate":
        weights.write_bytes(bytes(raw[: len(raw) - 10]))
    else:
        weights.unlink()
    rc, out, err = run_cli(["sample", run, "--length", "10", "--seed", "1"])
    line = _assert_one_line_error(rc, err)
    assert "model.safetensors" in line
    assert {"flip": "altered", "truncate": "truncated", "delete": "missing"}[damage] in line
    assert out == ""


def test_sample_altered_config(tmp_path: Path, greek_run: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(greek_run, run)
    cfg = run / "model_config.json"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace('"hidden_size": 16', '"hidden_size": 17'), encoding="utf-8")
    rc, _, err = run_cli(["sample", run])
    assert "model_config.json" in _assert_one_line_error(rc, err)


# ---------------------------------------------------------------------------------------------
# gradcheck


def test_gradcheck_lstm_two_layers_bidirectional_json() -> None:
    rc, out, err = run_cli(["gradcheck", "--cell", "lstm", "--layers", "2", "--bidirectional", "--json"])
    assert rc == 0, err
    result = json.loads(out)
    assert (
        result["ok"] is True and result["cell"] == "lstm" and result["layers"] == 2 and result["bidirectional"] is True
    )
    rel = result["relative_error"]
    for layer in (0, 1):
        for suffix in ("", "_reverse"):
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                assert f"{kind}_l{layer}{suffix}" in rel
    assert all(0 <= v <= 1e-6 for v in rel.values()), rel
    assert result["worst"] == max(rel.values())


def test_gradcheck_relu_rnn_truncated_table() -> None:
    rc, out, err = run_cli(["gradcheck", "--cell", "rnn", "--nonlinearity", "relu", "--truncated"])
    assert rc == 0, err
    assert "rnn_relu" in out and "truncated" in out
    assert "weight_hh_l0" in out
    assert out.strip().splitlines()[-1].startswith("worst ") and "OK" in out


def test_gradcheck_gru_fails_an_impossible_tolerance() -> None:
    rc, out, _ = run_cli(["gradcheck", "--cell", "gru", "--tolerance", "1e-30"])
    assert rc == 1
    assert "FAILED" in out


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--layers", "0"),
        ("--seq-len", "0"),
        ("--seq-len", "100000"),
        ("--tolerance", "0"),
        ("--tolerance", "nan"),
        ("--seed", "-1"),
        ("--nonlinearity", "relu"),  # with the default --cell lstm
    ],
)
def test_gradcheck_bad_numbers(option: str, value: str) -> None:
    rc, out, err = run_cli(["gradcheck", option, value])
    assert option in _assert_one_line_error(rc, err)
    assert out == ""


TORCH_TINY = ["--hidden-size", "16", "--embedding-dim", "8", "--batch-size", "4", "--seq-len", "8", "--max-steps", "4",
              "--eval-every", "2", "--threads", "1"]  # fmt: skip

# A Python in which torch cannot be imported, as on a machine that ran only `make demo` (the app
# extra has no torch): the path finder skips it, so `import torch` fails and find_spec says None.
_WITHOUT_TORCH = """
import importlib.machinery, sys
class _NoTorch(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            return None
        return importlib.machinery.PathFinder.find_spec(name, path, target)
sys.meta_path = [_NoTorch if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
from rnnlab.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_numpy_runs_train_sample_and_score_without_torch(tmp_path: Path) -> None:
    def run(*argv: object) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", _WITHOUT_TORCH, *map(str, argv)], capture_output=True, text=True, timeout=600
        )

    out = tmp_path / "names"
    r = run("train", "--hidden-size", "16", "--max-steps", "4", "--eval-every", "2", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "note: torch is not installed; training with --engine numpy" in r.stderr
    assert math.isfinite(json.loads(r.stdout)["val_loss"])
    r = run("train", "--resume", out, "--max-steps", "6", "--quiet")  # the run's own engine, no torch needed
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["step"] == 6
    r = run("sample", out, "--num-samples", "3", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.split()) == 3
    r = run("eval", out)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["engine"] == "numpy" and math.isfinite(json.loads(r.stdout)["loss"])
    for argv in (["train", "--help"], ["sample", "--help"], ["gradcheck", "--cell", "gru"]):
        r = run(*argv)
        assert r.returncode == 0, r.stderr
    pytest.importorskip("torch")
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat. " * 200, encoding="utf-8")
    torch_run = tmp_path / "torch"
    rc, _, err = run_cli(["train", "lm", "--data", str(text), "--out", str(torch_run), "--quiet", *TORCH_TINY])
    assert rc == 0, err
    rc, numpy_sample, err = run_cli(["sample", str(torch_run), "--engine", "numpy", "--seed", "3", "--length", "40"])
    assert rc == 0, err
    r = run("sample", torch_run, "--seed", "3", "--length", "40")  # trained on torch, sampled without it
    assert r.returncode == 0, r.stderr
    assert r.stdout == numpy_sample and len(r.stdout) > 40
    assert r.stderr.strip() == "note: torch is not installed; sampling with --engine numpy (the same weights)"
    for argv in (["sample", out, "--engine", "torch"], ["train", "classify", "--out", tmp_path / "c"]):
        r = run(*argv)
        assert r.returncode == 2 and r.stdout == ""
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: this needs PyTorch, which is not installed"), r.stderr
    assert not (tmp_path / "c").exists()


def test_a_reader_that_goes_away_ends_sample_quietly(greek_run: Path) -> None:
    # `rnnlab sample RUN | head -c 20`: the status of a process killed by SIGPIPE, and no message
    argv = [sys.executable, "-m", "rnnlab", "sample", str(greek_run), "--engine", "numpy", "--length", "200000"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and len(proc.stdout.read(20)) == 20
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err) == (141, b"")


def test_per_line_prime_is_one_line(words_run: Path, tmp_path: Path) -> None:
    rc, out, err = run_cli(["sample", words_run, "--prime", "ab\ncd"])
    assert (
        _assert_one_line_error(rc, err)
        == "error: prime: a per-line model's prime is the start of one item (one line), got 'ab\\ncd'"
    )
    assert out == ""
    # a word model is told the same (it used to read the break as an item's end and carry on)
    path = tmp_path / "w.txt"
    path.write_text("the cat sat\na dog ran\nthe bird sang\n" * 20, encoding="utf-8")
    out_dir = tmp_path / "wl"
    argv = [
        "train",
        "--engine",
        "numpy",
        "--level",
        "word",
        "--per-line",
        "--data",
        path,
        "--out",
        out_dir,
        "--quiet",
        *TINY,
    ]
    rc, _, err = run_cli(argv)
    assert rc == 0, err
    rc, _, err = run_cli(["sample", out_dir, "--prime", "the\ncat"])
    assert "a per-line model's prime is the start of one item" in _assert_one_line_error(rc, err)


def test_a_new_run_never_overwrites_user_files_it_would_write(tmp_path: Path, greek_file: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "vocab.json").write_text("my precious vocab", encoding="utf-8")
    (out / "metrics.jsonl").write_text('{"my": "log"}\n', encoding="utf-8")
    (out / "notes.md").write_text("mine too", encoding="utf-8")
    argv = ["train", "--engine", "numpy", "--data", greek_file, "--out", out, "--quiet", *TINY]
    rc, _, err = run_cli(argv)
    assert _assert_one_line_error(rc, err) == (
        f"error: out: {out} holds files that a run writes (metrics.jsonl, vocab.json) but no run; "
        "choose another --out, or replace them with --overwrite"
    )
    assert (out / "vocab.json").read_text(encoding="utf-8") == "my precious vocab"
    rc, _, err = run_cli([*argv, "--overwrite"])  # asked for: they go, as an earlier run's would
    assert rc == 0, err
    assert (out / "checkpoint.json").exists() and (out / "notes.md").read_text(encoding="utf-8") == "mine too"


def test_an_unwritable_run_folder_is_found_before_any_work(tmp_path: Path, greek_file: Path, monkeypatch) -> None:
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    out = tmp_path / "ro"
    out.mkdir()
    rc, _, err = run_cli(["train", "--engine", "numpy", "--data", greek_file, "--out", out, "--quiet", *TINY])
    assert _assert_one_line_error(rc, err) == f"error: out: cannot write into the run folder {out}: Permission denied"


def test_a_folder_emptied_by_a_killed_overwrite_points_to_the_earlier_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    aside = tmp_path / ".run.replaced-abc123"
    aside.mkdir()
    for command in (["eval", out], ["sample", out], ["train", "--resume", out]):
        rc, _, err = run_cli(command)
        assert _assert_one_line_error(rc, err).endswith(
            f"; the files of an earlier run of it, set aside by an interrupted --overwrite, are in {aside}: "
            f"move them back into {out} to use that run"
        ), command


def test_a_running_text_run_scores_and_resumes_without_its_source(tmp_path: Path) -> None:
    # the token file in RUN/data records the source's sha256 and holds its text: a source that is
    # gone (a URL offline, a deleted file) is not needed; a changed one is still refused
    source = tmp_path / "greek.txt"
    source.write_text(GREEK_TEXT, encoding="utf-8")
    out = _train(tmp_path, "run", ["--engine", "numpy", "--data", source])
    record = json.loads((out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    source.unlink()
    rc, stdout, err = run_cli(["eval", out])
    assert rc == 0, err
    assert json.loads(stdout)["loss"] == pytest.approx(record["val_loss"], rel=1e-6)
    rc, stdout, err = run_cli(["train", "--resume", out, "--max-steps", "30", "--quiet"])
    assert rc == 0, err
    source.write_text(GREEK_TEXT + "changed", encoding="utf-8")
    rc, _, err = run_cli(["eval", out])
    assert f"data: {source} has changed since the run's split" in _assert_one_line_error(rc, err)


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_a_per_line_run_scores_and_resumes_without_its_source(tmp_path: Path, engine: str) -> None:
    # RUN/data/lines.txt keeps the items that the split's indices point into
    source = tmp_path / "words.txt"
    source.write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    out = _train(tmp_path, "run", ["--engine", engine, "--data", source, "--per-line"])
    assert (out / "data" / "lines.txt").read_text(encoding="utf-8") == "\n".join(WORDS) + "\n"
    record = json.loads((out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    source.rename(tmp_path / "elsewhere.txt")
    rc, stdout, err = run_cli(["eval", out])
    assert rc == 0, err
    assert json.loads(stdout)["loss"] == pytest.approx(record["val_loss"], rel=1e-6)
    rc, _, err = run_cli(["train", "--resume", out, "--max-steps", "30", "--quiet"])
    assert rc == 0, err
    # a source that is there but changed is still refused, not replaced by the kept lines
    source.write_text("\n".join(WORDS[:-1]) + "\n", encoding="utf-8")
    rc, _, err = run_cli(["eval", out])
    assert f"data: {source} has changed since the run's split" in _assert_one_line_error(rc, err)
    # an item that starts with U+FEFF survives the round trip (reading drops one byte-order mark)
    bom_source = tmp_path / "bom.txt"
    bom_source.write_text("\ufeff\ufeffemma\n" + "\n".join(WORDS) + "\n", encoding="utf-8")
    bom_run = _train(tmp_path, "bom-run", ["--engine", engine, "--data", bom_source, "--per-line"])
    bom_source.unlink()
    rc, _, err = run_cli(["eval", bom_run])
    assert rc == 0, err
    # and kept lines that were altered are refused too
    source.unlink()
    (out / "data" / "lines.txt").write_text("emma\n" * len(WORDS), encoding="utf-8")
    rc, _, err = run_cli(["eval", out])
    assert "lines.txt does not hold the lines the run's split was made from" in _assert_one_line_error(rc, err)


@pytest.mark.parametrize("argv", [["train", "--resume="], ["train", "lm", "--resume", ""], ["train", "--resume", " "]])
def test_an_empty_resume_is_refused_not_a_new_run(argv: list[str], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_cli(argv)
    assert _assert_one_line_error(rc, err).startswith("error: --resume: expected a run folder, got ")
    assert list(tmp_path.iterdir()) == []
