"""Codec benchmark: heatlit's batched codecs against the reference loops and a numpy argmax pass, per CPU
thread count; every decoder's accuracy inside the frame (against the Cramer-Rao bound) and at its border;
the multi-peak decoder on crowded maps. ``python -m heatlit.bench codecs`` (= ``make bench``).

One job per module: :mod:`~heatlit.bench.baselines` (the reference loops), :mod:`~heatlit.bench.crb`,
:mod:`~heatlit.bench.data` (closed-form inputs), :mod:`~heatlit.bench.machine` (timing and load),
:mod:`~heatlit.bench.speed`, :mod:`~heatlit.bench.accuracy`, :mod:`~heatlit.bench.crowded`,
:mod:`~heatlit.bench.targets`, :mod:`~heatlit.bench.render`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from rich.console import Console

from heatlit.bench import accuracy, crowded, speed
from heatlit.bench.machine import environment, load_average, threads
from heatlit.bench.render import render
from heatlit.bench.settings import BenchConfig
from heatlit.bench.targets import evaluate


def run(cfg: BenchConfig, devices: Sequence[str], console: Console | None = None) -> dict:
    """Run the whole codec benchmark and print it; returns every number (JSON-serialisable)."""
    console = console or Console()
    results = {"config": asdict(cfg), "environment": environment(list(devices))}
    results["speed"] = speed.speed(cfg, devices)
    # The accuracy runs are not timed: one thread, since on a busy machine every parallel region of many
    # small ops waits for its slowest thread (seconds, for the crowded-map matching).
    with threads(1):
        results["accuracy"] = accuracy.interior(cfg)
        results["border"] = accuracy.border(cfg)
        results["crowded"] = crowded.crowded(cfg)
    results["load_average_end"] = load_average()
    results["targets"] = evaluate(results)
    results["all_passed"] = all(t["passed"] for t in results["targets"])
    render(results, console)
    return results
