"""Accuracy of every single-peak decoder on closed-form maps: inside the frame against the Cramer-Rao
bound, and within 1.5 px of an edge or a corner (where DARK's modulation has no pixels to read)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from heatlit.bench.baselines import dark_loop
from heatlit.bench.crb import gaussian_crb
from heatlit.bench.data import border_keypoints, interior_keypoints, render
from heatlit.bench.settings import BenchConfig
from heatlit.codecs import (
    argmax_decode,
    com_decode,
    dark_decode,
    mom_decode,
    multipeak_decode,
    soft_argmax,
    standard_decode,
    standard_top2_decode,
    strongest_peak,
)

Tensor = torch.Tensor


def decoders(cfg: BenchConfig) -> dict[str, Callable[[Tensor], Tensor]]:
    """Name -> ``maps [b, K, H, W] -> coords [b, K, 2]``, the reference loop included.

    soft-argmax runs on the raw peak-1 maps with ``beta = cfg.soft_beta``: with beta = 1 its softmax is
    nearly uniform over the frame and the answer is pulled to the frame centre; beta = 20 concentrates
    the weight near the peak (effective width sigma / sqrt(beta)) while 3072 background pixels at weight
    e^0 still weigh < 1e-5 of the peak's e^20.
    """
    return {
        "dark_decode": lambda h: dark_decode(h, cfg.kernel)[0],
        "dark_loop (reference)": lambda h: torch.from_numpy(dark_loop(h.numpy(), cfg.kernel)[0]),
        "argmax": lambda h: argmax_decode(h)[0],
        "standard (0.25 shift)": lambda h: standard_decode(h)[0],
        "standard_top2 (eq. 2)": lambda h: standard_top2_decode(h)[0],
        "com (whole map)": lambda h: com_decode(h)[0],
        "com (7x7 window)": lambda h: com_decode(h, radius=3)[0],
        "mom (whole map)": lambda h: mom_decode(h)[0],
        "mom (7x7 window)": lambda h: mom_decode(h, radius=3)[0],
        f"soft_argmax (beta={cfg.soft_beta:g})": lambda h: soft_argmax(h, cfg.soft_beta)[0],
        "multipeak (strongest)": lambda h: strongest_peak(*multipeak_decode(h))[0],
    }


def _in_chunks(fn: Callable[[Tensor], Tensor], maps: Tensor, chunk: int) -> Tensor:
    """Apply a decoder ``[b, K, H, W] -> coords [b, K, 2]`` chunk by chunk along B (bounds temporaries)."""
    return torch.cat([fn(maps[i : i + chunk]) for i in range(0, maps.shape[0], chunk)])


def error_stats(coords: Tensor, truth: Tensor) -> dict:
    err = (coords.double() - truth.double()).reshape(-1, 2)
    rms = err.pow(2).mean(0).sqrt()
    return {
        "mean_err_px": err.norm(dim=-1).mean().item(),
        "rms_x_px": rms[0].item(),
        "rms_y_px": rms[1].item(),
        "bias_x_px": err[:, 0].mean().item(),
        "bias_y_px": err[:, 1].mean().item(),
    }


def _score(cfg: BenchConfig, names: list[str] | None, truth: Tensor, maps: dict[str, Tensor]) -> dict:
    table = decoders(cfg)
    out = {}
    for data_name, m in maps.items():
        out[data_name] = {
            name: error_stats(_in_chunks(fn, m, cfg.chunk), truth)
            for name, fn in table.items()
            if names is None or name in names
        }
    return out


def interior(cfg: BenchConfig) -> dict:
    """Decoding error on noise-free and noisy unbiased heatmaps away from the borders, and DARK's RMS
    against the Cramer-Rao bound.

    ``cfg.trials`` maps ``[trials, 1, H, W]`` of peak 1 and width ``cfg.sigma``, each centred on its own
    uniform sub-pixel point ``cfg.margin`` px inside; the noisy set adds i.i.d. ``N(0, noise_std^2)``.

    Returns:
        ``{"noise_free": {method: stats}, "noisy": {method: stats}, "crb": {...}, "dark_vs_crb": {...}}``.
    """
    g = torch.Generator().manual_seed(cfg.seed + 1)
    size = (cfg.height, cfg.width)
    truth = interior_keypoints(cfg.trials, 1, size, cfg.margin, g)
    clean = render(truth, size, cfg.sigma, 0.0, g)
    noisy = clean + cfg.noise_std * torch.randn(clean.shape, generator=g)
    out = _score(cfg, None, truth, {"noise_free": clean, "noisy": noisy})

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


BORDER_DECODERS = [
    "dark_decode",
    "dark_loop (reference)",
    "argmax",
    "standard (0.25 shift)",
    "standard_top2 (eq. 2)",
]


def border(cfg: BenchConfig) -> dict:
    """Mean errors of the local decoders on peaks centred within 1.5 px of an edge, and of a corner.

    ``cfg.border_trials`` maps per region (:func:`heatlit.bench.data.border_keypoints`), noise-free and
    with the same noise as :func:`interior`. Returns ``{region: {"noise_free"|"noisy": {method: stats}}}``.
    """
    g = torch.Generator().manual_seed(cfg.seed + 2)
    size = (cfg.height, cfg.width)
    out = {}
    for region, corner in (("edges", False), ("corners", True)):
        truth = border_keypoints(cfg.border_trials, size, corner, g)[:, None]
        clean = render(truth, size, cfg.sigma, 0.0, g)
        noisy = clean + cfg.noise_std * torch.randn(clean.shape, generator=g)
        out[region] = _score(cfg, BORDER_DECODERS, truth, {"noise_free": clean, "noisy": noisy})
    return out
