"""Time-series forecasting data: one numeric column of a CSV file, normalisation, windows, splits.

The pipeline: `load_series` reads one column as a float array in time order; `split_series` cuts
it chronologically into train/val/test (never shuffled: the model must not see the future);
`Normalizer.fit` takes the mean and standard deviation of the TRAIN part only (statistics of the
validation or test part would leak into training) and is saved with the model; `make_windows`
cuts each part into (input window, following values) pairs for next-step (`horizon=1`) or
N-step forecasting; predictions go back to the original units with `Normalizer.inverse`.

Example:
    >>> series = load_series("airline.csv", column="passengers")            # doctest: +SKIP
    >>> train, val, test = split_series(series, 0.15, 0.15, context=24)     # doctest: +SKIP
    >>> norm = Normalizer.fit(train)                                        # doctest: +SKIP
    >>> X, Y = make_windows(norm(train), input_len=24, horizon=1)           # doctest: +SKIP
    >>> X.shape, Y.shape                                                    # doctest: +SKIP
    ((77, 24), (77, 1))
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Any

import numpy as np

from .classify import read_rows
from .text import DataError


def _as_float(s: str) -> float | None:
    """The number a CSV cell holds (nan and inf included), or None."""
    if "_" in s:  # float() takes Python's 1_000, which no CSV writer produces
        return None
    try:
        return float(s)
    except ValueError:
        return None


def _parse_number(s: str) -> float | None:
    x = _as_float(s)
    return x if x is not None and math.isfinite(x) else None


def _is_float(s: str) -> bool:
    return _as_float(s) is not None


def load_series(
    path: str | os.PathLike[str],
    column: int | str = 0,
    *,
    delimiter: str | None = None,
    header: bool | None = None,
) -> np.ndarray:
    """One numeric column of a CSV/TSV file, in file (time) order.

    Args:
        path: the file; rows in time order.
        column: 0-based column index (negative counts from the end) or a header name.
        delimiter: "," or "\\t"; None: by extension, else sniffed from the first line (a file of
            one column needs none).
        header: whether the first row is a header; None: detected (it is when the chosen cell
            of the first row is not a number; a name for `column` implies a header).

    Returns:
        float64 array of shape (N,).

    Raises:
        DataError: naming the line and column, for an empty cell, "nan"/"inf", anything that is
            not a number, or a row whose number of columns differs from the first row's; a missing
            column name; fewer than 2 values.

    Example:
        >>> load_series("temps.csv", column="temp")                 # doctest: +SKIP
        array([12.1, 12.4, 11.9, ...])
    """
    delimiter, rows = read_rows(path, delimiter, fallback=",")  # a lone column needs no delimiter
    if not rows:
        raise DataError(f"data: no rows in {path}")
    first_line, first = rows[0]
    if isinstance(column, str):
        if header is False:
            raise DataError(f"data: column={column!r} names a column, but header=False says {path} has no header row")
        names = [f.strip() for f in first]
        if column not in names:
            raise DataError(
                f"data: {path} line {first_line}: no column named {column!r} in the header; columns are {names!r}"
            )
        idx = names.index(column)
        header = True
    elif isinstance(column, bool) or not isinstance(column, int):
        raise TypeError(f"column: expected a column index or name, got {type(column).__name__}")
    else:
        ncols = len(first)
        if not -ncols <= column < ncols:
            raise DataError(f"data: column={column} is out of range: {path} line {first_line} has {ncols} columns")
        idx = column % ncols
        if header is None:  # "nan" or "inf" is a (bad) value, not a column name
            header = not _is_float(first[idx].strip())
    names = [f.strip() for f in first] if header else None
    label = repr(names[idx]) if names and names[idx] else str(idx)

    # read_rows skips blank lines, but in a series a blank line between two rows is a missing
    # value: dropping it would shift every later value by one time step
    for (line_a, fields_a), (line_b, _) in itertools.pairwise(rows):
        next_line = line_a + 1 + sum(f.count("\n") for f in fields_a)  # a quoted cell may span lines
        if line_b > next_line:
            raise DataError(
                f"data: {path} line {next_line}, column {label}: expected a finite number, got an empty line "
                "(a missing value; fill or remove it)"
            )
    body = rows[1:] if header else rows
    values = np.empty(len(body), dtype=np.float64)
    ncols = len(first)
    for k, (lineno, fields) in enumerate(body):
        if len(fields) != ncols:
            # a row with a cell too many or too few has its values shifted: refuse it, as classify does
            raise DataError(
                f"data: {path} line {lineno}: expected {ncols} columns (as on line {first_line}), got {len(fields)}"
            )
        cell = fields[idx].strip()
        x = _parse_number(cell)
        if x is None:
            what = "an empty cell" if not cell else repr(cell)
            raise DataError(f"data: {path} line {lineno}, column {label}: expected a finite number, got {what}")
        values[k] = x
    if len(values) < 2:
        raise DataError(f"data: {path}: expected at least 2 values in column {label}, got {len(values)}")
    return values


def split_series(
    series: np.ndarray, val_fraction: float = 0.1, test_fraction: float = 0.1, *, context: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chronological train/val/test parts: the first values train, the last test.

    Args:
        series: shape (N,) or (N, F), in time order.
        val_fraction, test_fraction: shares of the N steps for validation and test (each may be 0,
            which gives an empty part; together below 1).
        context: prepend this many preceding steps to val and test (the `input_len` of the
            windows) so their first window predicts the first step of the part. Targets never
            overlap: a val target is never a train step.

    Returns:
        (train, val, test) views of `series`.

    Example:
        >>> train, val, test = split_series(np.arange(10), 0.2, 0.2, context=2)
        >>> train.tolist(), val.tolist(), test.tolist()
        ([0, 1, 2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9])
    """
    series = np.asarray(series)
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 <= frac < 1:
            raise ValueError(f"{name}: expected 0 <= {name} < 1, got {frac!r}")
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction + test_fraction: expected less than 1, got {val_fraction + test_fraction}")
    if isinstance(context, bool) or not isinstance(context, int) or context < 0:
        raise ValueError(f"context: expected an int >= 0, got {context!r}")
    n = len(series)
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    a = n - n_val - n_test  # train is [0, a), val [a, b), test [b, n)
    b = n - n_test
    if a < 1 or (val_fraction > 0 and n_val == 0) or (test_fraction > 0 and n_test == 0):
        raise DataError(
            f"data: {n} steps are too few to split with val_fraction={val_fraction}, test_fraction={test_fraction}: "
            f"train would get {a}, val {n_val}, test {n_test}"
        )
    if context > a:
        raise DataError(f"data: context={context} is longer than the {a} training steps")
    val = series[a - context : b] if n_val else series[b:b]
    test = series[b - context :] if n_test else series[n:]
    return series[:a], val, test


class Normalizer:
    """Standardisation `(x - mean) / std` with statistics from the training part only.

    Args:
        mean, std: per-feature statistics: floats for a 1-D series, arrays of shape (F,) for (N, F).

    Example:
        >>> norm = Normalizer.fit(np.array([1.0, 2.0, 3.0]))
        >>> z = norm(np.array([2.0, 4.0]))
        >>> z.round(4).tolist(), norm.inverse(z).tolist()
        ([0.0, 2.4495], [2.0, 4.0])
    """

    def __init__(self, mean: float | np.ndarray, std: float | np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        if self.mean.shape != self.std.shape or self.mean.ndim > 1:
            raise ValueError(f"mean, std: expected equal shapes () or (F,), got {self.mean.shape} and {self.std.shape}")
        if not (np.isfinite(self.mean).all() and np.isfinite(self.std).all() and (self.std > 0).all()):
            raise ValueError(f"mean, std: expected finite values and std > 0, got mean={self.mean}, std={self.std}")

    @classmethod
    def fit(cls, train: np.ndarray) -> Normalizer:
        """Mean and standard deviation of `train` (shape (N,) or (N, F)) over time.

        A constant series has std 0: std 1 is used instead, so it maps to zeros and back.

        Example:
            >>> Normalizer.fit(np.array([5.0, 5.0])).std.item()
            1.0
        """
        train = np.asarray(train, dtype=np.float64)
        if train.ndim not in (1, 2) or len(train) == 0:
            raise ValueError(f"train: expected a non-empty array of shape (N,) or (N, F), got {train.shape}")
        if not np.isfinite(train).all():
            raise DataError("data: the training series contains NaN or infinite values")
        with np.errstate(over="ignore", invalid="ignore"):
            mean = train.mean(axis=0)
            std = train.std(axis=0)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            big = float(np.max(np.abs(train)))
            raise DataError(
                f"data: the training series is too large to normalise (values up to {big:.3g}: its mean or standard "
                "deviation overflows float64); rescale it"
            )
        std = np.where(std > 1e-12 * np.maximum(np.abs(mean), 1.0), std, 1.0)
        return cls(mean, std)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Normalised `x`, same shape (float64)."""
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.std

    transform = __call__

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Back to the original units: `z * std + mean` (e.g. for predictions)."""
        return np.asarray(z, dtype=np.float64) * self.std + self.mean

    def __repr__(self) -> str:
        return f"Normalizer(mean={self.mean.tolist()}, std={self.std.tolist()})"

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (floats keep their full precision through json).

        Example:
            >>> Normalizer(1.5, 2.0).to_json()
            {'type': 'normalizer', 'mean': 1.5, 'std': 2.0}
        """
        return {"type": "normalizer", "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, obj: Any) -> Normalizer:
        """Rebuild from `to_json()`'s dict.

        Raises:
            DataError: not a valid normalizer.

        Example:
            >>> Normalizer.from_json(Normalizer(1.5, 2.0).to_json()).mean.item()
            1.5
        """
        if not isinstance(obj, dict) or obj.get("type") != "normalizer":
            raise DataError("normalizer: expected a JSON object with type 'normalizer'")
        try:
            return cls(obj["mean"], obj["std"])
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"normalizer: {e}") from None


def make_windows(
    series: np.ndarray, input_len: int, horizon: int = 1, *, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """(input window, next `horizon` values) pairs from a series.

    Window i covers steps `i*stride .. i*stride+input_len-1`; its targets are the `horizon` steps
    right after it.

    Args:
        series: shape (N,) (or (N, F): windows then keep the feature axis).
        input_len: steps the model reads, L >= 1.
        horizon: steps to predict, H >= 1 (1: next-step forecasting).
        stride: steps between window starts.

    Returns:
        X: shape (M, L) (or (M, L, F)), Y: shape (M, H) (or (M, H, F)), copies in the series'
        dtype, M = (N - L - H) // stride + 1.

    Raises:
        DataError: the series is shorter than L + H.

    Example:
        >>> X, Y = make_windows(np.arange(6), input_len=3, horizon=2)
        >>> X.tolist(), Y.tolist()
        ([[0, 1, 2], [1, 2, 3]], [[3, 4], [4, 5]])
    """
    series = np.asarray(series)
    for name, value in (("input_len", input_len), ("horizon", horizon), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if series.ndim not in (1, 2):
        raise ValueError(f"series: expected shape (N,) or (N, F), got {series.shape}")
    n, L, H = len(series), int(input_len), int(horizon)
    if n < L + H:
        raise DataError(
            f"data: a series of {n} steps is too short for windows of input_len={L} + horizon={H}; "
            f"use smaller windows or more data"
        )
    windows = np.lib.stride_tricks.sliding_window_view(series, L + H, axis=0)[::stride]
    if series.ndim == 2:
        windows = np.moveaxis(windows, -1, 1)  # (M, F, L+H) -> (M, L+H, F)
    # copies: the sliding view is read-only and would alias the caller's series
    return np.array(windows[:, :L], order="C"), np.array(windows[:, L:], order="C")
