"""Per-decoder scoring and the flip test, on heatmaps with known answers."""

from __future__ import annotations

import functools

import pytest
import torch

from heatlit.codecs import ArgmaxDecoder, DarkDecoder, HeatmapGrid, gaussian_heatmaps, to_heatmap
from heatlit.metrics import build_metrics
from heatlit.training.outputs import flip_heatmaps
from heatlit.training.scoring import DecoderScorer, lift_to_camera, to_image_space


def _batch(b=4, k=5, stride=4, size=(24, 32), seed=0):
    g = torch.Generator().manual_seed(seed)
    hw = torch.tensor([size[1] * stride - 40.0, size[0] * stride - 40.0])
    keypoints = torch.rand(b, k, 2, generator=g) * hw + 20  # input px
    hm, _ = gaussian_heatmaps(to_heatmap(keypoints, stride), torch.ones(b, k), size)
    return hm, {
        "keypoints": keypoints,
        "visible": torch.ones(b, k, dtype=torch.bool),
        "norm": torch.full((b,), 10.0),
    }


def test_decoders_scored_on_the_same_maps_differ_only_by_decoding():
    hm, batch = _batch()
    make = functools.partial(build_metrics, "pckh", num_joints=5)
    scorer = DecoderScorer(
        {"argmax": ArgmaxDecoder(), "dark": DarkDecoder(), "dark_again": DarkDecoder()},
        make,
        HeatmapGrid((24 * 4, 32 * 4), 4),
    )
    preds = scorer.update(hm, batch)
    results = scorer.compute()
    assert results["dark"] == results["dark_again"]
    assert results["dark"]["rmse"] < 0.05 and results["dark"]["pckh@0.1"] == 100.0  # exact up to DARK
    # argmax loses the sub-pixel part: 0.38 heatmap px on average, x4 in input px
    assert 0.5 < results["argmax"]["rmse"] < 4 * 0.71
    direct = make()
    direct.update(preds["argmax"], batch["keypoints"], batch["visible"], batch["norm"])
    assert direct.compute()["rmse"].item() == pytest.approx(results["argmax"]["rmse"])
    assert scorer.compute()["dark"]["rmse"] == 0.0  # compute() reset the states


def test_flip_heatmaps_mirrors_and_swaps_pairs():
    hm = torch.zeros(1, 3, 4, 6)
    hm[0, 0, 1, 1] = 1.0  # left joint at x=1
    hm[0, 2, 2, 4] = 1.0  # unpaired joint at x=4
    flipped = flip_heatmaps(hm, (1, 0, 2))
    assert flipped[0, 1, 1, 4] == 1.0 and flipped[0, 0].sum() == 0  # became the right joint at x = 5 - 1
    assert flipped[0, 2, 2, 1] == 1.0
    torch.testing.assert_close(flip_heatmaps(flipped, (1, 0, 2)), hm)


def test_to_image_space_and_lift_to_camera():
    xy = torch.tensor([[[10.0, 20.0]]])
    affine = torch.tensor([[[2.0, 0.0, 5.0], [0.0, 2.0, -1.0]]])
    assert to_image_space(xy, affine).tolist() == [[[25.0, 39.0]]]
    # a joint at the root's depth (middle bin) back-projects through the intrinsics
    cam = torch.tensor([[[100.0, 0.0, 15.5], [0.0, 100.0, 11.5], [0.0, 0.0, 1.0]]])
    batch = {"cam_K": cam, "root_depth": torch.tensor([3000.0])}
    coords_hm = torch.tensor([[[to_heatmap(torch.tensor(35.5), 1).item(), 11.5, 15.5]]])  # D = 32
    joints = lift_to_camera(coords_hm, batch, HeatmapGrid((24, 32), 1, depth_bins=32, depth_range_mm=2000.0))
    torch.testing.assert_close(joints, torch.tensor([[[600.0, 0.0, 3000.0]]]))
