"""Neighbourhoods of integer points: read only the ``(2r+1)^n`` pixels a refinement needs, not the whole map.

A patch is laid out with x fastest: reshaping its last axis to ``[..., L, L(, L)]`` gives ``[..., (z,) y, x]``,
with L = 2r + 1. Shapes and coordinate convention: see :mod:`heatlit.codecs`.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
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


def _on_host(flat: Tensor, *indices: Tensor) -> bool:
    """Whether numpy may do the read: on CPU its ``take`` reads scattered pixels several times faster than
    torch's ``gather``/``take`` (which check every index), the cost that dominates refining many peaks."""
    return (
        flat.device.type == "cpu"
        and not flat.requires_grad
        and flat.dtype in (torch.float32, torch.float64)
        and all(i.device.type == "cpu" for i in indices)
    )


def _read(
    flat: Tensor, rows: Tensor, centres: Tensor, spatial: tuple[int, ...], radius: int, shift_inside: bool
) -> Tensor:
    """``flat [R, N]`` maps as rows, ``rows [...]`` the map of each centre, ``centres [..., n]`` long
    -> ``[..., L^n]`` (see :func:`patch_values` for ``shift_inside`` and entries off the frame)."""
    n_pix, n = flat.shape[-1], len(spatial)
    shift = shift_inside and all(s > 2 * radius for s in spatial)
    if _on_host(flat, rows, centres):
        c, maps = centres.numpy(), flat.contiguous().numpy()
        if shift and radius >= 3:
            # windows of a strided view: numpy copies each patch row by row, ~2x faster than a take of
            # its pixels one by one once rows are 7 or more pixels long (slower below)
            corner = np.clip(c - radius, 0, np.array([s - 1 - 2 * radius for s in reversed(spatial)]))
            windows = np.lib.stride_tricks.sliding_window_view(
                maps.reshape(-1, *spatial), (2 * radius + 1,) * n, axis=tuple(range(1, n + 1))
            )
            at = windows[(rows.numpy(), *(corner[..., axis] for axis in reversed(range(n))))]
            return torch.from_numpy(at.reshape(*c.shape[:-1], -1))
        if shift:
            c = np.clip(c, radius, np.array([s - 1 - radius for s in reversed(spatial)]))
        local = sum(c[..., axis] * step for axis, step in enumerate(axis_steps(spatial)))[..., None]
        local = local + flat_offsets(spatial, radius, flat.device).numpy()
        if not shift:
            np.clip(local, 0, n_pix - 1, out=local)
        return torch.from_numpy(maps.reshape(-1).take(local + rows.numpy()[..., None] * n_pix))
    if shift:
        high = torch.tensor([s - 1 - radius for s in reversed(spatial)], device=centres.device)
        local = ravel(torch.minimum(centres.clamp(min=radius), high), spatial)[..., None] + flat_offsets(
            spatial, radius, flat.device
        )
    else:
        local = ravel(centres, spatial)[..., None] + flat_offsets(spatial, radius, flat.device)
        local = local.clamp_(0, n_pix - 1)
    return flat.reshape(-1).take(local + rows[..., None] * n_pix)


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
    b, k, n_pix = flat.shape
    rows = torch.arange(b * k, device=centres.device).reshape(b, k, 1).expand(centres.shape[:-1])
    return _read(flat.reshape(b * k, n_pix), rows, centres, spatial, radius, shift_inside)


def window_values(
    flat: Tensor, rows: Tensor, centres: Tensor, spatial: tuple[int, ...], radius: int
) -> Tensor:
    """:func:`patch_values` for a selection of peaks: ``flat [R, N]`` maps as rows, ``rows [M]`` the map of
    each peak, ``centres [M, n]`` long -> ``[M, L^n]`` (entries off the frame arbitrary, as there)."""
    return _read(flat, rows, centres, spatial, radius, shift_inside=False)


def inside_frame(centres: Tensor, spatial: tuple[int, ...], radius: int) -> Tensor:
    """``[..., L^n]`` bool: which entries of the patches around ``centres [..., n]`` lie inside the frame."""
    lib, at = (np, centres.numpy()) if centres.device.type == "cpu" else (torch, centres)
    span = patch_offsets(1, radius)[:, 0].to(centres.device)
    span = span.numpy() if lib is np else span
    inside = None
    for axis in range(len(spatial)):  # the frame is a box: the mask is the outer product of the axes'
        pos = at[..., axis, None] + span
        ok = (pos >= 0) & (pos < spatial[-1 - axis])
        inside = ok if inside is None else ok[..., :, None] & inside[..., None, :]
        inside = inside.reshape(*inside.shape[:-2], inside.shape[-2] * inside.shape[-1]) if axis else inside
    return torch.from_numpy(inside) if lib is np else inside


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
