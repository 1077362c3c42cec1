"""The language-model task of the torch trainer: characters or words, running text or one item per line.

Its data (splits, memory-mapped token files, the run's `data/` folder) come from
`rnnlab.training.lm_data`, and a trained run folder is loaded by `rnnlab.training.lm_run`; both
work without torch, so the NumPy engine's runs can be sampled and scored on a machine without it.

Training is char-rnn's stateful truncated BPTT: B parallel streams through the corpus, T tokens
per step, the recurrent state carried across steps (and zeroed at random with
`state_reset_prob`, so that the model also learns to start from nothing, as sampling does).
Evaluation scores every next-token prediction of a split exactly once, with the state carried,
and reports the mean in nats per token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig, TrainConfig
from ..data.text import DataError, iterate_eval_batches
from .lm import make_lm_batcher
from .lm_data import LMSplits, Vocab, load_lm_splits, open_lm_splits
from .trainer import Carry, Distributed, Task, init_distributed, select_device

EVAL_SEQ_LEN = 256  # columns per evaluation batch (the NumPy engine's `evaluate` uses the same)


def prepare_lm_splits(config: TrainConfig, data_dir: str | Path, vocab: Vocab | None = None) -> LMSplits:
    """`load_lm_splits` into a new run's `data_dir`, once per job: under `torchrun`, rank 0 writes the
    files while the other ranks wait, then each of them maps what rank 0 wrote.

    Joins the process group early for that (`trainer.init_distributed`); the trainer reuses it.
    A data error on rank 0 ends every rank (the others with a line pointing to rank 0's).

    Example:
        >>> data = prepare_lm_splits(config, "runs/shakespeare/data")   # doctest: +SKIP
    """
    dist = Distributed.from_env()
    if not dist.enabled:
        return load_lm_splits(config, vocab, data_dir=data_dir)
    device = select_device(config.device)
    init_distributed(device)
    splits: LMSplits | None = None
    error: Exception | None = None
    if dist.is_main:
        try:
            splits = load_lm_splits(config, vocab, data_dir=data_dir)
        except Exception as e:  # every rank must reach the all_reduce below, or the others wait forever
            error = e
    flag = torch.tensor([0.0 if error is None else 1.0], device=device if device.type == "cuda" else "cpu")
    torch.distributed.all_reduce(flag)
    if error is not None:
        raise error
    if flag.item():
        raise DataError(f"data: rank 0 could not prepare the data in {data_dir} (its error says why)")
    return splits if splits is not None else open_lm_splits(data_dir, config, vocab)


# ---------------------------------------------------------------------------------------------
# scoring


@torch.no_grad()
def lm_loss_sums(
    model: nn.Module,
    tokens: np.ndarray,
    *,
    batch_size: int = 128,
    seq_len: int = EVAL_SEQ_LEN,
    device: torch.device | str = "cpu",
    rows: slice | None = None,
) -> tuple[float, float]:
    """Summed cross-entropy (nats) and the number of predictions over the whole of `tokens`.

    Every prediction `tokens[i] -> tokens[i+1]` is scored once, the state carried from chunk to
    chunk (see `data.text.iterate_eval_batches`); streams are kept at least `seq_len` long.

    Args:
        model: a torch `LanguageModel` (eval mode is the caller's business).
        tokens: (N,) ids.
        batch_size: parallel streams at most.
        seq_len: columns per forward call.
        device: where the model is.
        rows: score only these streams (a data-parallel rank's share); None: all.

    Returns:
        (loss_sum, count); the mean loss is loss_sum / count.

    Example:
        >>> total, n = lm_loss_sums(model, splits.val)   # doctest: +SKIP
        >>> total / n                                   # doctest: +SKIP
        1.47
    """
    batch_size = max(1, min(batch_size, (len(tokens) - 1) // seq_len))
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0.0
    state = None
    for x, y, mask in iterate_eval_batches(tokens, batch_size, seq_len):
        if rows is not None:
            x, y, mask = x[rows], y[rows], mask[rows]
            if len(x) == 0:
                break
        # memory-mapped ids are uint16/uint32: the embedding and the loss want int64
        xt = torch.from_numpy(x.astype(np.int64, copy=False)).to(device, non_blocking=True)
        yt = torch.from_numpy(y.astype(np.int64, copy=False)).to(device, non_blocking=True)
        mt = torch.from_numpy(mask).to(device, non_blocking=True)
        logits, state = model(xt, state)
        nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), yt.reshape(-1), reduction="none")
        total += (nll * mt.reshape(-1)).sum(dtype=torch.float64)
        count += float(mask.sum())
    return float(total.item()), count


# ---------------------------------------------------------------------------------------------
# the task


class LMTask(Task):
    """Next-token prediction with stateful truncated BPTT, for the `Trainer`.

    Args:
        data: the encoded splits (`load_lm_splits`).
        model_config: the model; `vocab_size` must equal `len(data.vocab)`.
        config: the training config (batch_size, seq_len, state_reset_prob, seed, eval_batch_size).

    Example:
        >>> task = LMTask.from_config(TrainConfig(max_steps=100), {"hidden_size": 256})   # doctest: +SKIP
        >>> Trainer(task, task.config, "runs/names").fit()["val_loss"]                     # doctest: +SKIP
    """

    name = "lm"

    def __init__(self, data: LMSplits, model_config: ModelConfig, config: TrainConfig) -> None:
        if model_config.vocab_size != len(data.vocab):
            raise ValueError(
                f"vocab_size: expected {len(data.vocab)} (the data's vocabulary), got {model_config.vocab_size}"
            )
        self.data, self.model_config, self.config = data, model_config, config
        self.batcher = make_lm_batcher(data, config)

    @classmethod
    def from_config(
        cls,
        config: TrainConfig,
        model_options: dict[str, Any] | None = None,
        vocab: Vocab | None = None,
        data_dir: str | Path | None = None,
    ) -> LMTask:
        """Load the data named by `config` and build the task; `model_options` are `ModelConfig`
        fields other than vocab_size (which comes from the data). The token and split files go
        to `data_dir` (a temporary folder when None; see `load_lm_splits`)."""
        data = load_lm_splits(config, vocab, data_dir=data_dir)
        model_config = ModelConfig(vocab_size=len(data.vocab), **(model_options or {}))
        return cls(data, model_config, config)

    def setup(self, device: torch.device, rank: int, world_size: int) -> None:
        if self.config.batch_size % world_size:
            raise ValueError(
                f"batch_size: the global batch of {self.config.batch_size} streams must split evenly "
                f"across {world_size} processes"
            )
        super().setup(device, rank, world_size)

    def build_model(self, seed: int) -> nn.Module:
        from ..torch.models import LanguageModel

        return LanguageModel(self.model_config, seed=seed)

    def next_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, bool, torch.Tensor | None]:
        x, y, reset = self.batcher.next_batch()  # the global (B, T) batch
        B = x.shape[0]
        rows = self.shard(np.arange(B))
        zero = None
        if not reset and self.config.state_reset_prob > 0:
            # drawn from (seed, step) rather than a running generator: nothing to save for a resume,
            # and every rank draws the same B numbers
            draw = np.random.default_rng([self.config.seed, 1, step]).random(B) < self.config.state_reset_prob
            if draw[rows].any():
                zero = torch.from_numpy(~draw[rows]).to(self.device)
        # memory-mapped ids are uint16/uint32: the embedding and the loss want int64
        xt = torch.from_numpy(x[rows].astype(np.int64, copy=False)).to(self.device, non_blocking=True)
        yt = torch.from_numpy(y[rows].astype(np.int64, copy=False)).to(self.device, non_blocking=True)
        return xt, yt, reset, zero

    def loss(self, model: nn.Module, batch: Any, carry: Carry) -> tuple[torch.Tensor, Carry]:
        x, y, reset, keep = batch
        if reset:
            carry = None
        elif keep is not None and carry is not None:
            mask = keep.view(1, -1, 1)
            carry = (
                tuple(t * mask.to(t.dtype) for t in carry) if isinstance(carry, tuple) else carry * mask.to(carry.dtype)
            )
        logits, carry = model(x, carry)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        return loss, carry

    def eval_sums(self, model: nn.Module, split: str) -> dict[str, float]:
        tokens = {"val": self.data.val, "test": self.data.test}.get(split)
        if tokens is None:
            raise ValueError(f"split: expected 'val' or 'test' (with a test split), got {split!r}")
        streams = max(1, min(self.config.eval_batch_size, (len(tokens) - 1) // EVAL_SEQ_LEN))
        share = np.array_split(np.arange(streams), self.world_size)[self.rank]
        rows = slice(int(share[0]), int(share[-1]) + 1) if len(share) else slice(0, 0)
        total, count = lm_loss_sums(
            model, tokens, batch_size=self.config.eval_batch_size, device=self.device, rows=rows
        )
        return {"loss_sum": total, "count": count}

    def final_splits(self) -> tuple[str, ...]:
        return ("test",) if self.data.test is not None else ()

    def data_state(self) -> dict[str, Any]:
        return self.batcher.state_dict()

    def load_data_state(self, state: dict[str, Any]) -> None:
        self.batcher.load_state_dict(dict(state))

    def artifacts(self) -> dict[str, dict[str, Any]]:
        return {"vocab": {**self.data.vocab.to_json(), "per_line": self.data.per_line}}

    def tokens_per_step(self) -> int:
        return self.config.batch_size * self.config.seq_len
