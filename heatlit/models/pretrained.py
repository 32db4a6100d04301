"""Loading local pretrained weights (never downloads).

Accepts a plain state dict (``.pt``/``.pth``), a Lightning checkpoint (``.ckpt``: its ``state_dict``, whose
model keys carry a ``model.`` prefix) or a DataParallel dict (``module.`` prefix). Tensors whose shapes do
not fit (another joint count, RGB weights into a depth model) are skipped and logged rather than fatal,
because partial initialisation from a backbone is the common case. Files are read with
``weights_only=True`` (:mod:`heatlit.models.checkpoint`): one that would run code is refused, never retried.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .checkpoint import load_checkpoint

log = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did, key names in the model's namespace."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)


def _state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} holds no state dict (found {type(obj).__name__})")
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if any(k.startswith("model.") for k in state):
        # A LightningModule holds the network as `self.model`; its other members (loss, metrics) are not ours.
        others = [k for k in state if not k.startswith("model.")]
        if others:
            log.info("%s: ignoring %d keys outside `model.` (e.g. %s)", path, len(others), others[0])
        state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _apply_aliases(state: dict, own: Mapping, aliases: Mapping[str, str]) -> dict:
    """Rename keys unknown to the model by the first ``old_prefix -> new_prefix`` alias that makes them known."""
    out = {}
    for key, value in state.items():
        if key not in own:
            for old, new in aliases.items():
                if key.startswith(old) and new + key[len(old) :] in own:
                    key = new + key[len(old) :]
                    break
        out[key] = value
    return out


def load_pretrained(
    model: nn.Module, path: str | Path, aliases: Mapping[str, str] | None = None
) -> LoadReport:
    """Copy matching tensors from the checkpoint at ``path`` into ``model`` (in place).

    Args:
        model: the network.
        path: local ``.pt``/``.pth``/``.ckpt`` file.
        aliases: ``{old_prefix: new_prefix}`` renames for published checkpoints' key names, tried in order
            for keys the model does not know (``""`` matches every key).

    Returns:
        A :class:`LoadReport`; missing, unexpected and shape-mismatched keys are also logged.

    Raises:
        FileNotFoundError: no such file. CheckpointError (a ValueError): unreadable or unsafe file.
        ValueError: not a single tensor fits the model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    own = model.state_dict()
    state = _apply_aliases(_state_dict(load_checkpoint(path), path), own, aliases or {})
    report = LoadReport()
    fitting = {}
    for key, value in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != value.shape:
            report.mismatched.append(key)
        else:
            fitting[key] = value
    if not fitting:
        raise ValueError(
            f"no tensor in {path} fits {type(model).__name__} (file keys start {list(state)[:3]}, "
            f"model keys start {list(own)[:3]})"
        )
    model.load_state_dict(fitting, strict=False)
    report.loaded = list(fitting)
    report.missing = [k for k in own if k not in fitting]
    name = type(model).__name__
    log.info("%s: loaded %d/%d tensors from %s", name, len(fitting), len(own), path)
    for what in ("missing", "unexpected", "mismatched"):
        keys = getattr(report, what)
        if keys:
            log.warning("%s: %d %s keys from %s: %s", name, len(keys), what, path, ", ".join(keys[:10]))
    return report
