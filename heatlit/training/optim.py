"""The optimiser a run trains with: the configured one, with torch's multi-tensor step where it has one.

torch's optimisers default to a Python loop over parameters on CPU (``foreach`` is the default on CUDA only,
``fused`` nowhere). A fused (one kernel) or foreach (one call per parameter group) step computes the same
update in far fewer ops: the default model's update takes 8.0-8.5 ms of CPU as a loop, 4.3-4.7 ms foreach and
1.25 ms fused (one thread; docs/TRAINING_SPEED.md), of a ~330 ms step.
The choice is an implementation detail, not part of the recipe, so a config that names ``fused`` or
``foreach`` itself is left as it is.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable

import torch

try:  # private, but the one list torch keeps of the device types with fused optimiser kernels
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
except ImportError:  # pragma: no cover - a torch without it: CUDA has had them longest

    def _get_fused_kernels_supported_devices() -> list[str]:
        return ["cuda"]


def fast_step_options(factory: Callable, params: list[torch.Tensor]) -> dict[str, bool]:
    """``{"fused": True}``, ``{"foreach": True}`` or ``{}`` for an optimiser ``factory`` and its ``params``.

    Fused where the optimiser class takes ``fused`` and every parameter is a floating-point tensor on one
    device type torch has fused kernels for; else foreach where the class takes it; else nothing. Options the
    factory (a ``functools.partial``, as Hydra's ``_partial_`` builds) already sets win.
    """
    cls = factory.func if isinstance(factory, functools.partial) else factory
    preset = factory.keywords if isinstance(factory, functools.partial) else {}
    if not isinstance(cls, type) or "fused" in preset or "foreach" in preset or not params:
        return {}
    accepts = inspect.signature(cls).parameters
    devices = {p.device.type for p in params}
    fusable = (
        len(devices) == 1
        and devices <= set(_get_fused_kernels_supported_devices())
        and all(p.is_floating_point() for p in params)
    )
    if "fused" in accepts and fusable:
        return {"fused": True}
    if "foreach" in accepts:
        return {"foreach": True}
    return {}


def build_optimizer(factory: Callable, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
    """``factory(params)`` with :func:`fast_step_options` added."""
    params = list(params)
    return factory(params, **fast_step_options(factory, params))
