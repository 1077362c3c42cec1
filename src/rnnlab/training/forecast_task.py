"""Time-series forecasting from one CSV column, for the torch `Trainer`.

The series is cut chronologically (never shuffled: the model must not see the future) into
train / validation / optional test parts; the mean and standard deviation of the TRAIN part
normalise everything (saved in the run folder as `normalizer.json`, so predictions can be turned
back into the original units); each part is cut into windows of `input_len` values followed by
the `horizon` values to predict. A `Forecaster` reads a window and predicts all `horizon` values
at once (a direct multi-output head; horizon 1 is next-step forecasting).

The training loss is the mean squared error of the normalised values. Evaluation also reports,
in the ORIGINAL units, the MSE, RMSE and MAE of the model and the MSE of the naive forecast that
repeats the window's last value ("tomorrow is like today"), and the skill 1 − MSE / naive MSE
(above 0: better than naive).

Example:
    >>> config = TrainConfig(engine="torch", data="airline.csv", max_steps=1000, val_fraction=0.2)   # doctest: +SKIP
    >>> task = ForecastTask.from_options(config, ForecastOptions(column="passengers", input_len=12), {})  # doctest: +SKIP
    >>> Trainer(task, config, "runs/airline").fit()["val_mse"]                                        # doctest: +SKIP
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
from ..data.text import DataError
from ..data.timeseries import Normalizer, load_series, make_windows, split_series
from ..torch.heads import Forecaster, ForecasterConfig
from .classify_task import ExampleTask, data_path
from .trainer import Carry


def parse_column(value: int | str | None) -> int | str:
    """A column given on the command line: an integer index ("0", "-1") or a header name.

    Example:
        >>> parse_column("-1"), parse_column("passengers")
        (-1, 'passengers')
    """
    if value is None:
        return -1
    if isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class ForecastOptions:
    """The data options of a forecasting run, saved as `task_options.json`.

    Args:
        column: the series' column: index (negative from the end) or header name.
        input_len: values the model reads. horizon: values it predicts.
        test_fraction: last share of the series held out as a test split (0: none).
    """

    column: int | str = -1
    input_len: int = 24
    horizon: int = 1
    test_fraction: float = 0.0

    def __post_init__(self) -> None:
        for name in ("input_len", "horizon"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if (
            isinstance(self.test_fraction, bool)
            or not isinstance(self.test_fraction, (int, float))
            or not 0 <= self.test_fraction < 0.5
        ):
            raise ValueError(f"test_fraction: expected a number in [0, 0.5), got {self.test_fraction!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ForecastOptions:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class WindowSet:
    """Normalised windows x (M, L) and targets y (M, H), float32, and where they came from."""

    x: np.ndarray
    y: np.ndarray
    source: str
    lengths: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        # equal lengths: the bucket batcher is then a seeded shuffler
        self.lengths = np.full(len(self.x), self.x.shape[1], dtype=np.int64)


def windows_of(part: np.ndarray, norm: Normalizer, options: ForecastOptions, source: str, what: str) -> WindowSet:
    """The windows of one part of a series (in original units), normalised.

    Raises:
        DataError: the part is too short for one window (naming the part and what it needs).
    """
    need = options.input_len + options.horizon
    if len(part) < need:
        raise DataError(
            f"data: the {what} of {source} has {len(part)} values (with the {options.input_len} before it), "
            f"too few for one window of --input-len {options.input_len} + --horizon {options.horizon}; "
            f"use a longer series, a larger fraction, or smaller windows"
        )
    x, y = make_windows(norm(part), options.input_len, options.horizon)
    return WindowSet(x.astype(np.float32), y.astype(np.float32), f"{source} ({what})")


class ForecastTask(ExampleTask):
    """Direct multi-step forecasting of a univariate series for the `Trainer`.

    Args:
        splits: "train" (absent when only evaluating), "val", optionally "test": `WindowSet`s.
        normalizer: fitted on the training part. model_config: a `ForecasterConfig`.
        config: the training config. options: the data options.
    """

    name = "forecast"
    sum_keys = ("loss_sum", "count", "abs_sum", "naive_sq_sum")

    def __init__(
        self,
        splits: dict[str, WindowSet],
        normalizer: Normalizer,
        model_config: ForecasterConfig,
        config: TrainConfig,
        options: ForecastOptions,
    ) -> None:
        super().__init__(config)
        if (model_config.input_len, model_config.horizon) != (options.input_len, options.horizon):
            raise ValueError(
                f"model_config: expected input_len={options.input_len}, horizon={options.horizon}, "
                f"got {model_config.input_len}, {model_config.horizon}"
            )
        self.splits, self.normalizer, self.model_config, self.options = splits, normalizer, model_config, options
        self.std = float(np.asarray(normalizer.std).reshape(-1)[0])

    @classmethod
    def from_options(
        cls,
        config: TrainConfig,
        options: ForecastOptions,
        model_options: Mapping[str, Any],
        *,
        normalizer: Normalizer | None = None,
        model_config: ForecasterConfig | None = None,
        train: bool = True,
    ) -> ForecastTask:
        """Read `options.column` of `config.data`, split it by time, fit (or reuse) the normaliser.

        Raises:
            DataError: naming line and column, for a value that is not a finite number (NaN, empty,
                text); a series too short for the split and windows.
        """
        path = data_path(config.data)
        series = load_series(path, options.column)
        n = len(series)
        n_train = n - round(n * config.val_fraction) - round(n * options.test_fraction)
        if n_train < options.input_len + options.horizon:
            raise DataError(
                f"data: {path} column {options.column!r} has {n} values; the training part (before the last "
                f"--val-fraction {config.val_fraction:g} and --test-fraction {options.test_fraction:g}) gets {n_train}, "
                f"too few for one window of --input-len {options.input_len} + --horizon {options.horizon}"
            )
        try:
            train_part, val_part, test_part = split_series(
                series, config.val_fraction, options.test_fraction, context=options.input_len
            )
        except DataError as e:
            raise DataError(f"{e} (in {path}, column {options.column!r})") from None
        if normalizer is None:
            normalizer = Normalizer.fit(train_part)
        splits: dict[str, WindowSet] = {}
        if train:
            splits["train"] = windows_of(train_part, normalizer, options, path, "training part")
        splits["val"] = windows_of(
            val_part, normalizer, options, path, f"validation part (last {config.val_fraction:g})"
        )
        if options.test_fraction > 0:
            splits["test"] = windows_of(
                test_part, normalizer, options, path, f"test part (last {options.test_fraction:g})"
            )
        if model_config is None:
            model_config = ForecasterConfig(input_len=options.input_len, horizon=options.horizon, **model_options)
        return cls(splits, normalizer, model_config, config, options)

    @classmethod
    def from_run(
        cls, configs: Mapping[str, Any], config: TrainConfig, *, train: bool = True, load_data: bool = True
    ) -> ForecastTask:
        """Rebuild a trained run's task from its saved JSON (see `ClassifyTask.from_run`)."""
        normalizer = Normalizer.from_json(configs["normalizer"])
        options = ForecastOptions.from_dict(configs["task_options"])
        model_config = ForecasterConfig.from_dict(configs["model_config"])
        if not load_data:
            return cls({}, normalizer, model_config, config, options)
        task = cls.from_options(config, options, {}, normalizer=normalizer, model_config=model_config, train=train)
        task.check_data_files(configs.get("data_files"))
        return task

    def add_split(self, name: str, path: str) -> str:
        """Every window of the run's column of another file (same normaliser) as split `name`."""
        path = data_path(path)
        series = load_series(path, self.options.column)
        self.splits[name] = windows_of(series, self.normalizer, self.options, path, "whole series")
        return path

    def describe(self) -> str:
        sizes = " / ".join(f"{len(s.x):,} {n}" for n, s in self.splits.items())
        mc = self.model_config
        return (
            f"data: {sizes} windows of {self.options.input_len} -> {self.options.horizon} values, "
            f"normalised with mean {float(self.normalizer.mean):.4g}, std {self.std:.4g}; model: {mc.cell} {mc.num_layers}x{mc.hidden_size}"
        )

    # -- the Task interface ----------------------------------------------------------------------------
    def build_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return Forecaster(self.model_config)

    def make_batch(self, split: str, idx: np.ndarray, step: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        ds: WindowSet = self.splits[split]
        return (
            torch.from_numpy(ds.x[idx]).to(self.device, non_blocking=True),
            torch.from_numpy(ds.y[idx]).to(self.device, non_blocking=True),
        )

    def loss(self, model: nn.Module, batch: Any, carry: Carry) -> tuple[torch.Tensor, Carry]:
        x, y = batch
        return F.mse_loss(model(x).float(), y), None

    def batch_sums(self, model: nn.Module, batch: Any) -> dict[str, float]:
        x, y = batch
        err = model(x).double() - y.double()
        naive = x[:, -1:].double() - y.double()  # repeat the last input value over the horizon
        return {
            "loss_sum": float((err**2).sum()),
            "count": float(err.numel()),
            "abs_sum": float(err.abs().sum()),
            "naive_sq_sum": float((naive**2).sum()),
        }

    def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
        n = max(sums.get("count", 0.0), 1.0)
        loss = sums["loss_sum"] / n
        # the errors of normalised values times std are the errors in the original units
        mse = loss * self.std**2
        naive = sums.get("naive_sq_sum", 0.0) / n * self.std**2
        return {
            "loss": loss,
            "mse": mse,
            "rmse": float(np.sqrt(mse)),
            "mae": sums.get("abs_sum", 0.0) / n * self.std,
            "naive_mse": naive,
            "skill": 1.0 - mse / naive if naive > 0 else 0.0,
        }

    def artifacts(self) -> dict[str, dict[str, Any]]:
        return {
            "normalizer": self.normalizer.to_json(),
            "task_options": self.options.to_dict(),
            "data_files": self.data_fingerprints(),
        }

    # -- prediction -----------------------------------------------------------------------------------
    @torch.no_grad()
    def forecast(self, model: nn.Module, history: Sequence[float] | np.ndarray, steps: int | None = None) -> np.ndarray:
        """The next `steps` values after `history`, in the original units.

        The model predicts `horizon` values at once; for more steps its predictions are fed back
        as inputs (recursive forecasting beyond the trained horizon).

        Args:
            history: at least `input_len` values in original units, the last one the most recent.
            steps: values to forecast (default: the trained horizon).

        Raises:
            DataError: fewer than `input_len` values, or a value that is not finite.

        Example:
            >>> task.forecast(model, series[-100:], steps=3)     # doctest: +SKIP
            array([412.1, 398.7, 455.0])
        """
        L, H = self.options.input_len, self.options.horizon
        steps = H if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"horizon: expected a positive integer, got {steps!r}")
        hist = np.asarray(history, dtype=np.float64).reshape(-1)
        if len(hist) < L:
            raise DataError(f"data: the model reads {L} values (--input-len), the given series has {len(hist)}")
        if not np.isfinite(hist).all():
            raise DataError("data: the given series holds NaN or infinite values")
        model.eval()
        window = list(self.normalizer(hist[-L:]))
        out: list[float] = []
        while len(out) < steps:
            x = torch.tensor([window[-L:]], dtype=torch.float32, device=self.device)
            pred = model(x).double().cpu().numpy()[0]
            out.extend(pred.tolist())
            window.extend(pred.tolist())
        return self.normalizer.inverse(np.array(out[:steps]))
