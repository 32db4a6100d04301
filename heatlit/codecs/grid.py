"""The heatmap grid: input size, stride, heatmap size, depth bins and the input <-> heatmap mapping.

One object owns this geometry so the data (targets), scoring (decoded coordinates back to input pixels and
camera millimetres), the models' checks and results.json agree on it. It is built once, by the data
module, from the ``data.*`` config (``input_size``, ``stride``, ``heatmap_depth``, ``depth_range_mm``).

The (x, y) mapping is a pluggable :class:`GridMapping` (``data.grid_mapping``): ``aligned``
(:class:`AlignedExtents`, the default) is the convention of :mod:`heatlit.codecs`
(:func:`~heatlit.codecs.coords.to_heatmap`); ``udp`` (:class:`UnitLength`) is UDP's, first and last pixel
centres aligned (:func:`~heatlit.codecs.udp.udp_to_heatmap`, where the two differ and by how much). Both are
flip-consistent (``x -> W - 1 - x`` in input and heatmap px alike), so a flip test needs no shift under
either. Another mapping is a class with the same two methods, added to :data:`MAPPINGS`.

Depth (3D volumes): the depth-bin coordinate of a joint is ``z_hm = z_rel / depth_range_mm * D + (D - 1) / 2``
with ``z_rel`` its camera z minus the root joint's, in mm: ``z_rel`` in ``[-range/2, range/2]`` spans the
bin extent ``[-0.5, D - 0.5]`` (bin centres at integers, as pixels in x and y).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch

from heatlit.codecs.coords import to_heatmap, to_input
from heatlit.codecs.udp import udp_to_heatmap, udp_to_input

Tensor = torch.Tensor


class GridMapping(Protocol):
    """Input px <-> heatmap px for ``[..., 2]`` (x, y) coordinates on a :class:`HeatmapGrid`."""

    name: str

    def to_heatmap(self, coords: Tensor, grid: HeatmapGrid) -> Tensor: ...

    def to_input(self, coords: Tensor, grid: HeatmapGrid) -> Tensor: ...


class AlignedExtents:
    """Pixel extents aligned: input ``[-0.5, W - 0.5]`` onto heatmap ``[-0.5, W / stride - 0.5]``."""

    name = "aligned"

    def to_heatmap(self, coords: Tensor, grid: HeatmapGrid) -> Tensor:
        return to_heatmap(coords, grid.stride)

    def to_input(self, coords: Tensor, grid: HeatmapGrid) -> Tensor:
        return to_input(coords, grid.stride)


class UnitLength:
    """UDP's mapping: first and last pixel centres aligned, ``x_hm = x_in (W_hm - 1) / (W_in - 1)``.

    Only the (x, y) columns are mapped (depth bins keep :meth:`HeatmapGrid.depth_to_bins`).
    """

    name = "udp"

    def to_heatmap(self, coords: Tensor, grid: HeatmapGrid) -> Tensor:
        return udp_to_heatmap(coords, grid.input_size, grid.heatmap_size[-2:])

    def to_input(self, coords: Tensor, grid: HeatmapGrid) -> Tensor:
        return udp_to_input(coords, grid.input_size, grid.heatmap_size[-2:])


#: Mappings by the name a config gives (``data.grid_mapping``).
MAPPINGS: dict[str, GridMapping] = {"aligned": AlignedExtents(), "udp": UnitLength()}


class HeatmapGrid:
    """The geometry shared by input images, heatmaps and depth bins.

    Args:
        input_size: ``(H, W)`` of the network input, px.
        stride: input px per heatmap px; must divide H and W.
        depth_bins: D bins of 3D volumetric heatmaps, or None for 2D heatmaps.
        depth_range_mm: the depth extent (mm, centred on the root joint) the D bins cover.
        mapping: a name of :data:`MAPPINGS` or a :class:`GridMapping`.

    Attributes:
        heatmap_size: ``(h, w)``, or ``(D, h, w)`` for volumes (what encoders take).
        dims: 2 or 3, the length of a heatmap coordinate (x, y[, z]).
    """

    def __init__(
        self,
        input_size: Sequence[int],
        stride: int,
        depth_bins: int | None = None,
        depth_range_mm: float = 2000.0,
        mapping: str | GridMapping = "aligned",
    ) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.stride = int(stride)
        if self.stride < 1 or any(s % self.stride for s in self.input_size):
            raise ValueError(
                f"input_size {self.input_size} must be divisible by stride {self.stride} "
                f"(heatmap size = input size / stride)"
            )
        self.depth_bins = None if depth_bins is None else int(depth_bins)
        if self.depth_bins is not None and self.depth_bins < 1:
            raise ValueError(f"heatmap_depth must be a positive number of bins or None, got {depth_bins}")
        self.depth_range_mm = float(depth_range_mm)
        if self.depth_range_mm <= 0:
            raise ValueError(f"depth_range_mm must be > 0, got {depth_range_mm}")
        if isinstance(mapping, str):
            if mapping not in MAPPINGS:
                raise ValueError(f"unknown grid mapping {mapping!r}; expected one of {sorted(MAPPINGS)}")
            mapping = MAPPINGS[mapping]
        self.mapping = mapping
        hw = (self.input_size[0] // self.stride, self.input_size[1] // self.stride)
        self.heatmap_size = hw if self.depth_bins is None else (self.depth_bins, *hw)
        self.dims = len(self.heatmap_size)

    def __repr__(self) -> str:
        return f"HeatmapGrid({self.describe()})"

    def describe(self) -> dict[str, Any]:
        """Plain values (results.json): sizes, stride, depth bins and range, mapping name."""
        return {
            "input_size": list(self.input_size),
            "heatmap_size": list(self.heatmap_size),
            "stride": self.stride,
            "depth_bins": self.depth_bins,
            "depth_range_mm": self.depth_range_mm if self.depth_bins is not None else None,
            "mapping": self.mapping.name,
        }

    # -- (x, y) ------------------------------------------------------------------------------------
    def to_heatmap(self, coords: Tensor) -> Tensor:
        """``[..., 2]`` (x, y) input px -> heatmap px."""
        return self.mapping.to_heatmap(coords, self)

    def to_input(self, coords: Tensor) -> Tensor:
        """``[..., 2]`` (x, y) heatmap px -> input px."""
        return self.mapping.to_input(coords, self)

    # -- depth -------------------------------------------------------------------------------------
    def _bins(self) -> int:
        if self.depth_bins is None:
            raise ValueError("this heatmap grid is 2D (heatmap_depth=null): it has no depth bins")
        return self.depth_bins

    def depth_to_bins(self, z_rel_mm: Tensor) -> Tensor:
        """``[...]`` depth relative to the root joint, mm -> ``[...]`` depth-bin coordinate."""
        bins = self._bins()
        return z_rel_mm / self.depth_range_mm * bins + (bins - 1) / 2.0

    def bins_to_depth(self, z_hm: Tensor) -> Tensor:
        """Inverse of :meth:`depth_to_bins`: ``[...]`` bin coordinate -> mm relative to the root."""
        bins = self._bins()
        return (z_hm - (bins - 1) / 2) * self.depth_range_mm / bins

    def in_depth_range(self, z_hm: Tensor) -> Tensor:
        """``[...]`` bool: the bin coordinate lies inside the volume's extent ``[-0.5, D - 0.5)``."""
        bins = self._bins()
        return (z_hm >= -0.5) & (z_hm < bins - 0.5)

    def keypoints_to_heatmap(
        self, keypoints: Tensor, visible: Tensor, joints3d: Tensor | None = None, root: int = 0
    ) -> tuple[Tensor, Tensor]:
        """Ground truth in heatmap coordinates, as encoders take it.

        Args:
            keypoints: ``[B, K, 2]`` input px; visible: ``[B, K]`` bool.
            joints3d: ``[B, K, 3]`` camera mm (3D grids only); root: index of the root joint.

        Returns:
            ``(coords [B, K, dims], visible [B, K])``: heatmap px (and depth bins), never quantised; a
            joint outside the depth extent is made invisible.
        """
        coords = self.to_heatmap(keypoints)
        if self.depth_bins is None:
            return coords, visible
        if joints3d is None:
            raise ValueError("a 3D heatmap grid needs joints3d")
        z_hm = self.depth_to_bins(joints3d[..., 2] - joints3d[..., root : root + 1, 2])
        return torch.cat([coords, z_hm[..., None]], dim=-1), visible & self.in_depth_range(z_hm)
