"""Text classification (many-to-one) for the torch `Trainer`, and the base of every task over separate examples.

`ExampleTask` is what classification, tagging, forecasting and sequence-to-sequence share: the
training examples are batched by length with a seeded, resumable `BucketBatcher` (so padding
stays small and `--resume` continues exactly), each global batch is split across data-parallel
ranks with `shard`, and a split is scored by walking it in length-sorted batches, every example
exactly once.

`ClassifyTask` reads `label<TAB>text` rows (CSV or TSV, header detected), tokenises the texts
into words (default) or characters, and trains a `SequenceClassifier`: embedding -> recurrent
body on packed sequences -> final state -> linear head. The validation split is `--val FILE`, or
a seeded held-out fraction of the training file. Evaluation reports the loss (mean
cross-entropy per example, nats) and the accuracy.

Example:
    >>> config = TrainConfig(engine="torch", data="sst2/train.tsv", max_steps=500, level="word")  # doctest: +SKIP
    >>> task = ClassifyTask.from_options(config, ClassifyOptions(val="sst2/dev.tsv"), {})          # doctest: +SKIP
    >>> Trainer(task, config, "runs/sst2").fit()["val_accuracy"]                                  # doctest: +SKIP
    0.82
"""

from __future__ import annotations

import abc
import os
import sys
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig
from ..data.classify import BucketBatcher, LabelVocab, load_classification, pad_batch
from ..data.corpus import sha256_file
from ..data.download import resolve_data
from ..data.text import DataError, naming_option
from ..data.words import PAD, UNK, WordVocab, tokenize
from ..torch.heads import ClassifierConfig, SequenceClassifier
from .trainer import Carry, Task


def log_line(line: str) -> None:
    """Print a line to stderr from the first process only (under torchrun every rank builds the task)."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(line, file=sys.stderr, flush=True)


def data_path(spec: str | None, what: str = "--data") -> str:
    """The local file for a data option (a path, a URL, a named data set), as a string.

    Raises:
        DataError: no value, or no such file (naming the option).
    """
    if spec is None or (not spec and what == "--data"):
        raise DataError(f"data: {what} is required (the file to train on)")
    if not str(spec).strip():
        raise DataError(f"{what}: expected a file, a URL or a data set's name, got an empty value")
    try:
        return str(resolve_data(spec))
    except DataError as e:
        if what == "--data":
            raise
        raise naming_option(e, what) from None


def held_out_split(n: int, fraction: float, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, val) index arrays holding out `fraction` of `n` examples (at least one each).

    Example:
        >>> tr, va = held_out_split(10, 0.2, 0, "data")
        >>> len(tr), len(va), sorted([*tr, *va]) == list(range(10))
        (8, 2, True)
    """
    n_val = max(1, round(n * fraction))
    if n - n_val < 1:
        raise DataError(
            f"data: {name} has {n} example(s); holding out val_fraction={fraction} leaves none to train on "
            f"(give more data, or a validation file with --val)"
        )
    order = np.random.default_rng([seed, 2]).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


# ---------------------------------------------------------------------------------------------
# the base of example-based tasks


class ExampleTask(Task):
    """A task over separate examples of varying length: bucketed training batches, sorted evaluation.

    Subclasses set `self.splits` (split name -> a dataset with `lengths`, an (N,) int array) with a
    "train" split when training, and implement `make_batch`, `loss` and `batch_sums`.

    Args:
        config: the training config (batch_size, eval_batch_size, seed).
    """

    config: TrainConfig
    splits: dict[str, Any]
    sum_keys: tuple[str, ...] = ("loss_sum", "count")  # what `batch_sums` returns

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self._batcher: BucketBatcher | None = None
        self._fingerprints: dict[str, dict[str, str]] | None = None  # see `data_fingerprints`

    # -- training batches -------------------------------------------------------------------------
    @property
    def batcher(self) -> BucketBatcher:
        if self._batcher is None:
            train = self.splits.get("train")
            if train is None:
                raise ValueError("train: this task was loaded for evaluation only; it has no training split")
            n, B = len(train.lengths), self.config.batch_size
            # full batches only (when there are enough examples), so every batch splits evenly across ranks
            self._batcher = BucketBatcher(train.lengths, B, seed=self.config.seed, shuffle=True, drop_last=n >= B)
        return self._batcher

    def setup(self, device: torch.device, rank: int, world_size: int) -> None:
        if self.config.batch_size % world_size:
            raise ValueError(
                f"batch_size: the global batch of {self.config.batch_size} examples must split evenly across {world_size} processes"
            )
        train = self.splits.get("train")
        if world_size > 1 and train is not None and len(train.lengths) < self.config.batch_size:
            raise ValueError(
                f"batch_size: {self.config.batch_size} is more than the {len(train.lengths)} training examples; "
                f"with {world_size} processes every batch must be full"
            )
        super().setup(device, rank, world_size)

    def next_batch(self, step: int) -> Any:
        idx = self.batcher.next_batch()  # the global batch, longest first
        return self.make_batch("train", self.shard(idx), step=step)

    def data_state(self) -> dict[str, Any]:
        return self.batcher.state_dict()

    def load_data_state(self, state: Mapping[str, Any]) -> None:
        self.batcher.load_state_dict(dict(state))

    def tokens_per_step(self) -> int:
        return self.config.batch_size

    # -- the data files a run was trained on ----------------------------------------------------------
    def data_specs(self) -> dict[str, str | None]:
        """Role ('data', 'val', 'test') -> the option naming each data file the task reads (None: none)."""
        options = getattr(self, "options", None)
        return {"data": self.config.data, "val": getattr(options, "val", None), "test": getattr(options, "test", None)}

    def data_fingerprints(self) -> dict[str, dict[str, str]]:
        """Role -> {"path", "sha256"} of each data file, saved with every checkpoint as `data_files.json`.

        A held-out validation split is recomputed from the training file and the seed when a run is
        resumed or scored, so a file that changed since would silently move examples between the
        splits; `check_data_files` refuses that instead.
        """
        if self._fingerprints is None:
            self._fingerprints = self._fingerprint_files(None)
        return dict(self._fingerprints)

    def _fingerprint_files(self, roles: Collection[str] | None) -> dict[str, dict[str, str]]:
        """Role -> {"path", "sha256"} of the data files of `roles` (None: all)."""
        out = {}
        for role, spec in self.data_specs().items():
            if spec and (roles is None or role in roles):
                path = data_path(spec, "--data" if role == "data" else f"--{role}")
                out[role] = {"path": path, "sha256": sha256_file(path)}
        return out

    @staticmethod
    def training_file_needed(train: bool, val: str | None) -> bool:
        """Whether rebuilding a trained run's task reads its training file: to train on it, or to
        hold the validation split out of it. Scoring a run that has its own --val file does not."""
        return train or val is None

    @classmethod
    def roles_read(cls, train: bool, val: str | None) -> tuple[str, ...] | None:
        """The data files that rebuilding a trained run's task reads, for `check_data_files`:
        all (None), or only its own --val and --test files (see `training_file_needed`)."""
        return None if cls.training_file_needed(train, val) else ("val", "test")

    def check_data_files(self, saved: Mapping[str, Any] | None, *, roles: Collection[str] | None = None) -> None:
        """Raise `DataError` if a data file differs from the one the run was trained on (`saved`).

        Runs saved before `data_files.json` existed (None) are not checked. `roles`: only the files
        that were read ('data', 'val', 'test'; None: all), so the others need not exist.
        """
        if not saved:
            return
        current = self.data_fingerprints() if roles is None else self._fingerprint_files(roles)
        for role, info in saved.items():
            now = current.get(role)
            if now is not None and isinstance(info, Mapping) and now["sha256"] != info.get("sha256"):
                raise DataError(
                    f"data: {now['path']} is not the {role} file the run was trained on (it was {info.get('path')}, "
                    f"or it has changed since): expected sha256 {info.get('sha256')}, got {now['sha256']}; "
                    "restore the original file, or train a new run on the changed data"
                )

    # -- evaluation ---------------------------------------------------------------------------------
    def eval_batches(self, split: str) -> Iterator[np.ndarray]:
        """This rank's share of `split`, length-sorted, in batches of `eval_batch_size`."""
        if split not in self.splits:
            known = ", ".join(repr(s) for s in self.splits if s != "train")
            raise ValueError(f"split: expected one of {known}, got {split!r}")
        lengths = np.asarray(self.splits[split].lengths)
        share = np.array_split(np.arange(len(lengths)), self.world_size)[self.rank]
        order = share[np.argsort(-lengths[share], kind="stable")]
        B = self.config.eval_batch_size
        for i in range(0, len(order), B):
            yield order[i : i + B]

    def eval_sums(self, model: nn.Module, split: str) -> dict[str, float]:
        # every key present even on a rank with no examples: the trainer sums the same keys on every rank
        totals = dict.fromkeys(self.sum_keys, 0.0)
        for idx in self.eval_batches(split):
            for k, v in self.batch_sums(model, self.make_batch(split, idx)).items():
                totals[k] = totals.get(k, 0.0) + float(v)
        return totals

    def final_splits(self) -> tuple[str, ...]:
        return ("test",) if "test" in self.splits else ()

    # -- what subclasses write ------------------------------------------------------------------------
    @abc.abstractmethod
    def make_batch(self, split: str, idx: np.ndarray, step: int | None = None) -> Any:
        """The examples `idx` of `split` as tensors on `self.device` (step: set for training batches)."""

    @abc.abstractmethod
    def batch_sums(self, model: nn.Module, batch: Any) -> dict[str, float]:
        """Summed loss, count and other sums of one evaluation batch (under no_grad)."""


# ---------------------------------------------------------------------------------------------
# classification data


@dataclass(frozen=True)
class ClassifyOptions:
    """The data options of a classification run, saved in the run folder as `task_options.json`.

    Args:
        val: validation file (None: hold out `val_fraction` of the training file).
        test: test file, scored once at the end (None: none).
        label_column, text_column: column index or header name.
        header: whether each file's first row is a header (None: detected, see `load_classification`).
        lower: lowercase the texts.
        min_freq, max_vocab: tokens rarer than min_freq, or past the max_vocab most frequent,
            become `<unk>`.
        max_len: keep the first max_len tokens of a text.
    """

    val: str | None = None
    test: str | None = None
    label_column: int | str = 0
    text_column: int | str = 1
    header: bool | None = None
    lower: bool = False
    min_freq: int = 1
    max_vocab: int | None = None
    max_len: int = 400

    def __post_init__(self) -> None:
        for name in ("min_freq", "max_len"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if self.max_vocab is not None and (
            isinstance(self.max_vocab, bool) or not isinstance(self.max_vocab, int) or self.max_vocab < 1
        ):
            raise ValueError(f"max_vocab: expected a positive integer, got {self.max_vocab!r}")
        if self.header not in (None, True, False):
            raise ValueError(f"header: expected true, false or None (detect), got {self.header!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClassifyOptions:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class TextSet:
    """Encoded texts: ids (one int64 array each), labels (N,), lengths (N,), raw texts, where from."""

    ids: list[np.ndarray]
    labels: np.ndarray
    texts: list[str]
    source: str
    lengths: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.lengths = np.array([len(x) for x in self.ids], dtype=np.int64)


def _tokens(text: str, level: str, lower: bool) -> list[str]:
    if level == "word":
        return tokenize(text, lower=lower)
    return list(text.lower() if lower else text)


def build_text_vocab(texts: Sequence[str], level: str, options: ClassifyOptions) -> WordVocab:
    """The word or character vocabulary of training texts, with `<pad>`=0 and `<unk>`=1."""
    return WordVocab.build(
        (_tokens(t, level, options.lower) for t in texts),
        min_freq=options.min_freq,
        max_size=options.max_vocab,
        specials=(PAD, UNK),
        level=level,
        lower=options.lower,
    )


def encode_texts(texts: Sequence[str], vocab: WordVocab, max_len: int) -> list[np.ndarray]:
    """Token ids of each text, cut to `max_len`; a text with no token at all becomes one `<unk>`."""
    out = []
    for t in texts:
        ids = vocab.encode_text(t, newline=False)[:max_len]
        out.append(ids if len(ids) else np.array([vocab.unk_id], dtype=np.int64))
    return out


def load_text_set(path: str, options: ClassifyOptions, vocab: WordVocab, labels: LabelVocab) -> TextSet:
    """A labelled file encoded with a trained run's vocabularies; an unknown label names its line."""
    texts, labs = load_classification(
        path,
        label_column=options.label_column,
        text_column=options.text_column,
        header=options.header,
        label_vocab=labels,
    )
    return TextSet(encode_texts(texts, vocab, options.max_len), labels.encode(labs), texts, path)


# ---------------------------------------------------------------------------------------------
# the task


class ClassifyTask(ExampleTask):
    """Many-to-one text classification for the `Trainer`.

    Args:
        splits: "train" (absent when only evaluating), "val", optionally "test": `TextSet`s.
        vocab: the text vocabulary. labels: the class labels.
        model_config: a `ClassifierConfig` matching the vocabularies.
        config: the training config. options: the data options.

    Example:
        >>> task = ClassifyTask.from_options(TrainConfig(engine="torch", data="train.tsv", max_steps=100),
        ...                                  ClassifyOptions(), {"hidden_size": 64})   # doctest: +SKIP
    """

    name = "classify"
    sum_keys = ("loss_sum", "count", "correct")

    def __init__(
        self,
        splits: dict[str, TextSet],
        vocab: WordVocab,
        labels: LabelVocab,
        model_config: ClassifierConfig,
        config: TrainConfig,
        options: ClassifyOptions,
    ) -> None:
        super().__init__(config)
        if model_config.vocab_size != len(vocab) or model_config.num_classes != len(labels):
            raise ValueError(
                f"model_config: expected vocab_size={len(vocab)} and num_classes={len(labels)} (the data's), "
                f"got {model_config.vocab_size} and {model_config.num_classes}"
            )
        self.splits, self.vocab, self.labels = splits, vocab, labels
        self.model_config, self.options = model_config, options

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_options(
        cls,
        config: TrainConfig,
        options: ClassifyOptions,
        model_options: Mapping[str, Any],
        *,
        vocab: WordVocab | None = None,
        labels: LabelVocab | None = None,
        model_config: ClassifierConfig | None = None,
        train: bool = True,
    ) -> ClassifyTask:
        """Read the data named by `config.data` and `options`, build vocabularies (or reuse the given ones).

        Args:
            config: `data` (training file), `level` ('word' or 'char'), `val_fraction`, `seed`.
            options: the data options.
            model_options: `ClassifierConfig` fields other than the sizes that come from the data.
            vocab, labels, model_config: a trained run's (resume, evaluation): ids keep their meaning.
            train: False: keep only the evaluation splits.

        Raises:
            DataError: one line for every problem with the data (file, line, what was expected).
        """
        if labels is None or vocab is None or cls.training_file_needed(train, options.val):
            path = data_path(config.data)
            texts, labs = load_classification(
                path, label_column=options.label_column, text_column=options.text_column, header=options.header
            )
        else:  # scoring a trained run on its own --val file: the training file may have moved
            path, texts, labs = str(config.data), [], []
        if labels is None:
            # every class of the training file (before a held-out split) is a class of the task
            labels = LabelVocab.from_labels(labs)
            if len(labels) > 20 and len(labels) > len(labs) / 2:  # a text column read as labels, most likely
                raise DataError(
                    f"data: {path} has {len(labels):,} distinct labels in {len(labs):,} examples (label column "
                    f"{options.label_column!r}, e.g. {labs[0][:40]!r}): is it the label column? Choose the columns "
                    "with --label-column and --text-column"
                )
        if options.val is None:
            tr, va = held_out_split(len(texts), config.val_fraction, config.seed, path)
            train_texts, val_texts = [texts[i] for i in tr], [texts[i] for i in va]
            train_labs, val_labs = [labs[i] for i in tr], [labs[i] for i in va]
            val_source = f"{path} (held out {config.val_fraction:g})"
        else:
            train_texts, train_labs = texts, labs
            val_path = data_path(options.val, "--val")
            val_texts, val_labs = load_classification(
                val_path,
                label_column=options.label_column,
                text_column=options.text_column,
                header=options.header,
                label_vocab=labels,
            )
            val_source = val_path
        if len(labels) < 2:
            raise DataError(f"data: {path} has a single label {labels.itos[0]!r}; classification needs at least 2")
        if vocab is None:
            vocab = build_text_vocab(train_texts, config.level, options)
        splits: dict[str, TextSet] = {}
        if train:
            splits["train"] = TextSet(
                encode_texts(train_texts, vocab, options.max_len), labels.encode(train_labs), train_texts, path
            )
        splits["val"] = TextSet(
            encode_texts(val_texts, vocab, options.max_len), labels.encode(val_labs), val_texts, val_source
        )
        if options.test is not None:
            splits["test"] = load_text_set(data_path(options.test, "--test"), options, vocab, labels)
        if model_config is None:
            model_config = ClassifierConfig(
                vocab_size=len(vocab), num_classes=len(labels), pad_id=vocab.pad_id or 0, **model_options
            )
        return cls(splits, vocab, labels, model_config, config, options)

    @classmethod
    def from_run(
        cls, configs: Mapping[str, Any], config: TrainConfig, *, train: bool = True, load_data: bool = True
    ) -> ClassifyTask:
        """Rebuild a trained run's task from its saved JSON (`checkpoint.configs`).

        Args:
            configs: the run's configs (model_config, vocab, labels, task_options).
            config: its training config (with `data` changed, if the data moved).
            train: also load the training split (resuming).
            load_data: False: no data at all (scoring a file, predicting): splits are added later.
        """
        vocab = WordVocab.from_json(configs["vocab"])
        labels = LabelVocab.from_json(configs["labels"])
        options = ClassifyOptions.from_dict(configs["task_options"])
        model_config = ClassifierConfig.from_dict(configs["model_config"])
        if not load_data:
            return cls({}, vocab, labels, model_config, config, options)
        task = cls.from_options(config, options, {}, vocab=vocab, labels=labels, model_config=model_config, train=train)
        task.check_data_files(configs.get("data_files"), roles=cls.roles_read(train, options.val))
        return task

    def add_split(self, name: str, path: str) -> str:
        """Load a labelled file as the split `name` (e.g. for `rnnlab eval --data`); returns its path."""
        path = data_path(path)
        self.splits[name] = load_text_set(path, self.options, self.vocab, self.labels)
        return path

    def describe(self) -> str:
        sizes = " / ".join(f"{len(s.lengths):,} {n}" for n, s in self.splits.items())
        return (
            f"data: {sizes} texts, {len(self.labels)} classes, {self.config.level} vocabulary {len(self.vocab):,}; "
            f"model: {'bi' if self.model_config.bidirectional else 'uni'}directional {self.model_config.cell} "
            f"{self.model_config.num_layers}x{self.model_config.hidden_size}, {self.model_config.pooling} pooling"
        )

    # -- the Task interface ----------------------------------------------------------------------------
    def build_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return SequenceClassifier(self.model_config)

    def make_batch(
        self, split: str, idx: np.ndarray, step: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ds: TextSet = self.splits[split]
        ids, lengths = pad_batch([ds.ids[i] for i in idx], self.vocab.pad_id or 0)
        dev = self.device
        return (
            torch.from_numpy(ids).to(dev, non_blocking=True),
            torch.from_numpy(lengths),  # packing wants the lengths on the CPU
            torch.from_numpy(ds.labels[idx]).to(dev, non_blocking=True),
        )

    def loss(self, model: nn.Module, batch: Any, carry: Carry) -> tuple[torch.Tensor, Carry]:
        ids, lengths, y = batch
        return F.cross_entropy(model(ids, lengths).float(), y), None

    def batch_sums(self, model: nn.Module, batch: Any) -> dict[str, float]:
        ids, lengths, y = batch
        logits = model(ids, lengths).float()
        return {
            "loss_sum": F.cross_entropy(logits, y, reduction="sum").item(),
            "count": float(len(y)),
            "correct": float((logits.argmax(-1) == y).sum().item()),
        }

    def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
        n = max(sums.get("count", 0.0), 1.0)
        return {"loss": sums["loss_sum"] / n, "accuracy": sums.get("correct", 0.0) / n}

    def artifacts(self) -> dict[str, dict[str, Any]]:
        return {
            "vocab": self.vocab.to_json(),
            "labels": self.labels.to_json(),
            "task_options": self.options.to_dict(),
            "data_files": self.data_fingerprints(),
        }

    # -- prediction -----------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model: nn.Module, texts: Sequence[str]) -> list[tuple[str, float, list[float]]]:
        """(label, its probability, all class probabilities) for each text.

        Example:
            >>> task.predict(model, ["a gripping , funny film"])[0][:2]   # doctest: +SKIP
            ('1', 0.97)
        """
        model.eval()
        ids = encode_texts(texts, self.vocab, self.options.max_len)
        out = []
        for start in range(0, len(ids), self.config.eval_batch_size):
            chunk = ids[start : start + self.config.eval_batch_size]
            x, lengths = pad_batch(chunk, self.vocab.pad_id or 0)
            probs = torch.softmax(
                model(torch.from_numpy(x).to(self.device), torch.from_numpy(lengths)).float(), -1
            ).cpu()
            for row in probs.tolist():
                k = int(np.argmax(row))
                out.append((self.labels.itos[k], row[k], row))
        return out
