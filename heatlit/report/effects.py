"""``python -m heatlit.report.effects DIR``: a finished sweep's encoding effects with 95% CIs over seeds.

The sweep side of :mod:`heatlit.report.stats` (which holds only the numbers): report rows as per-run records,
the effects as a Markdown table, and the command. A module of its own so that ``python -m`` runs a module the
package has not imported already (``heatlit.report`` imports :mod:`~heatlit.report.stats` through its
tables).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from heatlit.report.collect import ReportError, collect, label
from heatlit.report.stats import Effect, paired_effects

METRICS = ("pckh@0.1", "pckh@0.5", "auc", "rmse")


def sweep_records(rows: Iterable[Any], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Per-run metric records for :func:`~heatlit.report.stats.paired_effects` from report rows
    (:class:`heatlit.report.collect.Row`).

    Each record holds the run's settings (as labels, the seed as it is), ``decoder``, ``metric`` and
    ``value`` (None when the run lacks the metric).
    """
    records = []
    for row in rows:
        settings = {k: (v if k == "seed" else label(v)) for k, v in row.job.settings.items()}
        for metric in metrics:
            records.append(
                {**settings, "decoder": row.decoder, "metric": metric, "value": row.metrics.get(metric)}
            )
    return records


def label_of(value: Any) -> str:
    return "-" if value is None else str(value)


def effects_markdown(effects: Sequence[Effect], unit: str = "seed") -> str:
    """The effects as a Markdown table: the settings that vary, decoder, metric, mean ± half-width, n, verdict."""
    if not effects:
        return "no paired runs\n"
    keys = [k for k in effects[0].group if len({label_of(e.group.get(k)) for e in effects}) > 1]
    keys = [k for k in keys if k not in ("decoder", "metric")] + ["decoder", "metric"]
    first = effects[0]
    lines = [
        f"{first.factor}: {first.level} − {first.reference}, mean paired difference over {unit}s, "
        f"{first.interval.level:.0%} CI (Student t unless marked)",
        "",
        "| " + " | ".join([*keys, "Δ", "95% CI", f"n {unit}s", "resolved"]) + " |",
        "| " + " | ".join(["---"] * len(keys) + ["---:", "---", "---:", "---"]) + " |",
    ]
    for e in effects:
        iv = e.interval
        ci = "–" if iv.method == "none" else f"[{iv.low:+.2f}, {iv.high:+.2f}]"
        verdict = {1: "yes (+)", -1: "yes (−)", 0: "no"}[iv.sign]
        cells = [label_of(e.group.get(k)) for k in keys] + [iv.format(), ci, str(iv.n), verdict]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m heatlit.report.effects DIR [--metrics ...]``: encoding effects with 95% CIs over seeds.

    Reads every finished job under DIR, pairs quant and unquant runs by seed, prints the Markdown table
    and writes it to ``DIR/effects.md``.
    """
    parser = argparse.ArgumentParser(prog="python -m heatlit.report.effects", description=main.__doc__)
    parser.add_argument("multirun_dir", type=Path)
    parser.add_argument("--metrics", nargs="+", default=list(METRICS))
    parser.add_argument("--factor", default="encoding")
    parser.add_argument("--reference", default="quant")
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    try:
        rows, failed = collect(args.multirun_dir, args.split)
    except ReportError as exc:
        print(f"heatlit.report.effects: {exc}")
        return 1
    effects = paired_effects(sweep_records(rows, args.metrics), args.factor, args.reference)
    text = effects_markdown(effects)
    if failed:
        text += f"\n{len(failed)} job(s) without results: " + ", ".join(f.path.name for f in failed) + "\n"
    print(text, end="")
    (args.multirun_dir / "effects.md").write_text(text)
    return 0 if effects else 1


if __name__ == "__main__":
    raise SystemExit(main())
