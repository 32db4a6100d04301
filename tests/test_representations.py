"""The other coordinate representations (issue 17): MSPN/Megvii, UDP (transform and offset maps), SimCC.

Round trips on noise-free targets with the tolerance each representation can reach, and cross-checks
against closed forms and OpenCV (the references' own blur).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from heatlit.codecs import (
    MegviiCodec,
    SimCCCodec,
    UDPOffsetCodec,
    gaussian_heatmaps,
    megvii_decode,
    megvii_heatmaps,
    simcc_decode,
    simcc_labels,
    to_heatmap,
    udp_offset_decode,
    udp_offset_maps,
    udp_to_heatmap,
    udp_to_input,
)
from heatlit.codecs.blur import blur_matrix, opencv_sigma, separable_blur

NAN = float("nan")


def _uniform(b, k, size, margin=0.0, seed=0):
    """Sub-pixel keypoints ``[b, k, n]`` uniform over the pixel-centre range, ``margin`` px from the borders."""
    g = torch.Generator().manual_seed(seed)
    extent = torch.tensor([s - 1 - 2 * margin for s in reversed(size)], dtype=torch.float32)
    return torch.rand(b, k, len(size), generator=g) * extent + margin


def _bad_maps(extra: tuple[int, ...] = ()) -> torch.Tensor:
    """Six ``[6, 1, *extra, 10, 12]`` inputs: NaN, one finite value among Infs, all negative, flat, corner, border."""
    h = torch.zeros(6, 1, *extra, 10, 12)
    h[0] = NAN
    h[1] = torch.inf
    h[1, ..., 3, 4] = 0.0
    h[2] = -torch.rand(*h.shape[2:]) - 0.1
    h[3] = 0.7
    h[4, ..., 0, 0] = 1.0
    h[5, ..., 9, 6] = 1.0
    return h


# ---------------------------------------------------------------- the blur both references use


@pytest.mark.parametrize("shape", [(3, 4), (7, 5), (16, 20)])
def test_separable_blur_is_opencvs(shape):
    rng = np.random.default_rng(0)
    m = rng.random(shape, dtype=np.float32)
    ours = separable_blur(torch.from_numpy(m)[None, None], 2, 11, border="reflect")[0, 0].numpy()
    np.testing.assert_allclose(ours, cv2.GaussianBlur(m, (11, 11), 0), atol=1e-6)
    # zero border: OpenCV on a zero-padded copy, cropped (the DARK/MSPN reference's modulation)
    padded = cv2.GaussianBlur(np.pad(m, 5), (11, 11), 0)[5:-5, 5:-5]
    ours = separable_blur(torch.from_numpy(m)[None, None], 2, 11, border="zeros")[0, 0].numpy()
    np.testing.assert_allclose(ours, padded, atol=1e-6)
    assert opencv_sigma(11) == pytest.approx(2.0) and opencv_sigma(23) == pytest.approx(3.8)


def test_blur_matrix_rows_sum_to_one_with_reflection_and_not_with_zeros():
    cpu = torch.device("cpu")
    reflect = blur_matrix(15, 11, None, "reflect", torch.float64, cpu)
    zeros = blur_matrix(15, 11, None, "zeros", torch.float64, cpu)
    torch.testing.assert_close(reflect.sum(1), torch.ones(15, dtype=torch.float64))
    # rows 5..9 see no border: both are the plain kernel there; rows nearer an edge lose mass with zeros
    torch.testing.assert_close(zeros[5:10], reflect[5:10])
    assert (zeros.sum(1)[[0, 1, 2, 3, 4, 10, 11, 12, 13, 14]] < 1 - 1e-4).all()
    with pytest.raises(ValueError, match="border"):
        blur_matrix(9, 11, None, "wrap", torch.float64, torch.device("cpu"))
    with pytest.raises(ValueError, match="odd"):
        separable_blur(torch.zeros(1, 1, 4, 4), 2, 4)


# ---------------------------------------------------------------- MSPN / Megvii


def test_megvii_target_is_opencvs_blurred_impulse_everywhere():
    # interior, near the left edge (reflected tail), at a corner, and a rounding tie (x = 7.5 -> pixel 8)
    kp = torch.tensor([[[10.3, 7.8], [0.2, 3.1], [19.4, 0.4], [7.5, 15.49]]])
    hm, w = megvii_heatmaps(kp, torch.ones(1, 4), (16, 20), kernel=11, peak=255.0)
    assert w.tolist() == [[1.0] * 4]
    for k, (qx, qy) in enumerate([(10, 8), (0, 3), (19, 0), (8, 15)]):
        impulse = np.zeros((16, 20), np.float32)
        impulse[qy, qx] = 1.0
        ref = cv2.GaussianBlur(impulse, (11, 11), 0)
        np.testing.assert_allclose(hm[0, k].numpy(), ref / ref[qy, qx] * 255.0, rtol=1e-5, atol=1e-4)


def test_megvii_interior_target_is_the_truncated_quantised_gaussian_2d_and_3d():
    for size in [(24, 32), (20, 22, 24)]:
        kp = _uniform(2, 5, size, margin=6)
        hm, _ = megvii_heatmaps(kp, torch.ones(2, 5), size, kernel=11)
        ref, _ = gaussian_heatmaps(kp, torch.ones(2, 5), size, 2.0, quantize=True, truncate=5 / 2.0)
        torch.testing.assert_close(hm, ref, atol=1e-6, rtol=0)


def test_megvii_weights_need_a_pixel_for_the_impulse():
    kp = torch.tensor([[[-0.5, 3.0], [-0.51, 3.0], [19.49, 3.0], [19.5, 3.0], [NAN, 3.0], [5.0, 5.0]]])
    hm, w = megvii_heatmaps(kp, torch.tensor([[1, 1, 1, 1, 1, 0]]), (16, 20))
    assert w.tolist() == [[1.0, 0.0, 1.0, 0.0, 0.0, 0.0]]
    assert (hm[0, [1, 3, 4, 5]] == 0).all() and hm[0, 0, 3, 0] == 1.0 and hm[0, 2, 3, 19] == 1.0


def test_megvii_round_trip_exact_pixel_inside_and_stated_error_at_the_edges():
    # Noise-free: the decoder returns the impulse's pixel q = floor(x + 0.5) exactly once q is more than
    # (k - 1) / 2 = 5 px from every edge (so the error to x is the quantisation, <= 0.5 px per axis).
    size = (32, 40)
    kp = _uniform(4, 17, size, margin=5.6)
    coords, scores = MegviiCodec().decode(MegviiCodec()(kp, torch.ones(4, 17), size)[0])
    assert torch.equal(coords, torch.floor(kp + 0.5)) and (scores == 1).all()
    assert (coords - kp).abs().max() <= 0.5
    # Along an edge: 0.25 px off q for 1 <= q <= 5 (lopsided reflected target + quarter shift), 1.25 px on
    # the edge pixel (the zero-border blur pulls inwards); the same at the far edge, mirrored.
    xs = torch.linspace(-0.49, 39.49, 801)
    kp = torch.stack([xs, torch.full_like(xs, 15.0)], -1)[None]
    coords, _ = megvii_decode(megvii_heatmaps(kp, torch.ones(1, 801), size)[0])
    q = torch.floor(kp + 0.5)[0, :, 0]
    err = (coords[0, :, 0] - q).abs()
    edge = torch.minimum(q, 39 - q)
    assert err[edge == 0].eq(1.25).all()
    assert err[(edge >= 1) & (edge <= 5)].max() == 0.25
    assert err[edge >= 6].max() == 0
    assert (coords[0, :, 1] == 15).all()


def test_megvii_3d_round_trip():
    size = (16, 18, 20)
    kp = _uniform(2, 3, size, margin=5.6)
    coords, _ = megvii_decode(megvii_heatmaps(kp, torch.ones(2, 3), size)[0])
    assert torch.equal(coords, torch.floor(kp + 0.5))


def test_megvii_decode_bad_input_is_finite_and_in_frame():
    coords, scores = megvii_decode(_bad_maps())
    assert torch.isfinite(coords).all() and (coords >= -0.5).all()
    assert (coords[..., 0] <= 11.5).all() and (coords[..., 1] <= 9.5).all()
    for i in (0, 1, 3):  # no peak: frame centre, score 0
        assert coords[i, 0].tolist() == [5.5, 4.5] and scores[i, 0] == 0
    assert scores[2, 0] == 0 and scores[4, 0] == 1.0
    assert megvii_decode(torch.zeros(0, 17, 8, 8))[0].shape == (0, 17, 2)
    with pytest.raises(ValueError, match=r"\[B, K, H, W\]"):
        megvii_decode(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="peak"):
        megvii_heatmaps(torch.zeros(1, 1, 2), torch.ones(1, 1), (8, 8), peak=0)


# ---------------------------------------------------------------- UDP: the transform


@pytest.mark.parametrize("stride", [4, 8])
def test_udp_transform_against_pixel_centre_convention_closed_form(stride):
    hm_size = (12, 10)  # (H, W)
    in_size = (hm_size[0] * stride, hm_size[1] * stride)
    xy = torch.rand(200, 2, dtype=torch.float64) * torch.tensor([in_size[1] - 1.0, in_size[0] - 1.0])
    diff = udp_to_heatmap(xy, in_size, hm_size) - to_heatmap(xy, stride)
    s = stride
    expected = (s - 1) / (2 * s) * (1 - 2 * xy / torch.tensor([in_size[1] - 1.0, in_size[0] - 1.0]))
    torch.testing.assert_close(diff, expected)
    # zero at the frame centre, (s - 1) / (2 s) heatmap px = (s - 1) / 2 input px at the first/last centre
    ends = torch.tensor(
        [[0.0, 0.0], [(in_size[1] - 1) / 2, (in_size[0] - 1) / 2], [in_size[1] - 1.0, in_size[0] - 1.0]]
    )
    d = udp_to_heatmap(ends, in_size, hm_size) - to_heatmap(ends, stride)
    bound = {4: 0.375, 8: 0.4375}[stride]
    torch.testing.assert_close(d, torch.tensor([[bound, bound], [0.0, 0.0], [-bound, -bound]]))
    # both are flip-consistent: x -> W - 1 - x in input and heatmap space alike
    flipped = torch.stack([in_size[1] - 1 - xy[:, 0], xy[:, 1]], -1)
    torch.testing.assert_close(
        udp_to_heatmap(flipped, in_size, hm_size)[:, 0],
        hm_size[1] - 1 - udp_to_heatmap(xy, in_size, hm_size)[:, 0],
    )
    torch.testing.assert_close(udp_to_input(udp_to_heatmap(xy, in_size, hm_size), in_size, hm_size), xy)


def test_udp_transform_passes_depth_through_and_rejects_one_pixel_axes():
    xyz = torch.tensor([[7.0, 3.0, 11.5]])
    out = udp_to_heatmap(xyz, (8, 16), (2, 4))
    assert out[0, 2] == 11.5 and out[0, 0] == pytest.approx(7 * 3 / 15)
    with pytest.raises(ValueError, match=">= 2"):
        udp_to_heatmap(xyz, (8, 16), (1, 4))


# ---------------------------------------------------------------- UDP: the combined target


def test_udp_offset_target_closed_form():
    kp = torch.tensor([[[5.3, 4.6]]])
    t, w = udp_offset_maps(kp, torch.ones(1, 1), (10, 12), radius=2.0)
    assert t.shape == (1, 1, 3, 10, 12) and w.tolist() == [[1.0]]
    ys, xs = torch.meshgrid(torch.arange(10.0), torch.arange(12.0), indexing="ij")
    disk = ((xs - 5.3) ** 2 + (ys - 4.6) ** 2 <= 4.0).float()
    torch.testing.assert_close(t[0, 0, 0], disk)
    torch.testing.assert_close(t[0, 0, 1], (5.3 - xs) / 2.0 * disk)
    torch.testing.assert_close(t[0, 0, 2], (4.6 - ys) / 2.0 * disk)
    # the reference radius: radius_factor * max(H, W) = 0.0546875 * 64 = 3.5 px
    t, _ = udp_offset_maps(kp, torch.ones(1, 1), (48, 64))
    ys, xs = torch.meshgrid(torch.arange(48.0), torch.arange(64.0), indexing="ij")
    torch.testing.assert_close(t[0, 0, 0], ((xs - 5.3) ** 2 + (ys - 4.6) ** 2 <= 3.5**2).float())


def test_udp_offset_weights():
    # off the frame but within the radius of pixel 0 (1.9 px): a target; 2.1 px: none. NaN, invisible: none.
    kp = torch.tensor([[[-1.9, 5.0], [-2.1, 5.0], [NAN, 1.0], [3.0, 3.0]]])
    t, w = udp_offset_maps(kp, torch.tensor([[1, 1, 1, 0]]), (10, 12), radius=2.0)
    assert w.tolist() == [[1.0, 0.0, 0.0, 0.0]]
    assert t[0, 0, 0, 5, 0] == 1 and t[0, 0, 0].sum() == 1 and t[0, 0, 1, 5, 0] == pytest.approx(-0.95)
    assert (t[0, 1:] == 0).all()


def test_udp_offset_round_trip_raw_is_exact_reference_is_biased():
    for size, r in [((24, 32), 3.5), ((8, 10, 12), 1.5)]:
        kp = _uniform(8, 17, size)
        targets, w = UDPOffsetCodec(radius=r)(kp, torch.ones(8, 17), size)
        assert (w == 1).all() and targets.shape == (8, 17, 1 + len(size), *size)
        coords, scores = udp_offset_decode(targets, radius=r, offset_kernel=1, border="zeros")
        assert (coords - kp).abs().max() < 1e-5, size
        assert (scores > 0).all()
    # The reference decoder (blurred offsets, reflecting border) on a 48x64 map: biased away from the edges
    # (offsets shrink towards the argmax), much worse near corners; exact where the keypoint is a pixel centre.
    size = (48, 64)
    codec = UDPOffsetCodec(radius=3.5)
    kp = _uniform(12, 17, size, margin=8.5)
    coords, _ = codec.decode(codec(kp, torch.ones(12, 17), size)[0])
    err = (coords - kp).norm(dim=-1)
    assert 0.1 < err.mean() < 0.3 and err.max() < 0.6  # measured: mean 0.19, max 0.46 px
    nearest = torch.round(kp)  # a keypoint on a pixel centre: a symmetric disk, blurred offsets stay exact
    coords, _ = codec.decode(codec(nearest, torch.ones(12, 17), size)[0])
    assert (coords - nearest).abs().max() < 1e-4


def test_udp_offset_decode_bad_input_and_checks():
    for options in ({}, {"offset_kernel": 1, "border": "zeros"}):
        coords, scores = udp_offset_decode(_bad_maps((3,)), radius=2.0, **options)
        assert torch.isfinite(coords).all() and (coords >= -0.5).all()
        assert (coords[..., 0] <= 11.5).all() and (coords[..., 1] <= 9.5).all()
        for i in (0, 1, 3):
            assert coords[i, 0].tolist() == [5.5, 4.5] and scores[i, 0] == 0
    nan_offsets = torch.zeros(1, 1, 3, 10, 12)
    nan_offsets[0, 0, 0, 4, 5] = 1.0
    nan_offsets[0, 0, 1:] = NAN
    coords, _ = udp_offset_decode(nan_offsets, radius=2.0, cls_kernel=1, offset_kernel=1)
    assert coords[0, 0].tolist() == [5.0, 4.0]  # non-finite offsets count as 0
    with pytest.raises(ValueError, match="1 \\+ 2 channels"):
        udp_offset_decode(torch.zeros(1, 1, 2, 10, 12), radius=2.0)
    with pytest.raises(ValueError, match="radius"):
        udp_offset_maps(torch.zeros(1, 1, 2), torch.ones(1, 1), (8, 8))  # 0.4375 px < sqrt(2)/2
    assert udp_offset_decode(torch.zeros(0, 5, 3, 8, 8), radius=2.0)[0].shape == (0, 5, 2)


# ---------------------------------------------------------------- SimCC


def test_simcc_gaussian_labels_closed_form_and_bin_convention():
    kp = torch.tensor([[[3.3, 1.8]]])
    (lx, ly), w = simcc_labels(kp, torch.ones(1, 1), (4, 6), split_ratio=2.0, sigma=0.75)
    assert lx.shape == (1, 1, 12) and ly.shape == (1, 1, 8) and w.tolist() == [[1.0]]
    # bin j is centred on x = (j + 0.5) / k - 0.5, so x sits at bin u = (x + 0.5) k - 0.5
    for label, x, n in ((lx, 3.3, 12), (ly, 1.8, 8)):
        u = (x + 0.5) * 2 - 0.5
        g = torch.exp(-((torch.arange(n) - u) ** 2) / (2 * 1.5**2))
        torch.testing.assert_close(label[0, 0], g / g.sum())
    (qx, _), _ = simcc_labels(kp, torch.ones(1, 1), (4, 6), 2.0, 0.75, quantize=True, normalize=False)
    assert qx[0, 0].argmax() == 7 and qx[0, 0, 7] == 1.0  # u = 7.1 -> bin 7


def test_simcc_one_hot_with_label_smoothing():
    (lx, ly), w = simcc_labels(
        torch.tensor([[[2.2, 0.0]]]), torch.ones(1, 1), (3, 5), 2.0, smoothing="standard", label_smoothing=0.1
    )
    assert lx[0, 0, 5] == pytest.approx(0.9) and lx[0, 0, 0] == pytest.approx(0.1 / 9)
    torch.testing.assert_close(lx.sum(-1), torch.ones(1, 1))
    assert ly[0, 0].argmax() == 1  # y = 0 -> u = 0.5 -> bin 1 (floor(u + 0.5))
    with pytest.raises(ValueError, match="label_smoothing"):
        simcc_labels(torch.zeros(1, 1, 2), torch.ones(1, 1), (3, 5), label_smoothing=0.1)


def test_simcc_in_heatmap_pixels_equals_input_pixels_at_ratio_over_stride():
    # heatlit's bins are its own pixel-centre mapping at stride 1/k, which composes: labels over heatmap px at
    # stride s with ratio k are, bin for bin, the labels over input px with ratio k/s (and sigma in input px).
    stride, k = 4, 8.0
    kp_in = _uniform(2, 5, (32, 48))
    hm, _ = simcc_labels(to_heatmap(kp_in, stride), torch.ones(2, 5), (8, 12), k, sigma=1.5)
    inp, _ = simcc_labels(kp_in, torch.ones(2, 5), (32, 48), k / stride, sigma=1.5 * stride)
    for a, b in zip(hm, inp):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("size", [(20, 40), (6, 8, 10)])
@pytest.mark.parametrize("k", [2.0, 3.0])
def test_simcc_round_trip(size, k):
    kp = _uniform(4, 17, size)
    codec = SimCCCodec(split_ratio=k, sigma=2.0, logits=False)
    labels, w = codec(kp, torch.ones(4, 17), size)
    assert (w == 1).all() and [t.shape[-1] for t in labels] == [int(s * k) for s in reversed(size)]
    coords, scores = codec.decode(labels)
    assert (coords - kp).abs().max() <= 0.5 / k + 1e-5  # argmax: half a bin
    assert (scores > 0).all()
    for logits, vectors in ((False, labels), (True, [torch.log(t) for t in labels])):
        coords, _ = simcc_decode(vectors, k, refine=True, logits=logits)
        assert (coords - kp).abs().max() < 1e-3  # one Newton step on a log-Gaussian is exact
    (qx, *rest), _ = simcc_labels(kp, torch.ones(4, 17), size, k, 2.0, quantize=True)
    coords, _ = simcc_decode([qx, *rest], k, refine=True, logits=False)
    assert (coords - kp).abs().max() <= 0.5 / k + 1e-5


def test_simcc_weights_and_bins():
    kp = torch.tensor([[[-0.5 - 6.0 - 0.01, 1.0], [-0.5 - 6.0 + 0.01, 1.0], [NAN, 1.0], [2.0, 2.0]]])
    _, w = simcc_labels(kp, torch.tensor([[1, 1, 1, 0]]), (4, 6), 2.0, sigma=2.0)
    assert w.tolist() == [[0.0, 1.0, 0.0, 0.0]]
    edge = torch.tensor([[[-0.51, 1.0], [-0.49, 1.0]]])
    _, w = simcc_labels(edge, torch.ones(1, 2), (4, 6), 2.0, smoothing="standard")
    assert w.tolist() == [[0.0, 1.0]]  # x = -0.51 is outside the frame, x = -0.49 inside
    with pytest.raises(ValueError, match="whole number"):
        simcc_labels(kp, torch.ones(1, 4), (5, 7), split_ratio=1.5)


def test_simcc_decode_bad_input():
    x = torch.zeros(5, 1, 12)
    y = torch.zeros(5, 1, 8)
    x[0], y[0] = NAN, NAN
    x[1, 0, 3], y[1, 0] = 1.0, torch.inf  # y has no finite evidence: centre on y, score 0
    x[2], y[2] = -1.0, -2.0  # flat and negative
    x[3, 0, 0], y[3, 0, 7] = 1.0, 2.0  # peaks on the first / last bin
    x[4, 0, 5], y[4, 0, 2] = -1.0, -0.5  # negative logits with a peak: kept, score 0
    x[4, 0, [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]] = -3.0
    y[4, 0, [0, 1, 3, 4, 5, 6, 7]] = -3.0
    coords, scores = simcc_decode([x, y], 2.0, refine=True)
    assert torch.isfinite(coords).all() and torch.isfinite(scores).all()
    assert coords[0, 0].tolist() == [2.5, 1.5] and scores[0, 0] == 0
    assert coords[1, 0].tolist() == [1.25, 1.5] and scores[1, 0] == 0
    assert coords[2, 0].tolist() == [2.5, 1.5] and scores[2, 0] == 0
    assert coords[3, 0].tolist() == [-0.25, 3.25] and scores[3, 0] == 1.0
    assert scores[4, 0] == 0 and coords[4, 0, 0] == pytest.approx(2.25)
    assert simcc_decode([torch.zeros(0, 3, 8), torch.zeros(0, 3, 6)])[0].shape == (0, 3, 2)
    with pytest.raises(ValueError, match="same B, K"):
        simcc_decode([torch.zeros(1, 3, 8), torch.zeros(1, 2, 6)])
    with pytest.raises(ValueError, match="2 or 3 vectors"):
        simcc_decode(torch.zeros(1, 3, 8))


# ---------------------------------------------------------------- codec objects


def test_codecs_encode_when_called_and_their_decoders_decode():
    from heatlit.codecs import MegviiDecoder, SimCCDecoder, UDPOffsetDecoder

    kp = _uniform(1, 2, (16, 16), margin=6)
    for codec, decoder in (
        (MegviiCodec(), MegviiDecoder()),
        (
            UDPOffsetCodec(radius=2.0, offset_kernel=1, border="zeros"),
            UDPOffsetDecoder(radius=2.0, offset_kernel=1, border="zeros"),
        ),
        (SimCCCodec(logits=False, refine=True), SimCCDecoder(logits=False, refine=True)),
    ):
        target, _ = codec(kp, torch.ones(1, 2), (16, 16))
        assert torch.equal(decoder(target)[0], codec.decode(target)[0])
        assert (decoder(target)[0] - kp).abs().max() <= 0.5
        assert type(codec).__name__ in repr(codec)
    with pytest.raises(ValueError, match="odd"):
        MegviiCodec(kernel=4)
    with pytest.raises(ValueError, match="smoothing"):
        SimCCCodec(smoothing="box")
    with pytest.raises(ValueError, match="border"):
        UDPOffsetCodec(border="wrap")
    assert math.isfinite(MegviiCodec(kernel=15).decode(torch.rand(1, 1, 8, 8))[0].sum())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_matches_cpu():
    size = (24, 32)
    kp = _uniform(4, 17, size)
    vis = torch.ones(4, 17)
    for codec in (MegviiCodec(), UDPOffsetCodec(), SimCCCodec(refine=True, logits=False)):
        target, w = codec(kp, vis, size)
        target_cuda, w_cuda = codec(kp.cuda(), vis.cuda(), size)
        flat = lambda t: torch.cat([x.flatten() for x in t]) if isinstance(t, tuple) else t.flatten()  # noqa: E731
        torch.testing.assert_close(flat(target_cuda).cpu(), flat(target), atol=1e-6, rtol=0)
        assert torch.equal(w_cuda.cpu(), w)
        torch.testing.assert_close(
            codec.decode(target_cuda)[0].cpu(), codec.decode(target)[0], atol=1e-4, rtol=0
        )
