"""rnnlab.torch: the same models as rnnlab.scratch on PyTorch kernels, weights both ways, same samples."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rnnlab.config import ModelConfig, SampleConfig  # noqa: E402
from rnnlab.data.text import CharVocab  # noqa: E402
from rnnlab.generation.sample import sample_lm, sample_next  # noqa: E402
from rnnlab.scratch import optim  # noqa: E402
from rnnlab.scratch.gradcheck_recurrent import make_layer  # noqa: E402
from rnnlab.scratch.init import init_recurrent_  # noqa: E402
from rnnlab.scratch.losses import cross_entropy  # noqa: E402
from rnnlab.scratch.models import LanguageModel as NumpyLM  # noqa: E402
from rnnlab.torch import (  # noqa: E402
    LanguageModel,
    NumpyBridge,
    load_weights,
    make_rnn,
    numpy_model_to_torch,
    to_numpy_state_dict,
    to_torch_state_dict,
    torch_model_to_numpy,
)

TEXT = "the quick brown fox jumps over the lazy dog. " * 20
VOCAB = CharVocab.from_text(TEXT)
IDS = VOCAB.encode(TEXT)


def _config(cell: str, **kw) -> ModelConfig:
    return ModelConfig(vocab_size=len(VOCAB), cell=cell, embedding_dim=6, hidden_size=10, num_layers=2, **kw)


def _batches(steps: int, B: int = 3, T: int = 12):
    rng = np.random.default_rng(0)
    for _ in range(steps):
        starts = rng.integers(0, len(IDS) - T - 1, B)
        x = np.stack([IDS[s : s + T] for s in starts])
        y = np.stack([IDS[s + 1 : s + T + 1] for s in starts])
        yield x, y


def _numpy_step(model: NumpyLM, opt, x: np.ndarray, y: np.ndarray) -> float:
    """One training step of the NumPy model; returns the loss."""
    logits, _ = model.forward(x)
    loss, dlogits = cross_entropy(logits, y)
    model.zero_grad()
    model.backward(dlogits)
    opt.step()
    return loss


def _train_numpy(cell: str, dtype) -> NumpyLM:
    model = NumpyLM(_config(cell), dtype=dtype, seed=1)
    opt = optim.Adam(model, lr=0.01)
    for x, y in _batches(5):
        _numpy_step(model, opt, x, y)
    return model.eval()


def _train_torch(cell: str, dtype) -> LanguageModel:
    model = LanguageModel(_config(cell), seed=1, dtype=dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    for x, y in _batches(5):
        logits, _ = model(torch.from_numpy(x))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(y).reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _logits_both(np_model: NumpyLM, t_model: LanguageModel) -> tuple[np.ndarray, np.ndarray]:
    x = IDS[:40].reshape(2, 20)
    a, _ = np_model.forward(x)
    with torch.no_grad():
        b, _ = t_model(torch.from_numpy(x))
    return a, b.numpy()


CELLS = ["rnn", "lstm", "gru"]
PRECISION = [(np.float64, torch.float64, 1e-10), (np.float32, torch.float32, 1e-5)]


@pytest.mark.parametrize("cell", CELLS)
def test_same_seed_same_initial_weights_and_logits(cell: str) -> None:
    np_model = NumpyLM(_config(cell), dtype=np.float64, seed=7)
    t_model = LanguageModel(_config(cell), seed=7, dtype=torch.float64)
    assert list(np_model.state_dict()) == list(t_model.state_dict())
    for name, value in np_model.state_dict().items():
        np.testing.assert_array_equal(value, t_model.state_dict()[name].numpy(), err_msg=name)
    a, b = _logits_both(np_model.eval(), t_model.eval())
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("np_dtype", "t_dtype", "atol"), PRECISION)
def test_numpy_trained_model_runs_the_same_on_torch(cell: str, np_dtype, t_dtype, atol: float) -> None:
    np_model = _train_numpy(cell, np_dtype)
    t_model = numpy_model_to_torch(np_model).eval()
    assert t_model.head.bias.dtype == t_dtype
    a, b = _logits_both(np_model, t_model)
    np.testing.assert_allclose(a, b, rtol=0, atol=atol)
    config = SampleConfig(length=60, num_samples=3, prime="the ", seed=11)
    assert sample_lm(np_model, VOCAB, config) == sample_lm(NumpyBridge(t_model), VOCAB, config)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("np_dtype", "t_dtype", "atol"), PRECISION)
def test_torch_trained_model_runs_the_same_on_numpy(cell: str, np_dtype, t_dtype, atol: float) -> None:
    t_model = _train_torch(cell, t_dtype)
    np_model = torch_model_to_numpy(t_model).eval()
    assert np_model.dtype == np_dtype
    a, b = _logits_both(np_model, t_model)
    np.testing.assert_allclose(a, b, rtol=0, atol=atol)
    config = SampleConfig(length=60, num_samples=3, temperature=0.9, top_p=0.95, seed=5)
    assert sample_lm(NumpyBridge(t_model), VOCAB, config) == sample_lm(np_model, VOCAB, config)


@pytest.mark.parametrize(("np_dtype", "t_dtype", "atol"), PRECISION)
def test_bridge_keeps_the_model_precision(np_dtype, t_dtype, atol: float) -> None:
    np_model = NumpyLM(_config("lstm"), dtype=np_dtype, seed=3).eval()
    logits, _ = NumpyBridge(numpy_model_to_torch(np_model)).forward(IDS[:40].reshape(2, 20))
    assert logits.dtype == np_dtype
    np.testing.assert_allclose(logits, np_model.forward(IDS[:40].reshape(2, 20))[0], rtol=0, atol=atol)
    bf16 = LanguageModel(_config("lstm"), seed=3).to(torch.bfloat16)
    assert NumpyBridge(bf16).forward(IDS[:8].reshape(2, 4))[0].dtype == np.float32  # NumPy has no bfloat16


def test_bridge_refuses_what_torch_would_misread() -> None:
    with pytest.raises(TypeError, match=r"^model: expected a torch rnnlab.torch.LanguageModel .*got LanguageModel$"):
        NumpyBridge(NumpyLM(_config("lstm"), seed=0))  # type: ignore[arg-type]
    bridge = NumpyBridge(LanguageModel(_config("lstm"), seed=0))
    with pytest.raises(TypeError, match=r"^idx: expected integer token ids, got dtype float64$"):
        bridge.forward(np.array([[1.7]]))
    V = _config("lstm").vocab_size
    with pytest.raises(ValueError, match=rf"^idx: expected token ids in \[0, {V}\), got values from -1 to 2$"):
        bridge.forward(np.array([[-1, 2]]))


def test_sample_lm_asks_for_the_bridge_around_a_torch_model() -> None:
    config = SampleConfig(length=5, seed=0)
    with pytest.raises(
        TypeError,
        match=r"^model: expected a NumPy LanguageModel or a torch one wrapped in rnnlab.torch.NumpyBridge, got LanguageModel$",
    ):
        sample_lm(LanguageModel(_config("gru")), VOCAB, config)
    assert len(sample_lm(NumpyBridge(LanguageModel(_config("gru"))), VOCAB, config)[0]) == 5


def test_state_dict_round_trip_is_exact() -> None:
    t_model = _train_torch("lstm", torch.float32)
    back = to_torch_state_dict(to_numpy_state_dict(t_model.state_dict()))
    for name, value in t_model.state_dict().items():
        assert torch.equal(value, back[name]), name
    assert to_numpy_state_dict({"w": torch.ones(2, dtype=torch.bfloat16)})["w"].dtype == np.float32


def test_forward_carries_state_like_one_long_call() -> None:
    model = LanguageModel(_config("gru"), seed=0, dtype=torch.float64).eval()
    x = torch.from_numpy(IDS[:30].reshape(1, 30))
    with torch.no_grad():
        whole, _ = model(x)
        first, state = model(x[:, :13])
        second, _ = model(x[:, 13:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, rtol=0, atol=1e-12)
    assert tuple(model.initial_state(4).shape) == (2, 4, 10)
    h, c = LanguageModel(_config("lstm")).initial_state(3)
    assert tuple(h.shape) == tuple(c.shape) == (2, 3, 10)


def test_tied_weights_share_one_matrix() -> None:
    config = ModelConfig(vocab_size=len(VOCAB), embedding_dim=12, hidden_size=12, tie_weights=True)
    model = LanguageModel(config, seed=0)
    assert model.head.weight is model.embedding.weight
    untied = LanguageModel(config.replace(tie_weights=False), seed=0)
    assert model.num_parameters() == untied.num_parameters() - 12 * len(VOCAB)
    sd = model.state_dict()
    assert torch.equal(sd["embedding.weight"], sd["head.weight"])
    # the NumPy twin ties the same way, and computes the same logits
    np_model = torch_model_to_numpy(model.double()).eval()
    assert np_model.head.params["weight"] is np_model.embedding.params["weight"]
    a, b = _logits_both(np_model, model.eval())
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
    back = numpy_model_to_torch(np_model)
    assert back.head.weight is back.embedding.weight
    # weights of an untied model cannot be squeezed into a tied one
    with pytest.raises(ValueError, match="tie"):
        load_weights(LanguageModel(config), LanguageModel(config.replace(tie_weights=False), seed=3).state_dict())


@pytest.mark.parametrize("cell", CELLS)
def test_tied_training_is_the_same_on_both_engines(cell: str) -> None:
    # one (V, H) matrix is embedding and read-out in both engines: same initial weights for a seed,
    # gradients that sum both uses, and an optimiser that updates it once (AdamW: one weight decay)
    config = ModelConfig(vocab_size=len(VOCAB), cell=cell, embedding_dim=10, hidden_size=10, tie_weights=True)
    np_model = NumpyLM(config, dtype=np.float64, seed=4)
    t_model = LanguageModel(config, seed=4, dtype=torch.float64)
    assert np_model.head.params["weight"] is np_model.embedding.params["weight"]
    assert "head.weight" not in np_model.params and "head.weight" in np_model.state_dict()
    assert np_model.num_parameters() == t_model.num_parameters()
    np_opt = optim.AdamW(np_model, lr=0.01, weight_decay=0.1)
    t_opt = torch.optim.AdamW(t_model.parameters(), lr=0.01, weight_decay=0.1)
    for x, y in _batches(5):
        np_loss = _numpy_step(np_model, np_opt, x, y)
        t_logits, _ = t_model(torch.from_numpy(x))
        t_loss = torch.nn.functional.cross_entropy(
            t_logits.reshape(-1, t_logits.shape[-1]), torch.from_numpy(y).reshape(-1)
        )
        t_opt.zero_grad()
        t_loss.backward()
        t_opt.step()
        assert np_loss == pytest.approx(t_loss.item(), abs=1e-12)
    for name, value in t_model.state_dict().items():
        np.testing.assert_allclose(np_model.state_dict()[name], value.numpy(), rtol=0, atol=1e-10, err_msg=name)
    np.testing.assert_array_equal(np_model.state_dict()["head.weight"], np_model.state_dict()["embedding.weight"])


def test_numpy_tied_model_refuses_two_different_matrices() -> None:
    config = ModelConfig(vocab_size=len(VOCAB), embedding_dim=10, hidden_size=10, tie_weights=True)
    model = NumpyLM(config, seed=0)
    weights = NumpyLM(config.replace(tie_weights=False), seed=1).state_dict()
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"^state_dict: embedding.weight and head.weight are one tied parameter"):
        model.load_state_dict(weights)
    for name, value in model.state_dict().items():  # refused before anything was copied
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_tie_weights_needs_equal_sizes() -> None:
    with pytest.raises(ValueError, match=r"^tie_weights: .*embedding_dim=8, hidden_size=16"):
        ModelConfig(vocab_size=5, embedding_dim=8, hidden_size=16, tie_weights=True)
    assert ModelConfig.from_dict({"vocab_size": 5}).tie_weights is False  # old configs still load


def test_load_weights_names_the_mismatch() -> None:
    model = LanguageModel(_config("lstm"))
    sd = model.state_dict()
    sd.pop("head.bias")
    with pytest.raises(ValueError, match=r"missing \['head.bias'\]"):
        load_weights(model, sd)
    sd = model.state_dict()
    sd["head.bias"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"weights\['head.bias'\]: expected shape"):
        load_weights(model, sd)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("scheme", ["pytorch", "orthogonal", "xavier"])
def test_make_rnn_matches_the_numpy_layer(cell: str, scheme: str) -> None:
    rnn = make_rnn(cell, 4, 6, num_layers=2, bidirectional=True, init=scheme, seed=3).double()
    twin = make_layer("rnn_tanh" if cell == "rnn" else cell, 4, 6, num_layers=2, bidirectional=True,
                      batch_first=True, dtype=np.float64, seed=3)  # fmt: skip
    if scheme != "pytorch":
        init_recurrent_(twin, scheme, np.random.default_rng(3))
    for name, p in rnn.named_parameters():
        np.testing.assert_allclose(p.detach().numpy(), twin.params[name], rtol=0, atol=1e-7, err_msg=name)
    x = np.random.default_rng(0).standard_normal((2, 5, 4))
    out, _ = rnn(torch.from_numpy(x))
    assert tuple(out.shape) == (2, 5, 12)
    np.testing.assert_allclose(out.detach().numpy(), twin.forward(x)[0], rtol=0, atol=1e-6)


def test_make_rnn_forget_bias_and_errors() -> None:
    lstm = make_rnn("lstm", 3, 4, forget_bias=1.0)
    assert torch.equal(lstm.bias_ih_l0[4:8] + lstm.bias_hh_l0[4:8], torch.ones(4))
    with pytest.raises(ValueError, match=r"^cell: "):
        make_rnn("transformer", 3, 4)
    with pytest.raises(ValueError, match=r"^hidden_size: "):
        make_rnn("gru", 3, 0)


def test_sample_next_top_p_keeps_the_nucleus() -> None:
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    rng = np.random.default_rng(0)
    draws = np.concatenate([sample_next(logits, rng, top_p=0.7) for _ in range(400)])
    assert set(draws.tolist()) == {0, 1}  # 0.5 < 0.7, 0.5 + 0.3 >= 0.7
    draws = np.concatenate([sample_next(logits, rng, top_p=0.4) for _ in range(50)])
    assert set(draws.tolist()) == {0}  # the most likely token is always kept
    # top_p=1 changes nothing: same draws as without it
    a = sample_next(np.tile(logits, (20, 1)), np.random.default_rng(1))
    b = sample_next(np.tile(logits, (20, 1)), np.random.default_rng(1), top_p=1.0)
    assert (a == b).all()
    with pytest.raises(ValueError, match=r"^top_p: "):
        SampleConfig(top_p=0)


@pytest.mark.parametrize(
    ("idx", "error", "message"),
    [
        (torch.tensor([[7]]), ValueError, "idx: expected token ids in [0, 4], got 7"),
        (torch.tensor([[1, -1]]), ValueError, "idx: expected token ids in [0, 4], got -1"),
        (torch.zeros(1, 3), TypeError, "idx: expected a tensor of integer token ids, got dtype torch.float32"),
        (
            torch.zeros(1, 0, dtype=torch.long),
            ValueError,
            "idx: expected token ids of shape (B, T) or (T,) with T >= 1, got shape (1, 0)",
        ),
        ([[1, 2]], TypeError, "idx: expected a tensor of integer token ids, got list"),
    ],
)
def test_torch_language_model_names_a_bad_idx(idx, error, message):
    lm = LanguageModel(ModelConfig(vocab_size=5, hidden_size=4))
    with pytest.raises(error) as e:
        lm(idx)
    assert str(e.value) == message


def test_head_configs_take_numpy_scalars_as_model_config_does():
    from rnnlab.torch.heads import ClassifierConfig, ForecasterConfig, Seq2SeqConfig, TaggerConfig

    assert ClassifierConfig(vocab_size=np.int64(10), num_classes=2, bidirectional=np.bool_(True)).to_dict() == (
        ClassifierConfig(vocab_size=10, num_classes=2, bidirectional=True).to_dict()
    )
    assert TaggerConfig(vocab_size=5, num_tags=3, dropout=np.float32(0.25)).dropout == 0.25
    assert type(ForecasterConfig(input_len=np.int32(5)).input_len) is int
    assert type(Seq2SeqConfig(src_vocab_size=np.int64(8), tgt_vocab_size=8).src_vocab_size) is int
