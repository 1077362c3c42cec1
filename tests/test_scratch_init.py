"""Initialisers: shapes, distributions, orthogonality, per-gate schemes and error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnlab.scratch import init
from rnnlab.scratch.gradcheck import max_abs_error, numerical_gradient, relative_error
from rnnlab.scratch.module import Module


def rng(seed=0):
    return np.random.default_rng(seed)


class FakeRecurrent(Module):
    """Parameters named and shaped like torch.nn.RNN/GRU/LSTM (G gate blocks)."""

    def __init__(self, G, input_size=3, hidden_size=4, num_layers=2, bidirectional=False, dtype=np.float64):
        super().__init__()
        for k in range(num_layers):
            in_k = input_size if k == 0 else hidden_size * (2 if bidirectional else 1)
            for suffix in ("", "_reverse") if bidirectional else ("",):
                self.register_parameter(f"weight_ih_l{k}{suffix}", np.full((G * hidden_size, in_k), 9.0, dtype))
                self.register_parameter(f"weight_hh_l{k}{suffix}", np.full((G * hidden_size, hidden_size), 9.0, dtype))
                self.register_parameter(f"bias_ih_l{k}{suffix}", np.full(G * hidden_size, 9.0, dtype))
                self.register_parameter(f"bias_hh_l{k}{suffix}", np.full(G * hidden_size, 9.0, dtype))


# -- single initialisers -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fillers_work_in_place_and_keep_dtype(dtype):
    a = np.empty((6, 5), dtype=dtype)
    for fill in (
        lambda x: init.uniform_(x, -1, 1, rng()),
        lambda x: init.pytorch_default_(x, 4, rng()),
        lambda x: init.normal_(x, 0.1, rng()),
        lambda x: init.xavier_uniform_(x, rng()),
        lambda x: init.xavier_normal_(x, rng()),
        lambda x: init.orthogonal_(x, rng()),
        lambda x: init.identity_(x),
        init.zeros_,
    ):
        out = fill(a)
        assert out is a and a.dtype == dtype and a.shape == (6, 5)


def test_uniform_and_pytorch_default_bounds():
    a = init.pytorch_default_(np.empty((200, 100)), 16, rng())
    assert np.abs(a).max() <= 0.25 and np.abs(a).max() > 0.24
    np.testing.assert_array_equal(init.uniform_(np.empty(5), 2, 2, rng()), np.full(5, 2.0))


def test_normal_statistics():
    a = init.normal_(np.empty((400, 500)), 0.01, rng(), mean=1.0)
    assert abs(a.mean() - 1.0) < 1e-4 and abs(a.std() - 0.01) < 1e-4


@pytest.mark.parametrize("shape", [(300, 200), (64, 32, 3)])
@pytest.mark.parametrize("gain", [1.0, 5 / 3])
def test_xavier_std_matches_formula(shape, gain):
    fan_in, fan_out = init.calculate_fan_in_and_fan_out(np.empty(shape))
    std = gain * math.sqrt(2 / (fan_in + fan_out))
    u = init.xavier_uniform_(np.empty(shape), rng(1), gain)
    n = init.xavier_normal_(np.empty(shape), rng(2), gain)
    assert abs(u.std() / std - 1) < 0.03 and abs(n.std() / std - 1) < 0.03
    assert np.abs(u).max() <= math.sqrt(3) * std


def test_fan_in_fan_out_like_torch():
    torch = pytest.importorskip("torch")
    for shape in [(5, 3), (8, 4, 3), (2, 3, 4, 5)]:
        assert init.calculate_fan_in_and_fan_out(np.empty(shape)) == (
            torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
        )


@pytest.mark.parametrize("shape", [(5, 5), (8, 3), (3, 8), (4, 2, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_orthogonal(shape, dtype):
    a = init.orthogonal_(np.empty(shape, dtype=dtype), rng(), gain=2.0)
    q = a.reshape(shape[0], -1) / 2.0
    small = min(q.shape)
    gram = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T  # Q^T Q = I on the smaller side
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-5 if dtype == np.float32 else 1e-12)


def test_orthogonal_blocks_each_gate_is_orthogonal():
    w = init.orthogonal_blocks_(np.empty((12, 3)), 4, rng())
    for k in range(4):
        block = w[3 * k : 3 * k + 3]
        np.testing.assert_allclose(block.T @ block, np.eye(3), atol=1e-12)
    assert not np.allclose(w[:3], w[3:6])  # independent draws per gate


def test_identity_and_forget_bias():
    np.testing.assert_array_equal(init.identity_(np.ones((3, 3)), 0.5), 0.5 * np.eye(3))
    b = init.lstm_forget_bias_(np.zeros(12), 3, 2.0)
    np.testing.assert_array_equal(b, [0, 0, 0, 2, 2, 2, 0, 0, 0, 0, 0, 0])


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: init.orthogonal_(np.empty(4), rng()), ValueError, r"a: expected at least 2 dimensions"),
        (lambda: init.xavier_uniform_(np.empty(4), rng()), ValueError, r"got shape \(4,\)"),
        (lambda: init.orthogonal_blocks_(np.empty((10, 3)), 4, rng()), ValueError, "num_blocks: expected"),
        (lambda: init.identity_(np.empty((2, 2, 2))), ValueError, r"a: expected a 2-D array"),
        (lambda: init.lstm_forget_bias_(np.zeros(10), 3), ValueError, r"bias: expected shape \(12,\)"),
        (lambda: init.normal_(np.empty(3), -1, rng()), ValueError, "std: expected a value >= 0, got -1"),
        (lambda: init.uniform_(np.empty(3), 1, 0, rng()), ValueError, "low: expected low <= high"),
        (lambda: init.zeros_(np.zeros(3, dtype=int)), TypeError, "a: expected a float NumPy array"),
        (lambda: init.zeros_([0.0, 1.0]), TypeError, "a: expected a float NumPy array.*got list"),
        (lambda: init.normal_(np.empty(3), 1, 0), TypeError, "rng: expected a numpy.random.Generator"),
    ],
)
def test_initialiser_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# -- init_recurrent_ ---------------------------------------------------------------------------
@pytest.mark.parametrize("G", [1, 3, 4])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_init_recurrent_orthogonal(G, bidirectional):
    m = FakeRecurrent(G, bidirectional=bidirectional)
    init.init_recurrent_(m, "orthogonal", rng(), gain=1.5)
    for name, p in m.params.items():
        if name.startswith("bias"):
            assert not p.any(), name
        elif name.startswith("weight_hh"):
            for k in range(G):
                block = p[4 * k : 4 * k + 4] / 1.5
                np.testing.assert_allclose(block.T @ block, np.eye(4), atol=1e-12, err_msg=name)
        else:  # weight_ih: Glorot-uniform per gate block
            bound = math.sqrt(6 / (p.shape[1] + 4))
            assert np.abs(p).max() <= bound and (p != 9).all(), name


def test_init_recurrent_pytorch_scheme_bounds_every_parameter():
    m = FakeRecurrent(4, hidden_size=16)
    init.init_recurrent_(m, "pytorch", rng())
    for name, p in m.params.items():
        assert np.abs(p).max() <= 0.25 and np.abs(p).max() > 0.2, name


def test_init_recurrent_normal_xavier_identity():
    m = FakeRecurrent(1, hidden_size=50, num_layers=1)
    init.init_recurrent_(m, "normal", rng(), std=0.02)
    assert abs(m.params["weight_hh_l0"].std() - 0.02) < 0.002
    init.init_recurrent_(m, "identity", rng(), gain=0.9)
    np.testing.assert_array_equal(m.params["weight_hh_l0"], 0.9 * np.eye(50))
    init.init_recurrent_(m, "xavier", rng(), gain=2.0)
    assert np.abs(m.params["weight_hh_l0"]).max() <= 2.0 * math.sqrt(6 / 100)


@pytest.mark.parametrize("scheme", ["pytorch", "orthogonal"])
def test_init_recurrent_lstm_forget_bias_sums_to_value(scheme):
    H = 4
    m = FakeRecurrent(4, hidden_size=H)
    init.init_recurrent_(m, scheme, rng(), forget_bias=1.0)
    for k in range(2):
        b_ih, b_hh = m.params[f"bias_ih_l{k}"], m.params[f"bias_hh_l{k}"]
        np.testing.assert_array_equal(b_ih[H : 2 * H], 1.0)
        np.testing.assert_array_equal(b_hh[H : 2 * H], 0.0)
    gru = FakeRecurrent(3)
    init.init_recurrent_(gru, "orthogonal", rng(), forget_bias=1.0)  # no forget gate: ignored
    assert not gru.params["bias_ih_l0"].any()


def test_init_recurrent_is_reproducible():
    a, b = FakeRecurrent(4), FakeRecurrent(4)
    init.init_recurrent_(a, "orthogonal", rng(5))
    init.init_recurrent_(b, "orthogonal", rng(5))
    for name, p in a.params.items():
        np.testing.assert_array_equal(p, b.params[name])


def test_init_recurrent_errors():
    with pytest.raises(ValueError, match=r"scheme: expected one of \['pytorch', 'normal', 'xavier', 'orthogonal', "):
        init.init_recurrent_(FakeRecurrent(1), "kaiming", rng())
    with pytest.raises(ValueError, match=r"'identity' \(IRNN\) needs a vanilla RNN.*got 4 blocks"):
        init.init_recurrent_(FakeRecurrent(4), "identity", rng())
    m = FakeRecurrent(1)
    m.register_parameter("head.weight", np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"module: parameter 'head\.weight' does not follow"):
        init.init_recurrent_(m, "pytorch", rng())


# -- gradcheck helpers -------------------------------------------------------------------------
def test_numerical_gradient_restores_and_errors_are_normwise():
    x = np.array([[0.1, -0.2], [0.3, 0.7]])
    before = x.copy()
    g = numerical_gradient(lambda: float(np.sin(x).sum()), x)
    np.testing.assert_array_equal(x, before)  # restored bit for bit
    assert relative_error(np.cos(x), g) < 1e-9 and max_abs_error(np.cos(x), g) < 1e-9
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    # A dead unit: exact 0 vs 1e-12 noise would be a 100% element-wise error, not norm-wise.
    assert relative_error(np.array([1.0, 0.0]), np.array([1.0, 1e-12])) < 1e-11
    with pytest.raises(ValueError, match=r"numeric: expected shape \(2,\)"):
        relative_error(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="eps: expected a value > 0"):
        numerical_gradient(lambda: 0.0, x, eps=0)
