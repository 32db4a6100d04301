"""What ``python -m heatlit.predict input=...`` reads, served as raw samples (``docs/CONTRACTS.md``) so that the
data module crops and normalises them exactly as it did the training data.

**Depth models** (1 input channel): PGM (ASCII ``P2`` as HUMAN4D writes it, or binary ``P5``), 16-bit PNG and NPY
files. A stored value ``v`` is a depth of ``v * depth_unit_mm`` millimetres: the default 0.1 reads HUMAN4D's
100 um units (the rendered data store the same units); ``depth_unit_mm=1`` reads millimetres. 0 (and, in NPY,
a non-finite value) is a missing pixel. The whole frame is the input, scaled into the model's input size with
its aspect kept (:func:`heatlit.data.transforms.box_to_input_affine`).

**RGB models** (3 channels): JPEG, PNG and BMP images, with person boxes from ``boxes=``: a COCO detections
JSON (a list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``; person category 1; an image is
found by the number in its file name, ``000000000785.jpg`` being image 785) or a COCO annotation file (its
``images`` name the files, its non-crowd person ``annotations`` are the boxes). Without ``boxes`` the whole
image is one person. A box is widened by the checkpoint's ``data.source.padding`` (1.25 for COCO), as in
training.

Image ids of the results: the box's ``image_id``; without boxes, the number the file name is when its stem is
all digits, else the file's place in the sorted listing (0, 1, ...).

A file that cannot be read raises :class:`~heatlit.data.errors.DataError` naming it (the caller skips it); a
file of the wrong kind for the model (an RGB image for a depth model, a depth map for an RGB one) raises a
one-line :class:`~heatlit.training.checks.ConfigError`.
"""

from __future__ import annotations

import io
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from heatlit.data.base import DatasetDescription, Source
from heatlit.data.coco import read_rgb
from heatlit.data.errors import DataError
from heatlit.data.human4d import read_pgm
from heatlit.training.checks import ConfigError

log = logging.getLogger(__name__)

DEPTH_SUFFIXES = (".pgm", ".png", ".npy")
RGB_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DEPTH_KINDS = "1-channel depth maps (.pgm, 16-bit .png, .npy)"
RGB_KINDS = "RGB images (.jpg, .png, .bmp)"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Entry:
    """One network input: a file and, for RGB models, the person box in it (None: the whole image).

    ``box`` is COCO's ``[x, y, w, h]`` in image px (continuous extent ``[x, x + w]``, see
    :mod:`heatlit.data.coco`); ``score`` the detector's confidence (None without a detector).
    """

    file: Path
    image_id: int
    box: tuple[float, float, float, float] | None = None
    score: float | None = None


def wrong_kind(path: Path, what: str, wanted: str) -> ConfigError:
    return ConfigError(f"{path}: {what}, but this checkpoint's model reads {wanted}")


# ------------------------------------------------------------------------------------------- files
def list_inputs(path: Path, depth: bool) -> list[Path]:
    """The input files: ``path`` itself, or a folder's files with the model's suffixes, sorted by name.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ConfigError: the file or folder holds only the other kind of input, or nothing usable.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    suffixes, others = (DEPTH_SUFFIXES, RGB_SUFFIXES) if depth else (RGB_SUFFIXES, DEPTH_SUFFIXES)
    wanted = DEPTH_KINDS if depth else RGB_KINDS
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    usable = [p for p in files if p.suffix.lower() in suffixes]
    if not usable:
        foreign = [p for p in files if p.suffix.lower() in others]
        if foreign:
            what = "an RGB image" if depth else "a depth map"
            raise wrong_kind(foreign[0], what, wanted)
        raise ConfigError(f"input={path}: no {wanted} in it")
    ignored = len(files) - len(usable)
    if ignored:
        log.info("input %s: %d file(s) with other suffixes ignored", path, ignored)
    return usable


def image_id_of(path: Path, index: int) -> int:
    """The number a file's stem is (``000000000785.jpg`` -> 785), else its index in the listing."""
    return int(path.stem) if path.stem.isdigit() else index


def _png_header(data: bytes) -> tuple[int, int] | None:
    """``(bit depth, colour type)`` of a PNG's IHDR chunk (colour type 0 = grey, 2 = RGB, 4/6 = with alpha)."""
    if data[:8] != _PNG_MAGIC or len(data) < 26:
        return None
    return data[24], data[25]


def read_depth(path: Path, unit_mm: float) -> np.ndarray:
    """A depth file as ``[H, W]`` float32 metres (0 = missing); see the module's notes for formats and units.

    Raises:
        DataError: unreadable, truncated, 8-bit or negative depth (the message names the file).
        ConfigError: a colour image (3 or 4 channels) given to a depth model.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    if suffix == ".npy":
        try:
            values = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise DataError(f"{path}: not a readable .npy array ({err})") from None
        if values.ndim == 3 and values.shape[2] == 1:
            values = values[..., 0]
        if values.ndim == 3 and values.shape[2] in (3, 4):
            raise wrong_kind(path, f"an array of {values.shape[2]} channels", DEPTH_KINDS)
        if values.ndim != 2 or not np.issubdtype(values.dtype, np.number) or values.size == 0:
            raise DataError(
                f"{path}: expected an [H, W] numeric depth array, got {values.dtype} {list(values.shape)}"
            )
        values = np.where(np.isfinite(values), values, 0).astype(np.float64)
    elif suffix == ".pgm" and data[:2] == b"P2":
        values = read_pgm(path, size=None).astype(np.float64)
    elif suffix == ".pgm" and data[:2] in (b"P3", b"P6"):
        raise wrong_kind(path, "a colour (PPM) image", DEPTH_KINDS)
    else:
        header = _png_header(data)
        if header is not None and header[1] in (2, 4, 6):
            raise wrong_kind(path, "a colour PNG", DEPTH_KINDS)
        if header is not None and header[0] != 16:
            raise DataError(f"{path}: a {header[0]}-bit PNG; depth maps need 16 bits")
        if header is not None and not data.rstrip(b"\x00\r\n ").endswith(b"IEND\xaeB`\x82"):
            raise DataError(f"{path}: truncated PNG (no IEND chunk)")
        decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if decoded is None or decoded.ndim != 2:
            raise DataError(f"{path}: cannot decode a 1-channel 16-bit image from it")
        values = decoded.astype(np.float64)
    if (values < 0).any():
        raise DataError(f"{path}: negative depth values (min {values.min():g})")
    return (values * (float(unit_mm) / 1000.0)).astype(np.float32)


def read_image(path: Path) -> np.ndarray:
    """An RGB file as ``[H, W, 3]`` float32 in [0, 1] (:func:`heatlit.data.coco.read_rgb`; grey images as RGB).

    Raises:
        DataError / FileNotFoundError: unreadable or truncated (named).
        ConfigError: a 16-bit grey PNG, i.e. a depth map, given to an RGB model.
    """
    try:
        with open(path, "rb") as handle:
            header = _png_header(handle.read(26))
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    if header is not None and header == (16, 0):
        raise wrong_kind(Path(path), "a 16-bit grey PNG (a depth map)", RGB_KINDS)
    return read_rgb(path)


# ------------------------------------------------------------------------------------------- boxes
def _detections(data: Any, boxes: Path) -> list[dict]:
    """The person boxes of a detections list or a COCO annotation file, each a dict with image_id, bbox, score."""
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        found = [a for a in data["annotations"] if isinstance(a, dict) and not a.get("iscrowd", 0)]
    elif isinstance(data, list):
        found = data
    else:
        raise ConfigError(
            f"boxes={boxes}: expected a COCO detections list [{{image_id, bbox, score}}, ...] or a COCO "
            "annotation file (images, annotations)"
        )
    for n, det in enumerate(found):
        if not isinstance(det, dict) or "image_id" not in det or "bbox" not in det:
            raise ConfigError(f"boxes={boxes}: entry {n} has no image_id and bbox ({str(det)[:80]})")
    return [d for d in found if d.get("category_id", 1) == 1]


def read_boxes(boxes: Path, files: list[Path], min_score: float = 0.0) -> list[Entry]:
    """One :class:`Entry` per person box of ``boxes`` whose image is among ``files``.

    Boxes of images not found, with a non-positive or non-finite size, or scored below ``min_score`` are
    dropped, each kind counted in one log line.
    """
    boxes = Path(boxes)
    try:
        data = json.loads(boxes.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"boxes file not found: {boxes}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"boxes={boxes}: not readable JSON ({err})") from None
    detections = _detections(data, boxes)
    if isinstance(data, dict):  # an annotation file names each image's file
        names = {
            img.get("id"): Path(str(img.get("file_name", ""))).name
            for img in data.get("images") or []
            if isinstance(img, dict)
        }
        by_name = {p.name: p for p in files}
        file_of = {image_id: by_name[name] for image_id, name in names.items() if name in by_name}
    else:
        file_of = {int(p.stem): p for p in files if p.stem.isdigit()}
    entries, missing, bad, low = [], set(), 0, 0
    for det in detections:
        bbox = det["bbox"]
        try:
            x, y, w, h = (float(v) for v in bbox)
            score = float(det.get("score", 1.0))
        except (TypeError, ValueError):
            bad += 1
            continue
        if not all(math.isfinite(v) for v in (x, y, w, h, score)) or w <= 0 or h <= 0:
            bad += 1
            continue
        if score < min_score:
            low += 1
            continue
        file = file_of.get(det["image_id"])
        if file is None:
            missing.add(det["image_id"])
            continue
        entries.append(Entry(file, int(det["image_id"]), (x, y, w, h), score))
    if missing:
        log.warning(
            "boxes=%s: %d box image(s) not among the input files (ids %s)",
            boxes,
            len(missing),
            sorted(missing, key=str)[:5],
        )
    if bad or low:
        log.info(
            "boxes=%s: %d box(es) without a positive finite size, %d below score %g",
            boxes,
            bad,
            low,
            min_score,
        )
    return sorted(entries, key=lambda e: (e.file.name, e.image_id))


# ----------------------------------------------------------------------------------------- sources
class InputSource(Source):
    """Raw samples of input files for a model trained on data described by ``description``.

    Keypoints are unknown: zeros, none visible, ``norm`` 1. ``meta`` holds ``file`` and ``image_id``.
    """

    split = "test"

    def __init__(self, entries: list[Entry], description: DatasetDescription) -> None:
        self.entries = list(entries)
        self.description = description

    def __len__(self) -> int:
        return len(self.entries)

    def image(self, entry: Entry) -> np.ndarray:
        """``[H, W, C]`` float32 of the entry's file."""
        raise NotImplementedError

    def box(self, entry: Entry, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(center, scale)`` of the crop: the whole frame ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``."""
        return np.array([(width - 1) / 2.0, (height - 1) / 2.0]), np.array([float(width), float(height)])

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        image = self.image(entry)
        center, scale = self.box(entry, *image.shape[:2])
        k = self.description.num_keypoints
        return {
            "image": image,
            "keypoints": np.zeros((k, 2)),
            "visible": np.zeros(k, dtype=bool),
            "joints3d": None,
            "cam_K": None,
            "center": center,
            "scale": scale,
            "norm": 1.0,
            "meta": {"file": str(entry.file), "image_id": entry.image_id},
        }


class DepthFiles(InputSource):
    """Whole depth frames from files (``depth_unit_mm`` mm per stored unit)."""

    def __init__(self, entries: list[Entry], description: DatasetDescription, unit_mm: float = 0.1) -> None:
        super().__init__(entries, description)
        if not unit_mm > 0:
            raise ConfigError(f"depth_unit_mm must be > 0, got {unit_mm}")
        self.unit_mm = float(unit_mm)

    def image(self, entry: Entry) -> np.ndarray:
        return read_depth(entry.file, self.unit_mm)[..., None]


class ImageFiles(InputSource):
    """RGB images, one sample per person box (or per image without boxes); boxes widened by ``padding``."""

    def __init__(self, entries: list[Entry], description: DatasetDescription, padding: float = 1.25) -> None:
        super().__init__(entries, description)
        self.padding = float(padding)

    def image(self, entry: Entry) -> np.ndarray:
        return read_image(entry.file)

    def box(self, entry: Entry, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        if entry.box is None:
            return super().box(entry, height, width)
        x, y, w, h = entry.box
        return np.array([x + w / 2.0, y + h / 2.0]), np.array([w, h]) * self.padding
