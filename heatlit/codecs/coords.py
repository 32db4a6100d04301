"""Coordinate grids and the input <-> heatmap mapping (conventions: see :mod:`heatlit.codecs`)."""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def to_heatmap(coords: Tensor, stride: float) -> Tensor:
    """Map input-image coordinates to heatmap coordinates.

    Args:
        coords: ``[..., n]`` (x, y[, z]) in input pixels, pixel centres at integers.
        stride: input pixels per heatmap pixel.

    Returns:
        ``[..., n]`` in heatmap pixels. Pixel *extents* are aligned: input ``[-0.5, W_in - 0.5]`` maps
        onto heatmap ``[-0.5, W_in / stride - 0.5]``, so a horizontal flip is the same operation in both
        spaces (``x -> W - 1 - x``). That is why flip testing needs no one-pixel shift here.
    """
    return (coords + 0.5) / stride - 0.5


def to_input(coords: Tensor, stride: float) -> Tensor:
    """Inverse of :func:`to_heatmap`: ``[..., n]`` heatmap pixels -> ``[..., n]`` input pixels."""
    return (coords + 0.5) * stride - 0.5


def axis_grids(spatial: tuple[int, ...], device=None, dtype=torch.float32) -> list[Tensor]:
    """1D pixel-centre coordinates per spatial axis, returned in (x, y[, z]) order.

    Args:
        spatial: ``(H, W)`` or ``(D, H, W)``.

    Returns:
        ``[arange(W), arange(H)(, arange(D))]``: axis i of the coordinate vector runs over
        ``spatial[-1 - i]``.
    """
    return [torch.arange(s, device=device, dtype=dtype) for s in reversed(spatial)]


def unravel(flat_index: Tensor, spatial: tuple[int, ...]) -> Tensor:
    """Flat indices into ``spatial`` -> integer coordinates ``[..., n]`` in (x, y[, z]) order."""
    out = []
    rest = flat_index
    for size in reversed(spatial):
        out.append(rest % size)
        rest = torch.div(rest, size, rounding_mode="floor")
    return torch.stack(out, dim=-1)


def ravel(coords: Tensor, spatial: tuple[int, ...]) -> Tensor:
    """Integer coordinates ``[..., n]`` in (x, y[, z]) order -> flat indices ``[...]`` into ``spatial``."""
    n = len(spatial)
    flat = coords[..., n - 1]
    for axis in range(1, n):
        flat = flat * spatial[axis] + coords[..., n - 1 - axis]
    return flat


def clamp_to_frame(coords: Tensor, spatial: tuple[int, ...]) -> Tensor:
    """Clamp ``[..., n]`` (x, y[, z]) into the frame extent ``[-0.5, S - 0.5]`` of ``spatial``."""
    upper = torch.tensor([s - 0.5 for s in reversed(spatial)], device=coords.device, dtype=coords.dtype)
    return torch.minimum(coords.clamp(min=-0.5), upper)


def frame_centre(spatial: tuple[int, ...], like: Tensor) -> Tensor:
    """Centre of the frame ``[n]`` in (x, y[, z]), the defined answer for a map with no peak."""
    return torch.tensor([(s - 1) / 2.0 for s in reversed(spatial)], device=like.device, dtype=like.dtype)
