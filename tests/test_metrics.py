"""Metrics against hand-computed and independently computed answers, batch/process reduction, bad input."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torchmetrics.utilities.data import dim_zero_cat

from heatlit.metrics import AUC, MPJPE, PCK, RMSE, CocoOksAP, MeanError, PCKh, build_metrics

COCO_DIR = Path(__file__).resolve().parents[1].parent / "shared/data/coco_sample"
COCO_FILE = COCO_DIR / "test_coco.json"


# ----------------------------------------------------------------------------------------------- helpers
def hand_batch():
    """2 samples x 3 joints, errors (px) chosen so every value below is exact in float64.

    sample 0, norm 10: errors 5 (3-4-5), 1 (= 0.1 * 10, on the threshold), 0.5
    sample 1, norm 20: errors 10 (6-8-10, = 0.5 * 20), 12, and an invisible joint 100 px off.
    """
    target = torch.tensor([[[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]], [[5.0, 5.0], [7.0, 9.0], [1.0, 2.0]]])
    offset = torch.tensor([[[3.0, 4.0], [1.0, 0.0], [0.0, 0.5]], [[6.0, 8.0], [0.0, 12.0], [100.0, 0.0]]])
    visible = torch.tensor([[1, 1, 1], [1, 1, 0]])
    norm = torch.tensor([10.0, 20.0])
    return target + offset, target, visible, norm


def random_batch(b: int, k: int, d: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(b, k, d, generator=g, dtype=torch.float64) * 100
    pred = target + torch.randn(b, k, d, generator=g, dtype=torch.float64) * 4
    visible = torch.rand(b, k, generator=g) > 0.2
    norm = torch.rand(b, generator=g, dtype=torch.float64) * 30 + 10
    return pred, target, visible, norm


def update(metric, pred, target, visible, norm):
    """Feed the 4th argument the metric expects (norm for 2D, has_3d for MPJPE)."""
    metric.update(
        pred, target, visible, torch.ones_like(norm, dtype=torch.bool) if isinstance(metric, MPJPE) else norm
    )


FACTORIES = {
    "pckh": (lambda **kw: PCKh(0.1, **kw), 2),
    "pck": (lambda **kw: PCK(0.2, **kw), 2),
    "auc": (lambda **kw: AUC(0.5, 21, **kw), 2),
    "rmse": (lambda **kw: RMSE(**kw), 2),
    "mean_error": (lambda **kw: MeanError(**kw), 2),
    "mpjpe_root": (lambda **kw: MPJPE(root_index=0, **kw), 3),
}


def assert_states_equal(a, b):
    for name in a._defaults:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, list):
            x, y = dim_zero_cat(x), dim_zero_cat(y)
        if x.is_floating_point():
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-9)
        else:
            assert torch.equal(x, y), name


# -------------------------------------------------------------------------------------- hand-computed
def test_pckh_rmse_mean_error_by_hand():
    pred, target, visible, norm = hand_batch()
    # alpha 0.1 thresholds 1 and 2 px: correct = s0 j1 (1 <= 1, inclusive) and s0 j2 -> 2 of 5
    # alpha 0.5 thresholds 5 and 10 px: all but s1 j1 (12 > 10) -> 4 of 5, both boundary cases correct
    results = {}
    for name, metric in {"p01": PCKh(0.1), "p05": PCKh(0.5), "rmse": RMSE(), "me": MeanError()}.items():
        metric.update(pred, target, visible, norm)
        results[name] = metric
    assert results["p01"].compute().item() == pytest.approx(40.0)
    assert results["p05"].compute().item() == pytest.approx(80.0)
    assert results["rmse"].compute().item() == pytest.approx(math.sqrt((25 + 1 + 0.25 + 100 + 144) / 5))
    assert results["me"].compute().item() == pytest.approx((5 + 1 + 0.5 + 10 + 12) / 5)
    # per joint (alpha 0.1): j0 0/2, j1 1/2, j2 1/1 (the invisible s1 j2 is not a miss)
    torch.testing.assert_close(results["p01"].compute_per_joint(), torch.tensor([0.0, 50.0, 100.0]))
    torch.testing.assert_close(results["me"].compute_per_joint(), torch.tensor([7.5, 6.5, 0.5]))
    assert int(results["p01"].total.sum()) == 5 and int(results["p01"].num_skipped) == 0


def test_pckh_uses_exactly_alpha_not_0_11():
    target = torch.zeros(1, 1, 2)
    pred = torch.tensor([[[1.05, 0.0]]])  # ratio 0.105: wrong at 0.10, right at the 0.11 HRNet reports
    strict, hrnet = PCKh(), PCKh(0.11)
    for m in (strict, hrnet):
        m.update(pred, target, torch.ones(1, 1), torch.tensor([10.0]))
    assert strict.alpha == 0.1 and strict.compute().item() == 0.0
    assert hrnet.compute().item() == 100.0


def test_ground_truth_as_prediction_is_perfect():
    _, target, visible, norm = random_batch(4, 5, 2, seed=0)
    metrics = {"pckh": PCKh(), "rmse": RMSE(), "auc": AUC()}
    for m in metrics.values():
        m.update(target.clone(), target, visible, norm)
    assert metrics["pckh"].compute().item() == 100.0
    assert metrics["rmse"].compute().item() == 0.0
    assert metrics["auc"].compute().item() == pytest.approx(100.0)
    _, t3, v3, _ = random_batch(4, 5, 3, seed=1)
    mpjpe = MPJPE(root_index=0)
    mpjpe.update(t3.clone(), t3, v3 | torch.tensor([True, False, False, False, False]))
    assert mpjpe.compute().item() == 0.0


# --------------------------------------------------------------------------------- batch / process sums
@pytest.mark.filterwarnings("ignore:MPJPE. .* visible joints were skipped")  # random invisible roots
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_two_batches_equal_one_and_merge_state(name):
    factory, d = FACTORIES[name]
    pred, target, visible, norm = random_batch(10, 6, d, seed=2)
    whole, split, other = factory(), factory(), factory()
    update(whole, pred, target, visible, norm)
    update(split, pred[:4], target[:4], visible[:4], norm[:4])
    update(split, pred[4:], target[4:], visible[4:], norm[4:])
    assert_states_equal(whole, split)
    torch.testing.assert_close(whole.compute(), split.compute())
    # two "processes": merge_state adds the sum states of another instance
    rank0 = factory()
    update(rank0, pred[:7], target[:7], visible[:7], norm[:7])
    update(other, pred[7:], target[7:], visible[7:], norm[7:])
    rank0.merge_state(other)
    assert_states_equal(whole, rank0)
    torch.testing.assert_close(whole.compute(), rank0.compute())
    torch.testing.assert_close(whole.compute_per_joint(), rank0.compute_per_joint())


def test_forward_and_merge_with_unsized_states():
    pred, target, visible, norm = hand_batch()
    metric = PCKh(0.5)  # num_joints=None: per-joint states are sized by the first batch
    assert metric(target, target, visible, norm).item() == 100.0  # forward: this batch only
    assert metric(pred, target, visible, norm).item() == pytest.approx(80.0)
    assert metric.compute().item() == pytest.approx(90.0)  # both batches
    metric.merge_state(PCKh(0.5))  # an instance that saw nothing adds nothing
    assert metric.compute().item() == pytest.approx(90.0)
    coll = build_metrics("pckh")
    out = coll(pred, target, visible, norm)
    assert out["pckh@0.1"].item() == pytest.approx(40.0)


def fake_two_rank_sync(metric_cls, **kwargs):
    """A metric whose compute() all-gathers with a second instance through torchmetrics' own sync path."""
    holder = {}

    def gather(tensor, group=None):
        return [tensor, next(holder["states"])]

    rank0 = metric_cls(dist_sync_fn=gather, distributed_available_fn=lambda: True, **kwargs)
    rank1 = metric_cls(**kwargs)

    def arm():
        holder["states"] = iter(
            dim_zero_cat(s) if isinstance(s, list) else s
            for s in (getattr(rank1, n) for n in rank0._reductions)
        )

    return rank0, rank1, arm


def test_distributed_reduction_emulated():
    pred, target, visible, norm = random_batch(9, 4, 2, seed=3)
    whole = AUC(num_joints=4)
    whole.update(pred, target, visible, norm)
    rank0, rank1, arm = fake_two_rank_sync(AUC, num_joints=4)
    rank0.update(pred[:5], target[:5], visible[:5], norm[:5])
    rank1.update(pred[5:], target[5:], visible[5:], norm[5:])
    local_total = rank0.total.clone()
    arm()
    torch.testing.assert_close(rank0.compute(), whole.compute())
    arm()
    torch.testing.assert_close(rank0.compute_per_joint(), whole.compute_per_joint())
    assert torch.equal(rank0.total, local_total)  # unsynced afterwards, accumulation can go on


# ------------------------------------------------------------------------------------------------- AUC
def numpy_auc(pred, target, visible, norm, alpha_max, n):
    err = np.linalg.norm(pred.numpy() - target.numpy(), axis=-1)
    ratio = (err / norm.numpy()[:, None])[visible.numpy()]
    alphas = np.linspace(0, alpha_max, n)
    pck = np.array([(ratio <= a).mean() for a in alphas])
    return 100 * np.trapezoid(pck, alphas) / alpha_max, ratio


@pytest.mark.parametrize(("alpha_max", "n"), [(0.5, 51), (0.3, 7)])
def test_auc_matches_numpy_trapezoid(alpha_max, n):
    pred, target, visible, norm = random_batch(16, 7, 2, seed=4)
    auc = AUC(alpha_max, n)
    auc.update(pred[:9], target[:9], visible[:9], norm[:9])
    auc.update(pred[9:], target[9:], visible[9:], norm[9:])
    expected, _ = numpy_auc(pred, target, visible, norm, alpha_max, n)
    assert auc.compute().item() == pytest.approx(expected, abs=1e-4)


def test_auc_fine_grid_tends_to_the_exact_integral():
    pred, target, visible, norm = random_batch(16, 7, 2, seed=5)
    auc = AUC(0.5, 5001)
    auc.update(pred, target, visible, norm)
    _, ratio = numpy_auc(pred, target, visible, norm, 0.5, 2)
    exact = 100 * np.clip(1 - ratio / 0.5, 0, None).mean()  # integral of the step 1[alpha >= r]
    assert auc.compute().item() == pytest.approx(exact, abs=0.05)


# ----------------------------------------------------------------------------------------------- MPJPE
def test_mpjpe_root_alignment_and_masks():
    _, target, _, _ = random_batch(3, 5, 3, seed=6)
    shift = torch.tensor([30.0, -40.0, 120.0], dtype=torch.float64)  # norm 130 mm
    visible = torch.ones(3, 5, dtype=torch.bool)
    aligned, absolute = MPJPE(root_index=0), MPJPE()
    for m in (aligned, absolute):
        m.update(target + shift, target, visible)
    assert aligned.compute().item() == pytest.approx(0.0, abs=1e-5)
    assert absolute.compute().item() == pytest.approx(130.0)
    # has_3d=False samples are left out silently; an invisible root makes its sample skipped
    pred = target.clone()
    pred[1] += 1000.0
    pred[2, 3] += torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)
    vis = visible.clone()
    vis[0, 0] = False
    m = MPJPE(root_index=0)
    m.update(pred, target, vis, torch.tensor([1, 0, 1]))
    assert int(m.count.sum()) == 5 and int(m.num_skipped) == 4
    with pytest.warns(UserWarning, match="4 visible joints were skipped"):
        assert m.compute().item() == pytest.approx(5.0 / 5)


# --------------------------------------------------------------------------------- non-finite, empty
def test_nan_prediction_never_counts_as_correct():
    target = torch.zeros(1, 2, 2)
    pred = torch.tensor([[[float("nan"), 0.0], [0.0, float("inf")]]])
    pck, rmse = PCKh(0.5), RMSE()
    for m in (pck, rmse):
        m.update(pred, target, torch.ones(1, 2), torch.tensor([10.0]))
    with pytest.warns(UserWarning, match="2 non-finite predictions were counted as wrong"):
        assert pck.compute().item() == 0.0
    assert int(pck.total.sum()) == 2 and int(pck.num_invalid) == 2
    with (
        pytest.warns(UserWarning, match="excluded from the mean"),
        pytest.warns(UserWarning, match="no joint"),
    ):
        assert rmse.compute().item() == 0.0
    assert int(rmse.num_invalid) == 2 and int(rmse.count.sum()) == 0


def test_invalid_norm_skips_sample_and_empty_returns_zero():
    pred, target, visible, _ = hand_batch()
    m = PCKh(0.5)
    m.update(pred, target, visible, torch.tensor([0.0, float("nan")]))
    assert int(m.num_skipped) == 5 and int(m.total.sum()) == 0
    with (
        pytest.warns(UserWarning, match="no joint could be scored"),
        pytest.warns(UserWarning, match="5 visible"),
    ):
        value = m.compute()
    assert value.item() == 0.0 and not torch.isnan(value)
    partial = PCKh(0.5)
    partial.update(pred, target, visible, torch.tensor([10.0, -1.0]))
    with pytest.warns(UserWarning, match="2 visible joints were skipped"):
        assert partial.compute().item() == 100.0


# ---------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("args", "match"),
    [
        (
            (torch.zeros(2, 3, 3), torch.zeros(2, 3, 3), torch.ones(2, 3), torch.ones(2)),
            r"pred of shape \[B, K, 2\]",
        ),
        ((torch.zeros(2, 3, 2), torch.zeros(2, 4, 2), torch.ones(2, 3), torch.ones(2)), "target of shape"),
        (
            (torch.zeros(2, 3, 2), torch.zeros(2, 3, 2), torch.ones(2), torch.ones(2)),
            r"visible of shape \[B, K\]",
        ),
        (
            (torch.zeros(2, 3, 2), torch.zeros(2, 3, 2), torch.ones(2, 3), torch.ones(2, 1)),
            r"norm of shape \[B\]",
        ),
        ((torch.zeros(2, 3, 2), torch.zeros(2, 3, 2), torch.full((2, 3), 0.5), torch.ones(2)), "bool or 0/1"),
    ],
)
def test_bad_shapes_raise(args, match):
    with pytest.raises(ValueError, match=match):
        PCKh().update(*args)


def test_other_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"pred of shape \[B, K, 3\]"):
        MPJPE().update(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), torch.ones(1, 2))
    with pytest.raises(ValueError, match=r"has_3d of shape \[B\]"):
        MPJPE().update(torch.zeros(2, 2, 3), torch.zeros(2, 2, 3), torch.ones(2, 2), torch.ones(3))
    m = RMSE()
    m.update(torch.zeros(1, 3, 2), torch.zeros(1, 3, 2), torch.ones(1, 3))
    with pytest.raises(ValueError, match="got K=4 joints"):
        m.update(torch.zeros(1, 4, 2), torch.zeros(1, 4, 2), torch.ones(1, 4))
    with pytest.raises(ValueError, match="num_thresholds >= 2"):
        AUC(0.5, 1)
    with pytest.raises(ValueError, match="unknown kind"):
        build_metrics("oks")


# ----------------------------------------------------------------------------------------- collection
def test_build_metrics_keys_and_values():
    pred, target, visible, norm = hand_batch()
    coll = build_metrics("pckh", num_joints=3, prefix="test/argmax/")
    assert sorted(coll.keys()) == [f"test/argmax/{k}" for k in ("auc", "pckh@0.1", "pckh@0.5", "rmse")]
    assert coll["test/argmax/pckh@0.5"].alpha == 0.5
    # first batch perfect: PCKh@0.1 and @0.5 states coincide, which must not merge them
    coll.update(target, target, visible, norm)
    coll.update(pred, target, visible, norm)
    out = coll.compute()
    assert out["test/argmax/pckh@0.1"].item() == pytest.approx(100 * (5 + 2) / 10)
    assert out["test/argmax/pckh@0.5"].item() == pytest.approx(100 * (5 + 4) / 10)
    assert out["test/argmax/rmse"].item() == pytest.approx(math.sqrt(270.25 / 10))
    assert sorted(build_metrics("pck", alphas=(0.05, 0.2)).keys()) == ["auc", "pck@0.05", "pck@0.2", "rmse"]
    clone = coll.clone(prefix="val/")
    assert "val/pckh@0.1" in list(clone.keys())


# ------------------------------------------------------------------------------------------------ COCO
@pytest.fixture(scope="module")
def coco_gt():
    if not COCO_FILE.is_file():
        pytest.skip(f"COCO sample not found at {COCO_FILE} (shared fixtures absent)")
    anns = [a for a in json.loads(COCO_FILE.read_text())["annotations"] if a["num_keypoints"] > 0]
    kp = torch.tensor([a["keypoints"] for a in anns], dtype=torch.float64).view(-1, 17, 3)
    return anns, torch.tensor([a["image_id"] for a in anns]), kp[..., :2], kp[..., 2]


def test_coco_ground_truth_as_prediction_gives_ap_100(coco_gt):
    _, ids, kp, _ = coco_gt
    metric = CocoOksAP(COCO_FILE)
    metric.update(ids[:5], kp[:5], torch.ones(5, 17))
    metric.update(ids[5:], kp[5:], torch.ones(len(ids) - 5, 17))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metric.compute().item() == pytest.approx(100.0)
    stats = metric.compute_stats()
    assert stats["AP50"] == pytest.approx(100.0) and stats["AR"] == pytest.approx(100.0)


def test_coco_perturbation_lowers_ap(coco_gt):
    _, ids, kp, _ = coco_gt
    aps = []
    for offset in (0.0, 4.0, 30.0):
        metric = CocoOksAP(COCO_FILE)
        metric.update(ids, kp + offset, torch.ones(len(ids), 17))
        aps.append(metric.compute().item())
    assert aps[0] == pytest.approx(100.0) and aps[0] > aps[1] > aps[2]
    assert aps[2] < 10.0


def test_coco_oks_matches_numpy_formula(coco_gt):
    anns, ids, kp, vis = coco_gt
    i = next(j for j, a in enumerate(anns) if a["image_id"] == 785)  # the only person in its image
    shift = torch.stack([torch.arange(17.0), -0.5 * torch.arange(17.0)], -1).double()
    pred = kp[i : i + 1] + shift
    pred[0, 16, 0] = float("nan")  # by policy this keypoint's OKS term is 0, the rest stays defined
    metric = CocoOksAP(COCO_FILE, predicted_images_only=True)
    metric.update(ids[i : i + 1], pred, torch.ones(1, 17))
    with pytest.warns(UserWarning, match="1 predictions had non-finite"):
        metric.compute()
    # COCO keypoint sigmas as published (cocodataset.org/#keypoints-eval), not read from pycocotools
    sigmas = np.array([26, 25, 25, 35, 35, 79, 79, 72, 72, 62, 62, 107, 107, 87, 87, 89, 89]) / 1000
    d2 = (shift.numpy() ** 2).sum(-1)
    labelled = vis[i].numpy() > 0
    terms = np.exp(-d2 / (2 * anns[i]["area"] * (2 * sigmas) ** 2))
    terms[16] = 0.0
    expected = terms[labelled].sum() / labelled.sum()
    assert 0.3 < expected < 0.99  # the check is not trivially 0 or 1
    assert metric.last_eval.ious[(785, 1)][0, 0] == pytest.approx(expected, rel=1e-9)


def test_coco_duplicates_nan_and_unknown_images(coco_gt):
    _, ids, kp, _ = coco_gt
    n = len(ids)
    dup = CocoOksAP(COCO_FILE)
    for _ in range(2):  # a padded DistributedSampler repeats samples
        dup.update(ids, kp, torch.ones(n, 17), sample_index=torch.arange(n))
    assert dup.compute().item() == pytest.approx(100.0)
    bad = kp.clone()
    bad[0] = float("nan")
    nan_metric = CocoOksAP(COCO_FILE)
    nan_metric.update(ids, bad, torch.ones(n, 17))
    with pytest.warns(UserWarning, match="1 predictions had non-finite"):
        assert nan_metric.compute().item() < 100.0
    unknown = CocoOksAP(COCO_FILE)
    unknown.update(torch.tensor([123456789]), kp[:1], torch.ones(1, 17))
    with pytest.raises(ValueError, match="123456789"):
        unknown.compute()
    with pytest.raises(ValueError, match=r"keypoints of shape \[B, 17, 2\]"):
        unknown.update(ids[:1], kp[:1, :16], torch.ones(1, 16))


def test_coco_missing_or_corrupt_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        CocoOksAP(tmp_path / "nope.json")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    with pytest.raises(ValueError, match="corrupt.json"):
        CocoOksAP(corrupt)
    no_kp = tmp_path / "boxes.json"
    no_kp.write_text(
        json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]})
    )
    with pytest.raises(ValueError, match="no category 1 with keypoints"):
        CocoOksAP(no_kp)
