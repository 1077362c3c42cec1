"""`rnnlab experiment` and `rnnlab visualize`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "experiment",
        help="run a teaching experiment (or 'all') and draw its figure",
        description="Run an experiment for real and write its figure (PNG), the data behind it, summary.txt and "
        "summary.json into --out. 'all' runs every experiment into subfolders and writes report.html.",
    )
    p.add_argument("name", help="experiment name, 'all', or 'list' to print the names")
    p.add_argument("--out", help="output folder (default: runs/experiments/<name>)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--quick", action="store_true", help="tiny settings for a smoke test (seconds, not minutes)")
    p.add_argument(
        "--data",
        help="text corpus for the experiments that train a character model: a file, a URL or a data set's name "
        "such as tinyshakespeare (default: tinyshakespeare.txt under $RNNLAB_DATA or ../shared/data)",
    )
    p.set_defaults(func=cmd_experiment)

    v = sub.add_parser(
        "visualize",
        help="write an HTML page colouring text by a hidden unit's activation",
        description="Run a trained character model over a text and write a self-contained HTML page: each character "
        "coloured by the chosen hidden unit, a unit selector, the model's top next-character guesses on hover, and "
        "the units most correlated with simple features (inside quotes, inside brackets, position in line).",
    )
    v.add_argument("checkpoint", help="run folder written by `rnnlab train`")
    v.add_argument("--text", required=True, help="UTF-8 text file to run the model over")
    v.add_argument("--out", default="neurons.html", help="HTML file to write (default: neurons.html)")
    v.add_argument("--max-chars", type=int, default=3000, help="characters of the text to show (default: 3000)")
    v.set_defaults(func=cmd_visualize)


def cmd_experiment(args: argparse.Namespace) -> int:
    from ..experiments import EXPERIMENTS, load_all, run_experiment

    if args.seed < 0:
        raise ValueError(f"--seed: expected an integer >= 0, got {args.seed}")
    if args.out is not None and not args.out.strip():
        raise ValueError("--out: expected a folder, got an empty string")
    load_all()
    if args.name == "list":
        for name, exp in EXPERIMENTS.items():
            print(f"{name:<22}{exp.title}")
        return 0
    if args.name == "all":
        from ..experiments.report import run_all

        out = Path(args.out or "runs/experiments")
        report = run_all(
            out, seed=args.seed, quick=args.quick, data=args.data, log=lambda s: print(s, file=sys.stderr, flush=True)
        )
        print(json.dumps({"report": str(report)}))
        return 0
    out = Path(args.out or Path("runs/experiments") / args.name)
    t0 = time.perf_counter()
    summary = run_experiment(args.name, out, seed=args.seed, quick=args.quick, data=args.data)
    print(summary.get("summary", ""))
    print(f"wrote {out} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return 0


def cmd_visualize(args: argparse.Namespace) -> int:
    from ..data.text import DataError, naming_option
    from ..experiments.visualize import write_neuron_page

    try:
        path = write_neuron_page(args.checkpoint, args.text, args.out, max_chars=args.max_chars)
    except DataError as e:  # the text file's errors, said as "data: ..." by the reader, are about --text
        if str(e).startswith("data: ") and str(args.text) in str(e):
            raise naming_option(e, "--text") from None
        raise
    print(json.dumps({"page": str(path)}))
    return 0
