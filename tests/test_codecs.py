"""Codecs against closed-form answers: encoders, every decoder, bad input, configs."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from hypothesis import given, settings

from heatlit.codecs import (
    GaussianEncoder,
    argmax_decode,
    com_decode,
    dark_decode,
    gaussian_heatmaps,
    mom_decode,
    multipeak_decode,
    soft_argmax,
    standard_decode,
    standard_top2_decode,
    strongest_peak,
    to_heatmap,
    to_input,
)
from tests.conftest import CONF_DIR, DEFAULT_DECODERS

SINGLE = {
    "argmax": argmax_decode,
    "standard": standard_decode,
    "standard_hrnet": lambda h: standard_decode(h, rule="hrnet"),
    "standard_top2": standard_top2_decode,
    "dark": dark_decode,
    "com": com_decode,
    "com_window": lambda h: com_decode(h, radius=3),
    "mom": mom_decode,
    "mom_window": lambda h: mom_decode(h, radius=3),
    "soft_argmax": soft_argmax,
    "multipeak_top": lambda h: strongest_peak(*multipeak_decode(h)),
}


def _interior(b, k, size, margin, seed=0):
    """Uniform sub-pixel keypoints ``[b, k, n]`` at least ``margin`` px from every border."""
    g = torch.Generator().manual_seed(seed)
    extent = torch.tensor([s - 1 - 2 * margin for s in reversed(size)], dtype=torch.float32)
    return torch.rand(b, k, len(size), generator=g) * extent + margin


# ---------------------------------------------------------------- encoders


def test_unquant_matches_closed_form():
    kp = torch.tensor([[[10.3, 7.8]]])
    hm, w = gaussian_heatmaps(kp, torch.ones(1, 1), (16, 24), sigma=2.0)
    assert hm.shape == (1, 1, 16, 24) and w.tolist() == [[1.0]]
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(24.0), indexing="ij")
    expected = torch.exp(-((xs - 10.3) ** 2 + (ys - 7.8) ** 2) / 8.0)
    torch.testing.assert_close(hm[0, 0], expected)


def test_quant_centres_on_rounded_coordinate():
    kp = torch.tensor([[[10.5, 7.49], [3.2, 4.7]]])
    hm, _ = gaussian_heatmaps(kp, torch.ones(1, 2), (16, 24), sigma=1.5, quantize=True)
    # floor(x + 0.5): 10.5 -> 11, 7.49 -> 7, 3.2 -> 3, 4.7 -> 5; the peak value is exactly 1 there.
    assert hm[0, 0, 7, 11] == 1.0 and hm[0, 1, 5, 3] == 1.0
    assert torch.equal(hm[0, 0, 7, 10], hm[0, 0, 7, 12]) and torch.equal(hm[0, 0, 6, 11], hm[0, 0, 8, 11])
    assert argmax_decode(hm)[0].tolist() == [[[11.0, 7.0], [3.0, 5.0]]]


def test_invisible_and_out_of_frame_get_zero_weight():
    sigma = 2.0
    kp = torch.tensor(
        [
            [
                [5.0, 5.0],
                [5.0, 5.0],
                [-0.5 - 3 * sigma - 0.01, 5.0],
                [-0.5 - 3 * sigma + 0.01, 5.0],
                [float("nan"), 1.0],
                [5.0, 16 - 0.5 + 3 * sigma + 0.01],
            ]
        ]
    )
    vis = torch.tensor([[1, 0, 1, 1, 1, 1]])
    hm, w = gaussian_heatmaps(kp, vis, (16, 16), sigma=sigma)
    assert w.tolist() == [[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]]
    assert hm[0, [1, 2, 4, 5]].abs().sum() == 0
    assert torch.isfinite(hm).all()
    assert hm[0, 3].max() > 0  # the box still touches the frame: a faint but real target


def test_per_keypoint_sigma_and_truncation():
    kp = torch.tensor([[[8.0, 8.0], [8.0, 8.0]]])
    hm, _ = gaussian_heatmaps(kp, torch.ones(1, 2), (17, 17), sigma=[1.0, 3.0], truncate=2.0)
    assert math.isclose(hm[0, 0, 8, 9].item(), math.exp(-0.5), rel_tol=1e-6)
    assert math.isclose(hm[0, 1, 8, 9].item(), math.exp(-1 / 18), rel_tol=1e-6)
    assert hm[0, 0, 8, 11] == 0 and hm[0, 0, 8, 10] > 0  # |d| = 3 > 2 sigma is cut, 2 is kept
    with pytest.raises(ValueError, match="sigma"):
        gaussian_heatmaps(kp, torch.ones(1, 2), (17, 17), sigma=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="sigma"):
        GaussianEncoder(sigma=0.0)


def test_encoder_3d_is_separable_product():
    kp = torch.tensor([[[4.2, 5.7, 3.1]]])
    vol, w = GaussianEncoder(sigma=1.5)(kp, torch.ones(1, 1), (8, 10, 12))
    assert vol.shape == (1, 1, 8, 10, 12) and w.item() == 1
    z, y, x = 3, 6, 4
    expected = math.exp(-((x - 4.2) ** 2 + (y - 5.7) ** 2 + (z - 3.1) ** 2) / (2 * 1.5**2))
    assert math.isclose(vol[0, 0, z, y, x].item(), expected, rel_tol=1e-5)


def test_encoder_rejects_bad_shapes():
    enc = GaussianEncoder()
    with pytest.raises(ValueError, match=r"\[B, K, n\]"):
        enc(torch.zeros(3, 2), torch.ones(3), (8, 8))
    with pytest.raises(ValueError, match="3D volumes"):
        enc(torch.zeros(1, 1, 2), torch.ones(1, 1), (4, 8, 8))
    with pytest.raises(ValueError, match="visible"):
        enc(torch.zeros(1, 2, 2), torch.ones(1, 3), (8, 8))


def test_empty_batch_encodes_to_empty():
    hm, w = GaussianEncoder()(torch.zeros(0, 17, 2), torch.zeros(0, 17), (8, 6))
    assert hm.shape == (0, 17, 8, 6) and w.shape == (0, 17)


def test_stride_mapping_round_trip_and_flip():
    xy = torch.tensor([[0.0, 0.0], [-0.5, -0.5], [319.5, 159.5], [123.4, 56.7]])
    hm = to_heatmap(xy, 4)
    torch.testing.assert_close(to_input(hm, 4), xy)
    assert hm[1].tolist() == [-0.5, -0.5] and hm[2].tolist() == [79.5, 39.5]  # extents align
    # flipping in input space (x -> 319 - x) is flipping in heatmap space (x -> 79 - x)
    torch.testing.assert_close(to_heatmap(319 - xy[:, :1], 4), 79 - hm[:, :1])


# ---------------------------------------------------------------- decoders: accuracy


def test_dark_recovers_unbiased_subpixel_coordinates():
    kp = _interior(8, 17, (48, 64), margin=8)
    hm, _ = gaussian_heatmaps(kp, torch.ones(8, 17), (48, 64), sigma=2.0)
    coords, scores = dark_decode(hm)
    assert (coords - kp).norm(dim=-1).max() < 0.01
    assert (scores > 0.9).all()


def test_dark_3d_recovers_volume_coordinates():
    kp = _interior(2, 5, (24, 24, 24), margin=8)
    vol, _ = gaussian_heatmaps(kp, torch.ones(2, 5), (24, 24, 24), sigma=2.0)
    assert (dark_decode(vol)[0] - kp).norm(dim=-1).max() < 0.01


def test_argmax_error_on_uniform_offsets_is_the_quantisation_error():
    # E|u| for u uniform on the unit square centred at 0 is (sqrt2 + ln(1 + sqrt2)) / 6 = 0.3826
    kp = _interior(64, 64, (32, 32), margin=6, seed=1)
    hm, _ = gaussian_heatmaps(kp, torch.ones(64, 64), (32, 32), sigma=2.0)
    err = (argmax_decode(hm)[0] - kp).norm(dim=-1).mean().item()
    assert abs(err - (math.sqrt(2) + math.log(1 + math.sqrt(2))) / 6) < 0.01


def test_quantised_targets_cost_dark_the_quantisation_error():
    # DARK decodes what it is given: a quantised target moves the answer to the rounded coordinate.
    kp = _interior(16, 32, (32, 32), margin=6, seed=2)
    hm, _ = gaussian_heatmaps(kp, torch.ones(16, 32), (32, 32), sigma=2.0, quantize=True)
    coords = dark_decode(hm)[0]
    torch.testing.assert_close(coords, torch.floor(kp + 0.5), atol=1e-3, rtol=0)


def test_standard_shifts_a_quarter_pixel_towards_higher_neighbour():
    hm = torch.zeros(1, 2, 9, 9)
    hm[0, 0, 4, 4], hm[0, 0, 4, 5], hm[0, 0, 3, 4] = 1.0, 0.6, 0.2  # right and up are higher
    hm[0, 1, 0, 4], hm[0, 1, 0, 3] = 1.0, 0.5  # on the top border: y is not shifted
    coords, scores = standard_decode(hm)
    assert coords.tolist() == [[[4.25, 3.75], [3.75, 0.0]]]
    assert scores.tolist() == [[1.0, 1.0]]


def test_soft_argmax_of_log_gaussian_is_exact_and_differentiable():
    kp = _interior(4, 6, (40, 48), margin=12, seed=3)
    hm, _ = gaussian_heatmaps(kp, torch.ones(4, 6), (40, 48), sigma=2.0)
    logits = torch.log(hm).requires_grad_(True)
    coords, _ = soft_argmax(logits, beta=1.0)
    assert (coords - kp).abs().max() < 1e-4
    coords.sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_soft_argmax_3d():
    kp = _interior(2, 3, (20, 20, 20), margin=7, seed=4)
    vol, _ = gaussian_heatmaps(kp, torch.ones(2, 3), (20, 20, 20), sigma=1.5)
    coords, _ = soft_argmax(torch.log(vol), beta=1.0)
    assert (coords - kp).abs().max() < 1e-3


def test_centre_of_mass_whole_map_and_window():
    kp = _interior(4, 6, (40, 48), margin=12, seed=5)
    hm, _ = gaussian_heatmaps(kp, torch.ones(4, 6), (40, 48), sigma=2.0)
    assert (com_decode(hm)[0] - kp).abs().max() < 1e-3
    # a distant bright blob drags the whole-map estimate but not the windowed one
    hm2 = hm.clone()
    hm2[..., 0:2, 0:2] = 0.5
    assert (com_decode(hm2)[0] - kp).norm(dim=-1).mean() > 1.0
    assert (com_decode(hm2, radius=6)[0] - kp).norm(dim=-1).max() < 0.05


@settings(max_examples=40, deadline=None)
@given(
    x=st.floats(0, 1),
    y=st.floats(0, 1),
    sigma=st.floats(1.0, 3.0),
    h=st.integers(24, 48),
    w=st.integers(24, 48),
)
def test_property_unquant_dark_round_trip(x, y, sigma, h, w):
    margin = 3 * sigma + 6
    kp = torch.tensor([[[margin + x * (w - 1 - 2 * margin), margin + y * (h - 1 - 2 * margin)]]])
    hm, weight = gaussian_heatmaps(kp, torch.ones(1, 1), (h, w), sigma=sigma)
    assert weight.item() == 1
    # the blur width follows the target width, as a user decoding sigma-s targets would set it
    kernel = 2 * int(3 * sigma) + 1
    coords, _ = dark_decode(hm, kernel=kernel, blur_sigma=sigma)
    assert (coords - kp).norm() < 0.01


@settings(max_examples=40, deadline=None)
@given(x=st.floats(-3, 40), y=st.floats(-3, 30), sigma=st.floats(0.5, 4.0), quantize=st.booleans())
def test_property_every_decoder_finite_inside_frame(x, y, sigma, quantize):
    kp = torch.tensor([[[x, y]]])
    hm, _ = gaussian_heatmaps(kp, torch.ones(1, 1), (28, 36), sigma=sigma, quantize=quantize)
    for name, fn in SINGLE.items():
        coords, scores = fn(hm)
        assert torch.isfinite(coords).all() and torch.isfinite(scores).all(), name
        assert (coords >= -0.5).all() and coords[..., 0] <= 35.5 and coords[..., 1] <= 27.5, name


# ---------------------------------------------------------------- decoders: bad input


def _bad_maps():
    h = torch.zeros(6, 1, 10, 12)
    h[0] = float("nan")
    h[1, 0, 3, 4] = float("inf")
    h[2] = -torch.rand(10, 12) - 0.1  # all negative
    h[3] = 0.7  # flat plateau
    h[4, 0, 0, 0] = 1.0  # corner
    h[5, 0, 9, 6], h[5, 0, 8, 6] = 1.0, 0.5  # bottom border
    return h


@pytest.mark.parametrize("name", list(SINGLE))
def test_bad_input_gives_finite_in_frame_answers(name):
    coords, scores = SINGLE[name](_bad_maps())
    assert coords.shape == (6, 1, 2) and scores.shape == (6, 1)
    assert torch.isfinite(coords).all() and torch.isfinite(scores).all()
    assert (coords >= -0.5).all() and (coords[..., 0] <= 11.5).all() and (coords[..., 1] <= 9.5).all()
    # no peak (NaN map, Inf-only evidence, flat): score 0 and the frame centre
    for i in (0, 1, 3):
        assert scores[i, 0] == 0
        assert coords[i, 0].tolist() == [5.5, 4.5]
    assert scores[2, 0] == 0  # negative everywhere: no evidence either
    if name in ("argmax", "standard", "standard_hrnet", "standard_top2", "dark", "multipeak_top"):
        assert (coords[4, 0] - torch.tensor([0.0, 0.0])).norm() < 0.5
        assert (coords[5, 0] - torch.tensor([6.0, 9.0])).norm() < 0.5


@pytest.mark.parametrize("name", list(SINGLE))
def test_empty_batch_and_wrong_shapes(name):
    coords, scores = SINGLE[name](torch.zeros(0, 17, 8, 8))
    assert coords.shape == (0, 17, 2) and scores.shape == (0, 17)
    coords, scores = SINGLE[name](torch.zeros(2, 0, 8, 8))
    assert coords.shape == (2, 0, 2)
    with pytest.raises(ValueError, match=r"\[B, K, H, W\]"):
        SINGLE[name](torch.zeros(8, 8))
    with pytest.raises(ValueError, match="empty spatial"):
        SINGLE[name](torch.zeros(1, 1, 0, 8))


def test_integer_heatmaps_are_accepted():
    hm = torch.zeros(1, 1, 5, 5, dtype=torch.uint8)
    hm[0, 0, 1, 3] = 200
    assert argmax_decode(hm)[0].tolist() == [[[3.0, 1.0]]]


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("host", [True, False], ids=["numpy", "torch"])
def test_central_differences_are_exact_on_quadratics(monkeypatch, n, host):
    """A quadratic's central differences are its exact gradient and Hessian, on both code paths."""
    from heatlit.codecs.dark import central_differences

    monkeypatch.setattr("heatlit.codecs.base.host_checks", lambda t: host)
    g = torch.Generator().manual_seed(3)
    m = 4
    b, c = (
        torch.randn(m, n, generator=g, dtype=torch.float64),
        torch.randn(m, n, n, generator=g, dtype=torch.float64),
    )
    hess = c + c.mT  # symmetric: f(d) = b.d + d^T hess d / 2
    grids = torch.meshgrid(*[torch.arange(-1.0, 2.0, dtype=torch.float64)] * n, indexing="ij")
    d = torch.stack([grid.flatten() for grid in reversed(grids)], -1)  # [3^n, n] offsets, x fastest
    f = (d @ b.mT).mT + 0.5 * torch.einsum("pi,mij,pj->mp", d, hess, d)  # [M, 3^n]
    out = central_differences(f.mT.contiguous(), n)
    torch.testing.assert_close(out[:n].mT, b, atol=1e-12, rtol=0)
    torch.testing.assert_close(out[n:].mT.reshape(m, n, n), hess, atol=1e-12, rtol=0)


def test_dark_skips_step_where_hessian_is_not_negative_definite():
    # log-values around the maximum at (7, 7): concave along x and y, but a mixed term so strong that
    # the Hessian is indefinite (det = 4 - 5^2 < 0). A Newton step there would jump; it must be skipped.
    logp = torch.tensor([[-0.01, -1.0, -10.0], [-1.0, 0.0, -0.5], [-10.0, -1.0, -0.01]])
    h = torch.zeros(1, 1, 15, 15)
    h[0, 0, 6:9, 6:9] = logp.exp()
    coords, _ = dark_decode(h, kernel=1)
    assert coords[0, 0].tolist() == [7.0, 7.0]
    h[0, 0, 6:9:2, 6:9:2] = math.exp(-3.0)  # no mixed term: negative definite, the step is taken
    coords, _ = dark_decode(h, kernel=1)
    assert coords[0, 0, 0] > 7.0


# ---------------------------------------------------------------- configs and devices


def test_every_codec_config_instantiates_and_round_trips():
    # soft_argmax_auto and dark_sigma read loss.decode_beta / encoding.sigma, so they only compose inside
    # a run config (see test_every_decoder_config_composes_in_a_run); the decoders of structured targets
    # (UDP offsets, SimCC) round-trip in test_representation_training
    other = {"soft_argmax_auto", "dark_sigma", "udp_offset", "udp_offset_raw", "simcc", "simcc_refine"}
    names = sorted(p.stem for p in (CONF_DIR / "decoder").glob("*.yaml") if p.stem not in other)
    assert {"argmax", "standard", "standard_top2", "dark", "com", "mom", "soft_argmax", "multipeak"} <= set(
        names
    )
    kp = _interior(2, 3, (32, 32), margin=10)
    with initialize_config_dir(str(CONF_DIR / "encoding"), version_base="1.3"):
        enc = instantiate(compose("unquant"))
    hm, _ = enc(kp, torch.ones(2, 3), (32, 32))
    for name in names:
        with initialize_config_dir(str(CONF_DIR / "decoder"), version_base="1.3"):
            decoder = instantiate(compose(name))
        out = decoder(torch.log(hm) if name == "soft_argmax" else hm)
        assert torch.isfinite(out[0]).all(), name
        coords, _ = strongest_peak(*out)
        integer = ("argmax", "standard", "standard_top2", "megvii", "multipeak_int", "multipeak_blur_int")
        tol = 0.71 if name in integer else 0.01
        assert (coords - kp).norm(dim=-1).max() < tol, name


def test_every_decoder_config_composes_in_a_run():
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["encoding.sigma=3.0", "+decoder@decoders.dark_sigma=dark_sigma"])
    assert set(DEFAULT_DECODERS) <= set(cfg.decoders)
    dark_sigma = instantiate(cfg.decoders.dark_sigma)
    assert dark_sigma.options == {"kernel": 17, "blur_sigma": 3.0}
    assert instantiate(cfg.decoders.dark).options == {"kernel": 11, "blur_sigma": None}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_matches_cpu():
    kp = _interior(4, 17, (48, 64), margin=4)
    hm, _ = gaussian_heatmaps(kp, torch.ones(4, 17), (48, 64))
    hm_cuda, _ = gaussian_heatmaps(kp.cuda(), torch.ones(4, 17).cuda(), (48, 64))
    torch.testing.assert_close(hm_cuda.cpu(), hm, atol=1e-6, rtol=0)
    for name, fn in SINGLE.items():
        torch.testing.assert_close(fn(hm_cuda)[0].cpu(), fn(hm)[0], atol=1e-4, rtol=0, msg=name)
    for modulation in ("none", "peaks", "map"):
        got, want = (
            multipeak_decode(hm_cuda, modulation=modulation),
            multipeak_decode(hm, modulation=modulation),
        )
        torch.testing.assert_close(got[0].cpu(), want[0], atol=1e-4, rtol=0)
        torch.testing.assert_close(got[1].cpu(), want[1], atol=1e-6, rtol=0)
