"""Sequence tagging (many-to-many: a tag per word) from CoNLL-U files, for the torch `Trainer`.

Part-of-speech tagging of Universal Dependencies treebanks: the words (FORM) of each sentence
in, a tag per word out, UPOS by default (`--column xpos` for the treebank's own tags). The model
is a `Tagger`: each word is its embedding concatenated with a vector read from its characters by
a small BiGRU (so a word never seen in training still gets a meaningful input from its spelling,
suffix and capitalisation), and a bidirectional RNN over the sentence, on packed sequences,
predicts a tag at every word. Words seen in training are replaced by `<unk>` at random
(`word_dropout`), so that the `<unk>` embedding that unseen words get is trained too.

The validation split is `--val FILE` (the treebank's dev file), or a seeded held-out fraction of
the training sentences. Evaluation reports the loss (mean cross-entropy per word) and the token
accuracy.

Example:
    >>> config = TrainConfig(engine="torch", data="en_ewt-ud-train.conllu", max_time=60)     # doctest: +SKIP
    >>> task = TagTask.from_options(config, TagOptions(val="en_ewt-ud-dev.conllu"), {})      # doctest: +SKIP
    >>> Trainer(task, config, "runs/ewt").fit()["val_accuracy"]                              # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig
from ..data.classify import LabelVocab, pad_batch
from ..data.conllu import (
    IGNORE_INDEX,
    TAG_COLUMNS,
    build_tagging_vocabs,
    char_ids,
    encode_tagging,
    read_conllu,
)
from ..data.words import WordVocab
from ..torch.heads import Tagger, TaggerConfig, masked_token_stats
from .classify_task import ExampleTask, data_path, held_out_split
from .trainer import Carry


@dataclass(frozen=True)
class TagOptions:
    """The data options of a tagging run, saved as `task_options.json`.

    Args:
        val, test: CoNLL-U files (val None: hold out `val_fraction` of the training sentences).
        column: the tag column ('upos', 'xpos', ...).
        lower: lowercase words for the word vocabulary (characters keep their case).
        min_freq, max_vocab: word vocabulary limits (rarer words become `<unk>`).
        chars: read the characters of every word (False: word embeddings only).
        max_word_len: characters read per word (the first ones).
        word_dropout: chance that a training word is replaced by `<unk>`.
    """

    val: str | None = None
    test: str | None = None
    column: str = "upos"
    lower: bool = False
    min_freq: int = 1
    max_vocab: int | None = None
    chars: bool = True
    max_word_len: int = 20
    word_dropout: float = 0.05

    def __post_init__(self) -> None:
        if self.column not in TAG_COLUMNS:
            raise ValueError(f"column: expected one of {', '.join(TAG_COLUMNS)}, got {self.column!r}")
        for name in ("min_freq", "max_word_len"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if self.max_vocab is not None and (
            isinstance(self.max_vocab, bool) or not isinstance(self.max_vocab, int) or self.max_vocab < 1
        ):
            raise ValueError(f"max_vocab: expected a positive integer, got {self.max_vocab!r}")
        if not isinstance(self.word_dropout, (int, float)) or not 0 <= self.word_dropout < 1:
            raise ValueError(f"word_dropout: expected a number in [0, 1), got {self.word_dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TagOptions:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class SentenceSet:
    """Encoded sentences: word ids, tag ids, per-sentence character ids (T, C) and lengths (T,)."""

    words: list[list[str]]
    word_ids: list[np.ndarray]
    tag_ids: list[np.ndarray]
    chars: list[tuple[np.ndarray, np.ndarray]] | None
    source: str
    lengths: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.lengths = np.array([len(x) for x in self.word_ids], dtype=np.int64)


def encode_sentences(
    sentences: Sequence[tuple[Sequence[str], Sequence[str]]],
    word_vocab: WordVocab,
    tag_vocab: LabelVocab,
    char_vocab: WordVocab | None,
    max_word_len: int,
    source: str,
) -> SentenceSet:
    """`SentenceSet` of (words, tags) pairs; tags unknown to `tag_vocab` are a DataError."""
    word_ids, tag_ids = encode_tagging(sentences, word_vocab, tag_vocab)
    chars = None
    if char_vocab is not None:
        chars = [char_ids(list(words), char_vocab, max_word_len=max_word_len) for words, _ in sentences]
    return SentenceSet([list(w) for w, _ in sentences], word_ids, tag_ids, chars, source)


def pad_chars(per_sentence: Sequence[tuple[np.ndarray, np.ndarray]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack per-sentence (T_b, C_b) character ids into (B, T, C) and lengths (B, T) (0 for padding words)."""
    T = max(ids.shape[0] for ids, _ in per_sentence)
    C = max(ids.shape[1] for ids, _ in per_sentence)
    out = np.full((len(per_sentence), T, C), pad_id, dtype=np.int64)
    lengths = np.zeros((len(per_sentence), T), dtype=np.int64)
    for b, (ids, lens) in enumerate(per_sentence):
        out[b, : ids.shape[0], : ids.shape[1]] = ids
        lengths[b, : len(lens)] = lens
    return out, lengths


class TagTask(ExampleTask):
    """Many-to-many tagging of CoNLL-U sentences for the `Trainer`.

    Args:
        splits: "train" (absent when only evaluating), "val", optionally "test": `SentenceSet`s.
        word_vocab, tag_vocab, char_vocab: vocabularies (char_vocab None without characters).
        model_config: a `TaggerConfig` matching them. config: the training config. options: data options.
    """

    name = "tag"
    sum_keys = ("loss_sum", "count", "correct")

    def __init__(
        self,
        splits: dict[str, SentenceSet],
        word_vocab: WordVocab,
        tag_vocab: LabelVocab,
        char_vocab: WordVocab | None,
        model_config: TaggerConfig,
        config: TrainConfig,
        options: TagOptions,
    ) -> None:
        super().__init__(config)
        expected = (len(word_vocab), len(tag_vocab), len(char_vocab) if char_vocab is not None else 0)
        got = (model_config.vocab_size, model_config.num_tags, model_config.char_vocab_size)
        if expected != got:
            raise ValueError(
                f"model_config: expected (vocab_size, num_tags, char_vocab_size) = {expected} (the data's), got {got}"
            )
        self.splits, self.word_vocab, self.tag_vocab, self.char_vocab = splits, word_vocab, tag_vocab, char_vocab
        self.model_config, self.options = model_config, options

    @classmethod
    def from_options(
        cls,
        config: TrainConfig,
        options: TagOptions,
        model_options: Mapping[str, Any],
        *,
        vocabs: tuple[WordVocab, LabelVocab, WordVocab | None] | None = None,
        model_config: TaggerConfig | None = None,
        train: bool = True,
    ) -> TagTask:
        """Read the CoNLL-U files named by `config.data` and `options`; build vocabularies or reuse `vocabs`.

        Raises:
            DataError: with file and line number, for a CoNLL-U syntax error, a missing tag, an
                unknown tag in the validation file, an empty file.
        """
        if vocabs is None or cls.training_file_needed(train, options.val):
            path = data_path(config.data)
            sentences = read_conllu(path, options.column)
        else:  # scoring a trained run on its own --val file: the training file may have moved
            path, sentences = str(config.data), []
        if options.val is None:
            tr, va = held_out_split(len(sentences), config.val_fraction, config.seed, path)
            train_sents, val_sents = [sentences[i] for i in tr], [sentences[i] for i in va]
            val_source = f"{path} (held out {config.val_fraction:g})"
        else:
            train_sents, val_sents, val_source = sentences, None, data_path(options.val, "--val")
        if vocabs is None:
            # words and characters from the training sentences only; the tags of the whole file
            # (a held-out sentence may hold a rare tag that no training sentence has)
            word_vocab, tag_vocab, char_vocab = build_tagging_vocabs(
                train_sents, min_freq=options.min_freq, max_size=options.max_vocab, lower=options.lower
            )
            if options.val is None:
                tag_vocab = LabelVocab.from_labels(t for _, tags in sentences for t in tags)
            vocabs = (word_vocab, tag_vocab, char_vocab if options.chars else None)
        word_vocab, tag_vocab, char_vocab = vocabs
        if val_sents is None:
            val_sents = read_conllu(val_source, options.column, tag_vocab=tag_vocab)

        def enc(sents: Sequence[tuple[list[str], list[str]]], source: str) -> SentenceSet:
            return encode_sentences(sents, word_vocab, tag_vocab, char_vocab, options.max_word_len, source)

        splits: dict[str, SentenceSet] = {}
        if train:
            splits["train"] = enc(train_sents, path)
        splits["val"] = enc(val_sents, val_source)
        if options.test is not None:
            test_path = data_path(options.test, "--test")
            splits["test"] = enc(read_conllu(test_path, options.column, tag_vocab=tag_vocab), test_path)
        if model_config is None:
            model_config = TaggerConfig(
                vocab_size=len(word_vocab),
                num_tags=len(tag_vocab),
                char_vocab_size=len(char_vocab) if char_vocab is not None else 0,
                pad_id=word_vocab.pad_id or 0,
                char_pad_id=(char_vocab.pad_id or 0) if char_vocab is not None else 0,
                **model_options,
            )
        return cls(splits, word_vocab, tag_vocab, char_vocab, model_config, config, options)

    @classmethod
    def from_run(
        cls, configs: Mapping[str, Any], config: TrainConfig, *, train: bool = True, load_data: bool = True
    ) -> TagTask:
        """Rebuild a trained run's task from its saved JSON (see `ClassifyTask.from_run`)."""
        word_vocab = WordVocab.from_json(configs["vocab"])
        tag_vocab = LabelVocab.from_json(configs["labels"])
        char_vocab = WordVocab.from_json(configs["char_vocab"]) if "char_vocab" in configs else None
        options = TagOptions.from_dict(configs["task_options"])
        model_config = TaggerConfig.from_dict(configs["model_config"])
        if not load_data:
            return cls({}, word_vocab, tag_vocab, char_vocab, model_config, config, options)
        task = cls.from_options(
            config, options, {}, vocabs=(word_vocab, tag_vocab, char_vocab), model_config=model_config, train=train
        )
        task.check_data_files(configs.get("data_files"), roles=cls.roles_read(train, options.val))
        return task

    def add_split(self, name: str, path: str) -> str:
        """Load a CoNLL-U file as split `name` with the run's vocabularies; returns its path."""
        path = data_path(path)
        sents = read_conllu(path, self.options.column, tag_vocab=self.tag_vocab)
        self.splits[name] = encode_sentences(
            sents, self.word_vocab, self.tag_vocab, self.char_vocab, self.options.max_word_len, path
        )
        return path

    def describe(self) -> str:
        sizes = " / ".join(f"{len(s.lengths):,} {n} ({int(s.lengths.sum()):,} words)" for n, s in self.splits.items())
        chars = f", {len(self.char_vocab)} characters" if self.char_vocab is not None else ", no characters"
        mc = self.model_config
        return (
            f"data: {sizes} sentences, {len(self.tag_vocab)} {self.options.column.upper()} tags, "
            f"{len(self.word_vocab):,} words{chars}; model: bidirectional {mc.cell} {mc.num_layers}x{mc.hidden_size}"
        )

    # -- the Task interface ----------------------------------------------------------------------------
    def build_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return Tagger(self.model_config)

    def make_batch(self, split: str, idx: np.ndarray, step: int | None = None) -> dict[str, torch.Tensor | None]:
        ds: SentenceSet = self.splits[split]
        pad = self.word_vocab.pad_id or 0
        words, lengths = pad_batch([ds.word_ids[i] for i in idx], pad)
        if step is not None and self.options.word_dropout > 0 and self.word_vocab.unk_id is not None:
            # drawn from (seed, step, sentence), not a running generator: nothing to save for an exact
            # resume, and a sentence gets the same mask whichever rank's share or padding it lands in
            draws = np.ones(words.shape)  # (B, L); padding never drops
            for row, i in enumerate(idx):
                draws[row, : lengths[row]] = np.random.default_rng([self.config.seed, 3, step, int(i)]).random(
                    lengths[row]
                )
            words = np.where(draws < self.options.word_dropout, self.word_vocab.unk_id, words)
        tags, _ = pad_batch([ds.tag_ids[i] for i in idx], IGNORE_INDEX)
        dev = self.device
        batch: dict[str, torch.Tensor | None] = {
            "words": torch.from_numpy(words).to(dev, non_blocking=True),
            "lengths": torch.from_numpy(lengths),
            "tags": torch.from_numpy(tags).to(dev, non_blocking=True),
            "chars": None,
            "char_lengths": None,
        }
        if ds.chars is not None and self.char_vocab is not None:
            chars, char_lengths = pad_chars([ds.chars[i] for i in idx], self.char_vocab.pad_id or 0)
            batch["chars"] = torch.from_numpy(chars).to(dev, non_blocking=True)
            batch["char_lengths"] = torch.from_numpy(char_lengths)
        return batch

    def _logits(self, model: nn.Module, b: Mapping[str, Any]) -> torch.Tensor:
        return model(b["words"], b["lengths"], b["chars"], b["char_lengths"])

    def loss(self, model: nn.Module, batch: Any, carry: Carry) -> tuple[torch.Tensor, Carry]:
        logits = self._logits(model, batch).float()
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), batch["tags"].reshape(-1), ignore_index=IGNORE_INDEX
        ), None

    def loss_count(self, batch: Any) -> float:
        return float((batch["tags"] != IGNORE_INDEX).sum().item())

    def batch_sums(self, model: nn.Module, batch: Any) -> dict[str, float]:
        loss, n, correct = masked_token_stats(self._logits(model, batch), batch["tags"], IGNORE_INDEX)
        return {"loss_sum": loss.item(), "count": float(n), "correct": float(correct)}

    def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
        n = max(sums.get("count", 0.0), 1.0)
        return {"loss": sums["loss_sum"] / n, "accuracy": sums.get("correct", 0.0) / n}

    def artifacts(self) -> dict[str, dict[str, Any]]:
        out = {
            "vocab": self.word_vocab.to_json(),
            "labels": self.tag_vocab.to_json(),
            "task_options": self.options.to_dict(),
            "data_files": self.data_fingerprints(),
        }
        if self.char_vocab is not None:
            out["char_vocab"] = self.char_vocab.to_json()
        return out

    def tokens_per_step(self) -> int:
        return self.config.batch_size  # sentences, as the other tasks count examples (words per batch vary)

    # -- prediction -----------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model: nn.Module, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """The tag of every word of each (already tokenised) sentence.

        Example:
            >>> task.predict(model, [["The", "cat", "sat", "."]])     # doctest: +SKIP
            [['DET', 'NOUN', 'VERB', 'PUNCT']]
        """
        model.eval()
        dummy = self.tag_vocab.itos[0]
        ds = encode_sentences(
            [(list(s), [dummy] * len(s)) for s in sentences],
            self.word_vocab,
            self.tag_vocab,
            self.char_vocab,
            self.options.max_word_len,
            "input",
        )
        self.splits["_predict"] = ds
        try:
            out: list[list[str]] = []
            B = self.config.eval_batch_size
            for start in range(0, len(sentences), B):
                idx = np.arange(start, min(start + B, len(sentences)))
                pred = self._logits(model, self.make_batch("_predict", idx)).argmax(-1).cpu().numpy()
                for row, i in enumerate(idx):
                    out.append(self.tag_vocab.decode(pred[row, : ds.lengths[i]]))
            return out
        finally:
            del self.splits["_predict"]
