"""Sequence to sequence with attention, for the torch `Trainer`: synthetic tasks and TSV pairs.

Data: the built-in synthetic tasks (`--data reverse`, `--data sort`: random digit strings and
their reversal or sorting, generated from the seed; the validation pairs from another seed), or
a user's file of `source<TAB>target` lines (validation: `--val FILE`, or a seeded held-out
fraction). Tokens are characters (default) or words (`--level word`).

Model: a `Seq2Seq` encoder–decoder (bidirectional encoder, decoder with Luong global attention,
'general' or 'dot'), trained with teacher forcing: the decoder reads `<bos>` + target and
predicts target + `<eos>`. Evaluation reports the loss (mean cross-entropy per target token,
`<eos>` included), the token accuracy under teacher forcing, and the exact-match accuracy of
whole outputs decoded greedily (the model fed its own predictions, as at test time).

Decoding (`translate`) is greedy or beam search (`rnnlab.generation.beam`).

Example:
    >>> config = TrainConfig(engine="torch", data="reverse", max_steps=2000)        # doctest: +SKIP
    >>> task = Seq2SeqTask.from_options(config, Seq2SeqOptions(), {})              # doctest: +SKIP
    >>> Trainer(task, config, "runs/reverse").fit()["val_exact_match"]              # doctest: +SKIP
    1.0
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig
from ..data.classify import pad_batch
from ..data.seq2seq import TASKS as SYNTHETIC
from ..data.seq2seq import build_seq2seq_vocabs, collate_pairs, encode_pairs, load_pairs, make_task
from ..data.text import DataError
from ..data.words import WordVocab
from ..generation.beam import Hypothesis, beam_search, greedy_search
from ..torch.heads import Seq2Seq, Seq2SeqConfig, Seq2SeqStepper, masked_token_stats
from .classify_task import ExampleTask, data_path, held_out_split
from .trainer import Carry


def is_synthetic(spec: str | None) -> bool:
    """Whether `--data` names a built-in synthetic task (an existing file of that name wins).

    Example:
        >>> is_synthetic("reverse"), is_synthetic("pairs.tsv")
        (True, False)
    """
    return spec in SYNTHETIC and not os.path.exists(spec)


def decode_limit(src_len: int, longest_target: int | None = None) -> int:
    """The most tokens decoded for a source of `src_len` tokens, `<eos>` included.

    2·len + 10, and at least the longest training target (`longest_target` tokens) + `<eos>` + 10,
    so that a task whose outputs are longer than twice its inputs is not cut.

    Example:
        >>> decode_limit(3), decode_limit(1, longest_target=16)
        (16, 27)
    """
    return max(2 * int(src_len), int(longest_target or 0) + 1) + 10


@dataclass(frozen=True)
class Seq2SeqOptions:
    """The data options of a sequence-to-sequence run, saved as `task_options.json`.

    Args:
        val, test: TSV files of pairs (val None: synthetic pairs from another seed, or a held-out
            fraction of the training file).
        num_train, num_val: pairs of a synthetic task.
        min_length, max_length: source lengths of a synthetic task (inclusive).
        alphabet: a synthetic task's characters: 'digits', 'letters' or the characters themselves.
        lower: lowercase both sides. min_freq, max_vocab: vocabulary limits (rarer: `<unk>`).
        shared_vocab: one vocabulary for both sides (always, for the synthetic tasks).
    """

    val: str | None = None
    test: str | None = None
    num_train: int = 20000
    num_val: int = 1000
    min_length: int = 1
    max_length: int = 10
    alphabet: str = "digits"
    lower: bool = False
    min_freq: int = 1
    max_vocab: int | None = None
    shared_vocab: bool = False

    def __post_init__(self) -> None:
        for name in ("num_train", "num_val", "min_length", "max_length", "min_freq"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if self.min_length > self.max_length:
            raise ValueError(
                f"min_length, max_length: expected min_length <= max_length, got {self.min_length} > {self.max_length}"
            )
        if self.max_vocab is not None and (
            isinstance(self.max_vocab, bool) or not isinstance(self.max_vocab, int) or self.max_vocab < 1
        ):
            raise ValueError(f"max_vocab: expected a positive integer, got {self.max_vocab!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Seq2SeqOptions:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class PairSet:
    """Encoded pairs: (source ids, target ids) each, the raw pairs, where from."""

    encoded: list[tuple[np.ndarray, np.ndarray]]
    pairs: list[tuple[str, str]]
    source: str
    lengths: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        # bucket by source length: the encoder's padding is what packing would otherwise waste
        self.lengths = np.array([max(len(s), 1) for s, _ in self.encoded], dtype=np.int64)


def synthetic_pairs(task: str, n: int, seed: int, options: Seq2SeqOptions) -> list[tuple[str, str]]:
    """`n` pairs of a synthetic task with the options' lengths and alphabet."""
    return make_task(
        task, n, seed=seed, min_len=options.min_length, max_len=options.max_length, alphabet=options.alphabet
    )


class Seq2SeqTask(ExampleTask):
    """Encoder–decoder training with teacher forcing, for the `Trainer`.

    Args:
        splits: "train" (absent when only evaluating), "val", optionally "test": `PairSet`s.
        src_vocab, tgt_vocab: vocabularies with `<pad>`, `<bos>`, `<eos>`, `<unk>`.
        model_config: a `Seq2SeqConfig` matching them. config: the training config. options: data options.
    """

    name = "seq2seq"
    sum_keys = ("loss_sum", "count", "correct", "exact", "sequences")

    def __init__(
        self,
        splits: dict[str, PairSet],
        src_vocab: WordVocab,
        tgt_vocab: WordVocab,
        model_config: Seq2SeqConfig,
        config: TrainConfig,
        options: Seq2SeqOptions,
    ) -> None:
        super().__init__(config)
        if (model_config.src_vocab_size, model_config.tgt_vocab_size) != (len(src_vocab), len(tgt_vocab)):
            raise ValueError(
                f"model_config: expected vocabulary sizes {len(src_vocab)} and {len(tgt_vocab)} (the data's), "
                f"got {model_config.src_vocab_size} and {model_config.tgt_vocab_size}"
            )
        self.splits, self.src_vocab, self.tgt_vocab = splits, src_vocab, tgt_vocab
        self.model_config, self.options = model_config, options

    @classmethod
    def from_options(
        cls,
        config: TrainConfig,
        options: Seq2SeqOptions,
        model_options: Mapping[str, Any],
        *,
        vocabs: tuple[WordVocab, WordVocab] | None = None,
        model_config: Seq2SeqConfig | None = None,
        train: bool = True,
        synthetic: bool | None = None,
    ) -> Seq2SeqTask:
        """Generate or read the pairs named by `config.data`; build vocabularies or reuse `vocabs`.

        `synthetic` says whether `config.data` names a built-in task (None: `is_synthetic`, where an
        existing file of that name wins; a saved run knows, whatever the current folder holds).

        Raises:
            DataError: a file line without exactly 2 tab-separated columns or with an empty side
                (with its line number), an empty file, too few pairs to hold some out.
        """
        spec = config.data
        if not spec:
            raise DataError(
                f"data: --data is required: {' or '.join(SYNTHETIC)} (synthetic), or a TSV file of source<TAB>target lines"
            )
        synthetic = is_synthetic(spec) if synthetic is None else synthetic
        if synthetic:
            train_pairs = synthetic_pairs(spec, options.num_train, config.seed, options)
            name = f"synthetic {spec!r} task"
            val_pairs = synthetic_pairs(spec, options.num_val, config.seed + 1, options)
            val_source = f"{name} (seed {config.seed + 1})"
            if options.val is not None:
                val_source = data_path(options.val, "--val")
                val_pairs = load_pairs(val_source)
        elif vocabs is not None and not cls.training_file_needed(train, options.val):
            # scoring a trained run on its own --val file: the training file may have moved
            name, train_pairs = str(spec), []
            val_source = data_path(options.val, "--val")
            val_pairs = load_pairs(val_source)
        else:
            name = data_path(spec)
            pairs = load_pairs(name)
            if options.val is None:
                tr, va = held_out_split(len(pairs), config.val_fraction, config.seed, name)
                train_pairs, val_pairs = [pairs[i] for i in tr], [pairs[i] for i in va]
                val_source = f"{name} (held out {config.val_fraction:g})"
            else:
                train_pairs = pairs
                val_source = data_path(options.val, "--val")
                val_pairs = load_pairs(val_source)
        if vocabs is None:
            vocabs = build_seq2seq_vocabs(
                train_pairs,
                level=config.level,
                min_freq=options.min_freq,
                max_size=options.max_vocab,
                lower=options.lower,
                shared=options.shared_vocab or synthetic,
            )
        src_vocab, tgt_vocab = vocabs
        splits: dict[str, PairSet] = {}
        if train:
            splits["train"] = PairSet(encode_pairs(train_pairs, src_vocab, tgt_vocab), train_pairs, name)
        splits["val"] = PairSet(encode_pairs(val_pairs, src_vocab, tgt_vocab), val_pairs, val_source)
        if options.test is not None:
            test_path = data_path(options.test, "--test")
            test_pairs = load_pairs(test_path)
            splits["test"] = PairSet(encode_pairs(test_pairs, src_vocab, tgt_vocab), test_pairs, test_path)
        if model_config is None:
            model_config = Seq2SeqConfig(
                src_vocab_size=len(src_vocab),
                tgt_vocab_size=len(tgt_vocab),
                pad_id=tgt_vocab.pad_id,
                bos_id=tgt_vocab.bos_id,
                eos_id=tgt_vocab.eos_id,
                longest_target=max((len(ids) for _, ids in splits["train"].encoded), default=None) if train else None,
                **model_options,
            )
        return cls(splits, src_vocab, tgt_vocab, model_config, config, options)

    @classmethod
    def from_run(
        cls, configs: Mapping[str, Any], config: TrainConfig, *, train: bool = True, load_data: bool = True
    ) -> Seq2SeqTask:
        """Rebuild a trained run's task from its saved JSON (see `ClassifyTask.from_run`)."""
        src_vocab = WordVocab.from_json(configs["vocab"])
        tgt_vocab = WordVocab.from_json(configs["target_vocab"])
        options = Seq2SeqOptions.from_dict(configs["task_options"])
        model_config = Seq2SeqConfig.from_dict(configs["model_config"])
        if not load_data:
            return cls({}, src_vocab, tgt_vocab, model_config, config, options)
        # files are saved with absolute paths, so a bare task name is the synthetic task it named
        trained_on = configs.get("train_config", {}).get("data")
        synthetic = trained_on in SYNTHETIC
        if config.data != trained_on and (synthetic or is_synthetic(config.data)):
            what = f"the synthetic {trained_on!r} task" if synthetic else f"the file {trained_on}"
            raise ValueError(
                f"data: the run was trained on {what}; --data may only give a moved file's new place, got {config.data!r}"
            )
        task = cls.from_options(
            config,
            options,
            {},
            vocabs=(src_vocab, tgt_vocab),
            model_config=model_config,
            train=train,
            synthetic=synthetic,
        )
        roles = None if synthetic else cls.roles_read(train, options.val)  # a synthetic task reads no data file
        task.check_data_files(configs.get("data_files"), roles=roles)
        return task

    def add_split(self, name: str, path: str) -> str:
        """Pairs to score as split `name`: a TSV file, or a synthetic task's name (fresh pairs, another seed)."""
        if is_synthetic(path):
            pairs = synthetic_pairs(path, self.options.num_val, self.config.seed + 2, self.options)
            source = f"synthetic {path!r} task (seed {self.config.seed + 2})"
        else:
            source = data_path(path)
            pairs = load_pairs(source)
        self.splits[name] = PairSet(encode_pairs(pairs, self.src_vocab, self.tgt_vocab), pairs, source)
        return source

    def describe(self) -> str:
        sizes = " / ".join(f"{len(s.lengths):,} {n}" for n, s in self.splits.items())
        mc = self.model_config
        return (
            f"data: {sizes} pairs, vocabularies {len(self.src_vocab)} -> {len(self.tgt_vocab)} ({self.config.level}s); "
            f"model: {'bi' if mc.bidirectional else 'uni'}directional {mc.cell} encoder {mc.num_layers}x{mc.hidden_size}, "
            f"Luong {mc.attention} attention"
        )

    # -- the Task interface ----------------------------------------------------------------------------
    def build_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return Seq2Seq(self.model_config)

    def make_batch(self, split: str, idx: np.ndarray, step: int | None = None) -> dict[str, torch.Tensor]:
        ds: PairSet = self.splits[split]
        enc = [ds.encoded[i] for i in idx]
        # an empty source (a word-level line of spaces) still needs one step for the encoder: <unk>
        enc = [(s if len(s) else np.array([self.src_vocab.unk_id], dtype=np.int64), t) for s, t in enc]
        b = collate_pairs(enc, self.src_vocab, self.tgt_vocab)
        dev = self.device
        out = {k: torch.from_numpy(v).to(dev, non_blocking=True) for k, v in b.items() if k != "src_lengths"}
        out["src_lengths"] = torch.from_numpy(b["src_lengths"])  # packing wants them on the CPU
        return out

    def loss(self, model: nn.Module, batch: Any, carry: Carry) -> tuple[torch.Tensor, Carry]:
        logits = model(batch["src"], batch["src_lengths"], batch["tgt_in"]).float()
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), batch["tgt_out"].reshape(-1), ignore_index=self.model_config.pad_id
        )
        return loss, None

    def loss_count(self, batch: Any) -> float:
        return float((batch["tgt_out"] != self.model_config.pad_id).sum().item())

    def batch_sums(self, model: nn.Module, batch: Any) -> dict[str, float]:
        logits = model(batch["src"], batch["src_lengths"], batch["tgt_in"])
        unk = self.tgt_vocab.unk_id  # a reference <unk> stands for a token the model cannot write: never right
        loss, n, correct = masked_token_stats(logits, batch["tgt_out"], self.model_config.pad_id, never_right=unk)
        lengths = batch["tgt_lengths"].cpu().tolist()
        # decoding may run as long as the reference (+ <eos>): a right answer is never cut short
        limits = [
            max(decode_limit(n_src, self.model_config.longest_target), n_ref + 1)
            for n_src, n_ref in zip(batch["src_lengths"].tolist(), lengths, strict=True)
        ]
        hyps = self.decode(model, batch["src"], batch["src_lengths"], max_len=limits)
        exact = 0
        tgt_out = batch["tgt_out"].cpu().numpy()
        for h, row, length in zip(hyps, tgt_out, lengths, strict=True):
            ref = row[:length].tolist()
            exact += int(h[0].finished and h[0].tokens == ref and unk not in ref)
        return {
            "loss_sum": loss.item(),
            "count": float(n),
            "correct": float(correct),
            "exact": float(exact),
            "sequences": float(len(hyps)),
        }

    def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
        n = max(sums.get("count", 0.0), 1.0)
        return {
            "loss": sums["loss_sum"] / n,
            "token_accuracy": sums.get("correct", 0.0) / n,
            "exact_match": sums.get("exact", 0.0) / max(sums.get("sequences", 0.0), 1.0),
        }

    def artifacts(self) -> dict[str, dict[str, Any]]:
        return {
            "vocab": self.src_vocab.to_json(),
            "target_vocab": self.tgt_vocab.to_json(),
            "task_options": self.options.to_dict(),
            "data_files": self.data_fingerprints(),
        }

    def data_specs(self) -> dict[str, str | None]:
        specs = super().data_specs()
        if specs["data"] is not None and is_synthetic(specs["data"]):
            specs["data"] = None  # generated from the seed, not read from a file
        return specs

    # -- decoding -------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(
        self,
        model: nn.Module,
        src: torch.Tensor,
        src_lengths: torch.Tensor,
        *,
        beam_size: int = 1,
        alpha: float = 1.0,
        n_best: int = 1,
        max_len: int | Sequence[int] | None = None,
    ) -> list[list[Hypothesis]]:
        """Decode a padded batch of sources: greedy (beam_size 1) or beam search.

        Args:
            model: the `Seq2Seq`.
            src: (B, S) source ids; src_lengths: (B,).
            beam_size, alpha, n_best: see `generation.beam.beam_search`.
            max_len: tokens at most per output, `<eos>` included: one for all, one per source, or
                None (`decode_limit` of each source and the longest training target).

        Returns:
            For each source, its hypotheses (one with greedy decoding), best first.
        """
        stepper = Seq2SeqStepper(model, src, src_lengths)
        lengths = src_lengths.tolist()
        if isinstance(max_len, Sequence):
            limits = [int(m) for m in max_len]
        else:
            limits = [max_len or decode_limit(n, self.model_config.longest_target) for n in lengths]
        c = self.model_config
        banned = [c.pad_id, c.bos_id]  # padding and the start token are never output

        def step(tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
            logits, state = stepper.step(tokens, state)
            logits = logits.clone()
            logits[:, banned] = -math.inf
            return logits, state

        if beam_size == 1 and n_best == 1:
            hyps = greedy_search(
                step,
                stepper.state,
                batch_size=len(lengths),
                bos_id=c.bos_id,
                eos_id=c.eos_id,
                max_len=limits,
                device=src.device,
            )
            return [[h] for h in hyps]
        return beam_search(
            step,
            stepper.state,
            stepper.reorder,
            batch_size=len(lengths),
            bos_id=c.bos_id,
            eos_id=c.eos_id,
            beam_size=beam_size,
            max_len=limits,
            alpha=alpha,
            n_best=n_best,
            device=src.device,
        )

    def spaced_input(self) -> bool:
        """Whether sources may space their characters out: a character model with no space token."""
        return self.src_vocab.level == "char" and " " not in self.src_vocab.stoi

    def clean_source(self, text: str) -> str:
        """A raw source as the model reads it ("3 1 2" -> "312" for `spaced_input` models)."""
        return "".join(text.split()) if self.spaced_input() else text.strip()

    def unknown_tokens(self, sources: Sequence[str]) -> list[str]:
        """Source tokens outside the vocabulary (they are read as `<unk>`), in order of appearance."""
        return _unknown(self.src_vocab, (self.clean_source(t) for t in sources))

    def unknown_target_tokens(self, targets: Sequence[str]) -> list[str]:
        """Target tokens outside the target vocabulary (scored as `<unk>`), in order of appearance."""
        return _unknown(self.tgt_vocab, targets)

    @torch.no_grad()
    def translate(
        self,
        model: nn.Module,
        sources: Sequence[str],
        *,
        beam_size: int = 1,
        alpha: float = 1.0,
        n_best: int = 1,
        max_len: int | None = None,
    ) -> list[list[tuple[str, float]]]:
        """Decode raw source strings into (output text, log-probability) lists, best first.

        A character-level model without a space in its vocabulary reads "3 1 2" as "312" and
        writes its output spaced the same way ("2 1 3").

        Example:
            >>> task.translate(model, ["3 1 2"], beam_size=4)        # doctest: +SKIP
            [[('2 1 3', -0.0012)]]
        """
        model.eval()
        spaced = self.spaced_input()
        results: list[list[tuple[str, float]]] = []
        B = self.config.eval_batch_size
        for start in range(0, len(sources), B):
            chunk = list(sources[start : start + B])
            texts = [self.clean_source(s) for s in chunk]
            enc = [
                (ids if len(ids) else np.array([self.src_vocab.unk_id], dtype=np.int64))
                for ids in (self.src_vocab.encode_text(t, newline=False) for t in texts)
            ]
            src, lengths = pad_batch(enc, self.src_vocab.pad_id)
            hyps = self.decode(
                model,
                torch.from_numpy(src).to(self.device),
                torch.from_numpy(lengths),
                beam_size=beam_size,
                alpha=alpha,
                n_best=n_best,
                max_len=max_len,
            )
            for raw, hs in zip(chunk, hyps, strict=True):
                outs = []
                for h in hs:
                    tokens = self.tgt_vocab.decode(h.without_eos())
                    if self.tgt_vocab.level == "char":
                        sep = " " if spaced and len(raw.split()) > 1 else ""
                        text = sep.join(tokens)
                    else:
                        text = " ".join(tokens)
                    outs.append((text, h.log_prob))
                results.append(outs)
        return results


def _unknown(vocab: WordVocab, texts: Iterable[str]) -> list[str]:
    """The tokens of `texts` outside `vocab`, each once, in order of appearance."""
    seen = dict.fromkeys(tok for t in texts for tok in vocab.tokenize(t, newline=False) if tok not in vocab.stoi)
    return list(seen)


__all__ = ["PairSet", "Seq2SeqOptions", "Seq2SeqTask", "decode_limit", "is_synthetic", "synthetic_pairs"]
