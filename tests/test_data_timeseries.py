"""Tests for rnnlab.data.timeseries: CSV columns, chronological splits, Normalizer, windows."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest

from rnnlab.data.text import DataError
from rnnlab.data.timeseries import Normalizer, load_series, make_windows, split_series

CSV = "date,temp,rain\n2024-01-01,1.5,0\n2024-01-02,2.5,3\n2024-01-03,-1e1,0.5\n"


def write(tmp_path, text, name="s.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# ---------------------------------------------------------------------------------------------
# load_series


@pytest.mark.parametrize(
    ("column", "expected"),
    [("temp", [1.5, 2.5, -10.0]), (1, [1.5, 2.5, -10.0]), ("rain", [0.0, 3.0, 0.5]), (-1, [0.0, 3.0, 0.5])],
)
def test_load_by_name_or_index(tmp_path, column, expected):
    values = load_series(write(tmp_path, CSV), column=column)
    assert values.dtype == np.float64 and values.tolist() == expected


def test_no_header_and_tsv(tmp_path):
    assert load_series(write(tmp_path, "1\n2\n3\n\n", name="s.txt")).tolist() == [1, 2, 3]
    p = write(tmp_path, "t\tv\n0\t10\n1\t20\n", name="s.tsv")
    assert load_series(p, column="v").tolist() == [10, 20]
    assert load_series(p, column=1).tolist() == [10, 20]  # the header is detected: 'v' is not a number
    p = write(tmp_path, "1;2\n3;4\n", name="s.dat")  # not a delimiter we know: one column, shown as it is
    with pytest.raises(
        DataError, match=re.escape(f"data: {p} line 2, column '1;2': expected a finite number, got '3;4'")
    ):
        load_series(p)


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("", "an empty cell"),
        ("nan", "'nan'"),
        ("NaN", "'NaN'"),
        ("inf", "'inf'"),
        ("n/a", "'n/a'"),
        ("1,5", None),
        ("1_000", "'1_000'"),  # Python's float() takes it; no CSV writer writes it
    ],
)
def test_bad_cells_name_line_and_column(tmp_path, cell, shown):
    lines = CSV.splitlines()
    lines[2] = f'2024-01-02,"{cell}",3'
    p = write(tmp_path, "\n".join(lines) + "\n")
    if shown is None:  # "1,5" quoted is one cell, not a number
        shown = "'1,5'"
    with pytest.raises(
        DataError, match=re.escape(f"data: {p} line 3, column 'temp': expected a finite number, got {shown}")
    ):
        load_series(p, column="temp")


def test_bad_cell_without_header_names_the_index(tmp_path):
    p = write(tmp_path, "1,2\n3,x\n")
    with pytest.raises(DataError, match=re.escape(f"data: {p} line 2, column 1: expected a finite number, got 'x'")):
        load_series(p, column=1)


@pytest.mark.parametrize(
    ("text", "kwargs", "match"),
    [
        (
            CSV,
            {"column": "wind"},
            r"line 1: no column named 'wind' in the header; columns are \['date', 'temp', 'rain'\]",
        ),
        (CSV, {"column": 3}, "column=3 is out of range: .* line 1 has 3 columns"),
        (CSV, {"column": "temp", "header": False}, "column='temp' names a column, but header=False"),
        ("a,b\n1,2\n3\n", {"column": 1}, r"line 3: expected 2 columns \(as on line 1\), got 1"),
        # a cell too many shifts the row's values even when the chosen column exists: refused too
        ("a,b\n1,2\n3,4,5\n", {"column": 0}, r"line 3: expected 2 columns \(as on line 1\), got 3"),
        ("a,b\n1,2\n3\n", {"column": 0}, r"line 3: expected 2 columns \(as on line 1\), got 1"),
        ("v\n1\n", {}, r"expected at least 2 values in column 'v', got 1"),
        ("1,2\n", {"column": 0}, "expected at least 2 values in column 0, got 1"),
    ],
)
def test_load_errors(tmp_path, text, kwargs, match):
    with pytest.raises(DataError, match=match):
        load_series(write(tmp_path, text), **kwargs)


def test_column_type_checked(tmp_path):
    with pytest.raises(TypeError, match="column: expected a column index or name"):
        load_series(write(tmp_path, CSV), column=1.0)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# splits


def test_split_is_chronological():
    train, val, test = split_series(np.arange(10), 0.2, 0.2)
    assert (train.tolist(), val.tolist(), test.tolist()) == ([0, 1, 2, 3, 4, 5], [6, 7], [8, 9])


def test_split_with_context_keeps_targets_apart():
    s = np.arange(100.0)
    train, val, test = split_series(s, 0.1, 0.1, context=5)
    assert len(train) == 80 and val[0] == 75 and test[0] == 85
    _, y_train = make_windows(train, 5)
    _, y_val = make_windows(val, 5)
    _, y_test = make_windows(test, 5)
    assert y_val.ravel().tolist() == list(range(80, 90))  # the first val target is the first val step
    assert y_test.ravel().tolist() == list(range(90, 100))
    assert not set(y_train.ravel()) & set(y_val.ravel())


def test_split_without_val_or_test():
    train, val, test = split_series(np.arange(10), 0.0, 0.3)
    assert len(train) == 7 and len(val) == 0 and len(test) == 3


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((np.arange(5), 0.1, 0.1), {}, DataError, "5 steps are too few to split"),
        ((np.arange(10), 0.5, 0.5), {}, ValueError, "expected less than 1"),
        ((np.arange(10), -0.1, 0.1), {}, ValueError, "val_fraction: expected 0 <= val_fraction < 1"),
        ((np.arange(10), 0.2, 0.2), {"context": 7}, DataError, "context=7 is longer than the 6 training steps"),
        ((np.arange(10), 0.2, 0.2), {"context": -1}, ValueError, "context: expected an int >= 0"),
    ],
)
def test_split_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        split_series(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# Normalizer


def test_normalizer_uses_train_statistics_and_inverts():
    train, val, _ = split_series(np.linspace(0, 100, 50) ** 1.5, 0.2, 0.0)
    norm = Normalizer.fit(train)
    z = norm(train)
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12
    assert norm.mean == train.mean() and norm.mean != np.concatenate([train, val]).mean()
    assert np.allclose(norm.inverse(norm(val)), val, rtol=0, atol=1e-9)
    assert norm.transform is Normalizer.__call__ or np.allclose(norm.transform(val), norm(val))


def test_normalizer_json_round_trip_is_exact():
    norm = Normalizer.fit(np.random.default_rng(0).normal(3.3, 7.7, size=101))
    back = Normalizer.from_json(json.loads(json.dumps(norm.to_json())))
    x = np.array([1.0, -2.0, 1e6])
    assert back(x).tolist() == norm(x).tolist() and back.inverse(x).tolist() == norm.inverse(x).tolist()


def test_normalizer_multivariate_and_constant():
    data = np.stack([np.arange(10.0), np.full(10, 4.0)], axis=1)
    norm = Normalizer.fit(data)
    assert norm.mean.tolist() == [4.5, 4.0] and norm.std[1] == 1.0
    assert np.allclose(norm.inverse(norm(data)), data)
    assert Normalizer.from_json(norm.to_json()).std.tolist() == norm.std.tolist()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: Normalizer.fit(np.array([1.0, np.nan])), DataError, "NaN or infinite"),
        (lambda: Normalizer.fit(np.array([])), ValueError, "non-empty"),
        (lambda: Normalizer(0.0, 0.0), ValueError, "std > 0"),
        (lambda: Normalizer.from_json({"type": "normalizer", "mean": 0.0}), DataError, "normalizer: 'std'"),
        (lambda: Normalizer.from_json({"type": "vocab"}), DataError, "type 'normalizer'"),
        (lambda: Normalizer.from_json({"type": "normalizer", "mean": 0.0, "std": -1.0}), DataError, "std > 0"),
    ],
)
def test_normalizer_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------------------------------------
# windows


@pytest.mark.parametrize(("input_len", "horizon", "stride"), [(1, 1, 1), (3, 1, 1), (4, 3, 1), (2, 2, 3)])
def test_make_windows(input_len, horizon, stride):
    s = np.arange(20.0)
    X, Y = make_windows(s, input_len, horizon, stride=stride)
    n = (20 - input_len - horizon) // stride + 1
    assert X.shape == (n, input_len) and Y.shape == (n, horizon)
    for i in range(n):
        start = i * stride
        assert X[i].tolist() == s[start : start + input_len].tolist()
        assert Y[i].tolist() == s[start + input_len : start + input_len + horizon].tolist()
    assert X.flags.c_contiguous and not np.shares_memory(X, s)


def test_make_windows_multivariate():
    s = np.arange(20).reshape(10, 2)
    X, Y = make_windows(s, 3, 2)
    assert X.shape == (6, 3, 2) and Y.shape == (6, 2, 2)
    assert X[1].tolist() == s[1:4].tolist() and Y[1].tolist() == s[4:6].tolist()


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((np.arange(4), 3, 2), DataError, "a series of 4 steps is too short for windows of input_len=3 \\+ horizon=2"),
        ((np.arange(4), 0, 1), ValueError, "input_len: expected a positive int"),
        ((np.arange(4), 1, 0), ValueError, "horizon: expected a positive int"),
        ((np.zeros((2, 2, 2)), 1, 1), ValueError, "expected shape"),
    ],
)
def test_make_windows_errors(args, error, match):
    with pytest.raises(error, match=match):
        make_windows(*args)


def test_end_to_end_forecasting_data(tmp_path):
    t = np.arange(200)
    values = 10 + 3 * np.sin(t / 8)
    p = write(tmp_path, "t,value\n" + "".join(f"{i},{float(v)!r}\n" for i, v in zip(t, values, strict=True)))
    series = load_series(p, column="value")
    assert series.tolist() == values.tolist()  # repr() round-trips floats exactly
    train, val, _test = split_series(series, 0.15, 0.15, context=12)
    norm = Normalizer.fit(train)
    X, Y = make_windows(norm(val), input_len=12, horizon=3)
    assert X.shape == (28, 12) and Y.shape == (28, 3)
    assert np.allclose(norm.inverse(Y[0]), series[140:143])


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_line_inside_a_series_is_a_missing_value(tmp_path, blank):
    path = tmp_path / "gaps.txt"
    path.write_text("value\n1\n2\n" + blank + "\n3\n4\n\n", encoding="utf-8")  # blank line 4; trailing blank fine
    with pytest.raises(
        DataError, match=r"^data: .*gaps.txt line 4, column 'value': expected a finite number, got an empty line"
    ):
        load_series(path)
    path.write_text("value\n1\n2\n3\n4\n\n\n", encoding="utf-8")
    assert load_series(path).tolist() == [1.0, 2.0, 3.0, 4.0]
    quoted = tmp_path / "quoted.csv"  # a quoted cell over two lines is not a gap
    quoted.write_text('value,note\n1,"two\nlines"\n2,x\n3,y\n', encoding="utf-8")
    assert load_series(quoted, "value").tolist() == [1.0, 2.0, 3.0]


def test_a_first_nan_is_a_bad_value_not_a_header(tmp_path):
    path = tmp_path / "first.txt"
    path.write_text("nan\n1\n2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 1, column 0: expected a finite number, got 'nan'"):
        load_series(path)


def test_a_series_too_large_to_normalise_is_one_line():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            DataError, match=r"^data: the training series is too large to normalise \(values up to 4e\+200"
        ):
            Normalizer.fit(np.array([0.0, 4e200, 2e200]))
