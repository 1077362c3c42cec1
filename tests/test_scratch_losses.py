"""cross_entropy, mse_loss, softmax: equal to torch.nn.functional, gradient-checked, validated."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.scratch.gradcheck import numerical_gradient, relative_error
from rnnlab.scratch.losses import cross_entropy, log_softmax, mse_loss, softmax

TOL = {np.float32: 1e-6, np.float64: 1e-12}


def _torch_ce(torch, logits, targets, weights=None, ignore_index=-100, reduction="mean"):
    """Reference loss and gradient from torch; `weights` emulates the 0/1 mask."""
    x = torch.from_numpy(logits.copy()).requires_grad_(True)
    t = torch.from_numpy(targets)
    if weights is None:
        loss = torch.nn.functional.cross_entropy(
            x.reshape(-1, x.shape[-1]), t.reshape(-1), ignore_index=ignore_index, reduction=reduction
        )
    else:
        per = torch.nn.functional.cross_entropy(
            x.reshape(-1, x.shape[-1]), t.reshape(-1), ignore_index=ignore_index, reduction="none"
        )
        w = torch.from_numpy(weights.reshape(-1).astype(logits.dtype))
        loss = (per * w).sum()
        if reduction == "mean":
            loss = loss / w.sum()
    loss.backward()
    return loss.item(), x.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_matches_torch_with_ignore_index(dtype, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits = (3 * rng.standard_normal((3, 5, 11))).astype(dtype)
    targets = rng.integers(0, 11, (3, 5))
    targets[0, 2:] = -100
    targets[2, 4] = -100
    loss, dlogits = cross_entropy(logits, targets, reduction=reduction)
    ref_loss, ref_grad = _torch_ce(torch, logits, targets, reduction=reduction)
    assert isinstance(loss, float) and dlogits.dtype == dtype and dlogits.shape == logits.shape
    assert loss == pytest.approx(ref_loss, rel=TOL[dtype])
    np.testing.assert_allclose(dlogits, ref_grad, atol=TOL[dtype])
    assert not dlogits[0, 2:].any()  # ignored rows get no gradient


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mask_dtype", [bool, np.float32, np.int64])
def test_cross_entropy_mask_matches_weighted_torch(dtype, mask_dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((4, 6, 7)).astype(dtype)
    targets = rng.integers(0, 7, (4, 6))
    lengths = np.array([6, 3, 1, 4])
    mask = np.arange(6)[None, :] < lengths[:, None]  # (B, T) padding mask
    targets[~mask] = 999  # padding may hold anything, even out-of-range ids
    loss, dlogits = cross_entropy(logits, targets, mask=mask.astype(mask_dtype))
    safe_targets = np.where(mask, targets, 0)
    ref_loss, ref_grad = _torch_ce(torch, logits, safe_targets, weights=mask)
    assert loss == pytest.approx(ref_loss, rel=TOL[dtype])
    np.testing.assert_allclose(dlogits, ref_grad, atol=TOL[dtype])


def test_cross_entropy_mask_and_ignore_index_combine():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((2, 3, 4))
    targets = np.array([[1, -1, 2], [0, 3, 3]])
    mask = np.array([[1, 1, 0], [1, 1, 1]])
    loss, d = cross_entropy(logits, targets, ignore_index=-1, mask=mask)
    logp = log_softmax(logits)
    counted = [(0, 0), (1, 0), (1, 1), (1, 2)]
    expected = -np.mean([logp[b, t, targets[b, t]] for b, t in counted])
    assert loss == pytest.approx(expected, rel=1e-12)
    assert not d[0, 1:].any()


def test_cross_entropy_nothing_counted_gives_zero():
    logits = np.ones((2, 3, 4), dtype=np.float32)
    loss, d = cross_entropy(logits, np.full((2, 3), -100))
    assert loss == 0.0 and d.shape == logits.shape and not d.any()
    loss, d = cross_entropy(logits, np.zeros((2, 3), dtype=int), mask=np.zeros((2, 3), bool))
    assert loss == 0.0 and not d.any()


@pytest.mark.parametrize("pad", [-np.inf, np.nan, np.inf])
def test_excluded_positions_may_hold_anything(pad):
    # padding rows never count, whatever they hold: PyTorch's ignore_index drops them too
    logits = np.array([[2.0, 0.0, -1.0], [pad, pad, pad], [0.5, 1.0, 0.0]])
    kept, d_kept = cross_entropy(logits[[0, 2]], np.array([0, 1]))
    for kwargs in (dict(targets=np.array([0, -100, 1])), dict(targets=np.array([0, 2, 1]), mask=np.array([1, 0, 1]))):
        with np.errstate(all="raise"):
            loss, d = cross_entropy(logits, **kwargs)
        assert loss == kept
        np.testing.assert_array_equal(d[[0, 2]], d_kept)
        assert not d[1].any()
    with np.errstate(all="raise"):
        loss, d = mse_loss(np.array([1.0, pad, 3.0]), np.zeros(3), mask=np.array([1, 0, 1]))
    assert (loss, d.tolist()) == (5.0, [1.0, 0.0, 3.0])


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4]], dtype=np.float32)
    loss, d = cross_entropy(logits, np.array([1]))
    assert loss == pytest.approx(1e4, rel=1e-6)
    assert np.isfinite(d).all()
    np.testing.assert_allclose(d, [[1.0, -1.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_gradcheck(reduction):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((3, 4, 5))
    targets = rng.integers(0, 5, (3, 4))
    targets[1, 1] = -100
    mask = rng.random((3, 4)) > 0.3
    _, d = cross_entropy(logits, targets, mask=mask, reduction=reduction)
    numeric = numerical_gradient(lambda: cross_entropy(logits, targets, mask=mask, reduction=reduction)[0], logits)
    assert relative_error(d, numeric) < 1e-8


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"targets": np.array([0, 5])}, ValueError, r"targets: expected values in \[0, 4\].*got 5"),
        ({"targets": np.array([0, -3])}, ValueError, r"targets: expected values in \[0, 4\].*got -3"),
        ({"targets": np.array([0, 1, 2])}, ValueError, r"targets: expected shape \(2,\).*got \(3,\)"),
        ({"targets": np.array([0.0, 1.0])}, TypeError, "targets: expected an integer array"),
        ({"logits": np.zeros((2, 5), dtype=int)}, TypeError, "logits: expected a float32 or float64"),
        ({"mask": np.array([1, 2])}, ValueError, "mask: expected only 0 and 1, got 2"),
        ({"mask": np.array([1, 1, 1])}, ValueError, r"mask: expected shape \(2,\), got \(3,\)"),
        ({"reduction": "none"}, ValueError, r"reduction: expected one of \['mean', 'sum'\], got 'none'"),
    ],
)
def test_cross_entropy_validation(kwargs, exc, match):
    args = {"logits": np.zeros((2, 5)), "targets": np.array([0, 4])}
    args.update(kwargs)
    logits, targets = args.pop("logits"), args.pop("targets")
    with pytest.raises(exc, match=match):
        cross_entropy(logits, targets, **args)


def test_softmax_and_log_softmax():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(4).standard_normal((3, 4, 5)) * 50
    for axis in (-1, 0, 1):
        np.testing.assert_allclose(softmax(x, axis), torch.softmax(torch.from_numpy(x), axis).numpy(), atol=1e-12)
        np.testing.assert_allclose(
            log_softmax(x, axis), torch.log_softmax(torch.from_numpy(x), axis).numpy(), atol=1e-10
        )
    assert softmax(np.array([1e4, 1e4], dtype=np.float32)).tolist() == [0.5, 0.5]


# -- mse ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_matches_torch(dtype, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    pred = rng.standard_normal((3, 4, 2)).astype(dtype)
    target = rng.standard_normal((3, 4, 2)).astype(dtype)
    loss, d = mse_loss(pred, target, reduction=reduction)
    p = torch.from_numpy(pred.copy()).requires_grad_(True)
    ref = torch.nn.functional.mse_loss(p, torch.from_numpy(target), reduction=reduction)
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=TOL[dtype])
    assert d.dtype == dtype
    np.testing.assert_allclose(d, p.grad.numpy(), atol=TOL[dtype])


@pytest.mark.parametrize("per_position", [True, False])
def test_mse_mask_means_over_counted_elements(per_position):
    rng = np.random.default_rng(6)
    pred = rng.standard_normal((3, 4, 2))
    target = rng.standard_normal((3, 4, 2))
    mask = rng.random((3, 4) if per_position else (3, 4, 2)) > 0.4
    full = np.broadcast_to(mask[..., None], pred.shape) if per_position else mask
    loss, d = mse_loss(pred, target, mask=mask)
    assert loss == pytest.approx(np.mean((pred - target)[full] ** 2), rel=1e-12)
    assert not d[~full].any()
    numeric = numerical_gradient(lambda: mse_loss(pred, target, mask=mask)[0], pred)
    assert relative_error(d, numeric) < 1e-8


def test_mse_validation():
    with pytest.raises(ValueError, match=r"target: expected shape \(2, 3\).*got \(3, 2\)"):
        mse_loss(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"mask: expected shape \(2, 3\) or \(2,\), got \(3,\)"):
        mse_loss(np.zeros((2, 3)), np.zeros((2, 3)), mask=np.ones(3))
    assert mse_loss(np.ones(3), np.zeros(3), mask=np.zeros(3)) == (0.0, pytest.approx(np.zeros(3)))
