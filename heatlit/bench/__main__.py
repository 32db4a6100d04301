"""``python -m heatlit.bench codecs [--device cpu|cuda|all] [--repeats N] [--threads 1,2] [--trials N] [--quick] [--json PATH] [--strict]``
or ``python -m heatlit.bench train [--steps N] [--rounds R] [--json PATH] [key=value ...]``.

Exit code 0 unless the arguments are wrong (2), or ``--strict`` is given and a target failed (1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from rich.console import Console

from heatlit.bench import codecs
from heatlit.bench.settings import config_from_args


def _thread_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected thread counts like 1,2, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"thread counts must be >= 1, got {text!r}")
    return counts


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m heatlit.bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "suite", choices=["codecs", "train"], help="which benchmark to run (train: see `train -h`)"
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda", "all"],
        default="all",
        help="where heatlit's batched codecs run; 'all' = cpu, plus cuda when available (default)",
    )
    p.add_argument("--repeats", type=int, default=None, help="timed runs per method (median reported)")
    p.add_argument(
        "--threads",
        type=_thread_counts,
        default=None,
        help="comma-separated torch (and OpenCV) CPU thread counts to time heatlit at (default: 1,2)",
    )
    p.add_argument("--trials", type=int, default=None, help="heatmaps per accuracy experiment")
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes, for smoke tests (numbers not meaningful)"
    )
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write every number here")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    return p


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m heatlit.bench train",
        description="where a training step of the default experiment goes; Lightning vs the bare loop",
    )
    p.add_argument("suite", choices=["train"])
    p.add_argument("--steps", type=int, default=20, help="training steps per arm and round (default 20)")
    p.add_argument("--rounds", type=int, default=4, help="interleaved bare / Lightning rounds (default 4)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write every number here")
    p.add_argument("overrides", nargs="*", help="config overrides, as for heatlit.train (model=hrnet ...)")
    return p


def _console() -> Console:
    console = Console()
    # piped or captured: Rich would wrap the tables at 80 columns
    return console if console.is_terminal else Console(width=200)


def _write_json(path: Path | None, results: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")


def train_main(argv: list[str]) -> int:
    from heatlit.bench import train

    parser = _train_parser()
    args = parser.parse_intermixed_args(argv)
    if args.steps < 1 or args.rounds < 1:
        parser.error("--steps and --rounds must be >= 1")
    _write_json(args.json, train.run(args.overrides, args.steps, args.rounds, _console()))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the benchmark, return the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:
        return train_main(argv)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.trials is not None and args.trials < 2:
        parser.error("--trials must be >= 2")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is False")
    devices = {
        "cpu": ["cpu"],
        "cuda": ["cuda"],
        "all": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []),
    }
    cfg = config_from_args(args.quick, args.repeats, args.trials, args.threads)
    results = codecs.run(cfg, devices[args.device], _console())
    _write_json(args.json, results)
    return 1 if args.strict and not results["all_passed"] else 0


if __name__ == "__main__":
    sys.exit(main())
