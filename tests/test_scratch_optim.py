"""Optimisers and gradient clipping: step-for-step equal to torch.optim / torch.nn.utils."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.scratch.clip import clip_grad_norm_, clip_grad_value_
from rnnlab.scratch.module import Module
from rnnlab.scratch.optim import SGD, Adagrad, Adam, AdamW

TOL = {np.float32: 1e-6, np.float64: 1e-12}
SHAPES = {"weight_ih_l0": (8, 3), "weight_hh_l0": (8, 2), "bias_ih_l0": (8,), "head.weight": (5, 2)}


class Toy(Module):
    def __init__(self, dtype, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        for name, shape in SHAPES.items():
            self.register_parameter(name, rng.standard_normal(shape).astype(dtype))


CONFIGS = [
    (SGD, "SGD", {"lr": 0.1}),
    (SGD, "SGD", {"lr": 0.1, "weight_decay": 0.05}),
    (SGD, "SGD", {"lr": 0.1, "momentum": 0.9}),
    (SGD, "SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01}),
    (SGD, "SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (Adagrad, "Adagrad", {}),
    (Adagrad, "Adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1}),
    (Adagrad, "Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.5, "eps": 1e-6}),
    (Adam, "Adam", {}),
    (Adam, "Adam", {"lr": 0.01, "weight_decay": 0.1}),
    (Adam, "Adam", {"lr": 0.01, "betas": (0.3, 0.99), "eps": 1e-6}),  # lerp weight >= 0.5 branch
    (AdamW, "AdamW", {}),
    (AdamW, "AdamW", {"lr": 0.01, "betas": (0.8, 0.95), "weight_decay": 0.1}),
]
STATE_KEYS = {"SGD": ["momentum_buffer"], "Adagrad": ["sum"], "Adam": ["exp_avg", "exp_avg_sq"]}
STATE_KEYS["AdamW"] = STATE_KEYS["Adam"]


def _set_grads(model, grads):
    model.zero_grad()
    for name, g in grads.items():
        model.grads[name][...] += g  # accumulate like a backward pass would


def _random_grads(rng, dtype):
    return {n: rng.standard_normal(s).astype(dtype) for n, s in SHAPES.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("cls", "torch_name", "kwargs"), CONFIGS)
def test_optimizer_matches_torch(dtype, cls, torch_name, kwargs):
    torch = pytest.importorskip("torch")
    model = Toy(dtype)
    ref = {n: torch.from_numpy(p.copy()).requires_grad_(True) for n, p in model.params.items()}
    opt = cls(model, **kwargs)
    ref_opt = getattr(torch.optim, torch_name)(list(ref.values()), **kwargs)
    rng = np.random.default_rng(1)
    for step in range(6):
        if step == 3:  # a scheduler changing lr between steps
            opt.lr = opt.lr * 0.5
            ref_opt.param_groups[0]["lr"] *= 0.5
        grads = _random_grads(rng, dtype)
        _set_grads(model, grads)
        for name, t in ref.items():
            t.grad = torch.from_numpy(grads[name].copy())
        opt.step()
        ref_opt.step()
        for name, p in model.params.items():
            assert p.dtype == dtype
            np.testing.assert_allclose(p, ref[name].detach().numpy(), rtol=0, atol=TOL[dtype], err_msg=name)
            np.testing.assert_array_equal(model.grads[name], grads[name])  # step leaves grads alone

    state = opt.state_dict()
    assert state["step"] == 6 and isinstance(state["step"], int)
    for name, t in ref.items():
        for key in STATE_KEYS[torch_name]:
            if key == "momentum_buffer" and not kwargs.get("momentum"):
                assert f"{key}.{name}" not in state
                continue
            np.testing.assert_allclose(state[f"{key}.{name}"], ref_opt.state[t][key].numpy(), rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize(("cls", "kwargs"), [(c, k) for c, _, k in CONFIGS])
def test_state_dict_round_trip_resumes_exactly(cls, kwargs):
    rng = np.random.default_rng(2)
    grads = [_random_grads(rng, np.float64) for _ in range(5)]
    model_a, model_b = Toy(np.float64), Toy(np.float64)
    opt_a = cls(model_a, **kwargs)
    opt_b = cls(model_b, **kwargs)
    for g in grads[:3]:
        _set_grads(model_a, g)
        opt_a.step()
        _set_grads(model_b, g)
        opt_b.step()
    saved = opt_b.state_dict()
    assert all(isinstance(v, int | np.ndarray) for v in saved.values())
    opt_b = cls(model_b, **kwargs)  # a fresh optimiser, as after loading a checkpoint
    opt_b.load_state_dict(saved)
    for g in grads[3:]:
        _set_grads(model_a, g)
        opt_a.step()
        _set_grads(model_b, g)
        opt_b.step()
    for name, p in model_a.params.items():
        np.testing.assert_array_equal(p, model_b.params[name])


def test_state_dict_is_a_copy_and_validated():
    model = Toy(np.float32)
    opt = Adam(model)
    _set_grads(model, _random_grads(np.random.default_rng(0), np.float32))
    opt.step()
    state = opt.state_dict()
    state["exp_avg.head.weight"][...] = 123
    assert not (opt.state_dict()["exp_avg.head.weight"] == 123).any()
    bad = dict(state)
    del bad["exp_avg_sq.bias_ih_l0"]
    bad["exp_avg.nope"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"missing \['exp_avg_sq.bias_ih_l0'\], unexpected \['exp_avg.nope'\]"):
        opt.load_state_dict(bad)
    bad = dict(state, **{"exp_avg.head.weight": np.zeros((2, 5))})
    with pytest.raises(ValueError, match=r"state_dict\['exp_avg.head.weight'\]: expected shape \(5, 2\)"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="missing key 'step'"):
        opt.load_state_dict({k: v for k, v in state.items() if k != "step"})


def test_sgd_state_before_first_step_and_zero_grad():
    model = Toy(np.float64)
    opt = SGD(model, lr=0.1, momentum=0.9)
    assert opt.state_dict() == {"step": 0}
    opt.load_state_dict({"step": 0})  # momentum buffers are created by the first step
    model.grads["head.weight"][...] = 1.0
    opt.zero_grad()
    assert not model.grads["head.weight"].any()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda m: SGD(m, lr=-0.1), "lr: expected a value >= 0, got -0.1"),
        (lambda m: SGD(m, lr=0.1, momentum=-1), "momentum: expected a value >= 0"),
        (lambda m: SGD(m, lr=0.1, weight_decay=-1), "weight_decay: expected a value >= 0"),
        (lambda m: SGD(m, lr=0.1, nesterov=True), "nesterov: requires momentum > 0 and dampening 0"),
        (lambda m: SGD(m, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov: requires"),
        (lambda m: Adagrad(m, lr_decay=-1), "lr_decay: expected a value >= 0"),
        (lambda m: Adagrad(m, initial_accumulator_value=-1), "initial_accumulator_value: expected"),
        (lambda m: Adagrad(m, eps=-1), "eps: expected a value >= 0"),
        (lambda m: Adam(m, betas=(1.0, 0.999)), r"betas: expected betas\[0\] in \[0, 1\), got 1.0"),
        (lambda m: Adam(m, betas=(0.9, -0.1)), r"betas: expected betas\[1\] in \[0, 1\), got -0.1"),
        (lambda m: Adam(m, betas=(0.9,)), "betas: expected a pair"),
        (lambda m: AdamW(m, weight_decay=-0.1), "weight_decay: expected a value >= 0"),
        (lambda m: Adam(m, lr=float("nan")), "lr: expected a value >= 0, got nan"),
    ],
)
def test_hyperparameter_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make(Toy(np.float64))


def test_lr_setter_validates_and_module_type_checked():
    opt = Adam(Toy(np.float64))
    with pytest.raises(ValueError, match=r"lr: expected a value >= 0, got -1\.0"):
        opt.lr = -1
    with pytest.raises(TypeError, match=r"module: expected a rnnlab\.scratch Module, got list"):
        SGD([np.zeros(3)], lr=0.1)


# -- clipping ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])  # clipping, and a no-op
def test_clip_grad_norm_matches_torch(dtype, norm_type, max_norm):
    torch = pytest.importorskip("torch")
    model = Toy(dtype)
    _set_grads(model, _random_grads(np.random.default_rng(3), dtype))
    ref = [torch.from_numpy(p.copy()).requires_grad_(True) for p in model.params.values()]
    for t, g in zip(ref, model.grads.values(), strict=True):
        t.grad = torch.from_numpy(g.copy())
    total = clip_grad_norm_(model, max_norm, norm_type=norm_type)
    ref_total = torch.nn.utils.clip_grad_norm_(ref, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    assert total == pytest.approx(ref_total.item(), rel=TOL[dtype])
    for g, t in zip(model.grads.values(), ref, strict=True):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=TOL[dtype], atol=TOL[dtype])


def test_clip_grad_norm_inputs_and_result():
    a, b = np.array([3.0, 0.0]), np.array([[0.0], [4.0]])
    assert clip_grad_norm_({"a": a, "b": b}, 1.0) == pytest.approx(5.0)
    new_norm = np.sqrt((a**2).sum() + (b**2).sum())
    assert new_norm == pytest.approx(1.0, rel=1e-5)  # one global norm, not one per array
    c = np.array([0.3, 0.4])
    assert clip_grad_norm_([c], 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(c, [0.3, 0.4])  # never scaled up
    assert clip_grad_norm_([], 1.0) == 0.0
    d = np.array([1.0, -8.0])
    assert clip_grad_norm_(d, 2.0, norm_type="inf") == 8.0
    np.testing.assert_allclose(d, [0.25, -2.0], rtol=1e-6)


def test_clip_grad_norm_nonfinite():
    torch = pytest.importorskip("torch")
    g = np.array([1.0, np.inf])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([g], 1.0, error_if_nonfinite=True)
    t = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    t.grad = torch.tensor([1.0, float("inf")], dtype=torch.float64)
    assert clip_grad_norm_([g], 1.0) == torch.nn.utils.clip_grad_norm_([t], 1.0).item() == np.inf
    np.testing.assert_array_equal(g, t.grad.numpy())  # same 0 * inf = nan as torch


def test_clip_grad_norm_of_float16_sums_in_float32():
    torch = pytest.importorskip("torch")
    g = np.full(10, 300.0, np.float16)  # each square overflows float16
    x = torch.zeros(10, dtype=torch.float16, requires_grad=True)
    x.grad = torch.tensor(g.copy())
    expected = torch.nn.utils.clip_grad_norm_([x], 1.0).item()
    assert clip_grad_norm_([g], 1.0) == expected == pytest.approx(948.7, rel=1e-3)
    np.testing.assert_array_equal(g, x.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_value_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    model = Toy(dtype)
    _set_grads(model, {n: 10 * g for n, g in _random_grads(np.random.default_rng(4), dtype).items()})
    ref = [torch.from_numpy(p.copy()).requires_grad_(True) for p in model.params.values()]
    for t, g in zip(ref, model.grads.values(), strict=True):
        t.grad = torch.from_numpy(g.copy())
    clip_grad_value_(model, 5.0)
    torch.nn.utils.clip_grad_value_(ref, 5.0)
    for g, t in zip(model.grads.values(), ref, strict=True):
        np.testing.assert_array_equal(g, t.grad.numpy())
    assert max(np.abs(g).max() for g in model.grads.values()) == 5.0


def test_clip_validation():
    with pytest.raises(ValueError, match=r"clip_value: expected a value >= 0, got -1\.0"):
        clip_grad_value_([np.zeros(2)], -1)
    with pytest.raises(TypeError, match="module_or_grads: expected float NumPy arrays, got list"):
        clip_grad_value_([[1.0, 2.0]], 1.0)
    with pytest.raises(TypeError, match="module_or_grads: expected a Module"):
        clip_grad_norm_(3.0, 1.0)
