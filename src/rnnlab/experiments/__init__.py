"""Experiments that teach: each one trains or probes a real network and draws what it measured.

`rnnlab experiment NAME --out DIR` runs one; `rnnlab experiment all --out DIR` runs every one and
writes an HTML report. Each experiment is also a function: `run_experiment(name, out_dir, seed=...)`.
"""

from .registry import EXPERIMENTS, Experiment, experiment, run_experiment

MODULES = ("gradients", "init_clipping", "memory", "charmodel")


def load_all() -> None:
    """Import every experiment module so that their `@experiment` decorators register them."""
    import importlib

    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")


__all__ = ["EXPERIMENTS", "Experiment", "experiment", "load_all", "run_experiment"]
