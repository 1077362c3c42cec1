"""Tests of `rnnlab train tag`: the tagger model, training on CoNLL-U, eval, sample, every user error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.cli.main import main
from rnnlab.torch.heads import Tagger, TaggerConfig
from rnnlab.training.checkpoint import load_checkpoint
from task_support import assert_one_error_line, cli, one_thread  # noqa: F401 (one_thread: autouse)

TINY = [
    "--hidden-size",
    "16",
    "--embedding-dim",
    "8",
    "--char-dim",
    "8",
    "--char-hidden",
    "8",
    "--batch-size",
    "8",
    "--threads",
    "1",
    "--quiet",
]
EWT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud-en-ewt"

# a toy language whose tag follows from the word (and, for unseen words, from the spelling)
LEXICON = {
    "DET": ["the", "a", "every"],
    "NOUN": ["cat", "dog", "bird", "house", "tree"],
    "VERB": ["sees", "likes", "finds"],
    "ADJ": ["big", "small", "red"],
    "PUNCT": [".", "!"],
}
XPOS = {"DET": "DT", "NOUN": "NN", "VERB": "VBZ", "ADJ": "JJ", "PUNCT": "."}


def conllu(sentences: list[list[tuple[str, str]]]) -> str:
    out = []
    for k, sent in enumerate(sentences):
        out.append(f"# sent_id = {k}")
        out.append(f"# text = {' '.join(w for w, _ in sent)}")
        for i, (word, tag) in enumerate(sent, start=1):
            out.append(f"{i}\t{word}\t{word.lower()}\t{tag}\t{XPOS.get(tag, tag)}\t_\t0\tdep\t_\t_")
        out.append("")
    return "\n".join(out) + "\n"


def toy_sentences(n: int, seed: int) -> list[list[tuple[str, str]]]:
    rng = np.random.default_rng(seed)
    pattern = ["DET", "ADJ", "NOUN", "VERB", "DET", "NOUN", "PUNCT"]
    sents = []
    for _ in range(n):
        tags = [t for t in pattern if t != "ADJ" or rng.random() < 0.5]
        sents.append([(str(rng.choice(LEXICON[t])), t) for t in tags])
    return sents


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("ud")
    train, dev = d / "train.conllu", d / "dev.conllu"
    train.write_text(conllu(toy_sentences(150, 0)), encoding="utf-8")
    dev.write_text(conllu(toy_sentences(30, 1)), encoding="utf-8")
    return train, dev


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, files: tuple[Path, Path]) -> Path:
    train, dev = files
    out = tmp_path_factory.mktemp("runs") / "tag"
    argv = [
        "train",
        "tag",
        "--data",
        train,
        "--val",
        dev,
        "--out",
        out,
        "--max-steps",
        "120",
        "--eval-every",
        "120",
        "--lr",
        "1e-2",
        "--warmup-steps",
        "5",
        *TINY,
    ]
    assert main([str(a) for a in argv]) == 0
    return out


# ---------------------------------------------------------------------------------------------
# the model


@pytest.mark.parametrize("chars", [True, False])
def test_tagger_padding_never_changes_a_prediction(chars):
    torch.manual_seed(0)
    config = TaggerConfig(
        vocab_size=30,
        num_tags=5,
        char_vocab_size=20 if chars else 0,
        embedding_dim=8,
        char_dim=4,
        char_hidden=6,
        hidden_size=8,
        num_layers=2,
        dropout=0.0,
    )
    model = Tagger(config).eval()
    words = torch.randint(2, 30, (1, 4))
    chars_alone = torch.randint(2, 20, (1, 4, 3))
    char_lens = torch.tensor([[3, 1, 2, 3]])
    alone = model(words, torch.tensor([4]), chars_alone if chars else None, char_lens if chars else None)[0]
    B, T, C = 3, 12, 9  # longer sentences and longer words around it, garbage in the padding
    bw = torch.randint(2, 30, (B, T))
    bc = torch.randint(2, 20, (B, T, C))
    bcl = torch.randint(1, C + 1, (B, T))
    bw[1, :4], bc[1, :4, :3], bcl[1, :4] = words[0], chars_alone[0], char_lens[0]
    bcl[1, 4:] = 0
    in_batch = model(bw, torch.tensor([12, 4, 9]), bc if chars else None, bcl if chars else None)[1, :4]
    torch.testing.assert_close(in_batch, alone, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------
# training, eval, sample


def test_train_eval_sample(run, files, capsys):
    ckpt = load_checkpoint(run)
    assert {"vocab", "labels", "char_vocab", "task_options"} <= set(ckpt.configs)
    assert ckpt.configs["labels"]["labels"] == ["ADJ", "DET", "NOUN", "PUNCT", "VERB"]
    rc, out, _ = cli(capsys, "eval", run)
    record = json.loads(out)
    assert rc == 0 and record["task"] == "tag" and record["accuracy"] > 0.9, record
    rc, out, _ = cli(capsys, "eval", run, "--data", files[0])
    assert rc == 0 and json.loads(out)["examples"] == 150
    rc, out, _ = cli(capsys, "sample", run, "--input", "the big dog finds a cat .")
    assert rc == 0
    assert out.split() == ["the/DET", "big/ADJ", "dog/NOUN", "finds/VERB", "a/DET", "cat/NOUN", "./PUNCT"]


def test_xpos_column_held_out_split_no_chars(tmp_path, files, capsys):
    rc, _, err = cli(
        capsys,
        "train",
        "tag",
        "--data",
        files[0],
        "--column",
        "xpos",
        "--no-chars",
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
    assert "char_vocab" not in ckpt.configs and "NN" in ckpt.configs["labels"]["labels"]
    rc, out, _ = cli(capsys, "eval", tmp_path / "r")
    assert rc == 0 and "held out" in out


@pytest.mark.skipif(not EWT.is_dir(), reason="../shared/data/ud-en-ewt is not there")
def test_learns_upos_on_ud_english_ewt(tmp_path, capsys):
    # a short run on the real treebank's dev file (2,000 sentences, a fifth held out; the full
    # train/dev measurement is in the report): far above the 17% of always guessing NOUN
    rc, out, err = cli(
        capsys,
        "train",
        "tag",
        "--data",
        EWT / "en_ewt-ud-dev.conllu",
        "--val-fraction",
        "0.2",
        "--out",
        tmp_path / "ewt",
        "--max-steps",
        "60",
        "--eval-every",
        "60",
        "--batch-size",
        "32",
        "--hidden-size",
        "32",
        "--char-hidden",
        "16",
        "--embedding-dim",
        "32",
        "--lr",
        "1e-2",
        "--warmup-steps",
        "5",
        "--threads",
        "1",
        "--quiet",
    )
    assert rc == 0, err
    assert json.loads(out)["val_accuracy"] > 0.45


# ---------------------------------------------------------------------------------------------
# user errors


def test_empty_file(tmp_path, capsys):
    empty = tmp_path / "empty.conllu"
    empty.write_text("")
    rc, _, err = cli(capsys, "train", "tag", "--data", empty, "--out", tmp_path / "r", *TINY)
    assert rc == 2
    assert_one_error_line(err, "empty", "empty.conllu")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("3\tdog\tdog\tNOUN\tNN\t_\t0\tdep\t_", "line 5: expected 10 tab-separated columns, got 9"),
        ("4\tdog\tdog\tNOUN\tNN\t_\t0\tdep\t_\t_", "line 5: expected word ID 3, got '4'"),
        ("3\tdog\tdog\t_\tNN\t_\t0\tdep\t_\t_", "line 5: no UPOS tag"),
    ],
)
def test_conllu_syntax_error_names_the_line(tmp_path, capsys, line, message):
    bad = tmp_path / "bad.conllu"
    bad.write_text(
        "# text = the big dog\n"
        "1\tthe\tthe\tDET\tDT\t_\t0\tdep\t_\t_\n"
        "2\tbig\tbig\tADJ\tJJ\t_\t0\tdep\t_\t_\n"
        "# a comment\n"
        f"{line}\n",
        encoding="utf-8",
    )
    rc, _, err = cli(capsys, "train", "tag", "--data", bad, "--out", tmp_path / "r", *TINY)
    assert rc == 2
    assert_one_error_line(err, "bad.conllu", message)


def test_unknown_tag_at_evaluation_names_tag_and_line(tmp_path, files, run, capsys):
    dev = tmp_path / "dev.conllu"
    dev.write_text(conllu([[("the", "DET"), ("cat", "NOUN")], [("hello", "INTJ")]]), encoding="utf-8")
    rc, _, err = cli(capsys, "train", "tag", "--data", files[0], "--val", dev, "--out", tmp_path / "r", *TINY)
    assert rc == 2
    assert_one_error_line(err, "dev.conllu line 8", "unknown tag 'INTJ'")
    rc, _, err = cli(capsys, "eval", run, "--data", dev)
    assert rc == 2
    assert_one_error_line(err, "dev.conllu line 8", "unknown tag 'INTJ'")


def test_diverging_run_exits_1_and_keeps_the_good_checkpoint(tmp_path, files, capsys):
    out = tmp_path / "run"
    assert (
        cli(capsys, "train", "tag", "--data", files[0], "--out", out, "--max-steps", "2", "--eval-every", "2", *TINY)[0]
        == 0
    )
    before = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    rc, _, err = cli(
        capsys,
        "train",
        "tag",
        "--data",
        files[0],
        "--out",
        out,
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
        *TINY,
    )
    assert rc == 1
    assert_one_error_line(err, "became", "kept")
    assert {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
