"""Loading a trained language-model run folder into either engine, for sampling and scoring.

No torch here unless the torch engine is asked for: a run trained with the NumPy engine loads,
samples and scores on a machine without torch.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ModelConfig, TrainConfig
from ..data.text import DataError
from ..data.words import EOS, UNK, WordVocab, vocab_from_json
from .lm_data import Vocab


@dataclass(frozen=True)
class LoadedRun:
    """A language-model run folder, loaded for sampling or scoring.

    Attributes:
        model: a torch `LanguageModel` (engine 'torch') or a NumPy one (engine 'numpy'), eval mode.
        engine: which engine `model` is. trained_engine: the engine that trained it.
        vocab, per_line, model_config, train_config: as saved.
    """

    model: Any
    engine: str
    trained_engine: str
    vocab: Vocab
    per_line: bool
    model_config: ModelConfig
    train_config: TrainConfig


def load_run(run_dir: str | Path, engine: str | None = None, device: str = "cpu") -> LoadedRun:
    """Load a run folder written by either engine into either engine (weights are read on the CPU).

    Args:
        run_dir: the run folder (or its `best/` subfolder).
        engine: 'torch' or 'numpy'; None: the engine that trained it (NumPy if torch is not installed).
        device: torch device for engine 'torch'.

    Raises:
        CheckpointError: not a checkpoint, or a damaged one (one line, naming the file).
        DataError: the configs or the vocabulary do not parse.

    Example:
        >>> run = load_run("runs/shakespeare", engine="numpy")   # doctest: +SKIP
    """
    from .checkpoint import load_checkpoint

    ckpt = load_checkpoint(run_dir)
    for needed in ("model_config", "train_config", "vocab"):
        if needed not in ckpt.configs:
            raise DataError(f"checkpoint: {run_dir} has no {needed}.json (not a language-model run)")
    model_config = ModelConfig.from_dict(ckpt.configs["model_config"])
    train_config = TrainConfig.from_dict(ckpt.configs["train_config"])
    vocab_json = dict(ckpt.configs["vocab"])
    per_line = bool(vocab_json.pop("per_line", False))
    vocab = vocab_from_json(vocab_json)
    trained = train_config.engine
    if engine is None:
        # the engine that trained it; the NumPy twin when torch is not installed (same weights, same samples)
        engine = trained if trained == "numpy" or importlib.util.find_spec("torch") is not None else "numpy"
    if engine not in ("torch", "numpy"):
        raise ValueError(f"engine: expected 'torch' or 'numpy', got {engine!r}")
    if engine == "torch":
        from ..torch.convert import load_weights
        from ..torch.models import LanguageModel

        model = LanguageModel(model_config, seed=0)
        load_weights(model, ckpt.weights)
        model.to(device).eval()
    else:
        from ..scratch.models import LanguageModel as NumpyLanguageModel

        model = NumpyLanguageModel(model_config, seed=0)
        model.load_state_dict(ckpt.weights)
        model.eval()
    return LoadedRun(model, engine, trained, vocab, per_line, model_config, train_config)


class WordCodec:
    """Makes a `WordVocab` look like a `CharVocab` to `generation.sample.sample_lm`.

    Tokens are printed with a leading space and `<eos>` as a line end, so streamed pieces add up
    to the final text. For a prime, an unknown word is an error, skipped, or mapped to `<unk>`
    (with `--unknown map`, whatever `--replacement` says).

    Example:
        >>> codec = WordCodec(WordVocab.from_text("the cat\\n"))
        >>> codec.decode(codec.encode_lossy("the cat", "skip")[0])
        ' the cat'
    """

    unit = "word"  # what the sampler's messages call a token
    map_to = UNK  # what --unknown map puts in place of an unknown prime word

    def __init__(self, vocab: WordVocab, per_line: bool = False) -> None:
        self.vocab = vocab
        self.itos = vocab.itos
        self.boundary_id = vocab.eos_id if per_line else None
        self.banned_ids = () if vocab.pad_id is None else (vocab.pad_id,)  # padding is never text

    def __len__(self) -> int:
        return len(self.vocab)

    def __contains__(self, token: object) -> bool:
        return True  # the replacement of --unknown map is <unk>, always there

    def encode_lossy(
        self, text: str, unknown: str = "skip", replacement: str | None = None
    ) -> tuple[np.ndarray, list[str]]:
        tokens = self.vocab.tokenize(text, newline=self.vocab.eos_id is not None)
        bad = list(dict.fromkeys(t for t in tokens if t not in self.vocab.stoi))
        if unknown == "skip":
            tokens = [t for t in tokens if t in self.vocab.stoi]
        ids = self.vocab.encode(tokens) if tokens else np.zeros(0, dtype=np.int64)
        return ids, bad

    def decode(self, ids: Any) -> str:
        out = []
        for i in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            tok = self.vocab.itos[i]
            if i == self.boundary_id or tok == EOS:
                out.append("" if self.boundary_id is not None else "\n")
            else:
                out.append(" " + tok)
        return "".join(out)
