"""Tests for rnnlab.data.download, against a local HTTP server on 127.0.0.1 (never the real network)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import shutil
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from rnnlab.data import download
from rnnlab.data.corpus import sha256_file
from rnnlab.data.download import DATASETS, cache_path, default_cache_dir, fetch, is_url, resolve_data
from rnnlab.data.text import DataError

ZIPPED = "Καλημέρα, compressed on the wire\n".encode() * 200
SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test reaches beyond this machine, uses a proxy, or writes to the real cache."""
    real = socket.create_connection

    def local_only(address, *args, **kwargs):
        host = address[0]
        if host not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"a test tried to reach {host}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", local_only)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www, counting the requests it gets."""
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            if self.path == "/truncated":  # promises 1000 bytes, sends 10, hangs up
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"0123456789")
                return
            if self.path == "/login.txt":  # a sign-in page served with 200 where the file should be
                self._send(b"<!doctype html><title>Sign in</title>", "text/html; charset=utf-8")
                return
            if self.path == "/zipped.txt":  # a text file sent gzip-compressed
                self._send(gzip.compress(ZIPPED), "text/plain", {"Content-Encoding": "gzip"})
                return
            if self.path == "/loop.txt":  # redirects to itself
                self.send_response(302)
                self.send_header("Location", "/loop.txt")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

        def _send(self, body: bytes, content_type: str, headers: dict | None = None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_address[1]}", root=root, requests=requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def serve(server, name: str, data: bytes) -> str:
    (server.root / name).write_bytes(data)
    return f"{server.url}/{name}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# fetch


def test_first_download_then_cached(server, tmp_path):
    data = "Καλημέρα 🙂\n".encode() * 1000
    url = serve(server, "input.txt", data)
    path = fetch(url)
    assert path.read_bytes() == data and path.parent == tmp_path / "cache"
    assert server.requests == ["/input.txt"]
    assert fetch(url) == path and fetch(url, sha256=hashlib.sha256(data).hexdigest()) == path
    assert server.requests == ["/input.txt"]  # no second request
    # no temporary files left; the checksum of the download beside it, to notice later damage
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".sha256"]
    assert (path.parent / (path.name + ".sha256")).read_text(encoding="ascii") == hashlib.sha256(
        data
    ).hexdigest() + "\n"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600: a cache may be shared


def test_a_cached_copy_damaged_later_is_downloaded_again(server, tmp_path):
    data = b"the original text\n" * 50
    url = serve(server, "orig.txt", data)
    path = fetch(url)
    path.write_bytes(data.replace(b"original", b"0riginal"))
    assert fetch(url).read_bytes() == data and server.requests == ["/orig.txt", "/orig.txt"]


def test_a_web_page_where_the_file_should_be_is_refused_and_not_cached(server):
    url = f"{server.url}/login.txt"
    for _ in range(2):  # refused each time: nothing was cached
        with pytest.raises(
            DataError, match=r"^data: .*/login\.txt sent a web page \(Content-Type text/html\), not a data file"
        ):
            fetch(url)
    assert server.requests == ["/login.txt", "/login.txt"]


def test_gzip_content_encoding_is_decoded(server):
    path = fetch(f"{server.url}/zipped.txt")
    assert path.read_bytes() == ZIPPED


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://[::1", r"^data: http://\[::1 is not a valid URL: "),
        ("LOOP", r"^data: could not download .*/loop\.txt: HTTP 302 [^\n]*$"),
    ],
)
def test_bad_urls_are_one_line(server, url, match):
    url = f"{server.url}/loop.txt" if url == "LOOP" else url
    with pytest.raises(DataError, match=match):
        fetch(url)


def test_an_empty_data_value_is_named():
    with pytest.raises(DataError, match=r"^data: expected a file, a URL or a data set's name, got an empty value$"):
        resolve_data("")


def test_cache_dir_argument_and_checksum(server, tmp_path):
    data = b"abc" * 100
    url = serve(server, "a.txt", data)
    path = fetch(url, cache_dir=tmp_path / "mine", sha256=hashlib.sha256(data).hexdigest().upper())
    assert path.parent == tmp_path / "mine" and path.read_bytes() == data


def test_checksum_mismatch_deletes_the_download(server, tmp_path):
    url = serve(server, "a.txt", b"tampered")
    wrong = "0" * 64
    with pytest.raises(
        DataError,
        match=rf"data: the file downloaded from {url} has sha256 [0-9a-f]{{64}}, expected {wrong}; it was deleted",
    ):
        fetch(url, sha256=wrong)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"ok text " * 20000 + b"\xff\xfe bad", r"is not UTF-8 text \(invalid byte near byte 160,000\)"),
        (b"PK\x03\x04\x00\x00 zip", r"is not a text file \(a NUL byte at byte 4\)"),
        ("ends inside a character: Κ".encode()[:-1], r"is not UTF-8 text \(invalid byte near byte 26\)"),
    ],
)
def test_a_download_that_is_not_utf8_text_is_not_cached(server, tmp_path, data, match):
    url = serve(server, "bad.txt", data)
    with pytest.raises(DataError, match=rf"^data: {url} {match}; nothing was cached$"):
        fetch(url)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_an_empty_download_is_not_cached(server, tmp_path):
    url = serve(server, "later.txt", b"")
    with pytest.raises(DataError, match=rf"^data: {url} sent an empty file; nothing was cached$"):
        fetch(url)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    serve(server, "later.txt", b"now it has text")  # filled later: the next run downloads it
    assert fetch(url).read_bytes() == b"now it has text"


def test_corrupted_cached_copy_is_downloaded_again(server):
    data = b"the real data"
    url = serve(server, "a.txt", data)
    cached = cache_path(url)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"half a fi")
    assert fetch(url, sha256=hashlib.sha256(data).hexdigest()).read_bytes() == data
    assert server.requests == ["/a.txt"]


def test_http_404(server):
    url = f"{server.url}/missing.txt"
    with pytest.raises(
        DataError,
        match=rf"^data: could not download {url}: HTTP 404 File not found; check the URL, or download it elsewhere and pass --data FILE$",
    ):
        fetch(url)


def test_connection_refused():
    url = f"http://127.0.0.1:{closed_port()}/input.txt"
    with pytest.raises(
        DataError,
        match=rf"^data: could not download {url} \(no network\?\): Connection refused; download it elsewhere and pass --data FILE$",
    ):
        fetch(url, timeout=2)


def test_timeout():
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/slow.txt"
        with pytest.raises(DataError, match=r"\(no network\?\): .*timed out"):
            fetch(url, timeout=0.3)


def test_cut_off_download(server):
    with pytest.raises(DataError, match=r"\(no network\?\): the download was cut off after 10 of 1000 bytes"):
        fetch(f"{server.url}/truncated")
    assert not cache_path(f"{server.url}/truncated").exists()


@pytest.mark.parametrize(
    ("url", "error", "match"),
    [
        ("ftp://example.com/a.txt", DataError, "expected an http:// or https:// URL, got scheme 'ftp'"),
        ("file:///etc/passwd", DataError, "got scheme 'file'"),
    ],
)
def test_unsupported_schemes(url, error, match):
    with pytest.raises(error, match=match):
        fetch(url)


def test_bad_sha256_argument():
    with pytest.raises(ValueError, match="sha256: expected 64 hex digits"):
        fetch("http://127.0.0.1:1/a", sha256="abc")


def test_unwritable_cache(server, tmp_path):
    url = serve(server, "a.txt", b"x")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(
        DataError, match=r"cannot write the download cache .*; set RNNLAB_CACHE to a writable directory"
    ):
        fetch(url, cache_dir=blocker / "cache")


# ---------------------------------------------------------------------------------------------
# helpers and resolve_data


def test_cache_locations(monkeypatch, tmp_path):
    assert default_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("RNNLAB_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "rnnlab"
    a = cache_path("https://a.example/x/input.txt", tmp_path)
    b = cache_path("https://b.example/x/input.txt", tmp_path)
    assert a != b and a.name.endswith("-input.txt") and b.name.endswith("-input.txt")
    assert cache_path("https://a.example/", tmp_path).name.endswith("-download")
    assert cache_path("https://a.example/we ird(1).txt?q=2", tmp_path).name.endswith("-we_ird_1_.txt")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("https://x.org/a", True),
        ("http://x", True),
        ("s3://bucket/key", True),
        ("data/a.txt", False),
        ("C:\\a.txt", False),
    ],
)
def test_is_url(spec, expected):
    assert is_url(spec) is expected


def test_resolve_local_path_and_url(server, tmp_path):
    local = tmp_path / "local.txt"
    local.write_text("hi")
    assert resolve_data(local) == local and resolve_data(str(local)) == local
    url = serve(server, "b.txt", b"remote")
    assert resolve_data(url).read_bytes() == b"remote"


def test_resolve_unknown():
    with pytest.raises(
        DataError, match=r"^data: file not found: nope\.txt \(not a URL, and not a named data set: tinyshakespeare\)$"
    ):
        resolve_data("nope.txt")


def test_named_dataset_download_is_verified(server, monkeypatch):
    data = b"To be, or not to be\n"
    url = serve(server, "input.txt", data)
    fake = download.NamedDataset(url, hashlib.sha256(data).hexdigest(), "hamlet.txt", "test")
    monkeypatch.setitem(download.DATASETS, "hamlet", fake)
    path = resolve_data("hamlet")
    assert path.name == "hamlet.txt" and path.read_bytes() == data
    assert resolve_data("hamlet") == path and server.requests == ["/input.txt"]
    # a folder of that name in the current directory does not hide the data set; a file does
    monkeypatch.chdir(path.parent.parent)
    Path("hamlet").mkdir(exist_ok=True)
    assert resolve_data("hamlet") == path
    Path("hamlet").rmdir()
    Path("hamlet").write_text("my own hamlet\n", encoding="utf-8")
    assert resolve_data("hamlet") == Path("hamlet")


@pytest.mark.skipif(not SHAKESPEARE.exists(), reason="../shared/data/tinyshakespeare.txt not available")
def test_tinyshakespeare_checksum_and_cached_copy(tmp_path):
    ds = DATASETS["tinyshakespeare"]
    assert sha256_file(SHAKESPEARE) == ds.sha256
    assert ds.url == "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
    (tmp_path / "cache").mkdir()
    shutil.copy(SHAKESPEARE, tmp_path / "cache" / ds.filename)
    assert resolve_data("tinyshakespeare") == tmp_path / "cache" / "tinyshakespeare.txt"  # no network: cached
