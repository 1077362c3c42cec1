"""`rnnlab train classify | tag | forecast | seq2seq`, and `rnnlab eval` / `rnnlab sample` for their runs.

Each task registers with `rnnlab.cli.main.register_task`: its own options (every one with help
text and a default; the common ones — data, budget, optimiser, schedule, checkpoints, device —
come from `add_common_arguments`), its recipe defaults, and a `build` that reads the data (every
data problem is one `error: …` line and exit status 2 before anything is written) and returns
the `Task` and `TrainConfig` for the generic trainer.

    rnnlab train classify --data sst2/train.tsv --val sst2/dev.tsv --max-time 60
    rnnlab train tag --data en_ewt-ud-train.conllu --val en_ewt-ud-dev.conllu --max-time 60
    rnnlab train forecast --data airline.csv --column passengers --input-len 12 --horizon 3
    rnnlab train seq2seq --data reverse --max-steps 1500

Scoring and using a trained run (the hooks `eval_command`, `sample_command` and
`add_sample_arguments` below; `rnnlab.cli.main` routes runs of these tasks to them):

    rnnlab eval RUN [--data FILE] [--split val|test]    loss and the task's metrics, as JSON
    rnnlab sample RUN --input "a gripping film"         classify: the label and its probability
    rnnlab sample RUN --input "The cat sat ."           tag: word/TAG for every word
    rnnlab sample RUN [--data FILE] [--horizon N]       forecast: the next N values after the series
    rnnlab sample RUN --input "3 1 2" --beam-size 5     seq2seq: the decoded output
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from ..config import CELLS, TrainConfig
from .main import COMMON_DEFAULTS, DOWNLOAD_CACHE, add_common_arguments, register_task, train_config_from

# ---------------------------------------------------------------------------------------------
# shared pieces


def _model_arguments(
    p: argparse.ArgumentParser, d: dict[str, Any], *, embedding: bool = True, bidirectional: bool = True
) -> argparse._ArgumentGroup:
    g = p.add_argument_group("model")
    g.add_argument("--cell", choices=CELLS, help=f"recurrent cell (default: {d['cell']})")
    g.add_argument(
        "--hidden-size", type=int, help=f"hidden units per layer and direction (default: {d['hidden_size']})"
    )
    g.add_argument("--layers", type=int, help=f"stacked recurrent layers (default: {d['layers']})")
    if embedding:
        g.add_argument("--embedding-dim", type=int, help=f"token embedding size (default: {d['embedding_dim']})")
    g.add_argument(
        "--dropout",
        type=float,
        help=f"dropout on inputs, between layers and before the read-out (default: {d['dropout']})",
    )
    if bidirectional:
        g.add_argument(
            "--bidirectional",
            action=argparse.BooleanOptionalAction,
            default=None,
            help=f"read the sequence both ways (default: {'yes' if d['bidirectional'] else 'no'})",
        )
    return g


def _vocab_arguments(g: argparse._ArgumentGroup, d: dict[str, Any]) -> None:
    g.add_argument(
        "--lower",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"lowercase the text (default: {'yes' if d['lower'] else 'no'})",
    )
    g.add_argument(
        "--min-freq", type=int, help=f"tokens seen fewer times in training become <unk> (default: {d['min_freq']})"
    )
    g.add_argument("--max-vocab", type=int, help="keep at most this many tokens, the most frequent (default: all)")


def _train_defaults(d: dict[str, Any]) -> str:
    return (
        f"Recipe: {d['cell']} {d['layers']}x{d['hidden_size']}, batch {d['batch_size']}, "
        f"{d['optimizer']} lr {d['lr']:g}, {d['lr_schedule']} schedule, evaluation every {d['eval_every']} steps."
    )


def _quiet(args: argparse.Namespace, options: dict[str, Any]) -> bool:
    return bool(getattr(args, "quiet", False) or options.get("quiet"))


def _resumed(cls: Any, args: argparse.Namespace, options: dict[str, Any]) -> tuple[Any, TrainConfig]:
    """The task of a run being resumed, rebuilt from its saved JSON (vocabularies, options)."""
    ckpt, moved = options["_resume"], options.get("_moved", {})
    saved = dict(ckpt.configs["train_config"])
    if moved.get("data"):  # the data moved: read it from its new place
        saved["data"] = moved["data"]
    config = TrainConfig.from_dict(saved)
    for needed in ("model_config", "task_options"):
        if needed not in ckpt.configs:
            raise ValueError(f"resume: {args.resume} has no {needed}.json; it is not a {cls.name} run")
    configs = dict(ckpt.configs)
    task_options = dict(configs["task_options"])
    for role in ("val", "test"):  # a moved file in its new place; its sha256 must still match
        if moved.get(role) is None:
            continue
        if task_options.get(role) is None:
            what = "holds its validation split out of --data" if role == "val" else "has no test file"
            raise ValueError(
                f"--{role}: the run {args.resume} {what}; --{role} with --resume only gives a moved file's new place, got {moved[role]}"
            )
        task_options[role] = moved[role]
    configs["task_options"] = task_options
    task = cls.from_run(configs, config, train=True)
    if moved:
        _repoint_best(Path(args.resume), task)
    return task, config


def _repoint_best(run: Path, task: Any) -> None:
    """Make a resumed run's best/ name its data files where they are now, as the run's own
    checkpoint will at its next save; otherwise `rnnlab eval RUN/best` would look in the old places.
    The files hold what they held (their sha256 was checked), so only the names change."""
    from ..training.checkpoint import BEST_DIR, MANIFEST, load_checkpoint, save_checkpoint

    best = run / BEST_DIR
    if not (best / MANIFEST).exists():
        return
    ckpt = load_checkpoint(best)
    configs = dict(ckpt.configs)
    configs["train_config"] = {**configs.get("train_config", {}), "data": task.config.data}
    configs.update({k: v for k, v in task.artifacts().items() if k in ("task_options", "data_files")})
    save_checkpoint(best, weights=ckpt.weights, configs=configs, state=ckpt.state, extra_tensors=ckpt.extra_tensors)


def _finish_build(
    task: Any, config: TrainConfig, args: argparse.Namespace, options: dict[str, Any]
) -> tuple[Any, TrainConfig]:
    if not _quiet(args, options):
        from ..training.classify_task import log_line

        log_line(task.describe())
    return task, config


def _int_option(options: dict[str, Any], name: str) -> int | str:
    from ..training.forecast_task import parse_column

    return parse_column(options[name])


# ---------------------------------------------------------------------------------------------
# classify

CLASSIFY_DEFAULTS: dict[str, Any] = {
    "level": "word",
    "lower": False,
    "min_freq": 1,
    "max_vocab": None,
    "max_len": 400,
    "label_column": "0",
    "text_column": "1",
    "header": None,
    "cell": "lstm",
    "hidden_size": 128,
    "layers": 1,
    "embedding_dim": 64,
    "dropout": 0.3,
    "bidirectional": True,
    "pooling": "last",
    "batch_size": 64,
    "optimizer": "adamw",
    "lr": 5e-3,
    "lr_schedule": "cosine",
    "lr_min_ratio": 0.05,
    "warmup_steps": 50,
    "weight_decay": 0.01,
    "clip_mode": "norm",
    "grad_clip": 1.0,
    "eval_every": 200,
    "val_fraction": 0.1,
    "seed": 1337,
}


def _add_classify_arguments(p: argparse.ArgumentParser) -> None:
    d = CLASSIFY_DEFAULTS
    g = p.add_argument_group("classification data")
    g.add_argument(
        "--val",
        metavar="FILE",
        help="validation file, same format as --data (default: hold out --val-fraction of --data)",
    )
    g.add_argument("--test", metavar="FILE", help="test file, scored once at the end of the run (default: none)")
    g.add_argument(
        "--label-column", help=f"the label's column: 0-based index or header name (default: {d['label_column']})"
    )
    g.add_argument(
        "--text-column", help=f"the text's column: 0-based index or header name (default: {d['text_column']})"
    )
    g.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether the files' first row is a header (default: detected, from the columns' names or a first "
        "label that no other row has)",
    )
    g.add_argument("--level", choices=["word", "char"], help=f"tokens: words or characters (default: {d['level']})")
    _vocab_arguments(g, d)
    g.add_argument("--max-len", type=int, help=f"read at most this many tokens of a text (default: {d['max_len']})")
    _model_arguments(p, d).add_argument(
        "--pooling",
        choices=["last", "max", "mean"],
        help=f"the text's vector: final state(s), or max / mean of the outputs over its tokens (default: {d['pooling']})",
    )
    add_common_arguments(
        p,
        {**COMMON_DEFAULTS, **d},
        data_help=f"a CSV/TSV file of label<TAB>text lines, or a URL, downloaded once into {DOWNLOAD_CACHE} (required)",
    )  # the help quotes its defaults


def _build_classify(args: argparse.Namespace, options: dict[str, Any]) -> tuple[Any, TrainConfig]:
    from ..torch.heads import ClassifierConfig
    from ..training.classify_task import ClassifyOptions, ClassifyTask

    if "_resume" in options:
        return _resumed(ClassifyTask, args, options)
    config = train_config_from(options, engine="torch")
    task_options = ClassifyOptions(
        val=options["val"],
        test=options["test"],
        label_column=_int_option(options, "label_column"),
        text_column=_int_option(options, "text_column"),
        header=options["header"],
        lower=bool(options["lower"]),
        min_freq=options["min_freq"],
        max_vocab=options["max_vocab"],
        max_len=options["max_len"],
    )
    model_options = {
        "cell": options["cell"],
        "embedding_dim": options["embedding_dim"],
        "hidden_size": options["hidden_size"],
        "num_layers": options["layers"],
        "bidirectional": bool(options["bidirectional"]),
        "dropout": options["dropout"],
        "pooling": options["pooling"],
    }
    ClassifierConfig(vocab_size=2, num_classes=2, **model_options)  # option errors before the data is read
    return _finish_build(ClassifyTask.from_options(config, task_options, model_options), config, args, options)


register_task(
    "classify",
    help="text classification, many-to-one (label<TAB>text files such as SST-2)",
    description="Train a text classifier: word (or character) embeddings -> recurrent body on packed sequences "
    "(padding never changes a prediction) -> pooling -> linear head. --data is a CSV/TSV file of label and text "
    "columns (a header row is detected); validation is --val FILE or a held-out fraction. Evaluation reports the "
    "loss and the accuracy. " + _train_defaults(CLASSIFY_DEFAULTS),
    add_arguments=_add_classify_arguments,
    build=_build_classify,
    defaults=CLASSIFY_DEFAULTS,
)


# ---------------------------------------------------------------------------------------------
# tag

TAG_DEFAULTS: dict[str, Any] = {
    "column": "upos",
    "lower": False,
    "min_freq": 1,
    "max_vocab": None,
    "chars": True,
    "char_dim": 32,
    "char_hidden": 32,
    "max_word_len": 20,
    "word_dropout": 0.05,
    "cell": "lstm",
    "hidden_size": 128,
    "layers": 1,
    "embedding_dim": 100,
    "dropout": 0.3,
    "batch_size": 32,
    "optimizer": "adamw",
    "lr": 6e-3,
    "lr_schedule": "cosine",
    "lr_min_ratio": 0.05,
    "warmup_steps": 50,
    "weight_decay": 0.01,
    "clip_mode": "norm",
    "grad_clip": 1.0,
    "eval_every": 200,
    "val_fraction": 0.1,
    "seed": 1337,
}


def _add_tag_arguments(p: argparse.ArgumentParser) -> None:
    from ..data.conllu import TAG_COLUMNS

    d = TAG_DEFAULTS
    g = p.add_argument_group("tagging data (CoNLL-U)")
    g.add_argument(
        "--val",
        metavar="FILE",
        help="validation CoNLL-U file, e.g. the treebank's dev file (default: hold out --val-fraction of the training sentences)",
    )
    g.add_argument("--test", metavar="FILE", help="test CoNLL-U file, scored once at the end (default: none)")
    g.add_argument("--column", choices=TAG_COLUMNS, help=f"the tag column (default: {d['column']})")
    _vocab_arguments(g, d)
    g.add_argument(
        "--word-dropout",
        type=float,
        help=f"chance a training word is replaced by <unk>, so unseen words have a trained vector (default: {d['word_dropout']})",
    )
    _model_arguments(p, d, bidirectional=False)
    g = p.add_argument_group("character encoder")
    g.add_argument(
        "--chars",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read each word's characters with a BiGRU (default: yes)",
    )
    g.add_argument("--char-dim", type=int, help=f"character embedding size (default: {d['char_dim']})")
    g.add_argument("--char-hidden", type=int, help=f"character BiGRU units per direction (default: {d['char_hidden']})")
    g.add_argument("--max-word-len", type=int, help=f"characters read per word (default: {d['max_word_len']})")
    add_common_arguments(
        p,
        {**COMMON_DEFAULTS, **d},
        data_help=f"a CoNLL-U file, or a URL, downloaded once into {DOWNLOAD_CACHE} (required)",
    )  # the help quotes its defaults


def _build_tag(args: argparse.Namespace, options: dict[str, Any]) -> tuple[Any, TrainConfig]:
    from ..torch.heads import TaggerConfig
    from ..training.tag_task import TagOptions, TagTask

    if "_resume" in options:
        return _resumed(TagTask, args, options)
    config = train_config_from(options, engine="torch")
    task_options = TagOptions(
        val=options["val"],
        test=options["test"],
        column=options["column"],
        lower=bool(options["lower"]),
        min_freq=options["min_freq"],
        max_vocab=options["max_vocab"],
        chars=bool(options["chars"]),
        max_word_len=options["max_word_len"],
        word_dropout=options["word_dropout"],
    )
    model_options = {
        "cell": options["cell"],
        "embedding_dim": options["embedding_dim"],
        "char_dim": options["char_dim"],
        "char_hidden": options["char_hidden"],
        "hidden_size": options["hidden_size"],
        "num_layers": options["layers"],
        "dropout": options["dropout"],
    }
    TaggerConfig(vocab_size=2, num_tags=2, char_vocab_size=2, **model_options)  # option errors first
    return _finish_build(TagTask.from_options(config, task_options, model_options), config, args, options)


register_task(
    "tag",
    help="sequence tagging, many-to-many (part of speech from CoNLL-U files)",
    description="Train a tagger on a CoNLL-U treebank (Universal Dependencies): every word is its embedding "
    "concatenated with a character-BiGRU vector of its spelling; a bidirectional RNN over the sentence (packed "
    "sequences) predicts a tag per word, UPOS by default. Validation is --val FILE (the dev file) or a held-out "
    "fraction. Evaluation reports the loss and the token accuracy. " + _train_defaults(TAG_DEFAULTS),
    add_arguments=_add_tag_arguments,
    build=_build_tag,
    defaults=TAG_DEFAULTS,
)


# ---------------------------------------------------------------------------------------------
# forecast

FORECAST_DEFAULTS: dict[str, Any] = {
    "column": "-1",
    "input_len": 24,
    "horizon": 1,
    "test_fraction": 0.0,
    "residual": True,
    "cell": "lstm",
    "hidden_size": 64,
    "layers": 1,
    "dropout": 0.0,
    "batch_size": 32,
    "optimizer": "adamw",
    "lr": 3e-3,
    "lr_schedule": "cosine",
    "lr_min_ratio": 0.05,
    "warmup_steps": 20,
    "weight_decay": 0.0,
    "clip_mode": "norm",
    "grad_clip": 1.0,
    "eval_every": 100,
    "val_fraction": 0.1,
    "seed": 1337,
}


def _add_forecast_arguments(p: argparse.ArgumentParser) -> None:
    d = FORECAST_DEFAULTS
    g = p.add_argument_group("time series")
    g.add_argument(
        "--column",
        help=f"the series' column in --data: 0-based index (negative from the end) or header name (default: {d['column']}, the last)",
    )
    g.add_argument(
        "--input-len", type=int, help=f"values the model reads before forecasting (default: {d['input_len']})"
    )
    g.add_argument("--horizon", type=int, help=f"values forecast at once, 1 for next-step (default: {d['horizon']})")
    g.add_argument(
        "--test-fraction",
        type=float,
        help="last share of the series held out as a test split, scored at the end (default: 0, none)",
    )
    _model_arguments(p, d, embedding=False, bidirectional=False).add_argument(
        "--residual",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="predict the change from the last value (start at the naive forecast) (default: yes)",
    )
    add_common_arguments(
        p,
        {**COMMON_DEFAULTS, **d},
        data_help=f"a CSV file with a header row, or a URL, downloaded once into {DOWNLOAD_CACHE} (required)",
    )  # the help quotes its defaults


def _build_forecast(args: argparse.Namespace, options: dict[str, Any]) -> tuple[Any, TrainConfig]:
    from ..torch.heads import ForecasterConfig
    from ..training.forecast_task import ForecastOptions, ForecastTask

    if "_resume" in options:
        return _resumed(ForecastTask, args, options)
    config = train_config_from(options, engine="torch")
    task_options = ForecastOptions(
        column=_int_option(options, "column"),
        input_len=options["input_len"],
        horizon=options["horizon"],
        test_fraction=options["test_fraction"],
    )
    model_options = {
        "cell": options["cell"],
        "hidden_size": options["hidden_size"],
        "num_layers": options["layers"],
        "dropout": options["dropout"],
        "residual": bool(options["residual"]),
    }
    ForecasterConfig(input_len=task_options.input_len, horizon=task_options.horizon, **model_options)
    return _finish_build(ForecastTask.from_options(config, task_options, model_options), config, args, options)


register_task(
    "forecast",
    help="time-series forecasting from a CSV column (next step, or --horizon steps at once)",
    description="Train a forecaster on one numeric column of a CSV/TSV file: the series is split by time "
    "(train, then --val-fraction, then --test-fraction), normalised with the training part's mean and std (saved "
    "as normalizer.json in the run folder), cut into windows of --input-len values, and an RNN predicts the next "
    "--horizon values at once. Evaluation reports the MSE, RMSE and MAE in the original units and the MSE of the "
    "naive last-value forecast. " + _train_defaults(FORECAST_DEFAULTS),
    add_arguments=_add_forecast_arguments,
    build=_build_forecast,
    defaults=FORECAST_DEFAULTS,
)


# ---------------------------------------------------------------------------------------------
# seq2seq

SEQ2SEQ_DEFAULTS: dict[str, Any] = {
    "level": "char",
    "lower": False,
    "min_freq": 1,
    "max_vocab": None,
    "shared_vocab": False,
    "num_train": 20000,
    "num_val": 1000,
    "min_length": 1,
    "max_length": 10,
    "alphabet": "digits",
    "attention": "general",
    "cell": "gru",
    "hidden_size": 128,
    "layers": 1,
    "embedding_dim": 64,
    "dropout": 0.1,
    "bidirectional": True,
    "batch_size": 64,
    "optimizer": "adamw",
    "lr": 3e-3,
    "lr_schedule": "cosine",
    "lr_min_ratio": 0.05,
    "warmup_steps": 50,
    "weight_decay": 0.01,
    "clip_mode": "norm",
    "grad_clip": 1.0,
    "eval_every": 250,
    "val_fraction": 0.1,
    "seed": 1337,
}


def _add_seq2seq_arguments(p: argparse.ArgumentParser) -> None:
    d = SEQ2SEQ_DEFAULTS
    g = p.add_argument_group(
        "sequence-to-sequence data (--data reverse, --data sort, or a TSV file of source<TAB>target lines)"
    )
    g.add_argument(
        "--val",
        metavar="FILE",
        help="validation pairs (default: for reverse/sort fresh pairs from another seed, for a file a held-out --val-fraction)",
    )
    g.add_argument("--test", metavar="FILE", help="test pairs, scored once at the end (default: none)")
    g.add_argument("--level", choices=["char", "word"], help=f"tokens of both sides (default: {d['level']})")
    _vocab_arguments(g, d)
    g.add_argument(
        "--shared-vocab",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one vocabulary for source and target (default: only for reverse/sort)",
    )
    g = p.add_argument_group("synthetic tasks (--data reverse, --data sort)")
    g.add_argument("--num-train", type=int, help=f"training pairs (default: {d['num_train']})")
    g.add_argument("--num-val", type=int, help=f"validation pairs (default: {d['num_val']})")
    g.add_argument("--min-length", type=int, help=f"shortest source (default: {d['min_length']})")
    g.add_argument("--max-length", type=int, help=f"longest source (default: {d['max_length']})")
    g.add_argument(
        "--alphabet", help=f"the characters: digits, letters, or the characters themselves (default: {d['alphabet']})"
    )
    _model_arguments(p, d).add_argument(
        "--attention",
        choices=["general", "dot"],
        help=f"Luong attention score: general (h_t W h_s) or dot (h_t h_s) (default: {d['attention']})",
    )
    add_common_arguments(
        p,
        {**COMMON_DEFAULTS, **d},
        data_help="a built-in synthetic task (reverse, sort), or a TSV file of source<TAB>target lines or its URL, "
        f"downloaded once into {DOWNLOAD_CACHE} (required)",
    )  # the help quotes its defaults


def _check_seq2seq_data_options(options: dict[str, Any]) -> None:
    """Refuse, rather than ignore, the data options that mean nothing for this --data."""
    from ..training.seq2seq_task import is_synthetic

    data, given = options.get("data"), options["_given"]
    if not data:
        return  # the task says that --data is required
    if is_synthetic(data):
        if "val_fraction" in given:
            raise ValueError(
                f"--val-fraction: applies to a file of pairs; the synthetic {data!r} task draws --num-val pairs"
            )
        if "level" in given and options["level"] != "char":
            raise ValueError(
                f"--level: the synthetic {data!r} task is made of characters, got --level {options['level']}"
            )
    else:
        for name in ("num_train", "num_val", "min_length", "max_length", "alphabet"):
            if name in given:
                raise ValueError(
                    f"--{name.replace('_', '-')}: applies to the synthetic tasks (--data reverse or sort), not to the file {data}"
                )


def _build_seq2seq(args: argparse.Namespace, options: dict[str, Any]) -> tuple[Any, TrainConfig]:
    from ..torch.heads import Seq2SeqConfig
    from ..training.seq2seq_task import Seq2SeqOptions, Seq2SeqTask

    if "_resume" in options:
        return _resumed(Seq2SeqTask, args, options)
    _check_seq2seq_data_options(options)
    config = train_config_from(options, engine="torch")
    task_options = Seq2SeqOptions(
        val=options["val"],
        test=options["test"],
        num_train=options["num_train"],
        num_val=options["num_val"],
        min_length=options["min_length"],
        max_length=options["max_length"],
        alphabet=options["alphabet"],
        lower=bool(options["lower"]),
        min_freq=options["min_freq"],
        max_vocab=options["max_vocab"],
        shared_vocab=bool(options["shared_vocab"]),
    )
    model_options = {
        "cell": options["cell"],
        "embedding_dim": options["embedding_dim"],
        "hidden_size": options["hidden_size"],
        "num_layers": options["layers"],
        "bidirectional": bool(options["bidirectional"]),
        "dropout": options["dropout"],
        "attention": options["attention"],
    }
    Seq2SeqConfig(src_vocab_size=4, tgt_vocab_size=4, **model_options)  # option errors first
    return _finish_build(Seq2SeqTask.from_options(config, task_options, model_options), config, args, options)


register_task(
    "seq2seq",
    help="sequence to sequence with attention (synthetic reverse/sort tasks, or source<TAB>target pairs)",
    description="Train an encoder-decoder: a bidirectional RNN encoder, and a decoder RNN with Luong global "
    "attention (general or dot) trained with teacher forcing. --data reverse / --data sort generate random "
    "digit strings to reverse or sort (seeded); otherwise --data is a TSV file of source<TAB>target lines. "
    "Evaluation reports the loss, the token accuracy and the exact-match accuracy of greedy decoding. "
    "`rnnlab sample RUN --input ... --beam-size K` decodes. " + _train_defaults(SEQ2SEQ_DEFAULTS),
    add_arguments=_add_seq2seq_arguments,
    build=_build_seq2seq,
    defaults=SEQ2SEQ_DEFAULTS,
)


# ---------------------------------------------------------------------------------------------
# loading a trained run of these tasks

TASK_NAMES = ("classify", "tag", "forecast", "seq2seq")


def run_task_name(run: str | Path) -> str | None:
    """The task that trained the run folder `run` ('classify', ...), or None if it is none of these.

    Reads only `train_state.json` (written by the torch trainer in RUN and RUN/best), so a
    language-model run is recognised as such without loading its weights.

    Example:
        >>> run_task_name("runs/sst2")       # doctest: +SKIP
        'classify'
    """
    from ..training.checkpoint import saved_task

    name = saved_task(run)
    return name if name in TASK_NAMES else None


def _task_class(name: str) -> Any:
    if name == "classify":
        from ..training.classify_task import ClassifyTask

        return ClassifyTask
    if name == "tag":
        from ..training.tag_task import TagTask

        return TagTask
    if name == "forecast":
        from ..training.forecast_task import ForecastTask

        return ForecastTask
    from ..training.seq2seq_task import Seq2SeqTask

    return Seq2SeqTask


def load_task_run(
    run: str | Path,
    *,
    device: str = "cpu",
    load_data: bool = True,
    eval_batch_size: int | None = None,
    split: str | None = None,
) -> tuple[Any, Any]:
    """A trained run of one of these tasks: (task rebuilt from the saved JSON, model with the saved weights).

    Args:
        run: the run folder (or RUN/best).
        device: torch device for the model.
        load_data: rebuild the run's own validation (and test) splits from its data files; False
            for scoring another file or predicting.
        eval_batch_size: examples per batch (None: the run's).
        split: with `load_data`, the one split that will be scored: when the run has a file of
            its own for it (--val, --test), only that file is read, so the others may have moved.

    Raises:
        CheckpointError: not a checkpoint, or a damaged one. DataError: the saved JSON or the
            data do not load.
    """
    from ..torch.convert import load_weights
    from ..training.checkpoint import load_checkpoint
    from ..training.trainer import select_device

    name = run_task_name(run)
    if name is None:
        raise ValueError(f"run: {run} is not a classify, tag, forecast or seq2seq run")
    ckpt = load_checkpoint(run)
    for needed in ("model_config", "train_config", "task_options"):
        if needed not in ckpt.configs:
            raise ValueError(f"run: {run} has no {needed}.json (a damaged {name} run?)")
    config = TrainConfig.from_dict(ckpt.configs["train_config"])
    if eval_batch_size is not None:
        if eval_batch_size < 1:
            raise ValueError(f"--batch-size: expected a positive integer, got {eval_batch_size}")
        config = config.replace(eval_batch_size=eval_batch_size)
    own_file = ckpt.configs["task_options"].get(split) if split in ("val", "test") else None
    if load_data and own_file:
        task = _task_class(name).from_run(ckpt.configs, config, train=False, load_data=False)
        task.add_split(split, own_file)
        task.check_data_files(ckpt.configs.get("data_files"), roles=(split,))
    else:
        task = _task_class(name).from_run(ckpt.configs, config, train=False, load_data=load_data)
    dev = select_device(device)
    task.setup(dev, 0, 1)
    model = task.build_model(0)
    load_weights(model, ckpt.weights)
    model.to(dev).eval()
    return task, model


# ---------------------------------------------------------------------------------------------
# rnnlab eval RUN


def eval_command(args: argparse.Namespace) -> int | None:
    """`rnnlab eval RUN [--data FILE] [--split val|test]` for runs of these tasks; None for other runs.

    Prints one JSON object: the run, the data, the number of examples and the task's metrics
    (loss; accuracy; mse, naive_mse...; token_accuracy, exact_match).
    """
    name = run_task_name(args.run)
    if name is None:
        return None
    if getattr(args, "engine", None) is not None:
        raise ValueError(
            f"--engine: does not apply to a {name} run (its model is a torch model), got --engine {args.engine}"
        )
    import torch

    task, model = load_task_run(
        args.run,
        device=getattr(args, "device", "cpu"),
        load_data=not args.data,
        eval_batch_size=getattr(args, "batch_size", None),
        split=None if args.data else (getattr(args, "split", "val") or "val"),
    )
    if args.data:
        split = "file"
        source = task.add_split(split, args.data)
        if name == "seq2seq":  # an open vocabulary: words it never saw are scored as <unk>, said once
            pairs = task.splits[split].pairs
            for side, unknown in (
                ("source", task.unknown_tokens([s for s, _ in pairs])),
                ("target", task.unknown_target_tokens([t for _, t in pairs])),
            ):
                if unknown:
                    shown = ", ".join(repr(t) for t in unknown[:10]) + (" …" if len(unknown) > 10 else "")
                    print(
                        f"warning: {len(unknown)} {side} token(s) of {source} not in the run's vocabulary, "
                        f"scored as <unk>: {shown}",
                        file=sys.stderr,
                    )
    else:
        split = getattr(args, "split", "val") or "val"
        if split not in task.splits:
            how = "--test-fraction F" if name == "forecast" else "--test FILE"
            raise ValueError(f"split: the run {args.run} has no {split} split (train with {how})")
        source = task.splits[split].source
    with torch.no_grad():
        sums = task.eval_sums(model, split)
    metrics = task.summarize(sums)
    out = {
        "run": str(args.run),
        "task": name,
        "data": source,
        "split": split,
        "examples": len(task.splits[split].lengths),
        **metrics,
    }
    print(json.dumps(out))
    return 0


# ---------------------------------------------------------------------------------------------
# rnnlab sample RUN


def add_sample_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `rnnlab sample` for runs of these tasks (added to the language model's)."""
    g = p.add_argument_group("classify, tag, forecast and seq2seq runs")
    g.add_argument(
        "--input",
        dest="task_input",
        metavar="TEXT",
        help="what to predict for: a text (classify), a sentence of space-separated tokens as the treebank splits "
        'them, e.g. "I do n\'t know ." (tag), a source (seq2seq), or values (forecast) '
        "(default: none; forecast: the end of the run's series)",
    )
    g.add_argument("--input-file", metavar="FILE", help="one input per line (classify, tag, seq2seq) (default: none)")
    g.add_argument(
        "--beam-size", type=int, default=1, help="seq2seq: beam search with this many beams (default: 1, greedy)"
    )
    g.add_argument(
        "--length-penalty",
        type=float,
        default=1.0,
        help="seq2seq beam search: rank outputs by log p / length**ALPHA (default: 1.0; 0 ranks by probability)",
    )
    g.add_argument(
        "--n-best",
        type=int,
        default=1,
        help="seq2seq: print this many outputs per input, with their log-probabilities (default: 1)",
    )
    g.add_argument(
        "--horizon",
        type=int,
        default=None,
        help="forecast: values to forecast (default: the run's --horizon; more are forecast recursively)",
    )
    g.add_argument(
        "--data",
        dest="series",
        metavar="FILE",
        help="forecast: the series to continue, the run's column of FILE (default: the run's training data)",
    )


def _inputs(args: argparse.Namespace, task: str, what: str) -> list[str]:
    from ..data.text import DataError, naming_option, read_text

    text = getattr(args, "task_input", None)
    path = getattr(args, "input_file", None)
    if text is not None and path:
        raise ValueError("sample: give --input or --input-file, not both")
    if path:
        try:
            content = read_text(path)
        except DataError as e:  # the reader says "data:"; here the file is --input-file's
            raise naming_option(e, "--input-file") from None
        lines = [line.strip() for line in content.split("\n")]
        while lines and not lines[-1]:
            lines.pop()  # trailing blank lines end the file; inside it, one would put the outputs out of line
        blank = [k for k, line in enumerate(lines, 1) if not line]
        if blank:
            raise DataError(
                f"--input-file: {path} line {blank[0]} is blank; expected one {what} per line, so that output "
                "line N answers input line N (remove the blank lines)"
            )
        if not lines:
            raise DataError(f"--input-file: no inputs in {path} (expected one {what} per line)")
        return lines
    if text is None or not text.strip():
        raise ValueError(
            f"sample: a {task} run needs --input {what.upper().replace(' ', '_')} or --input-file FILE (one {what} per line)"
        )
    return [text.strip()]


# `rnnlab sample` options: dest -> (flag, argparse default, the kinds of run they apply to)
_SAMPLE_OPTIONS: dict[str, tuple[str, Any, set[str]]] = {
    "prime": ("--prime", "", {"lm"}),
    "prime_file": ("--prime-file", None, {"lm"}),
    "num_samples": ("--num-samples", None, {"lm"}),
    "temperature": ("--temperature", 1.0, {"lm"}),
    "top_k": ("--top-k", None, {"lm"}),
    "top_p": ("--top-p", None, {"lm"}),
    "greedy": ("--greedy", False, {"lm"}),
    "unknown": ("--unknown", "error", {"lm"}),
    "replacement": ("--replacement", None, {"lm"}),
    "engine": ("--engine", None, {"lm"}),
    "length": ("--length", None, {"lm", "seq2seq"}),
    "task_input": ("--input", None, {"classify", "tag", "seq2seq", "forecast"}),
    "input_file": ("--input-file", None, {"classify", "tag", "seq2seq"}),
    "beam_size": ("--beam-size", 1, {"seq2seq"}),
    "length_penalty": ("--length-penalty", 1.0, {"seq2seq"}),
    "n_best": ("--n-best", 1, {"seq2seq"}),
    "horizon": ("--horizon", None, {"forecast"}),
    "series": ("--data", None, {"forecast"}),
}


def check_sample_options(args: argparse.Namespace, kind: str) -> None:
    """Refuse a `rnnlab sample` option that means nothing for this kind of run ('lm', 'classify', ...),
    rather than ignore it: `--beam-size 5` on a classifier, `--prime` on a forecaster."""
    for dest, (flag, default, kinds) in _SAMPLE_OPTIONS.items():
        if kind not in kinds and getattr(args, dest, default) != default:
            what = "a language model" if kind == "lm" else f"a {kind} run"
            applies = ", ".join("language-model" if k == "lm" else k for k in sorted(kinds))
            raise ValueError(f"{flag}: does not apply to {what} (it is for {applies} runs)")
    if kind == "lm" and getattr(args, "replacement", None) is not None and getattr(args, "unknown", "error") != "map":
        raise ValueError(f"--replacement: applies with --unknown map, got --unknown {args.unknown}")
    if kind == "lm" and getattr(args, "greedy", False):
        # the most likely token is the same at any temperature and inside any top-k or top-p set
        for dest in ("temperature", "top_k", "top_p"):
            flag, default, _ = _SAMPLE_OPTIONS[dest]
            value = getattr(args, dest, default)
            if value != default:
                raise ValueError(
                    f"{flag}: does not apply with --greedy (it always takes the most likely token), got {flag} {value:g}"
                )


def sample_command(args: argparse.Namespace) -> int | None:
    """`rnnlab sample RUN ...` for runs of these tasks (see the module docstring); None for other runs."""
    name = run_task_name(args.run)
    if name is None:
        return None
    check_sample_options(args, name)
    task, model = load_task_run(args.run, device=getattr(args, "device", "cpu"), load_data=False)
    if name == "classify":
        for label, p, _ in task.predict(model, _inputs(args, name, "text")):
            print(f"{label}\t{p:.4f}")
    elif name == "tag":
        sentences = [s.split() for s in _inputs(args, name, "sentence")]
        for words, tags in zip(sentences, task.predict(model, sentences), strict=True):
            print(" ".join(f"{w}/{t}" for w, t in zip(words, tags, strict=True)))
    elif name == "forecast":
        _sample_forecast(task, model, args)
    else:
        _sample_seq2seq(task, model, args)
    return 0


def _sample_forecast(task: Any, model: Any, args: argparse.Namespace) -> None:
    import numpy as np

    from ..data.text import DataError, naming_option
    from ..data.timeseries import load_series

    values = getattr(args, "task_input", None)
    if values is not None and getattr(args, "series", None):
        raise ValueError("sample: give --input or --data, not both")
    if values is not None:
        try:
            history = np.array([float(v) for v in values.replace(",", " ").split()], dtype=np.float64)
        except ValueError:
            raise DataError(f"--input: expected numbers separated by spaces or commas, got {values!r}") from None
        source = "--input"
    else:
        path = getattr(args, "series", None) or getattr(args, "input_file", None) or task.config.data
        if not path:
            raise ValueError("sample: a forecast run needs the series: --data FILE or --input 'v1 v2 ...'")
        from ..training.classify_task import data_path

        source = data_path(path)
        history = load_series(source, task.options.column)
    steps = args.horizon if args.horizon is not None else task.options.horizon
    if steps < 1:
        raise ValueError(f"--horizon: expected a positive integer, got {steps}")
    try:
        forecast = task.forecast(model, history, steps)
    except DataError as e:  # "data:" speaks of the run's file; name what gave the series
        if source != "--input" or not str(e).startswith("data: "):
            raise
        raise naming_option(e, "--input") from None
    for v in forecast:
        print(f"{v:.6g}")
    if steps > task.options.horizon:
        print(
            f"note: forecast {steps} values recursively from a model trained for {task.options.horizon} at once ({source})",
            file=sys.stderr,
        )


def _sample_seq2seq(task: Any, model: Any, args: argparse.Namespace) -> None:
    if args.beam_size < 1:
        raise ValueError(f"--beam-size: expected a positive integer, got {args.beam_size}")
    if not 1 <= args.n_best <= args.beam_size:
        raise ValueError(f"--n-best: expected an integer from 1 to --beam-size ({args.beam_size}), got {args.n_best}")
    if not (math.isfinite(args.length_penalty) and args.length_penalty >= 0):  # nan fails every comparison
        raise ValueError(f"--length-penalty: expected a finite number >= 0, got {args.length_penalty}")
    max_len = getattr(args, "length", None)
    if max_len is not None and max_len < 1:
        raise ValueError(f"--length: expected a positive integer, got {max_len}")
    sources = _inputs(args, "seq2seq", "source")
    unknown = task.unknown_tokens(sources)
    if unknown:
        shown = ", ".join(repr(t) for t in unknown[:10])
        print(f"warning: {len(unknown)} source token(s) not in the vocabulary, read as <unk>: {shown}", file=sys.stderr)
    outputs = task.translate(
        model, sources, beam_size=args.beam_size, alpha=args.length_penalty, n_best=args.n_best, max_len=max_len
    )
    for hyps in outputs:
        if args.n_best == 1:
            print(hyps[0][0])
        else:
            for rank, (text, logp) in enumerate(hyps, start=1):
                print(f"{rank}\t{logp:.4f}\t{text}")
