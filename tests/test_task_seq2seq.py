"""Tests of `rnnlab train seq2seq`: the attention model, learning to reverse, eval, sample, every user error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rnnlab.cli.main import main
from rnnlab.cli.tasks import load_task_run
from rnnlab.torch.heads import Seq2Seq, Seq2SeqConfig
from rnnlab.training.checkpoint import load_checkpoint
from task_support import assert_one_error_line, cli, one_thread  # noqa: F401 (one_thread: autouse)

TINY = ["--hidden-size", "32", "--embedding-dim", "16", "--batch-size", "32", "--threads", "1", "--quiet"]
REVERSE = ["--data", "reverse", "--num-train", "3000", "--num-val", "200", "--max-length", "5"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model trained for a few hundred steps to reverse digit strings of length 1-5."""
    out = tmp_path_factory.mktemp("runs") / "reverse"
    argv = [
        "train",
        "seq2seq",
        *REVERSE,
        "--out",
        out,
        "--max-steps",
        "250",
        "--eval-every",
        "250",
        "--lr",
        "1e-2",
        "--warmup-steps",
        "10",
        *TINY,
    ]
    assert main([str(a) for a in argv]) == 0
    return out


# ---------------------------------------------------------------------------------------------
# the model


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ["general", "dot"])
def test_source_padding_never_changes_the_output(cell, attention):
    torch.manual_seed(0)
    config = Seq2SeqConfig(
        src_vocab_size=12,
        tgt_vocab_size=12,
        cell=cell,
        attention=attention,
        hidden_size=8,
        embedding_dim=4,
        num_layers=2,
        dropout=0.0,
    )
    model = Seq2Seq(config).eval()
    src, tgt = torch.randint(4, 12, (1, 3)), torch.tensor([[1, 5, 6, 7]])
    alone = model(src, torch.tensor([3]), tgt)[0]
    batch = torch.randint(4, 12, (2, 15))  # a long neighbour, garbage after the short source
    batch[1, :3] = src[0]
    in_batch = model(batch, torch.tensor([15, 3]), tgt.expand(2, 4))[1]
    torch.testing.assert_close(in_batch, alone, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------
# learning, eval, sample


def test_training_improves_exact_match_over_an_untrained_model(run, capsys):
    task, model = load_task_run(run)  # the run's own validation pairs
    trained = task.summarize(task.eval_sums(model, "val"))
    untrained = task.summarize(task.eval_sums(task.build_model(0).eval(), "val"))
    assert untrained["exact_match"] < 0.1
    assert trained["exact_match"] > 0.5 and trained["exact_match"] > untrained["exact_match"] + 0.4, (
        trained,
        untrained,
    )
    assert trained["token_accuracy"] > untrained["token_accuracy"]
    rc, out, _ = cli(capsys, "eval", run)
    assert rc == 0 and json.loads(out)["exact_match"] == pytest.approx(trained["exact_match"])


def test_sample_decodes_with_greedy_and_beam_search(run, tmp_path, capsys):
    rc, greedy, _ = cli(capsys, "sample", run, "--input", "3 1 2")
    assert rc == 0 and greedy.strip() == "2 1 3"
    rc, beam, _ = cli(capsys, "sample", run, "--input", "3 1 2", "--beam-size", "4")
    assert rc == 0 and beam == greedy
    rc, out, _ = cli(capsys, "sample", run, "--input", "4711", "--beam-size", "3", "--n-best", "3")
    rows = [line.split("\t") for line in out.splitlines()]
    assert rc == 0 and [r[0] for r in rows] == ["1", "2", "3"] and rows[0][2] == "1174"
    sources = tmp_path / "sources.txt"
    sources.write_text("12\n987\n\n", encoding="utf-8")
    rc, out, _ = cli(capsys, "sample", run, "--input-file", sources, "--beam-size", "2")
    assert rc == 0 and out.split() == ["21", "789"]
    rc, _, err = cli(capsys, "sample", run, "--input", "3x1")
    assert rc == 0 and "warning" in err and "'x'" in err


def test_tsv_pairs_word_level_and_resume_file(tmp_path, capsys):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(
        "".join(f"go {w}\t{w} went\n" for w in ["home", "away", "out", "up", "down", "in"] * 5), encoding="utf-8"
    )
    rc, out, err = cli(
        capsys,
        "train",
        "seq2seq",
        "--data",
        pairs,
        "--level",
        "word",
        "--out",
        tmp_path / "r",
        "--max-steps",
        "4",
        "--eval-every",
        "2",
        *TINY,
    )
    assert rc == 0, err
    ckpt = load_checkpoint(tmp_path / "r")
    assert ckpt.configs["vocab"]["level"] == "word" and "went" in ckpt.configs["target_vocab"]["tokens"]
    rc, out, _ = cli(capsys, "eval", tmp_path / "r", "--data", pairs)
    assert rc == 0 and json.loads(out)["examples"] == 30
    other = tmp_path / "other.tsv"
    other.write_text("go home\thome flew\n", encoding="utf-8")
    rc, out, err = cli(capsys, "eval", tmp_path / "r", "--data", other)  # words it never saw: said, not hidden
    assert rc == 0 and json.loads(out)["examples"] == 1
    assert err == f"warning: 1 target token(s) of {other} not in the run's vocabulary, scored as <unk>: 'flew'\n"
    rc, _, err = cli(capsys, "train", "seq2seq", "--resume", tmp_path / "r", "--max-steps", "6", "--quiet")
    assert rc == 0, err


# ---------------------------------------------------------------------------------------------
# user errors


def test_empty_file(tmp_path, capsys):
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    rc, _, err = cli(capsys, "train", "seq2seq", "--data", empty, "--out", tmp_path / "r", *TINY)
    assert rc == 2
    assert_one_error_line(err, "empty", "empty.tsv")


def test_wrong_column_count_names_the_line(tmp_path, capsys):
    bad = tmp_path / "pairs.tsv"
    bad.write_text("abc\tcba\nxy\tyx\textra\n", encoding="utf-8")
    rc, _, err = cli(capsys, "train", "seq2seq", "--data", bad, "--out", tmp_path / "r", *TINY)
    assert rc == 2
    assert_one_error_line(err, "pairs.tsv line 2", "expected 2 tab-separated columns", "got 3")


def test_no_data_or_missing_file(tmp_path, capsys):
    rc, _, err = cli(capsys, "train", "seq2seq", "--out", tmp_path / "r", *TINY)
    assert rc == 2
    assert_one_error_line(err, "--data is required", "reverse")
    rc, _, err = cli(capsys, "train", "seq2seq", "--data", tmp_path / "nope.tsv", "--out", tmp_path / "r", *TINY)
    assert rc == 2
    assert_one_error_line(err, "file not found", "nope.tsv")


def test_bad_decoding_options(run, capsys):
    for argv, fragment in [
        (["--beam-size", "0"], "--beam-size"),
        (["--beam-size", "2", "--n-best", "3"], "--n-best"),
        (["--length-penalty", "-1"], "--length-penalty"),
        (["--temperature", "0.5"], "--temperature: does not apply to a seq2seq run (it is for language-model runs)"),
        (["--horizon", "3"], "--horizon: does not apply to a seq2seq run (it is for forecast runs)"),
    ]:
        rc, _, err = cli(capsys, "sample", run, "--input", "12", *argv)
        assert rc == 2
        assert_one_error_line(err, fragment)


def test_diverging_run_exits_1_and_keeps_the_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    common = [*REVERSE, "--out", out, *TINY]
    assert cli(capsys, "train", "seq2seq", *common, "--max-steps", "2", "--eval-every", "2")[0] == 0
    before = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    rc, _, err = cli(
        capsys,
        "train",
        "seq2seq",
        *common,
        "--overwrite",  # replaces the earlier run only once it has a checkpoint of its own
        "--lr",
        "1e30",
        "--optimizer",
        "sgd",
        "--warmup-steps",
        "0",
        "--max-steps",
        "20",
        "--eval-every",
        "10",
    )
    assert rc == 1
    assert_one_error_line(err, "became", "kept")
    assert {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_decoding_never_outputs_padding_or_the_start_token(run, monkeypatch):
    import rnnlab.training.seq2seq_task as s2s
    from rnnlab.cli.tasks import load_task_run

    task, model = load_task_run(run, load_data=False)
    c = task.model_config
    real = s2s.Seq2SeqStepper

    class PadLoving(real):  # an untrained decoder that likes <pad> and <bos> best
        def step(self, tokens, state):
            logits, state = super().step(tokens, state)
            logits = logits.clone()
            logits[:, c.pad_id] = 1e4
            logits[:, c.bos_id] = 1e4
            return logits, state

    monkeypatch.setattr(s2s, "Seq2SeqStepper", PadLoving)
    for beam in (1, 3):
        for hyps in task.translate(model, ["1 2 3"], beam_size=beam, n_best=beam):
            assert all("<pad>" not in text and "<bos>" not in text for text, _ in hyps)


def test_outputs_longer_than_twice_the_source_are_not_cut(tmp_path, capsys):
    # one letter in, sixteen characters out: 2·len + 10 = 12 tokens would cut every output
    data = tmp_path / "expand.tsv"
    data.write_text("".join(f"{c}\t{c}0123456789ABCDE\n" for _ in range(10) for c in "abcd"), encoding="utf-8")
    out = tmp_path / "r"
    rc, _, err = cli(capsys, "train", "seq2seq", "--data", data, "--out", out, "--max-steps", "2", *TINY)
    assert rc == 0, err
    task, model = load_task_run(out, load_data=True)
    assert task.model_config.longest_target == 16  # saved with the run

    import rnnlab.training.seq2seq_task as s2s

    class NeverEnds(s2s.Seq2SeqStepper):  # a decoder that never writes <eos>: it runs to the limit
        def step(self, tokens, state):
            logits, state = super().step(tokens, state)
            logits = logits.clone()
            logits[:, task.model_config.eos_id] = -1e4
            return logits, state

    real = s2s.Seq2SeqStepper
    s2s.Seq2SeqStepper = NeverEnds
    try:
        src, lengths = torch.tensor([[task.src_vocab.stoi["a"]]]), torch.tensor([1])
        (hyp,) = task.decode(model, src, lengths)[0]
        assert len(hyp.tokens) == s2s.decode_limit(1, 16) == 27
        # scoring lets a decoder run as long as the reference, whatever the limit says
        batch = task.make_batch("val", [0])
        calls = []
        decode = task.decode
        task.decode = lambda *a, **k: calls.append(k["max_len"]) or decode(*a, **k)
        task.batch_sums(model, batch)
        assert calls == [[27]]
    finally:
        s2s.Seq2SeqStepper = real


def test_a_reference_unk_never_counts_as_right(run):
    task, model = load_task_run(run, load_data=True)
    batch = task.make_batch("val", list(range(8)))
    unk = task.tgt_vocab.unk_id
    with torch.no_grad():
        model.head.bias[unk] = 1e4  # the model now writes <unk> everywhere
        sums = task.batch_sums(model, batch)
        batch["tgt_out"][batch["tgt_out"] != task.model_config.pad_id] = unk  # ... and so does the reference
        sums_unk = task.batch_sums(model, batch)
    assert sums["correct"] == 0 and sums["exact"] == 0
    assert sums_unk["correct"] == 0 and sums_unk["exact"] == 0


def test_a_run_keeps_its_synthetic_task(run, tmp_path, capsys, monkeypatch):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    rc, _, err = cli(capsys, "train", "seq2seq", "--resume", copy, "--data", "sort", "--max-steps", "260")
    assert rc == 2
    assert_one_error_line(err, "data: the run was trained on the synthetic 'reverse' task", "'sort'")
    # a file called "reverse" in the current folder does not turn the run's own split into that file
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reverse").write_text("a\tb\n" * 30, encoding="utf-8")
    rc, stdout, err = cli(capsys, "eval", run)
    assert rc == 0, err
    record = json.loads(stdout)
    assert record["examples"] == 200 and "synthetic 'reverse' task" in record["data"]


@pytest.mark.parametrize(
    ("data", "argv", "message"),
    [
        (
            "pairs",
            ["--alphabet", "letters"],
            "--alphabet: applies to the synthetic tasks (--data reverse or sort), not to the file",
        ),
        ("pairs", ["--num-train", "5"], "--num-train: applies to the synthetic tasks"),
        (
            "reverse",
            ["--level", "word"],
            "--level: the synthetic 'reverse' task is made of characters, got --level word",
        ),
        ("reverse", ["--val-fraction", "0.2"], "--val-fraction: applies to a file of pairs"),
    ],
)
def test_data_options_that_do_not_apply_are_refused(tmp_path, capsys, data, argv, message):
    if data == "pairs":
        data = tmp_path / "pairs.tsv"
        data.write_text("ab\tba\ncd\tdc\n" * 20, encoding="utf-8")
    rc, _, err = cli(capsys, "train", "seq2seq", "--data", data, *argv, "--out", tmp_path / "r", *TINY)
    assert rc == 2
    assert_one_error_line(err, message)
    assert not (tmp_path / "r").exists()


def test_a_run_saved_before_longest_target_still_resumes(run, tmp_path, capsys):
    import hashlib
    import shutil

    old = tmp_path / "old"
    shutil.copytree(run, old)
    config = json.loads((old / "model_config.json").read_text(encoding="utf-8"))
    del config["longest_target"]
    raw = json.dumps(config, indent=2).encode("utf-8")
    (old / "model_config.json").write_bytes(raw)
    manifest = json.loads((old / "checkpoint.json").read_text(encoding="utf-8"))
    manifest["files"]["model_config.json"] = {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}
    (old / "checkpoint.json").write_text(json.dumps(manifest), encoding="utf-8")
    rc, stdout, err = cli(capsys, "train", "--resume", old, "--max-steps", "255")
    assert rc == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["step"] == 255
