"""What every decoder shares: input checks, the bad-input policy, the maxima, the epilogue, the decoder object.

Shapes and coordinate convention: see :mod:`heatlit.codecs`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from heatlit.codecs.coords import clamp_to_frame, frame_centre, unravel

Tensor = torch.Tensor


def host_checks(t: Tensor) -> bool:
    """Whether cheap host-side checks may decide what work to skip for ``t``: on CPU reading a tensor's
    value costs no device sync; elsewhere the codecs take the branch-free path. (Tests switch this off
    to run the accelerator path on CPU.)"""
    return t.device.type == "cpu"


def check_heatmaps(heatmaps: Tensor, name: str = "decoder", extra: int = 0) -> tuple[Tensor, tuple[int, ...]]:
    """Validate shapes and dtype. ``[B, K, *E, H, W]`` or ``[B, K, *E, D, H, W]`` -> ``(floating maps, spatial)``.

    ``extra``: channel axes ``E`` between K and the map (UDP's classification and offset maps: 1).
    """
    if not isinstance(heatmaps, Tensor):
        raise ValueError(f"{name}: heatmaps must be a torch.Tensor, got {type(heatmaps).__name__}")
    if heatmaps.dim() - extra not in (4, 5):
        lead = "B, K" + ", C" * extra
        raise ValueError(
            f"{name}: heatmaps must be [{lead}, H, W] (2D) or [{lead}, D, H, W] (3D), got shape "
            f"{list(heatmaps.shape)}"
        )
    spatial = tuple(heatmaps.shape[2 + extra :])
    if any(s == 0 for s in spatial):
        raise ValueError(f"{name}: heatmaps have an empty spatial size {list(spatial)}")
    if heatmaps.is_complex():
        raise ValueError(f"{name}: complex heatmaps are not supported")
    return (heatmaps if heatmaps.is_floating_point() else heatmaps.float()), spatial


def sanitize(heatmaps: Tensor, ndim: int | None = None) -> Tensor:
    """Replace every non-finite value (NaN, +-Inf) by the smallest finite value of its own map (0 if none).

    Such values carry no usable evidence, and one of them would otherwise poison every coordinate
    downstream. The per-map minimum, not 0, keeps logits (where -Inf is legitimate) ordered.
    ``[..., *S] -> [..., *S]`` floating point, a map being the last ``ndim`` axes (default: all after B, K;
    1 for SimCC's vectors).
    """
    if not heatmaps.is_floating_point():
        heatmaps = heatmaps.float()
    ndim = heatmaps.dim() - 2 if ndim is None else ndim
    finite = torch.isfinite(heatmaps)
    floor = torch.where(finite, heatmaps, torch.inf).flatten(-ndim).amin(-1)
    floor = torch.where(torch.isfinite(floor), floor, 0).reshape(*floor.shape, *([1] * ndim))
    return torch.where(finite, heatmaps, floor.to(heatmaps.dtype))


def prepare_heatmaps(heatmaps: Tensor, name: str = "decoder") -> tuple[Tensor, tuple[int, ...]]:
    """:func:`check_heatmaps` then :func:`sanitize`: ``(maps, spatial)`` with only finite values."""
    h, spatial = check_heatmaps(heatmaps, name)
    if host_checks(h) and h.numel() and bool(torch.isfinite(h.flatten(2).sum(-1)).all()):
        return h, spatial  # a finite sum per map proves every value finite, at a fraction of the cost
    return sanitize(h), spatial


class Peaks(NamedTuple):
    """The maximum of every map: what every single-peak decoder starts from.

    maps ``[B, K, *S]`` (finite), flat ``[B, K, N]``, index ``[B, K]`` long, ints ``[B, K, n]`` long
    (x, y[, z]), maxval ``[B, K]``, no_peak ``[B, K]`` bool (a flat map: max == min).
    """

    maps: Tensor
    flat: Tensor
    spatial: tuple[int, ...]
    index: Tensor
    ints: Tensor
    maxval: Tensor
    no_peak: Tensor


def find_peaks(heatmaps: Tensor, name: str = "decoder") -> Peaks:
    """Validate, sanitise only when needed, and locate each map's maximum (first one on ties)."""
    h, spatial = check_heatmaps(heatmaps, name)
    on_cpu = host_checks(h)
    if not on_cpu:
        h = sanitize(h)  # on GPUs the elementwise pass is cheap and a finiteness check would need a sync
    flat = h.flatten(2)
    index, ints, maxval = argmax_flat(flat, spatial)
    low = flat.amin(-1)
    # NaN wins numpy's argmax and torch's amin, and +-Inf shows in the max or the min: finite extremes
    # prove the whole map finite without an elementwise pass.
    if on_cpu and flat.numel() and not bool((torch.isfinite(low) & torch.isfinite(maxval)).all()):
        h = sanitize(h)
        flat = h.flatten(2)
        index, ints, maxval = argmax_flat(flat, spatial)
        low = flat.amin(-1)
    return Peaks(h, flat, spatial, index, ints, maxval, low == maxval)


def finish(coords: Tensor, peaks: Peaks) -> tuple[Tensor, Tensor]:
    """Shared epilogue (:func:`finish_frame`) of a decoder that located its maps' maxima with :func:`find_peaks`.

    Args:
        coords: ``[B, K, n]``.
    """
    return finish_frame(coords, peaks.maxval, peaks.no_peak, peaks.spatial)


def finish_frame(
    coords: Tensor, maxval: Tensor, no_peak: Tensor, spatial: tuple[int, ...]
) -> tuple[Tensor, Tensor]:
    """The decoders' common ending (see :mod:`heatlit.codecs`): a map without a peak gets the frame centre and
    score 0, every coordinate is clamped into the frame extent, scores are the maximum clamped at 0.

    ``coords [B, K, n]`` (x, y[, z]), ``maxval, no_peak [B, K]``, ``spatial`` ``(H, W)`` / ``(D, H, W)``.
    """
    spatial = tuple(spatial)
    coords = torch.where(no_peak[..., None], frame_centre(spatial, coords), coords)
    coords = clamp_to_frame(coords, spatial)
    scores = torch.where(no_peak, torch.zeros_like(maxval), maxval.clamp(min=0))
    return coords, scores


def argmax_flat(flat: Tensor, spatial: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor]:
    """``flat [B, K, N]`` -> ``(index [B, K] long, integer coords [B, K, n] long, maxval [B, K])``.

    Ties go to the first index, as in torch and numpy alike.
    """
    if flat.device.type == "cpu" and not flat.requires_grad and flat.dtype in (torch.float32, torch.float64):
        # torch's CPU argmax is ~12x slower than numpy's vectorised one; the array is shared, not copied.
        index = torch.from_numpy(np.argmax(flat.contiguous().numpy(), axis=-1))
    else:
        index = flat.argmax(-1)
    maxval = flat.gather(-1, index[..., None])[..., 0]
    return index, unravel(index, spatial), maxval


def axis_steps(spatial: tuple[int, ...]) -> list[int]:
    """Flat-index step of a +1 move along x, y(, z)."""
    steps, step = [], 1
    for size in reversed(spatial):
        steps.append(step)
        step *= size
    return steps


def strongest_peak(coords: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
    """Any decoder's output -> its single-peak answer ``(coords [B, K, n], scores [B, K])``.

    Decoders with a peak axis (``coords [B, K, P, n]``, ``scores [B, K, P]``) keep slot 0, their strongest
    peak (the map's refined maximum, with score 0 when it is below their threshold); single-peak output is
    returned as it is.
    """
    if scores.dim() == 3:
        return coords[:, :, 0], scores[:, :, 0]
    return coords, scores


def candidate_peaks(coords: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
    """Any decoder's output -> candidate peaks ``(coords [B, K, P, n], scores [B, K, P])``, the inverse view
    of :func:`strongest_peak`: single-peak output is one candidate per channel (P = 1, a candidate when its
    score is > 0); output with a peak axis is returned as it is (padding has score 0)."""
    if scores.dim() == 2:
        return coords[:, :, None], scores[:, :, None]
    return coords, scores


class Decoder:
    """Callable decoder object: ``decoder(heatmaps) -> (coords, scores)``; configured once, used per batch.

    ``dims`` lists the spatial dimensionalities it decodes (2: maps, 3: volumes); a model check reads it.
    """

    fn = staticmethod(lambda heatmaps: None)
    dims = (2, 3)

    def __init__(self, **options) -> None:
        self.options = options

    def __call__(self, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        if isinstance(heatmaps, Tensor) and heatmaps.dim() - 2 not in self.dims:
            raise ValueError(
                f"{type(self).__name__} decodes {self.dims}-D maps, got shape {list(heatmaps.shape)}"
            )
        return type(self).fn(heatmaps, **self.options)

    decode = __call__

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"
