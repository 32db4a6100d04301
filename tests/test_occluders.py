"""Textured occluders and per-channel colour jitter (the integral-regression report's augmentation)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from heatlit.data import AugmentConfig, SampleDataset
from heatlit.data import transforms as T
from tests.test_datamodule import FAKE, FakeDepthSource

NO_GEOMETRY = dict(
    flip_prob=0.0, scale=0.0, rotation_prob=0.0, depth_shift_m=0.0, brightness=0.0, contrast=0.0
)


def test_colour_jitter_gains_are_uniform_independent_and_per_channel():
    cfg = AugmentConfig(color_jitter=0.2, occluder_prob=0.0)
    gains = np.array(
        [T.sample_augmentation(cfg, np.random.default_rng(i), (32, 32)).channel_gains for i in range(4000)]
    )
    assert gains.shape == (4000, 3) and gains.min() >= 0.8 and gains.max() <= 1.2
    # U(0.8, 1.2): mean 1, sd 0.4 / sqrt(12) = 0.1155; standard errors 0.0018 and ~0.0013
    np.testing.assert_allclose(gains.mean(0), 1.0, atol=0.01)
    np.testing.assert_allclose(gains.std(0), 0.4 / np.sqrt(12), atol=0.006)
    quartiles = np.stack([((gains >= lo) & (gains < lo + 0.1)).mean(0) for lo in (0.8, 0.9, 1.0, 1.1)])
    np.testing.assert_allclose(quartiles, 0.25, atol=0.03)
    corr = np.corrcoef(gains.T)[np.triu_indices(3, 1)]
    assert np.abs(corr).max() < 0.06  # channels jitter independently
    rgb = np.full((4, 4, 3), 0.5, dtype=np.float32)
    np.testing.assert_allclose(T.scale_channels(rgb, (0.8, 1.0, 1.2))[0, 0], [0.4, 0.5, 0.6], rtol=1e-6)
    assert T.scale_channels(np.ones((2, 2, 3), np.float32), (1.2, 1.2, 1.2)).max() == 1.0
    with pytest.raises(ValueError, match="color_jitter"):
        AugmentConfig(color_jitter=1.5)


def test_new_options_leave_the_other_draws_as_they_were():
    base = AugmentConfig(occluder_prob=1.0)
    for i in range(20):
        a = T.sample_augmentation(base, np.random.default_rng(i), (48, 64))
        b = T.sample_augmentation(replace(base, color_jitter=0.2), np.random.default_rng(i), (48, 64))
        assert a == replace(b, channel_gains=None) and b.channel_gains is not None
        c = T.sample_augmentation(replace(base, occluder_texture=True), np.random.default_rng(i), (48, 64))
        assert (c.flip, c.scale, c.rotation_deg, c.contrast) == (a.flip, a.scale, a.rotation_deg, a.contrast)
        assert (c.occluders[0].x0, c.occluders[0].y1) == (a.occluders[0].x0, a.occluders[0].y1)
        assert all(o.textured for o in c.occluders) and not any(o.textured for o in a.occluders)


def test_procedural_textures_are_textured_and_seeded():
    kinds = set()
    for seed in range(30):
        tex = T.procedural_texture(24, 40, np.random.default_rng(seed))
        assert tex.shape == (24, 40) and tex.dtype == np.float32
        assert tex.min() == 0.0 and tex.max() == 1.0 and tex.std() > 0.1
        np.testing.assert_array_equal(tex, T.procedural_texture(24, 40, np.random.default_rng(seed)))
        kinds.add(int(np.random.default_rng(seed).integers(3)))
    assert kinds == {0, 1, 2}
    assert T.procedural_texture(1, 1, np.random.default_rng(0)).shape == (1, 1)


def test_textured_rgb_occluder_is_textured_not_constant():
    rgb = np.full((40, 60, 3), 0.3, dtype=np.float32)
    box = T.Occluder(10, 5, 40, 35, noise=False, textured=True)
    out = T.add_occluders(rgb, (box,), depth=False, rng=np.random.default_rng(3))
    patch = out[5:35, 10:40]
    assert patch.std() > 0.05 and len(np.unique(patch[..., 0])) > 20  # not one colour, not the mean colour
    assert np.abs(patch - 0.3).max() > 0.1 and (out[:5] == 0.3).all() and (rgb == 0.3).all()
    ellipse = T.add_occluders(rgb, (replace(box, ellipse=True),), depth=False, rng=np.random.default_rng(3))
    assert (ellipse[5, 10] == 0.3).all() and (ellipse[5, 39] == 0.3).all()  # the box's corners stay
    changed = (ellipse != 0.3).any(-1)[5:35, 10:40].mean()
    assert 0.6 < changed < 0.9  # about pi / 4 of the box


def test_textured_depth_occluder_is_a_surface_in_front():
    depth = np.zeros((40, 60, 1), dtype=np.float32)
    depth[:, 20:40] = 3.0  # a person at 3 m, missing depth elsewhere
    out = T.add_occluders(
        depth, (T.Occluder(15, 10, 45, 30, noise=False, textured=True),), True, np.random.default_rng(1)
    )
    patch = out[10:30, 15:45, 0]
    assert (patch > 0).all() and patch.max() < 3.0 - 0.2 + 0.05  # measured, and nearer than the person
    assert patch.std() > 0.003  # a relief of centimetres, not one flat depth
    assert (out[:10] == depth[:10]).all()


def test_labels_are_unchanged_by_occluders_and_jitter():
    """Same sample, same draw: occluders (flat or textured) and jitter change pixels, never the labels."""
    aug = dict(NO_GEOMETRY, occluder_prob=1.0, occluder_max_count=3, occluder_size=(0.3, 0.5))
    plain = SampleDataset(FakeDepthSource(), (48, 80), AugmentConfig(**dict(aug, occluder_prob=0.0)), seed=3)
    textured = SampleDataset(FakeDepthSource(), (48, 80), AugmentConfig(**aug, occluder_texture=True), seed=3)
    for i in range(4):
        a, b = plain[i], textured[i]
        for key in ("keypoints", "visible", "joints3d", "cam_K", "norm", "root_depth", "to_image"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        assert not np.array_equal(a["image"], b["image"])


class FakeRGBSource(FakeDepthSource):
    """The fake depth scene as a grey RGB image (depth in metres / 10 + 0.1 on every channel)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.description = replace(FAKE, in_channels=3)

    def __getitem__(self, index):
        raw = super().__getitem__(index)
        raw["image"] = np.repeat(raw["image"] / 10.0, 3, axis=2) + 0.1  # <= 0.55: no clipping at gain 1.2
        return raw


def test_rgb_jitter_reaches_the_input_per_channel():
    on = SampleDataset(
        FakeRGBSource(), (48, 80), AugmentConfig(**NO_GEOMETRY, occluder_prob=0.0, color_jitter=0.2), seed=5
    )
    off = SampleDataset(FakeRGBSource(), (48, 80), AugmentConfig(**NO_GEOMETRY, occluder_prob=0.0), seed=5)
    a, b = on[0]["image"], off[0]["image"]
    # undo the ImageNet normalisation: the jittered image is the plain one times one gain per channel
    to_rgb = lambda x: x * T.IMAGENET_STD[:, None, None] + T.IMAGENET_MEAN[:, None, None]  # noqa: E731
    ratio = to_rgb(a) / to_rgb(b)
    per_channel = ratio.reshape(3, -1)
    np.testing.assert_allclose(per_channel.std(1), 0.0, atol=1e-4)
    assert (
        np.ptp(per_channel.mean(1)) > 1e-3 and ((per_channel > 0.8 - 1e-4) & (per_channel < 1.2 + 1e-4)).all()
    )
    np.testing.assert_array_equal(on[0]["keypoints"], off[0]["keypoints"])
