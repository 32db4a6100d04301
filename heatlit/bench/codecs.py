"""Codec benchmark: heatlit's batched DARK decode and unbiased encode against per-map loop baselines,
and DARK's accuracy against the Cramer-Rao bound.

Speed: DARK decode and unbiased encode at ``[B, K, H, W] = [64, 17, 64, 48]`` (COCO: 17 joints,
256x192 input, stride 4) on CPU, and on CUDA when available, against

* the **loop baselines** below, which re-implement the official DarkPose code path (per-map
  ``cv2.GaussianBlur``, per-joint numpy Taylor step; per-joint numpy Gaussian targets), and
* one ``np.argmax`` pass over the whole batch, the floor any decoder has to read the maps once.

Accuracy: random sub-pixel keypoints (away from the borders) rendered as sigma-2 unbiased heatmaps of
peak 1, decoded noise-free and with additive white Gaussian noise; DARK's per-axis RMS error on the
noisy maps is compared with the Cramer-Rao bound of the discrete grid (:func:`gaussian_crb`).

Coordinates follow :mod:`heatlit.codecs` (pixel centres at integers, ``(x, y)`` order), which is also
the reference code's convention inside the heatmap, so baselines and heatlit are compared directly.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from heatlit.codecs import (
    argmax_decode,
    com_decode,
    dark_decode,
    gaussian_heatmaps,
    soft_argmax,
    standard_decode,
)

Tensor = torch.Tensor


@dataclass(frozen=True)
class BenchConfig:
    """Sizes and settings of one benchmark run (``--quick`` shrinks them, see :data:`QUICK`)."""

    batch: int = 64
    joints: int = 17
    height: int = 64
    width: int = 48
    sigma: float = 2.0  # target Gaussian width (heatmap pixels)
    kernel: int = 11  # DARK blur kernel, the reference's TEST.BLUR_KERNEL for 64x48 maps
    repeats: int = 50  # timed runs per method; the median is reported
    warmup: int = 10
    trials: int = 8192  # heatmaps per accuracy experiment
    noise_std: float = 0.05  # additive white Gaussian noise, relative to peak amplitude 1
    margin: float = 8.0  # keypoints at least 3 sigma + 2 px from the borders in the accuracy runs
    soft_beta: float = 20.0  # soft-argmax temperature for peak-1 maps, see `accuracy`
    chunk: int = 2048  # maps per decoder call in the accuracy runs (bounds peak memory)
    seed: int = 0


QUICK = BenchConfig(batch=4, joints=3, repeats=3, warmup=1, trials=256, chunk=128)

# Targets; the CRB one is two-sided: far below the bound would mean the bound or the error is wrong.
TARGET_DARK_SPEEDUP = 25.0
TARGET_DARK_VS_ARGMAX = 8.0
TARGET_ENCODE_SPEEDUP = 10.0
TARGET_DARK_CLEAN_ERR = 0.01
TARGET_CRB_TOLERANCE = 0.15


# =====================================================================================================
# Loop baselines: the reference implementations, re-written here (numpy / OpenCV, one map at a time).
# These are the "before" of the speed-ups; do not vectorise them.
# =====================================================================================================


def reference_get_max_preds(batch_heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BASELINE: the reference ``get_max_preds`` (already batched numpy in the original).

    ``[B, K, H, W] -> (preds [B, K, 2] float32 integer (x, y), maxvals [B, K, 1])``; maps with a
    non-positive maximum get ``(0, 0)``.
    """
    batch, joints, _, width = batch_heatmaps.shape
    reshaped = batch_heatmaps.reshape((batch, joints, -1))
    idx = np.argmax(reshaped, 2).reshape((batch, joints, 1))
    maxvals = np.amax(reshaped, 2).reshape((batch, joints, 1))
    preds = np.tile(idx, (1, 1, 2)).astype(np.float32)
    preds[:, :, 0] = preds[:, :, 0] % width
    preds[:, :, 1] = np.floor(preds[:, :, 1] / width)
    preds *= np.tile(np.greater(maxvals, 0.0), (1, 1, 2)).astype(np.float32)
    return preds, maxvals


def reference_gaussian_blur(hm: np.ndarray, kernel: int) -> np.ndarray:
    """BASELINE: the reference ``gaussian_blur``: per map, zero border of ``(k-1)/2``, ``cv2.GaussianBlur``
    (sigma 0: OpenCV derives it from k, 2.0 for k = 11), crop, rescale to the original maximum.

    ``hm [B, K, H, W]`` float32, modified in place (as in the reference) and returned.
    """
    border = (kernel - 1) // 2
    batch, joints, height, width = hm.shape
    for i in range(batch):
        for j in range(joints):
            origin_max = np.max(hm[i, j])
            dr = np.zeros((height + 2 * border, width + 2 * border))  # float64, as in the reference
            dr[border:-border, border:-border] = hm[i, j].copy()
            dr = cv2.GaussianBlur(dr, (kernel, kernel), 0)
            hm[i, j] = dr[border:-border, border:-border].copy()
            # The reference divides unconditionally (0/0 = NaN on an all-zero map); guarded here so the
            # baseline stays warning-free. Inputs in this benchmark never take this branch.
            peak = np.max(hm[i, j])
            if peak != 0:
                hm[i, j] *= origin_max / peak
    return hm


def reference_taylor(hm: np.ndarray, coord: np.ndarray) -> np.ndarray:
    """BASELINE: the reference ``taylor``: one Newton step on the log map at an integer peak.

    First derivatives by central differences, the Hessian with step-2 second differences
    (``dxx = (h[x+2] - 2 h[x] + h[x-2]) / 4``) and a step-1 mixed term; applied only when the peak is
    at least 2 px inside (``1 < px < W-2 and 1 < py < H-2``) and the Hessian determinant is non-zero.

    Args:
        hm: ``[H, W]`` log heatmap; coord: ``[2]`` float (x, y), updated in place and returned.
    """
    height, width = hm.shape
    px, py = int(coord[0]), int(coord[1])
    if 1 < px < width - 2 and 1 < py < height - 2:
        dx = 0.5 * (hm[py][px + 1] - hm[py][px - 1])
        dy = 0.5 * (hm[py + 1][px] - hm[py - 1][px])
        dxx = 0.25 * (hm[py][px + 2] - 2 * hm[py][px] + hm[py][px - 2])
        dxy = 0.25 * (hm[py + 1][px + 1] - hm[py - 1][px + 1] - hm[py + 1][px - 1] + hm[py - 1][px - 1])
        dyy = 0.25 * (hm[py + 2][px] - 2 * hm[py][px] + hm[py - 2][px])
        derivative = np.array([[dx], [dy]])
        hessian = np.array([[dxx, dxy], [dxy, dyy]])
        if dxx * dyy - dxy**2 != 0:
            # The reference uses np.matrix(...).I, i.e. this same np.linalg.inv, through a deprecated class.
            offset = -np.linalg.inv(hessian) @ derivative
            coord += offset[:, 0]
    return coord


def dark_loop(batch_heatmaps: np.ndarray, kernel: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """BASELINE: DARK decoding as officially published (DarkPose ``get_final_preds``, heatmap space).

    Argmax, per-map blur (:func:`reference_gaussian_blur`), ``np.maximum(hm, 1e-10)``, ``np.log``, then
    a per-joint Taylor step (:func:`reference_taylor`).

    Args:
        batch_heatmaps: ``[B, K, H, W]`` float32 (not modified: the reference's in-place blur works on
            a copy here).

    Returns:
        ``coords [B, K, 2]`` float32 (x, y) in heatmap pixels and ``maxvals [B, K]``.
    """
    hm = np.array(batch_heatmaps, dtype=np.float32, copy=True)
    coords, maxvals = reference_get_max_preds(hm)
    hm = reference_gaussian_blur(hm, kernel)
    hm = np.maximum(hm, 1e-10)
    hm = np.log(hm)
    for n in range(coords.shape[0]):
        for p in range(coords.shape[1]):
            coords[n, p] = reference_taylor(hm[n][p], coords[n][p])
    return coords, maxvals[..., 0]


def encode_loop(
    keypoints: np.ndarray,
    visible: np.ndarray,
    heatmap_size: Sequence[int],
    sigma: float = 2.0,
    box_sigmas: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """BASELINE: the reference unbiased target generation (DarkPose ``generate_target``), per joint.

    Each visible, in-frame joint gets ``exp(-((x - mu_x)^2 + (y - mu_y)^2) / (2 sigma^2))`` over the
    whole map, centred on the exact sub-pixel coordinate (no rounding). The out-of-frame rule is
    heatlit's (the ``box_sigmas * sigma`` box misses ``[-0.5, S - 0.5]``) so the two encoders can be
    compared value by value; the reference's box is ``[mu - 3 sigma, mu + 3 sigma + 1]`` tested against
    ``[0, S)``, a one-pixel-different edge that costs the same.

    Args:
        keypoints: ``[B, K, 2]`` (x, y) in heatmap pixels; visible: ``[B, K]`` (> 0 is visible).
        heatmap_size: ``(H, W)``.

    Returns:
        ``heatmaps [B, K, H, W]`` float32 and ``weights [B, K]`` float32 (1 or 0).
    """
    height, width = (int(s) for s in heatmap_size)
    batch, joints, _ = keypoints.shape
    target = np.zeros((batch, joints, height, width), dtype=np.float32)
    weights = np.zeros((batch, joints), dtype=np.float32)
    tmp_size = box_sigmas * sigma
    for b in range(batch):
        for j in range(joints):
            mu_x, mu_y = float(keypoints[b, j, 0]), float(keypoints[b, j, 1])
            if not (visible[b, j] > 0 and math.isfinite(mu_x) and math.isfinite(mu_y)):
                continue
            if (
                mu_x + tmp_size < -0.5
                or mu_y + tmp_size < -0.5
                or mu_x - tmp_size > width - 0.5
                or mu_y - tmp_size > height - 0.5
            ):
                continue
            weights[b, j] = 1.0
            x = np.arange(0, width, 1, np.float32)
            y = np.arange(0, height, 1, np.float32)[:, np.newaxis]
            target[b, j] = np.exp(-((x - mu_x) ** 2 + (y - mu_y) ** 2) / (2 * sigma**2))
    return target, weights


def numpy_argmax(batch_heatmaps: np.ndarray) -> np.ndarray:
    """Floor reference: one ``np.argmax`` over every map of the batch. ``[B, K, H, W] -> [B*K]``."""
    return np.argmax(batch_heatmaps.reshape(-1, batch_heatmaps.shape[2] * batch_heatmaps.shape[3]), axis=1)


# =====================================================================================================
# Cramer-Rao bound
# =====================================================================================================


def gaussian_crb(
    centres: Tensor,
    heatmap_size: Sequence[int],
    sigma: float,
    noise_std: float,
    amplitude: float = 1.0,
    estimate_amplitude: bool = False,
) -> Tensor:
    """Cramer-Rao bound on the per-axis std of any unbiased estimate of a Gaussian's centre.

    Model: pixel ``(i, j)`` (``x = j, y = i``) reads ``mu = A exp(-((x - x0)^2 + (y - y0)^2) / (2 s^2))``
    plus i.i.d. ``N(0, noise_std^2)`` noise, on the finite ``H x W`` grid. The Fisher information is
    ``I = sum_pixels grad mu grad mu^T / noise_std^2`` over ``theta = (x0, y0)`` (amplitude known) or
    ``(x0, y0, A)`` (``estimate_amplitude``); the bound is ``sqrt(diag(I^-1))`` for x0 and y0. The
    amplitude-known bound is the lower (tighter) one. In the continuum limit, far from the borders,
    ``I_xx -> A^2 pi / (2 noise_std^2)``, i.e. the bound -> ``noise_std sqrt(2 / pi) / A``, whatever s.

    The Gaussian is separable, so every sum is a product of two 1D sums: O(H + W) per centre.

    Args:
        centres: ``[N, 2]`` (x0, y0) in heatmap pixels.
        heatmap_size: ``(H, W)``.

    Returns:
        ``[N, 2]`` float64 per-axis std bounds (x, y), in pixels.
    """
    height, width = (int(s) for s in heatmap_size)
    c = centres.to(torch.float64).reshape(-1, 2)
    s2 = float(sigma) ** 2
    amp = float(amplitude)
    dx = torch.arange(width, dtype=torch.float64) - c[:, :1]  # [N, W]
    dy = torch.arange(height, dtype=torch.float64) - c[:, 1:]  # [N, H]
    gx2 = torch.exp(-(dx * dx) / s2)  # squared 1D profiles: exp(-d^2 / (2 s^2))^2
    gy2 = torch.exp(-(dy * dy) / s2)
    # Moments m_k = sum g^2 d^k per axis: d mu/d x0 = mu (x - x0) / s^2, d mu/d A = mu / A.
    x0, x1, x2 = gx2.sum(-1), (gx2 * dx).sum(-1), (gx2 * dx * dx).sum(-1)
    y0, y1, y2 = gy2.sum(-1), (gy2 * dy).sum(-1), (gy2 * dy * dy).sum(-1)
    i_xx = amp**2 * x2 * y0 / s2**2
    i_yy = amp**2 * x0 * y2 / s2**2
    i_xy = amp**2 * x1 * y1 / s2**2
    if estimate_amplitude:
        i_xa = amp * x1 * y0 / s2
        i_ya = amp * x0 * y1 / s2
        i_aa = x0 * y0
        fim = torch.stack(
            [
                torch.stack([i_xx, i_xy, i_xa], -1),
                torch.stack([i_xy, i_yy, i_ya], -1),
                torch.stack([i_xa, i_ya, i_aa], -1),
            ],
            -2,
        )
    else:
        fim = torch.stack([torch.stack([i_xx, i_xy], -1), torch.stack([i_xy, i_yy], -1)], -2)
    cov = torch.linalg.inv(fim / noise_std**2)
    return cov.diagonal(dim1=-2, dim2=-1)[:, :2].sqrt()


# =====================================================================================================
# Data and timing
# =====================================================================================================


def interior_keypoints(batch: int, joints: int, size: Sequence[int], margin: float, generator) -> Tensor:
    """Uniform sub-pixel ``[B, K, 2]`` (x, y) at least ``margin`` px from every border of ``size = (H, W)``."""
    height, width = size
    extent = torch.tensor([width - 1 - 2 * margin, height - 1 - 2 * margin], dtype=torch.float32)
    return torch.rand(batch, joints, 2, generator=generator) * extent + margin


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], object], repeats: int, warmup: int, device: torch.device) -> list[float]:
    """Wall time of ``fn()`` in ms, ``repeats`` times after ``warmup`` untimed calls.

    The device is synchronised before and after each call, so a CUDA time covers the kernels, not just
    their launch, and no earlier work leaks into it. Warm-up absorbs one-off costs (CUDA context and
    library handles, allocator growth, OpenCV/numpy first-call set-up).
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _timing(times: list[float]) -> dict:
    return {"median_ms": statistics.median(times), "min_ms": min(times), "times_ms": times}


def speed(cfg: BenchConfig, devices: Sequence[str]) -> dict:
    """Time the loop baselines and numpy argmax (CPU) and heatlit's batched codecs on each device.

    Decode input: unbiased sigma maps of interior keypoints plus ``noise_std`` white noise (network-like
    output, every map with a peak). Encode input: keypoints spread a little beyond the frame and ~15%
    invisible, so every branch of the weight logic runs.

    Returns:
        ``{"cpu_reference": {method: timing}, "<device>": {method: timing}}``, timings in ms; on CPU
        with more than one torch thread, ``"<method>_1thread"`` entries too (targets use the default).
    """
    g = torch.Generator().manual_seed(cfg.seed)
    size = (cfg.height, cfg.width)
    kp = interior_keypoints(cfg.batch, cfg.joints, size, 2 * cfg.sigma, g)
    clean, _ = gaussian_heatmaps(kp, torch.ones(cfg.batch, cfg.joints), size, cfg.sigma)
    maps = clean + cfg.noise_std * torch.randn(clean.shape, generator=g)
    maps_np = np.ascontiguousarray(maps.numpy())
    spread = torch.tensor([cfg.width + 8.0, cfg.height + 8.0])
    enc_kp = torch.rand(cfg.batch, cfg.joints, 2, generator=g) * spread - 4.0
    enc_vis = (torch.rand(cfg.batch, cfg.joints, generator=g) > 0.15).float()
    enc_kp_np, enc_vis_np = enc_kp.numpy(), enc_vis.numpy()

    cpu = torch.device("cpu")
    out: dict = {
        "cpu_reference": {
            "numpy_argmax": _timing(time_ms(lambda: numpy_argmax(maps_np), cfg.repeats, cfg.warmup, cpu)),
            "dark_loop": _timing(
                time_ms(lambda: dark_loop(maps_np, cfg.kernel), cfg.repeats, cfg.warmup, cpu)
            ),
            "encode_loop": _timing(
                time_ms(
                    lambda: encode_loop(enc_kp_np, enc_vis_np, size, cfg.sigma), cfg.repeats, cfg.warmup, cpu
                )
            ),
        }
    }
    for name in devices:
        device = torch.device(name)
        m, k, v = maps.to(device), enc_kp.to(device), enc_vis.to(device)
        methods = {
            "dark_decode": lambda m=m: dark_decode(m, cfg.kernel),
            "gaussian_heatmaps": lambda k=k, v=v: gaussian_heatmaps(k, v, size, cfg.sigma),
        }
        out[name] = {
            key: _timing(time_ms(fn, cfg.repeats, cfg.warmup, device)) for key, fn in methods.items()
        }
        threads = torch.get_num_threads()
        if device.type == "cpu" and threads > 1:
            # Also one intra-op thread: like the single-threaded loops, and what a DataLoader worker
            # gets; and robust to other processes (a parallel region waits for its slowest thread).
            torch.set_num_threads(1)
            try:
                for key, fn in methods.items():
                    out[name][f"{key}_1thread"] = _timing(time_ms(fn, cfg.repeats, cfg.warmup, device))
            finally:
                torch.set_num_threads(threads)
    return out


# =====================================================================================================
# Accuracy
# =====================================================================================================


def _in_chunks(fn: Callable[[Tensor], Tensor], maps: Tensor, chunk: int) -> Tensor:
    """Apply a decoder ``[b, K, H, W] -> coords [b, K, 2]`` chunk by chunk along B (bounds temporaries)."""
    return torch.cat([fn(maps[i : i + chunk]) for i in range(0, maps.shape[0], chunk)])


def _error_stats(coords: Tensor, truth: Tensor) -> dict:
    err = (coords.double() - truth.double()).reshape(-1, 2)
    rms = err.pow(2).mean(0).sqrt()
    return {
        "mean_err_px": err.norm(dim=-1).mean().item(),
        "rms_x_px": rms[0].item(),
        "rms_y_px": rms[1].item(),
        "bias_x_px": err[:, 0].mean().item(),
        "bias_y_px": err[:, 1].mean().item(),
    }


def accuracy(cfg: BenchConfig) -> dict:
    """Decoding error on noise-free and noisy unbiased heatmaps, and DARK's RMS against the CRB.

    ``cfg.trials`` maps ``[trials, 1, H, W]`` of peak 1 and width ``cfg.sigma``, each centred on its own
    uniform sub-pixel point ``cfg.margin`` px inside; the noisy set adds i.i.d. ``N(0, noise_std^2)``.
    soft-argmax runs on the raw peak-1 maps with ``beta = cfg.soft_beta``: with beta = 1 its softmax is
    nearly uniform over the frame and the answer is pulled to the frame centre; beta = 20 concentrates
    the weight near the peak (effective width sigma / sqrt(beta)) while 3072 background pixels at weight
    e^0 still weigh < 1e-5 of the peak's e^20.

    Returns:
        ``{"noise_free": {method: stats}, "noisy": {method: stats}, "crb": {...}, "dark_vs_crb": {...}}``.
    """
    g = torch.Generator().manual_seed(cfg.seed + 1)
    size = (cfg.height, cfg.width)
    truth = interior_keypoints(cfg.trials, 1, size, cfg.margin, g)
    clean, _ = gaussian_heatmaps(truth, torch.ones(cfg.trials, 1), size, cfg.sigma)
    noisy = clean + cfg.noise_std * torch.randn(clean.shape, generator=g)

    def loop(maps: Tensor) -> Tensor:
        return torch.from_numpy(dark_loop(maps.numpy(), cfg.kernel)[0])

    decoders: dict[str, Callable[[Tensor], Tensor]] = {
        "dark_decode": lambda h: dark_decode(h, cfg.kernel)[0],
        "dark_loop (reference)": loop,
        "argmax": lambda h: argmax_decode(h)[0],
        "standard (0.25 shift)": lambda h: standard_decode(h)[0],
        "com (whole map)": lambda h: com_decode(h)[0],
        "com (7x7 window)": lambda h: com_decode(h, radius=3)[0],
        f"soft_argmax (beta={cfg.soft_beta:g})": lambda h: soft_argmax(h, cfg.soft_beta)[0],
    }
    out: dict = {"noise_free": {}, "noisy": {}}
    for data_name, maps in (("noise_free", clean), ("noisy", noisy)):
        for name, fn in decoders.items():
            out[data_name][name] = _error_stats(_in_chunks(fn, maps, cfg.chunk), truth)

    # Average the bound's variance (not its std) over trials: that is what the measured MSE estimates.
    centres = truth.reshape(-1, 2)
    crb = {}
    for label, est_amp in (("amplitude_known", False), ("amplitude_estimated", True)):
        bound = gaussian_crb(centres, size, cfg.sigma, cfg.noise_std, 1.0, est_amp).pow(2).mean(0).sqrt()
        crb[label] = {"x_px": bound[0].item(), "y_px": bound[1].item()}
    crb["continuum_px"] = cfg.noise_std * math.sqrt(2 / math.pi)
    out["crb"] = crb

    # The RMS of n Gaussian errors has relative standard error ~ 1 / sqrt(2n): a 95% interval for the ratio.
    half_width = 1.96 / math.sqrt(2 * cfg.trials)
    out["dark_vs_crb"] = {}
    for name in ("dark_decode", "dark_loop (reference)"):
        stats = out["noisy"][name]
        ratios = {axis: stats[f"rms_{axis}_px"] / crb["amplitude_known"][f"{axis}_px"] for axis in ("x", "y")}
        out["dark_vs_crb"][name] = {
            **{f"ratio_{a}": r for a, r in ratios.items()},
            **{f"ratio_{a}_ci95": [r * (1 - half_width), r * (1 + half_width)] for a, r in ratios.items()},
        }
    return out


# =====================================================================================================
# Targets and report
# =====================================================================================================


def evaluate_targets(speed_res: dict, acc: dict, devices: Sequence[str]) -> list[dict]:
    """Each target as ``{"name", "value", "threshold", "passed"}``; nothing is asserted here."""
    ref = speed_res["cpu_reference"]
    loop_dark = ref["dark_loop"]["median_ms"]
    loop_enc = ref["encode_loop"]["median_ms"]
    argmax_ms = ref["numpy_argmax"]["median_ms"]
    targets = []

    def add(name: str, value: float, threshold: str, passed: bool) -> None:
        targets.append({"name": name, "value": value, "threshold": threshold, "passed": bool(passed)})

    for dev in devices:
        # The baselines are single-threaded numpy/OpenCV, so on CPU the like-for-like row is torch at one
        # intra-op thread (the multi-threaded row is shown in the speed table too).
        suffix = "_1thread" if "dark_decode_1thread" in speed_res[dev] else ""
        label = f"{dev}{' (1 thread)' if suffix else ''}"
        dark_ms = speed_res[dev][f"dark_decode{suffix}"]["median_ms"]
        enc_ms = speed_res[dev][f"gaussian_heatmaps{suffix}"]["median_ms"]
        dev = label
        add(
            f"{dev}: dark_decode speed-up vs loop",
            loop_dark / dark_ms,
            f">= {TARGET_DARK_SPEEDUP:g}x",
            loop_dark / dark_ms >= TARGET_DARK_SPEEDUP,
        )
        add(
            f"{dev}: dark_decode / numpy argmax",
            dark_ms / argmax_ms,
            f"<= {TARGET_DARK_VS_ARGMAX:g}x",
            dark_ms / argmax_ms <= TARGET_DARK_VS_ARGMAX,
        )
        add(
            f"{dev}: gaussian_heatmaps speed-up vs loop",
            loop_enc / enc_ms,
            f">= {TARGET_ENCODE_SPEEDUP:g}x",
            loop_enc / enc_ms >= TARGET_ENCODE_SPEEDUP,
        )
    err = acc["noise_free"]["dark_decode"]["mean_err_px"]
    add(
        "dark_decode mean error, noise-free (px)",
        err,
        f"< {TARGET_DARK_CLEAN_ERR:g}",
        err < TARGET_DARK_CLEAN_ERR,
    )
    for axis in ("x", "y"):
        ratio = acc["dark_vs_crb"]["dark_decode"][f"ratio_{axis}"]
        add(
            f"dark_decode noisy RMS {axis} / CRB (amplitude known)",
            ratio,
            f"1 +- {TARGET_CRB_TOLERANCE:g}",
            abs(ratio - 1) <= TARGET_CRB_TOLERANCE,
        )
    return targets


def _px(value: float) -> str:
    """Pixel errors: fixed point, or 2 significant digits when below 0.001 (DARK's noise-free error)."""
    return f"{value:.4f}" if value >= 1e-3 or value == 0 else f"{value:.1e}"


def render(results: dict, console: Console) -> None:
    """Print the speed, accuracy and target tables."""
    cfg = results["config"]
    env = results["environment"]
    console.print(
        f"[bold]heatlit codec benchmark[/bold]  B={cfg['batch']} K={cfg['joints']} "
        f"heatmap {cfg['height']}x{cfg['width']} (HxW)  sigma={cfg['sigma']:g}  blur k={cfg['kernel']}  "
        f"median of {cfg['repeats']} runs after {cfg['warmup']} warm-up"
    )
    console.print(
        f"torch {env['torch']} ({env['torch_threads']} intra-op threads), numpy {env['numpy']}, OpenCV {env['opencv']}, "
        f"{env['cpu']}; devices: {', '.join(env['devices'])}"
        + (f" ({env['cuda_device']})" if env["cuda_device"] else "")
    )
    load = env["load_average_1min"]
    if load is not None and load > 0.5:
        console.print(
            f"[yellow]note: 1-min load average was {load:.2f} at the start; other processes may inflate "
            "the timings (compare the min column)[/yellow]"
        )

    sp = results["speed"]
    ref = sp["cpu_reference"]
    argmax_ms = ref["numpy_argmax"]["median_ms"]
    table = Table(title="Speed (loop baselines and numpy argmax run on CPU)")
    for col in ("method", "device", "median ms", "min ms", "speed-up vs loop", "x numpy argmax"):
        table.add_column(col, justify="left" if col in ("method", "device") else "right")

    def row(name: str, dev: str, timing: dict, loop_ms: float | None) -> None:
        med = timing["median_ms"]
        speedup = f"{loop_ms / med:.1f}x" if loop_ms is not None else "-"
        table.add_row(name, dev, f"{med:.3f}", f"{timing['min_ms']:.3f}", speedup, f"{med / argmax_ms:.1f}")

    row("np.argmax over the batch (floor)", "cpu", ref["numpy_argmax"], None)
    row("DARK decode: loop baseline (reference)", "cpu", ref["dark_loop"], ref["dark_loop"]["median_ms"])
    for dev in env["devices"]:
        row("DARK decode: heatlit dark_decode", dev, sp[dev]["dark_decode"], ref["dark_loop"]["median_ms"])
        if "dark_decode_1thread" in sp[dev]:
            row(
                "DARK decode: heatlit dark_decode, 1 thread",
                dev,
                sp[dev]["dark_decode_1thread"],
                ref["dark_loop"]["median_ms"],
            )
    row(
        "unbiased encode: loop baseline (reference)",
        "cpu",
        ref["encode_loop"],
        ref["encode_loop"]["median_ms"],
    )
    for dev in env["devices"]:
        row(
            "unbiased encode: heatlit gaussian_heatmaps",
            dev,
            sp[dev]["gaussian_heatmaps"],
            ref["encode_loop"]["median_ms"],
        )
        if "gaussian_heatmaps_1thread" in sp[dev]:
            row(
                "unbiased encode: heatlit gaussian_heatmaps, 1 thread",
                dev,
                sp[dev]["gaussian_heatmaps_1thread"],
                ref["encode_loop"]["median_ms"],
            )
    console.print(table)

    acc = results["accuracy"]
    crb = acc["crb"]
    known, est = crb["amplitude_known"], crb["amplitude_estimated"]
    table = Table(
        title=f"Accuracy: {cfg['trials']} unbiased sigma-{cfg['sigma']:g} maps, peak 1, keypoints "
        f">= {cfg['margin']:g} px inside; noisy = + N(0, {cfg['noise_std']:g}^2) per pixel"
    )
    for col in (
        "method",
        "clean mean err",
        "clean RMS x",
        "clean RMS y",
        "noisy mean err",
        "noisy RMS x",
        "noisy RMS y",
        "RMS/CRB x",
        "RMS/CRB y",
    ):
        table.add_column(col, justify="left" if col == "method" else "right")
    for name, clean in acc["noise_free"].items():
        noisy = acc["noisy"][name]
        table.add_row(
            name,
            _px(clean["mean_err_px"]),
            _px(clean["rms_x_px"]),
            _px(clean["rms_y_px"]),
            _px(noisy["mean_err_px"]),
            _px(noisy["rms_x_px"]),
            _px(noisy["rms_y_px"]),
            f"{noisy['rms_x_px'] / known['x_px']:.3f}",
            f"{noisy['rms_y_px'] / known['y_px']:.3f}",
        )
    console.print(table)
    console.print(
        f"Cramer-Rao bound on the per-axis std (discrete {cfg['height']}x{cfg['width']} grid, averaged over "
        f"the trials' centres): amplitude known x={known['x_px']:.5f} y={known['y_px']:.5f} px (used by the "
        f"target); amplitude also estimated x={est['x_px']:.5f} y={est['y_px']:.5f} px; continuum limit "
        f"noise_std*sqrt(2/pi) = {crb['continuum_px']:.5f} px. Errors in px."
    )
    for name, r in acc["dark_vs_crb"].items():
        cx, cy = r["ratio_x_ci95"], r["ratio_y_ci95"]
        console.print(
            f"  {name}: RMS/CRB x={r['ratio_x']:.3f} (95% CI {cx[0]:.3f}-{cx[1]:.3f}), "
            f"y={r['ratio_y']:.3f} (95% CI {cy[0]:.3f}-{cy[1]:.3f})"
        )

    table = Table(title="Targets")
    for col in ("target", "measured", "required", "result"):
        table.add_column(col, justify="left" if col == "target" else "right")
    for t in results["targets"]:
        verdict = "[green]PASS[/green]" if t["passed"] else "[red]FAIL[/red]"
        table.add_row(t["name"], f"{t['value']:.4g}", t["threshold"], verdict)
    console.print(table)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(cfg: BenchConfig, devices: Sequence[str], console: Console | None = None) -> dict:
    """Run the whole codec benchmark and print it; returns every number (JSON-serialisable)."""
    console = console or Console()
    results = {
        "config": asdict(cfg),
        "environment": {
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "cpu": f"{_cpu_name()}, {os.cpu_count()} logical cores",
            "devices": list(devices),
            # Other processes on the machine inflate timings (medians resist short bursts only).
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "cuda_device": torch.cuda.get_device_name(0) if "cuda" in devices else None,
        },
        "speed": speed(cfg, devices),
        "accuracy": accuracy(cfg),
    }
    results["targets"] = evaluate_targets(results["speed"], results["accuracy"], devices)
    results["all_passed"] = all(t["passed"] for t in results["targets"])
    render(results, console)
    return results


def config_from_args(quick: bool, repeats: int | None, trials: int | None) -> BenchConfig:
    cfg = QUICK if quick else BenchConfig()
    if repeats is not None:
        cfg = replace(cfg, repeats=repeats)
    if trials is not None:
        cfg = replace(cfg, trials=trials)
    return cfg


__all__ = [
    "BenchConfig",
    "QUICK",
    "accuracy",
    "dark_loop",
    "encode_loop",
    "evaluate_targets",
    "gaussian_crb",
    "numpy_argmax",
    "reference_gaussian_blur",
    "reference_taylor",
    "run",
    "speed",
    "time_ms",
]
