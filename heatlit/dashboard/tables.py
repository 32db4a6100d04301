"""The dashboard's tables as cells (text, sort value, filter labels): the final table and the encoding effect.

The effect table pairs runs that differ only in the encoding (same model, seed and every other axis) and
summarises each group's per-seed differences by :func:`heatlit.report.stats.paired_effects` (Student t).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from heatlit.dashboard.collect import Folder, RunRecord, settings_of
from heatlit.report.collect import natural_key
from heatlit.report.plots import job_title
from heatlit.report.stats import Interval
from heatlit.report.tables import (
    encoding_effects,
    follows_encoding,
    metric_label,
    present_metrics,
    reference_encoding,
)

SPLITS = ("test", "val")  # column order of the final table; any other split follows
UNIT = "seed"  # what the encoding effect pairs runs by


@dataclass(frozen=True)
class Cell:
    """What a cell shows, what it sorts by (None sorts last) and an optional tooltip and CSS class."""

    text: str
    value: float | str | None
    title: str = ""
    css: str = ""


@dataclass(frozen=True)
class Column:
    header: str
    numeric: bool = False
    title: str = ""


@dataclass
class TableRow:
    cells: list[Cell]
    filters: dict[str, str] = field(default_factory=dict)  # axis (or "decoder") -> label, for the selectors
    run: str | None = None  # the run the row belongs to, when it belongs to one


@dataclass
class Grid:
    """A sortable HTML table before rendering."""

    title: str
    note: str
    columns: list[Column]
    rows: list[TableRow]


def number_cell(value: float | None) -> Cell:
    """Two decimals (percent and pixels alike), a dash for a missing value."""
    return Cell("–", None) if value is None else Cell(f"{value:.2f}", value)


def run_id(run: RunRecord, root) -> str:
    """A run's stable name in the page: its folder relative to the dashboard's folder."""
    rel = (
        run.job.path.relative_to(root).as_posix() if run.job.path.is_relative_to(root) else str(run.job.path)
    )
    return rel if rel != "." else run.job.path.name


def splits_of(runs: Sequence[RunRecord]) -> list[str]:
    present = list(dict.fromkeys(s for r in runs for s in r.results))
    return [s for s in SPLITS if s in present] + [s for s in present if s not in SPLITS]


def final_table(folder: Folder) -> Grid | None:
    """One row per finished run and decoder: the axes, the decoder, every metric of every split, the job."""
    runs = folder.finished
    if not runs:
        return None
    splits = splits_of(runs)
    metrics = {s: present_metrics([row for r in runs for row in r.rows(s)]) for s in splits}
    decoders = list(dict.fromkeys(d for r in runs for s in splits for d in r.results.get(s, {})))
    columns = [Column(a) for a in folder.axes] + [Column("decoder")]
    columns += [Column(f"{s} {metric_label(m)}", numeric=True) for s in splits for m in metrics[s]]
    columns.append(Column("job"))
    ordered = sorted(runs, key=lambda r: tuple(natural_key(v) for v in settings_of(r, folder.axes).values()))
    rows = []
    for run in ordered:
        labels = settings_of(run, folder.axes)
        for decoder in decoders:
            if not any(decoder in run.results.get(s, {}) for s in splits):
                continue
            cells = [Cell(v, v) for v in labels.values()] + [Cell(decoder, decoders.index(decoder))]
            for s in splits:
                values = run.results.get(s, {}).get(decoder, {})
                cells += [number_cell(values.get(m)) for m in metrics[s]]
            rid = run_id(run, folder.root)
            cells.append(Cell(rid, rid, title=" ".join(run.job.overrides)))
            rows.append(TableRow(cells, {**labels, "decoder": decoder}, rid))
    settings = sorted({k for r in runs for k in r.job.settings} - set(folder.axes), key=natural_key)
    common = ", ".join(f"{k}={settings_of(runs[0], [k])[k]}" for k in settings)
    return Grid(
        "Final results",
        f"Every metric of every decoder, from each run's results.json. Same in every run: {common or '–'}.",
        columns,
        rows,
    )


def interval_cell(interval: Interval | None) -> Cell:
    """``+1.23 ± 0.45`` (n >= 2; bold when the 95% CI excludes 0) or ``+1.23 (n=1)``; sorts by the mean."""
    if interval is None:
        return Cell("–", None)
    if interval.method == "none":
        return Cell(interval.format(), interval.mean, "a single pair: no interval")
    title = f"{interval.header(f'{UNIT}s')}: [{interval.low:+.2f}, {interval.high:+.2f}]"
    return Cell(interval.format(), interval.mean, title, "resolved" if interval.sign else "")


def effect_table(folder: Folder, split: str = "test") -> Grid | None:
    """Per group (model and the other axes) x decoder: other encoding minus the reference, paired by seed.

    None when the finished runs have fewer than two encodings.
    """
    rows = [row for r in folder.finished for row in r.rows(split)]
    encodings = list(dict.fromkeys(r.value("encoding") for r in rows))
    if len(encodings) < 2:
        return None
    ref = reference_encoding(encodings)
    others = sorted((e for e in encodings if e != ref), key=natural_key)
    # an axis that merely relabels the encoding must not split the pairs; the model never does
    group = [
        a
        for a in folder.axes
        if a not in ("encoding", UNIT) and (a == "model" or not follows_encoding(rows, a))
    ]
    metrics = present_metrics(rows)
    settings, effects = encoding_effects(rows, group, metrics, ref)
    columns = [Column(a) for a in group] + [
        Column("decoder"),
        Column("comparison"),
        Column(f"n {UNIT}s", True),
    ]
    columns += [
        Column(f"Δ {metric_label(m)}", True, "mean paired difference ± 95% CI half-width") for m in metrics
    ]
    table_rows = []
    for other in others:
        for key in settings:
            found = [effects.get((key, other, m)) for m in metrics]
            if not any(found):
                continue
            n = max(e.interval.n for e in found if e)
            *labels, decoder = key
            cells = [Cell(v, v) for v in labels] + [Cell(decoder, decoder), Cell(f"{other} − {ref}", other)]
            cells.append(Cell(str(n), n))
            cells += [interval_cell(e.interval if e else None) for e in found]
            table_rows.append(TableRow(cells, {**dict(zip(group, labels)), "decoder": decoder}))
    return Grid(
        f"Encoding effect ({split})",
        f"Runs that differ only in the encoding, paired by {UNIT}: mean difference ± half-width of its 95% "
        f"confidence interval (Student t over {UNIT}s; bold: the interval excludes 0); n=1 marks a single "
        "pair with no interval. ↑ metrics improve when positive, ↓ metrics when negative.",
        columns,
        table_rows,
    )


def run_label(run: RunRecord, axes: Sequence[str]) -> str:
    """``hourglass_tiny/quant/seed=1314``: model and encoding bare, other axes named."""
    return job_title(run.job, axes) or run.job.path.name
