"""`CocoSource` and `data=coco` on the real 4-image sample (14 annotated people, 12 with keypoints)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from heatlit.codecs import GaussianEncoder
from heatlit.data import CocoSource, DataError, HeatmapDataModule
from heatlit.data.coco import COCO, read_rgb
from heatlit.data.transforms import affine_points

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared/data/coco_sample"
CONF_DATA = Path(__file__).resolve().parents[1] / "conf" / "data"
ANN = SAMPLE / "test_coco.json"


@pytest.fixture(scope="module")
def sample() -> Path:
    if not ANN.is_file():
        pytest.skip(f"the real COCO sample is not at {SAMPLE} (4 val2017 images + test_coco.json)")
    return SAMPLE


def _dm(sample, augment=None, batch_size=12, **src):
    return HeatmapDataModule(
        source=lambda split: CocoSource(ANN, sample, split=split, **src),
        input_size=(256, 192),
        batch_size=batch_size,
        augment=augment,
    )


def _batch(dm, split="val"):
    dm.setup("fit")
    return next(iter(getattr(dm, f"{split}_dataloader")()))


def test_sample_counts_and_logged_skips(sample, caplog):
    with caplog.at_level(logging.INFO, logger="heatlit.data.coco"):
        src = CocoSource(ANN, sample, split="val")
    # 14 people in the file; 2 have num_keypoints == 0 and are skipped by min_keypoints=1.
    assert len(src) == 12 and src.skipped == {"crowd": 0, "few_keypoints": 2, "empty_bbox": 0}
    assert "kept 12 of 14" in caplog.text and "2 with < 1 keypoints" in caplog.text
    assert len(CocoSource(ANN, sample, min_keypoints=0)) == 14


def test_num_keypoints_filter_matches_annotations(sample):
    anns = json.loads(ANN.read_text())["annotations"]
    for k in (0, 1, 13, 16, 17):
        want = sum(a["num_keypoints"] >= k and not a["iscrowd"] for a in anns)
        assert len(CocoSource(ANN, sample, min_keypoints=k)) == want


def test_raw_sample(sample):
    src = CocoSource(ANN, sample)
    s = src[[a["image_id"] for a in src.instances].index(785)]
    assert s["image"].dtype == np.float32 and s["image"].shape == (425, 640, 3)
    assert 0.0 <= s["image"].min() and s["image"].max() <= 1.0
    assert s["keypoints"].shape == (17, 2) and s["visible"].shape == (17,) and s["visible"].all()
    x, y, w, h = 280.79, 44.73, 218.7, 346.68
    np.testing.assert_allclose(s["center"], [x + w / 2, y + h / 2])
    np.testing.assert_allclose(s["scale"], [w * 1.25, h * 1.25])
    assert s["norm"] == pytest.approx(h) and s["meta"]["image_id"] == 785
    assert s["joints3d"] is None and s["cam_K"] is None


def test_rgb_is_converted_from_bgr(sample):
    import cv2

    path = sample / "000000000785.jpg"
    np.testing.assert_allclose(read_rgb(path), cv2.imread(str(path))[..., ::-1] / 255.0, atol=1e-6)


def test_crops_and_the_way_back(sample):
    dm = _dm(sample)
    desc = dm.description
    assert (desc.name, desc.pck, desc.monitor, dm.source("val").ann_file) == ("coco", "pck", "ap", str(ANN))
    assert desc.num_keypoints == 17 and desc.in_channels == 3 and dm.grid.heatmap_size == (64, 48)
    b = _batch(dm)
    assert b["image"].shape == (12, 3, 256, 192) and b["heatmaps"].shape == (12, 17, 64, 48)
    anns = {a["id"]: a for a in json.loads(ANN.read_text())["annotations"]}
    src = dm.source("val")
    for i, idx in enumerate(b["sample_index"].tolist()):
        ann = anns[src.instances[idx]["id"]]
        assert b["image_id"][i].item() == ann["image_id"]
        kps = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        vis = b["visible"][i].numpy()
        assert np.array_equal(vis, kps[:, 2] > 0)  # whole padded box is in frame
        back = affine_points(b["to_image"][i].double().numpy(), b["keypoints"][i].double().numpy())
        assert np.abs(back[vis] - kps[vis, :2]).max() < 1e-3
        # norm: the bbox's longer side, carried into input px.
        scale = np.sqrt(abs(np.linalg.det(b["to_image"][i, :, :2].double().numpy())))
        assert b["norm"][i].item() * scale == pytest.approx(max(ann["bbox"][2:]), rel=1e-5)


def test_augmented_crops_map_back_through_the_flip(sample):
    aug = {"flip_prob": 1.0, "scale": 0.3, "rotation_deg": 40.0, "rotation_prob": 1.0, "occluder_prob": 1.0}
    b = _batch(_dm(sample, augment=aug), "train")
    src = CocoSource(ANN, sample)
    perm = np.asarray(COCO.flip_index)
    checked = 0
    for i, idx in enumerate(b["sample_index"].tolist()):
        raw = src[idx]
        back = affine_points(b["to_image"][i].double().numpy(), b["keypoints"][i].double().numpy())
        vis = b["visible"][i].numpy()
        assert np.abs(back[vis] - raw["keypoints"][perm][vis]).max() < 1e-3
        checked += vis.sum()
    assert checked > 100


def test_flip_pairs_are_cocos(sample):
    desc = _dm(sample).description
    assert desc.flip_pairs == ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
    names = list(desc.keypoints)
    category = json.loads(ANN.read_text())["categories"][0]
    assert names == category["keypoints"]
    for left, right in desc.flip_pairs:
        assert names[left].startswith("left_") and names[right] == names[left].replace("left_", "right_")
    # the skeleton is the file's (1-based there), and the OKS sigmas pycocotools' own
    assert sorted(desc.skeleton) == sorted((a - 1, b - 1) for a, b in category["skeleton"])
    from pycocotools.cocoeval import Params

    np.testing.assert_array_equal(desc.oks_sigmas, Params(iouType="keypoints").kpt_oks_sigmas)


def test_coco_has_no_3d(sample):
    dm = HeatmapDataModule(
        source=lambda split: CocoSource(ANN, sample, split=split), input_size=(256, 192), heatmap_depth=16
    )
    with pytest.raises(ValueError, match="no 3D joints"):
        dm.setup("fit")


def test_coco_option_yields_a_batch(sample):
    cfg = OmegaConf.load(CONF_DATA / "coco.yaml")
    cfg.batch_size = 4
    dm = instantiate(cfg, encoder=GaussianEncoder(sigma=2.0))
    assert dm.grid.input_size == (256, 192) and dm.grid.stride == 4 and dm.description.num_keypoints == 17
    dm.setup("fit")
    b = next(iter(dm.train_dataloader()))
    assert b["image"].shape == (4, 3, 256, 192) and b["heatmaps"].shape == (4, 17, 64, 48)
    assert torch.isfinite(b["image"]).all() and (b["target_weight"] > 0).any()
    assert dm.source("val").ann_file == str(ANN)


# ------------------------------------------------------------------------------------- bad data
def test_missing_annotation_file_or_folder(tmp_path, sample):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        CocoSource(tmp_path / "nope.json", sample)
    with pytest.raises(FileNotFoundError, match="no_images"):
        CocoSource(ANN, tmp_path / "no_images")


def test_missing_and_truncated_images(tmp_path, sample):
    src = CocoSource(ANN, tmp_path)  # empty folder: every image is missing
    first = [a["image_id"] for a in src.instances].index(785)
    with pytest.raises(FileNotFoundError, match="000000000785.jpg"):
        src[first]
    data = (sample / "000000000785.jpg").read_bytes()
    (tmp_path / "000000000785.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated JPEG.*000000000785.jpg"):
        src[first]
    (tmp_path / "000000000785.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="cannot decode.*000000000785.jpg"):
        src[first]


def test_malformed_annotations(tmp_path, sample):
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(DataError, match="bad.json"):
        CocoSource(bad, sample)
    d = json.loads(ANN.read_text())
    d["annotations"][0]["keypoints"] = d["annotations"][0]["keypoints"][:-3]
    short = tmp_path / "short.json"
    short.write_text(json.dumps(d))
    with pytest.raises(DataError, match=r"short.json.*48 keypoint values, expected 51"):
        CocoSource(short, sample)


def test_split_mapping(tmp_path, sample):
    shutil.copy(ANN, tmp_path / "val.json")
    src = CocoSource({"train": str(ANN), "val": str(tmp_path / "val.json")}, str(sample), split="val")
    assert src.ann_file == str(tmp_path / "val.json") and len(src) == 12
    with pytest.raises(KeyError, match="split 'test'"):
        CocoSource({"train": str(ANN)}, str(sample), split="test")


def test_keypoints_outside_the_image_or_with_bad_flags_are_not_visible(tmp_path, sample, caplog):
    """A labelled keypoint beyond its image or a flag outside 0/1/2 is dropped, counted and warned once."""
    d = json.loads(ANN.read_text())
    ann = next(a for a in d["annotations"] if a["image_id"] == 785 and a["num_keypoints"] == 17)
    width, height = next((i["width"], i["height"]) for i in d["images"] if i["id"] == 785)
    kps = ann["keypoints"]
    kps[0 * 3 : 0 * 3 + 2] = [width + 40.0, 100.0]  # nose right of the image
    kps[1 * 3 + 1] = -30.0  # left eye above it
    kps[2 * 3 + 2] = 3  # right eye: no such flag
    kps[5 * 3 + 2] = -1  # left shoulder: no such flag
    kps[6 * 3 : 6 * 3 + 2] = [width, height]  # right shoulder on the far corner: still inside
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(d))
    with caplog.at_level(logging.WARNING, logger="heatlit.data.coco"):
        src = CocoSource(bad, sample, split="val")
        CocoSource(bad, sample, split="test")  # the same file again: no second warning
    assert src.dropped == {"bad_flag": 2, "outside_image": 2, "annotations": 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(bad) in warnings[0] and "2 keypoints outside their image" in warnings[0]
    assert "2 with a visibility flag other than 0/1/2" in warnings[0]
    visible = src[[a["id"] for a in src.instances].index(ann["id"])]["visible"]
    assert visible.tolist() == [False, False, False, True, True, False] + [True] * 11
    # the untouched file has none of this and warns nothing
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="heatlit.data.coco"):
        clean = CocoSource(ANN, sample)
    assert clean.dropped == {"bad_flag": 0, "outside_image": 0, "annotations": 0} and not caplog.records
