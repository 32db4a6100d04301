"""`HeatmapGrid`: the one home of heatmap size, stride, depth bins and the input <-> heatmap mapping."""

from __future__ import annotations

import json

import pytest
import torch

from heatlit.codecs import HeatmapGrid, to_heatmap, to_input


def test_sizes_and_the_default_mapping():
    grid = HeatmapGrid((80, 160), 4)
    assert (grid.heatmap_size, grid.dims, grid.depth_bins) == ((20, 40), 2, None)
    xy = torch.tensor([[-0.5, -0.5], [159.5, 79.5], [10.0, 3.25]])
    torch.testing.assert_close(grid.to_heatmap(xy), to_heatmap(xy, 4))
    # extents align: the input frame's corners land on the heatmap frame's corners
    assert grid.to_heatmap(xy)[:2].tolist() == [[-0.5, -0.5], [39.5, 19.5]]
    torch.testing.assert_close(grid.to_input(grid.to_heatmap(xy)), xy)
    torch.testing.assert_close(grid.to_input(xy), to_input(xy, 4))


def test_depth_bins_closed_form():
    grid = HeatmapGrid((32, 64), 2, depth_bins=8, depth_range_mm=2000.0)
    assert grid.heatmap_size == (8, 16, 32) and grid.dims == 3
    z = torch.tensor([0.0, -1000.0, 1000.0, 250.0])
    # the root's depth is the middle of the volume; +-range/2 are the volume's outer bin edges
    assert grid.depth_to_bins(z).tolist() == [3.5, -0.5, 7.5, 4.5]
    torch.testing.assert_close(grid.bins_to_depth(grid.depth_to_bins(z)), z)
    assert grid.in_depth_range(torch.tensor([-0.5, -0.51, 7.49, 7.5])).tolist() == [True, False, True, False]


def test_keypoints_to_heatmap_adds_depth_and_drops_joints_outside_it():
    keypoints = torch.tensor([[[8.0, 4.0], [20.0, 10.0], [30.0, 2.0]]])
    visible = torch.ones(1, 3, dtype=torch.bool)
    joints3d = torch.tensor([[[0.0, 0.0, 3000.0], [0.0, 0.0, 3400.0], [0.0, 0.0, 4200.0]]])
    flat = HeatmapGrid((16, 32), 4)
    coords, vis = flat.keypoints_to_heatmap(keypoints, visible)
    assert coords.shape == (1, 3, 2) and vis.all()
    volume = HeatmapGrid((16, 32), 4, depth_bins=4, depth_range_mm=2000.0)
    coords, vis = volume.keypoints_to_heatmap(keypoints, visible, joints3d, root=0)
    torch.testing.assert_close(coords[0, :, 2], torch.tensor([1.5, 2.3, 3.9]))
    assert vis.tolist() == [[True, True, False]]  # 1200 mm behind the root: beyond the 1000 mm half-range
    with pytest.raises(ValueError, match="needs joints3d"):
        volume.keypoints_to_heatmap(keypoints, visible)
    with pytest.raises(ValueError, match="no depth bins"):
        flat.depth_to_bins(torch.zeros(1))


class CornerAligned:
    """A stand-in for another mapping: first and last pixel centres of both frames coincide."""

    name = "corners"

    def to_heatmap(self, coords, grid):
        return coords * self._scale(grid)

    def to_input(self, coords, grid):
        return coords / self._scale(grid)

    @staticmethod
    def _scale(grid):
        (h, w), (hh, ww) = grid.input_size, grid.heatmap_size[-2:]
        return torch.tensor([(ww - 1) / (w - 1), (hh - 1) / (h - 1)])


def test_a_mapping_plugs_in_and_is_recorded():
    grid = HeatmapGrid((9, 17), 1, mapping=CornerAligned())
    xy = torch.tensor([[16.0, 8.0]])
    torch.testing.assert_close(grid.to_input(grid.to_heatmap(xy)), xy)
    assert grid.describe()["mapping"] == "corners"
    with pytest.raises(ValueError, match="unknown grid mapping 'corners'.*aligned.*udp"):
        HeatmapGrid((8, 16), 4, mapping="corners")
    # UDP's mapping, by name, is that stand-in
    udp = HeatmapGrid((9, 17), 1, mapping="udp")
    torch.testing.assert_close(udp.to_heatmap(xy), grid.to_heatmap(xy))


@pytest.mark.parametrize("stride", [4, 8])
def test_udp_mapping_against_the_aligned_one_closed_form(stride):
    # UDP aligns the first and last pixel centres; `aligned` the pixel extents. They agree at the frame centre
    # and differ by (s - 1) / (2 s) * (1 - 2 x / (W - 1)) heatmap px: +-0.375 at stride 4, +-0.4375 at stride 8.
    size = (16 * stride, 32 * stride)
    udp, aligned = HeatmapGrid(size, stride, mapping="udp"), HeatmapGrid(size, stride)
    w, h = size[1], size[0]
    xy = torch.tensor(
        [[0.0, 0.0], [w - 1.0, h - 1.0], [(w - 1) / 2, (h - 1) / 2], [13.0, 7.0]], dtype=torch.float64
    )
    assert udp.to_heatmap(xy)[:3].tolist() == [[0.0, 0.0], [31.0, 15.0], [15.5, 7.5]]
    gap = (stride - 1) / (2 * stride)
    expected = gap * (1 - 2 * xy / torch.tensor([w - 1.0, h - 1.0], dtype=torch.float64))
    torch.testing.assert_close(udp.to_heatmap(xy) - aligned.to_heatmap(xy), expected)
    assert (udp.to_heatmap(xy) - aligned.to_heatmap(xy))[0, 0].item() == pytest.approx(gap)
    torch.testing.assert_close(udp.to_input(udp.to_heatmap(xy)), xy)
    # flip-consistent in both spaces: x -> W - 1 - x maps onto x_hm -> w - 1 - x_hm
    mirrored = xy.clone()
    mirrored[:, 0] = w - 1 - xy[:, 0]
    torch.testing.assert_close(udp.to_heatmap(mirrored)[:, 0], 31 - udp.to_heatmap(xy)[:, 0])
    # depth bins are the grid's own, whichever mapping
    volume = HeatmapGrid(size, stride, depth_bins=4, mapping="udp")
    kp = xy[None, :2].float()
    coords, _ = volume.keypoints_to_heatmap(kp, torch.ones(1, 2, dtype=torch.bool), torch.zeros(1, 2, 3))
    torch.testing.assert_close(coords[0, :, 2], torch.full((2,), 1.5))
    torch.testing.assert_close(coords[..., :2], udp.to_heatmap(kp))


def test_describe_is_plain_json_and_bad_settings_are_refused():
    described = HeatmapGrid((80, 160), 4, depth_bins=32).describe()
    assert json.loads(json.dumps(described)) == {
        "input_size": [80, 160],
        "heatmap_size": [32, 20, 40],
        "stride": 4,
        "depth_bins": 32,
        "depth_range_mm": 2000.0,
        "mapping": "aligned",
    }
    assert HeatmapGrid((80, 160), 4).describe()["depth_range_mm"] is None
    with pytest.raises(ValueError, match="divisible by stride 7"):
        HeatmapGrid((80, 160), 7)
    with pytest.raises(ValueError, match="heatmap_depth must be a positive"):
        HeatmapGrid((80, 160), 4, depth_bins=0)
    with pytest.raises(ValueError, match="depth_range_mm must be > 0"):
        HeatmapGrid((80, 160), 4, depth_bins=8, depth_range_mm=0)
