"""Multi-person data and scoring: the crowd generator, bottom-up targets and the peak-detection metric."""

from __future__ import annotations

import functools
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from heatlit.body import skeleton as sk
from heatlit.body.camera import Camera, look_at, project
from heatlit.body.shape import make_body
from heatlit.codecs import candidate_peaks, gaussian_heatmaps, multipeak_decode
from heatlit.codecs.bottomup import bottom_up_heatmaps
from heatlit.codecs.grid import HeatmapGrid
from heatlit.data import HeatmapDataModule
from heatlit.data.generator import render as rd
from heatlit.data.generator.cache import world_of
from heatlit.data.generator.config import CrowdConfig
from heatlit.data.generator.crowd import (
    LABEL_BODY,
    PERSON_LABELS,
    crowd_people,
    crowd_sample,
    label_owner,
    people_visibility,
    person_scene,
)
from heatlit.data.generator.motion import forward, local_rotations, root_rotation
from heatlit.data.synth import SynthMultiSource
from heatlit.metrics import PeakDetection, average_precision, match_peaks
from heatlit.results import read_results
from heatlit.training.peaks import PeakScorer

TINY = dict(width=40, height=20, train_frames=24, val_frames=8, test_frames=8, mocap_path=None)


# ------------------------------------------------------------------------------------ the metric
def _one_channel(peaks, scores, truth):
    """[P, 2] peaks, [P] scores, [M, 2] joints (all visible) -> the metric's [B=1, K=1, ...] inputs."""
    peaks = torch.tensor(peaks, dtype=torch.float64)[None, None]
    truth = torch.tensor(truth, dtype=torch.float64)[None, :, None]
    return peaks, torch.tensor(scores)[None, None], truth, torch.ones(truth.shape[:3], dtype=torch.bool)


def test_peak_metric_hand_computed_precision_recall_f1_ap():
    # Joints at (0, 0) and (10, 0). Peaks: near the first (1 px, score 0.9 and 0.5 px, score 0.5), 3 px from
    # the second (score 0.8), and a stray one (score 0.95).
    metric = PeakDetection(thresholds=(2.0, 4.0), ap_thresholds=(2.0, 4.0))
    metric.update(
        *_one_channel([[1, 0], [10, 3], [50, 50], [0.5, 0]], [0.9, 0.8, 0.95, 0.5], [[0, 0], [10, 0]])
    )
    out = {k: float(v) for k, v in metric.compute().items()}
    # t = 2: one pair is possible and the shorter one wins: the 0.5 px peak (score 0.5), not the 1 px one.
    # P = 1/4, R = 1/2, F1 = 1/3. Ranked by score: F F F T -> precision at the hit 1/4, AP = 1/2 * 1/4.
    assert out["peak_p@2"] == pytest.approx(25.0)
    assert out["peak_r@2"] == pytest.approx(50.0)
    assert out["peak_f1@2"] == pytest.approx(100 / 3)
    assert out["peak_ap@2"] == pytest.approx(12.5)
    # t = 4: the 3 px peak pairs with the second joint too. Ranked F F T T: precisions 1/3 and 1/2, made
    # non-increasing: 1/2 and 1/2; AP = (1/2 + 1/2) / 2.
    assert out["peak_p@4"] == pytest.approx(50.0) and out["peak_r@4"] == pytest.approx(100.0)
    assert out["peak_f1@4"] == pytest.approx(200 / 3) and out["peak_ap@4"] == pytest.approx(50.0)
    assert out["peak_ap"] == pytest.approx((12.5 + 50.0) / 2)


def test_matching_takes_the_most_pairs_not_the_nearest_first():
    # Joints A = 0, B = 3 on a line; peaks x = 1 (1 from A, 2 from B), y = -1.5 (1.5 from A, 4.5 from B).
    # Nearest first (x-A) leaves y without a joint; the assignment pairs y-A and x-B.
    peaks, scores, truth, visible = _one_channel([[1, 0], [-1.5, 0]], [0.9, 0.8], [[0, 0], [3, 0]])
    hits = match_peaks(peaks[0], scores[0] > 0, truth[0].transpose(0, 1), visible[0].T, [2.0])
    assert hits.tolist() == [[[True, True]]]
    metric = PeakDetection(thresholds=(2.0,), ap_thresholds=(2.0,))
    metric.update(peaks, scores, truth, visible)
    assert float(metric.compute()["peak_r@2"]) == pytest.approx(100.0)


def _brute_force(d: np.ndarray, t: float) -> tuple[int, float]:
    """(most pairs, least summed distance among those) over every one-to-one pairing within t."""
    p, m = d.shape
    best = (0, 0.0)
    for k in range(1, min(p, m) + 1):
        for rows in itertools.combinations(range(p), k):
            for cols in itertools.permutations(range(m), k):
                ds = [d[r, c] for r, c in zip(rows, cols)]
                if max(ds) <= t and (k, -sum(ds)) > (best[0], -best[1]):
                    best = (k, sum(ds))
    return best


def test_matching_agrees_with_brute_force_on_random_channels():
    g = torch.Generator().manual_seed(0)
    n, p, m = 60, 4, 3
    peaks = torch.rand(n, p, 2, generator=g, dtype=torch.float64) * 6
    truth = torch.rand(n, m, 2, generator=g, dtype=torch.float64) * 6
    real = torch.rand(n, p, generator=g) > 0.2
    valid = torch.rand(n, m, generator=g) > 0.2
    thresholds = [1.0, 2.5]
    hits = match_peaks(peaks, real, truth, valid, thresholds)
    d = torch.cdist(peaks, truth).numpy()
    for i in range(n):
        sub = d[i][real[i].numpy()][:, valid[i].numpy()]
        for ti, t in enumerate(thresholds):
            pairs, total = _brute_force(sub, t) if sub.size else (0, 0.0)
            assert int(hits[ti, i].sum()) == pairs
            assert not bool((hits[ti, i] & ~real[i]).any())
            # the chosen peaks admit a pairing of that size and that summed distance
            chosen = d[i][hits[ti, i].numpy()][:, valid[i].numpy()]
            if pairs:
                assert _brute_force(chosen, t) == pytest.approx((pairs, total))


def test_average_precision_ranks_by_score():
    # Ranked hits T F T with 2 joints: precision 1, 1/2, 2/3 -> envelope 1, 2/3, 2/3 -> (1 + 2/3) / 2.
    hits = torch.tensor([[True], [False], [True]])
    ap = average_precision(torch.tensor([0.9, 0.8, 0.7]), hits, 2)
    assert float(ap[0]) == pytest.approx(5 / 6)
    # the same detections in another input order: AP follows the scores, not the order
    assert float(average_precision(torch.tensor([0.7, 0.9, 0.8]), hits[[2, 0, 1]], 2)[0]) == pytest.approx(
        5 / 6
    )
    # a joint never found caps recall: 3 joints -> (1 + 2/3) / 3
    assert float(average_precision(torch.tensor([0.9, 0.8, 0.7]), hits, 3)[0]) == pytest.approx(5 / 9)


def test_padding_and_invisible_joints_do_not_count_and_batches_accumulate():
    peaks = torch.tensor([[[[0.0, 0.0], [5.0, 5.0], [9.0, 9.0]]], [[[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]]])
    scores = torch.tensor([[[0.8, 0.6, 0.0]], [[0.7, 0.0, 0.0]]])  # score 0: padding
    truth = torch.tensor([[[[0.0, 0.0]], [[9.0, 9.0]]], [[[1.0, 1.0]], [[40.0, 40.0]]]])
    visible = torch.tensor([[[True], [False]], [[True], [False]]])  # (9, 9) and (40, 40) are not visible
    one = PeakDetection(thresholds=(1.0,), ap_thresholds=(1.0,))
    one.update(peaks, scores, truth, visible)
    out = {k: float(v) for k, v in one.compute().items()}
    # real peaks: (0,0) .8 hit, (5,5) .6 miss, (1,1) .7 hit; joints: 2 visible
    assert out["peak_p@1"] == pytest.approx(200 / 3) and out["peak_r@1"] == pytest.approx(100.0)
    assert out["peak_ap@1"] == pytest.approx(100.0)  # both hits rank above the miss
    two = PeakDetection(thresholds=(1.0,), ap_thresholds=(1.0,))
    two.update(peaks[:1], scores[:1], truth[:1], visible[:1])
    two.update(peaks[1:], scores[1:], truth[1:], visible[1:])
    assert {k: float(v) for k, v in two.compute().items()} == pytest.approx(out)


def test_peak_metric_errors_and_empty_input():
    metric = PeakDetection()
    with pytest.raises(ValueError, match=r"peaks \[B, K, P, n\]"):
        metric.update(torch.zeros(1, 2, 3), torch.zeros(1, 2), torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2))
    with pytest.raises(ValueError, match=r"truth \[B, M, K, n\]"):
        metric.update(
            torch.zeros(1, 2, 3, 2), torch.zeros(1, 2, 3), torch.zeros(1, 1, 3, 2), torch.ones(1, 1, 3)
        )
    with pytest.raises(ValueError, match="thresholds"):
        PeakDetection(thresholds=(-1.0,))
    with pytest.warns(UserWarning, match="no visible joint"):
        out = metric.compute()
    assert all(float(v) == 0.0 for v in out.values())
    # a visible joint at NaN is skipped and counted, not a NaN result
    metric.update(
        torch.zeros(1, 1, 1, 2),
        torch.ones(1, 1, 1),
        torch.full((1, 1, 1, 2), float("nan")),
        torch.ones(1, 1, 1),
    )
    assert int(metric.num_skipped) == 1 and int(metric.num_truth) == 0


# ---------------------------------------------------------------------------- bottom-up targets
def test_people_combine_by_maximum_keeping_each_peak_where_a_sum_merges_them():
    # Two people's joints 3 px apart (sigma 2): under the maximum each peak stays at its joint with
    # height 1; the sum's profile g(x - 10) + g(x - 13) has a single mode, halfway (less than 2 sigma apart).
    keypoints = torch.tensor([[[[10.0, 8.0]], [[13.0, 8.0]]]])  # [B=1, M=2, K=1, 2]
    visible = torch.ones(1, 2, 1, dtype=torch.bool)
    encoder = functools.partial(gaussian_heatmaps, sigma=2.0)
    top, weights = bottom_up_heatmaps(encoder, keypoints, visible, (16, 24))
    row = top[0, 0, 8]
    assert row[10] == row[13] == pytest.approx(1.0)
    assert row[10] > row[9] and row[10] > row[11] and row[13] > row[12] and row[13] > row[14]
    summed, _ = bottom_up_heatmaps(encoder, keypoints, visible, (16, 24), combine="sum")
    profile = summed[0, 0, 8]
    modes = [x for x in range(1, 23) if profile[x] >= profile[x - 1] and profile[x] >= profile[x + 1]]
    assert modes == [11, 12] and float(profile.max()) > 1.0  # one plateau at 11.5, above 1
    assert weights.tolist() == [[1.0]]


def test_multipeak_decoder_recovers_every_person_from_max_combined_targets():
    # Three people's joints at sub-pixel positions, two of them 4 px apart: the peaks of the max-combined
    # target, refined by the Taylor step, are the joints; the sum-combined target's peaks are pulled together.
    joints = torch.tensor([[[[10.3, 8.6]], [[14.2, 8.1]], [[30.7, 5.4]]]])  # [1, 3, 1, 2]
    visible = torch.ones(1, 3, 1, dtype=torch.bool)
    encoder = functools.partial(gaussian_heatmaps, sigma=2.0)
    for combine, tolerance in (("max", 1e-3), ("sum", None)):
        maps, _ = bottom_up_heatmaps(encoder, joints, visible, (16, 40), combine=combine)
        coords, scores = multipeak_decode(maps, max_peaks=5, modulation="none")
        found = coords[0, 0][scores[0, 0] > 0]
        error = torch.cdist(found.double(), joints[0, :, 0].double()).min(0).values
        if tolerance:
            assert len(found) == 3 and float(error.max()) < tolerance
        else:
            assert float(error[:2].min()) > 0.2  # the two close people's peaks moved towards each other


def test_bottom_up_targets_ignore_invisible_people_and_weight_every_channel():
    keypoints = torch.tensor([[[[4.0, 4.0], [2.0, 2.0]], [[12.0, 4.0], [0.0, 0.0]]]])  # [1, 2, 2, 2]
    visible = torch.tensor([[[True, False], [True, False]]])
    heatmaps, weights = bottom_up_heatmaps(
        functools.partial(gaussian_heatmaps, sigma=1.0), keypoints, visible, (8, 16)
    )
    alone, _ = gaussian_heatmaps(keypoints[:, 0], visible[:, 0], (8, 16), 1.0)
    other, _ = gaussian_heatmaps(keypoints[:, 1], visible[:, 1], (8, 16), 1.0)
    torch.testing.assert_close(heatmaps, torch.maximum(alone, other))
    assert float(heatmaps[0, 1].abs().max()) == 0.0 and weights.tolist() == [[1.0, 1.0]]
    with pytest.raises(ValueError, match=r"\[B, M, K, n\]"):
        bottom_up_heatmaps(gaussian_heatmaps, keypoints[0], visible[0], (8, 16))
    with pytest.raises(ValueError, match="combine"):
        bottom_up_heatmaps(gaussian_heatmaps, keypoints, visible, (8, 16), combine="mean")


# ----------------------------------------------------------------------------------- generator
def test_people_visibility_rule_on_hand_made_pixels():
    # One row of three pixels; each shows a surface at the depth and of the person below. Person 0's joint
    # (depth 1000 mm, slack 100 mm) is projected onto each pixel in turn.
    depth = np.array([[950.0, 950.0, 1050.0]])
    label = np.array(
        [[LABEL_BODY + PERSON_LABELS, LABEL_BODY + 3, LABEL_BODY + PERSON_LABELS + 5]], dtype=np.uint8
    )
    assert label_owner(label).tolist() == [[1, 0, 1]] and label_owner(np.array([2, 3])).tolist() == [-1, -1]
    xy = np.array([[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]])
    seen = people_visibility(depth, label, xy, np.full((1, 3), 1000.0), np.full((1, 3), 100.0))
    # another person 50 mm in front: hidden; its own body 50 mm in front: within its slack, seen; another
    # person behind it: seen
    assert seen.tolist() == [[False, True, True]]


def _standing(body, x_mm: float, y_mm: float) -> np.ndarray:
    """``[18, 3]`` world mm: ``body`` at rest (arms down), facing -y (towards the camera below)."""
    local = local_rotations({}, 1)
    joints = forward(body, np.array([[x_mm, y_mm, 0.0]]), root_rotation(np.array([180.0])), local)[0]
    joints[:, 2] += 0.56 * body.height - joints[sk.HIPS, 2]  # hips at their standing height
    return joints


def _render_people(camera: Camera, people: list[tuple[np.ndarray, object]]) -> np.ndarray:
    scenes = [person_scene(j, b, [], i) for i, (j, b) in enumerate(people)]
    scene = scenes[0]
    for s in scenes[1:]:
        scene.extend(s)
    depth, label = rd.render(camera, scene)
    joints_cam = np.stack([camera.to_cam(j) for j, _ in people])
    slack = np.stack([b.visibility_slack for _, b in people])
    return people_visibility(depth, label, project(camera.K, joints_cam), joints_cam[..., 2], slack)


def test_visibility_of_two_people_on_a_hand_built_scene():
    # A camera 1 m high looking along +y; person F 3 m ahead, person R 4.5 m ahead, both at rest facing it.
    R, t = look_at(np.array([0.0, -3000.0, 1000.0]), np.array([0.0, 0.0, 1000.0]))
    camera = Camera("test", np.array([[100.0, 0, 79.5], [0, 100.0, 39.5], [0, 0, 1]]), R, t, 160, 80)
    body = make_body(1700.0)
    front, rear = _standing(body, 0.0, 0.0), _standing(body, 0.0, 1500.0)
    alone_front = _render_people(camera, [(front, body)])[0]
    alone_rear = _render_people(camera, [(rear, body)])[0]
    assert alone_rear.sum() >= 12 and alone_front.sum() >= 12  # a person alone shows most joints
    both = _render_people(camera, [(front, body), (rear, body)])
    # R stands right behind F, smaller in the image (two thirds of F's size about the hips): F hides all
    # of R, and R hides nothing of F.
    assert not both[1].any()
    assert both[0].tolist() == alone_front.tolist()
    # 1.5 m to the side, R is nowhere behind F: both show what they show alone
    aside = _render_people(camera, [(front, body), (_standing(body, 1500.0, 1500.0), body)])
    assert aside[1].tolist() == _render_people(camera, [(_standing(body, 1500.0, 1500.0), body)])[0].tolist()
    assert aside[0].tolist() == alone_front.tolist()


def _segment_points(a: np.ndarray, b: np.ndarray, n: int = 50) -> np.ndarray:
    return a + np.linspace(0.0, 1.0, n)[:, None] * (b - a)


def _spheres(scene) -> list[tuple[np.ndarray, float]]:
    """Primitives as spheres along them (capsules sampled densely, ellipsoids by their largest radius)."""
    out = [(p, r) for a, b, r, _ in scene.capsules for p in _segment_points(np.asarray(a), np.asarray(b))]
    return out + [(np.asarray(c), float(np.max(radii))) for c, _, radii, _ in scene.ellipsoids]


def test_crowd_people_never_overlap_in_3d_and_counts_stay_in_range():
    cfg = CrowdConfig(**{k: v for k, v in TINY.items() if k != "mocap_path"}, min_gap_mm=50.0)
    world = world_of(cfg)
    plan = world.plan("train")
    counts = []
    for n in range(0, len(plan), 2):
        camera = world.output_camera(int(plan[n, 0]), int(plan[n, 3]))
        people = crowd_people(world, "train", n, plan[n], camera)
        counts.append(len(people))
        spheres = [_spheres(p["scene"]) for p in people]
        for i, j in itertools.combinations(range(len(people)), 2):
            ci, ri = np.array([c for c, _ in spheres[i]]), np.array([r for _, r in spheres[i]])
            cj, rj = np.array([c for c, _ in spheres[j]]), np.array([r for _, r in spheres[j]])
            gap = np.linalg.norm(ci[:, None] - cj[None], axis=-1) - ri[:, None] - rj[None]
            # footprints keep >= 50 mm apart; sampling the capsules (<= 520 mm long) every <= 11 mm
            # overstates a gap by less than 11 mm
            assert gap.min() > 50.0 - 11.0, (n, i, j, gap.min())
    assert min(counts) >= 2 and max(counts) <= 4 and len(set(counts)) > 1


@pytest.fixture(scope="module")
def crowd_cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crowd")
    SynthMultiSource(str(root), "train", progress=False, **TINY)
    return root


def test_multi_source_sample_contract_and_determinism(crowd_cache: Path):
    src = SynthMultiSource(str(crowd_cache), "train", progress=False, **TINY)
    assert not src.generated and src.cache_dir.name.startswith("synth_multi-")
    desc = src.description
    assert desc.multi_person and desc.monitor == "peak_ap" and desc.name == "synth_multi"
    counts = []
    for i in range(len(src)):
        s = src[i]
        m = s["meta"]["people"]
        counts.append(m)
        assert s["people_keypoints"].shape == (m, 18, 2) and s["people_visible"].shape == (m, 18)
        # the host fills the single-person fields
        np.testing.assert_array_equal(s["keypoints"], s["people_keypoints"][0])
        np.testing.assert_array_equal(s["visible"], s["people_visible"][0])
        np.testing.assert_allclose(
            project(s["cam_K"], s["joints3d"].astype(np.float64)), s["keypoints"], atol=1e-3
        )
    assert 2 <= min(counts) and max(counts) <= 4
    # any sample renders alone to the same bytes as the cache holds
    cfg = src.config
    for n in (0, 17):
        alone = crowd_sample(cfg, "train", n)
        m = len(alone["visible"])
        np.testing.assert_array_equal(alone["depth"] * np.float32(1e-4), src[n]["image"][..., 0])
        np.testing.assert_array_equal(alone["keypoints"], src[n]["people_keypoints"][:m])
        np.testing.assert_array_equal(alone["visible"], src[n]["people_visible"])
    in_frame = SynthMultiSource(str(crowd_cache), "train", progress=False, visibility="in_frame", **TINY)
    s, t = in_frame[5], src[5]
    assert (s["people_visible"] >= t["people_visible"]).all()  # occluded joints count too, nothing lost


def test_multi_person_batches_hold_every_person(crowd_cache: Path):
    factory = functools.partial(SynthMultiSource, str(crowd_cache), progress=False, **TINY)
    dm = HeatmapDataModule(factory, input_size=(20, 40), stride=2, batch_size=6, augment={"enabled": False})
    batch = next(iter(dm.val_dataloader()))
    b, m, k, _ = batch["people_keypoints"].shape
    assert b == 6 and k == 18 and m == max(dm.source("val")[i]["meta"]["people"] for i in range(6))
    assert batch["target_weight"].eq(1).all()
    grid = dm.grid
    expected = torch.zeros(b, k, *grid.heatmap_size)
    for person in range(m):
        maps, _ = dm.encoder(
            grid.to_heatmap(batch["people_keypoints"][:, person]),
            batch["people_visible"][:, person],
            grid.heatmap_size,
        )
        expected = torch.maximum(expected, maps)
    torch.testing.assert_close(batch["heatmaps"], expected)
    with pytest.raises(ValueError, match="2D bottom-up targets only"):
        HeatmapDataModule(factory, input_size=(20, 40), stride=2, heatmap_depth=8).source("val")


def test_flip_keeps_every_persons_left_and_right(crowd_cache: Path):
    factory = functools.partial(SynthMultiSource, str(crowd_cache), progress=False, **TINY)
    plain = HeatmapDataModule(factory, input_size=(20, 40), stride=2, augment={"enabled": False}).dataset(
        "train"
    )
    flipped = HeatmapDataModule(
        factory,
        input_size=(20, 40),
        stride=2,
        augment={
            "enabled": True,
            "flip_prob": 1.0,
            "scale": 0.0,
            "rotation_prob": 0.0,
            "depth_shift_m": 0.0,
            "occluder_prob": 0.0,
        },
    ).dataset("train")
    a, f = plain[3], flipped[3]
    perm = list(plain.flip_perm)
    np.testing.assert_allclose(
        f["people_keypoints"][:, :, 0], 39.0 - a["people_keypoints"][:, perm, 0], atol=1e-4
    )
    np.testing.assert_array_equal(f["people_visible"], a["people_visible"][:, perm])


# ------------------------------------------------------------------------------------- scoring
def test_peak_scorer_scores_single_and_multi_peak_decoders_on_one_pass():
    # Two people per map, joints at exact integer pixels: a multi-peak decoder finds both, a single-peak
    # one only the stronger (recall 1/2, precision 1).
    grid = HeatmapGrid((32, 64), 4)
    people = torch.tensor([[[[3.0, 2.0]] * 3, [[10.0, 5.0]] * 3]])  # [1, 2, 3, 2] heatmap px
    visible = torch.ones(1, 2, 3, dtype=torch.bool)
    heatmaps, _ = bottom_up_heatmaps(
        functools.partial(gaussian_heatmaps, sigma=1.5), people, visible, grid.heatmap_size
    )
    heatmaps[0, :, 5, 10] *= 0.9  # the second person is the weaker one

    def multi(maps):  # two candidates: the maxima of the left and right halves, then padding
        left, right = maps[..., :7].flatten(2).max(-1), maps[..., 7:].flatten(2).max(-1)
        coords = torch.stack(
            [
                torch.stack([left.indices % 7, left.indices // 7], -1),
                torch.stack([right.indices % 9 + 7, right.indices // 9], -1),
                torch.zeros_like(torch.stack([left.indices] * 2, -1)),
            ],
            2,
        ).float()
        return coords, torch.stack([left.values, right.values, torch.zeros_like(left.values)], -1)

    def single(maps):
        best = maps.flatten(2).max(-1)
        return torch.stack([best.indices % 16, best.indices // 16], -1).float(), best.values

    assert candidate_peaks(*single(heatmaps))[0].shape == (1, 3, 1, 2)
    scorer = PeakScorer(
        {"single": single, "multi": multi}, functools.partial(PeakDetection, (1.0,), (1.0,)), grid
    )
    strongest = scorer.update(
        heatmaps, {"people_keypoints": grid.to_input(people), "people_visible": visible}
    )
    torch.testing.assert_close(strongest["multi"], grid.to_input(people[:, 0]))
    out = scorer.compute()
    assert out["multi"]["peak_r@1"] == pytest.approx(100.0) and out["multi"]["peak_p@1"] == pytest.approx(
        100.0
    )
    assert out["single"]["peak_r@1"] == pytest.approx(50.0) and out["single"]["peak_p@1"] == pytest.approx(
        100.0
    )
    assert out["single"]["peak_ap@1"] == pytest.approx(50.0) and math.isclose(out["multi"]["peak_ap"], 100.0)


# --------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_multiperson_experiment_trains_and_scores_peaks(tmp_path: Path, crowd_cache: Path):
    from tests.test_train import run_train

    results = run_train(["experiment=multiperson", "debug=fast"], tmp_path / "run", crowd_cache)
    test = results["test"]
    assert {"argmax", "dark", "multipeak", "multipeak_int"} <= set(test)
    for metrics in test.values():
        assert {"peak_ap", "peak_p@2", "peak_r@2", "peak_f1@2", "peak_ap@8"} <= set(metrics)
        assert "pckh@0.1" not in metrics
        assert all(0.0 <= v <= 100.0 for v in metrics.values())
    saved = read_results(tmp_path / "run" / "results.json")
    assert saved.dataset["multi_person"] is True and saved.facts["monitor"] == "val/multipeak/peak_ap"


# ------------------------------------------------------------------------------------- report
def test_report_section_tables_and_variant_differences(tmp_path: Path):
    from heatlit.report import write_report
    from tests.test_report import write_job

    # Two jobs (encodings) with known peak metrics; the section shows AP and F1, and each multi-peak option's
    # difference on the same job.
    def metrics(ap, f1):
        return {"peak_ap": ap, "peak_ap@2": ap - 5, "peak_f1@2": f1, "peak_p@2": f1 + 1, "peak_r@2": f1 - 1}

    base = {"multipeak_int": (40.0, 50.0), "multipeak_dark": (46.0, 53.0), "multipeak_blur_int": (39.0, 49.0),
            "multipeak_blur": (44.5, 52.0), "multipeak": (45.0, 52.5), "argmax": (20.0, 30.0)}  # fmt: skip
    for i, (enc, shift) in enumerate((("quant", 0.0), ("unquant", 2.0))):
        test = {dec: metrics(ap + shift, f1) for dec, (ap, f1) in base.items()}
        write_job(tmp_path, f"{i}", [f"encoding={enc}"], {"model": "hourglass_tiny", "encoding": enc}, test)
    for results in tmp_path.glob("*/results.json"):  # the jobs were multi-person
        payload = json.loads(results.read_text())
        payload["dataset"] = SynthMultiSource.description.to_dict()
        results.write_text(json.dumps(payload))
    written = write_report(tmp_path)
    text = written["multiperson.md"].read_text()
    assert "| model | encoding | decoder | AP (mean) ↑ | AP@2px ↑ | F1@2px ↑ |" in text
    assert "| hourglass_tiny | unquant | multipeak_dark | **48.00** | **43.00** | **53.00** |" in text
    # with - without, per job: DARK refinement +6 AP, +3 F1; blur before NMS on integer peaks -1, -1
    assert (
        "| hourglass_tiny | quant | DARK refinement (blur around each peak, Taylor step) | +6.00 | +6.00 | +3.00 |"
        in text
    )
    assert "| hourglass_tiny | unquant | blur before NMS (integer peaks) | -1.00 | -1.00 | -1.00 |" in text
    report = written["report.md"].read_text()
    assert "## Multi-person peaks (test)" in report and "candidate peaks scored by P/R/F1/AP" in report


def test_crowd_config_key_ignores_int_or_float_spelling():
    # a YAML "50" and the default 50.0 are one setting: one cache, not two
    assert CrowdConfig(min_gap_mm=50, fps=30, guest_depth_mm=[1800, 6500]).hash() == CrowdConfig().hash()
    assert CrowdConfig(min_gap_mm=60).hash() != CrowdConfig().hash()
    with pytest.raises(ValueError, match="max_people"):
        CrowdConfig(min_people=3, max_people=2)


def test_multi_person_data_refuses_coordinate_losses():
    from heatlit.training.checks import ConfigError, check_bottom_up_loss
    from heatlit.training.losses import HeatmapLoss

    check_bottom_up_loss(HeatmapLoss(), "synth_multi")  # heatmap MSE: fine
    with pytest.raises(ConfigError, match="use loss=mse.*integral"):
        check_bottom_up_loss(HeatmapLoss(mse_weight=1.0, integral_weight=1.0), "synth_multi")
