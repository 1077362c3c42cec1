"""One trainer for every task, on PyTorch: optimisation, schedules, evaluation, checkpoints, resume, DDP.

A task (language model, classifier, tagger, forecaster, seq2seq) is a `Task` object: it builds its
model, hands out training batches from a resumable data position, computes the loss of a batch,
scores a whole evaluation split, and says what to save beside the weights (vocabulary,
normalisation). Everything else lives here, once:

* AdamW / Adam / SGD / Adagrad, gradient clipping by global norm (or by value);
* linear warm-up, then a constant, cosine (over the step or time budget) or plateau schedule
  (the learning rate is halved when the validation loss stops improving);
* stateful truncated BPTT: a task may return a *carry* (the recurrent state) from `loss`; it is
  detached here after every step, so gradients stop at chunk boundaries while the state flows on;
* evaluation on the whole validation split every `eval_every` steps, early stopping after
  `patience` evaluations without improvement, the best weights kept in `RUN/best/`;
* `metrics.jsonl` (one JSON object per evaluation) and `loss.png` (train/validation curves);
* device auto-selection (cuda > mps > cpu), bf16 autocast on CUDA;
* data parallel on several processes when launched by `torchrun` (gloo on CPU, nccl on CUDA):
  the global batch is split across ranks, gradients are averaged, only rank 0 writes;
* checkpoints that resume *exactly*: weights, optimiser moments, schedule, every random generator,
  the data position and the carried state, in safetensors + JSON (never pickle), written
  atomically; a broken run (non-finite loss or weights) never overwrites a good checkpoint.

The run folder:

    RUN/model.safetensors, model_config.json, train_config.json, <task artifacts>.json
                                  the latest checkpoint (the weights `rnnlab sample` loads)
    RUN/train_state.safetensors, train_state.json   what `--resume` needs on top
    RUN/checkpoint.json           SHA-256 manifest, written last
    RUN/best/                     the weights with the lowest validation loss (a checkpoint too)
    RUN/metrics.jsonl, RUN/loss.png

Writing a task: subclass `Task` and implement the abstract methods; see `rnnlab.training.lm_task`
for the language model. A minimal example, a classifier of fixed-size feature vectors:

    class Classify(Task):
        name = "classify"
        # model_config: anything with to_dict() (a ModelConfig, say), saved as model_config.json
        def __init__(self, x, y, xv, yv, model_config):
            self.x, self.y, self.xv, self.yv, self.model_config = x, y, xv, yv, model_config
            self.position = 0
        def build_model(self, seed):
            torch.manual_seed(seed)
            return nn.Linear(self.x.shape[1], int(self.y.max()) + 1)
        def next_batch(self, step):
            idx = np.arange(self.position, self.position + 32) % len(self.x)  # global batch...
            self.position = int(idx[-1] + 1) % len(self.x)
            idx = self.shard(idx)                                               # ...this rank's share
            return torch.from_numpy(self.x[idx]).to(self.device), torch.from_numpy(self.y[idx]).to(self.device)
        def loss(self, model, batch, carry):
            x, y = batch
            return F.cross_entropy(model(x), y), None
        def eval_sums(self, model, split):
            x, y = (torch.from_numpy(a).to(self.device) for a in (self.xv, self.yv))
            logits = model(x)
            return {"loss_sum": F.cross_entropy(logits, y, reduction="sum").item(), "count": len(y),
                    "correct": (logits.argmax(-1) == y).sum().item()}
        def summarize(self, sums):
            return {"loss": sums["loss_sum"] / sums["count"], "accuracy": sums["correct"] / sums["count"]}
        def data_state(self):
            return {"position": self.position}
        def load_data_state(self, state):
            self.position = state["position"]
"""

from __future__ import annotations

import abc
import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import RESUMABLE_FIELDS, TrainConfig
from .checkpoint import (
    BEST_DIR,
    MANIFEST,
    STATE_JSON_FILE,
    CheckpointError,
    existing_run_error,
    holds_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from .lm import TrainingError  # one error type for both engines: the CLI exits 1 on it
from .metrics import plot_losses, read_metrics, write_metrics
from .progress import Progress
from .schedule import Schedule
from .state import global_rng_state, load_global_rng_state, load_optimizer_state, optimizer_state

FORMAT_VERSION = 1
# below this many (batch row x parameter) products per step, a CPU run uses one thread (see Trainer._threads)
SMALL_MODEL_WORK = 1_000_000

# What a task may carry from one batch to the next (truncated BPTT): nothing, a tensor, or a tuple
# of tensors, each with the batch in dimension 1 (the recurrent-state layout (L·D, B, H)).
Carry = torch.Tensor | tuple[torch.Tensor, ...] | None


# ---------------------------------------------------------------------------------------------
# devices and processes


def select_device(name: str = "auto") -> torch.device:
    """The torch device for `name`: 'auto' picks cuda, then mps, then cpu.

    Under `torchrun` with CUDA, 'auto' and 'cuda' mean this process's GPU (`cuda:$LOCAL_RANK`).

    Raises:
        ValueError: the device does not exist or is not available on this machine.

    Example:
        >>> select_device("cpu")
        device(type='cpu')
    """
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local % torch.cuda.device_count())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {name!r} requested, but CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", local % torch.cuda.device_count())
        elif device.index >= torch.cuda.device_count():
            raise ValueError(f"device: {name!r} requested, but there are {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise ValueError(f"device: {name!r} requested, but MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}")
    return device


@dataclass(frozen=True)
class Distributed:
    """This process's place in a data-parallel job (world_size 1 when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @staticmethod
    def from_env() -> Distributed:
        """Read RANK and WORLD_SIZE as `torchrun` sets them."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return Distributed(int(os.environ.get("RANK", "0")), world)


def init_distributed(device: torch.device) -> None:
    """Join the `torchrun` job's process group (gloo on CPU, nccl on CUDA), unless already joined.

    The trainer calls it; a task's data preparation may call it earlier, to let rank 0 write
    shared files while the other ranks wait (see `lm_task.prepare_lm_splits`).

    Args:
        device: this process's device (`select_device`).
    """
    if torch.distributed.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend=backend)


# ---------------------------------------------------------------------------------------------
# the task interface


class Task(abc.ABC):
    """What a learning problem gives the `Trainer`. Subclass it; see the module docstring.

    The trainer sets `device`, `rank` and `world_size` (through `setup`) before calling anything
    else. Batches are *global*: every rank advances the same data position, and `shard` picks
    this rank's rows, so one process and N processes see exactly the same examples per step.

    Attributes:
        name: the task's name, saved in the checkpoint ('lm', 'classify', ...).
        model_config: a config dataclass with `to_dict()`, saved as `model_config.json`.
        device, rank, world_size: set by `setup`.
    """

    name: str = "task"
    model_config: Any = None
    device: torch.device = torch.device("cpu")
    rank: int = 0
    world_size: int = 1

    def setup(self, device: torch.device, rank: int, world_size: int) -> None:
        """Called once by the trainer. Override to check that the batch splits across `world_size`
        ranks (raise ValueError naming the option otherwise), calling `super().setup(...)`."""
        self.device, self.rank, self.world_size = device, rank, world_size

    def shard(self, rows: Any) -> Any:
        """This rank's contiguous share of the global batch's rows (everything when world_size is 1).

        Example:
            >>> task.shard(np.arange(8))   # rank 1 of 2       # doctest: +SKIP
            array([4, 5, 6, 7])
        """
        if self.world_size == 1:
            return rows
        n = len(rows)
        per = n // self.world_size
        return rows[self.rank * per : (self.rank + 1) * per]

    @abc.abstractmethod
    def build_model(self, seed: int) -> nn.Module:
        """A freshly initialised model (on the CPU; the trainer moves it), reproducible from `seed`."""

    @abc.abstractmethod
    def next_batch(self, step: int) -> Any:
        """This rank's part of the training batch for `step` (0-based), already on `self.device`.

        Advances the data position, which `data_state` must describe exactly.
        """

    @abc.abstractmethod
    def loss(self, model: nn.Module, batch: Any, carry: Carry) -> tuple[torch.Tensor, Carry]:
        """The mean training loss of `batch` (a 0-d tensor to backpropagate), and the new carry.

        Args:
            model: the model (wrapped in DistributedDataParallel under torchrun; call it, do not
                reach into it).
            batch: from `next_batch`.
            carry: what the previous call returned (None at the start, and after a resume that
                saved none); tasks without state across batches return None.
        """

    def loss_count(self, batch: Any) -> float | None:
        """How many predictions `loss` averages over in this rank's `batch`, for tasks where that
        differs from rank to rank (tokens of padded sentences); None (the default) when every rank's
        share counts the same. Under torchrun the trainer then weights each rank's mean by its
        count, so that N processes take the same step as one process with the whole batch.
        """
        return None

    @abc.abstractmethod
    def eval_sums(self, model: nn.Module, split: str) -> dict[str, float]:
        """Sums over this rank's share of a whole evaluation split, under `torch.no_grad`.

        Must include "loss_sum" (summed loss) and "count" (what the loss is averaged over:
        tokens, items); may add other sums (e.g. "correct"). The trainer adds them up across
        ranks and passes the totals to `summarize`.

        Args:
            model: the bare model (not the DDP wrapper), in eval mode.
            split: one of `eval_splits()` ("val") or `final_splits()` ("test").
        """

    def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
        """Metrics from the summed `eval_sums`; must include "loss". Default: loss_sum / count."""
        return {"loss": sums["loss_sum"] / max(sums["count"], 1.0)}

    def final_splits(self) -> Sequence[str]:
        """Splits scored once, at the end of the run (e.g. ("test",)); default none."""
        return ()

    def data_state(self) -> dict[str, Any]:
        """The data position as JSON-serialisable values, for an exact resume."""
        return {}

    def load_data_state(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Go back to a position saved by `data_state` (raise ValueError if it does not fit the data)."""

    def artifacts(self) -> dict[str, dict[str, Any]]:
        """Extra JSON files saved with every checkpoint, name -> object (e.g. {"vocab": {...}})."""
        return {}

    def tokens_per_step(self) -> int:
        """Units per global batch for the metrics' `tokens`: tokens for a language model, examples
        (texts, sentences, windows, pairs) for the other tasks; 0 if unknown."""
        return 0


def make_optimizer(
    params: Sequence[nn.Parameter], config: TrainConfig, device: torch.device | None = None
) -> torch.optim.Optimizer:
    """The torch optimiser named by `config.optimizer` ('adamw', 'adam', 'sgd', 'adagrad').

    Adam and AdamW use PyTorch's fused kernels on CPU and CUDA (one pass over all parameters: on a
    small model the update went from 2.5 ms to 0.2 ms per step); the others its multi-tensor ones.

    Example:
        >>> make_optimizer(list(nn.Linear(2, 2).parameters()), TrainConfig(max_steps=1, optimizer="sgd"))  # doctest: +ELLIPSIS
        SGD (...
    """
    name, lr, wd = config.optimizer, config.lr, config.weight_decay
    kind = device.type if device is not None else "cpu"
    fast: dict[str, Any] = {"fused": True} if kind in ("cpu", "cuda") else {}
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, **fast)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, **fast)
    multi = {"foreach": True} if kind in ("cpu", "cuda") else {}
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd, **multi)
    return torch.optim.Adagrad(params, lr=lr, weight_decay=wd, **multi)


# ---------------------------------------------------------------------------------------------
# carried state helpers


def _carry_tensors(carry: Carry) -> tuple[torch.Tensor, ...]:
    if carry is None:
        return ()
    return tuple(carry) if isinstance(carry, (tuple, list)) else (carry,)


def _detach(carry: Carry) -> Carry:
    if carry is None:
        return None
    if isinstance(carry, (tuple, list)):
        return tuple(t.detach() for t in carry)
    return carry.detach()


def _bf16_rnn_works(device: torch.device) -> bool:
    """Whether a recurrent layer trains under bf16 autocast on `device` (forward and backward)."""
    try:
        rnn = nn.LSTM(8, 8, batch_first=True).to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            out, _ = rnn(torch.zeros(2, 3, 8, device=device))
        out.float().sum().backward()
        return True
    except RuntimeError:
        return False


def _all_finite(tensors: Iterator[torch.Tensor]) -> bool:
    flags = [torch.isfinite(t).all() for t in tensors]
    return bool(torch.stack(flags).all().item()) if flags else True


# ---------------------------------------------------------------------------------------------
# the trainer


class Trainer:
    """Trains a `Task` with a `TrainConfig`, writing checkpoints and metrics to `out_dir`.

    Args:
        task: the task (data, model, loss, evaluation).
        config: the run: optimiser, schedule, budget (`max_steps` and/or `max_time` seconds of
            training, evaluation excluded), evaluation, checkpoints, device, precision.
        out_dir: the run folder (created at the first checkpoint, so a run that fails before
            writes nothing). A new run refuses a folder that already holds one (ValueError).
        resume: continue from the checkpoint in `out_dir` (weights, optimiser, schedule, RNG,
            data position, carried state): the run goes on exactly as if never stopped. Its
            config may change only in `RESUMABLE_FIELDS` (the budget, device, threads, patience,
            checkpoint_every and a moved data file).
        progress: show a progress bar on stderr (rank 0).
        log: called with one line per evaluation (rank 0; None: silent).

    Example:
        >>> task = LMTask.from_config(train_config, model_config)        # doctest: +SKIP
        >>> record = Trainer(task, train_config, "runs/shakespeare").fit()  # doctest: +SKIP
        >>> record["val_loss"]                                            # doctest: +SKIP
        1.47
    """

    def __init__(
        self,
        task: Task,
        config: TrainConfig,
        out_dir: str | os.PathLike[str],
        *,
        resume: bool = False,
        progress: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if not isinstance(task, Task):
            raise TypeError(f"task: expected a rnnlab.training.trainer.Task, got {type(task).__name__}")
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
        if not callable(getattr(task.model_config, "to_dict", None)):
            # checked now: it is first needed at the first checkpoint, after minutes of training
            raise TypeError(
                f"task.model_config: expected a config with to_dict() (such as a ModelConfig), "
                f"got {type(task.model_config).__name__}"
            )
        # the run records the engine that trained it: `--resume` and `load_run` go by it
        config = config.replace(engine="torch")
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ValueError(f"out_dir: expected a folder for the run, got the file {self.out_dir}")
        self.task, self.config = task, config
        self.dist = Distributed.from_env()
        self.is_main = self.dist.is_main
        # a new run never writes over an earlier one (rank 0 judges: under torchrun with --overwrite
        # it has moved the earlier run aside before any rank gets here)
        if not resume and self.is_main and holds_checkpoint(self.out_dir):
            raise existing_run_error(self.out_dir)
        self.progress = progress and self.is_main
        self.log = log if self.is_main else None
        self.device = select_device(config.device)
        self.autocast_dtype = self._autocast_dtype()
        if self.dist.enabled:
            init_distributed(self.device)
        task.setup(self.device, self.dist.rank, self.dist.world_size)

        # torch's generator drives dropout; each rank gets its own stream
        torch.manual_seed(config.seed + self.dist.rank)
        self.model = task.build_model(config.seed).to(self.device)
        if self.dist.enabled:
            # build_model seeds torch with `seed` (the same weights on every rank), which would give
            # every rank the same dropout masks too
            torch.manual_seed(config.seed + self.dist.rank)
        self.train_model: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.threads = self._threads()
        self.optimizer = make_optimizer(self.params, config, self.device)
        self.schedule = Schedule(config)

        self.step = 0
        self.elapsed = 0.0
        self.best_val = math.inf
        self.evals_since_best = 0
        self.pending_losses: list[float] = []  # training losses since the last evaluation
        self.pending_log: list[str] = []  # evaluation lines not yet said (see `_flush_log`)
        self.carry: Carry = None
        self.history: list[dict[str, Any]] = []  # the metrics records, for loss.png
        self.stopped_early = False
        self.last_eval_step = -1
        if resume:
            self._load(self.out_dir)

    # -- set-up helpers ---------------------------------------------------------------------------
    def _autocast_dtype(self) -> torch.dtype | None:
        p = self.config.precision
        if p == "fp32":
            return None
        if p == "bf16":
            if self.device.type != "cuda":
                raise ValueError(f"precision: bf16 autocast is for CUDA devices, but the device is {self.device}")
            return torch.bfloat16
        # auto: bf16 where the GPU computes it natively (Ampere and later) and its recurrent kernels
        # accept it (checked on a tiny LSTM), float32 otherwise
        if self.device.type == "cuda" and torch.cuda.is_bf16_supported() and _bf16_rnn_works(self.device):
            return torch.bfloat16
        return None

    def _threads(self) -> int | None:
        """CPU threads while fitting: `config.threads`, else 1 for small models, else torch's default.

        A small model's matrix products are too small to share between threads, and OpenMP threads
        that spin-wait for each other turn a machine busy with other jobs into a crawl (a 16-unit
        LSTM step went from 2 ms to 70 ms with 2 threads on a loaded 2-core machine).
        """
        if self.config.threads is not None:
            return self.config.threads
        if self.device.type != "cpu":
            return None
        per_rank = self.config.batch_size // max(self.dist.world_size, 1)
        work = per_rank * sum(p.numel() for p in self.params)  # multiply-adds per time step, roughly
        return 1 if work < SMALL_MODEL_WORK else None

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    # -- collective helpers -----------------------------------------------------------------------
    def _all_reduce_sum(self, values: Sequence[float]) -> list[float]:
        if not self.dist.enabled:
            return list(values)
        t = torch.tensor(list(values), dtype=torch.float64, device=self._comm_device())
        torch.distributed.all_reduce(t)
        return t.cpu().tolist()

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def _gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's copy of a same-shaped tensor, in rank order, on the CPU."""
        if not self.dist.enabled:
            return [t.detach().cpu()]
        src = t.detach().to(self._comm_device()).contiguous()
        out = [torch.empty_like(src) for _ in range(self.dist.world_size)]
        torch.distributed.all_gather(out, src)
        return [o.cpu() for o in out]

    # -- the loop -----------------------------------------------------------------------------------
    def _done(self) -> bool:
        c = self.config
        return (c.max_steps is not None and self.step >= c.max_steps) or (
            c.max_time is not None and self.elapsed >= c.max_time
        )

    def _stop(self, what: str) -> TrainingError:
        kept = (
            f"the last good checkpoint in {self.out_dir} is kept"
            if (self.out_dir / MANIFEST).exists()
            else f"nothing was saved in {self.out_dir}"
        )
        lr = self.optimizer.param_groups[0]["lr"]
        return TrainingError(f"{what} at step {self.step} (lr {lr:g}); stopped, {kept}")

    def fit(self, stop_at_step: int | None = None) -> dict[str, Any]:
        """Train until the budget is spent (or early stopping), evaluating and checkpointing on the way.

        Args:
            stop_at_step: leave after this step with a checkpoint, as if interrupted, even though
                the budget is not spent (for tests of resuming; None: run to the end).

        Returns:
            The last metrics record (step, elapsed_s, train_loss, val_loss, lr, ...; test_loss
            when the task has a test split).

        Raises:
            TrainingError: the loss or the weights became non-finite; no checkpoint was written
                with them.
        """
        c = self.config
        bar = Progress(total_steps=c.max_steps, total_seconds=c.max_time, enabled=self.progress)
        record: dict[str, Any] = self.history[-1] if self.history else {}
        self.model.train()
        self.started = time.perf_counter()
        threads_before = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            with bar:
                while not self._done() and not self.stopped_early:
                    loss = self._train_step()
                    bar.update(self.step, self.elapsed, loss)
                    finished = self._done()
                    evaluated = False
                    if self.step % c.eval_every == 0 and not finished:
                        record = self._evaluate_and_log()
                        evaluated = True
                    if evaluated or (c.checkpoint_every and self.step % c.checkpoint_every == 0 and not finished):
                        self._save()
                    self._flush_log()
                    if stop_at_step is not None and self.step >= stop_at_step and not finished:
                        if not evaluated:
                            self._save()
                        return record
                record = self._finish()
                self._save()
                self._flush_log()
        finally:
            torch.set_num_threads(threads_before)
            if self.dist.enabled and torch.distributed.is_initialized():
                torch.distributed.barrier()
        return record

    def _train_step(self) -> float:
        c = self.config
        t0 = time.perf_counter()
        batch = self.task.next_batch(self.step)
        lr = self.schedule.lr(self.step, self.elapsed)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self._autocast():
            loss, carry = self.task.loss(self.train_model, batch, self.carry)
        # one collective per step: the mean loss over ranks (identical everywhere, so every rank
        # takes the same decisions) and the mean elapsed time (so every rank stops together)
        count = self.task.loss_count(batch) if self.dist.enabled else None
        if count is None:
            loss_value, elapsed = self._all_reduce_sum([loss.item(), self.elapsed])
            loss_value /= self.dist.world_size
        else:
            # ranks average different numbers of tokens: weight each rank's mean by its share, so
            # the loss and (after DDP's average over ranks) the gradient are the global batch's mean
            loss_sum, total, elapsed = self._all_reduce_sum([loss.item() * count, count, self.elapsed])
            loss_value = loss_sum / max(total, 1.0)
            loss = loss * (count * self.dist.world_size / max(total, 1.0))
        self.elapsed = elapsed / self.dist.world_size
        if not math.isfinite(loss_value):
            raise self._stop(f"loss: became {loss_value}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if c.clip_mode == "norm":
            nn.utils.clip_grad_norm_(self.params, c.grad_clip)
        elif c.clip_mode == "value":
            nn.utils.clip_grad_value_(self.params, c.grad_clip)
        try:
            self.optimizer.step()
        except RuntimeError as e:
            # a learning rate beyond float32 (say 1e100) overflows inside the update itself
            if "overflow" not in str(e):
                raise
            raise self._stop(f"update: became non-finite ({e})") from None
        self.carry = _detach(carry)
        self.step += 1
        self.pending_losses.append(loss_value)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # so the clock measures the work, not its queueing
        self.elapsed += time.perf_counter() - t0
        return loss_value

    # -- evaluation -------------------------------------------------------------------------------
    def evaluate(self, split: str = "val") -> dict[str, float]:
        """The task's metrics on a whole split (all ranks take part; every rank gets the result).

        Example:
            >>> trainer.evaluate("val")["loss"]   # doctest: +SKIP
            1.48
        """
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), self._autocast():
                sums = self.task.eval_sums(self.model, split)
        finally:
            self.model.train(was_training)
        keys = sorted(sums)
        totals = dict(zip(keys, self._all_reduce_sum([float(sums[k]) for k in keys]), strict=True))
        return self.task.summarize(totals)

    def _finish(self) -> dict[str, Any]:
        """The last evaluation (unless this step was just evaluated), plus the final splits (test)."""
        if self.last_eval_step != self.step:
            return self._evaluate_and_log(final=True)
        extra: dict[str, Any] = {}
        for split in self.task.final_splits():
            extra.update({f"{split}_{k}": v for k, v in self.evaluate(split).items()})
        if not self.is_main:
            return extra
        self.history[-1].update(extra)
        self._write_metrics()
        if self.log is not None and extra:
            self.log("  ".join(f"{k} {v:.4f}" for k, v in extra.items()))
        return self.history[-1]

    def _evaluate_and_log(self, final: bool = False) -> dict[str, Any]:
        self.last_eval_step = self.step
        metrics = self.evaluate("val")
        val_loss = metrics["loss"]
        # never keep diverged weights (the last update can blow them up after a finite loss)
        if not _all_finite(p.detach() for p in self.model.parameters()):
            raise self._stop("weights: became non-finite")
        if not math.isfinite(val_loss):
            raise self._stop(f"val_loss: became {val_loss}")
        rec: dict[str, Any] = {
            "step": self.step,
            "elapsed_s": round(self.elapsed, 3),
            "wall_s": round(time.perf_counter() - self.started, 3),
            "train_loss": float(np.mean(self.pending_losses)) if self.pending_losses else None,
            "val_loss": val_loss,
        }
        rec.update({f"val_{k}": v for k, v in metrics.items() if k != "loss"})
        rec["lr"] = self.optimizer.param_groups[0]["lr"]
        rec["tokens"] = self.step * self.task.tokens_per_step()
        self.pending_losses.clear()
        self.schedule.observe(val_loss)
        improved = val_loss < self.best_val
        if improved:
            self.best_val, self.evals_since_best = val_loss, 0
        else:
            self.evals_since_best += 1
        rec["best_val_loss"] = self.best_val
        if final:
            for split in self.task.final_splits():
                rec.update({f"{split}_{k}": v for k, v in self.evaluate(split).items()})
        elif self.config.patience is not None and self.evals_since_best >= self.config.patience:
            self.stopped_early = True
            rec["stopped_early"] = True
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if improved and self.config.keep_best:
                self._save_weights(self.out_dir / BEST_DIR, {"step": self.step, "val_loss": val_loss})
            self.history.append(rec)
            self._write_metrics()
            self._plot()
            if self.log is not None:  # said once the checkpoint is saved (`_flush_log`): a closed pipe
                # that kills the run as it logs must not leave a folder with a best/ and no checkpoint
                extra = "".join(f"  {k} {v:.4f}" for k, v in rec.items() if k.startswith("test_"))
                train = f"{rec['train_loss']:.4f}" if rec["train_loss"] is not None else "-"
                self.pending_log.append(
                    f"step {self.step}: train {train}  val {val_loss:.4f}{extra}  lr {rec['lr']:.2e}  ({self.elapsed:.0f}s)"
                    + ("  early stop" if self.stopped_early else "")
                )
        return rec

    def _flush_log(self) -> None:
        while self.pending_log and self.log is not None:
            self.log(self.pending_log.pop(0))

    def _write_metrics(self) -> None:
        write_metrics(self.out_dir, self.history)

    def _plot(self) -> None:
        plot_losses(self.out_dir, self.history, f"{self.task.name}: best validation {self.best_val:.4f}")

    # -- checkpoints ------------------------------------------------------------------------------
    def _configs(self) -> dict[str, dict[str, Any]]:
        return {
            "model_config": self.task.model_config.to_dict(),
            "train_config": self.config.to_dict(),
            **self.task.artifacts(),
        }

    def _weights(self) -> dict[str, np.ndarray]:
        from ..torch.convert import to_numpy_state_dict

        return to_numpy_state_dict(self.model.state_dict())

    def _save_weights(self, directory: Path, info: dict[str, Any]) -> None:
        save_checkpoint(
            directory, weights=self._weights(), configs=self._configs(), state={"task": self.task.name, **info}
        )

    def _save(self) -> None:
        """The resumable checkpoint; every rank takes part (gathering RNG and carried state), rank 0 writes."""
        if not _all_finite(p.detach() for p in self.model.parameters()):
            raise self._stop("weights: became non-finite")
        tensors: dict[str, np.ndarray] = {}
        rng_tensors, rng_meta = global_rng_state()
        tensors.update(rng_tensors)
        for r, t in enumerate(self._gather(torch.get_rng_state())):
            tensors[f"rng.torch_cpu.rank{r}"] = t.numpy()
        if self.device.type == "cuda":
            for r, t in enumerate(self._gather(torch.cuda.get_rng_state(self.device).to(self.device))):
                tensors[f"rng.cuda.rank{r}"] = t.numpy()
        carry = _carry_tensors(self.carry)
        for i, t in enumerate(carry):
            tensors[f"carry.{i}"] = torch.cat([g.float() for g in self._gather(t)], dim=1).numpy()
        if not self.is_main:
            return
        opt_tensors, opt_meta = optimizer_state(self.optimizer)
        tensors.update(opt_tensors)
        state = {
            "format_version": FORMAT_VERSION,
            "task": self.task.name,
            "step": self.step,
            "elapsed_s": self.elapsed,
            "best_val": self.best_val if math.isfinite(self.best_val) else None,
            "evals_since_best": self.evals_since_best,
            "stopped_early": self.stopped_early,
            "last_eval_step": self.last_eval_step,
            "pending_losses": self.pending_losses,
            "schedule": self.schedule.state_dict()
            | {"best": None if math.isinf(self.schedule.best) else self.schedule.best},
            "optimizer": opt_meta,
            "rng": rng_meta,
            "world_size": self.dist.world_size,
            "carry": len(carry),
            "data": self.task.data_state(),
            "torch_version": torch.__version__,
        }
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(
            self.out_dir, weights=self._weights(), configs=self._configs(), extra_tensors=tensors, state=state
        )

    def _check_resumed_config(self, directory: Path, saved: object) -> None:
        """Refuse a resumed run whose training config differs from the saved one except where a
        resume may change it (`RESUMABLE_FIELDS`): the saved optimiser state would not fit another
        optimiser, and a run folder must not record settings it was not trained with."""
        if not isinstance(saved, dict):
            return  # a run saved without its train_config.json: nothing to compare
        with contextlib.suppress(ValueError, TypeError):  # a field added since takes its default
            saved = TrainConfig.from_dict(saved).to_dict()
        current = self.config.to_dict()
        changed = sorted(k for k in current if k not in RESUMABLE_FIELDS and saved.get(k, current[k]) != current[k])
        if changed:
            shown = ", ".join(f"{k} ({saved.get(k)!r} saved, {current[k]!r} given)" for k in changed)
            raise ValueError(
                f"resume: the training config differs from the one saved in {directory}/train_config.json: {shown}; "
                f"a resumed run may change only {', '.join(sorted(RESUMABLE_FIELDS - {'engine'}))}"
            )

    def _load(self, directory: Path) -> None:
        """Restore everything `_save` wrote (on the CPU first, then to this trainer's device)."""
        from ..torch.convert import load_weights

        ckpt = load_checkpoint(directory)
        if ckpt.configs.get("train_config", {}).get("engine") == "numpy":
            raise CheckpointError(
                f"{directory}: a run of the NumPy engine; resume it with training.lm.train_lm(..., resume=True) "
                "or `rnnlab train --resume`"
            )
        state, tensors = ckpt.state, ckpt.extra_tensors
        if state is None or tensors is None or "optimizer" not in state:
            raise CheckpointError(
                f"{directory}: holds weights but no training state ({STATE_JSON_FILE}), so it cannot be resumed"
            )
        if state.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"{directory}: training state of format {state.get('format_version')!r}, expected {FORMAT_VERSION}"
            )
        if state.get("task") != self.task.name:
            raise CheckpointError(
                f"{directory}: a {state.get('task')!r} run cannot be resumed as a {self.task.name!r} task"
            )
        saved_model = ckpt.configs.get("model_config")
        current = self.task.model_config
        if isinstance(saved_model, dict) and hasattr(type(current), "from_dict"):
            # read back as the config it is: a field added since the run was saved takes its default
            with contextlib.suppress(ValueError, TypeError):
                saved_model = type(current).from_dict(saved_model).to_dict()
        if saved_model != current.to_dict():
            raise ValueError(f"resume: the model config differs from the one saved in {directory}/model_config.json")
        self._check_resumed_config(directory, ckpt.configs.get("train_config"))
        load_weights(self.model, ckpt.weights)
        load_optimizer_state(self.optimizer, tensors, state["optimizer"])
        schedule = dict(state["schedule"])
        schedule["best"] = math.inf if schedule.get("best") is None else schedule["best"]
        self.schedule.load_state_dict(schedule)
        self.task.load_data_state(state["data"])
        load_global_rng_state(tensors, state["rng"])
        same_world = state.get("world_size") == self.dist.world_size
        rank_key = f"rng.torch_cpu.rank{self.dist.rank}"
        if same_world and rank_key in tensors:
            torch.set_rng_state(torch.from_numpy(np.array(tensors[rank_key], dtype=np.uint8)))
        else:  # another world size: fresh, but reproducible, per-rank streams
            torch.manual_seed(self.config.seed + self.dist.rank + 7919 * int(state["step"]))
        cuda_key = f"rng.cuda.rank{self.dist.rank}"
        if self.device.type == "cuda" and same_world and cuda_key in tensors:
            torch.cuda.set_rng_state(torch.from_numpy(np.array(tensors[cuda_key], dtype=np.uint8)), self.device)
        carry = []
        for i in range(int(state.get("carry", 0))):
            full = torch.from_numpy(np.array(tensors[f"carry.{i}"]))
            if full.shape[1] % self.dist.world_size:
                raise ValueError(
                    f"resume: the carried state has batch {full.shape[1]}, which {self.dist.world_size} processes cannot split"
                )
            per = full.shape[1] // self.dist.world_size
            carry.append(full[:, self.dist.rank * per : (self.dist.rank + 1) * per].to(self.device).contiguous())
        self.carry = None if not carry else (carry[0] if len(carry) == 1 else tuple(carry))
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed_s"])
        self.best_val = math.inf if state.get("best_val") is None else float(state["best_val"])
        self.evals_since_best = int(state.get("evals_since_best", 0))
        self.stopped_early = bool(state.get("stopped_early", False))
        self.last_eval_step = int(state.get("last_eval_step", -1))
        self.pending_losses = [float(x) for x in state.get("pending_losses", [])]
        # the metrics of evaluations after this checkpoint belong to the part of the run being redone
        self.history = read_metrics(directory, up_to_step=self.step)


def log_to_stderr(line: str) -> None:
    """The default `log` for command-line runs."""
    print(line, file=sys.stderr, flush=True)
