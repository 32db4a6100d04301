"""The sweep's tables (results and encoding effect) and their Markdown, CSV and rich renderings."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from heatlit.report.collect import Row, natural_key
from heatlit.report.stats import Effect, Interval, mean_interval, paired_effects
from heatlit.results import LOWER_IS_BETTER, ordered_metrics

# Table 2 of the reproduction: these columns, when present, in METRIC_ORDER.
TABLE_METRICS = frozenset({"pckh@0.1", "pckh@0.5", "rmse", "mpjpe", "ap"})
LABELS = {
    "pckh@0.1": "PCKh@0.1",
    "pckh@0.5": "PCKh@0.5",
    "pck@0.2": "PCK@0.2",
    "auc": "AUC",
    "rmse": "RMSE",
    "mean_error": "mean error",
    "mpjpe": "MPJPE (mm)",
    "ap": "AP",
    "ap50": "AP50",
    "ap75": "AP75",
    "ar": "AR",
}
REFERENCE_ENCODING = "quant"  # the effect is always "other encoding minus quantised"
MISSING = "–"
UNIT = "seed"  # what repeats a setting: cells over several runs average over it
CI = "ci"  # a record's metric -> Interval, when its cells average several runs


@dataclass
class Table:
    """Key columns (text) and metric columns (float or None) shared by every rendering.

    A record whose cells average several runs also holds ``record["ci"]``: metric -> :class:`Interval`
    (its mean is the cell's value); such a table says what its intervals are in :attr:`intervals`.
    """

    title: str
    keys: list[str]
    metrics: list[str]
    records: list[dict] = field(default_factory=list)
    signed: bool = False  # differences print with a sign
    note: str = ""

    @property
    def intervals(self) -> str:
        """``"cells: mean ± half-width, 95% CI, Student t, n=3 seeds"``, ``"single runs (n=1 seed): no
        interval"``, or ``""`` for a table without intervals; n given as a range when groups differ."""
        found = [iv for r in self.records for iv in r.get(CI, {}).values()]
        if not found:
            return ""
        ns = sorted({iv.n for iv in found})
        if ns == [1]:
            return f"single runs (n=1 {UNIT}): no interval"
        n = str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
        shown = next(iv for iv in found if iv.n > 1)
        text = shown.header(f"{UNIT}s").replace(f"n={shown.n} ", f"n={n} ")
        return f"cells: mean ± half-width, {text}" + ("; (n=1): a single run" if ns[0] == 1 else "")


_PEAK_LABELS = {
    "peak_ap": "AP",
    "peak_f1": "F1",
    "peak_p": "P",
    "peak_r": "R",
}  # heatlit.metrics.PeakDetection


def metric_label(metric: str, arrow: bool = True) -> str:
    """Column header: ``PCKh@0.1 ↑``, ``RMSE ↓``, ``F1@2px ↑`` (multi-person peaks, distance in input px)."""
    kind, _, at = metric.partition("@")
    name = LABELS.get(metric) or (
        f"{_PEAK_LABELS[kind]}{f'@{at}px' if at else ' (mean)'}" if kind in _PEAK_LABELS else metric
    )
    return f"{name} {'↓' if metric in LOWER_IS_BETTER else '↑'}" if arrow else name


def fmt(value: float | None, signed: bool = False) -> str:
    """Two decimals (percent and pixels alike), a dash for a missing value."""
    if value is None:
        return MISSING
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def cell(table: Table, record: dict, metric: str) -> str:
    """A metric cell: ``12.34``; ``12.34 ± 0.56`` over several runs; ``12.34 (n=1)`` beside such cells."""
    iv = record.get(CI, {}).get(metric)
    if iv is None or record.get(metric) is None or (iv.n == 1 and table.intervals.startswith("single")):
        return fmt(record.get(metric), table.signed)
    return iv.format(signed=table.signed)


def present_metrics(rows: Iterable[Row]) -> list[str]:
    """Every metric any row has a value for, in the canonical column order."""
    return ordered_metrics({m for row in rows for m, v in row.metrics.items() if v is not None})


def table_metrics(rows: Sequence[Row]) -> list[str]:
    """Table 2's columns among those present; every present metric when none of them is."""
    present = present_metrics(rows)
    return [m for m in present if m in TABLE_METRICS] or present


def decoder_order(rows: Iterable[Row]) -> dict[str, int]:
    """Decoders in the order the runs scored them (argmax, standard, dark, ...), not alphabetically."""
    return {d: i for i, d in enumerate(dict.fromkeys(row.decoder for row in rows))}


def sort_rows(rows: Sequence[Row], axes: Sequence[str]) -> list[Row]:
    """Rows grouped by each axis in turn (numbers by value), decoders last in run order."""
    order = decoder_order(rows)
    return sorted(rows, key=lambda r: (*(natural_key(r.value(a)) for a in axes), order[r.decoder]))


def results_table(
    rows: Sequence[Row],
    axes: Sequence[str],
    metrics: Sequence[str] | None = None,
    split: str = "test",
    per_run: bool = False,
) -> Table:
    """One record per job and decoder: the axes, the decoder, then the metrics.

    When the runs vary the seed (and ``per_run`` is False), one record per setting and decoder instead:
    each cell the mean over seeds with its 95% Student t interval (``record["ci"]``).
    """
    metrics = list(metrics) if metrics is not None else table_metrics(rows)
    if UNIT in axes and not per_run:
        return averaged_table(rows, [a for a in axes if a != UNIT], metrics, split)
    table = Table(f"{split}: {' x '.join([*axes, 'decoder'])}", [*axes, "decoder"], metrics)
    for row in sort_rows(rows, axes):
        record = {k: row.value(k) for k in table.keys}
        record.update({m: row.metrics.get(m) for m in metrics})
        record["job"] = row.job.path
        table.records.append(record)
    return table


def averaged_table(rows: Sequence[Row], group: Sequence[str], metrics: Sequence[str], split: str) -> Table:
    """Per setting (``group``) and decoder, every metric's mean over the runs (seeds) with its interval."""
    keys = [*group, "decoder"]
    table = Table(f"{split}: {' x '.join(keys)}, mean over {UNIT}s", keys, metrics)
    by_key: dict[tuple, list[Row]] = {}
    for row in sort_rows(rows, group):
        by_key.setdefault(tuple(row.value(k) for k in keys), []).append(row)
    for key, runs in by_key.items():
        record: dict = dict(zip(keys, key))
        record[CI] = {}
        for m in metrics:
            values = [v for r in runs if (v := r.metrics.get(m)) is not None]
            record[CI][m] = mean_interval(values) if values else None
            record[m] = record[CI][m].mean if values else None
        table.records.append(record)
    return table


def reference_encoding(encodings: Sequence[str]) -> str:
    """What the other encodings are compared against: ``quant`` when present, else the first."""
    return REFERENCE_ENCODING if REFERENCE_ENCODING in encodings else sorted(encodings, key=natural_key)[0]


def follows_encoding(rows: Sequence[Row], axis: str) -> bool:
    """Whether ``axis`` is a one-to-one relabelling of the encoding (``encoding.quantize=true``).

    Such an axis must not split the pairs being compared, or no encoding would meet its counterpart.
    """
    pairs = {(r.value("encoding"), r.value(axis)) for r in rows}
    return len(pairs) == len({e for e, _ in pairs}) == len({a for _, a in pairs})


def effect_table(
    rows: Sequence[Row], axes: Sequence[str], metrics: Sequence[str] | None = None
) -> Table | None:
    """Per model (and other axes) x decoder: each encoding's metrics minus the reference encoding's.

    Runs are paired by seed (same model, seed and every other axis; :func:`~heatlit.report.stats.paired_effects`):
    each cell is the mean paired difference, with its 95% Student t interval over seeds in ``record["ci"]``.
    Returns None when the sweep has a single encoding. Positive differences are improvements for the ↑
    metrics, negative ones for the ↓ metrics.
    """
    encodings = list(dict.fromkeys(r.value("encoding") for r in rows))
    if len(encodings) < 2:
        return None
    metrics = list(metrics) if metrics is not None else table_metrics(rows)
    ref = reference_encoding(encodings)
    others = sorted((e for e in encodings if e != ref), key=natural_key)
    # the model never follows the encoding: comparing two models would pass for an encoding effect
    group = [
        a for a in axes if a not in ("encoding", UNIT) and (a == "model" or not follows_encoding(rows, a))
    ]
    keys = [*group, "decoder"] + (["encoding"] if len(others) > 1 else [])
    title = f"encoding effect: {others[0]} − {ref}" if len(others) == 1 else f"encoding effect: each − {ref}"
    table = Table(
        title, keys, metrics, signed=True, note="↑ metrics improve when positive, ↓ metrics when negative"
    )
    settings, effects = encoding_effects(rows, group, metrics, ref)
    for other in others:
        for setting in settings:
            found = {m: effects.get((setting, other, m)) for m in metrics}
            if not any(found.values()):
                continue
            record = dict(zip([*group, "decoder"], setting)) | (
                {"encoding": other} if len(others) > 1 else {}
            )
            record.update({m: e.interval.mean if e else None for m, e in found.items()})
            record[CI] = {m: e.interval for m, e in found.items() if e}
            table.records.append(record)
    return table


def encoding_effects(
    rows: Sequence[Row], group: Sequence[str], metrics: Sequence[str], reference: str
) -> tuple[list[tuple], dict[tuple, Effect]]:
    """Runs paired by seed (:func:`~heatlit.report.stats.paired_effects`) within each setting of ``group`` and
    decoder: the settings ``(*group values, decoder)`` in sweep order, and ``(setting, encoding, metric)`` ->
    the :class:`~heatlit.report.stats.Effect` of that encoding minus ``reference``.

    The first job wins when a directory holds the same setting and seed twice.
    """
    seen: set[tuple] = set()
    records = []
    for row in sort_rows(rows, group):
        setting = tuple(row.value(a) for a in [*group, "decoder"])
        run = {"setting": setting, "encoding": row.value("encoding"), UNIT: row.value(UNIT)}
        if tuple(run.values()) in seen:
            continue
        seen.add(tuple(run.values()))
        records += [{**run, "metric": m, "value": row.metrics.get(m)} for m in metrics]
    effects = paired_effects(records, "encoding", reference)
    found = {(e.group["setting"], e.level, e.group["metric"]): e for e in effects}
    return list(dict.fromkeys(r["setting"] for r in records)), found


def difference(a: float | None, b: float | None) -> float | None:
    """``a - b``, or None when either is missing."""
    return None if a is None or b is None else a - b


def best_values(table: Table, within: Sequence[str]) -> dict[tuple, dict[str, float]]:
    """The best value of each metric per group of records sharing the ``within`` keys."""
    best: dict[tuple, dict[str, float]] = {}
    for record in table.records:
        group = best.setdefault(tuple(record[k] for k in within), {})
        for m in table.metrics:
            v = record.get(m)
            if v is None:
                continue
            pick = min if m in LOWER_IS_BETTER else max
            group[m] = v if m not in group else pick(group[m], v)
    return best


def to_markdown(
    table: Table, bold_best_within: Sequence[str] | None = None, bold_resolved: bool = False
) -> str:
    """A GitHub Markdown table; with ``bold_best_within``, each group's best value per metric in bold; with
    ``bold_resolved``, every cell whose interval excludes 0."""
    best = best_values(table, bold_best_within) if bold_best_within is not None else {}
    header = [*table.keys, *(("Δ " if table.signed else "") + metric_label(m) for m in table.metrics)]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] * len(table.keys) + ["---:"] * len(table.metrics)) + " |",
    ]
    for record in table.records:
        group = best.get(tuple(record[k] for k in bold_best_within)) if best else None
        cells = [_escape(str(record[k])) for k in table.keys]
        for m in table.metrics:
            text = cell(table, record, m)
            bold = group is not None and record.get(m) is not None and group.get(m) == record[m]
            if bold_resolved:
                iv = record.get(CI, {}).get(m)
                bold = iv is not None and iv.sign != 0
            cells.append(f"**{text}**" if bold else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def write_csv(table: Table, path: Path, root: Path | None = None) -> Path:
    """The table as CSV: raw metric names as headers, full-precision numbers, empty for missing.

    A ``job`` column (relative to ``root``) is added when the records carry one; ``<metric>_ci95_low`` /
    ``_ci95_high`` / ``_n`` columns when they carry intervals (empty ends: a single run, no interval).
    """
    with_job = bool(table.records) and "job" in table.records[0]
    with_ci = any(CI in r for r in table.records)
    ci_columns = [f"{m}_{part}" for m in table.metrics for part in ("ci95_low", "ci95_high", "n")]
    header = [*table.keys, *table.metrics] + (ci_columns if with_ci else []) + (["job"] if with_job else [])
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for record in table.records:
            values = [record[k] for k in table.keys]
            values += ["" if record.get(m) is None else repr(record[m]) for m in table.metrics]
            if with_ci:
                for m in table.metrics:
                    iv: Interval | None = record.get(CI, {}).get(m)
                    bounded = iv is not None and iv.method != "none"
                    values += [
                        repr(iv.low) if bounded else "",
                        repr(iv.high) if bounded else "",
                        iv.n if iv else "",
                    ]
            if with_job:
                job = Path(record["job"])
                values.append(
                    (job.relative_to(root) if root and job.is_relative_to(root) else job).as_posix()
                )
            writer.writerow(values)
    return path


def to_rich(table: Table):
    """The table for the console."""
    from rich.table import Table as RichTable

    caption = "; ".join(t for t in (table.intervals, table.note) if t)
    out = RichTable(title=table.title, caption=caption or None)
    for k in table.keys:
        out.add_column(k)
    for m in table.metrics:
        out.add_column(("Δ " if table.signed else "") + metric_label(m), justify="right")
    for record in table.records:
        out.add_row(*(str(record[k]) for k in table.keys), *(cell(table, record, m) for m in table.metrics))
    return out
