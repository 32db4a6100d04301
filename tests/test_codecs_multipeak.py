"""The multi-peak decoder: the single-peak contract with a peak axis, closed-form crowded maps, the fast
path against the definition, bad input."""

from __future__ import annotations

import pytest
import torch

from heatlit.codecs import MultiPeakDecoder, gaussian_heatmaps, multipeak_decode, strongest_peak
from heatlit.codecs.coords import unravel
from heatlit.codecs.multipeak import exact_candidates, window_max


def _people(points, size, sigma=2.0, amps=None):
    """One channel holding several Gaussians (their maximum, as bottom-up targets): ``[1, 1, *size]``."""
    kp = torch.tensor(points, dtype=torch.float32)[None]
    maps, _ = gaussian_heatmaps(kp, torch.ones(1, len(points)), size, sigma)
    if amps is not None:
        maps = maps * torch.tensor(amps).reshape(1, -1, *([1] * len(size)))
    return maps.amax(1, keepdim=True)


def test_contract_peak_axis_order_and_padding():
    truth = [[10.3, 12.7], [40.6, 20.2], [25.0, 5.5]]
    maps = _people(truth, (32, 56), amps=[1.0, 0.8, 0.6])
    coords, scores = multipeak_decode(maps, max_peaks=5, threshold=0.1)
    assert coords.shape == (1, 1, 5, 2) and scores.shape == (1, 1, 5)
    torch.testing.assert_close(coords[0, 0, :3], torch.tensor(truth), atol=1e-3, rtol=0)
    ints = coords[0, 0, :3].round().long()
    assert torch.equal(scores[0, 0, :3], maps[0, 0, ints[:, 1], ints[:, 0]])  # the map at the peak pixel
    assert scores[0, 0, 3:].tolist() == [0.0, 0.0]  # padding: score 0 ...
    assert torch.equal(coords[0, 0, 3:], coords[0, 0, :1].expand(2, 2))  # ... at slot 0's coordinate
    single = strongest_peak(coords, scores)
    assert single[0].shape == (1, 1, 2) and single[1].tolist() == [[scores[0, 0, 0].item()]]
    dec = MultiPeakDecoder(max_peaks=5)
    assert dec.dims == (2, 3) and torch.equal(dec(maps)[0], coords)


def test_no_peak_above_threshold_keeps_the_refined_maximum_in_slot_0():
    maps = _people([[7.3, 9.6]], (20, 24)) * 0.05
    coords, scores = multipeak_decode(maps, max_peaks=3, threshold=0.1)
    assert scores.abs().sum() == 0
    torch.testing.assert_close(coords[0, 0], torch.tensor([[7.3, 9.6]] * 3), atol=1e-3, rtol=0)


def test_close_peaks_and_the_nms_window():
    maps = _people([[10.0, 10.0], [13.0, 10.0]], (20, 24), sigma=1.0, amps=[1.0, 0.8])  # 3 px apart
    _, s5 = multipeak_decode(maps, max_peaks=4, nms_kernel=5)
    _, s9 = multipeak_decode(maps, max_peaks=4, nms_kernel=9)
    assert (s5[0, 0] > 0).sum() == 2 and (s9[0, 0] > 0).sum() == 1  # a window wider than their distance
    with pytest.raises(ValueError, match="nms_kernel"):
        multipeak_decode(maps, nms_kernel=1)


def test_one_peak_per_plateau_and_threshold():
    h = torch.zeros(1, 2, 20, 20)
    h[0, 0, 4:12, 3:14] = 0.9  # a plateau wider than the NMS window: still one peak
    h[0, 0, 16, 16] = 0.5
    h[0, 1, 5, 5] = 0.05  # below threshold
    coords, scores = multipeak_decode(h, max_peaks=5, threshold=0.1, nms_kernel=3)
    assert (scores[0, 0] > 0).sum() == 2 and (scores[0, 1] > 0).sum() == 0
    assert scores[0, 0, 0] == pytest.approx(0.9) and scores[0, 0, 1] == pytest.approx(0.5)
    assert 3 <= coords[0, 0, 0, 0] <= 13 and 4 <= coords[0, 0, 0, 1] <= 11


@pytest.mark.parametrize("size", [(13, 17), (6, 7, 9)], ids=["2d", "3d"])
def test_fast_path_equals_the_definition(size):
    """Random maps, half of them rounded so that plateaus and ties abound: the decoder's peaks are exactly
    the definition's (window maxima, one per 8-connected plateau, the top P over the whole map)."""
    g = torch.Generator().manual_seed(0)
    for trial in range(6):
        h = torch.randn(2, 3, *size, generator=g)
        if trial % 2:
            h = torch.round(h * 2) / 2
        for nms in (3, 5):
            p = 1 + trial * 2
            ref_values, ref_index = exact_candidates(h, p, nms)
            coords, scores = multipeak_decode(h, max_peaks=p, threshold=0.0, nms_kernel=nms, refine=False)
            real = ref_values > 0
            assert torch.equal(torch.where(real, ref_values, 0), scores)
            # equal values at the P-th place may be chosen either way; all others must be the same pixels
            last = torch.where(real, ref_values, torch.inf).amin(-1, keepdim=True)
            fixed = (real & (ref_values > last))[..., None]
            ref_xyz = unravel(ref_index, size).to(coords.dtype)
            assert torch.equal(torch.where(fixed, ref_xyz, 0), torch.where(fixed, coords, 0))


def test_window_max_matches_max_pooling():
    x = torch.randn(2, 3, 11, 9)
    for k in (3, 5, 7, 9):
        pooled = torch.nn.functional.max_pool2d(x.reshape(6, 1, 11, 9), k, 1, k // 2).reshape(x.shape)
        assert torch.equal(window_max(x, k), pooled)


def test_3d_volumes_and_the_modulation_choices():
    vol = _people([[4.2, 5.7, 3.1], [12.6, 9.4, 8.8]], (12, 14, 16), sigma=1.5)
    coords, scores = multipeak_decode(vol, max_peaks=3)
    assert coords.shape == (1, 1, 3, 3) and (scores[0, 0] > 0).sum() == 2
    assert (coords[0, 0, :2] - torch.tensor([[4.2, 5.7, 3.1], [12.6, 9.4, 8.8]])).norm(dim=-1).max() < 1e-3
    maps = _people([[10.3, 12.7], [40.6, 20.2]], (32, 56))
    coords, scores = multipeak_decode(maps, max_peaks=3, threshold=0.1, modulation="map")
    # the modulated peak of a sigma-2 target blurred at sigma 2 is ~0.5; its centre does not move
    assert 0.4 < scores[0, 0, 0] < 0.55 and (scores[0, 0] > 0).sum() == 2
    assert (coords[0, 0, :2] - torch.tensor([[10.3, 12.7], [40.6, 20.2]])).norm(dim=-1).max() < 0.02
    coords, _ = multipeak_decode(maps, max_peaks=3, modulation="peaks")  # single-peak DARK per peak
    assert (coords[0, 0, :2] - torch.tensor([[10.3, 12.7], [40.6, 20.2]])).norm(dim=-1).max() < 1e-3


def test_bad_input_empty_and_options():
    h = torch.zeros(5, 1, 10, 12)
    h[0] = float("nan")
    h[1, 0, 3, 4] = float("inf")
    h[2] = 0.7  # flat
    h[3, 0, 0, 0] = 1.0  # corner
    h[4] = -torch.rand(10, 12)  # all negative
    coords, scores = multipeak_decode(h, max_peaks=200, threshold=0.0)
    assert coords.shape == (5, 1, 200, 2) and torch.isfinite(coords).all() and torch.isfinite(scores).all()
    assert (coords[..., 0] >= -0.5).all() and (coords[..., 0] <= 11.5).all() and (coords[..., 1] <= 9.5).all()
    for i in (0, 1, 2):  # no peak: score 0 and the frame centre, as for every decoder
        assert scores[i].abs().sum() == 0 and coords[i, 0, 0].tolist() == [5.5, 4.5]
    assert (scores[3, 0] > 0).sum() == 1 and (coords[3, 0, 0] - torch.tensor([0.0, 0.0])).norm() < 0.5
    assert scores[4].abs().sum() == 0
    coords, scores = multipeak_decode(torch.zeros(0, 3, 8, 8), max_peaks=2)
    assert coords.shape == (0, 3, 2, 2) and scores.shape == (0, 3, 2)
    for bad in (
        dict(max_peaks=0),
        dict(threshold=-0.1),
        dict(nms_kernel=4),
        dict(kernel=2),
        dict(modulation="x"),
    ):
        with pytest.raises(ValueError):
            MultiPeakDecoder(**bad)
    with pytest.raises(ValueError, match="decodes"):
        MultiPeakDecoder()(torch.zeros(1, 1, 2, 3, 4, 5))


def test_accelerator_path_gives_the_same_peaks(monkeypatch):
    """Off the CPU the codecs skip host-side checks (no device sync): run that path here and compare."""
    g = torch.Generator().manual_seed(4)
    maps = torch.cat(
        [_people([[5.0, 6.0], [17.5, 3.2], [30.1, 15.0]], (20, 36)), torch.randn(2, 1, 20, 36, generator=g)]
    )
    maps[2] = torch.round(maps[2] * 2) / 2  # ties
    modulations = ("none", "peaks", "map")
    want = [multipeak_decode(maps, modulation=m) for m in modulations]
    monkeypatch.setattr("heatlit.codecs.base.host_checks", lambda t: False)
    for (coords, scores), m in zip(want, modulations):
        got = multipeak_decode(maps, modulation=m)
        torch.testing.assert_close(got[1], scores, atol=0, rtol=0)
        torch.testing.assert_close(got[0], coords, atol=1e-5, rtol=0)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_host_search_in_chunks_with_non_finite_maps(monkeypatch, dtype, threads):
    """The CPU search works chunk by chunk in reused buffers (a short last chunk, stale cells from the
    chunk before; with a thread team, slices of a chunk), and hands maps with NaN/Inf to the sanitiser:
    the same answer as the accelerator path."""
    monkeypatch.setattr("heatlit.codecs.multipeak_cpu.CHUNK_CELLS", 1200)  # 4 maps of 13x17 per chunk
    monkeypatch.setattr("heatlit.codecs.multipeak_cpu.TORCH_GRAIN", 500)  # 2 maps per slice
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    g = torch.Generator().manual_seed(7)
    maps = torch.randn(7, 3, 13, 17, generator=g, dtype=dtype)
    maps[::2] = torch.round(maps[::2] * 2) / 2  # plateaus and ties
    # maps 16 and 12, each in the first slice of its chunk (one bad value sends the batch to the sanitiser)
    maps[5, 1, 4, 4], maps[5, 1, 4, 5] = float("nan"), 9.0  # unsanitised, the NaN would hide the top peak
    maps[4, 0, 0, 0] = float("inf")
    maps[3] *= 1e5  # beyond float16's range: keys saturate, the floats decide
    want = [multipeak_decode(maps, max_peaks=4, threshold=0.0, refine=r) for r in (True, False)]
    monkeypatch.setattr("heatlit.codecs.base.host_checks", lambda t: False)
    for (coords, scores), r in zip(want, (True, False)):
        got = multipeak_decode(maps, max_peaks=4, threshold=0.0, refine=r)
        assert torch.isfinite(coords).all() and torch.equal(got[1], scores)
        torch.testing.assert_close(got[0], coords, atol=1e-5, rtol=0)
