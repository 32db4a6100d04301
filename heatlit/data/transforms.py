"""Sample-level geometry and photometry: the one home of the affine maths of the data pipeline.

Coordinates follow :mod:`heatlit.codecs`: ``(x, y)`` pixels, pixel centres at integers, so a W-pixel
axis spans ``[-0.5, W - 0.5]``. ``cv2.warpAffine`` uses the same convention (destination pixel
``(x, y)`` samples the source at ``M^-1 (x, y)``), so the matrix that moves the image is exactly the
matrix that moves the keypoints; no half-pixel corrections appear anywhere.

Every geometric change of a sample (box crop, scale and rotation augmentation, horizontal flip) is
folded into ONE ``[2, 3]`` matrix ``image px -> input px``. Its inverse is the ``to_image`` of a batch.

All functions work on numpy arrays of one sample (``[H, W, C]`` images, ``[K, 2]`` points); batching
happens later, in the collate of :mod:`heatlit.data.datamodule`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


# ----------------------------------------------------------------------------------------- geometry
def fit_aspect(scale: np.ndarray, input_size: Sequence[int]) -> np.ndarray:
    """Grow a box to the aspect ratio of the input, never shrinking it.

    Args:
        scale: ``[2]`` box size ``(w, h)`` in image px.
        input_size: ``(H, W)`` of the network input.

    Returns:
        ``[2]`` float64 ``(w', h')`` with ``w' / h' == W / H``, ``w' >= w`` and ``h' >= h``: the crop
        then maps onto the input with one isotropic scale factor (no distortion of the person).
    """
    w, h = float(scale[0]), float(scale[1])
    aspect = input_size[1] / input_size[0]
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    return np.array([w, h], dtype=np.float64)


def box_to_input_affine(
    center: np.ndarray,
    scale: np.ndarray,
    input_size: Sequence[int],
    rotation_deg: float = 0.0,
    flip: bool = False,
) -> np.ndarray:
    """Affine matrix mapping image px to input px for the box ``center +- scale / 2``.

    The box's continuous extent ``[c - s/2, c + s/2]`` lands on the input frame ``[-0.5, W - 0.5]``
    (after :func:`fit_aspect`, with one isotropic factor ``W / s_w``). Then, about the input centre
    ``((W - 1) / 2, (H - 1) / 2)``: rotation by ``rotation_deg`` (positive = counter-clockwise as
    displayed, y pointing down), and last the flip ``x -> W - 1 - x`` of the input frame.

    Args:
        center: ``[2]`` box centre ``(x, y)`` in image px.
        scale: ``[2]`` box size ``(w, h)`` in image px.
        input_size: ``(H, W)``.
        rotation_deg: in-plane rotation in degrees.
        flip: mirror the input horizontally (the caller swaps the flip pairs).

    Returns:
        ``[2, 3]`` float64 matrix ``M`` with ``input = M @ (x, y, 1)``.
    """
    height, width = int(input_size[0]), int(input_size[1])
    box = fit_aspect(np.asarray(scale, dtype=np.float64), input_size)
    factor = width / box[0]
    in_centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    theta = math.radians(rotation_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    # y points down, so a counter-clockwise turn on screen is [[cos, sin], [-sin, cos]].
    linear = factor * np.array([[cos, sin], [-sin, cos]])
    matrix = np.concatenate([linear, (in_centre - linear @ np.asarray(center, dtype=np.float64))[:, None]], 1)
    if flip:
        mirror = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        matrix = (mirror @ homogeneous(matrix))[:2]
    return matrix


def homogeneous(matrix: np.ndarray) -> np.ndarray:
    """``[2, 3]`` affine -> ``[3, 3]`` with last row ``(0, 0, 1)``."""
    out = np.eye(3, dtype=np.float64)
    out[:2] = matrix
    return out


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a ``[2, 3]`` affine (e.g. input px -> image px, the batch's ``to_image``)."""
    return np.linalg.inv(homogeneous(matrix))[:2]


def affine_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a ``[2, 3]`` affine to points ``[..., 2]`` (x, y); returns float64 ``[..., 2]``."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def affine_scale(matrix: np.ndarray) -> float:
    """Length scale factor of an affine, ``sqrt(|det|)``: exact for the similarity maps built here."""
    return float(math.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def warp_image(image: np.ndarray, matrix: np.ndarray, input_size: Sequence[int], nearest: bool) -> np.ndarray:
    """Warp ``image`` ``[H0, W0, C]`` into the input frame ``[H, W, C]`` float32 (outside: 0).

    ``nearest`` is for depth: interpolating across a silhouette edge would average a person and the
    wall behind into a surface that exists nowhere. RGB uses bilinear interpolation.
    """
    height, width = int(input_size[0]), int(input_size[1])
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    out = cv2.warpAffine(
        np.ascontiguousarray(image, dtype=np.float32),
        matrix.astype(np.float64),
        (width, height),
        flags=flags,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    # cv2 drops a trailing channel axis of size 1.
    return out.reshape(height, width, image.shape[2])


def in_frame(points: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """``[K]`` bool: the points ``[K, n]`` lie inside a frame ``size`` = ``(H, W)`` or ``(D, H, W)``.

    The frame of an N-pixel axis is its pixel extent ``[-0.5, N - 0.5)``; ``size`` is in array order,
    the point columns in (x, y[, z]) order.
    """
    inside = np.ones(points.shape[0], dtype=bool)
    for axis, extent in enumerate(reversed(tuple(size))):
        coord = points[:, axis]
        inside &= (coord >= -0.5) & (coord < extent - 0.5)
    return inside


# -------------------------------------------------------------------------------------- photometry
def shift_depth(image: np.ndarray, offset_m: float) -> np.ndarray:
    """Add ``offset_m`` metres to the valid (non-zero) pixels of a depth image ``[H, W, 1]``.

    Missing pixels stay 0: shifting them would turn "no measurement" into a fake surface.
    """
    return np.where(image > 0, image + np.float32(offset_m), image).astype(np.float32)


def adjust_rgb(image: np.ndarray, brightness: float, contrast: float) -> np.ndarray:
    """RGB ``[H, W, 3]`` in [0, 1]: ``clip(contrast * image + brightness, 0, 1)``."""
    return np.clip(image * np.float32(contrast) + np.float32(brightness), 0.0, 1.0).astype(np.float32)


def scale_channels(image: np.ndarray, gains: Sequence[float]) -> np.ndarray:
    """Per-channel colour jitter (the integral-regression report's "color shift"): ``[H, W, C]`` in [0, 1]
    times ``gains [C]``, clipped to [0, 1]."""
    return np.clip(image * np.asarray(gains, dtype=np.float32), 0.0, 1.0).astype(np.float32)


def procedural_texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A random texture ``[height, width]`` float32 spanning [0, 1] (no files, no downloads).

    One of three families, so occluders look like objects rather than one learnable pattern: fractal value
    noise (2-4 octaves of bilinearly upsampled random grids: stone, foliage, fabric), an oriented grating
    with a random period (stripes, blinds), or a checkerboard with random cells (tiles, boxes). A patch too
    small for a pattern still gets pixel noise.
    """
    kind = int(rng.integers(3))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == 0:
        tex = np.zeros((height, width), np.float32)
        for octave in range(int(rng.integers(2, 5))):
            cells = 2 ** (octave + 1)
            grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
            tex += cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR) / 2**octave
    elif kind == 1:
        theta = rng.uniform(0, np.pi)
        period = rng.uniform(3.0, max(4.0, 0.5 * max(height, width)))
        phase = rng.uniform(0, 2 * np.pi)
        tex = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + phase)
    else:
        cell = rng.uniform(2.0, max(3.0, 0.4 * max(height, width)))
        tex = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(np.float32)
    tex = tex + 0.15 * rng.random((height, width), dtype=np.float32)  # sensor-like grain
    span = float(tex.max() - tex.min())
    return ((tex - tex.min()) / span if span > 0 else np.zeros_like(tex)).astype(np.float32)


@dataclass(frozen=True)
class Occluder:
    """One occluder in input px: its box (``x0, y0`` inclusive, ``x1, y1`` exclusive) and how to fill it.

    Flat (the default): depth becomes missing (0); RGB gets uniform noise (``noise``) or the image's mean
    colour. Textured: a procedural texture (:func:`procedural_texture`) inside the box, or inside the
    ellipse inscribed in it (``ellipse``): for RGB between two random colours; for depth a surface in front
    of the scene with a relief of a few centimetres, as a real object between camera and person would be.
    """

    x0: int
    y0: int
    x1: int
    y1: int
    noise: bool  # RGB only: uniform noise instead of the image's mean colour (flat fill)
    textured: bool = False
    ellipse: bool = False


def _occluder_mask(occ: Occluder) -> np.ndarray:
    """``[h, w]`` bool of the pixels an occluder covers inside its box."""
    h, w = occ.y1 - occ.y0, occ.x1 - occ.x0
    if not occ.ellipse:
        return np.ones((h, w), bool)
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx + 0.5 - w / 2) / (w / 2)) ** 2 + ((yy + 0.5 - h / 2) / (h / 2)) ** 2 <= 1.0


def _textured_fill(
    out: np.ndarray, occ: Occluder, depth: bool, rng: np.random.Generator, mask: np.ndarray
) -> np.ndarray:
    """The ``[h, w, C]`` pixels of one textured occluder painted over the current image ``out``."""
    h, w = mask.shape
    tex = procedural_texture(h, w, rng)
    if depth:
        under = out[occ.y0 : occ.y1, occ.x0 : occ.x1, 0][mask]
        valid = under[under > 0]
        scene = out[..., 0][out[..., 0] > 0]
        # nearer than whatever it covers (or than the scene's median when it covers no measurement)
        reference = float(valid.min()) if valid.size else float(np.median(scene)) if scene.size else 2.0
        front = max(0.3, reference - float(rng.uniform(0.2, 0.8)))
        relief = float(rng.uniform(0.02, 0.10))
        return (front + relief * (tex - 0.5))[..., None].astype(np.float32)
    low, high = rng.random(out.shape[2], dtype=np.float32), rng.random(out.shape[2], dtype=np.float32)
    return (low + (high - low) * tex[..., None]).astype(np.float32)


def add_occluders(image: np.ndarray, occluders: Sequence[Occluder], depth: bool, rng: np.random.Generator):
    """Paint ``occluders`` into ``image`` ``[H, W, C]`` (a copy is returned).

    Flat fill is "background": 0 (missing) for depth; for RGB either uniform noise or the mean colour of
    the image, so the network cannot learn a single occluder colour. Textured fill: see :class:`Occluder`.
    Keypoint visibility is left as it is on purpose: the target under an occluder is still supervised,
    which is what teaches the network to infer hidden joints from context.
    """
    out = image.copy()
    for occ in occluders:
        patch = out[occ.y0 : occ.y1, occ.x0 : occ.x1]
        if occ.textured:
            mask = _occluder_mask(occ)
            fill = _textured_fill(out, occ, depth, rng, mask)
            patch[mask] = fill[mask]
        elif depth:
            patch[...] = 0.0
        elif occ.noise:
            patch[...] = rng.random(patch.shape, dtype=np.float32)
        else:
            patch[...] = image.reshape(-1, image.shape[2]).mean(axis=0)
    return out


def normalize_input(
    image: np.ndarray, depth: bool, depth_offset_m: float, depth_scale_m: float
) -> np.ndarray:
    """Network input ``[C, H, W]`` float32 from an input-frame image ``[H, W, C]``.

    Depth: ``(d - depth_offset_m) / depth_scale_m`` on every pixel, so a missing pixel (0 m) becomes
    ``-depth_offset_m / depth_scale_m``, a value no real surface takes (it would sit behind the camera).
    RGB: ``(rgb - ImageNet mean) / ImageNet std``, as the pretrained backbones expect.
    """
    if depth:
        out = (image - np.float32(depth_offset_m)) / np.float32(depth_scale_m)
    else:
        out = (image - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32)


# ------------------------------------------------------------------------------------ augmentation
@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation of training samples (val/test are never augmented).

    Fields:
        enabled: master switch.
        flip_prob: probability of a horizontal flip (labels swapped by the flip pairs).
        scale: box size multiplied by a factor uniform in ``[1 - scale, 1 + scale]`` (>1 zooms out).
        rotation_deg, rotation_prob: with probability ``rotation_prob``, rotate by an angle uniform in
            ``[-rotation_deg, rotation_deg]``.
        depth_shift_m: depth inputs, valid pixels shifted by a uniform offset in ``+-depth_shift_m`` m.
        brightness, contrast: RGB inputs, ``b ~ U(+-brightness)``, ``c ~ U(1 +- contrast)``.
        occluder_prob: probability that a sample gets occluders at all.
        occluder_max_count: 1..max rectangles when it does.
        occluder_size: side lengths as fractions ``(min, max)`` of the input's sides.
        occluder_texture: textured occluders (procedural textures, half of them elliptic; depth: a surface
            in front of the scene) instead of flat ones; closer to the integral-regression report's pasted
            VOC objects without downloading them.
        color_jitter: RGB inputs, each channel times its own factor ``U(1 +- color_jitter)`` (the report's
            "color shift", 0.2 there); 0 disables it.
    """

    enabled: bool = True
    flip_prob: float = 0.5
    scale: float = 0.25
    rotation_deg: float = 30.0
    rotation_prob: float = 0.6
    depth_shift_m: float = 0.2
    brightness: float = 0.2
    contrast: float = 0.2
    occluder_prob: float = 0.5
    occluder_max_count: int = 3
    occluder_size: tuple[float, float] = (0.1, 0.3)
    occluder_texture: bool = False
    color_jitter: float = 0.0

    def __post_init__(self):
        lo, hi = self.occluder_size
        if not (0.0 < lo <= hi <= 1.0):
            raise ValueError(f"occluder_size must satisfy 0 < min <= max <= 1, got {self.occluder_size}")
        if not 0.0 <= self.scale < 1.0:
            raise ValueError(f"scale must be in [0, 1), got {self.scale}")
        if self.occluder_max_count < 1:
            raise ValueError(f"occluder_max_count must be >= 1, got {self.occluder_max_count}")
        if not 0.0 <= self.color_jitter < 1.0:
            raise ValueError(f"color_jitter must be in [0, 1), got {self.color_jitter}")


@dataclass(frozen=True)
class AugmentParams:
    """One draw of :class:`AugmentConfig` for one sample (identity when augmentation is off)."""

    flip: bool = False
    scale: float = 1.0
    rotation_deg: float = 0.0
    depth_shift_m: float = 0.0
    brightness: float = 0.0
    contrast: float = 1.0
    occluders: tuple[Occluder, ...] = field(default_factory=tuple)
    channel_gains: tuple[float, ...] | None = None  # RGB colour jitter, one factor per channel


def sample_augmentation(
    cfg: AugmentConfig | None, rng: np.random.Generator, input_size: Sequence[int]
) -> AugmentParams:
    """Draw the parameters of one sample's augmentation from ``rng``.

    Every random number of a sample comes from here (and from ``rng`` in :func:`add_occluders`), drawn
    in a fixed order, so one generator per sample fully determines its augmentation. Options that are off
    draw nothing, so turning on a new option leaves the draws of the existing ones as they were.
    """
    if cfg is None or not cfg.enabled:
        return AugmentParams()
    height, width = int(input_size[0]), int(input_size[1])
    flip = bool(rng.random() < cfg.flip_prob)
    scale = float(rng.uniform(1.0 - cfg.scale, 1.0 + cfg.scale))
    rotate = rng.random() < cfg.rotation_prob
    rotation = float(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)) if rotate else 0.0
    depth_shift = float(rng.uniform(-cfg.depth_shift_m, cfg.depth_shift_m))
    brightness = float(rng.uniform(-cfg.brightness, cfg.brightness))
    contrast = float(rng.uniform(1.0 - cfg.contrast, 1.0 + cfg.contrast))
    occluders = []
    if rng.random() < cfg.occluder_prob:
        for _ in range(int(rng.integers(1, cfg.occluder_max_count + 1))):
            ow = max(1, round(rng.uniform(*cfg.occluder_size) * width))
            oh = max(1, round(rng.uniform(*cfg.occluder_size) * height))
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            x0, y0 = max(0, round(cx - ow / 2)), max(0, round(cy - oh / 2))
            noise = bool(rng.random() < 0.5)
            ellipse = bool(rng.random() < 0.5) if cfg.occluder_texture else False
            occluders.append(
                Occluder(
                    x0, y0, min(width, x0 + ow), min(height, y0 + oh), noise, cfg.occluder_texture, ellipse
                )
            )
    gains = None
    if cfg.color_jitter > 0:
        gains = tuple(float(g) for g in rng.uniform(1.0 - cfg.color_jitter, 1.0 + cfg.color_jitter, size=3))
    return AugmentParams(flip, scale, rotation, depth_shift, brightness, contrast, tuple(occluders), gains)
