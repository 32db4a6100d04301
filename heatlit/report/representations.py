"""The representations table: every coordinate representation of a sweep with its best decoder, ranked.

Reads a multirun whose jobs differ by ``representation`` (conf/representation/) and seed, e.g.
``python -m heatlit.sweep representations_cpu``. Per representation (jobs with the same settings but the seed):

- **best decoder**: the decoder with the highest mean *validation* score over seeds (the data's monitored metric,
  PCKh@0.1 on the depth data), so the test numbers shown are not the ones it was picked by (the last validation
  epoch's results; test when a job has none);
- **test metrics** of that decoder: mean and 95% confidence interval over seeds (Student t, :func:`interval`);
- **Δ vs reference**: the per-seed paired difference to the reference representation's best decoder (``gaussian``,
  Gaussian heatmaps w/o quant, when present), mean and 95% CI over the seeds both have;
- **decode time**: the median over seeds of each job's median test time per batch of that decoder
  (results.json ``decode_time``: the decoder call alone, measured in the same run).

Rows are ranked by the monitored metric's mean (higher first), ties by RMSE; the RMSE rank is a column.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from heatlit.report.collect import Job, Row, collect, label, natural_key, unique_jobs, varying_axes
from heatlit.report.stats import mean_interval
from heatlit.report.tables import LOWER_IS_BETTER, metric_label
from heatlit.results import FILE_NAME, ResultsError, read_results

LEVEL = 0.95
REFERENCE = "gaussian"
# Settings a representation fixes: never shown beside it (they vary with it by construction).
IMPLIED = ("encoding", "loss", "output", "decoders", "data.grid_mapping", "seed")


def interval(values: Sequence[float]) -> tuple[float, float]:
    """``(mean, half-width)`` of the two-sided 95% Student-t confidence interval of the mean over seeds
    (:func:`heatlit.report.stats.mean_interval`). Half-width ``inf`` for fewer than two values: no interval
    from one seed.
    """
    iv = mean_interval(list(values))
    return iv.mean, math.inf if iv.method == "none" else iv.half_width


@dataclass
class Entry:
    """One representation (all seeds): its best decoder and that decoder's numbers."""

    key: tuple[str, ...]
    jobs: list[Job]
    decoder: str = ""
    picked_on: str = "val"
    test: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> seed -> value
    ms_per_batch: float | None = None
    batch_size: int | None = None
    delta: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # metric -> (mean, half, n)

    def stat(self, metric: str) -> tuple[float, float] | None:
        values = list(self.test.get(metric, {}).values())
        return interval(values) if values else None


def _seed(job: Job) -> str:
    return label(job.settings.get("seed"))


def _split_values(rows: Iterable[Row]) -> dict[tuple[str, str], dict[str, float | None]]:
    """(job path, decoder) -> metrics."""
    return {(str(r.job.path), r.decoder): dict(r.metrics) for r in rows}


def _best_decoder(jobs: list[Job], decoders: list[str], scores: Mapping, metric: str) -> str | None:
    """The decoder with the best mean ``metric`` over ``jobs`` (None when no decoder has a value in every job)."""
    best, best_value = None, None
    for decoder in decoders:
        values = [scores.get((str(j.path), decoder), {}).get(metric) for j in jobs]
        if any(v is None for v in values):
            continue
        mean = statistics.fmean(values)
        better = best_value is None or (mean < best_value if metric in LOWER_IS_BETTER else mean > best_value)
        if better:
            best, best_value = decoder, mean
    return best


def _decode_time(jobs: list[Job], decoder: str) -> tuple[float | None, int | None]:
    """Median over jobs of their median test ms per batch, and the batch size."""
    times, sizes = [], []
    for job in jobs:
        try:
            run = read_results(job.path / FILE_NAME)
        except ResultsError:
            continue
        ms = run.ms_per_batch(decoder, "test")
        if ms is not None:
            times.append(ms)
            sizes.append(((run.decode_time or {}).get("test") or {}).get(decoder, {}).get("batch_size"))
    size = max((s for s in sizes if isinstance(s, int)), default=None)
    return (statistics.median(times) if times else None), size


@dataclass
class RepresentationTable:
    """The ranked table and what it was built from."""

    columns: list[str]  # the key columns (representation first)
    metrics: list[str]  # rank metric, then the others
    entries: list[Entry]
    reference: Entry | None
    seeds: int

    def ranked(self) -> list[Entry]:
        rank, rmse = self.metrics[0], "rmse"

        def key(entry: Entry):
            main, err = entry.stat(rank), entry.stat(rmse)
            sign = 1 if rank in LOWER_IS_BETTER else -1
            return (sign * main[0] if main else math.inf, err[0] if err else math.inf)

        return sorted(self.entries, key=key)


def build_table(multirun_dir: str | Path) -> RepresentationTable:
    """Group the jobs of ``multirun_dir`` by representation, pick each one's best decoder, gather the numbers."""
    test_rows, _ = collect(multirun_dir, "test")
    val_rows, _ = collect(multirun_dir, "val")
    jobs = unique_jobs(test_rows)
    if not jobs:
        raise ValueError(f"no finished job with test results under {multirun_dir}")
    test, val = _split_values(test_rows), _split_values(val_rows)
    main = "representation" if any("representation" in j.settings for j in jobs) else "encoding"
    axes = [a for a in varying_axes(jobs) if a not in IMPLIED and a != main]
    # an axis that the representation determines (the model of a one-model sweep, ...) is not a column
    axes = [
        a
        for a in axes
        if len({(label(j.settings.get(main)), label(j.settings.get(a))) for j in jobs})
        > len({label(j.settings.get(main)) for j in jobs})
    ]
    columns = [main, *axes]
    groups: dict[tuple[str, ...], list[Job]] = defaultdict(list)
    for job in jobs:
        groups[tuple(label(job.settings.get(c)) for c in columns)].append(job)
    monitor = next(
        (j.dataset.get("monitor") for j in jobs if j.dataset and j.dataset.get("monitor")), "pckh@0.1"
    )
    present = {m for r in test_rows for m, v in r.metrics.items() if v is not None}
    metrics = [m for m in dict.fromkeys([monitor, "pckh@0.5", "rmse"]) if m in present]
    decoders_of = defaultdict(list)
    for row in test_rows:
        decoders_of[str(row.job.path)].append(row.decoder)

    entries = []
    for key, members in sorted(groups.items(), key=lambda kv: [natural_key(k) for k in kv[0]]):
        decoders = list(dict.fromkeys(d for j in members for d in decoders_of[str(j.path)]))
        entry = Entry(key, members)
        picked = _best_decoder(members, decoders, val, monitor)
        if picked is None:
            picked, entry.picked_on = _best_decoder(members, decoders, test, monitor), "test"
        if picked is None:
            continue
        entry.decoder = picked
        for metric in metrics:
            entry.test[metric] = {
                _seed(j): v
                for j in members
                if (v := test.get((str(j.path), picked), {}).get(metric)) is not None
            }
        entry.ms_per_batch, entry.batch_size = _decode_time(members, picked)
        entries.append(entry)

    reference = next((e for e in entries if e.key[0] == REFERENCE and len(e.key) == 1), None)
    if reference is not None:
        for entry in entries:
            for metric in metrics:
                mine, theirs = entry.test.get(metric, {}), reference.test.get(metric, {})
                diffs = [mine[s] - theirs[s] for s in mine if s in theirs]
                if diffs and entry is not reference:
                    entry.delta[metric] = (*interval(diffs), len(diffs))
    seeds = max((len(e.jobs) for e in entries), default=0)
    return RepresentationTable(columns, metrics, entries, reference, seeds)


def _pm(stat: tuple[float, float] | None, signed: bool = False) -> str:
    if stat is None:
        return "–"
    mean, half = stat[0], stat[1]
    text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    return text if math.isinf(half) else f"{text} ± {half:.2f}"


def to_markdown(table: RepresentationTable) -> str:
    """The ranked table as Markdown, with a note on how it was made."""
    rank_metric = table.metrics[0]
    delta_metrics = [m for m in table.metrics if m != "pckh@0.5"]
    header = [
        "rank",
        *table.columns,
        "best decoder",
        "seeds",
        *(metric_label(m) for m in table.metrics),
        *(f"Δ {metric_label(m, arrow=False)} vs {REFERENCE}" for m in delta_metrics if table.reference),
        "RMSE rank" if "rmse" in table.metrics else None,
        "decode ms / batch",
    ]
    header = [h for h in header if h is not None]
    by_rmse = sorted(table.entries, key=lambda e: (e.stat("rmse") or (math.inf,))[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for rank, entry in enumerate(table.ranked(), 1):
        cells = [
            str(rank),
            *entry.key,
            f"{entry.decoder}{' (picked on test)' if entry.picked_on == 'test' else ''}",
        ]
        cells.append(str(len(entry.jobs)))
        cells += [_pm(entry.stat(m)) for m in table.metrics]
        if table.reference:
            for m in delta_metrics:
                d = entry.delta.get(m)
                cells.append("ref." if entry is table.reference else _pm(d[:2], signed=True) if d else "–")
        if "rmse" in table.metrics:
            cells.append(str(by_rmse.index(entry) + 1))
        ms = entry.ms_per_batch
        cells.append(
            "–" if ms is None else f"{ms:.2f}" + (f" (B={entry.batch_size})" if entry.batch_size else "")
        )
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        f"Ranked by test {metric_label(rank_metric, arrow=False)} (mean over seeds); ± is the half-width of the "
        f"{LEVEL:.0%} Student-t interval over seeds (none from one seed). Each representation's decoder was "
        f"picked by its mean validation {metric_label(rank_metric, arrow=False)}. Δ: paired by seed against "
        f"{REFERENCE}'s best decoder. Decode time: median over seeds of each run's median time per test batch, "
        "the decoder call alone."
    )
    return "\n".join(lines) + "\n\n" + note + "\n"


def write_csv(table: RepresentationTable, path: Path) -> Path:
    """One row per representation: keys, decoder, seeds, then mean / CI half-width / n per metric, decode time."""
    with Path(path).open("w", newline="") as f:
        writer = csv.writer(f)
        header = [*table.columns, "decoder", "picked_on", "seeds"]
        for m in table.metrics:
            header += [m, f"{m}_ci95", f"delta_{m}", f"delta_{m}_ci95"]
        writer.writerow([*header, "ms_per_batch", "batch_size"])
        for entry in table.ranked():
            row = [*entry.key, entry.decoder, entry.picked_on, len(entry.jobs)]
            for m in table.metrics:
                mean, half = entry.stat(m) or (None, None)
                d = entry.delta.get(m, (None, None, 0))
                row += [mean, half, d[0], d[1]]
            writer.writerow([*row, entry.ms_per_batch, entry.batch_size])
    return Path(path)


def varies_by_representation(jobs: Iterable[Job]) -> bool:
    """True when the jobs ran more than one representation (the report then adds this table)."""
    return len({label(j.settings.get("representation")) for j in jobs if "representation" in j.settings}) > 1
