"""Read a run or sweep folder for the dashboard: every job, finished or not, with its curves and images.

Job discovery, override parsing and axis detection are the report's (:mod:`heatlit.report.collect`);
this module adds what the report does not read: both splits of ``results.json``, the per-epoch curves of
``csv/metrics.csv``, and the state of jobs without results.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from heatlit.report.collect import (
    Job,
    ReportError,
    Row,
    find_job_dirs,
    hydra_job,
    label,
    make_job,
    natural_key,
    number,
    read_overrides,
    varying_axes,
)
from heatlit.report.failures import CRASHED, LOG_LINE, UNDECIDED, diagnose
from heatlit.results import FILE_NAME, SCHEMA_VERSION, ResultsError, RunResults, read_results

FINISHED = "finished"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Curves: validation per epoch, everything else the trainer logs (train/*, lr-*) per optimiser step.
EPOCH_PREFIX = "val/"
SKIPPED_PREFIX = "test/"  # logged once after fitting: the tables show it


@dataclass
class Curve:
    """One logged series: ``x`` epochs (``val/*``) or global steps (``train/*``, ``lr-*``)."""

    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)


@dataclass
class RunRecord:
    """One Hydra job of the folder, whatever became of it.

    ``status`` is ``finished`` (results.json has results), ``crashed`` (a log names an error: ``line``),
    ``running or crashed`` (no results, no error found: ``line`` is the last line any log wrote) or
    ``unreadable results.json: <why>``.
    """

    job: Job
    results: dict[str, dict[str, dict[str, float | None]]]
    status: str
    line: str | None = None
    line_kind: str = LOG_LINE
    line_source: Path | None = None
    note: str | None = None  # how the status was decided, when no log says
    last_activity: float | None = None
    curves: dict[str, Curve] = field(default_factory=dict)
    curve_problem: str | None = None
    num: int | None = None  # Hydra's job number in its sweep
    launcher: str | None = None  # Hydra's launcher choice: basic runs the jobs one after another

    @property
    def finished(self) -> bool:
        return self.status == FINISHED

    def rows(self, split: str) -> list[Row]:
        """The report's rows (one per decoder) of ``split``; empty when the run has none."""
        return [Row(self.job, d, m) for d, m in self.results.get(split, {}).items()]

    def last_epoch(self) -> int | None:
        """The last epoch with a validation value (progress of a job without results)."""
        epochs = [x for name, c in self.curves.items() if name.startswith(EPOCH_PREFIX) for x in c.x]
        return int(max(epochs)) if epochs else None


@dataclass
class Folder:
    """A run or sweep folder: its jobs, the settings that tell them apart, the report's figures."""

    root: Path
    runs: list[RunRecord]
    axes: list[str]
    report_images: list[Path]
    unreadable_images: list[Path]

    @property
    def finished(self) -> list[RunRecord]:
        return [r for r in self.runs if r.finished]

    @property
    def unfinished(self) -> list[RunRecord]:
        return [r for r in self.runs if not r.finished]


def read_run_results(job_dir: Path) -> tuple[RunResults | None, dict, str]:
    """``(run, results, status)`` of a job's results.json; ``run`` is None when there is none.

    ``results`` is every split's ``{decoder: {metric: float | None}}`` with anything malformed left out;
    ``status`` is ``finished`` when at least one split has a decoder, else why not.
    """
    if not (job_dir / FILE_NAME).is_file():
        return None, {}, ""
    try:
        run = read_results(job_dir / FILE_NAME)
    except ResultsError as exc:
        return None, {}, str(exc)
    results = {
        str(split): {
            str(decoder): {str(m): number(v) for m, v in metrics.items()}
            for decoder, metrics in decoders.items()
            if isinstance(metrics, Mapping)
        }
        for split, decoders in run.results.items()
        if isinstance(decoders, Mapping)
    }
    results = {split: decoders for split, decoders in results.items() if decoders}
    return run, results, FINISHED if results else f"unreadable {FILE_NAME}: no decoder results in it"


def metrics_files(job_dir: Path) -> list[Path]:
    """The CSVLogger files of a job, oldest first: ``csv/metrics.csv``, then resumed versions."""
    found = [p for p in job_dir.rglob("metrics.csv") if "checkpoints" not in p.parts]
    return sorted(found, key=lambda p: natural_key(p.relative_to(job_dir).as_posix()))


def read_curves(files: list[Path]) -> tuple[dict[str, Curve], str | None]:
    """Every logged series of Lightning CSVLogger files (later files overwrite repeated x values).

    Returns the curves and, when a file could not be read, a line naming it.
    """
    points: dict[str, dict[float, float]] = {}
    for path in files:
        try:
            with path.open(newline="") as handle:
                records = list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            return {}, f"{path}: {exc}"
        for record in records:
            epoch, step = number(record.get("epoch")), number(record.get("step"))
            for name, text in record.items():
                value = number(text)
                if name in (None, "epoch", "step") or value is None or name.startswith(SKIPPED_PREFIX):
                    continue
                x = epoch if name.startswith(EPOCH_PREFIX) else step
                if x is not None:
                    points.setdefault(name, {})[x] = value
    curves = {
        name: Curve(sorted(xy), [xy[x] for x in sorted(xy)])
        for name, xy in sorted(points.items(), key=lambda item: natural_key(item[0]))
    }
    return curves, None


def last_activity(job_dir: Path) -> float | None:
    """The newest modification time of any file in the job folder (seconds since the epoch)."""
    times = []
    for base, _, files in os.walk(job_dir):
        for name in files:
            try:
                times.append(os.stat(os.path.join(base, name)).st_mtime)
            except OSError:
                continue
    return max(times) if times else None


def read_run(job_dir: Path, root: Path) -> RunRecord:
    """Everything the dashboard shows about one job folder."""
    overrides = read_overrides(job_dir)
    choices, num, launcher = hydra_job(job_dir)
    run_results, results, status = read_run_results(job_dir)
    # without results.json (or choices in it), the settings come from what Hydra recorded of the job
    if run_results is None:
        run_results = RunResults(job_dir / FILE_NAME, SCHEMA_VERSION, choices, {})
    elif not run_results.choices:
        run_results = replace(run_results, choices=choices)
    run = RunRecord(
        make_job(job_dir, overrides, run_results),
        results,
        status,
        last_activity=last_activity(job_dir),
        num=num,
        launcher=launcher,
    )
    run.curves, run.curve_problem = read_curves(metrics_files(job_dir))
    if not status:
        run.status, run.line, run.line_kind, run.line_source = diagnose(job_dir, root, num)
    return run


def settle_sequential(runs: list[RunRecord]) -> None:
    """A job of Hydra's basic launcher (one job after another, in one process) that has no results but a
    later sibling has ended: it crashed, and Hydra printed its traceback to the terminal, not to a file."""
    for run in runs:
        if run.status != UNDECIDED or run.launcher != "basic" or run.num is None:
            continue
        later = [
            r
            for r in runs
            if r.job.path.parent == run.job.path.parent and r.num is not None and r.num > run.num
        ]
        if later:
            run.status = CRASHED
            run.note = (
                "a later job of this one-at-a-time sweep (Hydra's basic launcher) started, so this one ended "
                "without results; Hydra printed its traceback to the sweep's terminal, not to a file"
            )


def png_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"), key=lambda p: natural_key(p.name)) if folder.is_dir() else []


def is_png(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(PNG_MAGIC)) == PNG_MAGIC
    except OSError:
        return False


def report_images(root: Path, job_dirs: list[Path]) -> list[Path]:
    """The PNGs ``python -m heatlit.report`` left in the folder (``report/`` or the folder itself), except
    its montage of the jobs' qualitative images, which the dashboard shows one by one."""
    jobs = set(job_dirs)
    found = [p for p in png_files(root / "report") + png_files(root) if p.parent not in jobs]
    return [p for p in found if not (p.name == "qualitative.png" and p.parent == root / "report")]


def run_axes(runs: list[RunRecord]) -> list[str]:
    """The settings that tell the runs apart, among those every run knows: a job without results.json
    knows its config-group choices and overrides, not the derived ones (``sigma``, ``stride``)."""
    common = set.intersection(*(set(r.job.settings) for r in runs))
    return varying_axes([replace(r.job, settings={k: r.job.settings[k] for k in common}) for r in runs])


def collect(root: str | Path) -> Folder:
    """Read every Hydra job under ``root`` (a single run's folder, or a multirun).

    Raises:
        ReportError: ``root`` is not a directory, or holds no Hydra job (``.hydra/overrides.yaml``).
    """
    root = Path(root)
    if not root.is_dir():
        raise ReportError(f"{root}: {'not a directory' if root.exists() else 'no such directory'}")
    job_dirs = find_job_dirs(root)
    if not job_dirs:
        raise ReportError(f"no Hydra job (.hydra/overrides.yaml) found under {root}")
    runs = [read_run(d, root) for d in job_dirs]
    settle_sequential(runs)
    axes = run_axes(runs)
    images = report_images(root, job_dirs)
    qualitative = [r.job.qualitative for r in runs if r.job.qualitative is not None]
    unreadable = [p for p in images + qualitative if not is_png(p)]
    return Folder(root, runs, axes, [p for p in images if p not in unreadable], unreadable)


def settings_of(run: RunRecord, axes: list[str]) -> Mapping[str, str]:
    """The run's label on each axis (``-`` when it has none)."""
    return {a: label(run.job.settings.get(a)) for a in axes}
