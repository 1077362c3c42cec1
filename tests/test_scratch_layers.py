"""Embedding, Linear and Dropout: equal to torch.nn given the same weights, and gradient-checked."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.scratch.gradcheck import numerical_gradient, relative_error
from rnnlab.scratch.layers import Dropout, Embedding, Linear
from rnnlab.scratch.losses import cross_entropy

TOL = {np.float32: 1e-5, np.float64: 1e-12}


# -- Embedding ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("vocab", [7, 300])  # both backward paths: one-hot matmul and sort+reduceat
def test_embedding_matches_torch_with_repeated_indices(dtype, vocab):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    emb = Embedding(vocab, 5, dtype=dtype, seed=1)
    ref = torch.nn.Embedding(vocab, 5).to(torch.float64 if dtype == np.float64 else torch.float32)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in emb.state_dict().items()})

    idx = rng.integers(0, vocab, (4, 6))
    idx[0, :3] = 2  # the same id several times in a batch must sum its gradients
    out = emb(idx)
    out_t = ref(torch.from_numpy(idx))
    assert out.shape == (4, 6, 5) and out.dtype == dtype
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=0, atol=0)

    dout = rng.standard_normal(out.shape).astype(dtype)
    assert emb.backward(dout) is None
    out_t.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(emb.grads["weight"], ref.weight.grad.numpy(), atol=TOL[dtype])


def test_embedding_gradients_accumulate_until_zero_grad():
    emb = Embedding(4, 3, dtype=np.float64, seed=0)
    idx = np.array([1, 1, 3])
    emb(idx)
    emb.backward(np.ones((3, 3)))
    emb(np.array([1]))
    emb.backward(np.ones((1, 3)))
    np.testing.assert_array_equal(emb.grads["weight"][:, 0], [0, 3, 0, 1])
    emb.zero_grad()
    assert not emb.grads["weight"].any()


def test_embedding_scalar_index_and_init_statistics():
    emb = Embedding(2000, 50, dtype=np.float64, seed=0)
    assert emb(np.int64(3)).shape == (50,)
    w = emb.params["weight"]
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1.0) < 0.01  # N(0, 1) like torch


def test_embedding_gradcheck_through_cross_entropy():
    emb = Embedding(6, 6, dtype=np.float64, seed=0)
    idx = np.array([[0, 2, 2], [5, 1, 2]])
    targets = np.array([[1, 0, 3], [2, 2, 5]])

    def loss() -> float:
        return cross_entropy(emb(idx), targets)[0]

    emb.zero_grad()
    _, dlogits = cross_entropy(emb(idx), targets)
    emb.backward(dlogits)
    numeric = numerical_gradient(loss, emb.params["weight"])
    assert relative_error(emb.grads["weight"], numeric) < 1e-7


@pytest.mark.parametrize(
    ("indices", "exc", "match"),
    [
        (np.array([0, 10]), ValueError, r"indices: expected values in \[0, 9\], got 10"),
        (np.array([-1, 2]), ValueError, r"indices: expected values in \[0, 9\], got -1"),
        (np.array([0.0, 1.0]), TypeError, "indices: expected an integer array, got dtype float64"),
        (np.array([True]), TypeError, "indices: expected an integer array"),
    ],
)
def test_embedding_rejects_bad_indices(indices, exc, match):
    with pytest.raises(exc, match=match):
        Embedding(10, 2)(indices)


def test_embedding_errors():
    emb = Embedding(10, 2)
    with pytest.raises(RuntimeError, match="before forward"):
        emb.backward(np.zeros((1, 2)))
    emb(np.array([1, 2]))
    with pytest.raises(ValueError, match=r"dout: expected shape \(2, 2\), got \(2, 3\)"):
        emb.backward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="num_embeddings"):
        Embedding(0, 2)
    with pytest.raises(TypeError, match="dtype"):
        Embedding(3, 2, dtype=np.int32)


# -- Linear ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("lead", [(5,), (2, 3), (2, 3, 4)])
def test_linear_matches_torch(dtype, bias, lead):
    torch = pytest.importorskip("torch")
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    rng = np.random.default_rng(0)
    lin = Linear(6, 4, bias=bias, dtype=dtype, seed=0)
    ref = torch.nn.Linear(6, 4, bias=bias).to(tdtype)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in lin.state_dict().items()})

    x = rng.standard_normal((*lead, 6)).astype(dtype)
    x_t = torch.from_numpy(x.copy()).requires_grad_(True)
    y = lin(x)
    y_t = ref(x_t)
    assert y.shape == (*lead, 4) and y.dtype == dtype
    np.testing.assert_allclose(y, y_t.detach().numpy(), atol=TOL[dtype])

    dout = rng.standard_normal(y.shape).astype(dtype)
    dx = lin.backward(dout)
    y_t.backward(torch.from_numpy(dout))
    assert dx.shape == x.shape and dx.dtype == dtype
    np.testing.assert_allclose(dx, x_t.grad.numpy(), atol=TOL[dtype])
    np.testing.assert_allclose(lin.grads["weight"], ref.weight.grad.numpy(), atol=TOL[dtype])
    if bias:
        np.testing.assert_allclose(lin.grads["bias"], ref.bias.grad.numpy(), atol=TOL[dtype])
    else:
        assert sorted(lin.params) == ["weight"]


def test_linear_init_bounds_and_seed():
    lin = Linear(100, 50, seed=3)
    assert lin.params["weight"].shape == (50, 100) and lin.params["bias"].shape == (50,)
    assert np.abs(lin.params["weight"]).max() <= 0.1 and np.abs(lin.params["bias"]).max() <= 0.1
    assert lin.params["weight"].std() > 0.05  # U(-0.1, 0.1) has std 0.0577
    np.testing.assert_array_equal(lin.params["weight"], Linear(100, 50, seed=3).params["weight"])


def test_linear_gradcheck_float64():
    rng = np.random.default_rng(1)
    lin = Linear(4, 3, dtype=np.float64, seed=0)
    x = rng.standard_normal((2, 5, 4))
    r = rng.standard_normal((2, 5, 3))  # a random linear loss exercises every output

    def loss() -> float:
        return float((np.tanh(lin(x)) * r).sum())

    y = lin(x)
    dx = lin.backward((1 - np.tanh(y) ** 2) * r)
    for name in ("weight", "bias"):
        numeric = numerical_gradient(loss, lin.params[name])
        assert relative_error(lin.grads[name], numeric) < 1e-8, name
    assert relative_error(dx, numerical_gradient(loss, x)) < 1e-8


def test_linear_errors():
    lin = Linear(8, 2)
    with pytest.raises(RuntimeError, match="before forward"):
        lin.backward(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="x: expected last dimension 8, got 5"):
        lin(np.zeros((3, 5)))
    lin(np.zeros((3, 8)))
    with pytest.raises(ValueError, match=r"dout: expected shape \(3, 2\), got \(3, 8\)"):
        lin.backward(np.zeros((3, 8)))
    with pytest.raises(ValueError, match="in_features: expected a positive integer, got 0"):
        Linear(0, 2)


# -- Dropout -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_training_scales_and_masks(dtype):
    drop = Dropout(0.25)
    x = np.ones((200, 50), dtype=dtype)
    y = drop(x, np.random.default_rng(0))
    assert y.dtype == dtype
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    assert abs(kept.mean() - 0.75) < 0.02
    dx = drop.backward(np.full_like(x, 2.0))
    np.testing.assert_array_equal(dx != 0, kept)
    np.testing.assert_allclose(dx[kept], 2 / 0.75, rtol=1e-6)


def test_dropout_eval_p0_p1():
    x = np.arange(6.0).reshape(2, 3)
    drop = Dropout(0.5).eval()
    np.testing.assert_array_equal(drop(x), x)  # no rng needed in eval mode
    np.testing.assert_array_equal(drop.backward(np.ones_like(x)), np.ones_like(x))
    np.testing.assert_array_equal(Dropout(0.0)(x, np.random.default_rng(0)), x)
    p1 = Dropout(1.0)
    assert not p1(x, np.random.default_rng(0)).any()
    assert not p1.backward(np.ones_like(x)).any()


def test_dropout_is_reproducible_from_the_generator():
    x = np.ones((10, 10))
    a = Dropout(0.5)(x, np.random.default_rng(7))
    b = Dropout(0.5)(x, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


def test_dropout_errors():
    with pytest.raises(ValueError, match=r"p: expected a probability in \[0, 1\], got 1.5"):
        Dropout(1.5)
    drop = Dropout(0.5)
    with pytest.raises(RuntimeError, match="before forward"):
        drop.backward(np.zeros(3))
    with pytest.raises(TypeError, match=r"rng: expected a numpy\.random\.Generator"):
        drop(np.zeros(3))
    drop(np.zeros(3), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"dout: expected shape \(3,\), got \(4,\)"):
        drop.backward(np.zeros(4))


# -- LanguageModel: the embedding lookup folded into the first recurrent layer ------------------
@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_language_model_folded_lookup_equals_embedding_then_layer(cell, layers, tie):
    from rnnlab.config import ModelConfig
    from rnnlab.scratch.models import LanguageModel

    E = 16 if tie else 8
    config = ModelConfig(vocab_size=11, cell=cell, embedding_dim=E, hidden_size=16, num_layers=layers, tie_weights=tie)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 11, (4, 7)), rng.integers(0, 11, (4, 7))
    runs = []
    for fold in (True, False):
        model = LanguageModel(config, dtype=np.float64, seed=3)
        model._lookup_in_rnn = fold
        state = None
        for _ in range(2):  # state carried, gradients accumulated
            logits, state = model.forward(x, state)
            _, dlogits = cross_entropy(logits, y)
            model.backward(dlogits)
        assert model._folded is fold
        runs.append((logits, state, {k: v.copy() for k, v in model.grads.items()}))
    (logits, state, grads), (logits_ref, state_ref, grads_ref) = runs
    np.testing.assert_allclose(logits, logits_ref, atol=1e-12, rtol=0)
    for a, b in zip(state if cell == "lstm" else [state], state_ref if cell == "lstm" else [state_ref], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12, rtol=0)
    assert sorted(grads) == sorted(grads_ref)
    for name, g in grads_ref.items():
        np.testing.assert_allclose(grads[name], g, atol=1e-12, rtol=0, err_msg=name)


def test_language_model_folds_the_lookup_only_where_it_pays():
    from rnnlab.config import ModelConfig
    from rnnlab.scratch.models import LanguageModel

    small = LanguageModel(ModelConfig(vocab_size=11, embedding_dim=8, hidden_size=8), seed=0)
    small.forward(np.zeros((4, 5), dtype=np.int64))  # 20 tokens >= 11: folded
    assert small._folded
    small.forward(np.zeros((2, 1), dtype=np.int64))  # a sampling step: the plain lookup is cheaper
    assert not small._folded
    large = LanguageModel(ModelConfig(vocab_size=300, embedding_dim=8, hidden_size=8), seed=0)
    large.forward(np.zeros((4, 100), dtype=np.int64))  # a 300-row one-hot input would cost more
    assert not large._folded


def test_language_model_backward_after_a_refused_forward_is_the_last_good_calls():
    from rnnlab.config import ModelConfig
    from rnnlab.scratch.models import LanguageModel

    config = ModelConfig(vocab_size=11, embedding_dim=8, hidden_size=8)
    x = np.random.default_rng(0).integers(0, 11, (4, 5))
    models = [LanguageModel(config, dtype=np.float64, seed=0) for _ in range(2)]
    for k, model in enumerate(models):
        logits, _ = model.forward(x)  # folded
        if k:  # a refused call in between: one token (the plain lookup), out of range
            with pytest.raises(ValueError, match=r"^idx: expected values in \[0, 10\], got 99$"):
                model.forward(np.array([[99]]))
        model.backward(np.ones_like(logits))
    for name, g in models[0].grads.items():
        np.testing.assert_array_equal(models[1].grads[name], g, err_msg=name)
