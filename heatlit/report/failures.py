"""Why a job has no results: the last error line of its logs, or "running or crashed" when they do not say.

Read by the report (failed jobs) and the dashboard (jobs without results).

Where a Hydra job's text output lands:

* ``<job dir>/<task>.log`` (``train.log``): Hydra's job log, every ``logging`` record of the job. heatlit's
  entry points record a failing job's exception there (:func:`heatlit.training.run.main_guard`), traceback
  and all; jobs run before that record only reached the terminal (Hydra prints it after the job).
* ``<sweep dir>/.submitit/<array id>_<i>/<array id>_<i>_0_log.{err,out}`` (``hydra/launcher=slurm``): the
  task's captured stderr/stdout, traceback included. Array task ``i`` runs the i-th job of the launch,
  which is Hydra's job number for a grid sweep launched at once.
* anything the user redirected into the job folder (``*.err``, ``*.out``, ``*stderr*``).
"""

from __future__ import annotations

import re
from pathlib import Path

CRASHED = "crashed"
UNDECIDED = "running or crashed"
ERROR_LINE, LOG_LINE = "last error line", "last log line"
TAIL_BYTES = 256 * 1024  # an error is at the end of a log; a long run's log need not be read whole
MAX_LINE = 300

# ``ValueError: ...``, ``heatlit.config.ConfigError: ...``, ``torch.OutOfMemoryError: ...``, ``KeyboardInterrupt``
EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*\w*(?:Error|Exception|Interrupt|Exit)\b(?::.*)?$")
# a logging record at ERROR/CRITICAL ("[time][name][ERROR] - ..."), "configuration error: ...", slurm's
# "slurmstepd: error: *** JOB 12 CANCELLED ... DUE TO TIME LIMIT ***", the kernel's "Killed"
ERRORISH = re.compile(r"\[(?:ERROR|CRITICAL)\]|\berror:|\bCANCELLED\b|^Killed\b", re.IGNORECASE)
# Hydra's hint printed after every failure names no cause; never report it
NOISE = re.compile(r"HYDRA_FULL_ERROR|^Error executing job with overrides")
TRACEBACK = "Traceback (most recent call last):"


def tail_lines(path: Path) -> list[str]:
    """The last ``TAIL_BYTES`` of a text file as lines, right-stripped (undecodable bytes replaced)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    # progress bars redraw with carriage returns; the last redraw is the line
    return [line.split("\r")[-1].rstrip() for line in text.splitlines()]


def clip(line: str) -> str:
    line = line.strip()
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def traceback_ends(lines: list[str]) -> list[int]:
    """Indices of the exception lines that close Python tracebacks: the first unindented line after the
    indented frames, whatever the exception is called."""
    ends = []
    for start, line in enumerate(lines):
        if line.strip() != TRACEBACK:
            continue
        after = (i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0].isspace())
        end = next(after, None)
        if end is not None and lines[end].strip() != TRACEBACK:
            ends.append(end)
    return ends


def last_error_line(lines: list[str]) -> str | None:
    """The last line that names an error. An exception (a traceback's last line, or a line such as
    ``ValueError: ...``) wins over a later line that only looks like an error (``srun: error: ...``)."""
    usable = [i for i, line in enumerate(lines) if line.strip() and not NOISE.search(line)]
    exceptions = set(traceback_ends(lines)) | {i for i in usable if EXCEPTION.match(lines[i].strip())}
    picks = [i for i in usable if i in exceptions] or [i for i in usable if ERRORISH.search(lines[i])]
    return clip(lines[picks[-1]]) if picks else None


def submitit_logs(sweep_root: Path, job_num: int | None) -> list[Path]:
    """The submitit stderr/stdout captures of array task ``job_num`` under ``sweep_root/.submitit``."""
    base = sweep_root / ".submitit"
    if job_num is None or not base.is_dir():
        return []
    return sorted(
        p
        for p in base.glob(f"*_{job_num}/*_{job_num}_*_log.*")
        if p.suffix in (".err", ".out") and p.is_file()
    )


def job_logs(job_dir: Path, sweep_root: Path, job_num: int | None) -> list[Path]:
    """Every text capture that may hold the job's last error, stderr captures first."""
    own = [
        p
        for p in sorted(job_dir.iterdir() if job_dir.is_dir() else [])
        if p.is_file() and (p.suffix in (".log", ".err", ".out") or "stderr" in p.name)
    ]
    found = submitit_logs(sweep_root, job_num) + own
    return sorted(found, key=lambda p: (p.suffix != ".err" and "stderr" not in p.name, str(p)))


def diagnose(
    job_dir: Path, sweep_root: Path, job_num: int | None
) -> tuple[str, str | None, str, Path | None]:
    """``(status, line, kind, source)`` for a job without results.

    ``status`` is :data:`CRASHED` when a log names an error (``line`` is that error, ``kind``
    :data:`ERROR_LINE`, ``source`` the log), else :data:`UNDECIDED` with the last line any log wrote
    (:data:`LOG_LINE`; None when there is no log line at all).
    """
    last: tuple[str, Path] | None = None
    for path in job_logs(job_dir, sweep_root, job_num):
        lines = tail_lines(path)
        error = last_error_line(lines)
        if error is not None:
            return CRASHED, error, ERROR_LINE, path
        written = [line for line in lines if line]
        if written and last is None:
            last = (clip(written[-1]), path)
    if last is None:
        return UNDECIDED, None, LOG_LINE, None
    return UNDECIDED, last[0], LOG_LINE, last[1]
