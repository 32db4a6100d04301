"""The depth camera: HUMAN4D's sensor geometry, pinhole intrinsics and poses, and what a depth map shows.

Geometry: world frame in mm, z up; camera frame x right, y down, z forward (OpenCV), pixel centres at
integer coordinates (``docs/CONTRACTS.md``). Shared by the synthetic generator (which renders through these
cameras) and the HUMAN4D reader (which calibrates its real ones with the same recipe).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: HUMAN4D depth: intrinsics are calibrated for a 1280x720 sensor; the depth maps are 320x180 (/4).
SENSOR_SIZE = (1280, 720)
SENSOR_DIVISOR = 4
FULL_SIZE = (320, 180)
#: The reproduction's centre crop: 10 rows off the top and bottom, 320x180 -> 320x160.
CROP_TOP = 10
CROP_SIZE = (320, 160)
#: uint16 depth unit (100 um) and the range it can hold; nearer than the sensor's minimum is missing too.
DEPTH_UNIT_MM = 0.1
MAX_DEPTH_MM = 65535 * DEPTH_UNIT_MM
MIN_DEPTH_MM = 300.0


# -------------------------------------------------------------------------------------- intrinsics
def sensor_to_depth_K(K_sensor: np.ndarray, divisor: float = SENSOR_DIVISOR) -> np.ndarray:
    """HUMAN4D's recipe: divide fx, fy, cx, cy of the 1280x720 calibration by 4 for the 320x180 maps.

    Args:
        K_sensor: ``[3, 3]`` intrinsics of the 1280x720 sensor, px.
        divisor: sensor px per depth-map px.

    Returns:
        ``[3, 3]`` float64 intrinsics of the 320x180 depth map.
    """
    K = np.array(K_sensor, dtype=np.float64)
    K[:2] /= divisor
    return K


def crop_K(K: np.ndarray, top: float = CROP_TOP, left: float = 0.0) -> np.ndarray:
    """``[3, 3]`` intrinsics after cropping ``top`` rows and ``left`` columns (principal point shifts)."""
    K = np.array(K, dtype=np.float64)
    K[0, 2] -= left
    K[1, 2] -= top
    return K


def resize_K(K: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """Intrinsics of the same field of view sampled on another pixel grid.

    Pixel *extents* are aligned (``x' = (x + 0.5) * s - 0.5``), the convention of
    :func:`heatlit.codecs.coords.to_heatmap`, so a W-pixel image and its W/2 version cover the same scene.

    Args:
        K: ``[3, 3]`` intrinsics for an image of ``src_size = (W, H)``.
        dst_size: ``(W', H')``.

    Returns:
        ``[3, 3]`` float64.
    """
    sx, sy = dst_size[0] / src_size[0], dst_size[1] / src_size[1]
    K = np.array(K, dtype=np.float64)
    K[0, 0] *= sx
    K[1, 1] *= sy
    K[0, 1] *= sx
    K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return K


def project(K: np.ndarray, points_cam: np.ndarray) -> np.ndarray:
    """Pinhole projection without any rounding.

    Args:
        K: ``[3, 3]`` intrinsics.
        points_cam: ``[..., 3]`` camera-frame points (any length unit), z > 0.

    Returns:
        ``[..., 2]`` float64 pixel coordinates (x, y), pixel centres at integers.
    """
    p = np.asarray(points_cam, dtype=np.float64)
    z = p[..., 2]
    x = K[0, 0] * p[..., 0] / z + K[0, 1] * p[..., 1] / z + K[0, 2]
    y = K[1, 1] * p[..., 1] / z + K[1, 2]
    return np.stack([x, y], axis=-1)


def look_at(
    eye: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, 0.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera extrinsics of a camera at ``eye`` looking at ``target`` (x right, y down, z ahead).

    Args:
        eye, target: ``[3]`` world mm.
        up: world up direction (must not be parallel to the viewing direction).

    Returns:
        ``(R [3, 3], t [3])`` float64 with ``X_cam = R @ X_world + t`` (mm).
    """
    eye = np.asarray(eye, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, dtype=np.float64))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return R, -R @ eye


@dataclass
class Camera:
    """A calibrated depth camera.

    Attributes:
        name: device name (e.g. ``"M72e"``).
        K: ``[3, 3]`` intrinsics of images of ``(width, height)`` px.
        R: ``[3, 3]`` world-to-camera rotation.
        t: ``[3]`` world-to-camera translation, mm (``X_cam = R @ X_world + t``).
        width, height: image size, px.
    """

    name: str
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int

    def to_cam(self, points_world: np.ndarray) -> np.ndarray:
        """``[..., 3]`` world mm -> ``[..., 3]`` camera mm."""
        return np.asarray(points_world, dtype=np.float64) @ self.R.T + self.t

    def with_image(self, K: np.ndarray, width: int, height: int) -> Camera:
        """The same pose with other intrinsics / image size."""
        return Camera(self.name, np.asarray(K, dtype=np.float64), self.R, self.t, int(width), int(height))

    @property
    def center(self) -> np.ndarray:
        """``[3]`` camera centre in the world, mm."""
        return -self.R.T @ self.t


# -------------------------------------------------------------------------------------- visibility
def joint_visibility(
    depth_mm: np.ndarray, xy: np.ndarray, z_mm: np.ndarray, slack_mm: np.ndarray
) -> np.ndarray:
    """Which joints a depth map shows: in frame and not behind something nearer than the joint's slack.

    Args:
        depth_mm: ``[H, W]`` depth, mm (0 or inf = nothing there: cannot hide a joint).
        xy: ``[K, 2]`` exact joint projections, px.
        z_mm: ``[K]`` joint depths, mm.
        slack_mm: ``[K]`` how far below the body surface each joint may lie and still count as seen.

    Returns:
        ``[K]`` bool. The test samples the pixel whose centre is nearest to the projection.
    """
    h, w = depth_mm.shape
    x, y = xy[:, 0], xy[:, 1]
    inside = (z_mm > 0) & (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)
    px = np.clip(np.floor(x + 0.5), 0, w - 1).astype(np.int64)
    py = np.clip(np.floor(y + 0.5), 0, h - 1).astype(np.int64)
    seen = depth_mm[py, px].astype(np.float64)
    occluded = (seen > 0) & np.isfinite(seen) & (seen < z_mm - slack_mm)
    return inside & ~occluded
