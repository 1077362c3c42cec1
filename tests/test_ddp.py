"""Data parallel training under torchrun: 2 CPU processes (gloo) follow the 1-process loss curve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover - builds without distributed support
    pytest.skip("torch.distributed is not available in this PyTorch build", allow_module_level=True)

TEXT = "It was the best of times, it was the worst of times, it was the age of wisdom. " * 40


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _args(data: Path, out: Path) -> list[str]:
    # dropout off: each process has its own dropout generator, so only the deterministic parts can match
    return [
        "train", "lm", "--data", str(data), "--out", str(out), "--device", "cpu", "--threads", "1",
        "--max-steps", "8", "--eval-every", "2", "--batch-size", "8", "--seq-len", "16", "--hidden-size", "32",
        "--embedding-dim", "16", "--layers", "2", "--dropout", "0", "--state-reset-prob", "0.2", "--lr", "0.005",
        "--warmup-steps", "2", "--seed", "4", "--quiet",
    ]  # fmt: skip


def _curve(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def test_two_processes_match_one_with_the_same_global_batch(tmp_path: Path) -> None:
    data = tmp_path / "dickens.txt"
    data.write_text(TEXT, encoding="utf-8")
    one, two = tmp_path / "one", tmp_path / "two"
    single = subprocess.run(
        [sys.executable, "-m", "rnnlab", *_args(data, one)], capture_output=True, text=True, env=_env(), timeout=240
    )
    assert single.returncode == 0, single.stderr
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "rnnlab"]
    ddp = subprocess.run([*launcher, *_args(data, two)], capture_output=True, text=True, env=_env(), timeout=240)
    assert ddp.returncode == 0, ddp.stderr[-3000:]

    # rank 0 alone wrote the run folder and printed the result, once
    assert ddp.stdout.count('"run"') == 1
    # one token file and split, written by rank 0 and mapped by both ranks: the single process's
    for name in ("tokens.bin", "tokens.bin.json", "split.json"):
        assert (two / "data" / name).read_bytes() == (one / "data" / name).read_bytes(), name
    assert json.loads(ddp.stdout.strip().splitlines()[-1])["step"] == 8
    a, b = _curve(one), _curve(two)
    assert [r["step"] for r in a] == [r["step"] for r in b] == [2, 4, 6, 8]
    for ra, rb in zip(a, b, strict=True):
        for key in ("train_loss", "val_loss"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-5, abs=1e-6), (ra["step"], key)
    state = json.loads((two / "train_state.json").read_text(encoding="utf-8"))
    assert state["world_size"] == 2 and state["step"] == 8
    # the gathered carried state covers the whole global batch
    from rnnlab.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(two)
    assert ckpt.extra_tensors is not None
    assert ckpt.extra_tensors["carry.0"].shape == (2, 8, 32)
    assert "rng.torch_cpu.rank1" in ckpt.extra_tensors
    w1 = load_checkpoint(one).weights
    for name, value in ckpt.weights.items():
        np.testing.assert_allclose(value, w1[name], rtol=0, atol=1e-4, err_msg=name)


def _toy_conllu(n: int, seed: int) -> str:
    """n sentences of 2 to 12 words (so the two ranks' halves of a batch hold different numbers of tokens)."""
    rng = np.random.default_rng(seed)
    lexicon = {"DET": ["the", "a"], "NOUN": ["cat", "dog", "tree"], "VERB": ["sees", "likes"], "ADJ": ["big", "red"]}
    tags = list(lexicon)
    blocks = []
    for s in range(n):
        lines = [f"# sent_id = {s}"]
        for i in range(int(rng.integers(2, 13))):
            tag = tags[int(rng.integers(len(tags)))]
            word = lexicon[tag][int(rng.integers(len(lexicon[tag])))]
            lines.append(f"{i + 1}\t{word}\t{word}\t{tag}\t_\t_\t0\t_\t_\t_")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n\n"


def _task_args(task: str, tmp_path: Path) -> list[str]:
    if task == "tag":
        train, dev = tmp_path / "train.conllu", tmp_path / "dev.conllu"
        train.write_text(_toy_conllu(60, 0), encoding="utf-8")
        dev.write_text(_toy_conllu(12, 1), encoding="utf-8")
        # word dropout on: its masks are drawn per sentence, so they do not depend on the rank either
        extra = [
            "--data",
            str(train),
            "--val",
            str(dev),
            "--word-dropout",
            "0.2",
            "--char-dim",
            "8",
            "--char-hidden",
            "8",
        ]
    else:
        extra = ["--data", "reverse", "--num-train", "200", "--num-val", "40", "--max-length", "9"]
    return [
        "train", task, *extra, "--device", "cpu", "--threads", "1", "--max-steps", "6", "--eval-every", "3",
        "--batch-size", "8", "--hidden-size", "16", "--embedding-dim", "8", "--dropout", "0", "--seed", "3", "--quiet",
    ]  # fmt: skip


@pytest.mark.parametrize("task", ["tag", "seq2seq"])
def test_padded_tasks_weight_each_rank_by_its_tokens(task: str, tmp_path: Path) -> None:
    """The ranks' halves of a padded batch hold different numbers of tokens: the loss is still the
    mean over the global batch's tokens, as in one process (not the mean of the two ranks' means)."""
    args = _task_args(task, tmp_path)
    one = subprocess.run(
        [sys.executable, "-m", "rnnlab", *args, "--out", str(tmp_path / "one")],
        capture_output=True, text=True, env=_env(), timeout=240,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "rnnlab"]
    two = subprocess.run(
        [*launcher, *args, "--out", str(tmp_path / "two")], capture_output=True, text=True, env=_env(), timeout=240
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _curve(tmp_path / "one"), _curve(tmp_path / "two")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [3, 6]
    for ra, rb in zip(a, b, strict=True):
        for key in ("train_loss", "val_loss"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-5), (ra["step"], key)
    from rnnlab.training.checkpoint import load_checkpoint

    # each rank draws its dropout masks from its own torch stream (build_model's seeding is undone)
    extra = load_checkpoint(tmp_path / "two").extra_tensors
    assert not np.array_equal(extra["rng.torch_cpu.rank0"], extra["rng.torch_cpu.rank1"])
