"""The NumPy recurrent layers against PyTorch (same weights) and against finite differences."""

import itertools
import warnings

import numpy as np
import pytest

from rnnlab.scratch import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from rnnlab.scratch.gradcheck_recurrent import check_recurrent_gradients, make_layer

CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
GRID = list(itertools.product(CELLS, [1, 2], [False, True]))
TOL = {np.float32: 1e-5, np.float64: 1e-10}


def make_pair(cell, layers, bidirectional, dtype, batch_first=False, input_size=5, hidden_size=7):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    kw = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    if cell.startswith("rnn"):
        nl = cell.split("_")[1]
        ref = torch.nn.RNN(input_size, hidden_size, nonlinearity=nl, **kw).to(tdtype)
        ours = RNN(input_size, hidden_size, nonlinearity=nl, dtype=dtype, **kw)
    elif cell == "lstm":
        ref = torch.nn.LSTM(input_size, hidden_size, **kw).to(tdtype)
        ours = LSTM(input_size, hidden_size, dtype=dtype, **kw)
    else:
        ref = torch.nn.GRU(input_size, hidden_size, **kw).to(tdtype)
        ours = GRU(input_size, hidden_size, dtype=dtype, **kw)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    return torch, ref, ours


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize(("cell", "layers", "bidirectional"), GRID)
def test_matches_pytorch(cell, layers, bidirectional, batch_first, dtype):
    torch, ref, ours = make_pair(cell, layers, bidirectional, dtype, batch_first)
    rng = np.random.default_rng(1)
    T, B, D, H = 6, 3, 2 if bidirectional else 1, 7
    x = rng.standard_normal((B, T, 5) if batch_first else (T, B, 5)).astype(dtype)
    h0 = rng.standard_normal((layers * D, B, H)).astype(dtype)
    c0 = rng.standard_normal((layers * D, B, H)).astype(dtype)
    dout = rng.standard_normal((B, T, D * H) if batch_first else (T, B, D * H)).astype(dtype)
    dh_n = rng.standard_normal(h0.shape).astype(dtype)
    dc_n = rng.standard_normal(h0.shape).astype(dtype)
    tol = TOL[dtype]

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    if cell == "lstm":
        out_t, (hn_t, cn_t) = ref(xt, (h0t, c0t))
        loss = (
            (out_t * torch.tensor(dout)).sum() + (hn_t * torch.tensor(dh_n)).sum() + (cn_t * torch.tensor(dc_n)).sum()
        )
        out, (h_n, c_n) = ours.forward(x, (h0, c0))
        np.testing.assert_allclose(c_n, cn_t.detach().numpy(), atol=tol, rtol=0)
        dx, (dh0, dc0) = ours.backward(dout, (dh_n, dc_n))
    else:
        out_t, hn_t = ref(xt, h0t)
        loss = (out_t * torch.tensor(dout)).sum() + (hn_t * torch.tensor(dh_n)).sum()
        out, h_n = ours.forward(x, h0)
        dx, dh0 = ours.backward(dout, dh_n)
    loss.backward()
    np.testing.assert_allclose(out, out_t.detach().numpy(), atol=tol, rtol=0)
    np.testing.assert_allclose(h_n, hn_t.detach().numpy(), atol=tol, rtol=0)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=tol, rtol=0)
    np.testing.assert_allclose(dh0, h0t.grad.numpy(), atol=tol, rtol=0)
    if cell == "lstm":
        np.testing.assert_allclose(dc0, c0t.grad.numpy(), atol=tol, rtol=0)
    ref_grads = {k: p.grad.numpy() for k, p in ref.named_parameters()}
    assert sorted(ref_grads) == sorted(ours.grads)
    for name, g in ours.grads.items():
        assert g.dtype == dtype
        np.testing.assert_allclose(g, ref_grads[name], atol=tol, rtol=0, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_saturated_gates_match_pytorch_without_warnings(cell, dtype):
    # pre-activations of ±1e4 overflow the exp inside σ and tanh; the limits (0, 1, ±1) must come out
    torch, ref, ours = make_pair(cell, 1, False, dtype)
    x = np.random.default_rng(2).standard_normal((6, 3, 5)).astype(dtype) * 1e4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, _ = ours.forward(x)
        dx, _ = ours.backward(np.ones_like(out))
    out_t, _ = ref(torch.tensor(x, requires_grad=True))
    assert np.isfinite(out).all() and np.isfinite(dx).all()
    np.testing.assert_allclose(out, out_t.detach().numpy(), atol=TOL[dtype], rtol=0)


@pytest.mark.parametrize("truncated", [False, True])
@pytest.mark.parametrize(("cell", "layers", "bidirectional"), GRID)
def test_gradients_match_finite_differences(cell, layers, bidirectional, truncated):
    result = check_recurrent_gradients(cell, layers, bidirectional, truncated=truncated)
    expected = {n for n in make_layer(cell, 4, 5, num_layers=layers, bidirectional=bidirectional).params}
    expected |= {"input"} if truncated else {"input", "h_0"} | ({"c_0"} if cell == "lstm" else set())
    assert set(result.relative) == expected
    assert result.worst <= 1e-6, result.relative


@pytest.mark.parametrize("cell", CELLS)
def test_chunked_forward_equals_whole_sequence(cell):
    """Truncated BPTT carries the state: two chunks give the same outputs as one pass."""
    layer = make_layer(cell, 3, 4, num_layers=2, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((10, 2, 3))
    whole, final = layer.forward(x)
    first, state = layer.forward(x[:4])
    second, final2 = layer.forward(x[4:], state)
    np.testing.assert_allclose(np.concatenate([first, second]), whole, atol=1e-14)
    for a, b in zip(final if cell == "lstm" else [final], final2 if cell == "lstm" else [final2], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-14)


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_accumulate_until_zero_grad(cell):
    layer = make_layer(cell, 3, 4, dtype=np.float64, seed=0)
    x = np.ones((5, 2, 3))
    out, _ = layer.forward(x)
    layer.backward(np.ones_like(out))
    once = {k: v.copy() for k, v in layer.grads.items()}
    layer.forward(x)
    layer.backward(np.ones_like(out))
    for k, v in layer.grads.items():
        np.testing.assert_allclose(v, 2 * once[k], atol=1e-12)
    layer.zero_grad()
    assert all(not v.any() for v in layer.grads.values())


@pytest.mark.parametrize("cell", CELLS)
def test_unbatched_input_matches_batch_of_one(cell):
    layer = make_layer(cell, 3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((6, 3))
    out, final = layer.forward(x)
    out_b, _ = layer.forward(x[:, None, :])
    assert out.shape == (6, 8)
    np.testing.assert_allclose(out, out_b[:, 0], atol=1e-14)
    h = final[0] if cell == "lstm" else final
    assert h.shape == (4, 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("cls", "tname"), [(RNNCell, "RNNCell"), (LSTMCell, "LSTMCell"), (GRUCell, "GRUCell")])
def test_cells_match_pytorch(cls, tname, dtype):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    ref = getattr(torch.nn, tname)(3, 4).to(tdtype)
    cell = cls(3, 4, dtype=dtype)
    cell.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    assert sorted(cell.params) == ["bias_hh", "bias_ih", "weight_hh", "weight_ih"]
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal((2, 3)).astype(dtype), rng.standard_normal((2, 4)).astype(dtype)
    c = rng.standard_normal((2, 4)).astype(dtype)
    dh = rng.standard_normal((2, 4)).astype(dtype)
    xt, ht, ct = (torch.tensor(a, requires_grad=True) for a in (x, h, c))
    if cls is LSTMCell:
        h1t, c1t = ref(xt, (ht, ct))
        (h1t * torch.tensor(dh)).sum().backward()
        h1, c1 = cell.forward(x, (h, c))
        np.testing.assert_allclose(c1, c1t.detach().numpy(), atol=TOL[dtype])
        dx, (dh0, dc0) = cell.backward(dh)
        np.testing.assert_allclose(dc0, ct.grad.numpy(), atol=TOL[dtype])
    else:
        h1t = ref(xt, ht)
        (h1t * torch.tensor(dh)).sum().backward()
        h1 = cell.forward(x, h)
        dx, dh0 = cell.backward(dh)
    np.testing.assert_allclose(h1, h1t.detach().numpy(), atol=TOL[dtype])
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=TOL[dtype])
    np.testing.assert_allclose(dh0, ht.grad.numpy(), atol=TOL[dtype])
    for k, p in ref.named_parameters():
        np.testing.assert_allclose(cell.grads[k], p.grad.numpy(), atol=TOL[dtype], err_msg=k)


def test_dropout_between_layers_only_in_training():
    layer = LSTM(3, 50, num_layers=2, dropout=0.5, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    layer.eval()
    a, _ = layer.forward(x)
    b, _ = layer.forward(x)
    np.testing.assert_array_equal(a, b)
    layer.train()
    c, _ = layer.forward(x)
    assert not np.allclose(a, c)
    mask = layer._cache["masks"][0]
    assert set(np.unique(mask)) == {0.0, 2.0}
    assert 0.4 < (mask == 0).mean() < 0.6
    assert layer._cache["masks"][1] is None  # never after the last layer


def test_dropout_gradients_use_the_same_mask():
    """With the mask fixed (reseeded generator) the backward pass is the exact gradient."""
    from rnnlab.scratch.gradcheck import numerical_gradient, relative_error

    layer = GRU(3, 4, num_layers=2, dropout=0.3, dtype=np.float64, seed=0)
    x = np.random.default_rng(1).standard_normal((4, 2, 3))
    r = np.random.default_rng(2).standard_normal((4, 2, 4))

    def loss():
        layer.rng = np.random.default_rng(7)
        out, _ = layer.forward(x)
        return float((out * r).sum())

    loss()
    layer.backward(r)
    numeric = numerical_gradient(loss, layer.params["weight_ih_l0"])
    assert relative_error(layer.grads["weight_ih_l0"], numeric) < 1e-6


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda m: m.forward(np.zeros((5, 2, 4))),
            r"input: expected last dimension input_size=3 in \(T, B, input_size\), got shape \(5, 2, 4\)",
        ),
        (
            lambda m: m.forward(np.zeros((5, 2, 3)), (np.zeros((1, 2, 4)), np.zeros((1, 2, 4)))),
            r"h_0: expected shape \(2, 2, 4\), got \(1, 2, 4\)",
        ),
        (
            lambda m: m.forward(np.zeros((5, 2, 3)), np.zeros((2, 2, 4))),
            r"hx: expected a tuple \(h_0, c_0\) for LSTM, got ndarray",
        ),
        (lambda m: m.forward(np.zeros(3)), r"input: expected a 2-D \(unbatched\) or 3-D array, got shape \(3,\)"),
        (lambda m: m.forward(np.zeros((0, 2, 3))), r"input: expected at least one time step"),
        (lambda m: m.forward(np.array([["a"]])), r"input: expected a numeric array, got dtype <U1"),
        (lambda m: m.forward([[[1, 2, 3]], [[1, 2]]]), r"input: expected a rectangular numeric array, got list"),
        (
            lambda m: m.load_state_dict({**m.state_dict(), "bias_hh_l1": np.array(["a"] * 16)}),
            r"state_dict\['bias_hh_l1'\]: expected a numeric array, got dtype <U1",
        ),
    ],
)
def test_bad_input_names_the_argument(call, message):
    m = LSTM(3, 4, num_layers=2)
    with pytest.raises((ValueError, TypeError), match=message):
        call(m)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        # states are reported as the user passed them, (B, H) or (H,), not as the layer's (1, B, H)
        (
            lambda: LSTMCell(3, 4).forward(np.zeros((2, 3)), (np.zeros((3, 4)), np.zeros((2, 4)))),
            ValueError,
            r"h_0: expected shape \(2, 4\), got \(3, 4\)",
        ),
        (
            lambda: LSTMCell(3, 4).forward(np.zeros((2, 3)), np.zeros((2, 4))),
            TypeError,
            r"hx: expected a tuple \(h_0, c_0\) for LSTMCell, got ndarray",
        ),
        (
            lambda: GRUCell(3, 4).forward(np.zeros(3), np.zeros((1, 4))),
            ValueError,
            r"hx: expected shape \(4,\), got \(1, 4\)",
        ),
        (lambda: RNNCell(3, 4).backward(np.zeros(4)), RuntimeError, "backward called before forward"),
    ],
)
def test_cell_bad_input_names_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_cell_state_gradient_shape_is_checked_against_the_last_input():
    cell = LSTMCell(3, 4)
    cell.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"dh: expected shape \(2, 4\), got \(4,\)"):
        cell.backward(np.zeros(4))
    dx, (dh, dc) = cell.backward(np.ones((2, 4)), np.zeros((2, 4)))
    assert dx.shape == (2, 3) and dh.shape == dc.shape == (2, 4)


def test_repr_shows_the_arguments_that_differ_from_the_defaults():
    assert repr(RNN(3, 4, nonlinearity="relu", bias=False, dropout=0.5, num_layers=2)) == (
        "RNN(3, 4, num_layers=2, nonlinearity='relu', bias=False, dropout=0.5, "
        "bidirectional=False, batch_first=False, dtype=float32)"
    )


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"nonlinearity: expected 'tanh' or 'relu', got 'sigmoid'"):
        RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"hidden_size: expected a positive integer, got 0"):
        GRU(3, 0)
    with pytest.raises(ValueError, match=r"dropout: expected a number in \[0, 1\), got 1.5"):
        LSTM(3, 4, dropout=1.5)
    with pytest.raises(ValueError, match=r"dropout: expected a number in \[0, 1\), got True"):
        LSTM(3, 4, dropout=True)
    assert GRU(3, 4, num_layers=2, dropout=np.float32(0.25)).dropout == 0.25  # a NumPy scalar is a number
    with pytest.raises(TypeError, match=r"dtype: expected float32 or float64, got int64"):
        LSTM(3, 4, dtype=np.int64)


def test_backward_needs_a_forward_and_matching_dout():
    m = GRU(3, 4)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        m.backward(np.zeros((2, 1, 4)))
    m.forward(np.zeros((2, 1, 3)))
    with pytest.raises(ValueError, match=r"dout: expected the shape of output \(2, 1, 4\), got \(2, 1, 5\)"):
        m.backward(np.zeros((2, 1, 5)))


def test_load_state_dict_checks_names_and_shapes():
    m = LSTM(3, 4)
    sd = m.state_dict()
    with pytest.raises(ValueError, match=r"state_dict\['weight_hh_l0'\]: expected shape \(16, 4\), got \(4, 4\)"):
        m.load_state_dict({**sd, "weight_hh_l0": np.zeros((4, 4))})
    with pytest.raises(ValueError, match=r"missing \['bias_hh_l0'\]"):
        m.load_state_dict({k: v for k, v in sd.items() if k != "bias_hh_l0"})


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize(
    ("cell", "layers", "bidirectional"), [("lstm", 2, True), ("gru", 1, False), ("rnn_tanh", 2, False)]
)
def test_results_are_not_views_of_the_reused_buffers(cell, layers, bidirectional, batch):
    # the layer reuses its internal buffers from call to call: what it hands out must be copies
    m = make_layer(cell, 4, 6, num_layers=layers, bidirectional=bidirectional, dtype=np.float64, seed=0)
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 5, batch, 4))
    out1, s1 = m.forward(x1)
    dx1, ds1 = m.backward(np.ones_like(out1))

    def arrays(v):
        return list(v) if isinstance(v, tuple) else [v]

    handed_out = [out1, dx1, *arrays(s1), *arrays(ds1)]
    kept = [a.copy() for a in handed_out]
    g1 = {k: v.copy() for k, v in m.grads.items()}
    out2, _ = m.forward(x2)
    m.backward(2 * np.ones_like(out2))
    for a, b in zip(kept, handed_out, strict=True):
        np.testing.assert_array_equal(a, b)
    # and the second step's gradients are those of a fresh layer on x2, added to the first step's
    fresh = make_layer(cell, 4, 6, num_layers=layers, bidirectional=bidirectional, dtype=np.float64, seed=0)
    out_f, _ = fresh.forward(x2)
    fresh.backward(2 * np.ones_like(out_f))
    np.testing.assert_allclose(out_f, out2, atol=1e-12)
    for k in g1:
        np.testing.assert_allclose(m.grads[k], g1[k] + fresh.grads[k], atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_a_training_step_allocates_little_after_the_first(cell):
    import tracemalloc

    m = make_layer(cell, 32, 64, dtype=np.float32, seed=0)
    x = np.random.default_rng(0).standard_normal((64, 16, 32)).astype(np.float32)
    dout = np.ones((64, 16, 64), dtype=np.float32)
    peaks = []
    tracemalloc.start()
    try:
        for _ in range(2):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            m.forward(x)
            m.backward(dout)
            peaks.append(tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    # the first step creates the buffers (gate activations and gradients, the input projection);
    # the second only allocates what it hands out (output, input gradient) and small temporaries
    assert peaks[1] < 0.5 * peaks[0], peaks


@pytest.mark.parametrize("view", ["whole", "reversed", "prefix", "strided rows", "into a slice"])
def test_swap_time_feature_equals_the_transposed_copy(view):
    from rnnlab.scratch.recurrent import _swap_time_feature

    rng = np.random.default_rng(0)
    src = rng.standard_normal((6, 5, 3)).astype(np.float32)  # (T, F, B)
    if view == "reversed":
        src = src[::-1]
    elif view == "prefix":
        src = src[:-1]
    elif view == "strided rows":  # rows not contiguous: the element-wise fallback
        src = rng.standard_normal((6, 5, 6))[:, :, ::2]
    T, F, B = src.shape
    if view == "into a slice":
        big = np.zeros((F + 2, T, B), dtype=src.dtype)
        _swap_time_feature(big[:F], src)
        dst = big[:F]
        assert not big[F:].any()
    else:
        dst = np.empty((F, T, B), dtype=src.dtype)
        _swap_time_feature(dst, src)
    np.testing.assert_array_equal(dst, src.transpose(1, 0, 2))


@pytest.mark.parametrize("shape", ["batch_first", "time_major", "unbatched"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("cell", "layers", "bidirectional"), GRID)
def test_token_lookup_folded_into_the_layer_equals_looking_up_first(cell, layers, bidirectional, bias, shape):
    # RNNBase._forward_tokens (what LanguageModel runs for a small vocabulary) against forward(table[ids])
    rng = np.random.default_rng(5)
    V, T, B, H, D = 6, 5, 3, 7, 2 if bidirectional else 1
    kw = dict(num_layers=layers, bidirectional=bidirectional, bias=bias, batch_first=shape == "batch_first")
    layer = make_layer(cell, 4, H, dtype=np.float64, seed=2, **kw)
    table = rng.standard_normal((V, 4))
    ids = rng.integers(0, V, {"batch_first": (B, T), "time_major": (T, B), "unbatched": (T,)}[shape])
    state_shape = (layers * D, H) if shape == "unbatched" else (layers * D, B, H)
    hx = rng.standard_normal(state_shape)
    hx = (hx, rng.standard_normal(state_shape)) if cell == "lstm" else hx
    out_shape = (*ids.shape, D * H)
    dout = rng.standard_normal(out_shape)
    dh_n = rng.standard_normal(state_shape)
    dstate = (dh_n, rng.standard_normal(state_shape)) if cell == "lstm" else dh_n

    out_ref, st_ref = layer.forward(table[ids], hx)
    dx_ref, dst_ref = layer.backward(dout, dstate)
    grads_ref = {k: v.copy() for k, v in layer.grads.items()}
    dtable_ref = np.zeros_like(table)
    np.add.at(dtable_ref, ids, dx_ref)  # repeated ids add up

    layer.zero_grad()
    out, st = layer._forward_tokens(ids, table, hx)
    dtable, dst = layer.backward(dout, dstate)
    flat = lambda s: list(s) if isinstance(s, tuple) else [s]  # noqa: E731
    for a, b in zip(
        [out, *flat(st), dtable, *flat(dst)], [out_ref, *flat(st_ref), dtable_ref, *flat(dst_ref)], strict=True
    ):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-12, rtol=0)
    assert sorted(layer.grads) == sorted(grads_ref)
    for name, g in grads_ref.items():
        np.testing.assert_allclose(layer.grads[name], g, atol=1e-12, rtol=0, err_msg=name)


def test_token_lookup_refuses_an_empty_batch_as_forward_does():
    layer = LSTM(4, 5, batch_first=True)
    with pytest.raises(
        ValueError, match=r"^input: expected at least one time step and one sequence, got shape \(0, 3, 4\)$"
    ):
        layer._forward_tokens(np.zeros((0, 3), dtype=np.int64), np.zeros((6, 4), dtype=np.float32))
