"""Loop baselines: the reference implementations (DarkPose), re-written in numpy / OpenCV, one map or one
joint at a time. They are the "before" of heatlit's speed-ups and its accuracy cross-check; do not
vectorise them.

Coordinates follow :mod:`heatlit.codecs` (pixel centres at integers, ``(x, y)`` order), which is also the
reference code's convention inside the heatmap, so baselines and heatlit compare directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np


def reference_get_max_preds(batch_heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BASELINE: the reference ``get_max_preds`` (already batched numpy in the original).

    ``[B, K, H, W] -> (preds [B, K, 2] float32 integer (x, y), maxvals [B, K, 1])``; maps with a
    non-positive maximum get ``(0, 0)``.
    """
    batch, joints, _, width = batch_heatmaps.shape
    reshaped = batch_heatmaps.reshape((batch, joints, -1))
    idx = np.argmax(reshaped, 2).reshape((batch, joints, 1))
    maxvals = np.amax(reshaped, 2).reshape((batch, joints, 1))
    preds = np.tile(idx, (1, 1, 2)).astype(np.float32)
    preds[:, :, 0] = preds[:, :, 0] % width
    preds[:, :, 1] = np.floor(preds[:, :, 1] / width)
    preds *= np.tile(np.greater(maxvals, 0.0), (1, 1, 2)).astype(np.float32)
    return preds, maxvals


def reference_gaussian_blur(hm: np.ndarray, kernel: int) -> np.ndarray:
    """BASELINE: the reference ``gaussian_blur``: per map, zero border of ``(k-1)/2``, ``cv2.GaussianBlur``
    (sigma 0: OpenCV derives it from k, 2.0 for k = 11), crop, rescale to the original maximum.

    ``hm [B, K, H, W]`` float32, modified in place (as in the reference) and returned.
    """
    border = (kernel - 1) // 2
    batch, joints, height, width = hm.shape
    for i in range(batch):
        for j in range(joints):
            origin_max = np.max(hm[i, j])
            dr = np.zeros((height + 2 * border, width + 2 * border))  # float64, as in the reference
            dr[border:-border, border:-border] = hm[i, j].copy()
            dr = cv2.GaussianBlur(dr, (kernel, kernel), 0)
            hm[i, j] = dr[border:-border, border:-border].copy()
            # The reference divides unconditionally (0/0 = NaN on an all-zero map); guarded here so the
            # baseline stays warning-free. Inputs in this benchmark never take this branch.
            peak = np.max(hm[i, j])
            if peak != 0:
                hm[i, j] *= origin_max / peak
    return hm


def reference_taylor(hm: np.ndarray, coord: np.ndarray) -> np.ndarray:
    """BASELINE: the reference ``taylor``: one Newton step on the log map at an integer peak.

    First derivatives by central differences, the Hessian with step-2 second differences
    (``dxx = (h[x+2] - 2 h[x] + h[x-2]) / 4``) and a step-1 mixed term; applied only when the peak is
    at least 2 px inside (``1 < px < W-2 and 1 < py < H-2``) and the Hessian determinant is non-zero.

    Args:
        hm: ``[H, W]`` log heatmap; coord: ``[2]`` float (x, y), updated in place and returned.
    """
    height, width = hm.shape
    px, py = int(coord[0]), int(coord[1])
    if 1 < px < width - 2 and 1 < py < height - 2:
        dx = 0.5 * (hm[py][px + 1] - hm[py][px - 1])
        dy = 0.5 * (hm[py + 1][px] - hm[py - 1][px])
        dxx = 0.25 * (hm[py][px + 2] - 2 * hm[py][px] + hm[py][px - 2])
        dxy = 0.25 * (hm[py + 1][px + 1] - hm[py - 1][px + 1] - hm[py + 1][px - 1] + hm[py - 1][px - 1])
        dyy = 0.25 * (hm[py + 2][px] - 2 * hm[py][px] + hm[py - 2][px])
        derivative = np.array([[dx], [dy]])
        hessian = np.array([[dxx, dxy], [dxy, dyy]])
        if dxx * dyy - dxy**2 != 0:
            # The reference uses np.matrix(...).I, i.e. this same np.linalg.inv, through a deprecated class.
            offset = -np.linalg.inv(hessian) @ derivative
            coord += offset[:, 0]
    return coord


def dark_loop(batch_heatmaps: np.ndarray, kernel: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """BASELINE: DARK decoding as officially published (DarkPose ``get_final_preds``, heatmap space).

    Argmax, per-map blur (:func:`reference_gaussian_blur`), ``np.maximum(hm, 1e-10)``, ``np.log``, then
    a per-joint Taylor step (:func:`reference_taylor`).

    Args:
        batch_heatmaps: ``[B, K, H, W]`` float32 (not modified: the reference's in-place blur works on
            a copy here).

    Returns:
        ``coords [B, K, 2]`` float32 (x, y) in heatmap pixels and ``maxvals [B, K]``.
    """
    hm = np.array(batch_heatmaps, dtype=np.float32, copy=True)
    coords, maxvals = reference_get_max_preds(hm)
    hm = reference_gaussian_blur(hm, kernel)
    hm = np.maximum(hm, 1e-10)
    hm = np.log(hm)
    for n in range(coords.shape[0]):
        for p in range(coords.shape[1]):
            coords[n, p] = reference_taylor(hm[n][p], coords[n][p])
    return coords, maxvals[..., 0]


def encode_loop(
    keypoints: np.ndarray,
    visible: np.ndarray,
    heatmap_size: Sequence[int],
    sigma: float = 2.0,
    box_sigmas: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """BASELINE: the reference unbiased target generation (DarkPose ``generate_target``), per joint.

    Each visible, in-frame joint gets ``exp(-((x - mu_x)^2 + (y - mu_y)^2) / (2 sigma^2))`` over the
    whole map, centred on the exact sub-pixel coordinate (no rounding). The out-of-frame rule is
    heatlit's (the ``box_sigmas * sigma`` box misses ``[-0.5, S - 0.5]``) so the two encoders can be
    compared value by value; the reference's box is ``[mu - 3 sigma, mu + 3 sigma + 1]`` tested against
    ``[0, S)``, a one-pixel-different edge that costs the same.

    Args:
        keypoints: ``[B, K, 2]`` (x, y) in heatmap pixels; visible: ``[B, K]`` (> 0 is visible).
        heatmap_size: ``(H, W)``.

    Returns:
        ``heatmaps [B, K, H, W]`` float32 and ``weights [B, K]`` float32 (1 or 0).
    """
    height, width = (int(s) for s in heatmap_size)
    batch, joints, _ = keypoints.shape
    target = np.zeros((batch, joints, height, width), dtype=np.float32)
    weights = np.zeros((batch, joints), dtype=np.float32)
    tmp_size = box_sigmas * sigma
    for b in range(batch):
        for j in range(joints):
            mu_x, mu_y = float(keypoints[b, j, 0]), float(keypoints[b, j, 1])
            if not (visible[b, j] > 0 and math.isfinite(mu_x) and math.isfinite(mu_y)):
                continue
            if (
                mu_x + tmp_size < -0.5
                or mu_y + tmp_size < -0.5
                or mu_x - tmp_size > width - 0.5
                or mu_y - tmp_size > height - 0.5
            ):
                continue
            weights[b, j] = 1.0
            x = np.arange(0, width, 1, np.float32)
            y = np.arange(0, height, 1, np.float32)[:, np.newaxis]
            target[b, j] = np.exp(-((x - mu_x) ** 2 + (y - mu_y) ** 2) / (2 * sigma**2))
    return target, weights


def numpy_argmax(batch_heatmaps: np.ndarray) -> np.ndarray:
    """Floor reference: one ``np.argmax`` over every map of the batch. ``[B, K, H, W] -> [B*K]``."""
    return np.argmax(batch_heatmaps.reshape(-1, batch_heatmaps.shape[2] * batch_heatmaps.shape[3]), axis=1)
