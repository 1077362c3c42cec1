"""`rnnlab` command line: train, sample, gradcheck.

Every user error ends in one line on stderr (`error: …`) and exit status 2, never a traceback;
Ctrl-C ends with status 130 after the last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import __version__
from ..config import CELLS, CLIP_MODES, INITS, OPTIMIZERS, SCHEDULES, ModelConfig, SampleConfig, TrainConfig

DEFAULT_MAX_STEPS = 2000


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a character language model",
        description="Train a character-level language model (char-rnn style, truncated BPTT). With no --data it "
        "trains on the US Census first names shipped by the 'names' package and learns to invent names.",
    )
    p.add_argument("--engine", choices=["numpy"], default="numpy", help="engine (default: numpy, rnnlab.scratch)")
    p.add_argument("--data", help="UTF-8 text file (default: the embedded census first names)")
    p.add_argument(
        "--per-line", action="store_true", help="one item per line (names, words): learn to generate whole lines"
    )
    p.add_argument("--out", help="run folder for checkpoints and metrics.jsonl (default: runs/<data name>)")
    g = p.add_argument_group("model")
    g.add_argument("--cell", choices=CELLS, default="lstm", help="recurrent cell (default: lstm)")
    g.add_argument(
        "--nonlinearity", choices=["tanh", "relu"], default="tanh", help="vanilla RNN activation (default: tanh)"
    )
    g.add_argument("--hidden-size", type=int, default=512, help="hidden units per layer (default: 512)")
    g.add_argument("--layers", type=int, default=1, help="stacked recurrent layers (default: 1)")
    g.add_argument("--embedding-dim", type=int, default=64, help="character embedding size (default: 64)")
    g.add_argument(
        "--dropout", type=float, default=0.0, help="dropout between layers and before the read-out (default: 0)"
    )
    g.add_argument(
        "--init", choices=INITS, default="pytorch", help="recurrent weight initialisation (default: pytorch)"
    )
    g = p.add_argument_group("training")
    g.add_argument("--batch-size", type=int, default=32, help="parallel streams B (default: 32)")
    g.add_argument("--seq-len", type=int, default=64, help="truncated-BPTT length T (default: 64)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="optimiser (default: adam)")
    g.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default: 3e-3)")
    g.add_argument(
        "--lr-schedule", choices=SCHEDULES, default="cosine", help="schedule over the budget (default: cosine)"
    )
    g.add_argument("--weight-decay", type=float, default=0.0, help="weight decay (default: 0)")
    g.add_argument("--clip-mode", choices=CLIP_MODES, default="norm", help="gradient clipping (default: norm)")
    g.add_argument("--grad-clip", type=float, default=5.0, help="clipping threshold (default: 5)")
    g.add_argument(
        "--max-steps", type=int, help=f"stop after N steps (default: {DEFAULT_MAX_STEPS} if --max-time is not given)"
    )
    g.add_argument("--max-time", type=float, help="stop after SECONDS of training (evaluation not counted)")
    g.add_argument(
        "--eval-every", type=int, default=250, help="steps between evaluations and checkpoints (default: 250)"
    )
    g.add_argument(
        "--val-fraction", type=float, default=0.1, help="held-out fraction, taken from the end (default: 0.1)"
    )
    g.add_argument(
        "--state-reset-prob",
        type=float,
        default=0.01,
        help="chance a stream's carried state is zeroed before a chunk, so the model learns to start from nothing (default: 0.01)",
    )
    g.add_argument("--seed", type=int, default=1337, help="random seed (default: 1337)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or evaluation lines")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from ..training.lm import load_lm_data, train_lm

    max_steps = args.max_steps if (args.max_steps is not None or args.max_time is not None) else DEFAULT_MAX_STEPS
    train_config = TrainConfig(
        engine=args.engine,
        data=args.data,
        per_line=args.per_line,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        optimizer=args.optimizer,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        weight_decay=args.weight_decay,
        clip_mode=args.clip_mode,
        grad_clip=args.grad_clip,
        max_steps=max_steps,
        max_time=args.max_time,
        eval_every=args.eval_every,
        val_fraction=args.val_fraction,
        state_reset_prob=args.state_reset_prob,
        seed=args.seed,
    )
    data = load_lm_data(train_config)  # every data error surfaces here, before anything is written
    model_config = ModelConfig(
        vocab_size=len(data.vocab),
        cell=args.cell,
        nonlinearity=args.nonlinearity,
        embedding_dim=args.embedding_dim,
        hidden_size=args.hidden_size,
        num_layers=args.layers,
        dropout=args.dropout,
        init=args.init,
    )
    out = Path(args.out) if args.out else Path("runs") / (Path(args.data).stem if args.data else "names")
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    if log:
        log(
            f"data: {data.name}: {len(data.train):,} train / {len(data.val):,} val tokens, vocabulary {len(data.vocab)}; "
            f"model: {model_config.cell} {model_config.num_layers}x{model_config.hidden_size}; run folder: {out}"
        )
    record = train_lm(model_config, train_config, out, data, progress=not args.quiet, log=log)
    print(json.dumps({"run": str(out), **record}))
    return 0


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="generate text from a trained run",
        description="Generate text from a run folder written by `rnnlab train`.",
    )
    p.add_argument("run", help="run folder (holds checkpoint.json)")
    p.add_argument("--prime", default="", help="text to start from (default: none)")
    p.add_argument("--prime-file", help="read the prime text from a UTF-8 file")
    p.add_argument(
        "--length",
        type=int,
        default=None,
        help="characters to generate (default: 500; for per-line models the cap per item, 40)",
    )
    p.add_argument("--num-samples", type=int, default=None, help="samples to draw (default: 1; 10 for per-line models)")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (default: 1.0)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely characters (default: all)")
    p.add_argument("--greedy", action="store_true", help="always take the most likely character")
    p.add_argument(
        "--unknown",
        choices=["error", "skip", "map"],
        default="error",
        help="prime characters outside the vocabulary (default: error)",
    )
    p.add_argument("--replacement", help="the character --unknown map puts in their place")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: fresh)")
    p.set_defaults(func=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    from ..data.text import read_text
    from ..generation.sample import encode_prime, sample_lm
    from ..training.lm import load_lm

    loaded = load_lm(args.run)
    prime = read_text(args.prime_file).rstrip("\n") if args.prime_file else args.prime
    config = SampleConfig(
        length=args.length if args.length is not None else (40 if loaded.per_line else 500),
        num_samples=args.num_samples if args.num_samples is not None else (10 if loaded.per_line else 1),
        temperature=args.temperature,
        top_k=args.top_k,
        greedy=args.greedy,
        prime=prime,
        unknown=args.unknown,
        replacement=args.replacement,
        seed=args.seed,
    )
    _, warning = encode_prime(loaded.vocab, config)  # errors out before any output
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if loaded.per_line:
        for text in sample_lm(loaded.model, loaded.vocab, config, per_line=True):
            print(text)
        return 0
    stream = config.num_samples == 1

    def write(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    samples = sample_lm(loaded.model, loaded.vocab, config, on_text=write if stream else None)
    if stream:
        print()
    else:
        for i, text in enumerate(samples):
            print(f"--- sample {i + 1} ---\n{text}")
    return 0


def _add_gradcheck(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gradcheck",
        help="check the NumPy engine's gradients against finite differences",
        description="Compare backpropagation through time with central differences in float64 and print the worst "
        "relative error per parameter, ‖analytic − numeric‖₂ / max(‖analytic‖₂, ‖numeric‖₂).",
    )
    p.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="lstm", help="cell (default: lstm)")
    p.add_argument("--nonlinearity", choices=["tanh", "relu"], default="tanh", help="for --cell rnn (default: tanh)")
    p.add_argument("--layers", type=int, default=1, help="stacked layers (default: 1)")
    p.add_argument("--bidirectional", action="store_true", help="check a bidirectional layer")
    p.add_argument("--truncated", action="store_true", help="check one truncated-BPTT chunk with carried state")
    p.add_argument("--seq-len", type=int, default=5, help="time steps (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--tolerance", type=float, default=1e-6, help="exit 1 if any error exceeds this (default: 1e-6)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_gradcheck)


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from ..scratch.gradcheck_recurrent import check_recurrent_gradients

    if args.layers < 1:
        raise ValueError(f"--layers: expected a positive integer, got {args.layers}")
    if args.seq_len < 1:
        raise ValueError(f"--seq-len: expected a positive integer, got {args.seq_len}")
    cell = f"rnn_{args.nonlinearity}" if args.cell == "rnn" else args.cell
    result = check_recurrent_gradients(
        cell, args.layers, args.bidirectional, truncated=args.truncated, seq_len=args.seq_len, seed=args.seed
    )
    ok = result.worst <= args.tolerance
    if args.json:
        print(
            json.dumps(
                {
                    "cell": cell,
                    "layers": args.layers,
                    "bidirectional": args.bidirectional,
                    "truncated": args.truncated,
                    "relative_error": result.relative,
                    "max_abs_error": result.absolute,
                    "worst": result.worst,
                    "ok": ok,
                },
                indent=2,
            )
        )
    else:
        print(
            f"{cell}, {args.layers} layer(s){', bidirectional' if args.bidirectional else ''}"
            f"{', truncated-BPTT chunk' if args.truncated else ''}, float64"
        )
        print(f"{'tensor':<24}{'relative error':>16}{'max abs error':>16}")
        for name, rel in result.relative.items():
            print(f"{name:<24}{rel:>16.2e}{result.absolute[name]:>16.2e}")
        print(f"worst {result.worst:.2e}: {'OK' if ok else 'FAILED'} (tolerance {args.tolerance:g})")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnlab", description="Recurrent neural networks from first principles to fast training."
    )
    parser.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_sample(sub)
    _add_gradcheck(sub)
    from . import experiments

    experiments.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `rnnlab` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as e:  # user errors: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # TrainingError and friends
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
