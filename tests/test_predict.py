"""``python -m heatlit.predict`` (issue 15 item 1): real tiny checkpoints (trained once per session), real files
(depth maps written here, the COCO sample), results read back by pycocotools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

import heatlit.predict  # noqa: F401  (registers conf/predict.yaml's resolvers)
from heatlit.inference.run import predict
from heatlit.metrics import build_metrics
from heatlit.models.checkpoint import load_checkpoint
from heatlit.results import read_results
from heatlit.training.checks import ConfigError
from heatlit.training.module import CONFIG_KEY
from heatlit.training.run import build_datamodule, main_guard
from tests.conftest import CONF_DIR, ROOT, SHARED_DATA


def run_predict(overrides: list[str]):
    """``predict`` on conf/predict.yaml composed as the CLI composes it."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("predict", overrides=["progress=false", *overrides], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return predict(cfg)


def rendered_test_split(run_dir: Path):
    """The run's rendered test split (raw samples), read through its saved config."""

    cfg = OmegaConf.create(load_checkpoint(run_dir / "checkpoints" / "best.ckpt")[CONFIG_KEY])
    return build_datamodule(cfg).source("test")


def keypoints_of(records: list[dict]) -> np.ndarray:
    return np.array([r["keypoints"] for r in records]).reshape(len(records), -1, 3)


@pytest.mark.parametrize("decoder, scored_as", [("dark", "dark"), ("soft_argmax_auto", "soft_argmax")])
def test_test_split_predictions_score_what_the_run_scored(decoder, scored_as, depth_run, tmp_path):
    """Flip test on the run's test split: PCKh and RMSE computed from the JSON alone (image px, the raw labels)
    equal the run's own test results for that decoder (soft-argmax at the run's loss temperature), and one
    overlay per frame is drawn (DARK's)."""
    run_dir = depth_run["dir"]
    out = tmp_path / "pred.json"
    run = run_predict(
        [
            f"ckpt_path={run_dir}",
            f"out={out}",
            "flip_test=true",
            f"decoder={decoder}",
            *([f"overlays={tmp_path / 'ov'}"] if decoder == "dark" else []),
        ]
    )
    records = json.loads(out.read_text())
    assert len(records) == 8 and not run.skipped
    assert [r["image_id"] for r in records] == list(range(8))
    assert all(r["category_id"] == 1 and len(r["keypoints"]) == 18 * 3 for r in records)
    source = rendered_test_split(run_dir)
    raw = [source[i] for i in range(8)]
    metrics = build_metrics("pckh", num_joints=18)
    metrics.update(
        torch.tensor(keypoints_of(records)[..., :2]),
        torch.tensor(np.stack([r["keypoints"] for r in raw])),
        torch.tensor(np.stack([r["visible"] for r in raw])),
        torch.tensor([r["norm"] for r in raw]),
    )
    scored = {k: float(v) for k, v in metrics.compute().items()}
    expected = read_results(run_dir / "results.json").stage("test")[scored_as]
    for name in ("pckh@0.1", "pckh@0.5", "rmse"):
        assert scored[name] == pytest.approx(expected[name], abs=2e-3), name
    if decoder == "dark":
        overlays = sorted((tmp_path / "ov").iterdir())
        assert [p.name for p in overlays] == [f"{i}.png" for i in range(8)]
        assert cv2.imread(str(overlays[0])).shape == (320, 640, 3)  # 64x32 frames drawn 10x


def write_pgm(path: Path, units: np.ndarray) -> None:
    """ASCII P2, as HUMAN4D's tooling writes depth maps."""
    h, w = units.shape
    path.write_text(f"P2\n{w} {h}\n65535\n" + "\n".join(" ".join(map(str, row)) for row in units) + "\n")


def test_depth_files_predict_as_their_frames(depth_run, tmp_path):
    """Three test frames written as PGM, 16-bit PNG and NPY (100 um units) come back with the test split's
    predictions; a truncated PGM is named and skipped, a text file ignored. Millimetres read with depth_unit_mm=1;
    a frame at twice the size (each pixel repeated 2x2, which the input crop samples back to the same input)
    gives the same keypoints in its own pixels: x' = 2 x + 0.5 (pixel centres at integers)."""
    run_dir = depth_run["dir"]
    source = rendered_test_split(run_dir)
    units = [np.round(source[i]["image"][..., 0] * 1e4).astype(np.uint16) for i in range(3)]  # m -> 0.1 mm
    folder = tmp_path / "maps"
    folder.mkdir()
    write_pgm(folder / "0.pgm", units[0])
    assert cv2.imwrite(str(folder / "1.png"), units[1])
    np.save(folder / "2.npy", units[2])
    (folder / "7.pgm").write_text("P2\n64 32\n65535\n1 2 3\n")  # truncated
    (folder / "notes.txt").write_text("not a depth map")

    run_predict([f"ckpt_path={run_dir}", f"out={tmp_path / 'split.json'}"])
    from_split = keypoints_of(json.loads((tmp_path / "split.json").read_text())[:3])
    run = run_predict([f"ckpt_path={run_dir}", f"input={folder}", f"out={tmp_path / 'files.json'}"])
    records = json.loads((tmp_path / "files.json").read_text())
    assert [(r["image_id"], Path(r["file"]).name) for r in records] == [
        (0, "0.pgm"),
        (1, "1.png"),
        (2, "2.npy"),
    ]
    np.testing.assert_allclose(keypoints_of(records), from_split, atol=2e-3)
    assert len(run.skipped) == 1 and "7.pgm" in run.skipped[0] and "truncated" in run.skipped[0]

    other = tmp_path / "other"
    other.mkdir()
    np.save(other / "0.npy", units[0].astype(np.float32) / 10.0)  # millimetres
    np.save(other / "1.npy", np.repeat(np.repeat(units[1].astype(np.float32) / 10.0, 2, 0), 2, 1))  # 128x64
    run_predict(
        [f"ckpt_path={run_dir}", f"input={other}", "depth_unit_mm=1", f"out={tmp_path / 'other.json'}"]
    )
    mm, doubled = keypoints_of(json.loads((tmp_path / "other.json").read_text()))
    np.testing.assert_allclose(mm, from_split[0], atol=2e-3)
    np.testing.assert_allclose(doubled[:, :2], 2 * from_split[1][:, :2] + 0.5, atol=4e-3)
    np.testing.assert_allclose(doubled[:, 2], from_split[1][:, 2], atol=2e-5)


def test_wrong_channels_or_keypoints_are_one_line(depth_run, tmp_path, capsys):
    run_dir = depth_run["dir"]
    rgb = tmp_path / "photo.png"
    cv2.imwrite(str(rgb), np.zeros((32, 64, 3), np.uint8))
    with pytest.raises(
        ConfigError, match=r"photo.png: a colour PNG, but this checkpoint's model reads 1-channel"
    ):
        run_predict([f"ckpt_path={run_dir}", f"input={rgb}", f"out={tmp_path / 'x.json'}"])
    with pytest.raises(SystemExit) as exit_info:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                "predict", overrides=[f"ckpt_path={run_dir}", f"input={rgb}", f"out={tmp_path / 'x.json'}"]
            )
            main_guard(predict, cfg)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("configuration error:") and "photo.png" in err
    if SHARED_DATA.is_dir():  # the COCO sample as data: 17 keypoints for an 18-keypoint model
        with pytest.raises(ConfigError, match="checkpoint has 18 keypoints, data has 17"):
            run_predict([f"ckpt_path={run_dir}", "data=coco", f"out={tmp_path / 'x.json'}"])
    assert not (tmp_path / "x.json").exists()


def test_coco_results_load_in_pycocotools(coco_run, shared_data, tmp_path):
    """Test split, folder + annotation boxes, folder + detections, whole images: every JSON loads with
    ``COCO.loadRes`` and evaluates; the annotation boxes reproduce the test split's predictions."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    sample = shared_data / "coco_sample"
    gt = COCO(str(sample / "test_coco.json"))
    run_predict([f"ckpt_path={coco_run}", f"out={tmp_path / 'split.json'}"])
    run_predict(
        [
            f"ckpt_path={coco_run}",
            f"input={sample}",
            f"boxes={sample / 'test_coco.json'}",
            f"out={tmp_path / 'boxes.json'}",
        ]
    )
    split, boxes = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("split", "boxes"))
    persons = [a for a in gt.dataset["annotations"] if not a.get("iscrowd")]
    assert len(boxes) == len(persons) and len(split) == sum(a["num_keypoints"] > 0 for a in persons)
    for record in split:  # each test-split person is predicted alike from its annotation box
        same = [b for b in boxes if b["image_id"] == record["image_id"]]
        gaps = [np.abs(np.subtract(b["keypoints"], record["keypoints"])).max() for b in same]
        assert min(gaps) < 2e-3
    detections = [
        {"image_id": 785, "category_id": 1, "bbox": [280.8, 44.8, 218.7, 346.7], "score": 0.5},
        {"image_id": 785, "category_id": 2, "bbox": [10, 10, 50, 50], "score": 0.9},  # not a person
        {"image_id": 99, "category_id": 1, "bbox": [10, 10, 50, 50], "score": 0.9},  # no such image
        {"image_id": 40083, "category_id": 1, "bbox": [10, 10, 0, 50], "score": 0.9},  # empty box
    ]
    (tmp_path / "det.json").write_text(json.dumps(detections))
    run_predict(
        [
            f"ckpt_path={coco_run}",
            f"input={sample}",
            f"boxes={tmp_path / 'det.json'}",
            f"out={tmp_path / 'det_out.json'}",
        ]
    )
    run_predict([f"ckpt_path={coco_run}", f"input={sample}", f"out={tmp_path / 'whole.json'}"])
    det, whole = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("det_out", "whole"))
    assert [r["image_id"] for r in det] == [785]
    assert sorted(r["image_id"] for r in whole) == [785, 40083, 196141, 197388]
    from_box = [b for b in boxes if b["image_id"] == 785]
    assert det[0]["score"] == pytest.approx(
        0.5 * from_box[0]["score"], rel=1e-3
    )  # box score x keypoint score
    for name in ("split", "boxes", "det_out", "whole"):
        results = gt.loadRes(str(tmp_path / f"{name}.json"))
        evaluation = COCOeval(gt, results, iouType="keypoints")
        evaluation.evaluate()
        evaluation.accumulate()
        assert len(results.getAnnIds()) == len(json.loads((tmp_path / f"{name}.json").read_text()))


def test_predict_entry_point_end_to_end(depth_run, tmp_path):
    """``python -m heatlit.predict`` as a user runs it, from another folder: predictions and overlays where asked,
    the corrupt file named and counted, nothing written anywhere else."""
    run_dir = depth_run["dir"]
    maps, cwd, out = tmp_path / "maps", tmp_path / "cwd", tmp_path / "out"
    maps.mkdir()
    cwd.mkdir()
    cv2.imwrite(str(maps / "a.png"), np.full((32, 64), 30000, np.uint16))
    np.save(maps / "b.npy", np.full((32, 64), 30000, np.uint16))
    (maps / "c.npy").write_bytes(b"\x93NUMPY garbage")
    cmd = [
        sys.executable,
        "-m",
        "heatlit.predict",
        f"ckpt_path={run_dir}",
        f"input={maps}",
        f"out={out / 'pred.json'}",
        f"overlays={out / 'overlays'}",
    ]
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert "c.npy" in text and "skipped 1 unreadable input(s) of 3" in text
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "overlays/a.png",
        "overlays/b.png",
        "pred.json",
    ]
    assert not any(cwd.iterdir()) and sorted(p.name for p in maps.iterdir()) == ["a.png", "b.npy", "c.npy"]
    assert [Path(r["file"]).name for r in json.loads((out / "pred.json").read_text())] == ["a.png", "b.npy"]
