"""Find the jobs of a Hydra multirun and read what each one left behind.

A job is any directory holding ``.hydra/overrides.yaml``; it finished when its ``results.json`` parses
and has the requested split. Everything else is a :class:`FailedJob`, reported and never fatal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from heatlit.report.failures import LOG_LINE, diagnose
from heatlit.results import FILE_NAME, ResultsError, RunResults, read_results

# Axes always shown, in this order, whether or not they vary: they are what Table 2 is about.
FIXED_AXES = ("model", "encoding")
# Axes that, when they vary, come next in this order; anything else varying follows as found.
PREFERRED_AXES = ("loss", "head", "stride", "sigma", "data", "optim", "trainer", "seed")


class ReportError(RuntimeError):
    """Nothing to report: the directory is missing or no job in it finished."""


@dataclass(frozen=True)
class Job:
    """A finished job: where it ran, how it was configured and what it cost."""

    path: Path
    overrides: tuple[str, ...]
    # choices from results.json, then override keys not among them: everything that can tell jobs apart
    settings: Mapping[str, Any]
    wall_time_s: float | None = None
    device: str | None = None
    qualitative: Path | None = None
    grid: Mapping[str, Any] | None = None  # results.json's grid and dataset (None: written before version 2)
    dataset: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Row:
    """One decoder's metrics from one finished job: a line of the results table."""

    job: Job
    decoder: str
    metrics: Mapping[str, float | None] = field(default_factory=dict)

    def value(self, axis: str) -> str:
        """This row's label on an axis (``decoder`` or a setting such as ``model``)."""
        return self.decoder if axis == "decoder" else label(self.job.settings.get(axis))


@dataclass(frozen=True)
class FailedJob:
    """A job without usable results: crashed, still running, or its results.json is damaged.

    ``line`` is the last error line of the job's logs (``line_kind`` :data:`~heatlit.report.failures.ERROR_LINE`,
    found in ``line_source``), else the last line any log wrote (:data:`~heatlit.report.failures.LOG_LINE`), else
    None (no log at all).
    """

    path: Path
    overrides: tuple[str, ...]
    status: str
    line: str | None = None
    line_kind: str = LOG_LINE
    line_source: Path | None = None

    def describe(self) -> str:
        """``<status>; last error line (train.log): <line>``; the status alone when no log wrote a line."""
        if self.line is None:
            return self.status
        where = ""
        if self.line_source is not None:
            src = self.line_source  # the job's own log, or a launcher's capture outside the job folder
            where = (
                f" ({src.relative_to(self.path).as_posix() if src.is_relative_to(self.path) else src.name})"
            )
        return f"{self.status}; {self.line_kind}{where}: {self.line}"


def label(value: Any) -> str:
    """A setting as text; numbers compactly (``2.0`` -> ``2``) so ``stride=4`` and ``4`` agree."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"{value:g}"
    return str(value)


def natural_key(text: str) -> tuple:
    """Sort numbers by value, anything else as text: stride 2 before stride 16, job 2 before job 10."""
    try:
        return (0, float(text), "")
    except ValueError:
        parts = re.split(r"(\d+)", text)
        return (1, 0.0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts))


def find_job_dirs(root: Path) -> list[Path]:
    """Every directory under ``root`` (itself included) that Hydra ran a job in."""
    found = {p.parent.parent for p in root.rglob("overrides.yaml") if p.parent.name == ".hydra"}
    return sorted(found, key=lambda p: natural_key(p.relative_to(root).as_posix()))


def read_yaml(path: Path) -> Any:
    """A YAML file's content; None when it is missing or unreadable."""
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def read_overrides(job_dir: Path) -> tuple[str, ...]:
    """The job's command-line overrides; empty when the file is unreadable (that alone is no failure)."""
    loaded = read_yaml(job_dir / ".hydra" / "overrides.yaml")
    return tuple(str(o) for o in loaded) if isinstance(loaded, list) else ()


def hydra_job(job_dir: Path) -> tuple[dict[str, Any], int | None, str | None]:
    """The job's config-group choices (as results.json's ``choices`` would hold them, plus the seed), its
    Hydra job number and launcher, from ``.hydra/``: what a job that never wrote results.json still tells."""
    hydra = (read_yaml(job_dir / ".hydra" / "hydra.yaml") or {}).get("hydra") or {}
    runtime = hydra.get("runtime") or {}
    choices = {
        str(k): v
        for k, v in (runtime.get("choices") or {}).items()
        if "@" not in str(k) and not str(k).startswith("hydra/")  # decoders are scored, not chosen
    }
    config = read_yaml(job_dir / ".hydra" / "config.yaml")
    if isinstance(config, dict) and "seed" in config:
        choices["seed"] = config["seed"]
    num = (hydra.get("job") or {}).get("num")
    launcher = (runtime.get("choices") or {}).get("hydra/launcher")
    return choices, num if isinstance(num, int) else None, launcher


def parse_overrides(overrides: Iterable[str]) -> dict[str, str]:
    """``key=value`` overrides as a dict; ``+``/``++`` prefixes dropped, deletions and ``hydra.*`` skipped."""
    parsed: dict[str, str] = {}
    for item in overrides:
        if item.startswith("~") or "=" not in item:
            continue
        key, value = item.lstrip("+").split("=", 1)
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            continue  # launcher and output settings do not change the experiment
        parsed[key] = value
    return parsed


def number(value: Any) -> float | None:
    """A metric value as float, or None for null, NaN and anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        out = float(value)
    except ValueError:
        return None
    return out if math.isfinite(out) else None


def read_job_results(job_dir: Path, split: str) -> tuple[RunResults | None, str]:
    """The parsed ``results.json`` and ``"ok"``, or None and why the job counts as failed."""
    try:
        run = read_results(job_dir / FILE_NAME)
        run.stage(split)
    except ResultsError as exc:
        status = str(exc)
        return None, f"failed: {status}" if status == f"no {FILE_NAME}" else status
    return run, "ok"


def make_job(job_dir: Path, overrides: tuple[str, ...], run: RunResults) -> Job:
    """A :class:`Job` from its directory, overrides and parsed results.json."""
    settings = dict(run.choices)
    for key, value in parse_overrides(overrides).items():
        settings.setdefault(key, value)  # choices are typed (stride 4, not "4"); prefer them
    qualitative = job_dir / "qualitative.png"
    device = run.facts.get("device")
    return Job(
        path=job_dir,
        overrides=overrides,
        settings=settings,
        wall_time_s=number(run.facts.get("wall_time_s")),
        device=str(device) if device is not None else None,
        qualitative=qualitative if qualitative.is_file() else None,
        grid=run.grid,
        dataset=run.dataset,
    )


def job_rows(job: Job, split_results: Mapping[str, Mapping]) -> list[Row]:
    """One row per decoder the job scored, metrics coerced to float or None."""
    return [
        Row(job, str(decoder), {str(m): number(v) for m, v in metrics.items()})
        for decoder, metrics in split_results.items()
    ]


def failed_job(job_dir: Path, root: Path, overrides: tuple[str, ...], status: str) -> FailedJob:
    """A job without usable results, with the last error line its logs hold (:func:`diagnose`)."""
    _, num, _ = hydra_job(job_dir)
    _, line, kind, source = diagnose(job_dir, root, num)
    return FailedJob(job_dir, overrides, status, line, kind, source)


def collect(multirun_dir: str | Path, split: str = "test") -> tuple[list[Row], list[FailedJob]]:
    """Read every job of a multirun (or a single run) directory.

    Args:
        multirun_dir: ``multirun/<group>/<timestamp>`` (searched recursively for ``.hydra/overrides.yaml``).
        split: which stage of ``results.json`` to read (``test`` or ``val``).

    Returns:
        ``(rows, failed)``: one :class:`Row` per finished job and decoder, in job order, and one
        :class:`FailedJob` per job without usable results.

    Raises:
        ReportError: when ``multirun_dir`` is not a directory.
    """
    root = Path(multirun_dir)
    if not root.is_dir():
        raise ReportError(f"{root}: {'not a directory' if root.exists() else 'no such directory'}")
    rows: list[Row] = []
    failed: list[FailedJob] = []
    for job_dir in find_job_dirs(root):
        overrides = read_overrides(job_dir)
        run, status = read_job_results(job_dir, split)
        if run is None:
            failed.append(failed_job(job_dir, root, overrides, status))
            continue
        rows.extend(job_rows(make_job(job_dir, overrides, run), run.stage(split)))
    return rows, failed


def unique_jobs(rows: Iterable[Row]) -> list[Job]:
    """The jobs behind ``rows``, each once, in order of appearance."""
    seen: dict[Path, Job] = {}
    for row in rows:
        seen.setdefault(row.job.path, row.job)
    return list(seen.values())


def _comparable(text: str) -> str:
    """Override strings against typed choices: ``"4"`` and ``4`` (labelled ``4``) compare equal."""
    try:
        return f"{float(text):g}"
    except ValueError:
        return text


def varying_axes(jobs: list[Job]) -> list[str]:
    """The settings that tell the jobs apart, model and encoding always first.

    A setting that differs across jobs is an axis unless an earlier axis carries exactly the same
    values (``stride`` from choices and ``data.stride`` from the overrides are one axis).
    """
    keys = list(dict.fromkeys(k for job in jobs for k in job.settings))
    ordered = [*FIXED_AXES, *(k for k in PREFERRED_AXES if k in keys), *keys]
    axes: list[str] = []
    seen_columns: set[tuple[str, ...]] = set()
    for key in dict.fromkeys(ordered):
        column = tuple(_comparable(label(job.settings.get(key))) for job in jobs)
        if key in FIXED_AXES or (len(set(column)) > 1 and column not in seen_columns):
            axes.append(key)
        seen_columns.add(column)
    return axes


def read_sweep(multirun_dir: Path) -> dict[str, Any]:
    """The sweep's command-line overrides and sweeper params from ``multirun.yaml`` (empty if absent)."""
    try:
        hydra = (yaml.safe_load((multirun_dir / "multirun.yaml").read_text()) or {}).get("hydra") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return {}
    overrides = (hydra.get("overrides") or {}).get("task") or []
    params = (hydra.get("sweeper") or {}).get("params") or {}
    return {"overrides": [str(o) for o in overrides], "params": {str(k): str(v) for k, v in params.items()}}
