"""Codec benchmark: loop baselines agree with heatlit, the CRB is right, the CLI runs end to end.

No timing asserts: speed is reported by ``make bench``, never tested.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from heatlit.bench import codecs as bench
from heatlit.bench.__main__ import main
from heatlit.codecs import dark_decode, gaussian_heatmaps

SIZE = (64, 48)


def _maps(batch, joints, margin, seed=0, sigma=2.0):
    g = torch.Generator().manual_seed(seed)
    kp = bench.interior_keypoints(batch, joints, SIZE, margin, g)
    hm, _ = gaussian_heatmaps(kp, torch.ones(batch, joints), SIZE, sigma)
    return kp, hm


def test_dark_loop_agrees_with_dark_decode_on_clean_interior_maps():
    kp, hm = _maps(4, 6, margin=8.0)
    loop, loop_max = bench.dark_loop(hm.numpy(), kernel=11)
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
    coords, _ = bench.dark_loop(hm, kernel=5)
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
    loop, loop_w = bench.encode_loop(kp.numpy(), vis.numpy(), SIZE, sigma)
    assert loop.dtype == np.float32 and loop.shape == (batch, joints, *SIZE)
    np.testing.assert_array_equal(loop_w, w.numpy())
    assert loop_w[0, :3].tolist() == [0.0, 1.0, 0.0]
    assert 0 < loop_w.sum() < batch * joints
    assert np.abs(loop - ours.numpy()).max() <= 1e-6


def test_crb_continuum_limit_for_a_wide_gaussian():
    """Amplitude known, far from borders: Fisher info per axis -> pi / (2 sn^2), std bound -> sn sqrt(2/pi)."""
    noise = 0.07
    centres = torch.tensor([[63.3, 64.7], [60.0, 70.25]])
    bound = bench.gaussian_crb(centres, (128, 128), sigma=6.0, noise_std=noise)
    assert bound.dtype == torch.float64 and bound.shape == (2, 2)
    torch.testing.assert_close(
        bound, torch.full((2, 2), noise * math.sqrt(2 / math.pi), dtype=torch.float64), rtol=1e-6, atol=0
    )
    # Estimating the amplitude too never helps; far from borders the centre is decoupled from it.
    with_amp = bench.gaussian_crb(centres, (128, 128), sigma=6.0, noise_std=noise, estimate_amplitude=True)
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
        got = bench.gaussian_crb(centre, size, sigma, noise, amplitude=amp, estimate_amplitude=est_amp)[0]
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=0)
    known = bench.gaussian_crb(centre, size, sigma, noise, amplitude=amp)
    assert (bench.gaussian_crb(centre, size, sigma, noise, amp, True) > known).all()  # coupled at the border


def test_numpy_argmax_and_time_ms():
    hm = np.random.default_rng(0).random((2, 3, 4, 5), dtype=np.float32)
    np.testing.assert_array_equal(bench.numpy_argmax(hm), hm.reshape(6, -1).argmax(1))
    calls = []
    times = bench.time_ms(lambda: calls.append(1), repeats=4, warmup=2, device=torch.device("cpu"))
    assert len(times) == 4 and len(calls) == 6 and all(t >= 0 for t in times)


def test_quick_run_writes_json(tmp_path):
    out = tmp_path / "sub" / "bench.json"
    assert main(["codecs", "--quick", "--device", "cpu", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res) >= {"config", "environment", "speed", "accuracy", "targets", "all_passed"}
    assert set(res["speed"]) == {"cpu_reference", "cpu"}
    assert set(res["speed"]["cpu_reference"]) == {"numpy_argmax", "dark_loop", "encode_loop"}
    assert {"dark_decode", "gaussian_heatmaps"} <= set(res["speed"]["cpu"])
    assert all(t["median_ms"] > 0 for dev in res["speed"].values() for t in dev.values())
    acc = res["accuracy"]
    assert set(acc) == {"noise_free", "noisy", "crb", "dark_vs_crb"}
    assert {"dark_decode", "dark_loop (reference)", "argmax"} <= set(acc["noise_free"])
    assert set(acc["crb"]) == {"amplitude_known", "amplitude_estimated", "continuum_px"}
    assert set(acc["dark_vs_crb"]["dark_decode"]) == {"ratio_x", "ratio_y", "ratio_x_ci95", "ratio_y_ci95"}
    assert acc["noise_free"]["dark_decode"]["mean_err_px"] < 0.01  # accuracy holds even at quick sizes
    assert len(res["targets"]) == 6 and res["all_passed"] == all(t["passed"] for t in res["targets"])


def test_strict_turns_failed_targets_into_exit_code(monkeypatch):
    monkeypatch.setattr(bench, "run", lambda cfg, devices, console=None: {"all_passed": False})
    assert main(["codecs", "--quick", "--device", "cpu"]) == 0
    assert main(["codecs", "--quick", "--device", "cpu", "--strict"]) == 1
    monkeypatch.setattr(bench, "run", lambda cfg, devices, console=None: {"all_passed": True})
    assert main(["codecs", "--strict"]) == 0


def test_cli_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        main(["codecs", "--repeats", "0"])
    with pytest.raises(SystemExit):
        main(["nope"])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            main(["codecs", "--device", "cuda"])
