"""Logger factories whose behaviour depends on the environment, not the config."""

from __future__ import annotations

import os
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
