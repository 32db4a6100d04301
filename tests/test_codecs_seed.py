"""The seed documents' decoders exactly: the reproduction's eq. 2 (standard_top2), HRNet's own border rule
for the quarter-pixel shift, and median of mass; closed-form answers and their degenerate cases."""

from __future__ import annotations

import math

import pytest
import torch

from heatlit.codecs import (
    MedianOfMassDecoder,
    StandardDecoder,
    StandardTop2Decoder,
    com_decode,
    gaussian_heatmaps,
    mom_decode,
    standard_decode,
    standard_top2_decode,
)

# ---------------------------------------------------------------- standard_top2 (eq. 2)


def test_top2_shifts_a_quarter_pixel_towards_the_second_highest_pixel():
    h = torch.zeros(1, 3, 9, 9)
    h[0, 0, 4, 4], h[0, 0, 4, 5] = 1.0, 0.6  # s is the right neighbour
    h[0, 1, 4, 4], h[0, 1, 6, 6] = 1.0, 0.6  # s is two pixels away diagonally: the whole map counts
    h[0, 2, 4, 4], h[0, 2, 3, 4], h[0, 2, 4, 3] = 1.0, 0.7, 0.69  # s is the higher of two neighbours
    coords, scores = standard_top2_decode(h)
    d = 0.25 / math.sqrt(2)
    torch.testing.assert_close(coords[0], torch.tensor([[4.25, 4.0], [4 + d, 4 + d], [4.0, 3.75]]))
    assert scores[0].tolist() == [1.0, 1.0, 1.0]


def test_top2_degenerate_cases():
    h = torch.zeros(1, 5, 9, 9)
    kp = torch.tensor([[[4.0, 4.0]]])
    h[0, 0] = gaussian_heatmaps(kp, torch.ones(1, 1), (9, 9), 1.5, quantize=True)[0][0, 0]  # 4 tied s
    h[0, 1, 2, 2], h[0, 1, 2, 6] = 1.0, 1.0  # tied maximum: m is the first, s the other
    h[0, 2, 5, 5] = 1.0  # every other pixel ties for s at 0: their centroid
    h[0, 3] = 0.4  # flat
    h[0, 4, 1, 1], h[0, 4, 0, 1], h[0, 4, 2, 1] = 1.0, 0.5, 0.5  # s == m: a symmetric pair
    coords, scores = standard_top2_decode(h)
    assert coords[0, 0].tolist() == [4.0, 4.0]  # symmetric tie: no direction, no shift
    assert coords[0, 1].tolist() == [2.25, 2.0]
    others = torch.tensor([(i % 9, i // 9) for i in range(81) if i != 5 * 9 + 5], dtype=torch.float32)
    towards = others.mean(0) - torch.tensor([5.0, 5.0])
    torch.testing.assert_close(coords[0, 2], torch.tensor([5.0, 5.0]) + 0.25 * towards / towards.norm())
    assert coords[0, 3].tolist() == [4.0, 4.0] and scores[0, 3] == 0  # the frame centre, score 0
    assert coords[0, 4].tolist() == [1.0, 1.0]
    one = standard_top2_decode(torch.full((1, 1, 1, 1), 2.0))  # a one-pixel map: flat, nothing to shift to
    assert one[0].tolist() == [[[0.0, 0.0]]] and one[1].tolist() == [[0.0]]


def test_top2_in_3d_and_as_a_decoder_object():
    v = torch.zeros(1, 1, 6, 7, 8)
    v[0, 0, 3, 3, 4], v[0, 0, 4, 3, 4] = 1.0, 0.8  # s one voxel deeper (z + 1)
    coords, _ = StandardTop2Decoder()(v)
    assert coords[0, 0].tolist() == [4.0, 3.0, 3.25]
    assert StandardTop2Decoder(shift=0.5)(v)[0][0, 0].tolist() == [4.0, 3.0, 3.5]


# ---------------------------------------------------------------- standard: HRNet's exact rule


def test_hrnet_rule_shifts_both_axes_or_none_with_an_asymmetric_margin():
    h = torch.zeros(1, 4, 9, 10)
    h[0, 0, 4, 1], h[0, 0, 4, 2], h[0, 0, 5, 1] = 1.0, 0.5, 0.5  # px = 1: per-axis shifts, hrnet does not
    h[0, 1, 4, 8], h[0, 1, 4, 7], h[0, 1, 3, 8] = 1.0, 0.5, 0.5  # px = W - 2: both shift
    h[0, 2, 7, 5], h[0, 2, 7, 6], h[0, 2, 6, 5] = 1.0, 0.5, 0.5  # py = H - 2: both shift
    h[0, 3, 1, 5], h[0, 3, 1, 6], h[0, 3, 2, 5] = 1.0, 0.5, 0.5  # py = 1: hrnet leaves x alone as well
    per_axis, _ = standard_decode(h)
    hrnet, _ = StandardDecoder(rule="hrnet")(h)
    assert per_axis[0].tolist() == [[1.25, 4.25], [7.75, 3.75], [5.25, 6.75], [5.25, 1.25]]
    assert hrnet[0].tolist() == [[1.0, 4.0], [7.75, 3.75], [5.25, 6.75], [5.0, 1.0]]
    v = torch.zeros(1, 1, 5, 5, 5)
    v[0, 0, 1, 2, 2], v[0, 0, 2, 2, 2] = 1.0, 0.5  # pz = 1 in a 3D volume: no shift on any axis
    assert StandardDecoder(rule="hrnet")(v)[0][0, 0].tolist() == [2.0, 2.0, 1.0]
    assert standard_decode(v)[0][0, 0].tolist() == [2.0, 2.0, 1.25]
    with pytest.raises(ValueError, match="rule"):
        StandardDecoder(rule="both")


# ---------------------------------------------------------------- median of mass


def test_mom_spreads_each_pixel_over_its_extent():
    m = torch.zeros(1, 4, 3, 6)
    m[0, 0, 1, 2] = 1.0  # one pixel: its centre
    m[0, 1, 1, 3], m[0, 1, 1, 4] = 1.0, 1.0  # two equal pixels: the edge between them
    m[0, 2, 1, 0], m[0, 2, 1, 1] = 1.0, 3.0  # total 4, half 2: 1 from pixel 0, 1/3 of pixel 1
    m[0, 3, 0, :] = torch.tensor([2.0, -5.0, 0.0, 0.0, 0.0, 2.0])  # negative mass does not count; the
    # cumulative mass sits at one half from x = 0.5 to 4.5: the middle of that gap
    coords, scores = mom_decode(m)
    torch.testing.assert_close(
        coords[0], torch.tensor([[2.0, 1.0], [3.5, 1.0], [0.5 + 1 / 3, 1.0], [2.5, 0.0]])
    )
    assert scores[0].tolist() == [1.0, 1.0, 3.0, 2.0]
    flipped, _ = mom_decode(m.flip(-1))  # mirroring the map mirrors the answer
    torch.testing.assert_close(flipped[0, :, 0], 5 - coords[0, :, 0])


def test_mom_of_gaussians_2d_and_3d():
    kp = torch.tensor([[[10.3, 12.7], [20.0, 20.5], [15.25, 8.8]]])
    maps, _ = gaussian_heatmaps(kp, torch.ones(1, 3), (32, 32), 2.0)
    err = (mom_decode(maps)[0] - kp).abs()
    assert err.max() < 0.01  # the pixel-constant spread costs a few thousandths of a pixel
    assert err[0, 1].max() < 1e-5  # symmetric about a pixel centre / edge: exact
    vk = torch.tensor([[[7.0, 8.5, 6.0], [9.3, 7.6, 8.2]]])
    vol, _ = gaussian_heatmaps(vk, torch.ones(1, 2), (16, 18, 20), 1.5)
    got = MedianOfMassDecoder()(vol)[0]
    assert (got - vk).abs().max() < 0.01 and (got[0, 0] - vk[0, 0]).abs().max() < 1e-5


def test_mom_resists_a_far_blob_better_than_com_and_has_a_window():
    kp = torch.tensor([[[30.4, 20.6]]])
    maps, _ = gaussian_heatmaps(kp, torch.ones(1, 1), (40, 48), 2.0)
    maps[..., 0:3, 0:3] = 0.3  # a blob far from the peak
    com_err = (com_decode(maps)[0] - kp).norm()
    mom_err = (mom_decode(maps)[0] - kp).norm()
    assert mom_err < com_err / 2
    assert (mom_decode(maps, radius=6)[0] - kp).norm() < 0.02
    with pytest.raises(ValueError, match="radius"):
        mom_decode(maps, radius=-1)


def test_mom_without_positive_mass_falls_back_to_the_argmax():
    h = -torch.rand(1, 1, 6, 7) - 0.5
    h[0, 0, 2, 5] = -0.1
    coords, scores = mom_decode(h)
    assert coords[0, 0].tolist() == [5.0, 2.0] and scores[0, 0] == 0
