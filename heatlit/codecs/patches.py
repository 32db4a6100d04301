"""Neighbourhoods of integer points: read only the ``(2r+1)^n`` pixels a refinement needs, not the whole map.

A patch is laid out with x fastest: reshaping its last axis to ``[..., L, L(, L)]`` gives ``[..., (z,) y, x]``,
with L = 2r + 1. Shapes and coordinate convention: see :mod:`heatlit.codecs`.
"""

from __future__ import annotations

import functools
import itertools

import torch

from heatlit.codecs.base import axis_steps
from heatlit.codecs.coords import ravel

Tensor = torch.Tensor


@functools.lru_cache(maxsize=64)
def patch_offsets(n: int, radius: int) -> Tensor:
    """``[L^n, n]`` long offsets (x, y[, z]) of a patch, x fastest (CPU)."""
    span = torch.arange(-radius, radius + 1)
    # itertools.product varies the last factor fastest; listing z, y, x keeps x fastest.
    grid = torch.tensor(list(itertools.product(range(2 * radius + 1), repeat=n)))
    return span[grid].flip(-1)


@functools.lru_cache(maxsize=64)
def flat_offsets(spatial: tuple[int, ...], radius: int, device: torch.device) -> Tensor:
    """``[L^n]`` flat-index offsets of :func:`patch_offsets` inside a map of size ``spatial``."""
    steps = torch.tensor(axis_steps(spatial))
    return (patch_offsets(len(spatial), radius) * steps).sum(-1).to(device)


def patch_values(
    flat: Tensor, spatial: tuple[int, ...], centres: Tensor, radius: int, shift_inside: bool = False
) -> Tensor:
    """Patch values with no frame mask: the fast read for patches known (or made) to lie inside the frame.

    Args:
        flat: ``[B, K, N]`` maps flattened over ``spatial``.
        centres: ``[B, K, P, n]`` long, (x, y[, z]) inside the frame.
        shift_inside: move each patch that sticks out of the frame inside it (when the frame is large
            enough), instead of clamping flat indices entry by entry; cheaper, for callers that discard
            those patches.

    Returns:
        ``[B, K, P, L^n]``; entries off the frame hold arbitrary finite pixels of the same map (the flat
        index is clamped), which callers must not use; with ``shift_inside`` the whole patch of a peak
        within ``radius`` of an edge is another one.
    """
    if shift_inside and all(s > 2 * radius for s in spatial):
        high = torch.tensor([s - 1 - radius for s in reversed(spatial)], device=centres.device)
        index = ravel(torch.minimum(centres.clamp(min=radius), high), spatial)[..., None] + flat_offsets(
            spatial, radius, flat.device
        )
    else:
        index = ravel(centres, spatial)[..., None] + flat_offsets(spatial, radius, flat.device)
        index = index.clamp_(0, flat.shape[-1] - 1)
    b, k, p, m = index.shape
    return flat.gather(-1, index.reshape(b, k, p * m)).reshape(b, k, p, m)


def window_values(
    flat: Tensor, rows: Tensor, centres: Tensor, spatial: tuple[int, ...], radius: int
) -> Tensor:
    """:func:`patch_values` for a selection of peaks: ``flat [R, N]`` maps as rows, ``rows [M]`` the map of
    each peak, ``centres [M, n]`` long -> ``[M, L^n]`` (entries off the frame arbitrary, as there)."""
    n_pix = flat.shape[-1]
    local = (ravel(centres, spatial)[:, None] + flat_offsets(spatial, radius, flat.device)).clamp_(
        0, n_pix - 1
    )
    return flat.reshape(-1).take(local + rows[:, None] * n_pix)


def inside_frame(centres: Tensor, spatial: tuple[int, ...], radius: int) -> Tensor:
    """``[..., L^n]`` bool: which entries of the patches around ``centres [..., n]`` lie inside the frame."""
    span = patch_offsets(1, radius)[:, 0].to(centres.device)
    inside = None
    for axis in range(len(spatial)):  # the frame is a box: the mask is the outer product of the axes'
        pos = centres[..., axis, None] + span
        ok = (pos >= 0) & (pos < spatial[-1 - axis])
        inside = ok if inside is None else ok[..., :, None] & inside[..., None, :]
        inside = inside.flatten(-2) if axis else inside
    return inside


def gather_patches(
    flat: Tensor, spatial: tuple[int, ...], centres: Tensor, radius: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Values of the ``(2r+1)^n`` neighbourhood of integer points, zero outside the frame.

    Args:
        flat: ``[B, K, N]`` maps flattened over ``spatial``.
        centres: ``[B, K, P, n]`` long, (x, y[, z]) inside the frame.
        radius: r >= 0.

    Returns:
        ``values [B, K, P, L^n]``, ``positions [B, K, P, L^n, n]`` long and ``inside [B, K, P, L^n]`` bool.
    """
    values = patch_values(flat, spatial, centres, radius)
    inside = inside_frame(centres, spatial, radius)
    positions = centres[..., None, :] + patch_offsets(len(spatial), radius).to(centres.device)
    return values * inside, positions, inside
