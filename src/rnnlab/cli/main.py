"""`rnnlab` command line: train, sample, eval, gradcheck (and the experiments' commands).

    rnnlab train [TASK] [options]     TASK: lm (the default when omitted); see `TASKS`
    rnnlab sample RUN [options]       text from a language-model run, either engine
    rnnlab eval RUN [--data FILE]     mean loss (nats per token) on the run's validation split or a file

Options come from flags, from a TOML file (`--config run.toml`: the same names, `-` or `_`), or
from the task's recipe defaults, in that order of precedence. Every user error ends in one line
on stderr (`error: …`) and exit status 2, never a traceback; a run that breaks (the loss becomes
NaN) ends with one line and status 1 and keeps the last good checkpoint; Ctrl-C (or SIGTERM, as a
scheduler or `timeout` sends) ends with status 130 and keeps the last checkpoint.

Adding a task (classify, tag, forecast, seq2seq): write a `rnnlab.training.trainer.Task`, then
register it here with `register_task(name, help=..., add_arguments=..., build=...)`:
`add_arguments(parser)` adds the task's own options and calls `add_common_arguments(parser)` for
the ones every task shares (data, budget, optimiser, schedule, checkpoints, device), and
`build(args, options)` returns `(task, train_config)`, where `options` is the dict of resolved
option values (flags > TOML > the defaults passed to `register_task`). The generic `run_task`
then trains, resumes, writes the run folder and prints the last metrics record as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from .. import __version__
from ..config import (
    CELLS,
    CLIP_MODES,
    INITS,
    LEVELS,
    OPTIMIZERS,
    PRECISIONS,
    RESUMABLE_FIELDS,
    SCHEDULES,
    ModelConfig,
    SampleConfig,
    TrainConfig,
)

DEFAULT_MAX_STEPS = 2000

# ---------------------------------------------------------------------------------------------
# recipes: the defaults of `rnnlab train lm`, per engine and kind of data

# The NumPy engine's defaults (issue 2; unchanged).
NUMPY_LM_DEFAULTS: dict[str, Any] = {
    "cell": "lstm",
    "nonlinearity": "tanh",
    "hidden_size": 512,
    "layers": 1,
    "embedding_dim": 64,
    "dropout": 0.0,
    "init": "pytorch",
    "forget_bias": None,
    "batch_size": 32,
    "seq_len": 64,
    "optimizer": "adam",
    "lr": 3e-3,
    "lr_schedule": "cosine",
    "lr_min_ratio": 0.1,
    "warmup_steps": 0,
    "weight_decay": 0.0,
    "clip_mode": "norm",
    "grad_clip": 5.0,
    "eval_every": 250,
    "eval_batch_size": 32,
    "val_fraction": 0.1,
    "state_reset_prob": 0.01,
    "seed": 1337,
}

# The torch engine on running text. Measured on tinyshakespeare (first 90% train, last 10%
# validation) on 2-core CPUs, nothing else running: val 1.49 nats/char after 90 s of training on
# an AMD Zen 4, 1.50-1.51 on a slower Zen 3 (docs/benchmarks.md). What made the difference, at a
# fixed 90 s: many small updates (a small batch costs little throughput on a CPU; batch 16 x 32
# reached a lower loss than 8 x 128 on the same number of tokens, at 0.92x the tokens/s), a
# 256-unit LSTM rather than a 512-unit one (3x the tokens in the same time beats the extra
# capacity), AdamW with decoupled weight decay 0.1, a high peak rate (8e-3) with clipping at 1 and
# a cosine decay to ~0 over the time budget, and PyTorch's fused Adam kernel (the update of a
# small model dominated the step otherwise). Evaluation cuts the validation text into as many
# streams as training uses: each stream starts with no context, and 128 of them cost ~0.007
# nats/char over 16 (see docs/benchmarks.md).
TORCH_TEXT_RECIPE: dict[str, Any] = {
    **NUMPY_LM_DEFAULTS,
    "cell": "lstm",
    "hidden_size": 256,
    "layers": 1,
    "embedding_dim": 64,
    "batch_size": 16,
    "seq_len": 32,
    "eval_batch_size": 16,
    "optimizer": "adamw",
    "lr": 8e-3,
    "lr_min_ratio": 0.02,
    "warmup_steps": 20,
    "weight_decay": 0.1,
    "grad_clip": 1.0,
    "eval_every": 1000,
    "state_reset_prob": 0.01,
}

# The torch engine on one item per line. Measured on names.txt (1,000 names held out as a test
# split) on the same CPU: see docs/torch-training.md. The items are re-shuffled every epoch (a
# model carrying its state across items otherwise memorises which name follows which), and a
# 10-epoch budget on 200k characters wants dropout.
TORCH_LINES_RECIPE: dict[str, Any] = {
    **TORCH_TEXT_RECIPE,
    "hidden_size": 256,
    "dropout": 0.25,
    "seq_len": 64,
    "batch_size": 16,
    "eval_every": 1000,
}

# Options every torch task shares, with their defaults where no recipe sets them.
COMMON_DEFAULTS: dict[str, Any] = {
    "lr_min_ratio": 0.1,
    "momentum": 0.9,
    "eval_batch_size": 128,
    "plateau_factor": 0.5,
    "plateau_patience": 1,
    "patience": None,
    "checkpoint_every": None,
    "keep_best": True,
    "device": "auto",
    "precision": "auto",
    "threads": None,
    "test_size": 0,
    "level": "char",
    "per_line": False,
    "tie_weights": False,
    "overwrite": False,
}


# ---------------------------------------------------------------------------------------------
# the task registry


@dataclass
class TaskSpec:
    """One `rnnlab train TASK`: its options, its defaults, and how to build it.

    Attributes:
        name: the subcommand ('lm', 'classify', ...).
        help: one line for `rnnlab train --help`. description: for `rnnlab train TASK --help`.
        add_arguments: adds the task's own options to its parser (defaults must be None, so that
            the TOML file and `defaults` can fill what the command line leaves out).
        build: (args, options) -> (Task, TrainConfig); options are the resolved values, plus
            `_run_dir` (the run folder, a Path) for a task that keeps data files in it (a fresh
            run that fails before its first checkpoint removes the folder it created).
        defaults: option -> default value where neither a flag nor the TOML file gives one;
            a callable gets the partly resolved options and returns the dict (recipes that
            depend on the data).
        run: replaces the generic `run_task` (the lm task uses it for --engine numpy).
    """

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    build: Callable[[argparse.Namespace, dict[str, Any]], tuple[Any, TrainConfig]] | None = None
    defaults: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]] = field(default_factory=dict)
    run: Callable[[argparse.Namespace], int] | None = None


TASKS: dict[str, TaskSpec] = {}


def register_task(
    name: str,
    *,
    help: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    build: Callable[[argparse.Namespace, dict[str, Any]], tuple[Any, TrainConfig]] | None = None,
    defaults: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    run: Callable[[argparse.Namespace], int] | None = None,
) -> TaskSpec:
    """Add `rnnlab train NAME`. See the module docstring.

    Example:
        >>> register_task("classify", help="text classification", description="...",   # doctest: +SKIP
        ...               add_arguments=add_classify_args, build=build_classify, defaults={"lr": 1e-3})
    """
    spec = TaskSpec(name, help, description, add_arguments, build, defaults or {}, run)
    TASKS[name] = spec
    return spec


# ---------------------------------------------------------------------------------------------
# options shared by every task


def _default_text(defaults: dict[str, Any] | None, key: str, fallback: str = "the task's recipe") -> str:
    """'(default: …)' for a help line: the task's value(s) for `key`, or `fallback`."""
    if not defaults or key not in defaults:
        return f"(default: {fallback})"
    value = defaults[key]
    return (
        f"(default: {value})" if not isinstance(value, str) or not value.startswith("@") else f"(default: {value[1:]})"
    )


def add_common_arguments(
    p: argparse.ArgumentParser, defaults: dict[str, Any] | None = None, *, data_help: str | None = None
) -> None:
    """Data, budget, optimiser, schedule, evaluation, checkpoints, device: the options of every task.

    Every argparse default is None here and resolved later (flag > TOML > task defaults), so that
    a TOML file can fill what the command line leaves out; the help text states the default.

    Args:
        p: the task's parser.
        defaults: the task's defaults, to quote in the help text (a string value starting with
            '@' is quoted as is, for defaults that depend on other options); None: "the task's recipe".
        data_help: the help text of --data (what the task reads, and whether it is required).
    """
    d = lambda key, fallback="the task's recipe": _default_text(defaults, key, fallback)  # noqa: E731
    p.add_argument("--data", help=data_help or "the data file (required)")
    p.add_argument("--out", help="run folder for checkpoints, metrics.jsonl and loss.png (default: runs/<data name>)")
    p.add_argument(
        "--config", metavar="FILE.toml", help="read options from a TOML file (flags override it) (default: none)"
    )
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR exactly where its last checkpoint left off (default: a new run)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        default=None,
        help="replace a run already in --out once the new run has saved a checkpoint (without it, a new run refuses a folder that holds one)",
    )
    g = p.add_argument_group("budget and checkpoints")
    g.add_argument(
        "--max-steps", type=int, help=f"stop after N steps (default: {DEFAULT_MAX_STEPS} if --max-time is not given)"
    )
    g.add_argument(
        "--max-time", type=float, help="stop after SECONDS of training, evaluation not counted (default: no time limit)"
    )
    g.add_argument(
        "--eval-every", type=int, help=f"steps between evaluations on the whole validation split {d('eval_every')}"
    )
    g.add_argument("--checkpoint-every", type=int, help="also checkpoint every N steps (default: at evaluations)")
    g.add_argument(
        "--patience", type=int, help="stop after N evaluations without a better validation loss (default: never)"
    )
    g.add_argument(
        "--no-keep-best",
        dest="keep_best",
        action="store_false",
        default=None,
        help="do not keep the best weights in RUN/best/",
    )
    g.add_argument("--val-fraction", type=float, help="held-out fraction for validation (default: 0.1)")
    g.add_argument("--seed", type=int, help="random seed (default: 1337)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=OPTIMIZERS, help=f"optimiser {d('optimizer', 'adamw')}")
    g.add_argument("--lr", type=float, help=f"peak learning rate {d('lr')}")
    g.add_argument(
        "--schedule",
        "--lr-schedule",
        dest="lr_schedule",
        choices=SCHEDULES,
        help="after warm-up: constant, cosine decay over the budget, or plateau (halve when validation stalls) (default: cosine)",
    )
    g.add_argument("--warmup-steps", type=int, help=f"linear warm-up steps {d('warmup_steps')}")
    g.add_argument(
        "--lr-min-ratio",
        type=float,
        help=f"cosine floor / plateau floor as a fraction of --lr {d('lr_min_ratio', '0.1')}",
    )
    g.add_argument("--plateau-factor", type=float, help="--schedule plateau: multiply the rate by this (default: 0.5)")
    g.add_argument(
        "--plateau-patience", type=int, help="--schedule plateau: evaluations without improvement first (default: 1)"
    )
    g.add_argument("--weight-decay", type=float, help=f"weight decay (decoupled for adamw) {d('weight_decay')}")
    g.add_argument("--momentum", type=float, help="SGD momentum (default: 0.9)")
    g.add_argument("--clip-mode", choices=CLIP_MODES, help="gradient clipping (default: norm)")
    g.add_argument("--grad-clip", type=float, help=f"clipping threshold {d('grad_clip')}")
    g.add_argument(
        "--batch-size", type=int, help=f"examples (streams) per step, across all processes {d('batch_size')}"
    )
    g.add_argument(
        "--eval-batch-size",
        type=int,
        help="examples per evaluation batch; a language model cuts its validation text into this many streams, "
        f"each starting with no context {d('eval_batch_size', '128')}",
    )
    g = p.add_argument_group("hardware")
    g.add_argument("--device", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps (default: auto)")
    g.add_argument(
        "--precision", choices=PRECISIONS, help="auto (bf16 autocast on CUDA, else fp32), fp32 or bf16 (default: auto)"
    )
    g.add_argument(
        "--threads", type=int, help="CPU threads for torch (default: 1 for a small model, else torch's choice)"
    )
    p.add_argument("--quiet", action="store_true", default=None, help="no progress bar or evaluation lines")


def _load_toml(path: str) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        raise ValueError(
            "config: reading TOML needs Python 3.11 or later (tomllib); pass the options as flags"
        ) from None
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"config: file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config: {path} is not valid TOML: {e}") from None
    return data


def _check_toml_value(action: argparse.Action, key: str, value: Any, path: str) -> None:
    """A TOML value has the type its flag would give: a switch takes true or false, not "false"."""
    if action.nargs == 0:  # --quiet, --per-line, --no-keep-best, ...
        expected, ok = "true or false", isinstance(value, bool)
    elif action.choices is not None:
        expected, ok = f"one of {list(action.choices)}", value in action.choices
    elif action.type is int:
        expected, ok = "an integer", isinstance(value, int) and not isinstance(value, bool)
    elif action.type is float:
        expected, ok = "a number", isinstance(value, (int, float)) and not isinstance(value, bool)
    elif action.dest == "column" or action.dest.endswith("_column"):  # by header name or by index
        expected, ok = "a column name or index", isinstance(value, (str, int)) and not isinstance(value, bool)
    else:  # a path, a device, a name
        expected, ok = "a string", isinstance(value, str)
    if not ok:
        raise ValueError(f"config: {key} in {path}: expected {expected}, got {value!r}")


DATA_OPTIONS = ("data", "val", "test")  # local files among them are recorded as absolute paths
DOWNLOAD_CACHE = "~/.cache/rnnlab or $RNNLAB_CACHE"  # where a --data URL is kept (`data.download.default_cache_dir`)


def resolve_options(
    args: argparse.Namespace, parser: argparse.ArgumentParser, defaults: dict[str, Any]
) -> dict[str, Any]:
    """Every option's value: the flag if given, else the TOML file's, else `defaults`, else None.

    Raises:
        ValueError: the TOML file names an unknown option (listing the known ones).
    """
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config", "resume", "task")}
    dests = set(actions)
    toml: dict[str, Any] = {}
    if getattr(args, "config", None):
        raw = _load_toml(args.config)
        for key, value in raw.items():
            dest = key.replace("-", "_")
            if dest == "schedule":
                dest = "lr_schedule"
            if dest not in dests:
                raise ValueError(
                    f"config: unknown option {key!r} in {args.config}; known: {', '.join(sorted(d.replace('_', '-') for d in dests))}"
                )
            _check_toml_value(actions[dest], key, value, args.config)
            toml[dest] = value
    out: dict[str, Any] = {}
    for dest in dests:
        value = getattr(args, dest, None)
        if value is None:
            value = toml.get(dest, defaults.get(dest))
        if dest in DATA_OPTIONS and isinstance(value, str) and value.strip() and os.path.isfile(value):
            # the run folder records it: absolute, so eval, sample and --resume work from any folder
            value = os.path.abspath(value)
        out[dest] = value
    out["_given"] = {d for d in dests if getattr(args, d, None) is not None} | set(toml)
    return out


def train_config_from(options: dict[str, Any], **fixed: Any) -> TrainConfig:
    """A `TrainConfig` from resolved options (names as the CLI's dests), budget defaulted."""
    names = {f for f in TrainConfig.__dataclass_fields__}
    kw = {k: v for k, v in options.items() if k in names and v is not None}
    kw.update(fixed)
    if kw.get("max_steps") is None and kw.get("max_time") is None:
        kw["max_steps"] = DEFAULT_MAX_STEPS
    return TrainConfig(**kw)


# Options that may accompany --resume: the budget and where/how it runs, not what it computes.
# (`--engine` is taken separately: a resumed run keeps the engine that trained it)
RESUME_OPTIONS = (RESUMABLE_FIELDS - {"engine"}) | {"quiet"}
# a run's own validation and test files, which --resume may find in a new place (tasks that have them)
MOVED_FILE_OPTIONS = {"val", "test"}


def _holds_run(out: Path) -> bool:
    from ..training.checkpoint import holds_checkpoint

    return holds_checkpoint(out)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM before a new run's first checkpoint; args[0] says what is left."""


@contextlib.contextmanager
def _run_folder(out: Path) -> Iterator[None]:
    """Create the run folder `out` for a new run; if the run fails or is interrupted before its
    first checkpoint, the folders it created go with it.

    Created first, so that a path that cannot be a folder is a clear error before any work. Data
    may be written into it while a run is built (the LM's token file and split). Under torchrun
    only rank 0 removes it. An interrupt before the first checkpoint comes out as `RunInterrupted`.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: expected a folder for the run, got the file {out}")
    created = not out.exists()
    parents = [p for p in out.absolute().parents if not p.exists()]  # the deepest first
    try:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"out: cannot create the run folder {out}: {e.strerror or e}") from None
        try:  # a folder that cannot be written to is found now, not at the first checkpoint
            tempfile.TemporaryFile(dir=out).close()
        except OSError as e:
            raise ValueError(f"out: cannot write into the run folder {out}: {e.strerror or e}") from None
        yield
    except BaseException as e:
        saved = _holds_run(out)
        if created and not saved and os.environ.get("RANK", "0") == "0":
            shutil.rmtree(out, ignore_errors=True)
            for parent in parents:
                try:
                    parent.rmdir()  # only if empty
                except OSError:
                    break
        if isinstance(e, KeyboardInterrupt) and not saved and not isinstance(e, RunInterrupted):
            raise RunInterrupted("interrupted before the first checkpoint; nothing was saved") from None
        raise


def _checkpoint_and_logs() -> set[str]:
    """The names any run writes at the top of its folder, whatever its task: weights, training
    state, best/, the metrics and the plot (its JSON configs come on top, see `_clashing_files`)."""
    from ..training.checkpoint import BEST_DIR, STATE_JSON_FILE, STATE_TENSORS_FILE, WEIGHTS_FILE
    from ..training.metrics import METRICS_FILE, PLOT_FILE

    return {WEIGHTS_FILE, STATE_JSON_FILE, STATE_TENSORS_FILE, METRICS_FILE, PLOT_FILE, BEST_DIR}


# the configs (`<name>.json`) that the runs of the tasks write beside their weights
_CONFIG_NAMES = (
    "model_config",
    "train_config",
    "vocab",
    "labels",
    "target_vocab",
    "char_vocab",
    "normalizer",
    "task_options",
    "data_files",
)


def _clashing_files(out: Path) -> list[Path]:
    """The files in `out` (a folder holding no run) that a new run would overwrite."""
    from ..training.checkpoint import MANIFEST

    names = {MANIFEST, *_checkpoint_and_logs(), *(f"{c}.json" for c in _CONFIG_NAMES)}
    return [out / n for n in sorted(names) if (out / n).exists()]


def _run_files(out: Path) -> list[Path]:
    """What a run wrote in `out`: its checkpoint files (as its manifest lists them), best/, data/,
    the metrics and the plot. Other files in the folder are not the run's."""
    from ..training.checkpoint import MANIFEST, NEXT_MANIFEST, CheckpointError, read_json
    from ..training.lm_data import DATA_DIR

    names = {*_checkpoint_and_logs(), DATA_DIR}
    names |= {NEXT_MANIFEST, *(p.name for p in out.glob(".next.*"))}  # a save that a kill interrupted
    for manifest in (MANIFEST, NEXT_MANIFEST):
        with contextlib.suppress(CheckpointError, OSError, AttributeError):
            names |= {n for n in read_json(out / manifest).get("files", {}) if "/" not in n and "\\" not in n}
    # the manifest first: a folder whose files are being moved must not load as a checkpoint
    return [p for p in [out / MANIFEST, *(out / n for n in sorted(names))] if p.exists()]


@contextlib.contextmanager
def _new_run_in(out: Path, overwrite: bool) -> Iterator[None]:
    """A new run never replaces an earlier run in `out` unless asked to, and then only once it has
    saved a checkpoint of its own.

    Without `overwrite`, a folder that holds a run is refused. With it, the earlier run's files
    are moved aside into a hidden folder beside `out` while the new run trains. They are deleted
    when it ends having saved a checkpoint of its own, and put back if it fails (or is
    interrupted) before its first one, so a broken run never costs the earlier one. Under
    torchrun, rank 0 moves the files.
    """
    from ..training.checkpoint import MANIFEST, set_aside_folders, set_aside_prefix

    refusal = (
        f"out: {out} already holds a run; continue it with --resume {out}, replace it with --overwrite, "
        "or choose another --out"
    )
    if os.environ.get("RANK", "0") != "0":
        # every rank refuses by itself, by rank 0's test, rather than wait for rank 0; a new run
        # writes its checkpoint only after all ranks have joined, so it cannot be mistaken for an earlier run's
        if not overwrite and _holds_run(out):
            raise ValueError(refusal)
        yield
        return
    real = out.resolve()  # `--out .` has no name of its own
    stranded = set_aside_folders(real)
    if stranded:
        print(
            f"note: {stranded[0]} holds the files of an earlier run of {out} that an interrupted --overwrite "
            "left there (rnnlab does not touch it)",
            file=sys.stderr,
        )
    # a folder holds a run once a checkpoint was written there; a data/ folder alone is what a
    # run stopped before its first checkpoint left behind. User files are not a run, but those
    # under the names a run writes would be overwritten: refused, or, with --overwrite, moved
    # aside like an earlier run's files
    holds = _holds_run(out)
    old = _run_files(out) if holds else _clashing_files(out)
    if not old:
        yield
        return
    if not overwrite:
        if holds:
            raise ValueError(refusal)
        names = ", ".join(p.name for p in old)
        raise ValueError(
            f"out: {out} holds files that a run writes ({names}) but no run; choose another --out, or "
            "replace them with --overwrite"
        )
    aside = Path(tempfile.mkdtemp(prefix=set_aside_prefix(real), dir=real.parent))
    for path in old:
        os.replace(path, aside / path.name)
    try:
        yield
    except BaseException as e:
        if not (out / MANIFEST).exists():  # the new run saved nothing: the earlier one comes back
            for path in _run_files(out):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            moved = sorted(aside.iterdir(), key=lambda p: p.name == MANIFEST)  # the manifest last
            for path in moved:
                os.replace(path, out / path.name)
            aside.rmdir()
            if isinstance(e, RunInterrupted):
                e.args = (f"interrupted before the first checkpoint; the earlier run in {out} is kept",)
            elif isinstance(e, OSError) and e.strerror:  # a full disk, say: the message is built from its parts
                e.strerror = f"{e.strerror} (the earlier run in {out} is kept)"
            elif isinstance(e, (ValueError, RuntimeError)) and e.args and isinstance(e.args[0], str):
                e.args = (f"{e.args[0]}; the earlier run in {out} is kept", *e.args[1:])
        else:
            shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def run_task(spec: TaskSpec, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Train a registered task with the torch `Trainer` (fresh or `--resume`), print the last record."""
    if args.resume:
        task, config, out, options = _resume(spec, args, parser)
        _announce_resume(out, options["_checkpoint"], config, options)
        _fit(task, config, out, args, quiet=bool(options.get("quiet")))
        return 0
    defaults = {**COMMON_DEFAULTS}
    options = resolve_options(args, parser, {})
    spec_defaults = spec.defaults(options) if callable(spec.defaults) else spec.defaults
    defaults.update(spec_defaults)
    options = resolve_options(args, parser, defaults)
    assert spec.build is not None
    out = Path(options["out"]) if options.get("out") else _default_out(options.get("data"), spec.name)
    with _new_run_in(out, bool(options.get("overwrite"))), _run_folder(out):
        # the task may write its data into the run folder while it is built
        task, config = spec.build(args, {**options, "_run_dir": out})
        _fit(task, config, out, args, quiet=bool(options.get("quiet")))
    return 0


def _fit(task: Any, config: TrainConfig, out: Path, args: argparse.Namespace, *, quiet: bool) -> None:
    """Train `task` into the run folder `out` (fresh or `--resume`) and print the last record (rank 0)."""
    from ..training.trainer import Trainer, log_to_stderr

    trainer = Trainer(
        task, config, out, resume=bool(args.resume), progress=not quiet, log=None if quiet else log_to_stderr
    )
    if trainer.is_main and not quiet:
        log_to_stderr(_describe(task, config, out, trainer))
    record = trainer.fit()
    if trainer.is_main:
        print(json.dumps({"run": str(out), **record}))
    if trainer.dist.enabled:
        # The DistributedDataParallel wrapper holds the process group: free it before the group is
        # destroyed, so that gloo's threads stop now and not while the interpreter shuts down (where
        # they sometimes abort the process after a successful run).
        del trainer
        gc.collect()
    _shutdown_distributed()


def _shutdown_distributed() -> None:
    try:
        import torch.distributed as dist
    except ImportError:
        return
    if dist.is_available() and dist.is_initialized():
        # every rank reaches this point before any tears the group down: a rank that exits while
        # another still has gloo work in flight can abort in gloo's threads at interpreter exit
        dist.barrier()
        dist.destroy_process_group()


def _describe(task: Any, config: TrainConfig, out: Path, trainer: Any) -> str:
    data = getattr(task, "data", None)
    model = trainer.model
    n_params = sum(p.numel() for p in model.parameters())
    where = f"{trainer.device}" + (f" x{trainer.dist.world_size} processes" if trainer.dist.enabled else "")
    if data is not None and hasattr(data, "vocab"):
        mc = task.model_config
        return (
            f"data: {data.name}: {len(data.train):,} train / {len(data.val):,} val tokens"
            + (f" / {len(data.test):,} test" if getattr(data, "test", None) is not None else "")
            + f", vocabulary {len(data.vocab)}; model: {mc.cell} {mc.num_layers}x{mc.hidden_size} "
            f"({n_params:,} parameters) on {where}; run folder: {out}"
        )
    return f"task {task.name}: {n_params:,} parameters on {where}; run folder: {out}"


def _default_out(data: str | None, task: str) -> Path:
    return Path("runs") / (Path(data).stem if data else ("names" if task == "lm" else task))


def _resume_config(args: argparse.Namespace, parser: argparse.ArgumentParser, task: str):
    """The checkpoint in `args.resume`, the resolved options and the run's saved `TrainConfig`
    with the changes that --resume allows (both engines), for a run of `task`."""
    from ..training.checkpoint import load_checkpoint

    run = Path(args.resume)
    ckpt = load_checkpoint(run)  # verified: a damaged checkpoint is an error before anything runs
    if ckpt.state is None or "optimizer" not in ckpt.state:
        raise ValueError(
            f"resume: {run} holds weights but no training state (a best/ folder, or a run of an older "
            "rnnlab?); resume the run folder itself"
        )
    saved_task = ckpt.state.get("task", "lm")  # the NumPy engine trains language models only
    if saved_task != task:
        raise _other_task(run, saved_task, task)
    options = resolve_options(args, parser, {})
    allowed = RESUME_OPTIONS | (MOVED_FILE_OPTIONS & set(vars(args)))
    extra = sorted(options["_given"] - allowed - {"out", "engine"})
    if extra:
        raise ValueError(
            f"resume: continues the saved run with its own options; cannot change {', '.join('--' + e.replace('_', '-') for e in extra)} "
            f"(allowed with --resume: {', '.join('--' + o.replace('_', '-') for o in sorted(allowed))})"
        )
    if options.get("out") and Path(options["out"]).resolve() != run.resolve():
        raise ValueError(f"resume: the run continues in its own folder {run}; --out {options['out']} differs")
    saved = dict(ckpt.configs["train_config"])
    changes = {k: options[k] for k in RESUME_OPTIONS - {"quiet"} if k in options["_given"]}
    return ckpt, options, TrainConfig.from_dict({**saved, **changes})


def _other_task(run: str | Path, saved: str, task: str) -> ValueError:
    """The error for `rnnlab train TASK --resume RUN` where RUN was trained by another task."""
    return ValueError(
        f"resume: {run} was trained by `rnnlab train {saved}`, not `rnnlab train {task}`; "
        f"resume it with `rnnlab train {saved} --resume {run}`"
    )


def _announce_resume(run: Path, ckpt: Any, config: TrainConfig, options: dict[str, Any]) -> None:
    """Say where a resumed run starts, and when its budget leaves nothing to train (rank 0, not quiet)."""
    if options.get("quiet") or os.environ.get("RANK", "0") != "0":
        return
    step, elapsed = int(ckpt.state.get("step", 0)), float(ckpt.state.get("elapsed_s", 0.0))
    print(f"resuming {run} at step {step} ({config.engine} engine)", file=sys.stderr)
    met = [f"--max-steps {config.max_steps}"] if config.max_steps is not None and step >= config.max_steps else []
    if config.max_time is not None and elapsed >= config.max_time:
        met.append(f"--max-time {config.max_time:g} (trained {elapsed:.0f} s)")
    if met:
        print(
            f"note: the run has already reached {' and '.join(met)}; nothing to train (give a larger budget)",
            file=sys.stderr,
        )
    elif ckpt.state.get("stopped_early"):
        print("note: the run stopped early (--patience); nothing to train", file=sys.stderr)


def _saved_engine(run: Path) -> str:
    """The engine that trained the run in `run` ("torch" where its train_config.json does not say)."""
    from ..training.checkpoint import CheckpointError, read_json

    try:
        engine = read_json(run / "train_config.json").get("engine", "torch")
    except (CheckpointError, OSError, AttributeError):
        return "torch"  # not a run folder: `load_checkpoint` will say what is wrong with it
    return engine if engine in ("numpy", "torch") else "torch"


def _resume(spec: TaskSpec, args: argparse.Namespace, parser: argparse.ArgumentParser):
    run = Path(args.resume)
    ckpt, options, config = _resume_config(args, parser, spec.name)
    saved = dict(ckpt.configs["train_config"])
    if spec.name == "lm":
        from ..data.words import vocab_from_json
        from ..training.lm_data import open_run_splits
        from ..training.lm_task import LMTask

        vocab_json = dict(ckpt.configs["vocab"])
        vocab_json.pop("per_line", None)
        # the run's own token file and split, checked against the data file: never recomputed
        data = open_run_splits(run, config, vocab_from_json(vocab_json))
        task = LMTask(data, ModelConfig.from_dict(ckpt.configs["model_config"]), config)
    else:
        assert spec.build is not None
        # files given again in a new place, absolute as resolve_options made them
        moved = {k: options[k] for k in DATA_OPTIONS if k in options["_given"]}
        task, _ = spec.build(args, {**options, **saved, "_resume": ckpt, "_moved": moved})
    return task, config, run, {**options, "_checkpoint": ckpt}


# ---------------------------------------------------------------------------------------------
# rnnlab train lm


def _lm_help_defaults() -> dict[str, Any]:
    """Each lm option's default for the help text: one value, or the three recipes' values."""
    out: dict[str, Any] = {}
    for key in {**TORCH_TEXT_RECIPE, **TORCH_LINES_RECIPE, **NUMPY_LM_DEFAULTS}:
        text, lines, numpy = TORCH_TEXT_RECIPE.get(key), TORCH_LINES_RECIPE.get(key), NUMPY_LM_DEFAULTS.get(key)
        if text == lines == numpy:
            out[key] = text
        elif text == lines:
            out[key] = f"@{text}; {numpy} with --engine numpy"
        else:
            out[key] = f"@{text} running text, {lines} --per-line; {numpy} with --engine numpy"
    return out


def _add_lm_arguments(p: argparse.ArgumentParser) -> None:
    defaults = _lm_help_defaults()
    d = lambda key, fallback="": _default_text(defaults, key, fallback)  # noqa: E731
    p.add_argument(
        "--engine",
        choices=["torch", "numpy"],
        default=None,
        help="torch (PyTorch kernels) or numpy (rnnlab.scratch, written out by hand) (default: torch if installed, else numpy)",
    )
    g = p.add_argument_group("language model data")
    g.add_argument("--level", choices=LEVELS, help="tokens: characters or words (default: char)")
    g.add_argument(
        "--per-line",
        action="store_true",
        default=None,
        help="one item per line (names, words): learn to generate whole lines",
    )
    g.add_argument(
        "--test-size", type=int, help="with --per-line: lines held out as a test split, scored at the end (default: 0)"
    )
    g.add_argument(
        "--state-reset-prob",
        type=float,
        help=f"chance a stream's carried state is zeroed before a chunk, so the model learns to start from nothing {d('state_reset_prob')}",
    )
    g.add_argument("--seq-len", type=int, help=f"truncated-BPTT length T {d('seq_len')}")
    g = p.add_argument_group("model")
    g.add_argument("--cell", choices=CELLS, help=f"recurrent cell {d('cell')}")
    g.add_argument("--nonlinearity", choices=["tanh", "relu"], help=f"vanilla RNN activation {d('nonlinearity')}")
    g.add_argument("--hidden-size", type=int, help=f"hidden units per layer {d('hidden_size')}")
    g.add_argument("--layers", type=int, help=f"stacked recurrent layers {d('layers')}")
    g.add_argument("--embedding-dim", type=int, help=f"token embedding size {d('embedding_dim')}")
    g.add_argument("--dropout", type=float, help=f"dropout between layers and before the read-out {d('dropout')}")
    g.add_argument("--init", choices=INITS, help=f"recurrent weight initialisation {d('init')}")
    g.add_argument("--forget-bias", type=float, help="initial LSTM forget-gate bias (default: the init scheme's)")
    g.add_argument(
        "--tie-weights",
        action="store_true",
        default=None,
        help="share the embedding with the read-out; the embedding size then defaults to --hidden-size (an explicit --embedding-dim must equal it)",
    )
    add_common_arguments(
        p,
        defaults,
        data_help="a UTF-8 text file, a URL or a named data set such as tinyshakespeare, downloaded once into a "
        f"cache, {DOWNLOAD_CACHE} (default: the US Census first names shipped with the `names` package, one per line)",
    )


def _lm_defaults(options: dict[str, Any]) -> dict[str, Any]:
    if (options.get("engine") or "torch") == "numpy":
        recipe = NUMPY_LM_DEFAULTS
    else:
        recipe = TORCH_LINES_RECIPE if (options.get("per_line") or options.get("data") is None) else TORCH_TEXT_RECIPE
    if options.get("tie_weights") and options.get("embedding_dim") is None:
        # one matrix serves as embedding and read-out, so its width is the hidden size
        return {**recipe, "embedding_dim": options.get("hidden_size") or recipe["hidden_size"]}
    return recipe


def _lm_model_options(options: dict[str, Any]) -> dict[str, Any]:
    return {
        "cell": options["cell"],
        "nonlinearity": options["nonlinearity"],
        "embedding_dim": options["embedding_dim"],
        "hidden_size": options["hidden_size"],
        "num_layers": options["layers"],
        "dropout": options["dropout"],
        "init": options["init"],
        "forget_bias": options["forget_bias"],
        "tie_weights": bool(options["tie_weights"]),
    }


def _build_lm(args: argparse.Namespace, options: dict[str, Any]):
    from ..training.lm_data import DATA_DIR, load_lm_splits
    from ..training.lm_task import LMTask, prepare_lm_splits

    config = train_config_from(options, engine="torch", per_line=bool(options["per_line"]))
    ModelConfig(vocab_size=1, **_lm_model_options(options))  # option errors before the data is read
    # every data error that can be found before writing surfaces here, before anything is written;
    # then the token file and the split go to RUN/data (see training.lm_data)
    run_dir = options.get("_run_dir")
    data = prepare_lm_splits(config, Path(run_dir) / DATA_DIR) if run_dir is not None else load_lm_splits(config)
    model_config = ModelConfig(vocab_size=len(data.vocab), **_lm_model_options(options))
    return LMTask(data, model_config, config), config


# the NumPy trainer implements these options at their defaults only
_TORCH_ONLY = {
    "device": "auto",
    "precision": "auto",
    "threads": None,
}


def _run_lm(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    engine = args.engine
    if engine is None and args.config:
        engine = _load_toml(args.config).get("engine")
    if args.resume:
        other = _tasks.run_task_name(args.resume)
        if other is not None:  # a classify/tag/... run: say which command resumes it, whatever --engine says
            raise _other_task(args.resume, other, "lm")
        saved_engine = _saved_engine(Path(args.resume))
        if engine is not None and engine != saved_engine:
            raise ValueError(
                f"engine: {args.resume} was trained with --engine {saved_engine} and resumes on it, got --engine {engine}"
            )
        engine = saved_engine
    if engine is None:
        # torch is an optional dependency: without it `rnnlab train` still works, on the NumPy engine
        engine = "torch" if importlib.util.find_spec("torch") is not None else "numpy"
        if engine == "numpy":
            print("note: torch is not installed; training with --engine numpy", file=sys.stderr)
    if engine == "torch":
        return run_task(TASKS["lm"], args, parser)
    if engine != "numpy":
        raise ValueError(f"engine: expected 'torch' or 'numpy', got {engine!r}")
    if args.resume:
        return _resume_numpy(args, parser)
    given = resolve_options(args, parser, {})  # flags and TOML only: the defaults depend on them
    options = resolve_options(args, parser, {**COMMON_DEFAULTS, **_lm_defaults({**given, "engine": "numpy"})})
    for key, default in _TORCH_ONLY.items():
        if key in options["_given"] and options[key] != default:
            raise ValueError(f"{key}: --{key.replace('_', '-')} is implemented by --engine torch only")
    return _train_numpy(options)


def _train_numpy(options: dict[str, Any]) -> int:
    from ..training.lm import train_lm
    from ..training.lm_data import DATA_DIR, load_lm_splits

    names = set(TrainConfig.__dataclass_fields__) - set(_TORCH_ONLY)
    train_config = train_config_from(
        {k: v for k, v in options.items() if k in names}, engine="numpy", per_line=bool(options["per_line"])
    )
    model_options = _lm_model_options(options)
    ModelConfig(vocab_size=1, **model_options)
    out = Path(options["out"]) if options.get("out") else _default_out(options.get("data"), "lm")
    quiet = bool(options.get("quiet"))
    log = None if quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    # the data path of the torch engine: running text streamed into memory-mapped ids in RUN/data
    # (never read whole), the split saved beside them
    with _new_run_in(out, bool(options.get("overwrite"))), _run_folder(out):
        data = load_lm_splits(train_config, data_dir=out / DATA_DIR)
        model_config = ModelConfig(vocab_size=len(data.vocab), **model_options)
        if log:
            log(
                f"data: {data.name}: {len(data.train):,} train / {len(data.val):,} val tokens, vocabulary {len(data.vocab)}; "
                f"model: {model_config.cell} {model_config.num_layers}x{model_config.hidden_size} (numpy engine); run folder: {out}"
            )
        record = train_lm(model_config, train_config, out, data, progress=not quiet, log=log)
    print(json.dumps({"run": str(out), **record}))
    return 0


def _resume_numpy(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`rnnlab train lm --resume RUN` for a run of the NumPy engine: on from its checkpoint, exactly."""
    from ..data.words import vocab_from_json
    from ..training.lm import train_lm
    from ..training.lm_data import open_run_splits

    run = Path(args.resume)
    ckpt, options, config = _resume_config(args, parser, "lm")
    for key in ("device", "threads"):
        if key in options["_given"]:
            raise ValueError(f"{key}: --{key.replace('_', '-')} is implemented by --engine torch only")
    vocab_json = dict(ckpt.configs["vocab"])
    vocab_json.pop("per_line", None)
    # the run's own token file and split, checked against the data file: never recomputed
    data = open_run_splits(run, config, vocab_from_json(vocab_json))
    quiet = bool(options.get("quiet"))
    log = None if quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    _announce_resume(run, ckpt, config, options)
    model_config = ModelConfig.from_dict(ckpt.configs["model_config"])
    record = train_lm(model_config, config, run, data, resume=True, progress=not quiet, log=log)
    print(json.dumps({"run": str(run), **record}))
    return 0


register_task(
    "lm",
    help="a language model over characters or words (char-rnn, makemore, word_language_model)",
    description="Train a language model with stateful truncated BPTT. With no --data it trains on the US Census first "
    "names shipped by the 'names' package and learns to invent names. Recipes (torch engine): running text "
    f"{TORCH_TEXT_RECIPE['cell']} {TORCH_TEXT_RECIPE['hidden_size']}, batch {TORCH_TEXT_RECIPE['batch_size']}x"
    f"{TORCH_TEXT_RECIPE['seq_len']}, AdamW lr {TORCH_TEXT_RECIPE['lr']:g}; one item per line "
    f"{TORCH_LINES_RECIPE['cell']} {TORCH_LINES_RECIPE['hidden_size']}, batch {TORCH_LINES_RECIPE['batch_size']}x"
    f"{TORCH_LINES_RECIPE['seq_len']}. --engine numpy keeps the NumPy engine's defaults (lstm 512, batch 32x64, Adam 3e-3).",
    add_arguments=_add_lm_arguments,
    build=_build_lm,
    defaults=_lm_defaults,
)
from . import tasks as _tasks  # noqa: E402  (registers classify, tag, forecast, seq2seq)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (TASK: " + ", ".join(TASKS) + "; default lm)",
        description="Train a model. TASK is one of: "
        + "; ".join(f"{name}: {spec.help}" for name, spec in TASKS.items())
        + ". Without a TASK, lm is meant: `rnnlab train --data input.txt` trains a character language model.",
    )
    tasks = p.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, spec in TASKS.items():
        tp = tasks.add_parser(name, help=spec.help, description=spec.description)
        spec.add_arguments(tp)
        if name == "lm":
            tp.set_defaults(func=lambda a, _p=tp: _run_lm(a, _p))
        else:
            tp.set_defaults(func=lambda a, _s=spec, _p=tp: _s.run(a) if _s.run else run_task(_s, a, _p))


# ---------------------------------------------------------------------------------------------
# rnnlab sample


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="generate text from a language model, or predict with a run of another task",
        description="Generate text from a run folder written by `rnnlab train lm` (either engine; RUN/best for the "
        "best weights): one sample streams to stdout as it is generated; several are drawn in one batch. For a run "
        "of another task, predict for --input or --input-file: the label (classify), the tags (tag), the output "
        "sequence by beam search (seq2seq), or the next --horizon values (forecast).",
    )
    p.add_argument("run", help="run folder (holds checkpoint.json)")
    prime = p.add_mutually_exclusive_group()
    prime.add_argument("--prime", default="", help="text to start from (default: none)")
    prime.add_argument(
        "--prime-file",
        help="read the prime text from a UTF-8 file, without the line ends at its end (default: none)",
    )
    p.add_argument(
        "--length",
        type=int,
        default=None,
        help="tokens to generate (default: 500; for per-line models the cap per item, 40; for seq2seq the cap per output, <eos> included, default max(2 x source length, longest training target + 1) + 10)",
    )
    p.add_argument("--num-samples", type=int, default=None, help="samples to draw (default: 1; 10 for per-line models)")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (default: 1.0)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens (default: all)")
    p.add_argument(
        "--top-p",
        type=float,
        default=None,
        help="nucleus sampling: among the most likely tokens holding this much probability (default: all)",
    )
    p.add_argument("--greedy", action="store_true", help="always take the most likely token")
    p.add_argument(
        "--unknown",
        choices=["error", "skip", "map"],
        default="error",
        help="prime characters (words) outside the vocabulary: error, skip them, or map them to --replacement (<unk> for word models) (default: error)",
    )
    p.add_argument(
        "--replacement",
        help="character models: the character --unknown map puts in their place (default: none; word models always use <unk>)",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (default: fresh)")
    p.add_argument(
        "--engine",
        choices=["torch", "numpy"],
        default=None,
        help="engine to sample with (default: the one that trained the run; numpy when torch is not installed)",
    )
    p.add_argument(
        "--device", default="cpu", help="torch device for --engine torch: auto, cpu, cuda, cuda:N or mps (default: cpu)"
    )
    _tasks.add_sample_arguments(p)  # --input, --beam-size, --horizon, ... for the other tasks' runs
    p.set_defaults(func=cmd_sample)


def _resolve_device(args: argparse.Namespace) -> None:
    """`--device` of sample and eval, checked and made concrete ('auto' -> 'cuda:0', ...) before
    anything loads: torch's own errors for a bad name or a missing GPU name no option."""
    if args.device != "cpu" and getattr(args, "engine", None) == "numpy":
        raise ValueError(f"--device: is for --engine torch, got --device {args.device} with --engine numpy")
    if args.device != "cpu":
        from ..training.trainer import select_device  # needs torch: without it, the one-line "needs PyTorch"

        args.device = str(select_device(args.device))


def cmd_sample(args: argparse.Namespace) -> int:
    _resolve_device(args)
    rc = _tasks.sample_command(args)  # classify/tag/forecast/seq2seq runs; None for language models
    if rc is not None:
        return rc
    from ..data.text import DataError, naming_option, read_text
    from ..data.words import WordVocab
    from ..generation.sample import WordCodec, encode_prime, sample_lm
    from ..training.lm_run import load_run

    # loaded (and so verified) first: a missing or damaged folder is not "a language model" whose
    # options are wrong
    # a device asks for the torch engine, whichever engine trained the run (`_resolve_device` has
    # refused --device with --engine numpy)
    engine = args.engine or ("torch" if args.device != "cpu" else None)
    loaded = load_run(args.run, engine, device=args.device)
    _tasks.check_sample_options(args, "lm")
    if loaded.engine != loaded.trained_engine and args.engine is None:
        print("note: torch is not installed; sampling with --engine numpy (the same weights)", file=sys.stderr)
    prime = args.prime
    if args.prime_file:
        try:
            prime = read_text(args.prime_file).rstrip("\n")  # an editor's final newline is not part of the prime
        except DataError as e:
            raise naming_option(e, "prime-file") from None
    is_word = isinstance(loaded.vocab, WordVocab)
    replacement = args.replacement
    if is_word and replacement is not None:
        raise ValueError(
            f"--replacement: a word-level model maps unknown prime words to <unk>; --replacement is for character "
            f"models, got --replacement {replacement!r}"
        )
    config = SampleConfig(
        length=args.length if args.length is not None else (40 if loaded.per_line else 500),
        num_samples=args.num_samples if args.num_samples is not None else (10 if loaded.per_line else 1),
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        greedy=args.greedy,
        prime=prime,
        unknown=args.unknown,
        replacement=replacement,
        seed=args.seed,
    )
    vocab = WordCodec(loaded.vocab, loaded.per_line) if is_word else loaded.vocab
    _, warning = encode_prime(vocab, config, per_line=loaded.per_line)  # errors out before any output
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    model = loaded.model
    if loaded.engine == "torch":
        from ..torch.bridge import NumpyBridge

        model = NumpyBridge(model)
    if loaded.per_line:
        for text in sample_lm(model, vocab, config, per_line=True):
            print(text.strip() if is_word else text)
        return 0
    stream = config.num_samples == 1

    def write(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    samples = sample_lm(model, vocab, config, on_text=write if stream else None)
    if stream:
        print()
    else:
        for i, text in enumerate(samples):
            print(f"--- sample {i + 1} ---\n{text}")
    return 0


# ---------------------------------------------------------------------------------------------
# rnnlab eval


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="score a trained run on its validation or test split, or on a file",
        description="Print, as JSON, a run's metrics on its own validation (or test) split, rebuilt from its saved "
        "options, or on a file in the format of its training data. Language models: the mean cross-entropy in "
        "nats per token (every prediction scored once, state carried); the other tasks: their loss and metrics "
        "(accuracy, error).",
    )
    p.add_argument("run", help="run folder (or RUN/best)")
    p.add_argument(
        "--data",
        help="score this file instead (one item per line for per-line models; running text is encoded chunk by "
        "chunk into a temporary token file under TMPDIR, so it may be larger than memory) (default: the run's split)",
    )
    p.add_argument(
        "--split", choices=["val", "test"], default="val", help="the run's split to score without --data (default: val)"
    )
    p.add_argument(
        "--engine", choices=["torch", "numpy"], default=None, help="engine to score with (default: torch if installed)"
    )
    p.add_argument("--device", default="cpu", help="torch device: auto, cpu, cuda, cuda:N or mps (default: cpu)")
    p.add_argument("--batch-size", type=int, default=128, help="parallel streams (default: 128)")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    _resolve_device(args)
    if args.data and args.split != "val":
        raise ValueError(
            f"split: picks one of the run's own splits, but --data {args.data} is scored instead; got --split {args.split}"
        )
    rc = _tasks.eval_command(args)  # classify/tag/forecast/seq2seq runs; None for language models
    if rc is not None:
        return rc
    import numpy as np

    from ..data.corpus import encode_to_memmap
    from ..data.names import read_lines
    from ..data.text import CharVocab, DataError
    from ..data.words import WordVocab
    from ..training.lm import _encode_lines
    from ..training.lm_data import _word_lines, open_run_splits
    from ..training.lm_run import load_run

    if args.batch_size < 1:
        raise ValueError(f"--batch-size: expected a positive integer, got {args.batch_size}")
    engine = args.engine
    if engine is None:
        try:
            import torch  # noqa: F401

            engine = "torch"
        except ImportError:
            engine = "numpy"
    loaded = load_run(args.run, engine, device=args.device)
    vocab = loaded.vocab
    with contextlib.ExitStack() as stack:
        if args.data:
            if loaded.per_line:
                lines = read_lines(args.data)
                tokens = _encode_lines(vocab, lines) if isinstance(vocab, CharVocab) else _word_lines(vocab, lines)
            else:
                # chunk by chunk into a token file mapped from disk (deleted afterwards): a corpus
                # larger than memory can be scored
                scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rnnlab-eval-")))
                tokens = encode_to_memmap(args.data, vocab, scratch / "tokens.bin").array
            source = args.data
            if isinstance(vocab, WordVocab) and vocab.unk_id is not None:
                # scored all the same, as the run's own validation split is, but said: a text in another
                # language or domain would otherwise get a plausible-looking loss over <unk> tokens
                ids = np.asarray(tokens)
                unknown = int(np.count_nonzero(ids == vocab.unk_id))
                if unknown:
                    # line ends are tokens of the model, not words of the text
                    ends = [i for i in (vocab.eos_id, getattr(vocab, "bos_id", None)) if i is not None]
                    words = len(ids) - int(np.count_nonzero(np.isin(ids, ends)))
                    print(
                        f"warning: {unknown:,} of the {words:,} words of {source} are not in the run's "
                        "vocabulary and are scored as <unk>",
                        file=sys.stderr,
                    )
        else:
            splits = open_run_splits(args.run, loaded.train_config, vocab)  # the saved split, checked
            tokens = splits.val if args.split == "val" else splits.test
            if tokens is None:
                raise ValueError(f"split: the run {args.run} has no test split (train with --per-line --test-size N)")
            source = f"{splits.name} ({args.split} split)"
        if len(tokens) < 2:
            raise DataError(f"data: {source} has {len(tokens)} token(s); need at least 2 to score")
        if engine == "torch":
            from ..training.lm_task import lm_loss_sums

            total, count = lm_loss_sums(
                loaded.model, np.asarray(tokens), batch_size=args.batch_size, device=args.device
            )
            loss = total / count
        else:
            from ..training.lm import evaluate

            loss, count = evaluate(loaded.model, np.asarray(tokens), args.batch_size), len(tokens) - 1
        del tokens  # the memory map goes before its file
    if not np.isfinite(loss):
        raise RuntimeError(f"eval: the loss over {source} is {loss} (are the run's weights finite?)")
    unit = "word" if isinstance(vocab, WordVocab) else "char"
    print(
        json.dumps(
            {"run": str(args.run), "data": source, "engine": engine, "loss": loss, "tokens": int(count), "unit": unit}
        )
    )
    return 0


# ---------------------------------------------------------------------------------------------
# rnnlab gradcheck


def _add_gradcheck(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gradcheck",
        help="check the NumPy engine's gradients against finite differences",
        description="Compare backpropagation through time with central differences in float64 and print the worst "
        "relative error per parameter, ‖analytic − numeric‖₂ / max(‖analytic‖₂, ‖numeric‖₂).",
    )
    p.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="lstm", help="cell (default: lstm)")
    p.add_argument("--nonlinearity", choices=["tanh", "relu"], default="tanh", help="for --cell rnn (default: tanh)")
    p.add_argument("--layers", type=int, default=1, help="stacked layers (default: 1)")
    p.add_argument("--bidirectional", action="store_true", help="check a bidirectional layer")
    p.add_argument("--truncated", action="store_true", help="check one truncated-BPTT chunk with carried state")
    p.add_argument("--seq-len", type=int, default=5, help="time steps, at most 200 (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--tolerance", type=float, default=1e-6, help="exit 1 if any error exceeds this (default: 1e-6)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_gradcheck)


GRADCHECK_MAX_SEQ_LEN = 200


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from ..scratch.gradcheck_recurrent import check_recurrent_gradients

    if args.layers < 1:
        raise ValueError(f"--layers: expected a positive integer, got {args.layers}")
    if not 1 <= args.seq_len <= GRADCHECK_MAX_SEQ_LEN:
        # two full passes per weight entry: the check's cost grows with T times the parameter count
        raise ValueError(f"--seq-len: expected an integer from 1 to {GRADCHECK_MAX_SEQ_LEN}, got {args.seq_len}")
    if args.seed < 0:
        raise ValueError(f"--seed: expected an integer >= 0, got {args.seed}")
    if not (math.isfinite(args.tolerance) and args.tolerance > 0):
        raise ValueError(f"--tolerance: expected a positive number, got {args.tolerance}")
    if args.nonlinearity != "tanh" and args.cell != "rnn":
        raise ValueError(f"--nonlinearity: applies to --cell rnn, got --cell {args.cell}")
    cell = f"rnn_{args.nonlinearity}" if args.cell == "rnn" else args.cell
    result = check_recurrent_gradients(
        cell, args.layers, args.bidirectional, truncated=args.truncated, seq_len=args.seq_len, seed=args.seed
    )
    ok = result.worst <= args.tolerance
    if args.json:
        print(
            json.dumps(
                {
                    "cell": cell,
                    "layers": args.layers,
                    "bidirectional": args.bidirectional,
                    "truncated": args.truncated,
                    "relative_error": result.relative,
                    "max_abs_error": result.absolute,
                    "worst": result.worst,
                    "ok": ok,
                },
                indent=2,
            )
        )
    else:
        print(
            f"{cell}, {args.layers} layer(s){', bidirectional' if args.bidirectional else ''}"
            f"{', truncated-BPTT chunk' if args.truncated else ''}, float64"
        )
        print(f"{'tensor':<24}{'relative error':>16}{'max abs error':>16}")
        for name, rel in result.relative.items():
            print(f"{name:<24}{rel:>16.2e}{result.absolute[name]:>16.2e}")
        print(f"worst {result.worst:.2e}: {'OK' if ok else 'FAILED'} (tolerance {args.tolerance:g})")
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------
# entry point


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line ends in one line, as every other user error does.

    Options are never abbreviated: argparse would otherwise take a prefix of a longer option for
    it, so `rnnlab train lm --val FILE` (an option of the other tasks) read FILE as --val-fraction.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnnlab", description="Recurrent neural networks from first principles to fast training.")
    parser.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_sample(sub)
    _add_eval(sub)
    _add_gradcheck(sub)
    from . import experiments

    experiments.add_parsers(sub)
    return parser


def _with_default_task(argv: list[str]) -> list[str]:
    """`rnnlab train --data x` means `rnnlab train lm --data x`, and `rnnlab train --resume RUN` the
    task that trained RUN; an unknown bare word is an error."""
    if not argv or argv[0] != "train":
        return argv
    rest = argv[1:]
    if rest and rest[0] in ("-h", "--help"):
        return argv
    if rest and not rest[0].startswith("-"):
        if rest[0] not in TASKS:
            raise ValueError(f"train: unknown task {rest[0]!r}; available: {', '.join(TASKS)}")
        return argv
    # `rnnlab train --resume RUN` continues RUN with the command that trained it
    for i, arg in enumerate(rest):
        if arg == "--resume" and i + 1 < len(rest):
            run = rest[i + 1]
        elif arg.startswith("--resume="):
            run = arg.partition("=")[2]
        else:
            continue
        task = _tasks.run_task_name(run) if run else None
        if task in TASKS:
            if any(a == "--engine" or a.startswith("--engine=") for a in rest):
                raise ValueError(f"--engine: does not apply to {run}, a {task} run (it trains on the torch engine)")
            return ["train", task, *rest]
    return ["train", "lm", *rest]


# optional dependencies a command may need, and what to tell a user who does not have them
OPTIONAL_MODULES = {
    "torch": "this needs PyTorch, which is not installed: pip install 'rnnlab[torch]' (the CPU build "
    "torch==2.13.0; for a GPU, install PyTorch's CUDA build first, see the README); language models also "
    "train, sample and score on the NumPy engine (--engine numpy)",
    "matplotlib": "this needs matplotlib, which is not installed: pip install 'rnnlab[plots]'",
}


def _as_flag(message: str, args: argparse.Namespace) -> str:
    """A config's error names its field ("val_fraction: ..."); on the command line, name the option
    that sets it ("--val-fraction: ...")."""
    head, sep, rest = message.partition(":")
    dest = {"num_layers": "layers"}.get(head, head)  # ModelConfig's name for --layers
    # one-word heads only where the word can mean nothing but its option ("data:" also speaks of
    # --val files, "prime:" of --prime-file, "out:" of a default folder)
    named = "_" in head or head in _ONE_WORD_OPTIONS
    if sep and named and head.isidentifier() and head.islower() and hasattr(args, dest):
        return f"--{dest.replace('_', '-')}:{rest}"
    return message


_ONE_WORD_OPTIONS = frozenset(
    {"horizon", "temperature", "length", "seed", "precision", "engine", "split", "lr", "dropout"}
)


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """parse_args, but an unknown option is reported by the (sub)command that was given it, with
    that command's --help, rather than by the top-level `rnnlab`."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        command = parser
        while True:
            subs = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
            chosen = getattr(args, subs[0].dest, None) if subs else None
            if chosen is None:
                break
            command = subs[0].choices[chosen]
        command.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `rnnlab` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def error(message: object) -> None:
        # under torchrun every rank meets the same error (or one caused by rank 0's): rank 0 says it
        if os.environ.get("RANK", "0") == "0":
            print(f"error: {message}", file=sys.stderr)

    try:
        argv = _with_default_task(argv)
    except ValueError as e:
        error(e)
        return 2
    args = _parse(build_parser(), argv)
    if isinstance(getattr(args, "resume", None), str) and not args.resume.strip():
        error(f"--resume: expected a run folder, got {args.resume!r}")  # not a new run under a default name
        return 2
    terminated: list[int] = []

    def on_sigterm(signum: int, frame: object) -> None:
        terminated.append(signum)
        raise KeyboardInterrupt

    if sys.stdout is None:  # started with its standard output closed (`rnnlab ... >&-`)
        error("stdout: closed; nothing to write the output to (give the command an output, such as > FILE)")
        return 2
    if threading.current_thread() is threading.main_thread():
        # a scheduler's or timeout's SIGTERM ends a run as Ctrl-C does: the last checkpoint is kept,
        # and what --overwrite set aside is put back when the new run saved none
        signal.signal(signal.SIGTERM, on_sigterm)
    if (
        args.command == "train"
        and os.environ.get("RANK", "0") == "0"
        and importlib.util.find_spec("matplotlib") is None
    ):
        print(
            "note: matplotlib is not installed, so the run gets no loss.png (pip install 'rnnlab[plots]')",
            file=sys.stderr,
        )
    try:
        return args.func(args)
    except BrokenPipeError:
        # the reader went away (`rnnlab sample RUN | head`): stop quietly, with the status a
        # process killed by SIGPIPE has, and keep Python from complaining about stdout at exit
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 141
    except ModuleNotFoundError as e:
        if e.name not in OPTIONAL_MODULES:
            raise  # a broken installation, not a user error: keep the traceback
        error(OPTIONAL_MODULES[e.name])
        return 2
    except (ValueError, TypeError, OSError) as e:  # user errors: one line, no traceback
        error(_as_flag(str(e), args))
        return 2
    except (KeyError, IndexError) as e:
        run = getattr(args, "resume", None) or getattr(args, "run", None)
        if not run:
            raise  # a bug, not a user error: keep the traceback
        # the manifest's checksums pass, so the checkpoint was edited and re-hashed, or written by
        # something else: say what it lacks rather than show where the code looked for it
        error(f"checkpoint: {run} is incomplete or damaged: no {e} where a saved run has one")
        return 2
    except RuntimeError as e:  # TrainingError and friends
        error(e)
        return 1
    except KeyboardInterrupt as e:
        if os.environ.get("RANK", "0") == "0":
            if isinstance(e, RunInterrupted) and e.args:
                print(e.args[0], file=sys.stderr)
            else:
                kept = "; the last checkpoint is kept" if args.command == "train" else ""
                print(f"interrupted{kept}", file=sys.stderr)
        if terminated:
            # Everything the run wrote is settled by now (the interrupt went through every cleanup on
            # its way here). Exit at once with the status promised: after a SIGTERM turned interrupt,
            # the interpreter's own shutdown with torch loaded reported "killed by SIGINT" (-2) in
            # about one run of three.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    finally:
        if os.environ.get("WORLD_SIZE"):
            _shutdown_distributed()


if __name__ == "__main__":
    sys.exit(main())
