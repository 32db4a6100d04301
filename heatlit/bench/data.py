"""The benchmark's inputs: closed-form Gaussian heatmaps at known positions, with or without noise."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from heatlit.codecs import gaussian_heatmaps

Tensor = torch.Tensor


def interior_keypoints(batch: int, joints: int, size: Sequence[int], margin: float, generator) -> Tensor:
    """Uniform sub-pixel ``[B, K, 2]`` (x, y) at least ``margin`` px from every border of ``size = (H, W)``."""
    height, width = size
    extent = torch.tensor([width - 1 - 2 * margin, height - 1 - 2 * margin], dtype=torch.float32)
    return torch.rand(batch, joints, 2, generator=generator) * extent + margin


def border_keypoints(count: int, size: Sequence[int], corner: bool, generator, within: float = 1.5) -> Tensor:
    """``[count, 2]`` (x, y) centred within ``within`` px of an edge (``corner``: of two edges at once).

    The distance runs from the frame's own edge (-0.5, half a pixel outside the border pixel's centre) to
    ``within`` px inside the border pixel's centre; the edge or corner is drawn uniformly, the position
    along an edge uniformly at least 8 px from the corners.
    """
    height, width = size
    high = torch.tensor([width - 1.0, height - 1.0])
    t = torch.rand(count, 2, generator=generator) * (within + 0.5) - 0.5
    flip = torch.rand(count, 2, generator=generator) < 0.5
    near = torch.where(flip, high - t, t)
    if corner:
        return near
    along = torch.rand(count, 2, generator=generator) * (high - 16) + 8
    axis = torch.rand(count, generator=generator) < 0.5  # True: an x edge (left/right), else y
    return torch.stack(
        [torch.where(axis, near[:, 0], along[:, 0]), torch.where(axis, along[:, 1], near[:, 1])], -1
    )


def render(keypoints: Tensor, size: Sequence[int], sigma: float, noise_std: float, generator) -> Tensor:
    """Unbiased peak-1 Gaussians at ``keypoints [B, K, 2]`` plus i.i.d. ``N(0, noise_std^2)`` per pixel."""
    maps, _ = gaussian_heatmaps(keypoints, torch.ones(keypoints.shape[:2]), size, sigma)
    return maps + noise_std * torch.randn(maps.shape, generator=generator) if noise_std else maps


def crowded_maps(
    count: int, people: int, size: Sequence[int], sigma: float, noise_std: float, generator
) -> tuple[Tensor, Tensor]:
    """One channel per map holding ``people`` Gaussians (amplitudes uniform in [0.5, 1], their maximum, as
    bottom-up targets) anywhere in the frame, plus white noise.

    Returns ``maps [count, 1, H, W]`` and ``centres [count, people, 2]`` (x, y).
    """
    height, width = size
    centres = torch.rand(count, people, 2, generator=generator) * torch.tensor([width - 1.0, height - 1.0])
    amplitude = 0.5 + 0.5 * torch.rand(count, people, 1, 1, generator=generator)
    maps, _ = gaussian_heatmaps(centres, torch.ones(count, people), size, sigma)
    maps = (amplitude * maps).amax(1, keepdim=True)
    return maps + noise_std * torch.randn(maps.shape, generator=generator), centres
