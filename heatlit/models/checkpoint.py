"""Reading checkpoint files without running code from them.

Every checkpoint heatlit reads (resume, evaluation, pretrained weights) goes through :func:`load_checkpoint`:
``torch.load(weights_only=True)``, which builds tensors, numbers, strings and plain containers only. heatlit
writes nothing else into its checkpoints (the run config is stored as plain dicts and lists), so no extra
type needs allowing. A file that would import anything else (a class, ``os.system``) is refused before any
of it runs, with one line naming the file and what it would have imported.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, truncated, not a checkpoint, or unsafe to unpickle."""


def _refusal_detail(err: Exception) -> str:
    """The one telling line of torch's weights-only refusal (e.g. ``Unsupported operand 110``)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    skip = ("weights only load failed", "please file an issue", "check the documentation")
    telling = [line for line in lines if not line.lower().startswith(skip)]
    return telling[0] if telling else lines[-1]


def load_checkpoint(path: str | Path) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with one-line errors.

    Raises:
        CheckpointError: no such file; a truncated or foreign file; a pickle that needs anything beyond
            tensors and plain containers (``refusing to load <file>: it would import posix.system``).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found:  # a pickle that would import (and so could run) code
            raise CheckpointError(
                f"refusing to load {path}: it would import {found.group(1)}; heatlit loads checkpoints with "
                "weights_only=True (tensors and plain containers only)"
            ) from None
        raise CheckpointError(
            f"cannot read {path}: truncated or not a torch checkpoint ({_refusal_detail(err)})"
        ) from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, zipfile.BadZipFile) as err:
        reason = str(err).split(". ")[0] if isinstance(err, RuntimeError) else type(err).__name__
        raise CheckpointError(f"cannot read {path}: truncated or not a torch checkpoint ({reason})") from None
