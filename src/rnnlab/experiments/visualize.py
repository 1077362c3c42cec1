"""`rnnlab visualize`: a page that colours a text by the activation of one hidden unit.

After Karpathy, Johnson & Fei-Fei (2015), "Visualizing and Understanding Recurrent Networks": run a
trained character model over a text, colour each character by a chosen unit's activation after
reading it (blue −1 … white 0 … red +1), show the model's top-5 guesses for the next character
when the pointer rests on a character, and list the units whose activation correlates best with
simple properties of the text (inside quotes, position in line, inside brackets, …).

The page is one self-contained HTML file: inline CSS and JavaScript, the data as inline JSON, no
external resources, so it opens offline and can be mailed around.

Data layout in the page (`<script type="application/json" id="neuron-data">`): each series (the
hidden state h, and for an LSTM the cell state as tanh(c)) stores its activations as int8, unit-major
(value of unit u at character t is byte u·T + t), base64-encoded; activation = byte / 127 · scale[u].
Quantising to 1/127 is far finer than a colour can show and keeps a 3,000 × 512 page near 2 MB.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from ..data.text import CharVocab, DataError, read_text
from ..training.checkpoint import saved_task, write_text_atomic
from .charmodel import FEATURES, correlate_units, display_char, model_trace, text_features

TOP_K = 5  # next-character guesses shown on hover
TOP_UNITS = 5  # units listed per feature


def _encode_text(run, text: str) -> tuple[np.ndarray, str, int, int]:
    """Token ids to feed, the text actually shown, how many leading ids are context only, and how
    many characters were dropped because the model's vocabulary lacks them."""
    vocab = run.vocab
    shown, ids, dropped = [], [], 0
    lead = 0
    if run.per_line:
        # a per-line model (names) reads <boundary> item <boundary> …: a newline is the boundary
        ids.append(vocab.boundary_id)
        lead = 1
    for ch in text:
        if run.per_line and ch == "\n":
            ids.append(vocab.boundary_id)
        elif ch in vocab.stoi:
            ids.append(vocab.stoi[ch])
        else:
            dropped += 1
            continue
        shown.append(ch)
    return np.array(ids, dtype=np.int64), "".join(shown), lead, dropped


def _quantise(acts: np.ndarray, bounded: bool) -> tuple[str, list[float]]:
    """(T, H) activations -> base64 of int8 unit-major, and the per-unit scale."""
    if bounded:
        scale = np.ones(acts.shape[1])
    else:  # ReLU units: colour relative to the unit's largest activation on this text
        scale = np.abs(acts).max(axis=0)
        scale[scale == 0] = 1.0
    q = np.clip(np.rint(acts / scale * 127), -127, 127).astype(np.int8)  # (T, H)
    return base64.b64encode(np.ascontiguousarray(q.T).tobytes()).decode("ascii"), [float(s) for s in scale]


def _top_units(r: np.ndarray | None) -> list[dict] | None:
    if r is None:
        return None
    order = np.argsort(-np.abs(r), kind="stable")[:TOP_UNITS]
    return [{"unit": int(u), "r": round(float(r[u]), 4)} for u in order]


def neuron_page_data(run, text: str) -> dict:
    """Run `run.model` over `text` and collect everything the page shows, as JSON-ready data.

    Args:
        run: a `LoadedLM` (from `rnnlab.training.lm.load_lm`).
        text: the text (characters outside the model's vocabulary are left out).

    Returns:
        dict with "text", "series" (per series: key, label, scale, values_b64, mean, correlations),
        "top_ids"/"top_probs" (T, 5) next-character guesses, "itos" labels, "features", "model".

    Example:
        >>> data = neuron_page_data(load_lm("runs/shakespeare"), "To be, or not to be")   # doctest: +SKIP
        >>> len(data["text"]), len(data["top_ids"][0])                                      # doctest: +SKIP
        (19, 5)
    """
    ids, shown, lead, dropped = _encode_text(run, text)
    if not shown:
        raise DataError("text: none of its characters are in the model's vocabulary")
    tr = model_trace(run.model, ids)
    h, logits = tr.h[lead:], tr.logits[lead:]  # (T, H), (T, V)
    T, H = h.shape
    cfg = run.model_config
    series = [("h", "hidden state h", h, cfg.cell != "rnn" or cfg.nonlinearity == "tanh")]
    if tr.c is not None:
        series.append(("c", "cell state tanh(c)", np.tanh(tr.c[lead:]), True))
    feats = text_features(shown)
    out_series = []
    for key, label, acts, bounded in series:
        b64, scale = _quantise(acts, bounded)
        out_series.append(
            {
                "key": key,
                "label": label,
                "scale": scale,
                "values_b64": b64,
                "mean": [round(float(v), 4) for v in acts.mean(axis=0)],
                "min": [round(float(v), 4) for v in acts.min(axis=0)],
                "max": [round(float(v), 4) for v in acts.max(axis=0)],
                "corr": {
                    k: (None if (r := correlate_units(acts, f)) is None else [round(float(x), 4) for x in r])
                    for k, f in feats.items()
                },
                "top": {k: _top_units(correlate_units(acts, f)) for k, f in feats.items()},
            }
        )
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    top = np.argsort(-p, axis=1, kind="stable")[:, :TOP_K]  # (T, 5)
    itos = list(run.vocab.itos)
    if run.vocab.boundary_id is not None:
        itos[run.vocab.boundary_id] = "⏎ end"
    labels = [s if len(s) != 1 else display_char(s) for s in itos]
    next_ids = [int(i) for i in ids[lead + 1 :]] + [-1]  # the character that actually came next
    return {
        "version": 1,
        "text": shown,
        "length": T,
        "hidden_size": H,
        "dropped_chars": dropped,
        "model": {"cell": cfg.cell, "layers": cfg.num_layers, "hidden_size": cfg.hidden_size, "vocab": len(itos)},
        "itos": labels,
        "top_ids": top.tolist(),
        "top_probs": np.round(np.take_along_axis(p, top, axis=1), 4).tolist(),
        "next_ids": next_ids,
        "features": FEATURES,
        "series": out_series,
    }


def _json_for_script(obj: object) -> str:
    # inside <script> a literal "</script>" or "<!--" would end or confuse the element; escaping
    # <, > and & as \uXXXX keeps the JSON identical once parsed
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _spans(text: str) -> str:
    parts = []
    for i, ch in enumerate(text):
        if ch == "\n":
            # the newline gets a visible mark so it can be coloured and hovered, then a real break
            parts.append(f'<span class="ch nl" data-i="{i}">↵</span><br>')
        elif ch == "\t" or ch.isprintable():
            parts.append(f'<span class="ch" data-i="{i}">{html.escape(ch)}</span>')
        else:
            parts.append(f'<span class="ch ctl" data-i="{i}" title="U+{ord(ch):04X}">·</span>')
    return "".join(parts)


def _correlation_lists(data: dict) -> str:
    blocks = []
    for s in data["series"]:
        items = []
        for key, label in data["features"].items():
            top = s["top"][key]
            if top is None:
                items.append(
                    f'<div class="feature"><h3>{html.escape(label)}</h3><p class="none">constant on this text</p></div>'
                )
                continue
            lis = "".join(
                f'<li><a href="#" class="corr-unit" data-series="{s["key"]}" data-unit="{t["unit"]}">unit {t["unit"]}</a>'
                f' <span class="r">r = {t["r"]:+.2f}</span></li>'
                for t in top
            )
            items.append(f'<div class="feature"><h3>{html.escape(label)}</h3><ol>{lis}</ol></div>')
        blocks.append(f'<div class="corr-block" data-series="{s["key"]}">{"".join(items)}</div>')
    return "".join(blocks)


_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0; color: #222; background: #fafafa; }
header { padding: 12px 20px 4px; }
h1 { font-size: 1.25rem; margin: 0 0 4px; }
.meta { color: #555; font-size: 0.85rem; margin: 0; }
#controls { position: sticky; top: 0; background: #fafafa; padding: 8px 20px; border-bottom: 1px solid #ddd;
  display: flex; flex-wrap: wrap; gap: 10px; align-items: center; z-index: 2; font-size: 0.9rem; }
#controls button { padding: 2px 10px; }
#unit-stats { color: #444; font-size: 0.85rem; }
.legend { display: inline-flex; align-items: center; gap: 4px; font-size: 0.8rem; }
.legend .bar { width: 120px; height: 12px; border: 1px solid #aaa;
  background: linear-gradient(to right, rgb(33,102,172), #fff, rgb(178,24,43)); }
main { display: flex; gap: 20px; padding: 12px 20px; align-items: flex-start; }
#text { flex: 1; font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 14px; line-height: 1.55;
  white-space: pre-wrap; word-break: break-all; background: #fff; border: 1px solid #ddd; padding: 10px; }
.ch { cursor: default; }
.ch.nl { color: #999; }
.ch.hover { outline: 1px solid #000; }
aside { width: 280px; font-size: 0.85rem; }
aside h2 { font-size: 1rem; margin: 0 0 6px; }
aside h3 { font-size: 0.85rem; margin: 10px 0 2px; }
aside ol { margin: 0; padding-left: 22px; }
aside .none { color: #888; margin: 0; font-style: italic; }
aside .r { color: #555; font-family: monospace; }
aside a.selected { font-weight: bold; }
#tooltip { position: absolute; background: #fff; border: 1px solid #888; box-shadow: 0 2px 6px rgba(0,0,0,.2);
  padding: 6px 8px; font-size: 0.8rem; pointer-events: none; z-index: 5; min-width: 170px; }
#tooltip .head { margin-bottom: 4px; }
#tooltip table { border-collapse: collapse; }
#tooltip td { padding: 0 4px; font-family: monospace; }
#tooltip .guess.actual td { font-weight: bold; color: #0a5; }
#tooltip .pbar { display: inline-block; height: 8px; background: #69c; }
"""

_JS = r"""
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("neuron-data").textContent);
  const spans = Array.from(document.querySelectorAll("#text .ch"));
  const T = data.length, H = data.hidden_size;
  const series = {};
  for (const s of data.series) {
    const bytes = Uint8Array.from(atob(s.values_b64), (c) => c.charCodeAt(0));
    series[s.key] = Object.assign({}, s, { values: new Int8Array(bytes.buffer) });
  }
  const seriesSelect = document.getElementById("series-select");
  const unitSelect = document.getElementById("unit-select");
  const tooltip = document.getElementById("tooltip");
  const stats = document.getElementById("unit-stats");
  let cur = { series: data.series[0].key, unit: 0 };

  function value(s, u, t) { return s.values[u * T + t] / 127 * s.scale[u]; }
  function colour(v) {  // v in [-1, 1]: blue - white - red
    const a = Math.max(-1, Math.min(1, v));
    const lo = [33, 102, 172], hi = [178, 24, 43], c = a < 0 ? lo : hi, w = Math.abs(a);
    const mix = (k) => Math.round(255 + (c[k] - 255) * w);
    return "rgb(" + mix(0) + "," + mix(1) + "," + mix(2) + ")";
  }
  function render() {
    const s = series[cur.series];
    for (let t = 0; t < spans.length; t++) {
      spans[t].style.backgroundColor = colour(s.values[cur.unit * T + t] / 127);
    }
    const rs = Object.keys(data.features).filter((k) => s.corr[k] !== null)
      .map((k) => data.features[k] + " r=" + (s.corr[k][cur.unit] >= 0 ? "+" : "") + s.corr[k][cur.unit].toFixed(2));
    stats.textContent = s.label + ", unit " + cur.unit + ": mean " + s.mean[cur.unit].toFixed(2) + ", min " +
      s.min[cur.unit].toFixed(2) + ", max " + s.max[cur.unit].toFixed(2) + (rs.length ? " | " + rs.join(", ") : "");
    document.querySelectorAll(".corr-block").forEach((b) => { b.hidden = b.dataset.series !== cur.series; });
    document.querySelectorAll("a.corr-unit").forEach((a) => {
      a.classList.toggle("selected", a.dataset.series === cur.series && Number(a.dataset.unit) === cur.unit);
    });
  }
  function select(seriesKey, unit) {
    cur = { series: seriesKey, unit: ((unit % H) + H) % H };
    seriesSelect.value = cur.series;
    unitSelect.value = String(cur.unit);
    render();
  }
  seriesSelect.addEventListener("change", () => select(seriesSelect.value, cur.unit));
  unitSelect.addEventListener("change", () => select(cur.series, Number(unitSelect.value)));
  document.getElementById("prev-unit").addEventListener("click", () => select(cur.series, cur.unit - 1));
  document.getElementById("next-unit").addEventListener("click", () => select(cur.series, cur.unit + 1));
  document.getElementById("correlations").addEventListener("click", (ev) => {
    const a = ev.target.closest("a.corr-unit");
    if (!a) return;
    ev.preventDefault();
    select(a.dataset.series, Number(a.dataset.unit));
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "SELECT" || ev.target.tagName === "INPUT") return;
    if (ev.key === "ArrowRight" || ev.key === "j") select(cur.series, cur.unit + 1);
    if (ev.key === "ArrowLeft" || ev.key === "k") select(cur.series, cur.unit - 1);
  });

  function label(id) { return id < 0 ? "(end of text)" : data.itos[id]; }
  function showTooltip(span) {
    const t = Number(span.dataset.i);
    const s = series[cur.series];
    tooltip.textContent = "";
    const head = document.createElement("div");
    head.className = "head";
    head.textContent = "after '" + span.textContent + "' (#" + t + "): unit " + cur.unit + " = " +
      value(s, cur.unit, t).toFixed(3) + "; next: '" + label(data.next_ids[t]) + "'. Top-5 guesses:";
    tooltip.appendChild(head);
    const table = document.createElement("table");
    table.className = "guesses";
    for (let k = 0; k < data.top_ids[t].length; k++) {
      const id = data.top_ids[t][k], p = data.top_probs[t][k];
      const tr = document.createElement("tr");
      tr.className = "guess" + (id === data.next_ids[t] ? " actual" : "");
      const c1 = document.createElement("td"); c1.className = "g-char"; c1.textContent = label(id);
      const c2 = document.createElement("td"); c2.className = "prob"; c2.textContent = p.toFixed(3);
      const c3 = document.createElement("td");
      const bar = document.createElement("span"); bar.className = "pbar"; bar.style.width = Math.round(p * 80) + "px";
      c3.appendChild(bar);
      tr.append(c1, c2, c3);
      table.appendChild(tr);
    }
    tooltip.appendChild(table);
    tooltip.hidden = false;
    const r = span.getBoundingClientRect();
    tooltip.style.left = (window.scrollX + r.left) + "px";
    tooltip.style.top = (window.scrollY + r.bottom + 4) + "px";
  }
  let hovered = null;
  const textEl = document.getElementById("text");
  textEl.addEventListener("mouseover", (ev) => {
    const span = ev.target.closest(".ch");
    if (!span) return;
    if (hovered) hovered.classList.remove("hover");
    hovered = span;
    span.classList.add("hover");
    showTooltip(span);
  });
  textEl.addEventListener("mouseleave", () => {
    if (hovered) hovered.classList.remove("hover");
    hovered = null;
    tooltip.hidden = true;
  });
  select(cur.series, 0);
  document.body.dataset.ready = "1";
})();
"""


def neuron_page_html(data: dict, *, title: str, meta: str) -> str:
    """The page for `neuron_page_data(...)`: one self-contained HTML document.

    Args:
        data: from `neuron_page_data`.
        title: page title (escaped here).
        meta: one line under the title (escaped here).

    Example:
        >>> page = neuron_page_html(neuron_page_data(run, "hello"), title="t", meta="m")   # doctest: +SKIP
    """
    H = data["hidden_size"]
    series_opts = "".join(f'<option value="{s["key"]}">{html.escape(s["label"])}</option>' for s in data["series"])
    unit_opts = "".join(f'<option value="{u}">{u}</option>' for u in range(H))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{html.escape(title)}</h1>
<p class="meta">{html.escape(meta)}</p>
</header>
<div id="controls">
<label>Series <select id="series-select">{series_opts}</select></label>
<button id="prev-unit" type="button" title="previous unit (←)">◀ prev</button>
<label>Unit <select id="unit-select">{unit_opts}</select></label>
<button id="next-unit" type="button" title="next unit (→)">next ▶</button>
<span class="legend">−1 <span class="bar"></span> +1</span>
<span id="unit-stats"></span>
</div>
<main>
<div id="text">{_spans(data["text"])}</div>
<aside id="correlations">
<h2>Units that follow simple features</h2>
<p class="meta">Pearson r of each unit's activation with the feature over this text; click to show a unit.</p>
{_correlation_lists(data)}
</aside>
</main>
<div id="tooltip" role="tooltip" hidden></div>
<script type="application/json" id="neuron-data">{_json_for_script(data)}</script>
<script>{_JS}</script>
</body>
</html>
"""


def write_neuron_page(
    checkpoint: str | Path, text_path: str | Path, out_path: str | Path, *, max_chars: int = 3000
) -> Path:
    """Run a trained character model over a text file and write the neuron page.

    Args:
        checkpoint: run folder written by `rnnlab train` (or `train_char_model`).
        text_path: UTF-8 text file; its first `max_chars` characters are shown.
        out_path: the HTML file to write (parent folders are created).
        max_chars: how many characters of the text to show (positive).

    Returns:
        The path written.

    Raises:
        DataError / CheckpointError (ValueError): a missing or unusable checkpoint or text file,
        with a one-line message.

    Example:
        >>> write_neuron_page("runs/shakespeare", "input.txt", "neurons.html", max_chars=2000)   # doctest: +SKIP
        PosixPath('neurons.html')
    """
    from ..training.lm import load_lm

    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise ValueError(f"max_chars: expected a positive integer, got {max_chars!r}")
    out = Path(out_path)
    if str(out_path).strip() == "" or out.is_dir():
        raise ValueError(
            f"out: expected the path of an HTML file to write, got {'the folder ' if out.is_dir() else ''}{str(out_path)!r}"
        )
    ckpt = Path(checkpoint)
    if not ckpt.exists():
        raise DataError(f"checkpoint: not found: {ckpt}")
    text = read_text(text_path)[:max_chars]  # before loading the model: cheap errors first
    task = saved_task(ckpt) or "lm"  # none recorded (a best/ folder, an older run): `load_lm` says what is wrong
    if task != "lm":
        raise DataError(f"checkpoint: {ckpt} is a {task} run; the neuron page needs a character language model")
    run = load_lm(ckpt)
    if not isinstance(run.vocab, CharVocab):
        raise DataError(
            f"checkpoint: {ckpt} is a word-level language model; the neuron page shows a character model's units "
            "character by character (train one with --level char)"
        )
    data = neuron_page_data(run, text)
    cfg = run.model_config
    dropped = (
        f"; {data['dropped_chars']} character(s) not in the model's vocabulary left out"
        if data["dropped_chars"]
        else ""
    )
    meta = (
        f"{cfg.cell.upper()}, {cfg.num_layers} layer(s) × {cfg.hidden_size} units (top layer shown), vocabulary "
        f"{len(run.vocab)}; checkpoint {ckpt}; text {Path(text_path).name}, {data['length']:,} characters{dropped}. "
        "Colour: the unit's activation after reading each character. Hover a character for the model's top-5 "
        "guesses of the next one."
    )
    html = neuron_page_html(data, title="Neuron activations on text", meta=meta)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, html)  # never a half-written page
    except OSError as e:
        raise ValueError(f"out: cannot write {out}: {e.strerror or e}") from None
    return out
