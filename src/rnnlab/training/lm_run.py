"""Loading a trained language-model run folder into either engine, for sampling and scoring.

No torch here unless the torch engine is asked for: a run trained with the NumPy engine loads,
samples and scores on a machine without torch.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ModelConfig, TrainConfig
from ..data.text import DataError
from ..data.words import vocab_from_json
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
    configs = {}
    for name, cls in (("model_config", ModelConfig), ("train_config", TrainConfig)):
        try:
            configs[name] = cls.from_dict(ckpt.configs[name])
        except (TypeError, ValueError) as e:  # a missing, unknown or bad field: name the file
            raise DataError(f"checkpoint: {Path(run_dir) / (name + '.json')} does not parse: {e}") from None
    model_config, train_config = configs["model_config"], configs["train_config"]
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
        from .trainer import select_device  # a bad name or a missing GPU: one clear line

        model = LanguageModel(model_config, seed=0)
        load_weights(model, ckpt.weights)
        model.to(select_device(device)).eval()
    else:
        from ..scratch.models import LanguageModel as NumpyLanguageModel

        model = NumpyLanguageModel(model_config, seed=0)
        model.load_state_dict(ckpt.weights)
        model.eval()
    return LoadedRun(model, engine, trained, vocab, per_line, model_config, train_config)
