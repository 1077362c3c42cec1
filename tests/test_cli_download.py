"""`rnnlab train --data URL`: downloaded once from a local server into the cache, then trained on."""

import http.server
import threading
from functools import partial

from rnnlab.cli.main import main

TINY = [
    "--engine",
    "numpy",
    "--hidden-size",
    "16",
    "--embedding-dim",
    "8",
    "--batch-size",
    "4",
    "--seq-len",
    "8",
    "--max-steps",
    "4",
    "--eval-every",
    "4",
    "--quiet",
]


def test_train_from_url_downloads_once_into_the_cache(tmp_path, monkeypatch):
    served = tmp_path / "www"
    served.mkdir()
    (served / "corpus.txt").write_text("to be or not to be, that is the question.\n" * 40, encoding="utf-8")
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    url = f"http://127.0.0.1:{server.server_address[1]}/corpus.txt"
    try:
        assert main(["train", "--data", url, "--out", str(tmp_path / "run1"), *TINY]) == 0
        assert main(["train", "--data", url, "--out", str(tmp_path / "run2"), *TINY]) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert requests == ["/corpus.txt"]  # the second run used the cache
    assert (tmp_path / "run2" / "model.safetensors").is_file()
    assert any(p.is_file() for p in (tmp_path / "cache").rglob("*"))  # kept in the cache


def test_unreachable_url_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    with socket_closed_port() as port:
        rc = main(["train", "--data", f"http://127.0.0.1:{port}/x.txt", "--out", str(tmp_path / "run"), *TINY])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: data: could not download") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


class socket_closed_port:
    """A port on 127.0.0.1 with nothing listening (bound, then closed)."""

    def __enter__(self) -> int:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def __exit__(self, *exc: object) -> None:
        return None
