"""`rnnlab train lm` on the torch engine, `rnnlab sample` across engines, `rnnlab eval`, TOML options."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from resume_support import run_cli  # noqa: E402
from rnnlab.cli.main import main  # noqa: E402

TINY = [
    "--hidden-size", "16", "--embedding-dim", "8", "--batch-size", "4", "--seq-len", "8",
    "--max-steps", "20", "--eval-every", "10", "--threads", "1",
]  # fmt: skip
TEXT = "Café naïve façade 🙂 déjà vu. Καλημέρα κόσμε! The cat sat on the mat.\n" * 40
NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail"] * 12


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _one_line_error(rc: int, err: str) -> str:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def names_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory: pytest.TempPathFactory, text_file: Path) -> Path:
    out = tmp_path_factory.mktemp("runs") / "torch"
    rc, _, err = run_cli(["train", "lm", "--data", text_file, "--out", out, "--quiet", *TINY])
    assert rc == 0, err
    return out


@pytest.fixture(scope="module")
def numpy_run(tmp_path_factory: pytest.TempPathFactory, text_file: Path) -> Path:
    out = tmp_path_factory.mktemp("runs") / "numpy"
    args = [a for a in TINY if a not in ("--threads", "1")]
    rc, _, err = run_cli(["train", "--engine", "numpy", "--data", text_file, "--out", out, "--quiet", *args])
    assert rc == 0, err
    return out


def test_torch_run_folder(torch_run: Path) -> None:
    names = {p.name for p in torch_run.iterdir()}
    assert {
        "model.safetensors",
        "metrics.jsonl",
        "loss.png",
        "checkpoint.json",
        "train_state.safetensors",
        "best",
    } <= names
    assert (torch_run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = [json.loads(line) for line in (torch_run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in records] == [10, 20]
    for r in records:
        assert all(math.isfinite(r[k]) for k in ("elapsed_s", "train_loss", "val_loss", "lr"))
    assert json.loads((torch_run / "train_config.json").read_text(encoding="utf-8"))["engine"] == "torch"
    best = json.loads((torch_run / "best" / "train_state.json").read_text(encoding="utf-8"))
    assert best["val_loss"] == min(r["val_loss"] for r in records)


@pytest.mark.parametrize("run_name", ["torch_run", "numpy_run"])
def test_sample_is_the_same_on_both_engines(request: pytest.FixtureRequest, run_name: str) -> None:
    run = request.getfixturevalue(run_name)
    args = ["sample", run, "--prime", "The ", "--length", "60", "--seed", "3", "--top-p", "0.9", "--temperature", "0.8"]
    a = run_cli([*args, "--engine", "torch"])
    b = run_cli([*args, "--engine", "numpy"])
    c = run_cli(args)  # the engine that trained it
    assert a[0] == 0, a[2]
    assert a == b == c
    assert a[1].startswith("The ") and len(a[1]) == len("The ") + 60 + 1


def test_sample_several_in_one_batch_and_best(torch_run: Path) -> None:
    rc, out, err = run_cli(["sample", torch_run / "best", "--length", "20", "--num-samples", "4", "--seed", "1"])
    assert rc == 0, err
    assert out.count("--- sample ") == 4


def test_sample_unknown_prime_skip_never_crashes(torch_run: Path) -> None:
    rc, out, err = run_cli(
        ["sample", torch_run, "--prime", "Zebra 日本", "--unknown", "skip", "--length", "5", "--seed", "1"]
    )
    assert rc == 0, err
    assert err.startswith("warning: ") and "U+65E5" in err
    rc, out, err = run_cli(["sample", torch_run, "--prime", "Zebra", "--length", "5"])
    assert "not in the model's vocabulary" in _one_line_error(rc, err) and out == ""


def test_eval_matches_the_last_validation_loss(torch_run: Path, text_file: Path) -> None:
    last = json.loads((torch_run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    rc, out, err = run_cli(["eval", torch_run])
    assert rc == 0, err
    result = json.loads(out)
    assert result["loss"] == pytest.approx(last["val_loss"], rel=1e-6)
    rc, out, _ = run_cli(["eval", torch_run, "--engine", "numpy"])
    assert json.loads(out)["loss"] == pytest.approx(last["val_loss"], rel=1e-5)
    rc, out, err = run_cli(["eval", torch_run, "--data", text_file])
    assert rc == 0, err
    assert json.loads(out)["tokens"] == len(TEXT) - 1


def test_per_line_test_split_and_eval(tmp_path: Path, names_file: Path) -> None:
    out = tmp_path / "names"
    rc, stdout, err = run_cli(
        ["train", "lm", "--per-line", "--data", names_file, "--test-size", "20", "--out", out, "--quiet", *TINY]
    )
    assert rc == 0, err
    record = json.loads(stdout)
    assert math.isfinite(record["test_loss"])
    rc, stdout, err = run_cli(["eval", out, "--split", "test"])
    assert rc == 0, err
    assert json.loads(stdout)["loss"] == pytest.approx(record["test_loss"], rel=1e-6)
    rc, stdout, _ = run_cli(["sample", out, "--num-samples", "5", "--seed", "2"])
    assert rc == 0 and stdout.count("\n") == 5


def test_word_level_language_model(tmp_path: Path, text_file: Path) -> None:
    out = tmp_path / "words"
    rc, stdout, err = run_cli(["train", "lm", "--level", "word", "--data", text_file, "--out", out, "--quiet", *TINY])
    assert rc == 0, err
    vocab = json.loads((out / "vocab.json").read_text(encoding="utf-8"))
    assert vocab["type"] == "word" and "cat" in vocab["tokens"]
    rc, stdout, err = run_cli(["sample", out, "--prime", "The cat", "--length", "12", "--seed", "1"])
    assert rc == 0, err
    assert stdout.startswith("The cat ")
    rc, stdout, err = run_cli(["eval", out])
    assert rc == 0 and json.loads(stdout)["unit"] == "word"
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("zebra quokka the cat\n" * 3, encoding="utf-8")
    rc, stdout, err = run_cli(["eval", out, "--data", foreign])
    assert rc == 0 and err == (  # 12 words (the 3 line ends are tokens, not words)
        f"warning: 6 of the 12 words of {foreign} are not in the run's vocabulary and are scored as <unk>\n"
    )

    # --replacement is a character model's: a word model refuses it rather than ignore it
    line = _one_line_error(
        *run_cli(["sample", out, "--prime", "The zebra", "--unknown", "map", "--replacement", "cat"])[::2]
    )
    assert line.startswith("error: --replacement: a word-level model maps unknown prime words to <unk>")
    # unknown prime words: named as words; skipped, or mapped to <unk>, with a warning
    line = _one_line_error(*run_cli(["sample", out, "--prime", "The zebra cat", "--length", "3"])[::2])
    assert "prime: 1 word(s) not in the model's vocabulary: 'zebra'" in line and "<unk>" in line
    for how, shown in (("skip", "skipped 'zebra'"), ("map", "replaced 'zebra' with '<unk>'")):
        rc, stdout, err = run_cli(["sample", out, "--prime", "The zebra cat", "--length", "3", "--unknown", how])
        assert rc == 0 and err.startswith(f"warning: prime: {shown}"), err
    # padding is never text, however it is drawn
    rc, stdout, err = run_cli(["sample", out, "--length", "200", "--num-samples", "4", "--temperature", "5"])
    assert rc == 0 and "<pad>" not in stdout


def test_tied_weights_and_plateau_schedule(tmp_path: Path, text_file: Path) -> None:
    out = tmp_path / "tied"
    args = ["--tie-weights", "--embedding-dim", "16", "--schedule", "plateau", "--patience", "50"]
    rc, _, err = run_cli(["train", "lm", "--data", text_file, "--out", out, "--quiet", *TINY, *args])
    assert rc == 0, err
    config = json.loads((out / "model_config.json").read_text(encoding="utf-8"))
    assert config["tie_weights"] is True
    assert json.loads((out / "train_config.json").read_text(encoding="utf-8"))["lr_schedule"] == "plateau"


def test_tie_weights_alone_sizes_the_embedding_to_the_hidden_size(tmp_path: Path, text_file: Path) -> None:
    # as in PyTorch's word_language_model, --tie-weights works without also setting the embedding size
    out = tmp_path / "tied_default"
    i = TINY.index("--embedding-dim")
    tiny = TINY[:i] + TINY[i + 2 :]
    rc, _, err = run_cli(
        ["train", "lm", "--level", "word", "--tie-weights", "--data", text_file, "--out", out, "--quiet", *tiny]
    )
    assert rc == 0, err
    config = json.loads((out / "model_config.json").read_text(encoding="utf-8"))
    assert (config["tie_weights"], config["embedding_dim"], config["hidden_size"]) == (True, 16, 16)


def test_toml_options_and_flags_override(tmp_path: Path, text_file: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'data = "{text_file.as_posix()}"\nhidden-size = 12\nembedding_dim = 6\nbatch-size = 4\nseq-len = 8\n'
        'max-steps = 6\neval-every = 3\nthreads = 1\ncell = "gru"\nschedule = "constant"\n',
        encoding="utf-8",
    )
    out = tmp_path / "toml"
    rc, _, err = run_cli(["train", "--config", cfg, "--out", out, "--hidden-size", "10", "--quiet"])
    assert rc == 0, err
    model = json.loads((out / "model_config.json").read_text(encoding="utf-8"))
    train = json.loads((out / "train_config.json").read_text(encoding="utf-8"))
    assert (model["hidden_size"], model["embedding_dim"], model["cell"]) == (10, 6, "gru")
    assert (train["max_steps"], train["lr_schedule"]) == (6, "constant")
    cfg.write_text("hidden_sise = 3\n", encoding="utf-8")
    line = _one_line_error(*run_cli(["train", "--config", cfg, "--out", tmp_path / "x"])[::2])
    assert "hidden_sise" in line and "hidden-size" in line


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "dance"], "unknown task 'dance'"),
        (["train", "--engine", "numpy", "--precision", "fp32"], "torch"),
        (["train", "--engine", "numpy", "--threads", "2"], "torch"),
        (["train", "--device", "tpu"], "device:"),
        (["train", "--device", "cpu", "--precision", "bf16"], "precision:"),
        (["train", "--tie-weights", "--embedding-dim", "16"], "--tie-weights:"),
        (["train", "--data", "x.txt", "--test-size", "5"], "--test-size:"),
        (["eval", "no/such/run"], "checkpoint"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, argv: list[str], needle: str) -> None:
    rc, out, err = run_cli([*argv, *(["--out", tmp_path / "out"] if argv[0] == "train" else [])])
    assert needle in _one_line_error(rc, err)
    assert out == ""
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_eval_data_file_streams_through_a_temporary_token_file(
    torch_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    import tempfile

    import numpy as np

    from rnnlab.training.lm_run import load_run
    from rnnlab.training.lm_task import lm_loss_sums

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    import rnnlab.data.corpus as corpus

    written = []

    def spy(text_path, vocab, out_path, **kw):
        written.append(Path(out_path))
        return encode(text_path, vocab, out_path, **kw)

    encode = corpus.encode_to_memmap
    monkeypatch.setattr(corpus, "encode_to_memmap", spy)
    part = TEXT[: len(TEXT) // 3]
    path = tmp_path / "part.txt"
    path.write_text(part, encoding="utf-8")
    rc, out, err = run_cli(["eval", torch_run, "--data", path, "--engine", engine, "--batch-size", "3"])
    assert rc == 0, err
    result = json.loads(out)
    loaded = load_run(torch_run, "torch")
    total, count = lm_loss_sums(loaded.model, np.array(loaded.vocab.encode(part)), batch_size=3)
    assert result["tokens"] == count == len(part) - 1
    assert result["loss"] == pytest.approx(total / count, rel=1e-6 if engine == "torch" else 1e-5)
    assert len(written) == 1 and written[0].parent.parent == scratch  # encoded to a file, not in memory
    assert list(scratch.iterdir()) == []  # the token file went with its temporary folder

    path.write_text("The cat sat.\nThe dog sat.\n", encoding="utf-8")  # TEXT has no 'g'
    line = _one_line_error(*run_cli(["eval", torch_run, "--data", path, "--engine", engine])[::2])
    assert "'g' (U+0067)" in line and "line 2" in line, line
    assert list(scratch.iterdir()) == []


def test_a_new_run_refuses_a_run_folder_unless_told_to_overwrite(tmp_path: Path, text_file: Path) -> None:
    out = tmp_path / "run"
    assert run_cli(["train", "lm", "--data", text_file, "--out", out, "--quiet", *TINY])[0] == 0
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    line = _one_line_error(*run_cli(["train", "lm", "--data", text_file, "--out", out, *TINY])[::2])
    assert f"out: {out} already holds a run" in line and "--resume" in line and "--overwrite" in line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before

    # replaced by a NumPy-engine run: nothing of the earlier run is left to be mistaken for the new one's
    numpy_args = ["--hidden-size", "8", "--embedding-dim", "8", "--batch-size", "4", "--seq-len", "8"]
    argv = ["train", "--engine", "numpy", "--data", text_file, "--out", out, "--quiet", "--overwrite", *numpy_args]
    rc, _, err = run_cli([*argv, "--max-steps", "3", "--eval-every", "3"])
    assert rc == 0, err
    assert json.loads((out / "train_config.json").read_text(encoding="utf-8"))["engine"] == "numpy"
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [3]
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"  # not the run's: left alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the earlier run's files are gone


def test_resume_with_another_task_is_one_line(tmp_path: Path, text_file: Path) -> None:
    out = tmp_path / "run"
    assert run_cli(["train", "lm", "--data", text_file, "--out", out, "--quiet", *TINY])[0] == 0
    line = _one_line_error(*run_cli(["train", "classify", "--resume", out])[::2])
    assert "was trained by `rnnlab train lm`, not `rnnlab train classify`" in line


def test_a_bad_option_value_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "classify", "--data", "x.tsv", "--max-steps", "abc"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "error: rnnlab train classify: argument --max-steps: invalid int value: 'abc' "
        "(see rnnlab train classify --help)"
    ]


def test_quiet_from_the_toml_file(tmp_path: Path, text_file: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text("quiet = true\n", encoding="utf-8")
    rc, out, err = run_cli(["train", "lm", "--data", text_file, "--out", tmp_path / "r", "--config", cfg, *TINY])
    assert rc == 0 and err == ""
    assert json.loads(out)["step"] == 20


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "cuda:99"], "device: 'cuda"),
        (["--device", "bogus"], "device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'bogus'"),
        (["--seed", "-1"], "seed: expected an integer >= 0"),
        (["--prime-file", "no/such.txt"], "prime-file: file not found: no/such.txt"),
    ],
)
def test_sample_and_eval_bad_options_are_one_line(torch_run: Path, argv: list[str], needle: str) -> None:
    assert needle in _one_line_error(*run_cli(["sample", torch_run, *argv])[::2])
    if argv[0] == "--device":
        assert needle in _one_line_error(*run_cli(["eval", torch_run, *argv])[::2])


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('per_line = "false"', "config: per_line in {cfg}: expected true or false, got 'false'"),
        ('hidden-size = "big"', "config: hidden-size in {cfg}: expected an integer, got 'big'"),
        ('cell = "gruu"', "config: cell in {cfg}: expected one of ['rnn', 'lstm', 'gru'], got 'gruu'"),
        ("lr = true", "config: lr in {cfg}: expected a number, got True"),
    ],
)
def test_toml_values_have_the_flags_types(tmp_path: Path, toml: str, needle: str) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text(toml + "\n", encoding="utf-8")
    assert needle.format(cfg=cfg) in _one_line_error(*run_cli(["train", "--config", cfg, "--out", tmp_path / "r"])[::2])
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_out_that_cannot_be_a_run_folder_is_one_line(tmp_path: Path, text_file: Path, engine: str) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("mine", encoding="utf-8")
    argv = ["train", "--engine", engine, "--data", text_file, *TINY[:-2]]  # no --threads: numpy has none
    assert f"out: expected a folder for the run, got the file {a_file}" in _one_line_error(
        *run_cli([*argv, "--out", a_file])[::2]
    )
    assert a_file.read_text(encoding="utf-8") == "mine"
    line = _one_line_error(*run_cli([*argv, "--out", a_file / "run"])[::2])
    assert line.startswith(f"error: out: cannot create the run folder {a_file / 'run'}")


def test_resume_says_where_it_starts_and_when_nothing_is_left(tmp_path: Path, text_file: Path) -> None:
    out = tmp_path / "run"
    assert run_cli(["train", "lm", "--data", text_file, "--out", out, "--quiet", *TINY])[0] == 0
    rc, stdout, err = run_cli(["train", "--resume", out, "--max-steps", "10"])
    assert rc == 0 and json.loads(stdout)["step"] == 20
    assert err.splitlines()[:2] == [
        f"resuming {out} at step 20 (torch engine)",
        "note: the run has already reached --max-steps 10; nothing to train (give a larger budget)",
    ]


def test_what_a_run_stopped_before_its_first_checkpoint_left_is_not_a_run(tmp_path: Path, text_file: Path) -> None:
    out = tmp_path / "run"
    (out / "data").mkdir(parents=True)  # all that a run interrupted while building its data leaves
    rc, _, err = run_cli(["train", "lm", "--data", text_file, "--out", out, "--quiet", *TINY])
    assert rc == 0, err


def test_overwrite_of_the_current_folder_sets_the_old_run_aside_beside_it(
    tmp_path: Path, text_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert run_cli(["train", "lm", "--data", text_file, "--out", ".", "--quiet", *TINY])[0] == 0
    assert run_cli(["train", "lm", "--data", text_file, "--out", ".", "--quiet", "--overwrite", *TINY])[0] == 0
    assert not [p for p in [*here.iterdir(), *tmp_path.iterdir()] if ".replaced-" in p.name]


def test_a_failed_new_run_leaves_no_folders_it_made(tmp_path: Path, text_file: Path) -> None:
    rc, _, err = run_cli(
        ["train", "lm", "--data", text_file, "--out", tmp_path / "a" / "b", *TINY, "--seq-len", "9999"]
    )
    assert rc == 2, err
    assert not (tmp_path / "a").exists()


def test_sigterm_during_overwrite_puts_the_earlier_run_back(tmp_path: Path, text_file: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    assert run_cli(["train", "lm", "--data", text_file, "--out", out, "--quiet", *TINY])[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    argv = ["train", "lm", "--data", str(text_file), "--out", str(out), "--overwrite", "--quiet", *TINY]
    argv += ["--max-steps", "10000000", "--eval-every", "10000000"]  # never a checkpoint before the signal
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab", *argv], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(".replaced-" in p.name for p in tmp_path.iterdir()):  # the earlier run is set aside
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    time.sleep(1.0)  # training now
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if ".replaced-" in p.name]


def test_options_that_do_not_fit_the_engine_or_the_run(tmp_path: Path, numpy_run: Path, text_file: Path) -> None:
    line = _one_line_error(*run_cli(["sample", numpy_run, "--engine", "numpy", "--device", "cuda"])[::2])
    assert "--device: is for --engine torch" in line
    cfg = tmp_path / "c.toml"
    cfg.write_text("out = 9\n", encoding="utf-8")
    line = _one_line_error(*run_cli(["train", "--data", text_file, "--config", cfg])[::2])
    assert line == f"error: config: out in {cfg}: expected a string, got 9"
