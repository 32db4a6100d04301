"""What a run writes: ``results.json``, its fields and version, and the order of the metrics in it.

The one definition shared by the writer (training and evaluation) and every reader (the sweep report, and
later the dashboard and predict commands). It imports nothing else of heatlit.

``results.json``, version 2 (an object)::

    version        2 (a file without it is version 1: the same minus grid and dataset)
    choices        config group -> option the run used (model, encoding, loss, data, ...), plus
                   sigma, stride and seed
    results        stage ("val", "test") -> decoder -> metric -> number, or null when not finite
    grid           the heatmap grid: input_size [H, W], heatmap_size [h, w] or [D, h, w], stride,
                   depth_bins, depth_range_mm (3D only), mapping
    dataset        the dataset description: name, keypoints, flip_pairs, skeleton, in_channels, has_3d,
                   pck, norm, head_segment, root, oks_sigmas, monitor, multi_person (absent in files
                   written before it: read as false)
    decode_time    stage -> decoder -> {ms_per_batch (median over the stage's batches, the decoder call
                   alone), batches, batch_size (the largest batch)}; optional (absent in older files)
    ...            facts of the run: best_checkpoint, monitor, epochs, global_step, wall_time_s, device
                   (training) or checkpoint, wall_time_s (evaluation)

Beside it, the test stage writes ``per_sample.npz`` (:mod:`heatlit.per_sample`): every decoder's per-joint
test errors in input px, the scored-joint mask and the PCK(h) normaliser per sample, from which PCK(h), AUC,
RMSE and mean error recompute as results.json holds them; the report pairs decoders per test sample with it.

``ap_bound`` (test only) is the keypoint-expansion upper bound of ``ap`` (``heatlit.metrics.oks``).

Units: ratios (PCK, PCKh, AUC, AP, AR, and the multi-person ``peak_*`` precision / recall / F1 / AP) in
percent; RMSE and mean error in input pixels; MPJPE in mm.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
FILE_NAME = "results.json"

#: Column order of every results table; metrics a run did not produce are left out.
METRIC_ORDER = (
    "pckh@0.1",
    "pckh@0.5",
    "pck@0.2",
    "auc",
    "rmse",
    "mean_error",
    "mpjpe",
    "ap",
    "ap_bound",
    "ap50",
    "ap75",
    "ar",
)

#: Metrics where a smaller number is better (errors); every other metric is a ratio, higher is better.
LOWER_IS_BETTER = frozenset({"rmse", "mpjpe", "mean_error"})


class ResultsError(ValueError):
    """A results.json that cannot be read as one (missing, not JSON, or without its fields)."""


def ordered_metrics(names: Iterable[str]) -> list[str]:
    """Known metrics in the canonical order, then any others alphabetically."""
    names = set(names)
    return [m for m in METRIC_ORDER if m in names] + sorted(names - set(METRIC_ORDER))


def _clean(value: Any) -> Any:
    """Strict-JSON values: mappings with string keys, tuples as lists, non-finite floats as null."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(
    path: Path,
    choices: Mapping,
    results: Mapping,
    extra: Mapping | None = None,
    *,
    grid: Mapping | None = None,
    dataset: Mapping | None = None,
    decode_time: Mapping | None = None,
) -> Path:
    """Write ``results.json`` (the fields in the module docstring) atomically.

    Args:
        path: the file to write.
        choices: config group -> option.
        results: stage -> decoder -> metric -> value.
        extra: facts of the run (checkpoint, epochs, wall time, ...).
        grid: the heatmap grid's :meth:`~heatlit.codecs.grid.HeatmapGrid.describe`.
        dataset: the :meth:`~heatlit.data.base.DatasetDescription.to_dict` of the data.
        decode_time: stage -> decoder -> timing (see the module docstring).

    Non-finite values are written as null so the file stays strict JSON.
    """
    payload = {"version": SCHEMA_VERSION, "choices": dict(choices), "results": _clean(results)}
    if grid is not None:
        payload["grid"] = _clean(grid)
    if dataset is not None:
        payload["dataset"] = _clean(dataset)
    if decode_time:
        payload["decode_time"] = _clean(decode_time)
    payload.update(_clean(extra) if extra else {})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False))
    tmp.replace(path)  # a reader never sees half a file
    return path


@dataclass(frozen=True)
class RunResults:
    """A parsed results.json."""

    path: Path
    version: int
    choices: Mapping[str, Any]
    results: Mapping[str, Mapping[str, Mapping[str, Any]]]
    grid: Mapping[str, Any] | None = None
    dataset: Mapping[str, Any] | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)
    decode_time: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None

    def ms_per_batch(self, decoder: str, split: str = "test") -> float | None:
        """The decoder's median time per batch at ``split`` in ms, or None when the file has none."""
        value = ((self.decode_time or {}).get(split) or {}).get(decoder, {}).get("ms_per_batch")
        return float(value) if isinstance(value, int | float) else None

    def stage(self, split: str) -> Mapping[str, Mapping[str, Any]]:
        """decoder -> metric -> value of one stage; ResultsError naming what the file has otherwise."""
        stage = self.results.get(split)
        if not isinstance(stage, Mapping) or not stage:
            raise ResultsError(
                f"no '{split}' results in {FILE_NAME} (has: {', '.join(self.results) or 'none'})"
            )
        if not all(isinstance(v, Mapping) for v in stage.values()):
            raise ResultsError(f"unreadable {FILE_NAME}: results.{split} is not decoder -> metrics")
        return stage

    def monitored(self, split: str = "test") -> float | None:
        """The value, at ``split``, of the metric the run selected checkpoints by (its ``monitor``)."""
        monitor = str(self.facts.get("monitor") or "")
        parts = monitor.split("/")
        if len(parts) != 3:
            return None
        _, decoder, metric = parts
        value = self.results.get(split, {}).get(decoder, {}).get(metric)
        return float(value) if isinstance(value, int | float) else None


def read_results(path: str | Path) -> RunResults:
    """Parse a results.json of any version.

    Raises:
        ResultsError: the file is missing, unreadable, or lacks the ``results`` mapping (the message says
            which, short enough to list beside a job).
    """
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"no {FILE_NAME}")
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"unreadable {FILE_NAME}: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), dict):
        raise ResultsError(f"unreadable {FILE_NAME}: no 'results' mapping")
    version = payload.get("version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ResultsError(f"{FILE_NAME} has version {version!r}; this heatlit reads up to {SCHEMA_VERSION}")

    def mapping(key: str) -> dict | None:
        value = payload.get(key)
        return value if isinstance(value, dict) else None

    known = {"version", "choices", "results", "grid", "dataset", "decode_time"}
    return RunResults(
        path=path,
        version=version,
        choices=mapping("choices") or {},
        results=payload["results"],
        grid=mapping("grid"),
        dataset=mapping("dataset"),
        decode_time=mapping("decode_time"),
        facts={k: v for k, v in payload.items() if k not in known},
    )


def decoder_table(results: Mapping[str, Mapping[str, float]], title: str = "test"):
    """A run's console summary: a rich Table with one row per decoder and one column per metric."""
    from rich.table import Table

    metrics = ordered_metrics({m for values in results.values() for m in values})
    table = Table(title=f"{title}: every decoder on the same forward pass")
    table.add_column("decoder")
    for m in metrics:
        table.add_column(m, justify="right")
    for decoder, values in results.items():
        table.add_row(decoder, *(f"{values[m]:.3f}" if m in values else "-" for m in metrics))
    return table
