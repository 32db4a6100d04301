"""HUMAN4D loader: round trip against the synthetic renderer's ground truth, and strict errors."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from heatlit.body import camera as dc
from heatlit.data.errors import DataError
from heatlit.data.human4d import Human4DSource, read_pgm
from tests.human4d_fixture import write_human4d_fixture, write_pgm


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("human4d")
    truth = write_human4d_fixture(root, subjects=(1, 2), activities=("walking", "punching"), frames=2, skip=2)
    return root, truth


@pytest.fixture
def broken(fixture_root, tmp_path) -> Path:
    """A private copy to damage."""
    root = tmp_path / "h4d"
    shutil.copytree(fixture_root[0], root)
    return root


def _key(subject, recording, frame, device):
    return subject, recording, frame, device


def test_fixture_has_published_layout(fixture_root):
    root, _ = fixture_root
    assert (root / "device_repository.json").is_file()
    for name in ("training.txt", "validation.txt", "testing.txt"):
        assert (root / name).is_file()
    assert (root / "S1" / "pose" / "M72e.extrinsics").is_file() and (root / "S1" / "offsets.txt").is_file()
    assert (root / "S1" / "walking" / "Dump" / "depth" / "3_M72h_depth_3.pgm").is_file()
    assert (root / "S1" / "walking" / "Dump" / "gposes3d" / "1.npy").is_file()  # frame 3 - skip 2
    assert np.load(root / "S1" / "walking" / "Dump" / "gposes3d" / "0.npy").shape == (1, 33, 3)
    assert read_pgm(root / "S2" / "punching" / "Dump" / "depth" / "0_M72j_depth_0.pgm").shape == (180, 320)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_round_trip_matches_renderer_ground_truth(fixture_root, split):
    root, truth = fixture_root
    gt = {
        _key(g["subject"], g["recording"], g["frame"], g["device"]): g for g in truth if g["split"] == split
    }
    seen = 0
    for subject in sorted({k[0] for k in gt}):
        slack = next(g["slack"] for g in truth if g["subject"] == subject)
        src = Human4DSource(str(root), split, subjects=[subject], slack_mm=slack)
        assert src.devices == ["M72e", "M72h", "M72i", "M72j"]
        for i in range(len(src)):
            s = src[i]
            m = s["meta"]
            g = gt[_key(m["subject_name"], m["activity"], m["frame"], m["device"])]
            np.testing.assert_allclose(s["keypoints"], g["keypoints"], atol=1e-3)  # px, never quantised
            np.testing.assert_allclose(s["joints3d"], g["joints3d"], atol=1e-2)  # mm (float32 storage)
            # Same z-buffer test on the stored depth; only joints within the 0.1 mm depth quantum of their
            # slack threshold may flip.
            px = np.clip(np.floor(s["keypoints"] + 0.5).astype(int), 0, [319, 159])
            surface = s["image"][px[:, 1], px[:, 0], 0] * 1000.0
            borderline = np.abs(surface - (s["joints3d"][:, 2] - slack)) < 0.1
            np.testing.assert_array_equal(s["visible"][~borderline], g["visible"][~borderline])
            assert m["pose_index"] == m["frame"] - 2
            assert s["image"].shape == (160, 320, 1) and s["image"].dtype == np.float32
            np.testing.assert_allclose(
                dc.project(s["cam_K"], s["joints3d"].astype(np.float64)), s["keypoints"], atol=1e-3
            )
            seen += 1
    assert seen == len(gt) > 0


def test_depth_and_crop_match_the_pgm(fixture_root):
    root, _ = fixture_root
    src = Human4DSource(str(root), "val")
    s = src[0]
    raw = read_pgm(s["meta"]["file"])
    np.testing.assert_array_equal(s["image"][..., 0], raw[10:170].astype(np.float32) * np.float32(1e-4))
    assert s["cam_K"][1, 2] == pytest.approx(src.cameras[("S2", s["meta"]["device"])][2][1, 2])
    assert 0.6 < np.mean([src[i]["visible"].mean() for i in range(len(src))]) <= 1.0


def test_flat_layout_is_one_recording_per_subject(tmp_path):
    truth = write_human4d_fixture(
        tmp_path, subjects=(1, 2), activities=("waving",), frames=1, skip=1, flat=True
    )
    src = Human4DSource(str(tmp_path), "train")
    assert (tmp_path / "S1" / "Dump" / "depth").is_dir() and len(src) == 4
    g = {(t["device"], t["frame"]): t for t in truth if t["subject"] == "S1"}
    for i in range(len(src)):
        s = src[i]
        np.testing.assert_allclose(
            s["keypoints"], g[(s["meta"]["device"], s["meta"]["frame"])]["keypoints"], atol=1e-3
        )


def test_missing_root_and_files_name_the_path(broken, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        Human4DSource(str(tmp_path / "nowhere"), "train")
    (broken / "device_repository.json").unlink()
    with pytest.raises(FileNotFoundError, match="device_repository.json"):
        Human4DSource(str(broken), "train")


def test_truncated_pgm_raises_naming_file(broken):
    path = broken / "S1" / "walking" / "Dump" / "depth" / "2_M72e_depth_2.pgm"
    path.write_text(path.read_text()[: len(path.read_text()) // 2])
    src = Human4DSource(str(broken), "train")
    index = next(i for i, s in enumerate(src.samples) if s[0] == path)
    with pytest.raises(DataError, match=r"2_M72e_depth_2\.pgm.*57600 depth values"):
        src[index]


def test_truncated_and_misshapen_npy_raise_naming_file(broken):
    pose = broken / "S1" / "walking" / "Dump" / "gposes3d" / "0.npy"
    pose.write_bytes(pose.read_bytes()[:100])
    src = Human4DSource(str(broken), "train")
    index = next(i for i, s in enumerate(src.samples) if s[1] == pose)
    with pytest.raises(DataError, match=r"gposes3d/0\.npy.*\[people, 33, 3\]"):
        src[index]
    np.save(pose, np.zeros((1, 18, 3)))
    with pytest.raises(
        DataError, match=r"0\.npy: joint array has shape \(1, 18, 3\), expected \[people >= 1, 33, 3\]"
    ):
        src[index]


def test_missing_listed_depth_errors_or_is_skipped_with_count(broken, caplog):
    (broken / "S1" / "punching" / "Dump" / "depth" / "3_M72i_depth_3.pgm").unlink()
    with pytest.raises(FileNotFoundError, match=r"punching/Dump/depth/3_M72i_depth_\*\.pgm"):
        Human4DSource(str(broken), "train")
    full = 2 * 2 * 4  # S1: 2 recordings x 2 posed frames x 4 devices
    with caplog.at_level(logging.WARNING, logger="heatlit.data.human4d"):
        src = Human4DSource(str(broken), "train", on_missing="skip")
    assert len(src) == full - 1 and src.skipped["depth"] == 1
    assert "skipped 1 samples without a depth map" in caplog.text


def test_bad_split_line_and_extrinsics(broken):
    (broken / "training.txt").write_text("2 S1 walking\nthree S1 walking\n")
    with pytest.raises(DataError, match=r"training\.txt:2: expected '<frame> <subject> <recording>'"):
        Human4DSource(str(broken), "train")
    (broken / "training.txt").write_text("2 S1 walking\n")
    (broken / "S1" / "pose" / "M72e.extrinsics").write_text("1 0 0\n0 1 0\n0 0 1\n")
    with pytest.raises(DataError, match=r"M72e\.extrinsics: extrinsics have shape \(3, 3\), expected 4x3"):
        Human4DSource(str(broken), "train")


def test_pgm_writer_reader_round_trip(tmp_path):
    img = np.random.default_rng(1).integers(0, 65536, size=(180, 320)).astype(np.uint16)
    write_pgm(tmp_path / "x.pgm", img)
    np.testing.assert_array_equal(read_pgm(tmp_path / "x.pgm"), img)
    with pytest.raises(DataError, match="PGM is 320x180, expected 320x160"):
        read_pgm(tmp_path / "x.pgm", size=(320, 160))
