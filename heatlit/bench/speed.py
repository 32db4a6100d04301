"""Speed: heatlit's batched codecs against the loop baselines and one numpy argmax pass, per thread count.

Decode input: unbiased sigma maps of keypoints at least 2 sigma inside, plus white noise (network-like
output: every map has a peak, and noise peaks for the multi-peak decoder). Encode input: keypoints
spread a little beyond the frame and ~15% invisible, so every branch of the weight logic runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from heatlit.bench.baselines import dark_loop, encode_loop, numpy_argmax
from heatlit.bench.data import interior_keypoints, render
from heatlit.bench.machine import load_average, threads, time_rounds
from heatlit.bench.settings import BenchConfig
from heatlit.codecs import dark_decode, gaussian_heatmaps, multipeak_decode


def speed(cfg: BenchConfig, devices: Sequence[str]) -> dict:
    """Time the loop baselines (CPU, one thread), and on each device heatlit's codecs beside a fresh numpy
    argmax pass; on CPU at every thread count of ``cfg.threads``.

    Returns ``{"cpu_reference": {method: timing}, "<device>": {"<threads>": {method: timing}}}`` with
    timings from :func:`heatlit.bench.machine.time_rounds`; the load average before each block is kept
    under ``"load"``. (A CUDA device has one entry, keyed by the CPU thread count torch had.)
    """
    g = torch.Generator().manual_seed(cfg.seed)
    size = (cfg.height, cfg.width)
    kp = interior_keypoints(cfg.batch, cfg.joints, size, 2 * cfg.sigma, g)
    maps = render(kp, size, cfg.sigma, cfg.noise_std, g)
    maps_np = np.ascontiguousarray(maps.numpy())
    spread = torch.tensor([cfg.width + 8.0, cfg.height + 8.0])
    enc_kp = torch.rand(cfg.batch, cfg.joints, 2, generator=g) * spread - 4.0
    enc_vis = (torch.rand(cfg.batch, cfg.joints, generator=g) > 0.15).float()
    enc_kp_np, enc_vis_np = enc_kp.numpy(), enc_vis.numpy()

    cpu = torch.device("cpu")
    with threads(1):
        out: dict = {
            "load": {"cpu_reference": load_average()},
            "cpu_reference": time_rounds(
                {
                    "dark_loop": lambda: dark_loop(maps_np, cfg.kernel),
                    "encode_loop": lambda: encode_loop(enc_kp_np, enc_vis_np, size, cfg.sigma),
                },
                max(3, cfg.repeats // 5),  # 50 ms a call: a fifth of the repeats already takes seconds
                max(1, cfg.warmup // 5),
                cpu,
            ),
        }
    for name in devices:
        device = torch.device(name)
        m, k, v = maps.to(device), enc_kp.to(device), enc_vis.to(device)
        methods = {
            "numpy_argmax": lambda: numpy_argmax(maps_np),
            "dark_decode": lambda m=m: dark_decode(m, cfg.kernel),
            "gaussian_heatmaps": lambda k=k, v=v: gaussian_heatmaps(k, v, size, cfg.sigma),
            "multipeak": lambda m=m: multipeak_decode(m),
            "multipeak_peaks": lambda m=m: multipeak_decode(m, modulation="peaks", kernel=cfg.kernel),
            "multipeak_map": lambda m=m: multipeak_decode(m, modulation="map", kernel=cfg.kernel),
        }
        counts = cfg.threads if device.type == "cpu" else (torch.get_num_threads(),)
        out[name] = {}
        for count in counts:
            with threads(count):
                out["load"][f"{name}/{count}"] = load_average()
                out[name][str(count)] = time_rounds(methods, cfg.repeats, cfg.warmup, device)
    return out
