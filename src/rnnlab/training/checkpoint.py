"""Checkpoints without pickle: safetensors weights and JSON, written atomically, verified on load.

Loading a pickle (`torch.load`, `np.load(allow_pickle=True)`) can run arbitrary code, so a
checkpoint someone sends you would be a program. Here tensors go into the safetensors format
(https://github.com/huggingface/safetensors), read and written with NumPy alone, and everything
else into JSON: loading a checkpoint only ever parses data.

The safetensors layout:

    8 bytes   N, the header length, little-endian u64
    N bytes   JSON: {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
              "__metadata__": {"key": "value"}}, padded with spaces to a multiple of 8
    the rest  the tensors' raw little-endian bytes, back to back; offsets count from here

A checkpoint is a directory:

    model.safetensors        weights
    <name>.json              one per config (model_config.json, train_config.json, vocab.json)
    train_state.safetensors  optional: optimiser moments and other arrays to resume training
    train_state.json         optional: step, RNG state, data position...
    checkpoint.json          every file above with its SHA-256 and size, written LAST

Every file is written atomically (temporary file, fsync, rename), and `checkpoint.json` goes last,
so a crash part-way leaves a directory that `load_checkpoint` refuses instead of half-loads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import struct
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..data.corpus import naming_file, set_default_mode


class CheckpointError(ValueError):
    """A checkpoint or safetensors file that is missing, malformed, truncated or altered.

    The message names the file and what is wrong, on one line.

    Example:
        >>> try:
        ...     load_checkpoint("no/such/dir")
        ... except CheckpointError as e:
        ...     print(f"error: {e}")
        error: not a checkpoint directory (no checkpoint.json): no/such/dir
    """


# ---------------------------------------------------------------------------------------------
# atomic writes


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; Windows cannot open a directory, and does not need to.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> None:
    """Write `path` through `write(f)` into a temporary file beside it, fsync, then rename over it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        set_default_mode(fd)  # a checkpoint gets the permissions any new file would, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise naming_file(e, path) from None  # a full disk or a file-size limit: say which file
    _fsync_dir(path.parent)


# ---------------------------------------------------------------------------------------------
# safetensors, with NumPy alone

# safetensors name -> little-endian NumPy dtype. BF16 has no NumPy dtype: read as uint16, widened.
_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_NAMES: dict[tuple[str, int], str] = {(dt.kind, dt.itemsize): name for name, dt in _DTYPES.items() if name != "BF16"}

_MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's limit as well


def _safetensors_dtype(name: str, arr: np.ndarray, what: str = "tensors") -> str:
    st = _NAMES.get((arr.dtype.kind, arr.dtype.itemsize))
    if st is None:
        supported = ", ".join(sorted({str(np.dtype(d).newbyteorder("=")) for d in _DTYPES.values()}))
        raise TypeError(f"{what}[{name!r}]: dtype {arr.dtype} cannot be saved; expected one of {supported}")
    return st


def save_safetensors(
    tensors: Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write arrays to a safetensors file, atomically; readable by `safetensors.numpy.load_file`.

    Args:
        tensors: name -> array (anything `np.asarray` accepts) of a supported dtype: float64,
            float32, float16, int64/32/16/8, uint64/32/16/8, bool. 0-d and empty arrays are fine.
        path: the file to write; its directory must exist.
        metadata: optional string -> string pairs stored in the header's `__metadata__`.

    Example:
        >>> w = {"w": np.ones((2, 3), np.float32)}
        >>> save_safetensors(w, "w.safetensors", {"step": "10"})    # doctest: +SKIP
        >>> load_safetensors("w.safetensors")["w"].shape            # doctest: +SKIP
        (2, 3)
    """
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors: expected a dict of arrays, got {type(tensors).__name__}")
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError(f"metadata: expected dict[str, str], got {type(metadata).__name__}")
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(
                    f"metadata: expected dict[str, str], got {type(k).__name__} -> {type(v).__name__} for key {k!r}"
                )

    arrays: dict[str, tuple[str, np.ndarray]] = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"tensors: expected non-empty str names, got {name!r}")
        if name == "__metadata__":
            raise ValueError("tensors: the name '__metadata__' is reserved by the safetensors format")
        arr = np.asarray(value)
        st = _safetensors_dtype(name, arr)
        # little-endian, C order, whatever the array was (np.ascontiguousarray would make 0-d 1-d)
        arrays[name] = (st, np.asarray(arr, dtype=_DTYPES[st], order="C"))

    # widest dtypes first keeps every tensor aligned to its itemsize, as the reference library does
    order = sorted(arrays, key=lambda n: (-arrays[n][1].dtype.itemsize, n))
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name in order:
        st, arr = arrays[name]
        header[name] = {"dtype": st, "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    header_bytes = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)

    def write(f: BinaryIO) -> None:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for name in order:
            f.write(arrays[name][1].tobytes())

    _write_atomic(path, write)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def load_safetensors_with_metadata(
    path: str | os.PathLike[str],
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file, validating it strictly; returns (tensors, metadata).

    Args:
        path: the file.

    Returns:
        tensors: name -> writable native-endian array (BF16 is widened to float32), in file order.
        metadata: the header's `__metadata__` ({} when absent).

    Raises:
        CheckpointError: the file is missing, too short, has an absurd or oversized header length,
            a header that is not a JSON object, an unknown dtype, bad shapes or offsets (gaps,
            overlaps, out of range, size not shape*itemsize), trailing bytes, or is truncated.

    Example:
        >>> tensors, meta = load_safetensors_with_metadata("model.safetensors")  # doctest: +SKIP
    """
    return _parse_safetensors(_read_bytes(path), path)


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: expected a file, got a directory") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e.strerror or e}") from None


def _parse_safetensors(raw: bytes, path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{path}: not a valid safetensors file: {what}")

    if len(raw) < 8:
        raise bad(f"file too short ({len(raw)} bytes; the header length alone takes 8)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > _MAX_HEADER:
        raise bad(f"header length {n} is absurd (limit {_MAX_HEADER} bytes)")
    if 8 + n > len(raw):
        raise bad(f"header length {n} is larger than the file ({len(raw)} bytes): truncated or not safetensors")
    try:
        header = json.loads(raw[8 : 8 + n].decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise bad(f"header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise bad(f"header is not a JSON object (got {type(header).__name__})")

    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise bad("__metadata__ must be an object of string -> string")

    data = memoryview(raw)[8 + n :]
    entries: dict[str, tuple[int, int, str, tuple[int, ...]]] = {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"tensor {name!r}: expected an object with keys dtype, shape, data_offsets")
        st, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if st not in _DTYPES:
            raise bad(f"tensor {name!r}: unknown dtype {st!r} (expected one of {', '.join(_DTYPES)})")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise bad(f"tensor {name!r}: shape must be a list of non-negative ints, got {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_int(o) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise bad(f"tensor {name!r}: data_offsets must be [begin, end] with 0 <= begin <= end, got {offsets!r}")
        expected = int(np.prod(shape, dtype=object)) * _DTYPES[st].itemsize
        if offsets[1] - offsets[0] != expected:
            raise bad(
                f"tensor {name!r}: {offsets[1] - offsets[0]} bytes in data_offsets, but dtype {st} "
                f"shape {shape} needs {expected}"
            )
        entries[name] = (offsets[0], offsets[1], st, tuple(shape))

    end = 0
    for name, (begin, stop, _, _) in sorted(entries.items(), key=lambda kv: kv[1][:2]):
        if begin != end:
            kind = "overlaps the previous tensor" if begin < end else f"leaves a gap of {begin - end} bytes"
            raise bad(f"tensor {name!r}: offsets are not contiguous: [{begin}, {stop}] {kind}")
        end = stop
    if end > len(data):
        raise bad(
            f"truncated: the header describes {end} bytes of tensor data, the file has {len(data)} "
            "(or offsets out of range)"
        )
    if end < len(data):
        raise bad(f"{len(data) - end} trailing bytes after the last tensor")

    tensors: dict[str, np.ndarray] = {}
    for name, (begin, stop, st, shape) in entries.items():
        dt = _DTYPES[st]
        arr = np.frombuffer(data[begin:stop], dtype=dt).reshape(shape)
        if st == "BF16":
            # bfloat16 is the top half of a float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        else:
            arr = arr.astype(dt.newbyteorder("="))  # a writable native-endian copy
        tensors[name] = arr
    return tensors, dict(metadata)


def load_safetensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a safetensors file (any writer's, e.g. `safetensors.torch.save_file`) as NumPy arrays.

    Args:
        path: the file.

    Returns:
        name -> writable native-endian array; BF16 tensors are widened to float32.

    Raises:
        CheckpointError: as `load_safetensors_with_metadata`.

    Example:
        >>> weights = load_safetensors("model.safetensors")   # doctest: +SKIP
        >>> weights["rnn.weight_ih_l0"].dtype                  # doctest: +SKIP
        dtype('float32')
    """
    return load_safetensors_with_metadata(path)[0]


# ---------------------------------------------------------------------------------------------
# JSON


def _json_default(obj: object) -> Any:
    # NumPy scalars turn up in training state (np.int64 steps, np.float32 losses)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as indented UTF-8 JSON, atomically. NumPy scalars are written as numbers.

    Non-finite floats are written as Python's `NaN`/`Infinity` extension (read back by `read_json`).

    Args:
        path: the file to write; its directory must exist.
        obj: JSON-serialisable data.

    Raises:
        TypeError: `obj` holds something JSON cannot represent (the message names the file).

    Example:
        >>> write_json_atomic("train_config.json", {"lr": 0.002, "steps": 1000})  # doctest: +SKIP
    """
    try:
        text = json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n"
    except (TypeError, ValueError) as e:
        raise TypeError(f"{path}: cannot write as JSON: {e}") from None
    write_text_atomic(path, text)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` as UTF-8, atomically: a reader (or a crash) sees the old file or the new one.

    Example:
        >>> write_text_atomic("report.html", "<!DOCTYPE html>...")  # doctest: +SKIP
    """
    data = text.encode("utf-8")
    _write_atomic(path, lambda f: f.write(data))


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a UTF-8 JSON file.

    Args:
        path: the file.

    Raises:
        CheckpointError: the file is missing, unreadable, not UTF-8 or not valid JSON.

    Example:
        >>> read_json("train_config.json")["lr"]   # doctest: +SKIP
        0.002
    """
    return _parse_json(_read_bytes(path), path)


def _parse_json(raw: bytes, path: str | os.PathLike[str]) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: not valid UTF-8 (byte offset {e.start})") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON (line {e.lineno} column {e.colno}: {e.msg})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: not valid JSON (nested too deeply)") from None


# ---------------------------------------------------------------------------------------------
# checkpoint directories

MANIFEST = "checkpoint.json"
WEIGHTS_FILE = "model.safetensors"
STATE_TENSORS_FILE = "train_state.safetensors"
STATE_JSON_FILE = "train_state.json"
BEST_DIR = "best"  # RUN/best/: the weights of the best evaluation so far (keep-best)
_FORMAT = "rnnlab-checkpoint"
_VERSION = 1
_RESERVED = {"model", "train_state", "checkpoint"}
_CONFIG_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def holds_checkpoint(directory: str | os.PathLike[str]) -> bool:
    """Whether a checkpoint was written in `directory` (or its best/): what makes a folder a run's.

    A save killed after its commit point counts: loading completes it.

    Example:
        >>> holds_checkpoint("runs/no-such-run")
        False
    """
    folder = Path(directory)
    return any((f / name).exists() for f in (folder, folder / BEST_DIR) for name in (MANIFEST, NEXT_MANIFEST))


def existing_run_error(directory: str | os.PathLike[str]) -> ValueError:
    """The error of the Python API for a new run in a folder that holds one (see `holds_checkpoint`)."""
    return ValueError(
        f"out_dir: {directory} already holds a run; pass resume=True to continue it, or choose another folder "
        "(the command line's --overwrite moves an earlier run aside)"
    )


def set_aside_prefix(directory: str | os.PathLike[str]) -> str:
    """The name prefix of the folders beside `directory` where `rnnlab train --overwrite` sets the
    earlier run aside while the new one trains (`.NAME.replaced-<random>`)."""
    return f".{Path(directory).resolve().name}.replaced-"


def set_aside_folders(directory: str | os.PathLike[str]) -> list[Path]:
    """The folders beside `directory` that hold an earlier run set aside by `--overwrite`, oldest name first."""
    real = Path(directory).resolve()
    return sorted(real.parent.glob(set_aside_prefix(real) + "*")) if real.name else []


def saved_task(run: str | os.PathLike[str]) -> str | None:
    """The task recorded in `run`'s train_state.json ('lm', 'classify', ...), or None where it records none.

    Reads that one small file, not the weights, and does not verify the checkpoint.

    Example:
        >>> saved_task("runs/sst2")       # doctest: +SKIP
        'classify'
    """
    try:
        state = read_json(Path(run) / STATE_JSON_FILE)
    except CheckpointError:
        return None
    task = state.get("task") if isinstance(state, dict) else None
    return task if isinstance(task, str) else None


@dataclass
class Checkpoint:
    """What `load_checkpoint` returns.

    Attributes:
        weights: name -> array, from `model.safetensors`.
        configs: config name -> dict, from `<name>.json` (e.g. configs["model_config"]).
        extra_tensors: name -> array from `train_state.safetensors`, or None if not saved.
        state: the dict from `train_state.json`, or None if not saved.
        path: the checkpoint directory.

    Example:
        >>> ckpt = load_checkpoint("runs/names/ckpt")          # doctest: +SKIP
        >>> ckpt.configs["model_config"]["hidden_size"]         # doctest: +SKIP
        128
    """

    weights: dict[str, np.ndarray]
    configs: dict[str, dict[str, Any]]
    extra_tensors: dict[str, np.ndarray] | None = None
    state: dict[str, Any] | None = None
    path: Path | None = field(default=None, compare=False)


def _file_digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def save_checkpoint(
    directory: str | os.PathLike[str],
    *,
    weights: Mapping[str, np.ndarray],
    configs: Mapping[str, Mapping[str, Any]],
    extra_tensors: Mapping[str, np.ndarray] | None = None,
    state: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory: safetensors weights, JSON configs, optional training state.

    Crash-safe at every moment: the new files are first written beside the old ones under staged
    names (`.next.<name>`), then their manifest (SHA-256 and size of every file) as
    `checkpoint.json.next`, the commit point; then the staged files replace the old ones and the
    manifest becomes `checkpoint.json`. Killed before the commit point, the directory still holds
    the earlier checkpoint; killed after it, `load_checkpoint` (or the next save) completes the
    swap. Either way the directory loads, as one checkpoint or the other, never a mix.

    Args:
        directory: created (with parents) if missing; an existing checkpoint there is replaced.
        weights: parameter name -> array, saved as `model.safetensors`.
        configs: name -> JSON-serialisable dict, each saved as `<name>.json` (e.g. "model_config",
            "train_config", "vocab"). Names: letters, digits, `_ . -`; not "model", "train_state"
            or "checkpoint".
        extra_tensors: optional arrays needed to resume (optimiser moments...), saved as
            `train_state.safetensors`.
        state: optional JSON-serialisable dict (step, RNG state, data position...), saved as
            `train_state.json`.

    Returns:
        The checkpoint directory.

    Example:
        >>> save_checkpoint("runs/names/ckpt", weights=model.state_dict(),          # doctest: +SKIP
        ...                 configs={"model_config": cfg, "vocab": vocab.to_json()},
        ...                 state={"step": 1000})
    """
    directory = Path(directory)
    if not isinstance(configs, Mapping):
        raise TypeError(f"configs: expected a dict of name -> dict, got {type(configs).__name__}")
    for name, cfg in configs.items():
        if not isinstance(name, str) or not _CONFIG_NAME.match(name) or name in _RESERVED:
            raise ValueError(
                f"configs: expected names of letters, digits, '_', '.', '-' other than "
                f"{sorted(_RESERVED)}, got {name!r}"
            )
        if not isinstance(cfg, Mapping):
            raise TypeError(f"configs[{name!r}]: expected a dict, got {type(cfg).__name__}")
    if state is not None and not isinstance(state, Mapping):
        raise TypeError(f"state: expected a dict, got {type(state).__name__}")
    # Whatever can be refused is refused before the directory is touched: with wrong arguments,
    # an earlier checkpoint there stays as it was (and loadable).
    for what, tensors in (("weights", weights), ("extra_tensors", extra_tensors)):
        if tensors is None:
            continue
        if not isinstance(tensors, Mapping):
            raise TypeError(f"{what}: expected a dict of name -> array, got {type(tensors).__name__}")
        for name, value in tensors.items():
            arr = np.asarray(value)
            _safetensors_dtype(name, arr, what)
            if what == "weights" and arr.dtype.kind != "f":  # `load_checkpoint` would refuse the checkpoint
                raise TypeError(
                    f"weights[{name!r}]: expected a floating-point array (model weights), got dtype {arr.dtype}"
                )
    for what, obj in [*((f"configs[{n!r}]", c) for n, c in configs.items()), ("state", state)]:
        try:
            json.dumps(obj, default=_json_default)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{what}: cannot be written as JSON: {e}") from None
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"directory: expected a folder for the checkpoint, got the file {directory}")

    directory.mkdir(parents=True, exist_ok=True)
    _finish_interrupted_save(directory)  # an earlier save killed half-way: settle it first

    def staged(fname: str) -> Path:
        return directory / f"{_STAGED}{fname}"

    files = [WEIGHTS_FILE]
    save_safetensors(weights, staged(WEIGHTS_FILE))
    for name, cfg in configs.items():
        write_json_atomic(staged(f"{name}.json"), dict(cfg))
        files.append(f"{name}.json")
    if extra_tensors is not None:
        save_safetensors(extra_tensors, staged(STATE_TENSORS_FILE))
        files.append(STATE_TENSORS_FILE)
    if state is not None:
        write_json_atomic(staged(STATE_JSON_FILE), dict(state))
        files.append(STATE_JSON_FILE)

    listing = {}
    for fname in files:
        digest, size = _file_digest(staged(fname))
        listing[fname] = {"sha256": digest, "bytes": size}
    manifest = {"format": _FORMAT, "version": _VERSION, "configs": list(configs), "files": listing}
    write_json_atomic(directory / NEXT_MANIFEST, manifest)  # the commit point
    _finish_interrupted_save(directory)
    return directory


_STAGED = ".next."  # prefix of a file written by a save that has not been committed yet
NEXT_MANIFEST = MANIFEST + ".next"  # the manifest of a committed save whose files are being swapped in


def _finish_interrupted_save(directory: Path) -> None:
    """Complete a save that reached its commit point (`checkpoint.json.next`), or drop the staged
    files of one that did not (the earlier checkpoint is then intact)."""
    nxt = directory / NEXT_MANIFEST
    # half-written temporary files of a killed save (`_write_atomic` names them .<name>.*.tmp)
    ours = (_STAGED, MANIFEST, WEIGHTS_FILE, STATE_JSON_FILE, STATE_TENSORS_FILE)
    for leftover in directory.glob(".*.tmp"):
        if leftover.name[1:].startswith(ours):
            leftover.unlink(missing_ok=True)
    if not nxt.is_file():
        for leftover in directory.glob(f"{_STAGED}*"):
            leftover.unlink(missing_ok=True)
        return
    files, _ = _check_manifest(read_json(nxt), nxt)
    try:
        for fname in files:
            with contextlib.suppress(FileNotFoundError):  # already moved (by this save or a reader)
                os.replace(directory / f"{_STAGED}{fname}", directory / fname)
        _fsync_dir(directory)
        # training state of the earlier save that this one has none of must not pass for its own
        for stale in (STATE_TENSORS_FILE, STATE_JSON_FILE):
            if stale not in files:
                (directory / stale).unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(nxt, directory / MANIFEST)
        _fsync_dir(directory)
    except OSError as e:
        raise CheckpointError(
            f"{directory}: a save was interrupted after its commit point and cannot be completed here "
            f"({e.strerror or e}); make the folder writable and load it again"
        ) from None


def _check_manifest(manifest: Any, path: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{path}: not a valid checkpoint manifest: {what}")

    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise bad(f'expected an object with "format": "{_FORMAT}"')
    if manifest.get("version") != _VERSION:
        raise bad(f"unsupported version {manifest.get('version')!r} (this rnnlab reads {_VERSION})")
    files = manifest.get("files")
    if not isinstance(files, dict) or WEIGHTS_FILE not in files:
        raise bad(f"expected 'files' to be an object listing {WEIGHTS_FILE}")
    for fname, info in files.items():
        # plain names only: a manifest must not make us read files outside the directory
        if "/" in fname or "\\" in fname or fname in ("", ".", ".."):
            raise bad(f"file name {fname!r} is not a plain file name")
        if (
            not isinstance(info, dict)
            or not isinstance(info.get("sha256"), str)
            or not re.fullmatch(r"[0-9a-f]{64}", info["sha256"])
            or not _is_int(info.get("bytes"))
        ):
            raise bad(f"entry for {fname!r} must have a 64-hex-digit 'sha256' and an int 'bytes'")
    configs = manifest.get("configs")
    if not isinstance(configs, list) or not all(
        isinstance(c, str) and _CONFIG_NAME.match(c) and f"{c}.json" in files for c in configs
    ):
        raise bad("'configs' must list config names whose <name>.json files are listed")
    return files, configs


def load_checkpoint(directory: str | os.PathLike[str]) -> Checkpoint:
    """Load a checkpoint directory written by `save_checkpoint`, verifying every file first.

    Args:
        directory: the checkpoint directory.

    Returns:
        A `Checkpoint` with weights, configs, extra_tensors and state.

    Raises:
        CheckpointError: no `checkpoint.json` (not a checkpoint), a listed file missing,
            truncated or altered (size or SHA-256 differs), or a file that
            does not parse.

    Example:
        >>> ckpt = load_checkpoint("runs/names/ckpt")          # doctest: +SKIP
        >>> model.load_state_dict(ckpt.weights)                # doctest: +SKIP
    """
    directory = Path(directory)
    if (directory / NEXT_MANIFEST).is_file():
        # a save killed after its commit point: complete it (as that process would have), so the
        # newest checkpoint is the one read; in a read-only folder the earlier one still loads
        with contextlib.suppress(CheckpointError):
            _finish_interrupted_save(directory)
    try:
        return _load_checkpoint(directory)
    except CheckpointError:
        if not (directory / NEXT_MANIFEST).is_file():
            raise
    # another process is committing a save right now: its files no longer match the old manifest
    _finish_interrupted_save(directory)
    return _load_checkpoint(directory)


def _load_checkpoint(directory: Path) -> Checkpoint:
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        # killed (SIGKILL) before its first checkpoint, `rnnlab train --overwrite` could not put
        # the earlier run back
        aside = set_aside_folders(directory)
        hint = (
            f"; the files of an earlier run of it, set aside by an interrupted --overwrite, are in {aside[0]}: "
            f"move them back into {directory} to use that run"
            if aside
            else ""
        )
        raise CheckpointError(f"not a checkpoint directory (no {MANIFEST}): {directory}{hint}")
    files, config_names = _check_manifest(read_json(manifest_path), manifest_path)

    # each file is read once, checked, and parsed from those same bytes
    contents: dict[str, bytes] = {}
    for fname, info in files.items():
        fpath = directory / fname
        if not fpath.is_file():
            raise CheckpointError(f"{fpath}: listed in {MANIFEST} but missing")
        raw = _read_bytes(fpath)
        if len(raw) != info["bytes"]:
            raise CheckpointError(f"{fpath}: truncated or altered: {len(raw)} bytes, {MANIFEST} says {info['bytes']}")
        if hashlib.sha256(raw).hexdigest() != info["sha256"]:
            raise CheckpointError(f"{fpath}: altered: its SHA-256 does not match {MANIFEST}")
        contents[fname] = raw

    def json_object(fname: str) -> dict[str, Any]:
        obj = _parse_json(contents[fname], directory / fname)
        if not isinstance(obj, dict):
            raise CheckpointError(f"{directory / fname}: expected a JSON object, got {type(obj).__name__}")
        return obj

    weights, _ = _parse_safetensors(contents[WEIGHTS_FILE], directory / WEIGHTS_FILE)
    for name, value in weights.items():
        if value.dtype.kind != "f":  # integer bits read as weights would give garbage, not an error
            raise CheckpointError(
                f"{directory / WEIGHTS_FILE}: tensor {name!r} has dtype {value.dtype}; model weights are floating point"
            )
    configs = {name: json_object(f"{name}.json") for name in config_names}
    extra = None
    if STATE_TENSORS_FILE in files:
        extra, _ = _parse_safetensors(contents[STATE_TENSORS_FILE], directory / STATE_TENSORS_FILE)
    state = json_object(STATE_JSON_FILE) if STATE_JSON_FILE in files else None
    return Checkpoint(weights=weights, configs=configs, extra_tensors=extra, state=state, path=directory)
