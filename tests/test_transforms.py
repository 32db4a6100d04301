"""Affine crop / flip / rotation and photometric transforms of `heatlit.data.transforms`."""

from __future__ import annotations

import numpy as np
import pytest

from heatlit.data import transforms as T


def _blob(shape, centre, sigma=2.0):
    """A smooth bright dot ``[H, W, 1]`` at sub-pixel ``centre`` (x, y), pixel centres at integers."""
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    d2 = (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2
    return np.exp(-d2 / (2 * sigma**2)).astype(np.float32)[..., None]


def _centroid(image):
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    w = image[..., 0].astype(np.float64)
    return np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])


def test_fit_aspect_only_grows():
    np.testing.assert_allclose(T.fit_aspect(np.array([30.0, 100.0]), (256, 192)), [75.0, 100.0])
    np.testing.assert_allclose(T.fit_aspect(np.array([120.0, 100.0]), (256, 192)), [120.0, 160.0])


def test_whole_image_box_is_identity():
    h, w = 80, 160
    m = T.box_to_input_affine(np.array([(w - 1) / 2, (h - 1) / 2]), np.array([w, h]), (h, w))
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-12)


def test_box_extent_lands_on_input_frame():
    centre, size, (h, w) = np.array([50.3, 70.1]), np.array([40.0, 80.0]), (64, 32)
    m = T.box_to_input_affine(centre, size, (h, w))
    corners = np.array([centre - size / 2, centre + size / 2])
    np.testing.assert_allclose(T.affine_points(m, corners), [[-0.5, -0.5], [w - 0.5, h - 0.5]], atol=1e-9)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("rotation,zoom", [(0.0, 1.0), (23.0, 0.8), (-41.0, 1.3)])
def test_affine_moves_image_and_keypoints_alike(rotation, zoom, flip):
    """A dot drawn at a keypoint, warped, has its centroid at the transformed keypoint."""
    h0, w0, (h, w) = 90, 120, (64, 48)
    kp = np.array([61.3, 47.8])
    m = T.box_to_input_affine(np.array([58.0, 45.0]), np.array([60.0, 70.0]) * zoom, (h, w), rotation, flip)
    warped = T.warp_image(_blob((h0, w0), kp), m, (h, w), nearest=False)
    assert warped.shape == (h, w, 1)
    assert np.abs(_centroid(warped) - T.affine_points(m, kp)).max() < 0.5
    assert np.abs(_centroid(warped) - T.affine_points(m, kp)).max() < 0.1  # in practice much tighter


def test_flip_is_mirror_of_input_frame():
    h, w = 8, 12
    c, s = np.array([20.0, 10.0]), np.array([30.0, 20.0])
    plain = T.box_to_input_affine(c, s, (h, w), 10.0)
    flipped = T.box_to_input_affine(c, s, (h, w), 10.0, flip=True)
    pts = np.random.default_rng(0).uniform(0, 40, size=(5, 2))
    a, b = T.affine_points(plain, pts), T.affine_points(flipped, pts)
    np.testing.assert_allclose(b[:, 0], w - 1 - a[:, 0], atol=1e-12)
    np.testing.assert_allclose(b[:, 1], a[:, 1], atol=1e-12)
    image = np.random.default_rng(1).random((h, w, 1)).astype(np.float32)
    ident = np.array([[1.0, 0, 0], [0, 1, 0]])
    mirror = T.box_to_input_affine(np.array([(w - 1) / 2, (h - 1) / 2]), np.array([w, h]), (h, w), flip=True)
    np.testing.assert_array_equal(T.warp_image(image, mirror, (h, w), True), image[:, ::-1])
    np.testing.assert_array_equal(T.warp_image(image, ident, (h, w), True), image)


def test_invert_round_trip():
    rng = np.random.default_rng(3)
    for _ in range(20):
        m = T.box_to_input_affine(
            rng.uniform(0, 640, 2),
            rng.uniform(20, 400, 2),
            (256, 192),
            rng.uniform(-45, 45),
            bool(rng.random() < 0.5),
        )
        pts = rng.uniform(-100, 700, size=(17, 2))
        back = T.affine_points(T.invert_affine(m), T.affine_points(m, pts))
        assert np.abs(back - pts).max() < 1e-4


def test_affine_scale_is_length_ratio():
    m = T.box_to_input_affine(np.array([10.0, 10.0]), np.array([50.0, 100.0]), (64, 32), 33.0, True)
    a, b = T.affine_points(m, np.array([[0.0, 0.0], [3.0, 4.0]]))
    assert T.affine_scale(m) == pytest.approx(np.linalg.norm(b - a) / 5.0)


def test_in_frame():
    pts = np.array([[-0.5, 0.0], [-0.51, 0.0], [9.49, 4.0], [9.5, 4.0], [3.0, 4.5]])
    np.testing.assert_array_equal(T.in_frame(pts, (5, 10)), [True, False, True, False, False])
    pts3 = np.array([[1.0, 1.0, -0.6], [1.0, 1.0, 2.4]])
    np.testing.assert_array_equal(T.in_frame(pts3, (3, 5, 10)), [False, True])


def test_depth_warp_nearest_invents_no_depths():
    rng = np.random.default_rng(0)
    depth = np.where(rng.random((40, 60, 1)) < 0.5, 0.0, rng.choice([1.5, 3.0, 4.2], size=(40, 60, 1)))
    m = T.box_to_input_affine(np.array([30.0, 20.0]), np.array([40.0, 20.0]), (32, 64), 17.0)
    out = T.warp_image(depth.astype(np.float32), m, (32, 64), nearest=True)
    assert set(np.unique(out)) <= {0.0, np.float32(1.5), np.float32(3.0), np.float32(4.2)}


def test_photometric():
    depth = np.array([[[0.0], [2.0]]], dtype=np.float32)
    np.testing.assert_allclose(T.shift_depth(depth, 0.3)[..., 0], [[0.0, 2.3]])
    rgb = np.full((4, 4, 3), 0.5, dtype=np.float32)
    np.testing.assert_allclose(T.adjust_rgb(rgb, 0.1, 1.2), 0.7)
    assert T.adjust_rgb(rgb, 0.9, 1.5).max() == 1.0
    norm = T.normalize_input(depth, True, 3.0, 2.0)
    assert norm.shape == (1, 1, 2)
    np.testing.assert_allclose(norm[0, 0], [-1.5, -0.5])
    np.testing.assert_allclose(
        T.normalize_input(rgb, False, 0, 1)[:, 0, 0], (0.5 - T.IMAGENET_MEAN) / T.IMAGENET_STD
    )


def test_occluders_fill_background():
    rng = np.random.default_rng(0)
    occ = (T.Occluder(1, 2, 4, 5, noise=False), T.Occluder(5, 0, 8, 3, noise=True))
    depth = np.full((10, 10, 1), 2.0, dtype=np.float32)
    out = T.add_occluders(depth, occ, depth=True, rng=rng)
    assert (out[2:5, 1:4] == 0).all() and (out[0:3, 5:8] == 0).all() and (out == 0).sum() == 18
    assert (depth == 2.0).all()  # input untouched
    rgb = np.zeros((10, 10, 3), dtype=np.float32)
    rgb[:5] = 1.0
    out = T.add_occluders(rgb, occ, depth=False, rng=rng)
    np.testing.assert_allclose(out[2:5, 1:4], 0.5)  # mean colour
    assert out[0:3, 5:8].std() > 0.1  # noise


def test_sample_augmentation_off_and_seeded():
    assert T.sample_augmentation(None, np.random.default_rng(0), (64, 48)) == T.AugmentParams()
    off = T.AugmentConfig(enabled=False)
    assert T.sample_augmentation(off, np.random.default_rng(0), (64, 48)) == T.AugmentParams()
    cfg = T.AugmentConfig(occluder_prob=1.0)
    a = T.sample_augmentation(cfg, np.random.default_rng(5), (64, 48))
    b = T.sample_augmentation(cfg, np.random.default_rng(5), (64, 48))
    c = T.sample_augmentation(cfg, np.random.default_rng(6), (64, 48))
    assert a == b and a != c
    assert 1 <= len(a.occluders) <= cfg.occluder_max_count
    for o in a.occluders:
        assert 0 <= o.x0 < o.x1 <= 48 and 0 <= o.y0 < o.y1 <= 64
    with pytest.raises(ValueError, match="occluder_size"):
        T.AugmentConfig(occluder_size=(0.5, 0.2))
