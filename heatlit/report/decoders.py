"""Decoders against a reference decoder, paired per test sample within each run (``per_sample.npz``).

Every decoder scores the same forward pass, so the difference of two decoders' metrics on one run has a
paired bootstrap interval over test samples (:func:`heatlit.report.stats.paired_bootstrap`): the resampled
rows are the same for both decoders, and the point estimate is the difference of the numbers in results.json
to float32 rounding (checked: a ``per_sample.npz`` that disagrees with its results.json is not used; an RMSE
difference pools the joints both decoders predicted finitely, all of them unless a decoder failed). The interval
is over the test samples only: it says how sure the comparison is on this trained model, not over seeds
(the encoding effect's intervals are over seeds).

The reference is ``argmax`` (the decoder every sub-pixel refinement improves on, and the one rule with no
parameters); a run that did not score it is compared against the first decoder it scored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from heatlit.per_sample import FILE_NAME, PerSample, PerSampleError, read_per_sample
from heatlit.report.collect import Row, unique_jobs
from heatlit.report.stats import RESAMPLES, Interval, paired_bootstrap, paired_effects
from heatlit.report.tables import CI, Table, sort_rows, to_markdown

REFERENCE_DECODER = "argmax"
METRICS = ("pckh@0.1", "pckh@0.5", "auc", "rmse")
UNIT = "test samples"


@dataclass
class DecoderEffects:
    """The table (one record per run and decoder, ``record["ci"]``: bootstrap intervals) and the runs left out."""

    table: Table
    reference: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (run label, why)
    over_seeds: Table | None = None  # the same differences paired by seed (Student t), when seeds vary

    @property
    def header(self) -> str:
        """``95% CI, percentile bootstrap, n=500 test samples`` (a range of n when runs differ)."""
        found = [iv for r in self.table.records for iv in r[CI].values()]
        if not found:
            return ""
        ns = sorted({iv.n for iv in found})
        n = str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
        return found[0].header(UNIT).replace(f"n={found[0].n} ", f"n={n} ")


def reference_decoder(decoders: Sequence[str]) -> str:
    """``argmax`` when scored, else the first decoder."""
    return REFERENCE_DECODER if REFERENCE_DECODER in decoders else decoders[0]


def disagreement(samples: PerSample, decoder: str, reported: Mapping[str, float | None]) -> str | None:
    """Why ``per_sample.npz`` does not belong to the run that reported ``reported`` (metric -> value) for
    ``decoder``, or None when every metric the file can give agrees."""
    for m, value in reported.items():
        try:
            mine = samples.metric(decoder, m)
        except PerSampleError as exc:
            if decoder not in samples.errors:
                return str(exc)
            continue  # a metric the file does not hold (AP, MPJPE, ...)
        if value is not None and not math.isclose(mine, value, rel_tol=1e-4, abs_tol=1e-3):
            return f"{FILE_NAME} disagrees with results.json ({decoder} {m}: {mine:.4f} vs {value:.4f})"
    return None


def load_checked(folder: Path, run: Mapping[str, Mapping[str, float | None]]) -> tuple[PerSample | None, str]:
    """A run folder's ``per_sample.npz`` when it recomputes ``run`` (decoder -> metric -> value, its
    results.json), else None and why."""
    try:
        samples = read_per_sample(folder / FILE_NAME)
    except PerSampleError as exc:
        return None, str(exc)
    why = next((w for d, values in run.items() if (w := disagreement(samples, d, values))), None)
    return (None, why) if why else (samples, "")


def bootstrap(
    samples: PerSample, a: str, b: str, metric: str, resamples: int = RESAMPLES, seed: int = 0
) -> Interval:
    """Decoder ``a`` minus decoder ``b`` on ``metric``, paired bootstrap over the test samples.

    For RMSE and mean error a joint counts when both predictions are finite (the same joints on both sides).
    """
    va, wa = samples.values(a, metric)
    vb, wb = samples.values(b, metric)
    weight = wa * wb if metric in ("rmse", "mean_error") else wa
    return paired_bootstrap(va, vb, weight, samples.reduce(metric), resamples=resamples, seed=seed)


def samples_interval(
    folder: Path, a: str, b: str, metric: str, run: Mapping[str, Mapping[str, float | None]]
) -> Interval | None:
    """:func:`bootstrap` from a run folder's ``per_sample.npz``; None when it is missing, disagrees with the
    run's results (``run``: decoder -> metric -> value) or cannot give ``metric``."""
    samples, _ = load_checked(folder, run)
    if samples is None:
        return None
    try:
        return bootstrap(samples, a, b, metric)
    except PerSampleError:
        return None


def decoder_effects(
    rows: Sequence[Row],
    axes: Sequence[str],
    metrics: Sequence[str] = METRICS,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> DecoderEffects | None:
    """Each decoder minus the reference decoder, per run, from the runs' ``per_sample.npz``.

    Args:
        rows: the sweep's rows (one per run and decoder).
        axes: the sweep's varying axes (the table's key columns, seed included).
        metrics: those the file can give (PCK(h)@a, AUC, RMSE, mean error) and the runs reported.
        resamples, seed: of the bootstrap (the same draws for every decoder of a run).

    Returns:
        None when no run scored two decoders; otherwise the table (possibly empty: see ``skipped``).
    """
    decoders = list(dict.fromkeys(r.decoder for r in rows))
    if len(decoders) < 2:
        return None
    reference = reference_decoder(decoders)
    metrics = [m for m in metrics if any(r.metrics.get(m) is not None for r in rows)]
    if not metrics:
        return None  # e.g. multi-person runs: peak detection, nothing per_sample.npz holds
    keys = [*axes, "decoder"]
    table = Table(f"decoders − {reference}, paired per test sample", keys, metrics, signed=True, note="")
    out = DecoderEffects(table, reference, over_seeds=seed_effects(rows, axes, reference, metrics))
    by_job: dict = {}
    for row in sort_rows(rows, axes):
        by_job.setdefault(row.job.path, []).append(row)
    for job in unique_jobs(rows):
        runs = {r.decoder: r for r in by_job[job.path]}
        name = "/".join(runs[next(iter(runs))].value(a) for a in axes) or job.path.name
        samples, why = load_checked(job.path, {d: r.metrics for d, r in runs.items()})
        if samples is not None and reference not in runs:
            samples, why = None, f"no {reference} results"
        if samples is None:
            out.skipped.append((name, why))
            continue
        for decoder, row in runs.items():
            if decoder == reference:
                continue
            record = {k: row.value(k) for k in keys}
            record[CI] = {}
            for m in metrics:
                if row.metrics.get(m) is None or runs[reference].metrics.get(m) is None:
                    record[m] = None
                    continue
                iv = bootstrap(samples, decoder, reference, m, resamples, seed)
                record[m], record[CI][m] = iv.mean, iv
            table.records.append(record)
    return out


def seed_effects(
    rows: Sequence[Row], axes: Sequence[str], reference: str, metrics: Sequence[str]
) -> Table | None:
    """Each decoder minus ``reference`` per setting, paired by seed: mean and Student t interval over seeds
    (from results.json alone). None unless the sweep varies the seed."""
    if "seed" not in axes:
        return None
    group = [a for a in axes if a != "seed"]
    records = [
        {"setting": tuple(row.value(a) for a in group), "decoder": row.decoder, "seed": row.value("seed"),
         "metric": m, "value": row.metrics.get(m)}
        for row in sort_rows(rows, group)
        for m in metrics
    ]  # fmt: skip
    effects = {
        (e.group["setting"], e.level, e.group["metric"]): e
        for e in paired_effects(records, "decoder", reference)
    }
    table = Table(f"decoders − {reference}, paired by seed", [*group, "decoder"], list(metrics), signed=True)
    for setting in dict.fromkeys(r["setting"] for r in records):
        for decoder in dict.fromkeys(r["decoder"] for r in records if r["setting"] == setting):
            found = {m: effects.get((setting, decoder, m)) for m in metrics}
            if decoder == reference or not any(found.values()):
                continue
            record = dict(zip(group, setting)) | {"decoder": decoder}
            record.update({m: e.interval.mean if e else None for m, e in found.items()})
            record[CI] = {m: e.interval for m, e in found.items() if e}
            table.records.append(record)
    return table


def decoder_markdown(effects: DecoderEffects) -> str:
    """The report.md section: per run (bootstrap over test samples), then over seeds (Student t) when the
    sweep has several; **bold**: resolved; the runs left out."""
    lines = [
        f"## Decoders against {effects.reference}, paired per test sample\n",
        f"Each decoder's metric minus {effects.reference}'s on the same forward pass of the same run: the "
        f"difference and its {effects.header or '95% CI, percentile bootstrap over test samples'} "
        "(the same resampled samples for both decoders); **bold**: the interval excludes 0. "
        "↑ metrics improve when positive, ↓ metrics when negative.\n",
    ]
    if effects.table.records:
        lines.append(to_markdown(effects.table, bold_resolved=True))
    if effects.skipped:
        lines.append("".join(f"- not compared: `{name}`: {why}\n" for name, why in effects.skipped))
    over = effects.over_seeds
    if over is not None and over.records:
        lines += [
            "### Over seeds\n",
            f"The same differences from results.json, paired by seed: {over.intervals.replace('cells: mean', 'mean paired difference')} "
            "(the interval covers training noise; the one above, test-sample noise).\n",
            to_markdown(over, bold_resolved=True),
        ]
    return "\n".join(lines)
