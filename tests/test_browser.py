"""The neuron page and the experiment report in a real headless Chromium.

The browser is driven over WebDriver (W3C: JSON over HTTP on localhost) with a small client written
on urllib, so no Python dependency is added; Debian's `chromium` and `chromium-driver` provide the
browser and the driver (`.ci/install-chromium` installs them). Skipped when either is missing.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from rnnlab.experiments.common import train_char_model
from rnnlab.experiments.report import ExperimentResult, run_one, write_report
from rnnlab.experiments.visualize import write_neuron_page

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromedriver not installed: apt-get install chromium chromium-driver (or .ci/install-chromium)",
)

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference

# The network is closed here and in CI: without the background-networking flags Chromium keeps
# trying to reach Google's update and sync services.
CHROME_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--window-size=1400,1000",
]

TEXT = (
    'First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak. "Who is it?" he said '
    "(quietly).\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved. "
    '[Exit] "We know <it> & that," they cried {softly}.\n\n'
) * 6


class WebDriver:
    """The few WebDriver commands the tests need, over plain HTTP."""

    def __init__(self, driver: str, browser: str, profile: Path, log_path: Path) -> None:
        with socket.socket() as s:  # a free port for chromedriver
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self._log = open(log_path, "wb")  # closed in quit()
        self.proc = subprocess.Popen(
            [driver, f"--port={port}"], stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if self._call("GET", "/status").get("ready"):
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                raise RuntimeError(f"chromedriver did not start; see {log_path}")
            time.sleep(0.1)
        caps = {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": browser, "args": [*CHROME_ARGS, f"--user-data-dir={profile}"]},
            "goog:loggingPrefs": {"browser": "ALL"},
        }
        try:
            self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]
        except Exception:
            self.proc.kill()
            self.proc.wait()
            self._log.close()
            raise

    def _call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:  # WebDriver errors come as JSON bodies; say what failed
            raise RuntimeError(f"WebDriver {method} {path}: {e.code} {e.read()[:500]!r}") from None

    def cmd(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    def js(self, script: str, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css: str) -> str:
        return self.cmd("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def click(self, element: str) -> None:
        self.cmd("POST", f"/element/{element}/click", {})

    def hover(self, element: str) -> None:
        move = {"type": "pointerMove", "duration": 0, "origin": {ELEMENT: element}, "x": 0, "y": 0}
        pointer = {"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": [move]}
        self.cmd("POST", "/actions", {"actions": [pointer]})

    def screenshot(self, path: Path) -> bytes:
        png = base64.b64decode(self.cmd("GET", "/screenshot"))
        path.write_bytes(png)
        return png

    def browser_log(self) -> list[dict]:
        """Console messages since the last call (chromedriver's log endpoint, new or legacy path)."""
        for path in ("/se/log", "/log"):
            try:
                return self.cmd("POST", path, {"type": "browser"}) or []
            except RuntimeError:
                continue
        raise RuntimeError("chromedriver offers no browser log endpoint")

    def wait_for(self, script: str, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(script)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.05)

    def quit(self) -> None:
        try:
            self.cmd("DELETE", "")
        except (RuntimeError, OSError):
            pass
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self._log.close()


def assert_png(data: bytes, min_width: int = 100) -> None:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert width >= min_width and height >= 100, (width, height)


def errors(log: list[dict]) -> list[str]:
    return [e.get("message", "") for e in log if e.get("level") == "SEVERE"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chromium")
    wd = WebDriver(CHROMEDRIVER, CHROMIUM, tmp / "profile", tmp / "chromedriver.log")
    yield wd
    wd.quit()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_neuron_page_in_chromium(browser: WebDriver, corpus: Path, tmp_path: Path):
    train_char_model(corpus, tmp_path, hidden_size=16, seconds=None, max_steps=5, batch_size=4, seq_len=16, seed=0)
    page = write_neuron_page(tmp_path / "model", corpus, tmp_path / "neurons.html", max_chars=400)
    browser.get(page.resolve().as_uri())
    assert browser.wait_for("return document.body.dataset.ready === '1'"), "the page script did not finish"
    assert errors(browser.browser_log()) == []

    n = browser.js("return document.querySelectorAll('#text .ch').length")
    assert n == 400
    assert browser.js("return JSON.parse(document.getElementById('neuron-data').textContent).length") == 400

    colours = "return Array.from(document.querySelectorAll('#text .ch')).map(s => s.style.backgroundColor)"
    before = browser.js(colours)
    assert all(c.startswith("rgb(") for c in before)
    browser.click(browser.find('#unit-select option[value="3"]'))
    after = browser.js(colours)
    assert browser.js("return document.getElementById('unit-select').value") == "3"
    assert after != before, "switching units did not recolour the text"
    browser.click(browser.find("#next-unit"))
    assert browser.js("return document.getElementById('unit-select').value") == "4"
    browser.click(browser.find("#series-select option[value='c']"))  # the LSTM's cell state
    assert browser.js(colours) != after

    # a correlated unit in the side list selects that unit
    link = browser.find("a.corr-unit[data-series='c']")
    want = browser.js("return arguments[0].dataset.unit", {ELEMENT: link})
    browser.click(link)
    assert browser.js("return document.getElementById('unit-select').value") == want

    browser.hover(browser.find('#text .ch[data-i="37"]'))
    assert browser.wait_for("return !document.getElementById('tooltip').hidden"), "no tooltip on hover"
    probs = browser.js("return Array.from(document.querySelectorAll('#tooltip .guess .prob')).map(e => e.textContent)")
    chars = browser.js(
        "return Array.from(document.querySelectorAll('#tooltip .guess .g-char')).map(e => e.textContent)"
    )
    assert len(probs) == 5 and len(set(chars)) == 5
    p = [float(x) for x in probs]
    assert all(0 <= x <= 1 for x in p) and p == sorted(p, reverse=True) and sum(p) <= 1.001

    assert_png(browser.screenshot(tmp_path / "neurons.png"), min_width=800)
    assert errors(browser.browser_log()) == []


def test_report_page_in_chromium(browser: WebDriver, corpus: Path, tmp_path: Path):
    ok = run_one("temperature", tmp_path / "temperature", seed=0, quick=True, data=str(corpus))
    assert ok.ok, ok.error
    broken = ExperimentResult(
        "broken", "An experiment that failed", tmp_path / "broken", 0.5, error="ValueError: boom <b>"
    )
    page = write_report(tmp_path, [ok, broken], settings={"seed": 0, "quick": True})
    browser.get(page.resolve().as_uri())
    assert browser.wait_for("return document.readyState === 'complete'")
    assert errors(browser.browser_log()) == []
    images = browser.js("return Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
    assert images and all(done and width > 100 for done, width in images)
    assert browser.js("return Array.from(document.images).every(i => i.src.startsWith('data:image/png;base64,'))")
    assert browser.js("return document.querySelectorAll('#toc li a').length") == 2
    assert "boom <b>" in browser.js("return document.querySelector('.error').textContent")  # escaped, shown as text
    assert_png(browser.screenshot(tmp_path / "report.png"), min_width=800)
