"""Training a language model on the NumPy engine: data, the loop, evaluation, checkpoints.

The loop is char-rnn's: B parallel streams through the corpus, chunks of T tokens (characters, or
words from `training.lm_data.load_lm_splits`), the hidden state carried from chunk to chunk
(truncated BPTT), Adam, gradient clipping. Every `eval_every` steps the mean loss over the *whole*
validation split is measured (with carried state, every token predicted exactly once), appended to `metrics.jsonl` and drawn in `loss.png`, and the run
folder's checkpoint is replaced atomically (with `checkpoint_every`, in between as well). The
checkpoint holds everything the next step depends on (optimiser moments, data position, random
generators, carried state), so `train_lm(..., resume=True)` (`rnnlab train --resume RUN`) continues
a killed run exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import ModelConfig, TrainConfig
from ..data.download import resolve_data
from ..data.names import load_census_names, read_lines
from ..data.text import (
    CharVocab,
    DataError,
    ItemStreamBatcher,
    StreamBatcher,
    iterate_eval_batches,
    read_text,
    split_text,
)
from ..scratch import optim
from ..scratch.clip import clip_grad_norm_, clip_grad_value_
from ..scratch.losses import cross_entropy
from ..scratch.models import LanguageModel
from .checkpoint import (
    BEST_DIR,
    MANIFEST,
    CheckpointError,
    existing_run_error,
    holds_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from .metrics import plot_losses, read_metrics, write_metrics
from .progress import Progress
from .schedule import Schedule

if TYPE_CHECKING:
    from .lm_data import LMSplits


class TrainingError(RuntimeError):
    """The run cannot go on (for example the loss became NaN); the message is one printable line."""


@dataclass(frozen=True)
class LMData:
    """Encoded splits and the vocabulary. `name` says where the text came from."""

    vocab: CharVocab
    train: np.ndarray  # (N_train,) token ids
    val: np.ndarray  # (N_val,) token ids
    name: str
    per_line: bool
    test: np.ndarray | None = None  # (N_test,) token ids of a held-out test split, scored at the end

    @property
    def boundary_id(self) -> int | None:
        """The token between items of per-line data (None for running text)."""
        return self.vocab.boundary_id if self.per_line else None


def _encode_lines(vocab: CharVocab, lines: list[str]) -> np.ndarray:
    # <b> a b c <b> d e <b> ...: one boundary between items serves as the end of one and the start
    # of the next, like makemore's '.'
    b = vocab.boundary_id
    parts = [np.array([b], dtype=np.int64)]
    for line in lines:
        parts.append(vocab.encode(line))
        parts.append(np.array([b], dtype=np.int64))
    return np.concatenate(parts)


def check_lm_data(data: LMData | LMSplits, config: TrainConfig) -> None:
    """Raise `DataError` when `data` is too short for `config`'s batches or has no validation to speak of."""
    need = config.batch_size * config.seq_len + 1
    if len(data.train) < need:
        raise DataError(
            f"data: {data.name} is too short: its training split has {len(data.train):,} tokens, batches of "
            f"batch_size*seq_len+1 = {config.batch_size}*{config.seq_len}+1 need {need:,}; "
            "use a smaller --batch-size or --seq-len, or more data"
        )
    if len(data.val) < 2:
        raise DataError(f"data: validation split of {data.name} has {len(data.val)} token(s); need at least 2")


def load_lm_data(config: TrainConfig) -> LMData:
    """Read, check, split and encode the training text named by `config.data`.

    With `config.data` None the embedded default is used: US Census first names (one per line).
    Per-line data is shuffled with `config.seed` and split by whole lines; plain text is split by
    characters (first 90% train, last 10% validation by default).

    Example:
        >>> data = load_lm_data(TrainConfig(max_steps=1))   # census names
        >>> data.per_line, data.vocab.boundary_id
        (True, 0)
    """
    if config.level != "char":
        raise ValueError(
            f"level: load_lm_data builds character data, got level={config.level!r} "
            "(word-level splits come from training.lm_data.load_lm_splits)"
        )
    if config.data is None or config.per_line:
        # --data may also be a URL or a named data set (downloaded once into the cache)
        lines = load_census_names() if config.data is None else read_lines(resolve_data(config.data))
        name = "census first names (package 'names')" if config.data is None else str(config.data)
        order = np.random.default_rng(config.seed).permutation(len(lines))
        lines = [lines[i] for i in order]
        n_val = max(1, round(len(lines) * config.val_fraction))
        if len(lines) - n_val < 1:
            raise DataError(f"data: {name} has {len(lines)} line(s); need at least 2 to hold some out for validation")
        vocab = CharVocab.from_lines(lines)
        train, val = _encode_lines(vocab, lines[:-n_val]), _encode_lines(vocab, lines[-n_val:])
        data = LMData(vocab, train, val, name, True)
    else:
        text = read_text(resolve_data(config.data))
        vocab = CharVocab.from_text(text)
        train_text, val_text = split_text(text, config.val_fraction)
        data = LMData(vocab, vocab.encode(train_text), vocab.encode(val_text), str(config.data), False)
    check_lm_data(data, config)
    return data


def make_lm_batcher(data: LMData | LMSplits, config: TrainConfig) -> StreamBatcher | ItemStreamBatcher:
    """The training batches of a language model (both engines use this).

    Running text is one stream cut into `config.batch_size` rows, as in char-rnn. Per-line data
    deals its items in a new order every epoch (`ItemStreamBatcher`, seeded by `config.seed`), so
    the state carried from one item to the next holds nothing to learn.

    Example:
        >>> batcher = make_lm_batcher(load_lm_data(TrainConfig(max_steps=1)), TrainConfig(max_steps=1))  # doctest: +SKIP
        >>> x, y, reset = batcher.next_batch()   # (B, T), (B, T), bool                             # doctest: +SKIP
    """
    B, T = config.batch_size, config.seq_len
    if data.boundary_id is None:
        return StreamBatcher(data.train, B, T)
    return ItemStreamBatcher(data.train, B, T, boundary_id=data.boundary_id, seed=config.seed)


def evaluate(model: LanguageModel, tokens: np.ndarray, batch_size: int = 128, seq_len: int = 256) -> float:
    """Mean cross-entropy in nats per predicted token over the whole of `tokens` (state carried).

    Args:
        model: a NumPy-engine `LanguageModel` (a torch one: `training.lm_task.lm_loss_sums`).
        tokens: (N,) token ids, N >= 2.
        batch_size: parallel streams at most (fewer when the split is short).
        seq_len: columns per batch.

    Example:
        >>> evaluate(lm, data.val)            # doctest: +SKIP
        1.62
    """
    if not isinstance(model, LanguageModel):
        raise TypeError(
            f"model: expected a NumPy-engine LanguageModel (for torch: training.lm_task.lm_loss_sums), got {type(model).__name__}"
        )
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    # no more streams than keep each at least seq_len long: every stream starts from a zero state,
    # so 128 streams over a short split would score most characters with almost no context
    batch_size = max(1, min(batch_size, (len(tokens) - 1) // seq_len))
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0.0, None
    try:
        for x, y, mask in iterate_eval_batches(tokens, batch_size, seq_len):
            x, y = x.astype(np.int64, copy=False), y.astype(np.int64, copy=False)  # memory-mapped ids are uint16/32
            logits, state = model.forward(x, state)
            loss, _ = cross_entropy(logits, y, mask=mask, reduction="sum")
            model.rnn._cache = None  # no backward will follow; drop the activations
            total += loss
            count += float(mask.sum())
    finally:
        model.train(was_training)
    return total / max(count, 1.0)


def make_optimizer(model, config: TrainConfig) -> optim.Optimizer:
    """The optimiser named by `config.optimizer`, over all of `model`'s parameters."""
    if config.optimizer == "adam":
        return optim.Adam(model, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return optim.AdamW(model, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return optim.SGD(model, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return optim.Adagrad(model, lr=config.lr, weight_decay=config.weight_decay)


STATE_FORMAT = 1  # version of the NumPy engine's train_state.json


def _generators(model: LanguageModel, reset_rng: np.random.Generator) -> dict[str, np.random.Generator]:
    """Every random generator a training step draws from: dropout (two) and the state resets."""
    return {"model": model.rng, "rnn": model.rnn.rng, "state_reset": reset_rng}


@dataclass(frozen=True)
class LoadedLM:
    model: LanguageModel
    vocab: CharVocab
    per_line: bool
    model_config: ModelConfig
    train_config: TrainConfig


def load_lm(run_dir: str | Path) -> LoadedLM:
    """Load a run folder written by `train_lm` (verifies sizes and SHA-256 of every file).

    Example:
        >>> lm = load_lm("runs/names")         # doctest: +SKIP
    """
    from .lm_run import load_run  # it builds on this module's data code

    run = load_run(run_dir, engine="numpy")
    return LoadedLM(run.model, run.vocab, run.per_line, run.model_config, run.train_config)  # type: ignore[arg-type]


@dataclass
class _RunState:
    """Where a NumPy-engine run stands: everything besides the model, optimiser, data and generators."""

    step: int = 0
    elapsed: float = 0.0  # seconds of training, evaluations not counted
    carry: np.ndarray | tuple[np.ndarray, ...] | None = None  # hidden state carried into the next chunk
    pending_losses: list[float] = field(default_factory=list)  # training losses since the last evaluation
    history: list[dict] = field(default_factory=list)  # the metrics records
    best_val: float = math.inf
    evals_since_best: int = 0
    stopped_early: bool = False


def train_lm(
    model_config: ModelConfig,
    train_config: TrainConfig,
    out_dir: str | Path,
    data: LMData | LMSplits,
    *,
    resume: bool = False,
    stop_at_step: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train `model_config` on `data` with the NumPy engine, writing checkpoints and metrics to `out_dir`.

    Every evaluation (and every `checkpoint_every` steps) replaces the checkpoint in `out_dir`:
    weights, configs and vocabulary, plus what an exact resume needs (optimiser moments, schedule,
    data position, every random generator, the carried hidden state, the step and elapsed time).
    As on the torch engine, `keep_best` keeps the best evaluation's weights in `out_dir/best`,
    `patience` stops after that many evaluations without a new best, the 'plateau' schedule cuts
    the rate when the validation loss stalls, and a test split (`data.test`) is scored at the end.

    Args:
        model_config: the model; `vocab_size` must equal `len(data.vocab)`.
        train_config: the run (batching, optimiser, schedule, budget, evaluation).
        out_dir: run folder (created); holds the checkpoint, `metrics.jsonl` and `loss.png`. A new
            run refuses a folder that already holds one (ValueError).
        data: characters from `load_lm_data` (in memory), or the `LMSplits` the CLI builds
            (`training.lm_data.load_lm_splits`: characters or words, running text memory-mapped and
            never read whole, an optional test split).
        resume: continue from the checkpoint in `out_dir` exactly where it left off (the same
            model and data; `train_config` may change only the budget, `checkpoint_every` and
            `patience`).
        stop_at_step: leave after this step with a checkpoint, as if interrupted, although the
            budget is not spent (for tests of resuming; None: run to the end).
        progress: show a progress bar on stderr.
        log: called with one line per evaluation (None: silent).

    Returns:
        The last metrics record: step, elapsed_s, train_loss, val_loss, best_val_loss, lr, tokens
        (and test_loss with a test split).

    Example:
        >>> data = load_lm_data(TrainConfig(max_steps=10))
        >>> cfg = ModelConfig(vocab_size=len(data.vocab), hidden_size=32)
        >>> train_lm(cfg, TrainConfig(max_steps=10, eval_every=10), "runs/tiny", data)["step"]   # doctest: +SKIP
        10
    """
    from .lm_data import LMSplits  # here: lm_data imports this module

    for name, value, cls in (("model_config", model_config, ModelConfig), ("train_config", train_config, TrainConfig)):
        if not isinstance(value, cls):
            raise TypeError(f"{name}: expected a {cls.__name__}, got {type(value).__name__}")
    if not isinstance(data, (LMData, LMSplits)):
        raise TypeError(f"data: expected LMData (load_lm_data) or LMSplits (load_lm_splits), got {type(data).__name__}")
    if model_config.vocab_size != len(data.vocab):
        raise ValueError(
            f"vocab_size: expected {len(data.vocab)} (the data's vocabulary), got {model_config.vocab_size}"
        )
    data_level = "char" if isinstance(data.vocab, CharVocab) else "word"
    if train_config.level != data_level:
        raise ValueError(f"level: expected {data_level!r} (the data's vocabulary), got {train_config.level!r}")
    # the run records the engine that trained it: `--resume` and `load_run` go by it
    train_config = train_config.replace(engine="numpy")
    if train_config.test_size and data.test is None:
        raise ValueError(
            f"test_size: expected data with a test split (training.lm_data.load_lm_splits), got none for test_size={train_config.test_size}"
        )
    B, T = train_config.batch_size, train_config.seq_len
    check_lm_data(data, train_config)  # before anything is written
    batcher = make_lm_batcher(data, train_config)  # per-line items in a new order every epoch
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir: expected a folder for the run, got the file {out_dir}")
    if not resume and holds_checkpoint(out_dir):  # a new run never writes over an earlier one
        raise existing_run_error(out_dir)
    model = LanguageModel(model_config, seed=train_config.seed)
    opt = make_optimizer(model, train_config)
    schedule = Schedule(train_config)
    generators = _generators(model, np.random.default_rng(train_config.seed + 1))
    run = _RunState()
    if resume:
        run = _load_training_state(out_dir, model, model_config, opt, schedule, batcher, generators)
    record: dict = run.history[-1] if run.history else {}
    started = time.perf_counter()
    bar = Progress(total_steps=train_config.max_steps, total_seconds=train_config.max_time, enabled=progress)
    configs = {
        "model_config": model_config.to_dict(),
        "train_config": train_config.to_dict(),
        "vocab": {**data.vocab.to_json(), "per_line": data.per_line},
    }

    def done() -> bool:
        return (
            (train_config.max_steps is not None and run.step >= train_config.max_steps)
            or (train_config.max_time is not None and run.elapsed >= train_config.max_time)
            or run.stopped_early
        )

    def stop(what: str) -> TrainingError:
        kept = (
            f"the last good checkpoint in {out_dir} is kept"
            if (out_dir / MANIFEST).exists()
            else f"nothing was saved in {out_dir}"
        )
        return TrainingError(f"{what} at step {run.step} (lr {opt.lr:g}); stopped, {kept}")

    def check_weights() -> None:
        # never replace a good checkpoint with diverged weights (the last update can blow them up)
        if not all(np.isfinite(w).all() for w in model.state_dict().values()):
            raise stop("weights: became non-finite")

    def save() -> None:
        check_weights()
        out_dir.mkdir(parents=True, exist_ok=True)
        tensors, info = _training_state(run, opt, schedule, batcher, generators, train_config)
        info["val_loss"] = record.get("val_loss")
        save_checkpoint(out_dir, weights=model.state_dict(), configs=configs, extra_tensors=tensors, state=info)

    def evaluate_and_save(final: bool = False) -> dict:
        val_loss = evaluate(model, data.val, train_config.eval_batch_size)
        check_weights()  # the more telling error first: non-finite weights make the loss non-finite too
        if not math.isfinite(val_loss):
            raise stop(f"val_loss: became {val_loss}")
        rec = {
            "step": run.step,
            "elapsed_s": round(run.elapsed, 3),
            "wall_s": round(time.perf_counter() - started, 3),
            "train_loss": float(np.mean(run.pending_losses)) if run.pending_losses else None,
            "val_loss": val_loss,
            "lr": opt.lr,
            "tokens": run.step * B * T,
        }
        run.pending_losses.clear()
        schedule.observe(val_loss)
        improved = val_loss < run.best_val
        if improved:
            run.best_val, run.evals_since_best = val_loss, 0
        else:
            run.evals_since_best += 1
        rec["best_val_loss"] = run.best_val
        if final and data.test is not None:
            rec["test_loss"] = evaluate(model, data.test, train_config.eval_batch_size)
        elif not final and train_config.patience is not None and run.evals_since_best >= train_config.patience:
            run.stopped_early = rec["stopped_early"] = True
        run.history.append(rec)
        nonlocal record
        record = rec
        out_dir.mkdir(parents=True, exist_ok=True)
        # the checkpoint last: killed before it, a resumed run drops this record (it is past the
        # checkpoint's step) and evaluates this step again; killed after, nothing is missing
        write_metrics(out_dir, run.history)
        plot_losses(out_dir, run.history, f"lm (numpy engine): best validation {run.best_val:.4f}")
        if improved and train_config.keep_best:
            best = {"task": "lm", "step": run.step, "val_loss": val_loss}
            save_checkpoint(out_dir / BEST_DIR, weights=model.state_dict(), configs=configs, state=best)
        save()
        if log is not None:
            test = f"  test {rec['test_loss']:.4f}" if "test_loss" in rec else ""
            train = f"{rec['train_loss']:.4f}" if rec["train_loss"] is not None else "-"
            log(
                f"step {run.step}: train {train}  val {val_loss:.4f}{test}  lr {opt.lr:.2e}  ({run.elapsed:.0f}s)"
                + ("  early stop" if run.stopped_early else "")
            )
        return rec

    every = train_config.checkpoint_every
    reset_rng = generators["state_reset"]
    # overflow is caught explicitly (non-finite loss or weights), so NumPy's warnings would only be noise
    with bar, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        while not done():
            t0 = time.perf_counter()
            x, y, reset = batcher.next_batch()
            if reset:
                run.carry = None
            elif train_config.state_reset_prob > 0:
                zero = reset_rng.random(B) < train_config.state_reset_prob  # (B,) streams to restart
                for h in run.carry if isinstance(run.carry, tuple) else (run.carry,):
                    h[:, zero] = 0
            opt.lr = schedule.lr(run.step, run.elapsed)
            logits, run.carry = model.forward(x, run.carry)  # plain arrays: no gradient crosses chunks
            loss, dlogits = cross_entropy(logits, y)
            if not math.isfinite(loss):
                raise stop(f"loss: became {loss}")
            model.zero_grad()
            model.backward(dlogits)
            if train_config.clip_mode == "norm":
                clip_grad_norm_(model, train_config.grad_clip)
            elif train_config.clip_mode == "value":
                clip_grad_value_(model, train_config.grad_clip)
            opt.step()
            run.step += 1
            run.pending_losses.append(loss)
            run.elapsed += time.perf_counter() - t0
            bar.update(run.step, run.elapsed, loss)
            if done():
                break
            saved = run.step % train_config.eval_every == 0
            if saved:
                evaluate_and_save()
            elif every and run.step % every == 0:
                save()
                saved = True
            if stop_at_step is not None and run.step >= stop_at_step and not run.stopped_early:
                if not saved:
                    save()
                return record
        if not run.history or run.history[-1]["step"] != run.step:  # a resumed run may have nothing left to do
            record = evaluate_and_save(final=True)
    return record


def _training_state(
    run: _RunState,
    opt: optim.Optimizer,
    schedule: Schedule,
    batcher: StreamBatcher | ItemStreamBatcher,
    generators: dict[str, np.random.Generator],
    train_config: TrainConfig,
) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and the JSON of what an exact resume needs (`_load_training_state` reads them)."""
    opt_state = opt.state_dict()
    tensors = {f"optim.{k}": v for k, v in opt_state.items() if k != "step"}
    carry = () if run.carry is None else run.carry if isinstance(run.carry, tuple) else (run.carry,)
    tensors.update({f"carry.{i}": h for i, h in enumerate(carry)})
    finite = lambda v: v if math.isfinite(v) else None  # noqa: E731 - JSON has no infinity
    info = {
        "format_version": STATE_FORMAT,
        "engine": "numpy",
        "task": "lm",
        "step": run.step,
        "elapsed_s": run.elapsed,
        "pending_losses": run.pending_losses,
        "best_val": finite(run.best_val),
        "evals_since_best": run.evals_since_best,
        "stopped_early": run.stopped_early,
        "schedule": {**schedule.state_dict(), "best": finite(schedule.best)},
        "optimizer": {"name": train_config.optimizer, "step": int(opt_state["step"])},
        "data": batcher.state_dict(),
        "rng": {k: g.bit_generator.state for k, g in generators.items()},
        "carry": len(carry),
    }
    return tensors, info


def _load_training_state(
    out_dir: Path,
    model: LanguageModel,
    model_config: ModelConfig,
    opt: optim.Optimizer,
    schedule: Schedule,
    batcher: StreamBatcher | ItemStreamBatcher,
    generators: dict[str, np.random.Generator],
) -> _RunState:
    """Restore what `train_lm` saved in `out_dir` into the fresh objects given; returns the run state."""
    ckpt = load_checkpoint(out_dir)  # verified: a damaged checkpoint is an error before anything runs
    st, tensors = ckpt.state, ckpt.extra_tensors
    if st is None or tensors is None or "optimizer" not in st:
        raise CheckpointError(f"{out_dir}: holds weights but no training state, so it cannot be resumed")
    if st.get("engine") != "numpy" or st.get("format_version") != STATE_FORMAT:
        raise CheckpointError(
            f"{out_dir}: expected the training state of a NumPy-engine run (format {STATE_FORMAT}), "
            f"got engine {st.get('engine', 'torch')!r}, format {st.get('format_version')!r}"
        )
    if ckpt.configs.get("model_config") != model_config.to_dict():
        raise ValueError(f"resume: the model config differs from the one saved in {out_dir}/model_config.json")
    model.load_state_dict(ckpt.weights)
    if st["optimizer"].get("name") != type(opt).__name__.lower():
        raise ValueError(
            f"resume: expected the optimizer saved in {out_dir} ({st['optimizer'].get('name')!r}), "
            f"got {type(opt).__name__.lower()!r}"
        )
    opt.load_state_dict(
        {
            "step": st["optimizer"]["step"],
            **{k[len("optim.") :]: v for k, v in tensors.items() if k.startswith("optim.")},
        }
    )
    sched = dict(st["schedule"])
    schedule.load_state_dict({**sched, "best": math.inf if sched.get("best") is None else sched["best"]})
    batcher.load_state_dict(st["data"])
    for name, gen in generators.items():
        gen.bit_generator.state = st["rng"][name]
    carry = tuple(np.array(tensors[f"carry.{i}"], dtype=model.dtype) for i in range(int(st["carry"])))
    step = int(st["step"])
    return _RunState(
        step=step,
        elapsed=float(st["elapsed_s"]),
        carry=None if not carry else carry if model_config.cell == "lstm" else carry[0],
        pending_losses=[float(x) for x in st["pending_losses"]],
        # the metrics of evaluations after this checkpoint belong to the part of the run being redone
        history=read_metrics(out_dir, up_to_step=step),
        best_val=math.inf if st.get("best_val") is None else float(st["best_val"]),
        evals_since_best=int(st["evals_since_best"]),
        stopped_early=bool(st["stopped_early"]),
    )
