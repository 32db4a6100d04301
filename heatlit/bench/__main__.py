"""``python -m heatlit.bench codecs [--device cpu|cuda|all] [--repeats N] [--threads 1,2] [--trials N] [--quick] [--json PATH] [--strict]``.

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
    p.add_argument("suite", choices=["codecs"], help="which benchmark to run")
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


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the benchmark, return the exit code."""
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
    console = Console()
    if not console.is_terminal:  # piped or captured: Rich would wrap the tables at 80 columns
        console = Console(width=200)
    results = codecs.run(cfg, devices[args.device], console)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if args.strict and not results["all_passed"] else 0


if __name__ == "__main__":
    sys.exit(main())
