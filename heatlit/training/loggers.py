"""Logger factories whose behaviour depends on the environment, not the config."""

from __future__ import annotations

import os
import re
from pathlib import Path


def wandb_logger(**kwargs):
    """A Lightning ``WandbLogger`` that runs offline unless ``WANDB_MODE=online`` is set.

    Offline runs land in ``<save_dir>/wandb/offline-run-*`` and upload later with ``wandb sync <dir>``.
    ``WANDB_MODE=disabled`` is honoured too.
    """
    from lightning.pytorch.loggers import WandbLogger

    mode = os.environ.get("WANDB_MODE", "offline").lower()
    if mode not in ("online", "offline", "disabled", "dryrun", "run"):
        raise ValueError(f"WANDB_MODE={mode!r} is not one of online, offline, disabled")
    Path(kwargs.get("save_dir", ".")).mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("settings", None)
    settings = kwargs.pop("settings")
    extra = {"settings": settings} if settings else {}
    return WandbLogger(
        offline=mode in ("offline", "dryrun"),
        mode=None if mode in ("offline", "dryrun") else mode,
        **kwargs,
        **extra,
    )


def csv_logger(save_dir: str, name: str = "csv", version: str = "", resume_step: int | None = None, **kwargs):
    """Lightning's ``CSVLogger``; with ``resume_step`` (a resumed run) the existing ``metrics.csv`` continues.

    Lightning deletes an existing metrics file. A resumed run instead keeps the rows logged up to its
    checkpoint's global step and appends after them; rows past that step were logged after the checkpoint and
    are logged again by the resumed run, so they are dropped rather than duplicated.
    """
    import csv

    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter
    from lightning.pytorch.loggers.logger import rank_zero_experiment

    if resume_step is None:
        return CSVLogger(save_dir, name=name, version=version, **kwargs)

    class ContinuedWriter(ExperimentWriter):
        def _check_log_dir_exists(self) -> None:
            path = Path(self.metrics_file_path)
            if not path.is_file():
                return
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                header, rows = list(reader.fieldnames or []), list(reader)

            def before(row: dict) -> bool:
                try:
                    return float(row.get("step") or "nan") <= resume_step
                except ValueError:
                    return True

            with open(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=header)
                writer.writeheader()
                writer.writerows(r for r in rows if before(r))
            self.metrics_keys = sorted(header)

    class ContinuedCSVLogger(CSVLogger):
        @property
        @rank_zero_experiment
        def experiment(self):
            if self._experiment is None:
                self._fs.makedirs(self.root_dir, exist_ok=True)
                self._experiment = ContinuedWriter(log_dir=self.log_dir)
            return self._experiment

    return ContinuedCSVLogger(save_dir, name=name, version=version, **kwargs)


def tensorboard_logger(save_dir: str, name: str = "tensorboard", version: str = "", **kwargs):
    """Lightning's ``TensorBoardLogger`` (through tensorboardX) with metric names TensorBoard accepts.

    TensorBoard tags allow letters, digits, ``_ - / .`` only; heatlit's ``pckh@0.1`` becomes ``pckh_0.1`` here,
    once, rather than by tensorboardX with a log line per metric and epoch.
    """
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.utilities import rank_zero_only

    class TagSafeTensorBoardLogger(TensorBoardLogger):
        @rank_zero_only
        def log_metrics(self, metrics, step=None) -> None:
            super().log_metrics({tensorboard_tag(k): v for k, v in metrics.items()}, step)

        @rank_zero_only
        def finalize(self, status: str) -> None:
            # Lightning closes the writer after fit; tensorboardX reopens it for the test under a file name
            # that counts whole seconds only, so a test starting in the second fit ended overwrote every
            # training and validation event. Flush here; heatlit.training.run.finish_loggers closes it.
            if self._experiment is not None:
                self._experiment.flush()
            if status == "success":
                self.save()

        def close_writer(self) -> None:
            if self._experiment is not None:
                self._experiment.close()

    return TagSafeTensorBoardLogger(save_dir, name=name, version=version, **kwargs)


def tensorboard_tag(name: str) -> str:
    """A metric name as a legal TensorBoard tag: every character outside ``[-/\\w.]`` becomes ``_``."""
    return re.sub(r"[^-/\w.]", "_", name)
