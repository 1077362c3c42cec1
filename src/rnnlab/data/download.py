"""Data from the web: `--data` may be a local file, a URL, or the name of a known data set.

`fetch` downloads a URL once into a cache directory (`~/.cache/rnnlab`, or `$RNNLAB_CACHE`) and
returns the cached file on later calls without touching the network. A download goes to a
temporary file that is renamed into place only when complete and, when the checksum is known,
verified, so an interrupted or corrupted download is never mistaken for the data. Without a
network the error is one line that says what to do instead.

Example:
    >>> path = resolve_data("tinyshakespeare")           # doctest: +SKIP
    >>> path.name                                         # doctest: +SKIP
    'tinyshakespeare.txt'
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import http.client
import os
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from .corpus import set_default_mode, sha256_file
from .text import DataError

DEFAULT_TIMEOUT = 15.0
"""Seconds to wait for the server to answer (and between two received blocks)."""

CACHE_ENV = "RNNLAB_CACHE"


@dataclass(frozen=True)
class NamedDataset:
    """A data set known by name: where it is and what it must hash to."""

    url: str
    sha256: str
    filename: str
    description: str


DATASETS: dict[str, NamedDataset] = {
    "tinyshakespeare": NamedDataset(
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        filename="tinyshakespeare.txt",
        description="Tiny Shakespeare (char-rnn): 1,115,394 characters of Shakespeare's plays",
    ),
}
"""The named data sets `resolve_data` knows."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def default_cache_dir() -> Path:
    """`$RNNLAB_CACHE` if set, else `~/.cache/rnnlab`.

    Example:
        >>> default_cache_dir()                      # doctest: +SKIP
        PosixPath('/home/me/.cache/rnnlab')
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "rnnlab"


def is_url(spec: str) -> bool:
    """Whether `spec` looks like a URL (`scheme://...`) rather than a file path.

    Example:
        >>> is_url("https://example.com/a.txt"), is_url("data/a.txt")
        (True, False)
    """
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", spec) is not None


def cache_path(url: str, cache_dir: str | os.PathLike[str] | None = None, filename: str | None = None) -> Path:
    """Where `fetch` keeps the download of `url`: `<cache>/<filename>`, or `<cache>/<hash>-<basename>`.

    The short hash of the URL keeps two URLs with the same file name apart.

    Example:
        >>> cache_path("https://example.com/data/input.txt", "/tmp/c").name
        '8eff066103b5201d-input.txt'
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if filename is not None:
        return root / filename
    base = Path(urllib.parse.urlsplit(url).path).name or "download"
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base)[:80]
    return root / f"{hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]}-{base}"


def _one_line(reason: object) -> str:
    """A server's or urllib's reason on one line (urllib's redirect-loop message spans three)."""
    return " ".join(str(reason).split())


def _no_network(url: str, reason: object) -> DataError:
    reason = _one_line(reason)
    return DataError(
        f"data: could not download {url} (no network?): {reason}; download it elsewhere and pass --data FILE"
    )


def _checksum_file(dest: Path) -> Path:
    """Where `fetch` records the sha256 of a download it cached: `<file>.sha256`, beside it."""
    return dest.with_name(dest.name + ".sha256")


def _progress(url: str, total: str | None):
    """A progress bar on stderr for a download, where stderr is a terminal and tqdm is installed."""
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    size = int(total) if total is not None and total.isdigit() else None
    name = Path(urllib.parse.urlsplit(url).path).name or url
    return tqdm(total=size, unit="B", unit_scale=True, desc=f"downloading {name}", leave=False, file=sys.stderr)


def _check_text(
    url: str, decoder: codecs.IncrementalDecoder, block: bytes, offset: int, *, final: bool = False
) -> None:
    """Raise `DataError` if `block` (at byte `offset` of the download) is not UTF-8 text."""
    nul = block.find(b"\x00")
    if nul >= 0:
        raise DataError(f"data: {url} is not a text file (a NUL byte at byte {offset + nul:,}); nothing was cached")
    try:
        decoder.decode(block, final=final)
    except UnicodeDecodeError as e:
        raise DataError(
            f"data: {url} is not UTF-8 text (invalid byte near byte {offset + e.start:,}); nothing was cached"
        ) from None


def fetch(
    url: str,
    cache_dir: str | os.PathLike[str] | None = None,
    sha256: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    filename: str | None = None,
) -> Path:
    """The local copy of `url`, downloaded into the cache the first time only.

    Args:
        url: an http:// or https:// URL.
        cache_dir: the cache directory; default `default_cache_dir()`.
        sha256: the expected hex checksum, if known: a download that does not match is deleted
            and reported; a cached copy that does not match (corrupted) is downloaded again.
        timeout: seconds to wait for the server (connection, and each read).
        filename: the name of the cached file; default from the URL (`cache_path`).

    Returns:
        The path of the cached file.

    Raises:
        DataError: an unsupported scheme; no network, refused connection or timeout (one line:
            "could not download URL (no network?): ..."); an HTTP error such as 404; a checksum
            mismatch; a cache directory that cannot be written.

    Example:
        >>> fetch("https://example.com/input.txt")                 # doctest: +SKIP
        PosixPath('/home/me/.cache/rnnlab/1f6c...-input.txt')
    """
    try:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
    except ValueError as e:  # "http://[::1": an unclosed IPv6 bracket, ...
        raise DataError(f"data: {url} is not a valid URL: {e}") from None
    if scheme not in ("http", "https"):
        raise DataError(f"data: cannot download {url}: expected an http:// or https:// URL, got scheme {scheme!r}")
    if sha256 is not None:
        sha256 = sha256.lower()
        if not _SHA256.match(sha256):
            raise ValueError(f"sha256: expected 64 hex digits, got {sha256!r}")
    dest = cache_path(url, cache_dir, filename)
    if dest.is_file():
        recorded = sha256
        if recorded is None:  # the checksum this cache recorded when it downloaded the file
            with contextlib.suppress(OSError, UnicodeDecodeError):
                recorded = _checksum_file(dest).read_text(encoding="ascii").strip() or None
        if recorded is None or sha256_file(dest) == recorded:
            return dest
        try:  # a corrupted or outdated cached copy: fetch it again
            dest.unlink()
        except OSError as e:
            raise DataError(
                f"data: the cached copy {dest} of {url} is damaged and cannot be replaced: {e.strerror or e}; "
                f"delete it, or set {CACHE_ENV} to a writable directory"
            ) from None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as e:
        raise DataError(
            f"data: cannot write the download cache {dest.parent}: {e.strerror or e}; set {CACHE_ENV} to a writable directory"
        ) from None
    tmp = Path(tmp_name)
    set_default_mode(fd)
    bar = None
    try:
        h = hashlib.sha256()
        received = 0  # bytes of the file
        sent = 0  # bytes on the wire (compressed, with Content-Encoding: gzip)
        # every data set rnnlab reads is UTF-8 text: anything else is refused here, naming the URL,
        # rather than cached and then refused on every read under its cache name
        utf8 = codecs.getincrementaldecoder("utf-8")()
        request = urllib.request.Request(url, headers={"User-Agent": "rnnlab"})
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    expected = response.headers.get("Content-Length")
                    if response.headers.get_content_type() == "text/html" and not re.search(
                        r"\.html?$", urllib.parse.urlsplit(url).path, re.IGNORECASE
                    ):
                        raise DataError(
                            f"data: {url} sent a web page (Content-Type text/html), not a data file: an error or "
                            "sign-in page? Check the URL (for a file on GitHub, its raw address); nothing was cached"
                        )
                    encoding = (response.headers.get("Content-Encoding") or "").strip().lower()
                    if encoding not in ("", "identity", "gzip", "x-gzip"):
                        raise DataError(f"data: {url} sent Content-Encoding {encoding!r}, which rnnlab cannot read")
                    gunzip = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding in ("gzip", "x-gzip") else None
                    bar = _progress(url, expected)

                    def take(block: bytes) -> None:  # a block of the file: checked, hashed, written
                        nonlocal received
                        _check_text(url, utf8, block, received)
                        h.update(block)
                        try:
                            out.write(block)
                        except OSError as e:  # the disk, not the network
                            raise DataError(
                                f"data: could not write the download of {url} into {dest.parent}: "
                                f"{e.strerror or e}; free some space, or set {CACHE_ENV} to another directory"
                            ) from None
                        received += len(block)

                    while raw := response.read(1 << 16):
                        sent += len(raw)
                        if bar is not None:
                            bar.update(len(raw))
                        take(gunzip.decompress(raw) if gunzip is not None else raw)
                    if gunzip is not None:
                        rest = gunzip.flush()
                        if not gunzip.eof:
                            raise _no_network(url, "the compressed download was cut off")
                        take(rest)
            except zlib.error as e:
                raise DataError(f"data: {url} sent a damaged gzip body ({e}); nothing was cached") from None
            except urllib.error.HTTPError as e:
                raise DataError(
                    f"data: could not download {url}: HTTP {e.code} {_one_line(e.reason)}; check the URL, "
                    f"or download it elsewhere and pass --data FILE"
                ) from None
            except urllib.error.URLError as e:
                reason = e.reason
                raise _no_network(url, getattr(reason, "strerror", None) or reason) from None
            except TimeoutError:
                raise _no_network(url, f"timed out after {timeout:g} s") from None
            except (OSError, http.client.HTTPException) as e:  # a connection reset, a cut-off response, ...
                raise _no_network(url, getattr(e, "strerror", None) or e) from None
        if expected is not None and expected.isdigit() and int(expected) != sent:
            raise _no_network(url, f"the download was cut off after {sent} of {expected} bytes")
        _check_text(url, utf8, b"", received, final=True)
        if received == 0:  # cached, it would be refused as an empty file on every later run
            raise DataError(f"data: {url} sent an empty file; nothing was cached")
        got = h.hexdigest()
        if sha256 is not None and got != sha256:
            raise DataError(
                f"data: the file downloaded from {url} has sha256 {got}, expected {sha256}; it was deleted "
                f"(the download was corrupted or the file on the server changed)"
            )
        os.replace(tmp, dest)
        with contextlib.suppress(OSError):  # so that a cached copy damaged later is noticed
            _checksum_file(dest).write_text(got + "\n", encoding="ascii")
    finally:
        if bar is not None:
            bar.close()
        tmp.unlink(missing_ok=True)
    return dest


def resolve_data(
    spec: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """The local file for a `--data` value: a path as it is, a URL downloaded, a name looked up.

    Args:
        spec: a file path, an http(s) URL, or a name from `DATASETS` (e.g. "tinyshakespeare").
            An existing file wins over a data set of the same name (a folder does not).
        cache_dir, timeout: as for `fetch`.

    Returns:
        The path of a local file.

    Raises:
        DataError: a path that does not exist (and is no URL or known name), or as `fetch`.

    Example:
        >>> resolve_data("tinyshakespeare").name         # doctest: +SKIP
        'tinyshakespeare.txt'
    """
    text = os.fspath(spec)
    if not text.strip():
        raise DataError("data: expected a file, a URL or a data set's name, got an empty value")
    if is_url(text):
        return fetch(text, cache_dir, timeout=timeout)
    path = Path(text).expanduser()
    if path.is_file() or (path.exists() and text not in DATASETS):  # a folder does not hide a data set's name
        return path
    if text in DATASETS:
        ds = DATASETS[text]
        return fetch(ds.url, cache_dir, ds.sha256, timeout=timeout, filename=ds.filename)
    names = ", ".join(sorted(DATASETS))
    raise DataError(f"data: file not found: {text} (not a URL, and not a named data set: {names})")
