"""Tests for rnnlab.training.checkpoint: safetensors with NumPy alone, JSON, checkpoint directories."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import struct

import numpy as np
import pytest

from rnnlab.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    load_safetensors,
    load_safetensors_with_metadata,
    read_json,
    save_checkpoint,
    save_safetensors,
    write_json_atomic,
)


def _sample_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "f64": rng.standard_normal((3, 4)),
        "f32": rng.standard_normal((2, 3, 5)).astype(np.float32),
        "f16": rng.standard_normal(7).astype(np.float16),
        "i64": np.arange(-5, 5, dtype=np.int64),
        "i32": np.arange(6, dtype=np.int32).reshape(2, 3),
        "i16": np.array([-(2**15), 0, 2**15 - 1], dtype=np.int16),
        "i8": np.array([-128, 0, 127], dtype=np.int8),
        "u8": np.array([0, 1, 255], dtype=np.uint8),
        "bool": np.array([[True, False], [False, True]]),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


def _write_raw(path, header: dict | bytes, data: bytes = b"", header_len: int | None = None) -> None:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(h) if header_len is None else header_len
    path.write_bytes(struct.pack("<Q", n) + h + data)


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k])


# ---------------------------------------------------------------------------------------------
# safetensors: our own round trip


def test_safetensors_round_trip(tmp_path):
    tensors = _sample_tensors()
    p = tmp_path / "t.safetensors"
    save_safetensors(tensors, p, metadata={"step": "12", "note": "Ελληνικά 🙂"})
    loaded, meta = load_safetensors_with_metadata(p)
    _assert_same(tensors, loaded)
    assert meta == {"step": "12", "note": "Ελληνικά 🙂"}
    assert all(arr.flags.writeable for arr in loaded.values())
    assert load_safetensors(p).keys() == loaded.keys()


def test_safetensors_layout(tmp_path):
    p = tmp_path / "t.safetensors"
    save_safetensors({"a": np.ones(3, np.float32), "b": np.arange(2, dtype=np.int64)}, p)
    raw = p.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8 : 8 + n])
    assert header["a"] == {"dtype": "F32", "shape": [3], "data_offsets": [16, 28]}
    assert header["b"] == {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}
    assert "__metadata__" not in header
    assert len(raw) == 8 + n + 28


def test_safetensors_big_endian_and_non_contiguous(tmp_path):
    p = tmp_path / "t.safetensors"
    big = np.arange(6, dtype=">f4").reshape(2, 3)
    strided = np.arange(20, dtype=np.int32).reshape(4, 5).T
    save_safetensors({"big": big, "strided": strided}, p)
    out = load_safetensors(p)
    np.testing.assert_array_equal(out["big"], big)
    assert out["big"].dtype == np.float32
    np.testing.assert_array_equal(out["strided"], strided)


@pytest.mark.parametrize(
    ("tensors", "exc", "match"),
    [
        ({"s": np.array(["a"])}, TypeError, r"tensors\['s'\]: dtype <U1 cannot be saved"),
        ({"o": np.array([object()])}, TypeError, r"tensors\['o'\]: dtype object cannot be saved"),
        ({"c": np.ones(2, np.complex64)}, TypeError, "dtype complex64 cannot be saved"),
        ({"__metadata__": np.ones(2)}, ValueError, "'__metadata__' is reserved"),
        ({3: np.ones(2)}, TypeError, "expected non-empty str names, got 3"),
    ],
)
def test_save_safetensors_bad_input(tmp_path, tensors, exc, match):
    with pytest.raises(exc, match=match):
        save_safetensors(tensors, tmp_path / "t.safetensors")
    assert os.listdir(tmp_path) == []


def test_save_safetensors_bad_metadata(tmp_path):
    with pytest.raises(TypeError, match=r"metadata: expected dict\[str, str\].*for key 'step'"):
        save_safetensors({"a": np.ones(2)}, tmp_path / "t.safetensors", metadata={"step": 3})


def test_atomic_write_leaves_no_temp_files(tmp_path):
    p = tmp_path / "t.safetensors"
    save_safetensors({"a": np.ones(2)}, p)
    save_safetensors({"a": np.zeros(3)}, p)  # overwrite
    write_json_atomic(tmp_path / "c.json", {"x": 1})
    write_json_atomic(tmp_path / "c.json", {"x": 2})
    assert sorted(os.listdir(tmp_path)) == ["c.json", "t.safetensors"]
    np.testing.assert_array_equal(load_safetensors(p)["a"], np.zeros(3))
    assert read_json(tmp_path / "c.json") == {"x": 2}


def test_failed_write_keeps_old_file_and_no_temp(tmp_path):
    p = tmp_path / "c.json"
    write_json_atomic(p, {"x": 1})
    with pytest.raises(TypeError, match=r"c.json: cannot write as JSON"):
        write_json_atomic(p, {"x": object()})
    assert read_json(p) == {"x": 1}
    assert os.listdir(tmp_path) == ["c.json"]


# ---------------------------------------------------------------------------------------------
# safetensors: interop with the reference library, both ways


def test_interop_we_write_they_read(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    tensors = _sample_tensors()
    p = tmp_path / "ours.safetensors"
    save_safetensors(tensors, p, metadata={"format": "np", "k": "v"})
    theirs = st.load_file(str(p))
    _assert_same(tensors, theirs)
    safetensors = pytest.importorskip("safetensors")
    with safetensors.safe_open(str(p), framework="numpy") as f:
        assert f.metadata() == {"format": "np", "k": "v"}


def test_interop_they_write_we_read(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    tensors = _sample_tensors()
    tensors["u16"] = np.array([0, 65535], dtype=np.uint16)
    p = tmp_path / "theirs.safetensors"
    st.save_file(tensors, str(p), metadata={"step": "7", "name": "中文"})
    loaded, meta = load_safetensors_with_metadata(p)
    _assert_same(tensors, loaded)
    assert meta == {"step": "7", "name": "中文"}


def test_interop_torch_bf16(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    values = torch.tensor([[1.0, -2.5, 3.140625], [0.0, 1e-3, -65504.0]])
    p = tmp_path / "bf16.safetensors"
    st_torch.save_file({"w": values.to(torch.bfloat16), "h": values.half()}, str(p))
    out = load_safetensors(p)
    assert out["w"].dtype == np.float32
    np.testing.assert_array_equal(out["w"], values.to(torch.bfloat16).float().numpy())
    assert out["h"].dtype == np.float16
    np.testing.assert_array_equal(out["h"], values.half().numpy())


def test_bf16_without_torch(tmp_path):
    f32 = np.array([1.0, -2.0, 0.5, np.inf], dtype=np.float32)
    bf16 = (f32.view(np.uint32) >> 16).astype("<u2")
    header = {"x": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}}
    p = tmp_path / "b.safetensors"
    _write_raw(p, header, bf16.tobytes())
    np.testing.assert_array_equal(load_safetensors(p)["x"], f32)


# ---------------------------------------------------------------------------------------------
# safetensors: strict validation

GOOD = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


@pytest.mark.parametrize(
    ("header", "data", "header_len", "match"),
    [
        (b"", b"", None, r"file too short \(0 bytes"),
        (None, b"", None, r"file too short \(5 bytes"),
        (GOOD, b"\0" * 8, 10**9, r"header length 1000000000 is absurd"),
        (GOOD, b"\0" * 8, 5000, "header length 5000 is larger than the file"),
        (b"{not json", b"", None, "header is not valid JSON"),
        (b"\xff\xfe", b"", None, "header is not valid JSON"),
        (b"[1, 2]", b"", None, r"header is not a JSON object \(got list\)"),
        (b'{"a": 1, "a": 2}', b"", None, "duplicate key 'a'"),
        ({"a": {"dtype": "O", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8, None, "unknown dtype 'O'"),
        ({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8, None, "expected an object with keys"),
        ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"", None, "shape must be"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"", None, "data_offsets must be"),
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, None, "needs 12"),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            b"\0" * 12,
            None,
            "tensor 'b': offsets are not contiguous.*overlaps",
        ),
        (
            {"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
            b"\0" * 12,
            None,
            "not contiguous.*gap of 4 bytes",
        ),
        (GOOD, b"\0" * 5, None, "truncated: the header describes 8 bytes of tensor data, the file has 5"),
        (GOOD, b"\0" * 12, None, "4 trailing bytes after the last tensor"),
        ({"__metadata__": {"a": 1}}, b"", None, "__metadata__ must be an object of string"),
    ],
)
def test_load_safetensors_rejects(tmp_path, header, data, header_len, match):
    p = tmp_path / "bad.safetensors"
    if header is None:
        p.write_bytes(b"12345")
    elif header == b"" and header_len is None:
        p.write_bytes(b"")
    else:
        _write_raw(p, header, data, header_len)
    with pytest.raises(CheckpointError, match=match) as info:
        load_safetensors(p)
    msg = str(info.value)
    assert str(p) in msg and "\n" not in msg


def test_load_safetensors_missing(tmp_path):
    with pytest.raises(CheckpointError, match=r"file not found: .*nope\.safetensors"):
        load_safetensors(tmp_path / "nope.safetensors")


def test_truncated_and_altered_safetensors(tmp_path):
    p = tmp_path / "t.safetensors"
    save_safetensors(_sample_tensors(), p)
    raw = p.read_bytes()
    for cut in (3, 20, len(raw) - 1):
        p.write_bytes(raw[:cut])
        with pytest.raises(CheckpointError, match="not a valid safetensors file"):
            load_safetensors(p)
    (n,) = struct.unpack("<Q", raw[:8])
    # flip a byte of the header's JSON structure
    flipped = bytearray(raw)
    flipped[8] = ord("[")
    p.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="header is not valid JSON"):
        load_safetensors(p)
    # a corrupted header length
    p.write_bytes(struct.pack("<Q", n + 8) + raw[8:])
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_safetensors(p)


class _Evil:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Evil(str(marker)))
    # sanity: the payload really does run code when unpickled
    pickle.loads(payload).close()
    assert marker.exists()
    marker.unlink()

    # 1. a raw pickle (what torch.save writes, in essence) named .safetensors
    p = tmp_path / "model.safetensors"
    p.write_bytes(payload)
    with pytest.raises(CheckpointError):
        load_safetensors(p)
    # 2. a well-formed header that asks for the object dtype, with a pickle as its data
    header = {"w": {"dtype": "O", "shape": [1], "data_offsets": [0, len(payload)]}}
    _write_raw(p, header, payload)
    with pytest.raises(CheckpointError, match="unknown dtype 'O'"):
        load_safetensors(p)
    # 3. the same inside a checkpoint directory, with a manifest that matches the file
    ckpt = tmp_path / "ckpt"
    save_checkpoint(ckpt, weights={"w": np.ones(2)}, configs={})
    (ckpt / "model.safetensors").write_bytes(p.read_bytes())
    manifest = json.loads((ckpt / "checkpoint.json").read_text())
    manifest["files"]["model.safetensors"] = {
        "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
        "bytes": p.stat().st_size,
    }
    (ckpt / "checkpoint.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="unknown dtype 'O'"):
        load_checkpoint(ckpt)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# JSON


def test_json_round_trip_and_numpy_scalars(tmp_path):
    p = tmp_path / "s.json"
    obj = {
        "step": np.int64(5),
        "loss": np.float32(0.5),
        "ok": np.bool_(True),
        "text": "中文 🙂",
        "inf": np.inf,
    }
    write_json_atomic(p, obj)
    back = read_json(p)
    assert back == {"step": 5, "loss": 0.5, "ok": True, "text": "中文 🙂", "inf": float("inf")}
    assert type(back["step"]) is int


def test_read_json_errors(tmp_path):
    with pytest.raises(CheckpointError, match=r"file not found: .*missing\.json"):
        read_json(tmp_path / "missing.json")
    p = tmp_path / "bad.json"
    p.write_text('{"a": 1,\n "b": }')
    with pytest.raises(CheckpointError, match=r"bad.json: not valid JSON \(line 2 column 7"):
        read_json(p)
    p.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(CheckpointError, match=r"bad\.json: not valid UTF-8"):
        read_json(p)


# ---------------------------------------------------------------------------------------------
# checkpoint directories


def _save_full(directory):
    weights = {"rnn.weight_ih_l0": np.ones((4, 3), np.float32), "head.bias": np.zeros(5, np.float32)}
    configs = {
        "model_config": {"cell": "lstm", "hidden_size": 4, "num_layers": 1},
        "train_config": {"lr": 0.002, "batch_size": 32},
        "vocab": {"type": "char", "tokens": ["<|boundary|>", "a", "é", "中"], "boundary_id": 0},
    }
    extra = {"adam.m.head.bias": np.full(5, 0.1), "adam.v.head.bias": np.full(5, 0.2)}
    state = {"step": 100, "rng": {"seed": 1, "state": [1, 2, 3]}, "data": {"epoch": 0, "position": 7}}
    save_checkpoint(directory, weights=weights, configs=configs, extra_tensors=extra, state=state)
    return weights, configs, extra, state


def test_checkpoint_round_trip(tmp_path):
    d = tmp_path / "runs" / "x" / "ckpt"  # parents created
    weights, configs, extra, state = _save_full(d)
    assert sorted(os.listdir(d)) == [
        "checkpoint.json",
        "model.safetensors",
        "model_config.json",
        "train_config.json",
        "train_state.json",
        "train_state.safetensors",
        "vocab.json",
    ]
    manifest = read_json(d / "checkpoint.json")
    assert set(manifest["files"]) == set(os.listdir(d)) - {"checkpoint.json"}
    for fname, info in manifest["files"].items():
        assert info["bytes"] == (d / fname).stat().st_size
        assert len(info["sha256"]) == 64
    ckpt = load_checkpoint(d)
    assert isinstance(ckpt, Checkpoint)
    _assert_same(ckpt.weights, weights)
    _assert_same(ckpt.extra_tensors, extra)
    assert ckpt.configs == configs
    assert ckpt.state == state
    assert ckpt.path == d


def test_checkpoint_minimal_and_overwrite(tmp_path):
    d = tmp_path / "ckpt"
    _save_full(d)
    save_checkpoint(d, weights={"w": np.arange(3.0)}, configs={"model_config": {"h": 1}})
    ckpt = load_checkpoint(d)
    assert ckpt.extra_tensors is None and ckpt.state is None
    assert set(ckpt.configs) == {"model_config"}
    np.testing.assert_array_equal(ckpt.weights["w"], np.arange(3.0))
    # stale training state from the first save is gone; no temp files anywhere
    assert not (d / "train_state.json").exists() and not (d / "train_state.safetensors").exists()
    assert not [f for f in os.listdir(d) if f.endswith(".tmp")]


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=f"not a checkpoint directory \\(no checkpoint.json\\): {tmp_path}"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        load_checkpoint(tmp_path / "missing")


@pytest.mark.parametrize("with_state", [True, False])
def test_a_save_killed_at_any_moment_leaves_one_whole_checkpoint(tmp_path, monkeypatch, with_state):
    # kill the save at its k-th file rename, for every k: the folder loads as the old checkpoint
    # or as the new one, never a mix, and the next save works
    import rnnlab.training.checkpoint as ck

    new_state = {"step": 200} if with_state else None
    real_replace = os.replace
    k = 0
    while True:
        k += 1
        d = tmp_path / f"k{k}"
        _save_full(d)
        calls = 0

        def dying_replace(src, dst, _k=k):
            nonlocal calls
            calls += 1
            if calls == _k:
                raise KeyboardInterrupt  # SIGKILL, as far as the files can tell
            real_replace(src, dst)

        monkeypatch.setattr(ck.os, "replace", dying_replace)
        try:
            ck.save_checkpoint(d, weights={"w": np.full(3, 7.0)}, configs={"c": {"v": 2}}, state=new_state)
            finished = True
        except KeyboardInterrupt:
            finished = False
        monkeypatch.setattr(ck.os, "replace", real_replace)
        ckpt = load_checkpoint(d)
        if "w" in ckpt.weights:  # the new one, whole
            assert ckpt.configs == {"c": {"v": 2}} and ckpt.state == new_state and ckpt.extra_tensors is None
        else:  # the old one, whole
            assert ckpt.state["step"] == 100 and set(ckpt.configs) == {"model_config", "train_config", "vocab"}
        ck.save_checkpoint(d, weights={"w": np.zeros(1)}, configs={})
        assert load_checkpoint(d).weights["w"].tolist() == [0.0]
        assert [p.name for p in d.iterdir() if p.name.startswith(".") or p.name.endswith(".next")] == []
        if finished:
            break
    assert k > 5  # every staged file, the commit, every swap


@pytest.mark.parametrize(
    "fname",
    ["model.safetensors", "model_config.json", "vocab.json", "train_state.safetensors", "train_state.json"],
)
def test_altered_file_detected(tmp_path, fname):
    d = tmp_path / "ckpt"
    _save_full(d)
    p = d / fname
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one flipped bit
    p.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=f"{fname}: altered: its SHA-256 does not match"):
        load_checkpoint(d)


@pytest.mark.parametrize("fname", ["model.safetensors", "train_config.json", "train_state.safetensors"])
def test_truncated_file_detected(tmp_path, fname):
    d = tmp_path / "ckpt"
    _save_full(d)
    p = d / fname
    size = p.stat().st_size
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(CheckpointError, match=f"{fname}: truncated or altered: {size - 3} bytes.*says {size}"):
        load_checkpoint(d)


def test_missing_file_detected(tmp_path):
    d = tmp_path / "ckpt"
    _save_full(d)
    (d / "vocab.json").unlink()
    with pytest.raises(CheckpointError, match=r"vocab\.json: listed in checkpoint\.json but missing"):
        load_checkpoint(d)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.update(format="other"), "not a valid checkpoint manifest"),
        (lambda m: m.update(version=99), "unsupported version 99"),
        (lambda m: m["files"].pop("model.safetensors"), "listing model.safetensors"),
        (lambda m: m["files"].update({"../x": m["files"]["vocab.json"]}), "not a plain file name"),
        (lambda m: m["files"]["vocab.json"].update(sha256="xyz"), "64-hex-digit"),
        (lambda m: m.update(configs=["nope"]), "'configs' must list"),
    ],
)
def test_bad_manifest(tmp_path, edit, match):
    d = tmp_path / "ckpt"
    _save_full(d)
    manifest = json.loads((d / "checkpoint.json").read_text())
    edit(manifest)
    (d / "checkpoint.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(d)


def test_manifest_not_json(tmp_path):
    d = tmp_path / "ckpt"
    _save_full(d)
    (d / "checkpoint.json").write_text("{")
    with pytest.raises(CheckpointError, match=r"checkpoint\.json: not valid JSON"):
        load_checkpoint(d)


@pytest.mark.parametrize(
    ("configs", "exc", "match"),
    [
        ({"model": {}}, ValueError, "got 'model'"),
        ({"checkpoint": {}}, ValueError, "got 'checkpoint'"),
        ({"../evil": {}}, ValueError, "got '../evil'"),
        ({"model_config": [1, 2]}, TypeError, r"configs\['model_config'\]: expected a dict, got list"),
    ],
)
def test_save_checkpoint_bad_configs(tmp_path, configs, exc, match):
    with pytest.raises(exc, match=match):
        save_checkpoint(tmp_path / "ckpt", weights={"w": np.ones(1)}, configs=configs)


def test_integer_weights_are_refused(tmp_path):
    # as after relabelling F32 as I32 and re-hashing the manifest: integer bits are no weights
    # (save_checkpoint refuses to write them, so the file is made by hand)
    save_checkpoint(tmp_path, weights={"w": np.ones((2, 2), np.float32)}, configs={})
    save_safetensors({"w": np.ones((2, 2), np.int32)}, tmp_path / "model.safetensors")
    manifest = json.loads((tmp_path / "checkpoint.json").read_text(encoding="utf-8"))
    data = (tmp_path / "model.safetensors").read_bytes()
    manifest["files"]["model.safetensors"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (tmp_path / "checkpoint.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"tensor 'w' has dtype int32; model weights are floating point$"):
        load_checkpoint(tmp_path)


def test_a_failed_write_names_its_file_and_leaves_nothing(tmp_path, monkeypatch):
    # a full disk or a file-size limit fails in write() with no file name; the message gets one
    import errno
    import io
    import os

    from rnnlab.data import corpus
    from rnnlab.training import checkpoint

    class Full(io.BytesIO):
        def write(self, data):
            raise OSError(errno.EFBIG, "File too large")

    real = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        real(fd, mode, *args, **kwargs).close()
        return Full() if "b" in mode else io.TextIOWrapper(Full(), encoding="utf-8")

    monkeypatch.setattr(os, "fdopen", fdopen)
    for write, path in (
        (lambda p: corpus._atomic_write_text(p, "x" * 100), tmp_path / "split.json"),
        (lambda p: checkpoint.write_text_atomic(p, "{}"), tmp_path / "train_state.json"),
    ):
        with pytest.raises(OSError, match=re.escape(f"[Errno {errno.EFBIG}] File too large: '{path}'")):
            write(path)
    assert list(tmp_path.iterdir()) == []


def test_integer_weights_are_refused_before_the_folder_is_touched(tmp_path):
    # load_checkpoint refuses integer weights, so saving them would replace a good checkpoint with one that does not load
    save_checkpoint(tmp_path / "c", weights={"w": np.ones(2, np.float32)}, configs={})
    before = {p.name: p.read_bytes() for p in (tmp_path / "c").iterdir()}
    with pytest.raises(
        TypeError, match=r"^weights\['w'\]: expected a floating-point array \(model weights\), got dtype int32$"
    ):
        save_checkpoint(tmp_path / "c", weights={"w": np.ones(2, np.int32)}, configs={})
    assert {p.name: p.read_bytes() for p in (tmp_path / "c").iterdir()} == before
    assert load_checkpoint(tmp_path / "c").weights["w"].dtype == np.float32


@pytest.mark.parametrize("edit", ["missing", "unknown"])
def test_a_run_config_that_does_not_parse_names_its_file(tmp_path, edit):
    from rnnlab.config import ModelConfig
    from rnnlab.data.text import DataError
    from rnnlab.training.lm_run import load_run

    model = ModelConfig(vocab_size=3, hidden_size=4).to_dict()
    if edit == "missing":
        del model["vocab_size"]
    else:
        model["colour"] = "red"
    save_checkpoint(
        tmp_path / "run",
        weights={"w": np.ones(2, np.float32)},
        configs={"model_config": model, "train_config": {"max_steps": 1}, "vocab": {"chars": ["a", "b", "c"]}},
    )
    with pytest.raises(DataError) as e:
        load_run(tmp_path / "run")
    assert str(e.value).startswith(f"checkpoint: {tmp_path / 'run' / 'model_config.json'} does not parse: ")
