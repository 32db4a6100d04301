"""Codec benchmark: loop baselines agree with heatlit, the CRB is right, the CLI runs end to end.

No timing asserts: speed is reported by ``make bench``, never tested.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from heatlit.bench import baselines, codecs, crowded
from heatlit.bench.__main__ import main
from heatlit.bench.crb import gaussian_crb
from heatlit.bench.data import border_keypoints, crowded_maps, interior_keypoints
from heatlit.bench.machine import summary, time_ms, time_rounds
from heatlit.codecs import dark_decode, gaussian_heatmaps

SIZE = (64, 48)


def _maps(batch, joints, margin, seed=0, sigma=2.0):
    g = torch.Generator().manual_seed(seed)
    kp = interior_keypoints(batch, joints, SIZE, margin, g)
    hm, _ = gaussian_heatmaps(kp, torch.ones(batch, joints), SIZE, sigma)
    return kp, hm


def test_dark_loop_agrees_with_dark_decode_on_clean_interior_maps():
    kp, hm = _maps(4, 6, margin=8.0)
    loop, loop_max = baselines.dark_loop(hm.numpy(), kernel=11)
    ours, scores = dark_decode(hm, kernel=11)
    assert loop.shape == (4, 6, 2) and loop.dtype == np.float32
    assert np.abs(loop - ours.numpy()).max() < 0.02
    # Both are essentially exact on noise-free unbiased maps (the blurred log map is ~quadratic).
    assert np.abs(loop - kp.numpy()).max() < 0.01
    np.testing.assert_allclose(loop_max, scores.numpy(), rtol=0, atol=1e-7)


def test_dark_loop_does_not_modify_its_input_and_skips_border_peaks():
    hm = np.zeros((1, 2, 16, 16), np.float32)
    hm[0, 0, 5, 1] = 1.0  # px = 1: outside the reference's `1 < px < W - 2`, so no Taylor step
    hm[0, 1, 7, 8], hm[0, 1, 7, 9] = 1.0, 0.5  # interior: the step moves x towards the higher neighbour
    before = hm.copy()
    coords, _ = baselines.dark_loop(hm, kernel=5)
    np.testing.assert_array_equal(hm, before)
    assert coords[0, 0].tolist() == [1.0, 5.0]
    assert 8.0 < coords[0, 1, 0] < 9.0 and coords[0, 1, 1] == pytest.approx(7.0, abs=1e-5)


def test_encode_loop_equals_gaussian_heatmaps():
    g = torch.Generator().manual_seed(3)
    batch, joints, sigma = 5, 9, 2.0
    # Spread beyond the frame so both sides of the out-of-frame rule occur, plus invisible and NaN joints.
    kp = torch.rand(batch, joints, 2, generator=g) * torch.tensor([48 + 24.0, 64 + 24.0]) - 12.0
    kp[0, 0] = torch.tensor([-0.5 - 3 * sigma - 0.01, 10.0])  # just out
    kp[0, 1] = torch.tensor([-0.5 - 3 * sigma + 0.01, 10.0])  # just in
    kp[0, 2] = torch.tensor([float("nan"), 10.0])
    vis = (torch.rand(batch, joints, generator=g) > 0.2).float()
    vis[0, :3] = 1
    ours, w = gaussian_heatmaps(kp, vis, SIZE, sigma)
    loop, loop_w = baselines.encode_loop(kp.numpy(), vis.numpy(), SIZE, sigma)
    assert loop.dtype == np.float32 and loop.shape == (batch, joints, *SIZE)
    np.testing.assert_array_equal(loop_w, w.numpy())
    assert loop_w[0, :3].tolist() == [0.0, 1.0, 0.0]
    assert 0 < loop_w.sum() < batch * joints
    assert np.abs(loop - ours.numpy()).max() <= 1e-6


def test_crb_continuum_limit_for_a_wide_gaussian():
    """Amplitude known, far from borders: Fisher info per axis -> pi / (2 sn^2), std bound -> sn sqrt(2/pi)."""
    noise = 0.07
    centres = torch.tensor([[63.3, 64.7], [60.0, 70.25]])
    bound = gaussian_crb(centres, (128, 128), sigma=6.0, noise_std=noise)
    assert bound.dtype == torch.float64 and bound.shape == (2, 2)
    torch.testing.assert_close(
        bound, torch.full((2, 2), noise * math.sqrt(2 / math.pi), dtype=torch.float64), rtol=1e-6, atol=0
    )
    # Estimating the amplitude too never helps; far from borders the centre is decoupled from it.
    with_amp = gaussian_crb(centres, (128, 128), sigma=6.0, noise_std=noise, estimate_amplitude=True)
    assert (with_amp >= bound * (1 - 1e-12)).all()
    torch.testing.assert_close(with_amp, bound, rtol=1e-6, atol=0)


def test_crb_matches_brute_force_fisher_near_a_border():
    """The separable sums equal the textbook per-pixel Fisher sum, also where the border breaks symmetry."""
    size, sigma, noise, amp = (12, 10), 1.7, 0.05, 0.8
    centre = torch.tensor([[1.3, 9.6]], dtype=torch.float64)
    ys, xs = torch.meshgrid(
        torch.arange(12.0, dtype=torch.float64), torch.arange(10.0, dtype=torch.float64), indexing="ij"
    )

    def mu(theta):
        return theta[2] * torch.exp(-((xs - theta[0]) ** 2 + (ys - theta[1]) ** 2) / (2 * sigma**2))

    theta = torch.tensor([1.3, 9.6, amp], dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(mu, theta).reshape(-1, 3)  # [pixels, 3]
    fim = jac.T @ jac / noise**2
    for est_amp, dims in ((False, 2), (True, 3)):
        expected = torch.linalg.inv(fim[:dims, :dims]).diagonal()[:2].sqrt()
        got = gaussian_crb(centre, size, sigma, noise, amplitude=amp, estimate_amplitude=est_amp)[0]
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=0)
    known = gaussian_crb(centre, size, sigma, noise, amplitude=amp)
    assert (gaussian_crb(centre, size, sigma, noise, amp, True) > known).all()  # coupled at the border


def test_numpy_argmax_and_timing():
    hm = np.random.default_rng(0).random((2, 3, 4, 5), dtype=np.float32)
    np.testing.assert_array_equal(baselines.numpy_argmax(hm), hm.reshape(6, -1).argmax(1))
    calls = []
    wall, cpu = time_ms(lambda: calls.append(1), repeats=4, warmup=2, device=torch.device("cpu"))
    assert len(wall) == len(cpu) == 4 and len(calls) == 6 and all(t >= 0 for t in wall + cpu)
    counts = {"a": 0, "b": 0}
    res = time_rounds(
        {k: (lambda k=k: counts.__setitem__(k, counts[k] + 1)) for k in counts}, 10, 2, torch.device("cpu")
    )
    assert counts == {
        "a": 2 + 2 + 4 * 3,
        "b": 2 + 2 + 4 * 3,
    }  # warm-up 2 first, then 1 per round; 5 rounds x 2
    assert (
        set(res["a"]) == {"median_ms", "min_ms", "cpu_min_ms", "times_ms"} and len(res["a"]["times_ms"]) == 10
    )
    assert summary([3.0, 1.0, 2.0], [0.5, 0.7, 0.9]) == {
        "median_ms": 2.0,
        "min_ms": 1.0,
        "cpu_min_ms": 0.5,
        "times_ms": [3.0, 1.0, 2.0],
    }


def test_border_keypoints_lie_within_1_5_px_of_an_edge():
    g = torch.Generator().manual_seed(0)
    size = (30, 20)
    high = torch.tensor([19.0, 29.0])
    for corner in (False, True):
        kp = border_keypoints(500, size, corner, g)
        near = torch.minimum(kp + 0.5, high + 0.5 - kp)  # distance from the frame's edge, per axis
        assert (near >= 0).all() and (near <= 2.0 + 1e-6).all(dim=-1).sum() >= (500 if corner else 0)
        assert ((near <= 2.0 + 1e-6).sum(-1) == (2 if corner else 1)).float().mean() > 0.95


def test_crowded_matching_and_average_precision():
    g = torch.Generator().manual_seed(1)
    maps, centres = crowded_maps(3, 2, (20, 24), 2.0, 0.0, g)
    assert maps.shape == (3, 1, 20, 24) and centres.shape == (3, 2, 2)
    coords = torch.tensor([[[0.0, 0.0], [5.0, 5.0], [9.0, 9.0]]])
    truth = torch.tensor([[[0.5, 0.0], [9.0, 10.5]]])
    scores = torch.tensor([[0.9, 0.8, 0.7]])
    tp, err = crowded.match(coords, scores, truth, distance=1.0)
    assert tp.tolist() == [[True, False, False]] and err[0, 0] == 0.5
    tp, _ = crowded.match(coords, scores, truth, distance=2.0)
    assert tp.tolist() == [[True, False, True]]
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: all-point AP = 0.5 * 1 + 0.5 * 2/3
    assert crowded.average_precision(scores, tp, positives=2) == pytest.approx(0.5 + 1 / 3)


def test_quick_run_writes_json(tmp_path):
    out = tmp_path / "sub" / "bench.json"
    assert main(["codecs", "--quick", "--repeats", "1", "--device", "cpu", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res) >= {
        "config",
        "environment",
        "speed",
        "accuracy",
        "border",
        "crowded",
        "targets",
        "all_passed",
    }
    assert len(res["environment"]["load_average"]) == 3 and res["load_average_end"] is not None
    assert set(res["speed"]) == {"load", "cpu_reference", "cpu"} and set(res["speed"]["cpu"]) == {"1", "2"}
    assert set(res["speed"]["cpu_reference"]) == {"dark_loop", "encode_loop"}
    for timings in res["speed"]["cpu"].values():
        assert {"numpy_argmax", "dark_decode", "gaussian_heatmaps", "multipeak"} <= set(timings)
        assert all(t["min_ms"] > 0 and t["cpu_min_ms"] >= 0 for t in timings.values())
    acc = res["accuracy"]
    assert set(acc) == {"noise_free", "noisy", "crb", "dark_vs_crb"}
    assert {
        "dark_decode",
        "dark_loop (reference)",
        "argmax",
        "standard_top2 (eq. 2)",
        "mom (whole map)",
    } <= set(acc["noise_free"])
    assert set(acc["crb"]) == {"amplitude_known", "amplitude_estimated", "continuum_px"}
    assert set(acc["dark_vs_crb"]["dark_decode"]) == {"ratio_x", "ratio_y", "ratio_x_ci95", "ratio_y_ci95"}
    assert acc["noise_free"]["dark_decode"]["mean_err_px"] < 0.01  # accuracy holds even at quick sizes
    for region in ("edges", "corners"):
        border = res["border"][region]
        assert border["noise_free"]["dark_decode"]["mean_err_px"] < 0.01
        assert border["noise_free"]["dark_loop (reference)"]["mean_err_px"] > 0.1  # it skips the border
    assert len(res["crowded"]) == 6 and all(len(row) == 6 for row in res["crowded"].values())
    names = [t["name"] for t in res["targets"]]
    assert (
        "cpu, 2 threads: dark_decode speed-up vs loop" in names
        and "cpu, 1 thread: multipeak / numpy argmax" in names
    )
    assert res["all_passed"] == all(t["passed"] for t in res["targets"])


def test_strict_turns_failed_targets_into_exit_code(monkeypatch):
    monkeypatch.setattr(codecs, "run", lambda cfg, devices, console=None: {"all_passed": False})
    assert main(["codecs", "--quick", "--device", "cpu"]) == 0
    assert main(["codecs", "--quick", "--device", "cpu", "--strict"]) == 1
    monkeypatch.setattr(codecs, "run", lambda cfg, devices, console=None: {"all_passed": True})
    assert main(["codecs", "--strict"]) == 0


def test_cli_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        main(["codecs", "--repeats", "0"])
    with pytest.raises(SystemExit):
        main(["nope"])
    for bad in ("0", "1,x", ""):
        with pytest.raises(SystemExit):
            main(["codecs", "--threads", bad])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            main(["codecs", "--device", "cuda"])
