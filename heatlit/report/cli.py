"""``python -m heatlit.report <multirun dir> [--out DIR] [--split test]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from heatlit.report.build import write_report
from heatlit.report.collect import ReportError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m heatlit.report",
        description="Summarise a Hydra sweep of heatlit.train: Table 2 (Markdown, CSV), the encoding effect, "
        "figures and report.md. Jobs that crashed or are still running are listed, not fatal.",
    )
    parser.add_argument(
        "multirun_dir", type=Path, help="multirun/<group>/<timestamp> (or one run's directory)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: <multirun_dir>/report)"
    )
    parser.add_argument(
        "--split", default="test", help="stage of results.json to report: test (default) or val"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Write the report; 0 when at least one job finished, 1 (with the reason on stderr) otherwise."""
    from rich.console import Console

    args = parse_args(argv)
    try:
        # piped to a log, rich would squeeze the table into 80 columns and cut model names
        console = Console(width=None if sys.stdout.isatty() else 160)
        written = write_report(args.multirun_dir, args.out, args.split, console=console)
    except ReportError as exc:
        print(f"heatlit.report: {exc}", file=sys.stderr)
        return 1
    print(f"report: {written['report.md']}")
    return 0
