"""This process's Hydra job: its mode, rank and config-group choices, and the folder Hydra made for it.

Hydra creates a job folder (with its ``.hydra/`` record and a log file) before heatlit's code runs. A command
that works elsewhere (a resumed run's folder, ``output_dir=``) or is refused must not leave that folder behind;
a command that resumes in place must not overwrite the record of the command that started the run.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf


def is_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def is_rank_zero() -> bool:
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def hydra_groups() -> dict[str, Any]:
    """Every config-group choice of this command (``model``, ``decoder@decoders.dark``, ...), Hydra's own left out."""
    try:
        runtime = HydraConfig.get().runtime.choices
    except ValueError:
        return {}
    return {k: v for k, v in runtime.items() if not k.startswith("hydra/") and v is not None}


_RECORDS: dict[str, str] = {}
_HYDRA_FILES = {"config.yaml", "hydra.yaml", "overrides.yaml"}


def hydra_record_subdir(output_dir: str | None) -> str:
    """Hydra's ``output_subdir`` (the ``heatlit_record`` resolver in conf/train.yaml).

    ``.hydra`` for a new folder; ``.hydra/resumed-<time>`` where a record already exists, so resuming a run in
    place never overwrites the record of the command that started it (the report reads that one).
    """
    key = str(output_dir)
    if key not in _RECORDS:
        taken = output_dir is not None and (Path(key) / ".hydra" / "overrides.yaml").is_file()
        _RECORDS[key] = f".hydra/resumed-{time.strftime('%Y-%m-%d_%H-%M-%S')}" if taken else ".hydra"
    return _RECORDS[key]


def hydra_job_dir() -> Path | None:
    """The folder Hydra created for this command (None outside a Hydra app)."""
    try:
        path = OmegaConf.select(HydraConfig.get(), "runtime.output_dir", default=None)
    except ValueError:
        return None
    return Path(path) if path else None


def _only_hydra_files(path: Path) -> bool:
    for item in path.iterdir():
        if item.is_file() and item.suffix == ".log":
            continue
        if item.is_dir() and item.name == ".hydra" and _hydra_record_only(item):
            continue
        return False
    return True


def _hydra_record_only(path: Path) -> bool:
    return all(
        (p.is_file() and p.name in _HYDRA_FILES)
        or (p.is_dir() and p.name.startswith("resumed-") and _hydra_record_only(p))
        for p in path.iterdir()
    )


def quiet_worker_logs() -> None:
    """DDP worker processes (rank > 0) keep no log file: rank zero writes the run's logs, they print nothing."""
    if is_rank_zero():
        return
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()
        path = Path(handler.baseFilename)
        if path.is_file() and path.stat().st_size == 0:
            path.unlink()


def settle_job_dir(run_dir: Path, new_run: bool) -> None:
    """Leave nothing behind in a Hydra job folder the run does not use (``output_dir=`` elsewhere, or a resumed
    run's folder): its log continues in the run folder, a new run takes its record along, the folder goes."""
    job_dir = hydra_job_dir()
    if job_dir is None or not job_dir.is_dir() or job_dir.resolve() == run_dir.resolve():
        return
    _move_file_logs(job_dir, run_dir)
    record = job_dir / ".hydra"
    if new_run and record.is_dir() and not (run_dir / ".hydra").exists():
        shutil.move(record, run_dir / ".hydra")
    _discard_if_fresh(job_dir)


def discard_invocation() -> None:
    """After a refusal: remove what Hydra made for this command (its fresh folder, or its resume record)."""
    job_dir = hydra_job_dir()
    if job_dir is None or not job_dir.is_dir():
        return
    record = _RECORDS.get(str(job_dir))
    if record and record != ".hydra":
        shutil.rmtree(job_dir / record, ignore_errors=True)
    _close_file_logs(job_dir)
    _discard_if_fresh(job_dir)


def _discard_if_fresh(job_dir: Path) -> None:
    if not _only_hydra_files(job_dir):
        return
    _close_file_logs(job_dir)
    shutil.rmtree(job_dir, ignore_errors=True)
    cwd, parent = Path.cwd().resolve(), job_dir.resolve().parent
    while parent != cwd and cwd in parent.parents and not any(parent.iterdir()):
        parent.rmdir()  # e.g. outputs/train/ made only for this folder
        parent = parent.parent


def _file_handlers(folder: Path) -> list[logging.FileHandler]:
    root = logging.getLogger()
    inside = folder.resolve()
    return [
        h
        for h in root.handlers
        if isinstance(h, logging.FileHandler) and inside in Path(h.baseFilename).resolve().parents
    ]


def _move_file_logs(job_dir: Path, run_dir: Path) -> None:
    root = logging.getLogger()
    for handler in _file_handlers(job_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
        moved = logging.FileHandler(
            run_dir / Path(handler.baseFilename).name, mode="a", encoding=handler.encoding
        )
        moved.setLevel(handler.level)
        moved.setFormatter(handler.formatter)
        root.addHandler(moved)
        root.removeHandler(handler)
        handler.close()


def _close_file_logs(job_dir: Path) -> None:
    root = logging.getLogger()
    for handler in _file_handlers(job_dir):
        root.removeHandler(handler)
        handler.close()


def record_failure(err: BaseException, summary: str | None = None) -> None:
    """Write why the job failed into its log file(s) only (Hydra's ``train.log``), so that every launcher leaves
    the last error line in the job's folder; the terminal already gets Hydra's report or heatlit's one line.

    Args:
        err: the exception.
        summary: a one-line message for an expected error (configuration, checkpoint, data); None records
            ``err`` with its traceback.
    """
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    if not handlers:
        return
    logger = logging.getLogger("heatlit.job")
    exc_info = None if summary is not None else (type(err), err, err.__traceback__)
    record = logger.makeRecord(
        logger.name, logging.ERROR, __file__, 0, summary or "job failed", None, exc_info
    )
    for handler in handlers:
        if record.levelno >= handler.level:
            handler.handle(record)
