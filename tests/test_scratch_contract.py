"""The NumPy engine's API contract at its edges: retries after a refused call, in-place edits of the
input, state-dict loads that fail half-way, and errors that name the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnlab.config import ModelConfig
from rnnlab.scratch import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from rnnlab.scratch.clip import clip_grad_norm_, clip_grad_value_
from rnnlab.scratch.layers import Dropout, Embedding, Linear
from rnnlab.scratch.losses import mse_loss
from rnnlab.scratch.models import LanguageModel
from rnnlab.scratch.optim import SGD, Adam

LAYERS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


@pytest.mark.parametrize("cell", LAYERS)
def test_a_refused_backward_keeps_the_forward_for_a_corrected_call(cell):
    m = LAYERS[cell](4, 6, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 3, 4))
    m.forward(x)
    with pytest.raises(ValueError, match=r"dout: expected the shape of output \(5, 3, 6\), got \(5, 3, 7\)"):
        m.backward(np.ones((5, 3, 7)))
    bad_state = (np.ones((1, 3, 6)), np.ones((2, 3, 6))) if cell == "lstm" else np.ones((2, 3, 6))
    with pytest.raises(ValueError, match="expected shape"):
        m.backward(np.ones((5, 3, 6)), bad_state)
    m.backward(np.ones((5, 3, 6)))  # the forward is still there
    retried = m.grads["weight_hh_l0"].copy()
    fresh = LAYERS[cell](4, 6, seed=0)
    fresh.forward(x)
    fresh.backward(np.ones((5, 3, 6)))
    np.testing.assert_array_equal(retried, fresh.grads["weight_hh_l0"])


@pytest.mark.parametrize(
    ("batch_first", "x_shape", "dout_shape", "expected"),
    [
        (True, (3, 5, 4), (5, 6), "(3, 5, 6)"),  # batch-first: a 2-D dout is no numpy 'axes' error
        (True, (3, 5, 4), (6,), "(3, 5, 6)"),
        (False, (5, 4), (5, 1, 6), "(5, 6)"),  # unbatched: (T, 1, F) is not the output's shape
    ],
)
def test_dout_of_another_shape_is_refused_by_name(batch_first, x_shape, dout_shape, expected):
    m = GRU(4, 6, batch_first=batch_first)
    m.forward(np.zeros(x_shape))
    with pytest.raises(ValueError) as e:
        m.backward(np.zeros(dout_shape))
    assert str(e.value) == f"dout: expected the shape of output {expected}, got {dout_shape}"


@pytest.mark.parametrize("shape", [(5, 1, 3), (5, 3)])
def test_editing_the_input_after_forward_does_not_change_the_gradients(shape):
    # batch 1 and unbatched inputs once stayed views of the caller's array in the layer's cache
    x = np.random.default_rng(0).standard_normal(shape)
    dout = np.ones((*shape[:-1], 4))
    m = GRU(3, 4, dtype=np.float64, seed=0)
    m.forward(x)
    m.backward(dout)
    expected = m.grads["weight_ih_l0"].copy()
    m.zero_grad()
    m.forward(x)
    x[...] = 0
    m.backward(dout)
    np.testing.assert_array_equal(m.grads["weight_ih_l0"], expected)


def test_lstm_cell_takes_a_gradient_of_the_cell_state_alone():
    torch.manual_seed(0)
    ref = torch.nn.LSTMCell(4, 6, dtype=torch.float64)
    cell = LSTMCell(4, 6, dtype=np.float64)
    cell.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((2, 4))
    dc = np.random.default_rng(2).standard_normal((2, 6))
    cell.forward(x)
    dx, (dh0, dc0) = cell.backward(None, dc)
    xt = torch.from_numpy(x).requires_grad_(True)
    h0, c0 = (torch.zeros(2, 6, dtype=torch.float64, requires_grad=True) for _ in range(2))
    _, c = ref(xt, (h0, c0))
    (c * torch.from_numpy(dc)).sum().backward()
    for ours, theirs in ((dx, xt), (dh0, h0), (dc0, c0)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), atol=1e-12)
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(cell.grads[name], p.grad.numpy(), atol=1e-12, err_msg=name)


@pytest.mark.parametrize("cls", [RNNCell, GRUCell, LSTMCell])
def test_a_cell_forward_that_fails_leaves_the_last_one_for_backward(cls):
    cell = cls(4, 6)
    cell.forward(np.ones((2, 4)))
    bad = (np.zeros((2, 6)), np.zeros((2, 6))) if cls is LSTMCell else np.zeros((2, 6))
    with pytest.raises(ValueError, match=r"expected shape \(3, 6\), got \(2, 6\)"):
        cell.forward(np.ones((3, 4)), bad)
    dx = cell.backward(np.ones((2, 6)))[0]
    assert dx.shape == (2, 4)


@pytest.mark.parametrize(
    "make", [lambda: LSTM(2, 3, dtype=None), lambda: Linear(2, 3, dtype=None), lambda: Embedding(4, 3, dtype=None)]
)
def test_dtype_none_means_float32_as_in_pytorch(make):
    module = make()
    assert module.dtype == np.float32
    assert all(p.dtype == np.float32 for p in module.params.values())


def test_optimizer_load_state_dict_changes_nothing_when_it_fails():
    model = GRU(2, 3, seed=0)
    opt = Adam(model)
    model.grads["weight_hh_l0"][...] = 1.0
    opt.step()
    before = opt.state_dict()
    bad = {k: (v if k == "step" else np.full_like(v, 7.0)) for k, v in before.items()}
    bad["exp_avg_sq.bias_hh_l0"] = np.zeros(2)  # wrong shape, listed after the buffers that would load
    with pytest.raises(ValueError, match=r"exp_avg_sq.bias_hh_l0'\]: expected shape \(9,\), got \(2,\)"):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after.keys() == before.keys()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


@pytest.mark.parametrize("step", [-1, "3", 2.5, float("nan"), None])
def test_optimizer_step_count_must_be_a_whole_number_at_least_0(step):
    opt = Adam(GRU(2, 3))
    state = opt.state_dict()
    state["step"] = step
    with pytest.raises(ValueError) as e:
        opt.load_state_dict(state)
    assert str(e.value) == f"state_dict['step']: expected an integer >= 0, got {step!r}"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: LSTM(2, 3, dtype="foo"), "dtype: expected float32 or float64, got 'foo'"),
        (lambda: LSTM(2, 3, seed="x"), "seed: expected an integer >= 0 or None, got 'x'"),
        (lambda: Linear(2, 3, seed=-1), "seed: expected an integer >= 0 or None, got -1"),
        (lambda: Linear(None, 2), "in_features: expected a positive integer, got None"),
        (lambda: Linear(2, 2.5), "out_features: expected a positive integer, got 2.5"),
        (lambda: Embedding(None, 3), "num_embeddings: expected a positive integer, got None"),
        (lambda: Dropout("0.5"), "p: expected a probability in [0, 1], got '0.5'"),
        (lambda: Adam(GRU(2, 3), lr="a"), "lr: expected a value >= 0, got 'a'"),
        (lambda: SGD(GRU(2, 3), lr=None), "lr: expected a value >= 0, got None"),
        (lambda: Adam(GRU(2, 3), betas=0.9), "betas: expected a pair of numbers (beta1, beta2), got 0.9"),
        (lambda: clip_grad_norm_([np.ones(3)], "a"), "max_norm: expected a number, got 'a'"),
        (lambda: clip_grad_norm_([np.ones(3)], 1.0, norm_type="two"), "norm_type: expected a number, got 'two'"),
        (lambda: clip_grad_value_([np.ones(3)], "big"), "clip_value: expected a number, got 'big'"),
        (lambda: GRU(2, 3).load_state_dict(None), "state_dict: expected a mapping of names to arrays, got NoneType"),
        (
            lambda: LanguageModel(ModelConfig(vocab_size=5, hidden_size=4)).forward(np.zeros((1, 2, 3), dtype=int)),
            "idx: expected token ids of shape (B, T) or (T,) with T >= 1, got shape (1, 2, 3)",
        ),
    ],
)
def test_bad_arguments_are_named_with_the_expected_and_the_actual_value(call, message):
    with pytest.raises((ValueError, TypeError)) as e:
        call()
    assert str(e.value) == message


def test_complex_or_text_gradients_are_refused_not_truncated():
    lin = Linear(3, 2)
    lin(np.ones((1, 3)))
    with pytest.raises(TypeError, match="dout: expected a numeric array, got dtype complex128"):
        lin.backward(np.ones((1, 2), complex))
    with pytest.raises(TypeError, match="dout: expected a numeric array, got dtype <U1"):
        lin.backward(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="target: expected a numeric array, got dtype complex128"):
        mse_loss(np.zeros(3), np.full(3, 1j))


def test_a_torch_state_dict_of_parameters_that_require_grad_loads():
    ref = torch.nn.GRU(2, 3)
    m = GRU(2, 3)
    m.load_state_dict(dict(ref.named_parameters()))
    np.testing.assert_array_equal(m.params["weight_hh_l0"], ref.weight_hh_l0.detach().numpy())


def test_numbers_given_as_0d_arrays_or_tensors_are_taken_as_in_torch_optim():
    model = GRU(2, 3)
    assert Adam(model, lr=np.array(1e-3), betas=np.array([0.8, 0.9])).betas == (0.8, 0.9)
    assert Adam(model, lr=torch.tensor(1e-3), betas=(torch.tensor(0.8), torch.tensor(0.9))).lr == pytest.approx(1e-3)
    assert Dropout(torch.tensor(0.5)).p == 0.5 and Dropout(np.array(0.25)).p == 0.25
    for size in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match=rf"^out_features: expected a positive integer, got {size}$"):
            Linear(2, size)
