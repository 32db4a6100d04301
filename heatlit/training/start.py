"""The one block a run logs when it starts: what it runs, where it writes, on what device, with how much data."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from heatlit.data.base import SPLITS

# The choices the first line shows, in this order (others the run made are in its .hydra/ and results.json).
SHOWN = ("model", "encoding", "loss", "head", "data", "experiment", "debug")


def _inside(path: str | os.PathLike, run_dir: Path) -> str:
    """``path`` relative to the run folder when inside it (``csv/metrics.csv``), else as it is."""
    path = Path(path)
    try:
        return path.resolve().relative_to(run_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def log_destinations(loggers: Sequence, run_dir: Path) -> list[str]:
    """Where this run's logs go: the job's log file(s), then each Lightning logger's folder."""
    found = [
        _inside(h.baseFilename, run_dir)
        for h in logging.getLogger().handlers
        if isinstance(h, logging.FileHandler) and h.baseFilename != os.devnull
    ]
    for lg in loggers:
        kind = type(lg).__name__  # heatlit's own subclasses end with Lightning's names
        if kind.endswith("CSVLogger"):
            found.append(f"{_inside(lg.log_dir, run_dir)}/metrics.csv")
        elif kind.endswith("TensorBoardLogger"):
            found.append(f"{_inside(lg.log_dir, run_dir)}/ (tensorboard --logdir {Path(lg.log_dir)})")
        elif kind.endswith("WandbLogger"):
            mode = os.environ.get("WANDB_MODE", "offline").lower()
            found.append(f"{_inside(Path(lg.save_dir or '.') / 'wandb', run_dir)}/ (wandb, {mode})")
        else:
            found.append(kind)
    return found or ["none"]


def split_sizes(datamodule, splits: Sequence[str] = SPLITS) -> dict[str, int | None]:
    """Samples per split of ``splits`` (None for a split the data does not have); builds those splits' sources."""
    sizes: dict[str, int | None] = {}
    for split in splits:
        try:
            sizes[split] = len(datamodule.source(split))
        except KeyError:
            sizes[split] = None
    return sizes


def start_block(
    title: str,
    choices: Mapping,
    decoders: Sequence[str],
    monitor: str | None,
    run_dir: Path,
    device: str,
    sizes: Mapping[str, int | None],
    logs: Sequence[str],
) -> str:
    """The block's text (no trailing newline), e.g.::

    heatlit.train model=hourglass_tiny encoding=unquant loss=mse head=2d data=synth (sigma 2, stride 4, seed 1314)
      decoders  argmax, standard, standard_top2, dark, com, mom, soft_argmax; best checkpoint by val/dark/pckh@0.1
      run       outputs/train/2026-01-01_12-00-00
      device    cpu, 1 process
      samples   train 3000, val 500, test 500
      logs      train.log, csv/metrics.csv, wandb/ (wandb, offline)
    """
    picked = " ".join(f"{k}={choices[k]}" for k in SHOWN if choices.get(k) is not None)
    facts = ", ".join(f"{k} {choices[k]}" for k in ("sigma", "stride", "seed") if choices.get(k) is not None)
    first = f"{title} {picked}" + (f" ({facts})" if facts else "")
    decoded = ", ".join(decoders) + (f"; best checkpoint by {monitor}" if monitor else "")
    samples = ", ".join(f"{split} {n}" for split, n in sizes.items() if n is not None) or "none"
    rows = (
        ("decoders", decoded),
        ("run", str(run_dir)),
        ("device", device),
        ("samples", samples),
        ("logs", ", ".join(logs)),
    )
    return "\n".join([first, *(f"  {name:<9} {text}" for name, text in rows)])


def trainer_device(trainer) -> str:
    """``cpu, 1 process`` or ``cuda:0, 4 processes`` (the first process's device)."""
    n = trainer.world_size
    return f"{trainer.strategy.root_device}, {n} process{'es' if n != 1 else ''}"
