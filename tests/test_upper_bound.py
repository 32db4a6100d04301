"""The keypoint-expansion upper bound (LOGO-CAP) and OKS, on hand-made poses with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from heatlit.body import skeleton as sk
from heatlit.metrics import CocoOksAP, KeypointExpansion, SampleOksAP, expand_keypoints, oks
from heatlit.metrics.oks import expansion_offsets, keypoint_similarity
from heatlit.training.scoring import oks_truth
from tests.test_metrics import COCO_FILE, coco_gt  # noqa: F401  (the COCO sample's persons, a fixture)

# COCO keypoint sigmas as published (cocodataset.org/#keypoints-eval)
COCO_SIGMAS = (
    torch.tensor(
        [26, 25, 25, 35, 35, 79, 79, 72, 72, 62, 62, 107, 107, 87, 87, 89, 89.0], dtype=torch.float64
    )
    / 1000
)
STEP = COCO_SIGMAS / COCO_SIGMAS.min()  # grid step per joint at unit = 1 px


def test_keypoint_similarity_is_cocos_formula():
    gt = torch.zeros(1, 2, 2, dtype=torch.float64)
    pred = torch.tensor([[[3.0, 4.0], [0.0, 0.0]]], dtype=torch.float64)
    area = torch.tensor([400.0], dtype=torch.float64)
    ks = keypoint_similarity(pred, gt, area, [0.1, 0.05])
    assert ks[0, 0].item() == pytest.approx(math.exp(-25 / (2 * 400 * 0.2**2)))
    assert ks[0, 1].item() == 1.0
    # the mean over labelled joints only; nothing labelled scores 0
    assert oks(pred, gt, torch.tensor([[True, False]]), area, [0.1, 0.05]).item() == pytest.approx(
        ks[0, 0].item()
    )
    assert oks(pred, gt, torch.tensor([[False, False]]), area, [0.1, 0.05]).item() == 0.0
    pred[0, 0, 0] = float("nan")
    assert keypoint_similarity(pred, gt, area, [0.1, 0.05])[0, 0].item() == 0.0


def test_expansion_grid_is_11x11_scaled_by_sigma():
    pred = torch.tensor([[[10.0, 20.0], [30.0, 40.0]]], dtype=torch.float64)
    grid = expand_keypoints(pred, [0.025, 0.1], ksize=11, unit=2.0)
    assert grid.shape == (1, 2, 11, 11, 2)
    assert grid[0, 0, 5, 5].tolist() == [10.0, 20.0]  # the centre is the prediction itself
    # joint 0 has the smallest sigma: steps of `unit` px; joint 1, 4x the sigma: 4x the step
    assert grid[0, 0, 5, 6].tolist() == [12.0, 20.0] and grid[0, 0, 4, 5].tolist() == [10.0, 18.0]
    assert grid[0, 1, 0, 0].tolist() == [30.0 - 40.0, 40.0 - 40.0] and grid[0, 1, 10, 10].tolist() == [
        70.0,
        80.0,
    ]
    with pytest.raises(ValueError, match="odd"):
        expansion_offsets([0.1], ksize=10)
    with pytest.raises(ValueError, match="unit"):
        KeypointExpansion(unit=0.0)


def _one_person(offset_steps: torch.Tensor, area: float = 900.0):
    """Truth at the origin-ish, prediction offset by ``offset_steps [K, 2]`` grid steps of each joint."""
    gt = torch.stack([torch.arange(17.0) * 10, torch.arange(17.0) * 5], -1).double()
    pred = gt + offset_steps.double() * STEP.double()[:, None]
    return pred[None], gt[None, None], torch.ones(1, 1, 17, dtype=torch.bool), torch.tensor([[area]]).double()


def test_prediction_within_reach_is_moved_onto_the_truth():
    offsets = torch.tensor(
        [[(k % 11) - 5, 5 - (k % 7)] for k in range(17)], dtype=torch.float64
    )  # on the grid
    pred, gt, vis, area = _one_person(offsets)
    assert oks(pred, gt[:, 0], vis[:, 0], area[:, 0], COCO_SIGMAS).item() < 0.5
    refined, best, matched = KeypointExpansion().refine(pred, gt, vis, area, COCO_SIGMAS)
    torch.testing.assert_close(refined, gt[:, 0], rtol=0, atol=1e-9)
    assert best.item() == pytest.approx(1.0) and matched.item() == 0


def test_prediction_out_of_reach_gives_the_closed_form_oks():
    # x: 7.3 steps out (the grid reaches 5), y: 2.4 steps (inside, off the grid by 0.4 steps)
    offsets = torch.tensor([[7.3, -2.4]] * 17, dtype=torch.float64)
    pred, gt, vis, area = _one_person(offsets, area=2500.0)
    refined, best, _ = KeypointExpansion().refine(pred, gt, vis, area, COCO_SIGMAS)
    residual = torch.stack([2.3 * STEP, -0.4 * STEP], -1).double()
    torch.testing.assert_close(refined[0] - gt[0, 0], residual, rtol=0, atol=1e-9)
    d2 = (residual**2).sum(-1).numpy()
    expected = np.exp(-d2 / (2 * 2500.0 * (2 * COCO_SIGMAS.double().numpy()) ** 2)).mean()
    assert 0.05 < expected < 0.95 and best.item() == pytest.approx(expected, rel=1e-12)


def test_the_best_person_is_matched_and_unlabelled_joints_stay():
    pred, near, _, area = _one_person(torch.zeros(17, 2))
    far = near + 500.0
    gt = torch.cat([far, near + STEP[:, None], near], 1)  # [1, 3, K, 2]: far away, one step off, padding
    vis = torch.ones(1, 3, 17, dtype=torch.bool)
    vis[0, 1, 4] = False  # the matched person does not label joint 4
    valid = torch.tensor([[True, True, False]])  # the exact copy is padding: it must not be matched
    refined, best, matched = KeypointExpansion().refine(pred, gt, vis, area.expand(1, 3), COCO_SIGMAS, valid)
    assert matched.item() == 1 and best.item() == pytest.approx(1.0)
    assert refined[0, 4].tolist() == pred[0, 4].tolist()
    keep = torch.arange(17) != 4
    torch.testing.assert_close(refined[0, keep], gt[0, 1, keep], rtol=0, atol=1e-9)
    # no valid person: the pose stays, unmatched
    refined, best, matched = KeypointExpansion().refine(
        pred, gt, vis, area.expand(1, 3), COCO_SIGMAS, ~valid & False
    )
    assert torch.equal(refined, pred) and best.item() == 0.0 and matched.item() == -1


def test_chunks_and_nan_predictions():
    torch.manual_seed(0)
    gt = torch.rand(7, 2, 17, 2, dtype=torch.float64) * 100
    pred = gt[:, 0] + torch.randn(7, 17, 2, dtype=torch.float64) * 8
    pred[3, 2] = float("nan")
    vis = torch.rand(7, 2, 17) > 0.2
    area = torch.full((7, 2), 3000.0, dtype=torch.float64)
    whole = KeypointExpansion().refine(pred, gt, vis, area, COCO_SIGMAS)
    chunked = KeypointExpansion(chunk=2).refine(pred, gt, vis, area, COCO_SIGMAS)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b, equal_nan=True)
    refined, best, _ = whole
    assert torch.isnan(refined[3, 2]).all() and torch.isfinite(refined[3, 3]).all()
    before = oks(pred[:, None], gt, vis, area, COCO_SIGMAS).amax(1)
    assert bool((best >= before - 1e-12).all()) and bool(torch.isfinite(best).all())
    with pytest.raises(ValueError, match=r"pred \[N, K, 2\] and gt \[N, G, K, 2\]"):
        KeypointExpansion().refine(pred, gt[:, 0], vis, area, COCO_SIGMAS)


@pytest.fixture(scope="module")
def coco_people(coco_gt):  # noqa: F811
    """``(image ids [N], keypoints [N, 17, 2], labelled [N, 17], area [N])`` of the COCO sample's persons."""
    anns, ids, kp, flags = coco_gt
    return ids, kp, flags > 0, torch.tensor([a["area"] for a in anns], dtype=torch.float64)


def test_coco_bound_is_100_within_reach_and_never_below_the_ap(coco_people):
    ids, kp, _, _ = coco_people
    n = len(ids)
    metric = CocoOksAP(COCO_FILE, expansion=KeypointExpansion())
    metric.update(ids, kp + 3 * STEP.double()[:, None], torch.ones(n, 17))  # 3 steps right and down
    stats = metric.compute_stats()
    assert stats["AP"] < 90.0 and stats["AP_bound"] == pytest.approx(100.0)
    torch.manual_seed(0)
    for noise in (4.0, 15.0):
        metric = CocoOksAP(COCO_FILE, expansion=KeypointExpansion())
        metric.update(ids, kp + noise * torch.randn_like(kp), torch.rand(n, 17))
        stats = metric.compute_stats()
        assert stats["AP"] < stats["AP_bound"] <= 100.0
    plain = CocoOksAP(COCO_FILE)
    plain.update(ids, kp, torch.ones(n, 17))
    assert "AP_bound" not in plain.compute_stats()


def test_sample_oks_ap_matches_the_annotation_file_scorer(coco_people):
    """One person per sample: the in-memory ground truth scores exactly as the file does on the same persons."""
    ids, kp, vis, area = coco_people
    single = [i for i in range(len(ids)) if int((ids == ids[i]).sum()) == 1]
    torch.manual_seed(1)
    pred = kp[single] + 6 * torch.randn_like(kp[single])
    scores = torch.rand(len(single), 17)
    file_metric = CocoOksAP(COCO_FILE, predicted_images_only=True, expansion=KeypointExpansion())
    file_metric.update(ids[single], pred, scores)
    sample_metric = SampleOksAP(COCO_SIGMAS.numpy(), expansion=KeypointExpansion())
    sample_metric.update(pred, scores, kp[single], vis[single], area[single], torch.arange(len(single)) + 100)
    a, b = file_metric.compute_stats(), sample_metric.compute_stats()
    assert a["AP"] < 100 and a == pytest.approx(b)
    # pycocotools' OKS of the in-memory truth is heatlit's oks()
    expected = oks(pred, kp[single], vis[single], area[single], COCO_SIGMAS)
    got = [sample_metric.last_eval.ious[(100 + i, 1)][0, 0] for i in range(len(single))]
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-9)


def test_sample_oks_ap_bad_input():
    metric = SampleOksAP(np.full(3, 0.1))
    kp = torch.zeros(2, 3, 2)
    with pytest.raises(ValueError, match="truth_keypoints of shape"):
        metric.update(
            kp, torch.ones(2, 3), kp[:, :2], torch.ones(2, 3, dtype=torch.bool), torch.ones(2), [0, 1]
        )
    with pytest.raises(ValueError, match=">= 0"):
        metric.update(kp, torch.ones(2, 3), kp, torch.ones(2, 3, dtype=torch.bool), torch.ones(2), [-1, 1])
    assert not metric.update_called or len(metric.keypoints) == 0  # refused batches store nothing
    empty = SampleOksAP(np.full(3, 0.1), expansion=KeypointExpansion())
    with pytest.warns(UserWarning, match="no predictions"):
        assert empty.compute_stats()["AP_bound"] == 0.0


def test_oks_truth_area_is_the_projected_joint_box():
    """Depth data: the box of every joint projected from 3D, in original image px, visible or not."""
    cam = torch.tensor([[100.0, 0.0, 40.0], [0.0, 100.0, 20.0], [0.0, 0.0, 1.0]])
    joints = torch.tensor([[[0.0, 0.0, 2000.0], [200.0, -400.0, 2000.0], [-100.0, 200.0, 4000.0]]])
    to_image = torch.tensor([[[2.0, 0.0, 1.0], [0.0, 2.0, 3.0]]])  # input px -> image px: x2, then shift
    projected = torch.tensor([[[40.0, 20.0], [50.0, 0.0], [37.5, 25.0]]])
    batch = {
        "keypoints": projected,
        "visible": torch.tensor([[True, False, False]]),
        "joints3d": joints,
        "cam_K": cam[None],
        "has_3d": torch.tensor([True]),
        "to_image": to_image,
    }
    keypoints, visible, area = oks_truth(batch)
    torch.testing.assert_close(keypoints, projected.double() * 2 + torch.tensor([1.0, 3.0]).double())
    assert area.item() == pytest.approx((2 * 12.5) * (2 * 25.0))
    assert visible.tolist() == [[True, False, False]]
    batch["has_3d"] = torch.tensor([False])  # 2D data: the visible keypoints' box (one point: 0)
    assert oks_truth(batch)[2].item() == 0.0


def test_depth_skeleton_sigmas_are_symmetric_and_cocos_where_they_correspond():
    assert len(sk.OKS_SIGMAS) == sk.NUM_JOINTS
    coco = dict(
        zip(("Arm", "ForeArm", "Hand", "UpLeg", "Leg", "Foot"), (0.079, 0.072, 0.062, 0.107, 0.087, 0.089))
    )
    for name, sigma in zip(sk.JOINT_NAMES, sk.OKS_SIGMAS):
        side = name.removeprefix("Left").removeprefix("Right")
        if side in coco:
            assert sigma == coco[side], name
