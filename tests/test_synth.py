"""Synthetic data: BVH reader, skeleton, motion, renderer ground truth, cache and splits."""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from heatlit.body import camera as dc
from heatlit.body import skeleton as sk
from heatlit.body.shape import make_body
from heatlit.data.depth_humans import DEPTH_HUMANS
from heatlit.data.errors import DataError
from heatlit.data.generator import cache, render
from heatlit.data.generator import scene as sc
from heatlit.data.generator.bvh import BvhError, euler_to_matrix, forward_kinematics, load_bvh, parse_bvh
from heatlit.data.generator.config import SynthConfig
from heatlit.data.generator.mocap import MocapClip
from heatlit.data.generator.motion import forward, local_rotations, root_rotation
from heatlit.data.generator.world import ACTIVITY_ORDER, SynthWorld, render_view
from heatlit.data.synth import SynthSource, default_mocap_path
from tests.human4d_fixture import expand_to_33

CMU_UNIT_CM = 2.54 / 0.45  # CMU ASF "length 0.45": one unit is 1/0.45 inch
TINY = dict(width=40, height=20, train_frames=48, val_frames=16, test_frames=16, progress=False)


# ------------------------------------------------------------------------------------------- BVH
TWO_JOINTS = """HIERARCHY
ROOT Root
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Arm
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    End Site
    {
      OFFSET 5 0 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.5
0 0 0 0 0 0 0 0 0
1 2 3 90 90 0 0 90 0
"""


def test_bvh_hand_built_fk_zxy_and_zyx():
    bvh = parse_bvh(TWO_JOINTS)
    assert bvh.names == ["Root", "Arm", "Arm_End"]
    assert bvh.motion.shape == (2, 9) and bvh.frame_time == 0.5
    pos, rot = forward_kinematics(bvh)
    np.testing.assert_allclose(pos[0], [[0, 0, 0], [0, 10, 0], [5, 10, 0]], atol=1e-12)
    # Frame 1 by hand: root R0 = Rz(90) Rx(90) (ZXY, listed order); Rx(90) (0,10,0) = (0,0,10), Rz leaves it,
    # so Arm = (1,2,3) + (0,0,10). Arm's R1 = R0 Ry(90) (ZYX with only Y): Ry(90) (5,0,0) = (0,0,-5),
    # Rx(90) -> (0,5,0), Rz(90) -> (-5,0,0): the end site is at (1-5, 2, 13).
    np.testing.assert_allclose(pos[1], [[1, 2, 3], [1, 2, 13], [-4, 2, 13]], atol=1e-12)
    # The other order would put the arm elsewhere: the reader really follows the listed order.
    xz = euler_to_matrix(np.array([90.0, 90.0]), "XZ")
    assert not np.allclose(xz @ [0, 10, 0], rot[1, 0] @ [0, 10, 0])


def test_bvh_rejects_truncated_motion():
    text = TWO_JOINTS.rsplit("\n", 2)[0]  # drop the last frame's values
    with pytest.raises(BvhError, match=r"my\.bvh.*2 frames x 9 channels"):
        parse_bvh(text, source="my.bvh")
    with pytest.raises(BvhError, match="unknown channel"):
        parse_bvh(TWO_JOINTS.replace("Zrotation Yrotation Xrotation", "Zrotation Yrotation Wrotation"))


def test_bvh_real_cmu_clip(shared_data: Path):
    bvh = load_bvh(shared_data / "mocap" / "cmu_01_01.bvh")
    assert len(bvh.channel_joints()) == 31
    assert bvh.num_frames == 2752 and bvh.motion.shape == (2752, 6 + 30 * 3)
    assert abs(bvh.frame_time - 1 / 120) < 1e-6
    pos, _ = forward_kinematics(bvh)

    def length_cm(a: str, b: str) -> np.ndarray:
        return np.linalg.norm(pos[:, bvh.index(a)] - pos[:, bvh.index(b)], axis=-1) * CMU_UNIT_CM

    for (a, b), (lo, hi) in {
        ("LeftUpLeg", "LeftLeg"): (35, 50),
        ("RightLeg", "RightFoot"): (35, 50),
        ("LeftArm", "LeftForeArm"): (22, 36),
        ("RightForeArm", "RightHand"): (15, 30),
    }.items():
        seg = length_cm(a, b)
        assert np.ptp(seg) < 1e-9, "rigid bones keep their length in every frame"
        assert lo < seg[0] < hi, (a, b, seg[0])
    hips_cm = pos[0, bvh.index("Hips"), 1] * CMU_UNIT_CM  # y is up in CMU files
    assert 80 < hips_cm < 115
    head_cm = pos[0, bvh.index("Head_End"), 1] * CMU_UNIT_CM
    assert hips_cm + 30 < head_cm
    feet = pos[:, [bvh.index(n) for n in ("LeftToeBase", "RightToeBase")], 1] * CMU_UNIT_CM
    assert -5 < feet.min() < 10  # feet reach the floor


# ------------------------------------------------------------------------------------- skeleton
def test_skeleton_subset_and_flip():
    assert len(sk.HUMAN4D_33) == 33 and len(sk.JOINT_NAMES) == 18
    assert sk.JOINT_NAMES[sk.HEAD_SEGMENT[0]] == "Neck" and sk.JOINT_NAMES[sk.HEAD_SEGMENT[1]] == "HeadEnd"
    assert [sk.HUMAN4D_33.index(n) for n in sk.JOINT_NAMES] == list(sk.SUBSET_18)
    perm = np.asarray(DEPTH_HUMANS.flip_index)
    assert np.array_equal(perm[perm], np.arange(18))
    assert sk.JOINT_NAMES[perm[sk.JOINT_NAMES.index("LeftHand")]] == "RightHand"
    j18 = np.random.default_rng(0).normal(size=(5, 18, 3))
    assert np.array_equal(sk.select_18(expand_to_33(j18)), j18)


# --------------------------------------------------------------------------------------- cameras
def test_projection_of_known_points():
    K = np.array([[100.0, 0, 50], [0, 100.0, 25], [0, 0, 1]])
    pts = np.array([[0, 0, 1000], [100, -50, 1000], [1000, 500, 2000]], dtype=float)
    np.testing.assert_allclose(dc.project(K, pts), [[50, 25], [60, 20], [100, 50]])
    # Half resolution keeps pixel extents aligned: x' = (x + 0.5) / 2 - 0.5.
    K2 = dc.resize_K(K, (100, 50), (50, 25))
    np.testing.assert_allclose(dc.project(K2, pts), (dc.project(K, pts) + 0.5) / 2 - 0.5)
    np.testing.assert_allclose(dc.project(dc.crop_K(K, 10), pts)[:, 1], [15, 10, 40])
    # HUMAN4D: 1280x720 intrinsics / 4.
    np.testing.assert_allclose(
        dc.sensor_to_depth_K(np.diag([900.0, 904.0, 1.0]) + [[0, 0, 640], [0, 0, 360], [0, 0, 0]]),
        [[225, 0, 160], [0, 226, 90], [0, 0, 1]],
    )
    # A camera 3 m in front of the target at the same height: target at the principal point, world +x
    # (its right) to the right, world up is image up.
    R, t = dc.look_at([0, -3000, 1000], [0, 0, 1000])
    cam = dc.Camera("c", K, R, t, 100, 50)
    np.testing.assert_allclose(cam.to_cam([0, -3000, 1000]), 0, atol=1e-9)
    xy = dc.project(K, cam.to_cam([[0, 0, 1000], [300, 0, 1000], [0, 0, 1300]]))
    np.testing.assert_allclose(xy, [[50, 25], [60, 25], [50, 15]], atol=1e-9)


def test_render_primitives_exact_depth():
    K = np.array([[200.0, 0, 20], [0, 200.0, 10], [0, 0, 1]])
    cam = dc.Camera("c", K, np.eye(3), np.zeros(3), 41, 21)
    capsule = (np.array([-100.0, 0, 2000]), np.array([100.0, 0, 2000]), 50.0, sc.LABEL_BODY)
    ellipsoid = (np.array([0.0, 150, 3000]), np.eye(3), np.array([100.0, 60, 80]), sc.LABEL_PROP)
    depth, label = render.render(cam, sc.Scene(capsules=[capsule], ellipsoids=[ellipsoid]))
    # Row 10 looks along y = 0: the cylinder's near side is at z = 1950 wherever |x| < 100 mm.
    assert depth[10, 20] == pytest.approx(1950.0, abs=1e-3) and label[10, 20] == sc.LABEL_BODY
    assert depth[10, 30] == pytest.approx(1950.0, abs=1e-3)  # x = 0.05 * 1950 = 97.5 mm
    # End caps: the ray at slope u passes |2000 u - 100| / |(u, 0, 1)| from the cap centre; that is
    # below 50 mm up to 15 px off centre and above it from 16 px.
    assert np.isfinite(depth[10, [5, 35]]).all() and np.isinf(depth[10, [4, 36]]).all()
    # Ellipsoid on row 20 (v = 0.05): (0.05 d / 60)^2 + (d / 80)^2 = 1 with z = 3000 - d.
    d = 1.0 / np.hypot(0.05 / 60, 1 / 80)
    assert depth[20, 20] == pytest.approx(3000 - d, abs=1e-3) and label[20, 20] == sc.LABEL_PROP
    assert np.isinf(depth[0, 0]) and label[0, 0] == sc.LABEL_NONE


def test_rest_pose_far_arm_hidden_behind_torso():
    body = make_body(1750.0)
    joints = forward(body, np.array([[0.0, 0.0, 950.0]]), root_rotation(np.zeros(1)), local_rotations({}, 1))[
        0
    ]
    K = dc.resize_K(
        dc.crop_K(dc.sensor_to_depth_K(np.array([[890.0, 0, 639.5], [0, 890, 359.5], [0, 0, 1]]))),
        dc.CROP_SIZE,
        (160, 80),
    )
    # The subject faces +y with its right side at +x; the camera looks at that right side from 3 m.
    R, t = dc.look_at([3000.0, 0.0, 1000.0], [0.0, 0.0, 950.0])
    cam = dc.Camera("side", K, R, t, 160, 80)
    depth, label = render.render(cam, sc.body_scene(joints, body))
    jc = cam.to_cam(joints)
    vis = dc.joint_visibility(depth, dc.project(K, jc), jc[:, 2], body.visibility_slack)
    names = dict(zip(sk.JOINT_NAMES, vis))
    hidden = ("LeftArm", "LeftForeArm", "LeftHand", "LeftLeg")  # behind the torso / the near leg
    shown = ("HeadEnd", "RightArm", "RightForeArm", "RightHand", "RightLeg", "RightFoot")
    assert not any(names[n] for n in hidden), names
    assert all(names[n] for n in shown), names
    # Every joint is in frame, so the hidden ones are hidden by the z-buffer alone.
    xy = dc.project(K, jc)
    assert ((xy >= -0.5) & (xy < [159.5, 79.5])).all()


# ---------------------------------------------------------------------------------------- motion
def test_motion_keeps_bone_lengths_and_feet_on_floor(shared_data: Path):
    cfg = SynthConfig(width=40, height=20, mocap_path=str(shared_data / "mocap" / "cmu_01_01.bvh"))
    world = SynthWorld(cfg)
    assert world.activities == list(ACTIVITY_ORDER)
    body = world.bodies[0]
    for activity in world.activities:
        joints = world.performance(1, activity, np.arange(0, 300, 10)).joints
        bones = np.linalg.norm(joints[:, 1:] - joints[:, list(sk.PARENTS[1:])], axis=-1)
        np.testing.assert_allclose(bones, np.broadcast_to(body.bone_lengths[1:], bones.shape), rtol=1e-9)
        low = (joints[:, [sk.L_TOE, sk.R_TOE, sk.L_FOOT, sk.R_FOOT], 2]).min(axis=1)
        assert np.median(low) < 150 and low.min() > -50, activity  # standing on the floor, not in it
        height = joints[:, sk.HEAD_END, 2].max()
        assert 0.8 * body.height < height < 1.25 * body.height, activity
    # A frame's pose and the props do not depend on which other frames are generated with it.
    a, b = (
        world.performance(2, "sitting", np.array([30, 90, 150])),
        world.performance(2, "sitting", np.array([90])),
    )
    np.testing.assert_array_equal(a.joints[1], b.joints[0])
    assert a.props[0][1]["height"] == b.props[0][1]["height"] > 200
    clip = MocapClip(load_bvh(shared_data / "mocap" / "cmu_01_01.bvh"))
    assert clip.duration == pytest.approx(2752 / 120, rel=1e-4)


def test_joint_angle_conventions():
    body = make_body(1700.0)

    def pose(**angles):
        angles = {k: np.asarray(v, dtype=float)[None] for k, v in angles.items()}  # one frame
        return forward(body, np.zeros((1, 3)), root_rotation(np.zeros(1)), local_rotations(angles, 1))[0]

    rest = pose()
    assert rest[sk.HEAD_END, 2] > rest[sk.NECK, 2] > rest[sk.HIPS, 2] > rest[sk.R_LEG, 2]
    assert rest[sk.R_ARM, 0] > 0 > rest[sk.L_ARM, 0]  # x is the subject's right, y forward, z up
    up = pose(r_shoulder=[0, 90, 0], l_shoulder=[0, 90, 0])  # abduction: arms level, sideways
    np.testing.assert_allclose(up[[sk.R_HAND, sk.L_HAND], 2], up[[sk.R_ARM, sk.L_ARM], 2], atol=1e-9)
    assert up[sk.R_HAND, 0] > up[sk.R_ARM, 0] + 500 and up[sk.L_HAND, 0] < up[sk.L_ARM, 0] - 500
    fwd = pose(r_shoulder=[90, 0, 0], l_hip=[90, 0, 0], l_knee=90)  # flexion: arm and thigh forward
    assert fwd[sk.R_HAND, 1] > 500 and abs(fwd[sk.R_HAND, 2] - fwd[sk.R_ARM, 2]) < 1e-9
    assert fwd[sk.L_LEG, 1] > 400 and abs(fwd[sk.L_FOOT, 1] - fwd[sk.L_LEG, 1]) < 1e-9  # shank hangs down
    shrug = pose(r_clav=20, l_clav=20)
    assert shrug[sk.R_ARM, 2] > rest[sk.R_ARM, 2] + 50 and shrug[sk.L_ARM, 2] > rest[sk.L_ARM, 2] + 50


# ------------------------------------------------------------------------------ renderer vs GT
def test_renderer_ground_truth_agrees_with_rendered_body():
    world = SynthWorld(SynthConfig(width=160, height=80, mocap_path=None, noise=False))
    on_body, checked, vis_total = 0, 0, []
    for subject in (1, 2):
        for activity in ("walking", "jumping_jacks", "bending", "punching"):
            perf = world.performance(subject, activity, np.array([15, 95]))
            for f in range(2):
                for k in range(4):
                    cam = world.output_camera(subject, k)
                    view = render_view(
                        world, subject, perf.joints[f], world.scene(subject, perf, f), cam, None
                    )
                    xy, z = view["keypoints"], view["joints3d"][:, 2]
                    # Exact projections of the camera-frame joints through the stored intrinsics.
                    np.testing.assert_allclose(
                        dc.project(cam.K, view["joints3d"].astype(np.float64)), xy, atol=1e-3
                    )
                    px = np.clip(np.floor(xy + 0.5).astype(int), 0, [159, 79])
                    zbuf = view["clean_mm"][px[:, 1], px[:, 0]]
                    lab = view["label"][px[:, 1], px[:, 0]]
                    slack = world.bodies[subject - 1].visibility_slack
                    vis = view["visible"]
                    # Visible: the surface seen there is within the joint's slack in front of it.
                    assert np.all(zbuf[vis] >= z[vis] - slack[vis])
                    hits = vis & (lab >= sc.LABEL_BODY) & (zbuf <= z + 5.0)
                    on_body += hits.sum()
                    checked += vis.sum()
                    vis_total.append(vis.mean())
                    # Invisible and in frame: something nearer than the slack covers it.
                    inside = (xy[:, 0] >= -0.5) & (xy[:, 0] < 159.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < 79.5)
                    hidden = inside & ~vis
                    assert np.all(zbuf[hidden] < z[hidden] - slack[hidden])
    # Visible joints sit on the rendered body (the rest graze a silhouette edge at pixel resolution).
    assert on_body / checked > 0.95, on_body / checked
    assert 0.6 < np.mean(vis_total) < 0.97


# ------------------------------------------------------------------------------- source + cache
@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    SynthSource(str(root), "train", mocap_path=None, **TINY)
    return root


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_source_sample_contract(tiny_cache: Path):
    src = SynthSource(str(tiny_cache), "train", mocap_path=None, **TINY)
    assert not src.generated and len(src) == 48
    desc = src.description
    assert desc.name == "synth" and desc.in_channels == 1 and desc.head_segment == (2, 3)
    assert len(desc.flip_pairs) == 7 and desc.has_3d and desc.root == sk.HIPS
    s = src[3]
    assert s["image"].shape == (20, 40, 1) and s["image"].dtype == np.float32
    depth = s["image"][..., 0]
    assert depth.min() == 0.0 and 0.3 <= depth[depth > 0].min() and depth.max() <= 6.5536
    assert s["keypoints"].dtype == np.float64 and s["keypoints"].shape == (18, 2)
    assert s["visible"].dtype == np.bool_ and s["joints3d"].dtype == np.float32
    np.testing.assert_allclose(
        dc.project(s["cam_K"], s["joints3d"].astype(np.float64)), s["keypoints"], atol=1e-3
    )
    np.testing.assert_array_equal(s["center"], [19.5, 9.5])
    np.testing.assert_array_equal(s["scale"], [40, 20])
    assert s["norm"] == pytest.approx(np.linalg.norm(s["keypoints"][3] - s["keypoints"][2]))
    assert set(s["meta"]) >= {"subject", "activity", "camera", "frame", "sample_id"}
    assert isinstance(s["meta"]["activity"], str) and s["meta"]["sample_id"] == 3


def test_cache_reused_not_regenerated(tiny_cache: Path):
    folder = next(tiny_cache.glob("synth-*"))
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    src = SynthSource(str(tiny_cache), "test", mocap_path=None, **TINY)
    assert not src.generated and src.cache_dir == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps


@pytest.mark.parametrize("damage", ["truncate", "manifest"])
def test_corrupt_cache_is_rebuilt_not_read(tmp_path: Path, damage: str):
    src = SynthSource(str(tmp_path), "val", mocap_path=None, **TINY)
    folder, before = src.cache_dir, _manifest(src.cache_dir)
    reference = np.array(src[5]["image"])
    target = folder / "val_depth.npy"
    if damage == "truncate":
        with open(target, "r+b") as f:
            f.truncate(target.stat().st_size // 2)
    else:
        (folder / "manifest.json").unlink()
    again = SynthSource(str(tmp_path), "val", mocap_path=None, **TINY)
    assert again.generated, "a damaged cache must be regenerated"
    assert _manifest(folder)["splits"] == before["splits"]  # same bytes as the first build
    np.testing.assert_array_equal(again[5]["image"], reference)


def _flip_bytes_keep_size_and_time(path: Path) -> None:
    """Corrupt the middle of a file in place: same size, same modification time."""
    stat = path.stat()
    with open(path, "r+b") as f:
        f.seek(stat.st_size // 2)
        chunk = f.read(64)
        f.seek(stat.st_size // 2)
        f.write(bytes(b ^ 0xFF for b in chunk))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_same_size_corruption_is_found_by_content_and_rerendered(tmp_path: Path, monkeypatch, caplog):
    src = SynthSource(str(tmp_path), "val", mocap_path=None, **TINY)
    reference = np.array(src[5]["image"])
    target = src.cache_dir / "val_depth.npy"
    _flip_bytes_keep_size_and_time(target)
    monkeypatch.setattr(cache, "_VERIFIED", {})  # a new process: nothing checked yet
    with caplog.at_level("WARNING"):
        again = SynthSource(str(tmp_path), "val", mocap_path=None, **TINY)
    assert again.generated, "a same-size corruption must be found and re-rendered"
    assert str(target) in caplog.text and "SHA-256" in caplog.text
    np.testing.assert_array_equal(again[5]["image"], reference)


def test_corruption_after_opening_stops_a_new_process_naming_the_file(tmp_path: Path, monkeypatch):
    src = SynthSource(str(tmp_path), "train", mocap_path=None, **TINY)
    target = src.cache_dir / "train_keypoints.npy"
    _flip_bytes_keep_size_and_time(target)
    # What a DataLoader worker receives: the pickled source, in a process that has checked nothing.
    worker_copy = pickle.loads(pickle.dumps(src))
    monkeypatch.setattr(cache, "_VERIFIED", {})
    with pytest.raises(
        DataError, match=rf"^{re.escape(str(target))} does not match the SHA-256.*delete"
    ) as err:
        worker_copy[0]
    assert "\n" not in str(err.value)  # one line


def test_partial_run_leftovers_are_ignored(tmp_path: Path):
    cfg = SynthConfig(mocap_path=None, **{k: v for k, v in TINY.items() if k != "progress"})
    stale = tmp_path / f".synth-{cfg.hash()}.tmp-999999999-1"
    stale.mkdir(parents=True)
    (stale / "val_depth.npy").write_bytes(b"garbage")
    src = SynthSource(str(tmp_path), "val", mocap_path=None, **TINY)
    assert src.generated and not stale.exists()
    assert src[0]["image"].shape == (20, 40, 1)


def test_generation_is_deterministic_across_dirs_and_workers(tmp_path: Path, tiny_cache: Path, monkeypatch):
    ref = _manifest(next(tiny_cache.glob("synth-*")))
    monkeypatch.setattr(cache, "_CHUNK", 5)  # jobs split sequences: poses must not depend on the chunk
    other = SynthSource(str(tmp_path), "train", mocap_path=None, workers=2, **TINY)
    assert _manifest(other.cache_dir)["splits"] == ref["splits"]
    changed = SynthSource(str(tmp_path), "train", mocap_path=None, **{**TINY, "seed": 7})
    assert changed.cache_dir != other.cache_dir
    assert _manifest(changed.cache_dir)["splits"]["train"] != ref["splits"]["train"]


def test_splits_disjoint_subjects_and_activities(tiny_cache: Path):
    metas = {
        split: [
            SynthSource(str(tiny_cache), split, mocap_path=None, **TINY)[i]["meta"]
            for i in range(TINY[f"{split}_frames"])
        ]
        for split in ("train", "val", "test")
    }
    subjects = {split: {m["subject"] for m in ms} for split, ms in metas.items()}
    assert subjects["train"] == {1, 2, 3} and subjects["val"] == subjects["test"] == {4}
    val_acts = {m["activity"] for m in metas["val"]}
    test_acts = {m["activity"] for m in metas["test"]}
    assert val_acts and test_acts and not val_acts & test_acts
    world = SynthWorld(SynthConfig(mocap_path=None))
    all_val = {ACTIVITY_ORDER[a] for a in world.plan("val")[:, 1]}
    all_test = {ACTIVITY_ORDER[a] for a in world.plan("test")[:, 1]}
    assert all_val | all_test == set(world.activities) and not all_val & all_test
    assert abs(len(all_val) - len(all_test)) <= 1


def test_resolution_scales_ground_truth_exactly():
    views = {}
    for w, h in ((40, 20), (80, 40)):
        world = SynthWorld(SynthConfig(width=w, height=h, mocap_path=None, noise=False))
        perf = world.performance(2, "waving", np.array([33]))
        views[w] = render_view(
            world, 2, perf.joints[0], world.scene(2, perf, 0), world.output_camera(2, 1), None
        )
    np.testing.assert_array_equal(views[40]["joints3d"], views[80]["joints3d"])
    np.testing.assert_allclose(views[80]["keypoints"], (views[40]["keypoints"] + 0.5) * 2 - 0.5, atol=1e-9)


def test_mocap_env_var_and_missing_path(tmp_path: Path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="nope.bvh"):
        SynthSource(str(tmp_path), "val", mocap_path=str(tmp_path / "nope.bvh"), **TINY)
    monkeypatch.setenv("HEATLIT_MOCAP", os.fspath(tmp_path / "x.bvh"))
    assert default_mocap_path() == tmp_path / "x.bvh"


def test_in_frame_visibility_counts_self_occluded_joints(tmp_path):
    kw = dict(
        data_dir=str(tmp_path),
        split="train",
        width=40,
        height=20,
        train_frames=16,
        val_frames=4,
        test_frames=4,
        progress=False,
    )
    hidden = SynthSource(**kw)
    framed = SynthSource(visibility="in_frame", **kw)
    assert not framed.generated  # the same cache serves both rules
    seen_hidden = seen_framed = 0
    for i in range(len(hidden)):
        a, b = hidden[i], framed[i]
        kp = b["keypoints"]
        inside = (kp[:, 0] >= -0.5) & (kp[:, 0] <= 39.5) & (kp[:, 1] >= -0.5) & (kp[:, 1] <= 19.5)
        assert (b["visible"] == inside).all() and (a["visible"] <= b["visible"]).all()
        seen_hidden += a["visible"].sum()
        seen_framed += b["visible"].sum()
    assert seen_framed > seen_hidden  # some joints are hidden behind the body
    with pytest.raises(ValueError, match="visibility"):
        SynthSource(visibility="sometimes", **kw)
