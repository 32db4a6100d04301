"""Pinhole depth cameras and a z-buffered depth renderer of capsules, ellipsoids and planes.

Geometry: world frame in mm, z up; camera frame x right, y down, z forward (OpenCV), pixel centres at
integer coordinates (``docs/CONTRACTS.md``). A pixel's ray is ``(u, v, 1) * z`` with
``u = (x - cx) / fx``, ``v = (y - cy) / fy``, so the ray parameter of a hit *is* the depth a depth sensor
reports (distance along the optical axis, not along the ray).

Rendering is analytic ray casting, rasterised per primitive over the pixels of its projected bounding
box (numpy, vectorised over those pixels): no meshes, no per-pixel Python, and the ground truth is the
exact geometry that was drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from heatlit.data import skeleton as sk

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
_NEAR_MM = 50.0  # primitives closer than this to the camera plane get a whole-image bounding box

LABEL_NONE, LABEL_FLOOR, LABEL_WALL, LABEL_PROP, LABEL_BODY = 0, 1, 2, 3, 8


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


# -------------------------------------------------------------------------------------- primitives
@dataclass
class Scene:
    """Primitives in world mm, each with a label (see ``LABEL_*``).

    Attributes:
        capsules: list of ``(a [3], b [3], radius, label)``: segment ``a-b`` swept by a sphere.
        ellipsoids: list of ``(center [3], axes [3, 3] (columns: unit axes), radii [3], label)``.
    """

    capsules: list = field(default_factory=list)
    ellipsoids: list = field(default_factory=list)

    def extend(self, other: Scene) -> Scene:
        self.capsules += other.capsules
        self.ellipsoids += other.ellipsoids
        return self


def _frame(up: np.ndarray, right_hint: np.ndarray) -> np.ndarray:
    """Orthonormal ``[3, 3]`` with columns (right, forward, up) from an up vector and a rough right."""
    up = up / np.linalg.norm(up)
    right = right_hint - np.dot(right_hint, up) * up
    norm = np.linalg.norm(right)
    right = right / norm if norm > 1e-9 else np.cross(up, [0.0, 1.0, 0.0])
    return np.stack([right, np.cross(up, right), up], axis=1)


def body_scene(joints: np.ndarray, body) -> Scene:
    """The primitives of one posed body.

    Args:
        joints: ``[18, 3]`` world mm.
        body: :class:`heatlit.data.motion.Body` (radii, height).

    Returns:
        :class:`Scene` of about 30 primitives labelled ``LABEL_BODY + k``; every joint lies inside one.
    """
    j = np.asarray(joints, dtype=np.float64)
    r, h = body.radii, body.height
    scene = Scene()
    cap = scene.capsules

    def label(k: int) -> int:
        return LABEL_BODY + k

    for side, arm, fore, hand, upleg, leg, foot, toe in (
        (0, sk.R_ARM, sk.R_FOREARM, sk.R_HAND, sk.R_UPLEG, sk.R_LEG, sk.R_FOOT, sk.R_TOE),
        (1, sk.L_ARM, sk.L_FOREARM, sk.L_HAND, sk.L_UPLEG, sk.L_LEG, sk.L_FOOT, sk.L_TOE),
    ):
        b = 10 * side
        cap.append((j[sk.NECK], j[arm], r["clavicle"], label(b + 1)))
        cap.append((j[arm], j[arm], r["shoulder"], label(b + 2)))
        cap.append((j[arm], j[fore], r["upper_arm"], label(b + 3)))
        cap.append((j[fore], j[hand], r["forearm"], label(b + 4)))
        direction = j[hand] - j[fore]
        direction /= max(np.linalg.norm(direction), 1e-9)
        cap.append((j[hand] + direction * 0.02 * h, j[hand] + direction * 0.06 * h, r["hand"], label(b + 5)))
        cap.append((j[upleg], j[leg], r["thigh"], label(b + 6)))
        cap.append((j[leg], j[foot], r["shank"], label(b + 7)))
        cap.append((j[foot], j[toe], r["foot"], label(b + 8)))
    right_chest = j[sk.R_ARM] - j[sk.L_ARM]
    right_hips = j[sk.R_UPLEG] - j[sk.L_UPLEG]
    # Chest: spans Spine1..Neck plus a margin, so the neck joint sits just under its top.
    spine = j[sk.NECK] - j[sk.SPINE1]
    chest_axes = _frame(spine, right_chest)
    rx, ry, _ = r["chest"]
    half = 0.5 * np.linalg.norm(spine) + 0.035 * h * body.girth**0.3
    scene.ellipsoids.append((j[sk.SPINE1] + 0.55 * spine, chest_axes, np.array([rx, ry, half]), label(20)))
    pelvis_axes = _frame(j[sk.SPINE1] - j[sk.HIPS], right_hips)
    scene.ellipsoids.append(
        (j[sk.HIPS] + 0.35 * (j[sk.SPINE1] - j[sk.HIPS]), pelvis_axes, np.asarray(r["pelvis"]), label(21))
    )
    head_up = j[sk.HEAD_END] - j[sk.NECK]
    head_axes = _frame(head_up, right_chest)
    hr = np.asarray(r["head"])
    # The head top sits 0.008 H above HeadEnd, so the head-top joint is inside the head.
    head_center = j[sk.HEAD_END] - head_axes[:, 2] * (hr[2] - 0.008 * h) + head_axes[:, 1] * 0.01 * h
    scene.ellipsoids.append((head_center, head_axes, hr, label(22)))
    cap.append((j[sk.NECK], head_center, r["neck"], label(23)))
    return scene


def stool_scene(center_xy: np.ndarray, height: float, radius: float = 190.0) -> Scene:
    """A round stool: a flat seat whose top is at ``height`` mm over ``center_xy`` and a central post."""
    c = np.array([center_xy[0], center_xy[1], height - 35.0])
    seat = (c, np.eye(3), np.array([radius, radius, 35.0]), LABEL_PROP)
    post = (np.array([c[0], c[1], 0.0]), c, 35.0, LABEL_PROP)
    return Scene(capsules=[post], ellipsoids=[seat])


# ------------------------------------------------------------------------------------- rasteriser
def _pixel_rays(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """``u [W]``, ``v [H]``: ray slopes of the pixel centres (zero skew assumed)."""
    K = camera.K
    u = (np.arange(camera.width) - K[0, 2]) / K[0, 0]
    v = (np.arange(camera.height) - K[1, 2]) / K[1, 1]
    return u, v


def _bbox(camera: Camera, lo: np.ndarray, hi: np.ndarray) -> tuple[int, int, int, int] | None:
    """Pixel window ``(x0, x1, y0, y1)`` (exclusive ends) covering a camera-frame box, None if off screen."""
    if hi[2] <= _NEAR_MM:
        return None
    if lo[2] <= _NEAR_MM:
        return 0, camera.width, 0, camera.height
    corners_x = np.array([lo[0], hi[0]])[:, None] / np.array([lo[2], hi[2]])[None, :]
    corners_y = np.array([lo[1], hi[1]])[:, None] / np.array([lo[2], hi[2]])[None, :]
    K = camera.K
    x0 = int(np.ceil(K[0, 0] * corners_x.min() + K[0, 2]))
    x1 = int(np.floor(K[0, 0] * corners_x.max() + K[0, 2])) + 1
    y0 = int(np.ceil(K[1, 1] * corners_y.min() + K[1, 2]))
    y1 = int(np.floor(K[1, 1] * corners_y.max() + K[1, 2])) + 1
    x0, x1 = max(x0, 0), min(x1, camera.width)
    y0, y1 = max(y0, 0), min(y1, camera.height)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, x1, y0, y1


def _hit_sphere(u, v, dd, c, r):
    """Depth of the first hit of rays ``(u, v, 1)`` with a sphere (inf where missed)."""
    dc = u * c[0] + v * c[1] + c[2]
    disc = dc * dc - dd * (c @ c - r * r)
    with np.errstate(invalid="ignore"):
        t = (dc - np.sqrt(disc)) / dd
    return np.where((disc >= 0) & (t > 0), t, np.inf)


def _hit_capsule(u, v, a, b, r):
    """Depth of the first hit with a capsule: the union of a finite cylinder and two end spheres."""
    dd = u * u + v * v + 1.0
    best = np.minimum(_hit_sphere(u, v, dd, a, r), _hit_sphere(u, v, dd, b, r))
    ba = b - a
    baba = ba @ ba
    if baba < 1e-9:
        return best
    bard = ba[0] * u + ba[1] * v + ba[2]
    baoa = -(ba @ a)
    rdoa = -(a[0] * u + a[1] * v + a[2])
    k2 = baba * dd - bard * bard
    k1 = baba * rdoa - baoa * bard
    k0 = baba * (a @ a) - baoa * baoa - r * r * baba
    h = k1 * k1 - k2 * k0
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-k1 - np.sqrt(h)) / k2
        y = baoa + t * bard
    ok = (h >= 0) & (k2 > 1e-12) & (t > 0) & (y > 0) & (y < baba)
    return np.minimum(best, np.where(ok, t, np.inf))


def _hit_ellipsoid(u, v, c, axes, radii):
    """Depth of the first hit with an ellipsoid (centre ``c``, unit axes as columns, radii)."""
    o = -(axes.T @ c) / radii
    d0 = (axes[0, 0] * u + axes[1, 0] * v + axes[2, 0]) / radii[0]
    d1 = (axes[0, 1] * u + axes[1, 1] * v + axes[2, 1]) / radii[1]
    d2 = (axes[0, 2] * u + axes[1, 2] * v + axes[2, 2]) / radii[2]
    qa = d0 * d0 + d1 * d1 + d2 * d2
    qb = o[0] * d0 + o[1] * d1 + o[2] * d2
    disc = qb * qb - qa * (o @ o - 1.0)
    with np.errstate(invalid="ignore"):
        t = (-qb - np.sqrt(disc)) / qa
    return np.where((disc >= 0) & (t > 0), t, np.inf)


def render_planes(
    camera: Camera, planes: list[tuple[np.ndarray, float, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Depth of infinite planes ``n . X + d = 0`` (world, mm), e.g. the floor and a wall.

    Args:
        camera: the view.
        planes: ``(n [3] unit normal, d mm, label)`` each.

    Returns:
        ``depth [H, W]`` float32 mm (inf where no plane is hit in front), ``label [H, W]`` uint8.
    """
    u, v = _pixel_rays(camera)
    u, v = u[None, :], v[:, None]
    depth = np.full((camera.height, camera.width), np.inf, dtype=np.float32)
    label = np.zeros((camera.height, camera.width), dtype=np.uint8)
    for n, d, lab in planes:
        n_c = camera.R @ np.asarray(n, dtype=np.float64)
        d_c = d - n_c @ camera.t
        denom = n_c[0] * u + n_c[1] * v + n_c[2]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -d_c / denom
        t = np.where(np.isfinite(t) & (t > 0), t, np.inf).astype(np.float32)
        closer = t < depth
        depth[closer] = t[closer]
        label[closer] = lab
    return depth, label


def render(
    camera: Camera, scene: Scene, background: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffered depth of a scene.

    Args:
        camera: the view (intrinsics for its own ``width x height``).
        scene: primitives in world mm.
        background: optional ``(depth, label)`` to draw over, e.g. from :func:`render_planes`.

    Returns:
        ``depth [H, W]`` float32 mm along the optical axis (inf where nothing is hit) and
        ``label [H, W]`` uint8 of the nearest primitive.
    """
    if background is None:
        depth = np.full((camera.height, camera.width), np.inf, dtype=np.float32)
        label = np.zeros((camera.height, camera.width), dtype=np.uint8)
    else:
        depth, label = background[0].copy(), background[1].copy()
    u_all, v_all = _pixel_rays(camera)

    def draw(window, hit_fn, lab):
        x0, x1, y0, y1 = window
        u, v = u_all[None, x0:x1], v_all[y0:y1, None]
        t = hit_fn(u, v)
        sub_d, sub_l = depth[y0:y1, x0:x1], label[y0:y1, x0:x1]
        closer = t < sub_d
        sub_d[closer] = t[closer]
        sub_l[closer] = lab

    for a, b, r, lab in scene.capsules:
        a_c, b_c = camera.to_cam(a), camera.to_cam(b)
        window = _bbox(camera, np.minimum(a_c, b_c) - r, np.maximum(a_c, b_c) + r)
        if window is not None:
            draw(window, lambda u, v, a_c=a_c, b_c=b_c, r=r: _hit_capsule(u, v, a_c, b_c, r), lab)
    for c, axes, radii, lab in scene.ellipsoids:
        c_c = camera.to_cam(c)
        axes_c = camera.R @ axes
        extent = np.sqrt(((axes_c * radii[None, :]) ** 2).sum(axis=1))
        window = _bbox(camera, c_c - extent, c_c + extent)
        if window is not None:
            draw(
                window,
                lambda u, v, c_c=c_c, axes_c=axes_c, radii=radii: _hit_ellipsoid(u, v, c_c, axes_c, radii),
                lab,
            )
    return depth, label


# -------------------------------------------------------------------------------- sensor and GT
def sensor_noise(
    depth_mm: np.ndarray,
    rng: np.random.Generator,
    rel_sigma: float = 0.003,
    edge_jump_mm: float = 50.0,
    edge_drop: float = 0.6,
    dropout: float = 0.002,
) -> np.ndarray:
    """Depth-sensor artefacts on a clean render.

    Gaussian noise with sigma proportional to depth; pixels at depth discontinuities (a 4-neighbour
    differs by more than ``edge_jump_mm + 5 %`` of the depth, or is missing) drop out with probability
    ``edge_drop``; any pixel drops out with probability ``dropout``; out-of-range pixels are missing.

    Args:
        depth_mm: ``[H, W]`` clean depth, mm (inf or 0 = nothing).
        rng: the sample's generator.

    Returns:
        ``[H, W]`` float32 mm, 0 = missing.
    """
    valid = np.isfinite(depth_mm) & (depth_mm >= MIN_DEPTH_MM) & (depth_mm <= MAX_DEPTH_MM)
    z = np.where(valid, depth_mm, 0.0).astype(np.float32)
    noise = rng.standard_normal(z.shape, dtype=np.float32) * (rel_sigma * z)
    pad = np.pad(z, 1, mode="edge")
    thresh = edge_jump_mm + 0.05 * z  # 5 %: a floor seen at a grazing angle is not an edge
    jump = np.zeros(z.shape, dtype=bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        nb = pad[dy : dy + z.shape[0], dx : dx + z.shape[1]]
        jump |= (np.abs(nb - z) > thresh) | (nb == 0)
    drop = (jump & (rng.random(z.shape, dtype=np.float32) < edge_drop)) | (
        rng.random(z.shape, dtype=np.float32) < dropout
    )
    out = z + noise
    out[drop | ~valid] = 0.0
    return out


def clean_depth(depth_mm: np.ndarray) -> np.ndarray:
    """``[H, W]`` float32 mm with the sensor's range applied (0 = missing), no noise."""
    valid = np.isfinite(depth_mm) & (depth_mm >= MIN_DEPTH_MM) & (depth_mm <= MAX_DEPTH_MM)
    return np.where(valid, depth_mm, 0.0).astype(np.float32)


def to_depth_units(depth_mm: np.ndarray) -> np.ndarray:
    """``[H, W]`` mm (0 = missing) -> uint16 in 100 um units, the HUMAN4D storage format."""
    units = np.rint(np.asarray(depth_mm, dtype=np.float64) / DEPTH_UNIT_MM)
    return np.where((units > 0) & (units <= 65535), units, 0).astype(np.uint16)


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
