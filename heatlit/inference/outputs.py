"""What ``python -m heatlit.predict`` writes: COCO keypoint results (one JSON list) and overlay PNGs.

COCO results (``pycocotools.coco.COCO.loadRes`` reads them): one record per person,
``{"image_id", "category_id": 1, "keypoints": [x1, y1, s1, ..., xK, yK, sK], "score"}`` with ``(x, y)`` in
pixels of the input image (pixel centres at integers, the convention of :mod:`heatlit.codecs` and of COCO's
labels), ``s`` the decoder's keypoint score and ``score`` the person's (:func:`heatlit.metrics.coco.instance_score`,
times the detector's box score when there is one). Inputs read from files add ``"file"`` (ignored by COCO tools).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

OVERLAY_SIZE = 640  # small inputs are drawn enlarged, to about this many pixels on their longer side
POINT = (40, 40, 230)  # BGR: prediction red, as in qualitative.png
BONE = (0, 170, 255)


@dataclass(frozen=True)
class Prediction:
    """One person's prediction: ``keypoints [K, 2]`` image px, ``scores [K]``, the person's ``score``."""

    image_id: int
    keypoints: np.ndarray
    scores: np.ndarray
    score: float
    sample_index: int
    file: str | None = None


def coco_record(p: Prediction) -> dict:
    """The COCO results record of one person (numbers rounded to 1/1000 px and 1e-5)."""
    triples = np.concatenate([p.keypoints, p.scores[:, None]], 1)
    record = {
        "image_id": int(p.image_id),
        "category_id": 1,
        "keypoints": [round(float(v), 3 if i % 3 < 2 else 5) for i, v in enumerate(triples.reshape(-1))],
        "score": round(float(p.score), 5),
    }
    if p.file is not None:
        record["file"] = p.file
    return record


def write_coco_results(path: Path, predictions: Iterable[Prediction]) -> Path:
    """Write the results list to ``path`` (its folder made); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([coco_record(p) for p in predictions]))
    return path


def _display(image: np.ndarray) -> np.ndarray:
    """``[H, W, 1]`` depth in metres (0 = missing: black; near = bright) or ``[H, W, 3]`` RGB -> BGR uint8."""
    if image.shape[-1] == 3:
        return cv2.cvtColor((np.clip(image, 0, 1) * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
    depth = image[..., 0]
    valid = depth > 0
    gray = np.zeros(depth.shape, np.uint8)
    if valid.any():
        near, far = np.percentile(depth[valid], [1, 99])
        span = max(float(far - near), 1e-6)
        gray[valid] = (255 * (1 - np.clip((depth[valid] - near) / span, 0, 1)) * 0.8 + 51).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def draw_overlay(
    image: np.ndarray,
    people: Sequence[tuple[np.ndarray, np.ndarray]],
    skeleton: Sequence[tuple[int, int]],
    path: Path,
) -> Path:
    """Draw every person's keypoints (red) and bones (orange) over ``image`` and save it as a PNG.

    Args:
        image: ``[H, W, 1]`` depth in metres or ``[H, W, 3]`` RGB in [0, 1] (a raw sample's image).
        people: ``(keypoints [K, 2] image px, scores [K])`` per person; non-finite points are not drawn.
        skeleton: ``(a, b)`` keypoint pairs (the dataset description's).
        path: the PNG to write (its folder made).
    """
    canvas = _display(image)
    height, width = canvas.shape[:2]
    factor = max(1, OVERLAY_SIZE // max(height, width))
    if factor > 1:
        canvas = cv2.resize(canvas, (width * factor, height * factor), interpolation=cv2.INTER_NEAREST)
    radius = max(2, round(0.6 * factor), round(max(height, width) * factor / 200))
    shift = 4  # cv2 draws at 1/16 px

    def at(xy) -> tuple[int, int] | None:
        if not (math.isfinite(xy[0]) and math.isfinite(xy[1])):
            return None
        # pixel centres at integers: pixel x covers [x - 0.5, x + 0.5], enlarged by `factor`
        return tuple(round(((v + 0.5) * factor - 0.5) * (1 << shift)) for v in xy)

    for keypoints, _ in people:
        points = [at(xy) for xy in keypoints]
        for a, b in skeleton:
            if points[a] is not None and points[b] is not None:
                cv2.line(canvas, points[a], points[b], BONE, max(1, radius // 2), cv2.LINE_AA, shift)
        for point in points:
            if point is not None:
                cv2.circle(canvas, point, radius << shift, POINT, -1, cv2.LINE_AA, shift)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise OSError(f"could not write {path}")
    return path


def overlay_names(keys: Sequence[str]) -> dict[str, str]:
    """A PNG name per input (file path or id): the file's stem, its suffix added where two stems collide."""
    stems = [Path(k).stem for k in keys]
    names = {}
    for key, stem in zip(keys, stems):
        suffix = Path(key).suffix.lstrip(".")
        names[key] = f"{stem}_{suffix}.png" if stems.count(stem) > 1 and suffix else f"{stem}.png"
    return names
