"""``python -m heatlit.dashboard DIR [--out page.html] [--title TEXT]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from heatlit.report.collect import ReportError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m heatlit.dashboard",
        description="Write one self-contained HTML page (opens from disk, no network) for a run or a sweep: "
        "training and validation curves, the final and encoding-effect tables, qualitative and report "
        "figures, and the jobs that crashed or are still running.",
    )
    parser.add_argument(
        "dir", type=Path, help="a run's folder (outputs/train/<run>) or a sweep's (multirun/...)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="the page to write (default: DIR/dashboard.html)"
    )
    parser.add_argument("--title", default=None, help="page title (default: the folder's name)")
    return parser.parse_args(argv)


def write_dashboard(folder: str | Path, out: str | Path | None = None, title: str | None = None) -> Path:
    """Collect ``folder`` and write its dashboard to ``out`` (default ``folder/dashboard.html``).

    Raises:
        ReportError: the folder is missing or holds no Hydra job.
    """
    from heatlit.dashboard.collect import collect
    from heatlit.dashboard.page import render_page

    collected = collect(folder)
    path = Path(out) if out is not None else Path(folder) / "dashboard.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_page(collected, title), encoding="utf-8")
    tmp.replace(path)  # a browser never opens half a page
    return path


def main(argv: list[str] | None = None) -> int:
    """Write the page; 0 on success, 1 (with the reason on stderr) when there is nothing to show."""
    args = parse_args(argv)
    try:
        path = write_dashboard(args.dir, args.out, args.title)
    except ReportError as exc:
        print(f"heatlit.dashboard: {exc}", file=sys.stderr)
        return 1
    print(f"dashboard: {path} ({path.stat().st_size / 1e6:.1f} MB); open it in a browser, no network needed")
    return 0
