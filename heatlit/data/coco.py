"""COCO person keypoints as a top-down source: one raw sample per annotated person.

Coordinates: COCO keypoints and boxes are used as stored, in the convention of :mod:`heatlit.codecs`
(pixel centres at integers): the official OKS evaluation compares predictions with these same
numbers, so any half-pixel shift here would be a bias in AP. A bbox ``[x, y, w, h]`` is the
continuous extent ``[x, x + w] x [y, y + h]`` with centre ``(x + w/2, y + h/2)``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from heatlit.data.base import DatasetDescription, Source
from heatlit.data.errors import DataError

log = logging.getLogger(__name__)

COCO_JOINTS = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
#: The person category's ``skeleton`` of the COCO annotation files, 0-based.
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
#: The official per-keypoint OKS sigmas (pycocotools' ``kpt_oks_sigmas``).
COCO_OKS_SIGMAS = tuple(
    s / 10.0
    for s in (
        0.26,
        0.25,
        0.25,
        0.35,
        0.35,
        0.79,
        0.79,
        0.72,
        0.72,
        0.62,
        0.62,
        1.07,
        1.07,
        0.87,
        0.87,
        0.89,
        0.89,
    )
)
COCO = DatasetDescription(
    name="coco",
    keypoints=COCO_JOINTS,
    flip_pairs=COCO_FLIP_PAIRS,
    skeleton=COCO_SKELETON,
    in_channels=3,
    has_3d=False,
    pck="pck",
    norm="bbox size max(w, h), px",
    head_segment=None,
    oks_sigmas=COCO_OKS_SIGMAS,
    monitor="ap",
)

# Markers a complete file ends with; cv2 decodes a truncated JPEG silently (grey fill + a warning).
_JPEG_EOI = b"\xff\xd9"
_PNG_IEND = b"IEND\xaeB`\x82"


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as RGB float32 ``[H0, W0, 3]`` in [0, 1].

    Raises:
        FileNotFoundError: the file does not exist (message names it).
        DataError: it exists but is truncated or cannot be decoded (message names it).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    stripped = data.rstrip(b"\x00\r\n ")
    if data[:2] == b"\xff\xd8" and not stripped.endswith(_JPEG_EOI):
        raise DataError(f"truncated JPEG (no end-of-image marker): {path}")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and not stripped.endswith(_PNG_IEND):
        raise DataError(f"truncated PNG (no IEND chunk): {path}")
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"cannot decode image (expected a JPEG/PNG readable by OpenCV): {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


# Annotation files already warned about in this process (each is read once per split).
_WARNED: set[str] = set()

# The 4-image sample shipped beside the repository (``<repo>/../shared/data/coco_sample``).
SAMPLE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coco_sample"


def _pick(value: str | Mapping[str, str] | None, split: str, name: str, default: Path) -> str:
    """A per-split setting given once for all splits, as ``{split: value}``, or None (``default``)."""
    if value is None:
        return str(default)
    if isinstance(value, Mapping):
        if split not in value:
            raise KeyError(f"CocoSource: no {name} configured for split {split!r} (have {list(value)})")
        return str(value[split])
    return str(value)


class CocoSource(Source):
    """COCO person instances, one raw sample (``docs/CONTRACTS.md``) per kept annotation.

    Args:
        ann_file: ``person_keypoints_*.json``, or ``{split: path}``; None = the shared 4-image
            sample (:data:`SAMPLE_DIR` ``/test_coco.json``).
        img_dir: folder of the images named in the annotations, or ``{split: path}``; None =
            :data:`SAMPLE_DIR`.
        split: ``"train"``, ``"val"`` or ``"test"`` (selects from the mappings above).
        min_keypoints: keep instances with ``num_keypoints >= min_keypoints`` (0 keeps all).
        padding: the crop box is the bbox times this (the DataModule then widens it to the input's
            aspect ratio).
        skip_crowd: drop ``iscrowd`` annotations (their keypoints are not labelled).

    Sample: ``image`` the whole RGB image ``[H0, W0, 3]``, ``keypoints [17, 2]`` image px,
    ``visible [17]`` = COCO flag ``v > 0`` (labelled, including labelled-but-occluded ``v = 1``, the
    convention COCO training uses), ``center``/``scale`` the padded bbox, ``norm`` = ``max(w, h)`` of
    the bbox (image px), ``joints3d``/``cam_K`` None, ``meta`` with ``image_id``, ``ann_id``, ``file``,
    ``area``, ``bbox``.

    Malformed labels are not visible: a flag other than 0/1/2, or a labelled keypoint outside its image
    (beyond the image's extent under either pixel convention: ``x < -0.5`` or ``x > width``, y likewise,
    so a label on the last pixel column stays) or not finite. They are counted in ``self.dropped`` and
    warned about once per file and process. (The OKS AP evaluation reads the file itself, as
    pycocotools does.)

    Skipped instances are counted in the log (INFO) and in ``self.skipped``.
    """

    description = COCO

    def __init__(
        self,
        ann_file: str | Mapping[str, str] | None = None,
        img_dir: str | Mapping[str, str] | None = None,
        split: str = "train",
        min_keypoints: int = 1,
        padding: float = 1.25,
        skip_crowd: bool = True,
    ) -> None:
        from pycocotools.coco import COCO

        self.split = split
        self.ann_file = _pick(ann_file, split, "ann_file", SAMPLE_DIR / "test_coco.json")
        self.img_dir = Path(_pick(img_dir, split, "img_dir", SAMPLE_DIR))
        if not Path(self.ann_file).is_file():
            raise FileNotFoundError(f"COCO annotation file not found: {self.ann_file}")
        if not self.img_dir.is_dir():
            raise FileNotFoundError(f"COCO image folder not found: {self.img_dir}")
        self.padding = float(padding)
        try:
            # pycocotools prints progress on stdout; a training log does not need it.
            with contextlib.redirect_stdout(io.StringIO()):
                self.coco = COCO(self.ann_file)
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"not a COCO annotation file ({err!r}): {self.ann_file}") from err

        self.skipped = {"crowd": 0, "few_keypoints": 0, "empty_bbox": 0}
        self.instances: list[dict[str, Any]] = []
        self.visible: list[np.ndarray] = []  # [17] bool per kept instance, malformed labels dropped
        self.dropped = {"bad_flag": 0, "outside_image": 0, "annotations": 0}
        person_ids = self.coco.getCatIds(catNms=["person"])
        for ann_id in sorted(self.coco.getAnnIds(catIds=person_ids)):
            ann = self.coco.anns[ann_id]
            if skip_crowd and ann.get("iscrowd", 0):
                self.skipped["crowd"] += 1
            elif ann.get("num_keypoints", 0) < min_keypoints:
                self.skipped["few_keypoints"] += 1
            elif ann["bbox"][2] <= 0 or ann["bbox"][3] <= 0:
                self.skipped["empty_bbox"] += 1
            else:
                kps = np.asarray(ann.get("keypoints", []), dtype=np.float64)
                if kps.shape != (3 * len(COCO_JOINTS),):
                    raise DataError(
                        f"{self.ann_file}: annotation {ann_id} has {kps.size} keypoint values, "
                        f"expected {3 * len(COCO_JOINTS)} (x, y, v for 17 joints)"
                    )
                self.instances.append(ann)
                self.visible.append(self._labelled(ann, kps.reshape(-1, 3)))
        self._warn_dropped()
        total = len(self.instances) + sum(self.skipped.values())
        log.info(
            "CocoSource(%s, %s): kept %d of %d person instances; skipped %d crowd, %d with < %d "
            "keypoints, %d with an empty bbox",
            split,
            self.ann_file,
            len(self.instances),
            total,
            self.skipped["crowd"],
            self.skipped["few_keypoints"],
            min_keypoints,
            self.skipped["empty_bbox"],
        )

    def _labelled(self, ann: Mapping[str, Any], kps: np.ndarray) -> np.ndarray:
        """``[17]`` bool: flag 1 or 2 at a finite point inside the image; counts what it drops."""
        flags = kps[:, 2]
        bad_flag = ~np.isin(flags, (0, 1, 2))
        labelled = (flags > 0) & ~bad_flag
        info = self.coco.imgs.get(ann["image_id"], {})
        width, height = info.get("width"), info.get("height")
        x, y = kps[:, 0], kps[:, 1]
        inside = np.isfinite(x) & np.isfinite(y)
        if width is not None and height is not None:
            inside &= (x >= -0.5) & (x <= float(width)) & (y >= -0.5) & (y <= float(height))
        outside = labelled & ~inside
        self.dropped["bad_flag"] += int(bad_flag.sum())
        self.dropped["outside_image"] += int(outside.sum())
        self.dropped["annotations"] += int((bad_flag | outside).any())
        return labelled & inside

    def _warn_dropped(self) -> None:
        if not (self.dropped["bad_flag"] or self.dropped["outside_image"]):
            return
        key = str(Path(self.ann_file).resolve())
        if key in _WARNED:
            return
        _WARNED.add(key)
        log.warning(
            "%s: %d keypoints outside their image and %d with a visibility flag other than 0/1/2 "
            "(in %d annotations) are treated as not visible",
            self.ann_file,
            self.dropped["outside_image"],
            self.dropped["bad_flag"],
            self.dropped["annotations"],
        )

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ann = self.instances[index]
        info = self.coco.imgs[ann["image_id"]]
        path = self.img_dir / info["file_name"]
        image = read_rgb(path)
        kps = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        x, y, w, h = (float(v) for v in ann["bbox"])
        return {
            "image": image,
            "keypoints": kps[:, :2].copy(),
            "visible": self.visible[index].copy(),
            "joints3d": None,
            "cam_K": None,
            "center": np.array([x + w / 2.0, y + h / 2.0]),
            "scale": np.array([w, h]) * self.padding,
            "norm": max(w, h),
            "meta": {
                "image_id": int(ann["image_id"]),
                "ann_id": int(ann["id"]),
                "file": str(path),
                "area": float(ann.get("area", w * h)),
                "bbox": (x, y, w, h),
            },
        }
