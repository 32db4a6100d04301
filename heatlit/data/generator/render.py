"""A z-buffered depth renderer of capsules, ellipsoids and planes, and the depth sensor's artefacts.

A pixel's ray is ``(u, v, 1) * z`` with ``u = (x - cx) / fx``, ``v = (y - cy) / fy``, so the ray parameter
of a hit *is* the depth a depth sensor reports (distance along the optical axis, not along the ray).

Rendering is analytic ray casting, rasterised per primitive over the pixels of its projected bounding
box (numpy, vectorised over those pixels): no meshes, no per-pixel Python, and the ground truth is the
exact geometry that was drawn.
"""

from __future__ import annotations

import numpy as np

from heatlit.body.camera import DEPTH_UNIT_MM, MAX_DEPTH_MM, MIN_DEPTH_MM, Camera
from heatlit.data.generator.scene import Scene

_NEAR_MM = 50.0  # primitives closer than this to the camera plane get a whole-image bounding box


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


# ------------------------------------------------------------------------------------------- sensor
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
