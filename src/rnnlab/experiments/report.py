"""`rnnlab experiment all`: run every experiment and write one HTML report.

`run_all` runs each registered experiment into `out_dir/<name>/`, timing it, then `write_report`
writes `out_dir/report.html` (self-contained: the figures are embedded as base64 data URIs, so the
page can be moved or mailed on its own) and `out_dir/report.json` (times and summaries). An
experiment that fails does not stop the others: its error is shown in the report, and `run_all`
raises `ExperimentsFailed` at the end naming every failed experiment, so the command exits non-zero.
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..data.text import read_text
from ..training.checkpoint import write_text_atomic
from .common import find_corpus
from .registry import output_folder, staged_output

DATA_SUFFIXES = (".csv", ".json", ".txt", ".html")


class ExperimentsFailed(RuntimeError):
    """One or more experiments of `run_all` failed; the report was still written."""


@dataclass
class ExperimentResult:
    """What one experiment produced, for the report.

    Attributes:
        name, title: from the registry.
        out_dir: the experiment's folder (figures and data are read from there).
        seconds: wall time of the run.
        summary: the dict the experiment returned (summary.json), or None if it failed.
        error: one line `Type: message` if it failed; traceback: the full traceback then.
    """

    name: str
    title: str
    out_dir: Path
    seconds: float
    summary: dict | None = None
    error: str | None = None
    traceback: str | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


def run_one(
    name: str, out_dir: str | Path, *, seed: int = 0, quick: bool = False, data: str | None = None
) -> ExperimentResult:
    """Run one registered experiment into `out_dir`, catching its failure into the result.

    Example:
        >>> r = run_one("temperature", "runs/exp/temperature", quick=True)   # doctest: +SKIP
        >>> r.ok, round(r.seconds)                                          # doctest: +SKIP
        (True, 3)
    """
    from . import EXPERIMENTS, load_all

    load_all()
    exp = EXPERIMENTS[name]
    out = Path(out_dir)
    t0 = time.perf_counter()
    try:
        with staged_output(out, owner=name) as stage:  # a failed run leaves the folder as it was
            summary = exp(stage, seed=seed, quick=quick, data=data if exp.needs_text else None)
    except Exception as e:  # reported, and the other experiments still run
        msg = " ".join(str(e).split()) or "(no message)"
        return ExperimentResult(
            name,
            exp.title,
            out,
            time.perf_counter() - t0,
            error=f"{type(e).__name__}: {msg}",
            traceback=traceback.format_exc(),
        )
    return ExperimentResult(name, exp.title, out, time.perf_counter() - t0, summary=summary)


def run_all(
    out_dir: str | Path,
    *,
    seed: int = 0,
    quick: bool = False,
    data: str | None = None,
    log: Callable[[str], None] | None = None,
    names: Sequence[str] | None = None,
) -> Path:
    """Run every registered experiment (or `names`) into `out_dir/<name>/` and write the report.

    Args:
        out_dir: folder for the experiments' subfolders, report.html and report.json.
        seed, quick, data: passed to every experiment.
        log: called with one progress line per experiment (e.g. print to stderr); None: silent.
        names: run only these experiments (default: all, in registration order).

    Returns:
        Path of report.html.

    Raises:
        ExperimentsFailed: after writing the report, if any experiment failed (the message names them).

    Example:
        >>> run_all("runs/experiments", seed=0, log=print)   # doctest: +SKIP
        PosixPath('runs/experiments/report.html')
    """
    from . import EXPERIMENTS, load_all

    load_all()
    out = Path(out_dir)
    todo = list(EXPERIMENTS) if names is None else list(names)
    unknown = [n for n in todo if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"experiment: unknown {', '.join(unknown)}; expected some of {', '.join(EXPERIMENTS)}")
    if data is not None:
        # a file no experiment can use is one error now, not one per experiment later
        read_text(find_corpus(data))
    with output_folder(out):
        pass  # created here; the experiments fill it
    results = []
    started = time.perf_counter()
    for k, name in enumerate(todo, 1):
        if log:
            log(f"[{k}/{len(todo)}] {name}: running")
        try:
            r = run_one(name, out / name, seed=seed, quick=quick, data=data)
        except KeyboardInterrupt:  # the experiments that finished still get their report
            settings = {"seed": seed, "quick": quick, "data": data, "total_seconds": time.perf_counter() - started}
            settings["interrupted"] = f"during {name}; {len(todo) - k + 1} experiment(s) not run"
            # a complete report of an earlier run stays; this one goes beside it
            stem = "report-interrupted" if _complete_report(out) else "report"
            report = write_report(out, results, settings=settings, stem=stem)
            if log:
                log(f"interrupted during {name}; the report of the {len(results)} finished experiment(s): {report}")
            raise
        results.append(r)
        if log:
            log(f"[{k}/{len(todo)}] {name}: {'done' if r.ok else 'FAILED: ' + (r.error or '')} in {r.seconds:.1f}s")
    settings = {"seed": seed, "quick": quick, "data": data, "total_seconds": time.perf_counter() - started}
    report = write_report(out, results, settings=settings)
    for stale in ("report-interrupted.html", "report-interrupted.json"):  # this complete report supersedes it
        (out / stale).unlink(missing_ok=True)
    if log:
        log(f"report: {report}")
    failed = [r.name for r in results if not r.ok]
    if failed:
        raise ExperimentsFailed(
            f"{len(failed)} of {len(results)} experiment(s) failed: {', '.join(failed)} (see {report})"
        )
    return report


def _complete_report(out: Path) -> bool:
    """Whether `out` holds the report of a run of `all` that was not interrupted."""
    try:
        settings = json.loads((out / "report.json").read_text(encoding="utf-8"))["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(settings, dict) and "interrupted" not in settings and (out / "report.html").exists()


def _img_tag(path: Path) -> str:
    b64 = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{b64}" alt="{html.escape(path.name)}">'


def _anchor(name: str) -> str:
    return "exp-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0 auto; max-width: 1200px;
  padding: 16px 24px 60px; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: 4px; }
.meta { color: #555; font-size: 0.85rem; }
nav ol { columns: 2; font-size: 0.95rem; }
nav .fail, .status.fail { color: #b00; font-weight: bold; }
nav .time { color: #777; font-size: 0.85rem; }
section.experiment { border-top: 1px solid #ddd; margin-top: 28px; padding-top: 8px; }
section h2 { font-size: 1.2rem; margin: 8px 0; }
section h2 .name { font-family: monospace; color: #666; font-size: 0.9rem; font-weight: normal; }
.figure img { max-width: 100%; border: 1px solid #eee; margin: 6px 0; }
.summary { white-space: pre-wrap; background: #f6f8fa; border-left: 3px solid #69c; padding: 8px 12px;
  font-size: 0.92rem; line-height: 1.45; }
.error { white-space: pre-wrap; background: #fff0f0; border-left: 3px solid #c33; padding: 8px 12px; }
details pre { font-size: 0.78rem; overflow-x: auto; background: #fafafa; padding: 8px; }
.files { font-size: 0.85rem; color: #555; }
"""


def write_report(
    out_dir: str | Path, results: Sequence[ExperimentResult], *, settings: dict | None = None, stem: str = "report"
) -> Path:
    """Write `out_dir/<stem>.html` and `out_dir/<stem>.json` (report.html, report.json) for experiment results.

    Each experiment gets its title, every PNG in its folder (embedded), its summary text, its wall
    time and links to its data files (relative, valid while the folder stays together); a failed
    experiment gets its error and traceback instead. A table of contents links them all.

    Args:
        out_dir: where the report goes (experiment folders are linked relative to it).
        results: from `run_one` / `run_all`.
        settings: shown in the header and stored in report.json (seed, quick, data, total_seconds).

    Returns:
        Path of report.html.

    Example:
        >>> r = run_one("temperature", "runs/x/temperature", quick=True)   # doctest: +SKIP
        >>> write_report("runs/x", [r])                                   # doctest: +SKIP
        PosixPath('runs/x/report.html')
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = dict(settings or {})
    total = settings.get("total_seconds", sum(r.seconds for r in results))
    failed = [r for r in results if not r.ok]

    toc, sections, records = [], [], []
    for r in results:
        aid = _anchor(r.name)
        status = "" if r.ok else ' <span class="fail">FAILED</span>'
        toc.append(
            f'<li><a href="#{aid}">{html.escape(r.title)}</a>{status} <span class="time">{r.seconds:.1f} s</span></li>'
        )
        # a failed run wrote nothing into its folder: whatever is there is from an earlier run, not shown
        shown = r.ok and r.out_dir.is_dir()
        pngs = sorted(r.out_dir.glob("*.png")) if shown else []
        files = sorted(p for p in r.out_dir.glob("*") if p.suffix in DATA_SUFFIXES) if shown else []
        summary_text = str(r.summary.get("summary", "")) if r.summary is not None else ""
        body = [f'<h2 id="{aid}">{html.escape(r.title)} <span class="name">{html.escape(r.name)}</span></h2>']
        body.append(
            f'<p class="meta">wall time {r.seconds:.1f} s'
            + ("" if r.ok else ' · <span class="status fail">FAILED</span>')
            + "</p>"
        )
        if not r.ok:
            body.append(f'<div class="error">{html.escape(r.error or "")}</div>')
            if r.traceback:
                body.append(f"<details><summary>traceback</summary><pre>{html.escape(r.traceback)}</pre></details>")
        for p in pngs:
            body.append(f'<div class="figure">{_img_tag(p)}</div>')
        if summary_text:
            body.append(f'<div class="summary">{html.escape(summary_text.strip())}</div>')
        if files:
            links = ", ".join(
                f'<a href="{html.escape(Path(os.path.relpath(p, out)).as_posix())}">{html.escape(p.name)}</a>'
                for p in files
            )
            body.append(f'<p class="files">data: {links}</p>')
        sections.append(f'<section class="experiment" id="section-{aid}">{"".join(body)}</section>')
        figures = {k: v for k, v in (r.summary or {}).items() if k not in ("summary", "experiment", "settings")}
        records.append(
            {
                "name": r.name,
                "title": r.title,
                "ok": r.ok,
                "seconds": round(r.seconds, 3),
                "summary": summary_text.strip() or None,
                "figures": figures,
                "error": r.error,
                "images": [p.name for p in pngs],
                "folder": r.out_dir.as_posix(),
            }
        )

    env = f"rnnlab {__version__}, Python {platform.python_version()}, {platform.system()} {platform.machine()}"
    try:
        import numpy

        env += f", NumPy {numpy.__version__}"
    except ImportError:  # pragma: no cover - numpy is a hard dependency
        pass
    setting_line = ", ".join(f"{k} {v}" for k, v in settings.items() if k != "total_seconds")
    head = (
        f"{len(results)} experiment(s), {len(results) - len(failed)} ok, {len(failed)} failed; total {total:.1f} s"
        + (f"; {setting_line}" if setting_line else "")
        + f"; {env}; written {time.strftime('%Y-%m-%d %H:%M:%S')}"
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rnnlab experiments</title>
<style>{_CSS}</style>
</head>
<body>
<h1>rnnlab experiments</h1>
<p class="meta" id="report-meta">{html.escape(head)}</p>
<nav id="toc"><h2>Contents</h2><ol>{"".join(toc)}</ol></nav>
{"".join(sections)}
</body>
</html>
"""
    path = out / f"{stem}.html"
    write_text_atomic(path, page)
    write_text_atomic(
        out / f"{stem}.json",
        json.dumps(
            {
                "settings": {**settings, "total_seconds": round(total, 3)},
                "environment": env,
                "python": sys.version.split()[0],
                "experiments": records,
                "failed": [r.name for r in failed],
            },
            indent=2,
            default=float,
            ensure_ascii=False,
        )
        + "\n",
    )
    return path
