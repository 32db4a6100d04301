"""The multi-peak decoder on crowded maps: where to put DARK's modulation (nowhere, around each peak, or on
the whole map before NMS as the blog seed does) and how wide the NMS window should be.

Maps: :func:`heatlit.bench.data.crowded_maps`, several Gaussians per channel anywhere in the frame (so some
overlap and some touch the border), with white noise. A prediction is a true positive when it lies within
``distance`` px of a not yet matched centre (greedy, strongest first, as COCO matches); AP is the area
under the precision-recall curve over all maps, ranked by score (all-point interpolation).
"""

from __future__ import annotations

import torch

from heatlit.bench.data import crowded_maps
from heatlit.bench.settings import BenchConfig
from heatlit.codecs import multipeak_decode
from heatlit.codecs.blur import opencv_sigma

Tensor = torch.Tensor

PEOPLE = (3, 6)
NOISE = (0.02, 0.05, 0.1)
THRESHOLD = 0.2  # on the map as it is; "map" modulation scales it by the modulated peak's height


def variants(cfg: BenchConfig) -> dict[str, dict]:
    """Name -> multipeak options. A sigma-s peak blurred at sigma b keeps s^2 / (s^2 + b^2) of its height
    (2D), so the whole-map modulation gets its threshold scaled by that to find the same peaks."""
    blur = opencv_sigma(cfg.kernel)  # DARK's modulation sigma for the kernel
    scaled = THRESHOLD * cfg.sigma**2 / (cfg.sigma**2 + blur**2)
    out = {}
    for nms in (5, 3):
        out[f"none, nms {nms}"] = dict(modulation="none", nms_kernel=nms, threshold=THRESHOLD)
        out[f"peaks, nms {nms}"] = dict(modulation="peaks", nms_kernel=nms, threshold=THRESHOLD)
        out[f"map (seed), nms {nms}"] = dict(modulation="map", nms_kernel=nms, threshold=scaled)
    return {name: {**opts, "kernel": cfg.kernel, "max_peaks": 20} for name, opts in out.items()}


def match(coords: Tensor, scores: Tensor, centres: Tensor, distance: float) -> tuple[Tensor, Tensor]:
    """Greedy matching, strongest prediction first, batched over maps.

    Args:
        coords: ``[N, P, 2]`` sorted by ``scores [N, P]`` (descending; 0 = padding); centres ``[N, T, 2]``.

    Returns:
        ``tp [N, P]`` bool (padding is never a true positive) and ``error [N, P]``, the distance to the
        matched centre (inf where unmatched).
    """
    n, p, _ = coords.shape
    used = torch.zeros(centres.shape[:2], dtype=torch.bool)
    tp = torch.zeros(n, p, dtype=torch.bool)
    error = torch.full((n, p), torch.inf)
    for j in range(p):
        d = (centres - coords[:, j, None]).norm(dim=-1).masked_fill(used, torch.inf)
        best, which = d.min(-1)
        hit = (best <= distance) & (scores[:, j] > 0)
        used[torch.arange(n)[hit], which[hit]] = True
        tp[:, j], error[:, j] = hit, torch.where(hit, best, torch.inf)
    return tp, error


def average_precision(scores: Tensor, tp: Tensor, positives: int) -> float:
    """All-point interpolated AP of the predictions with score > 0 (``[N, P]`` each)."""
    keep = scores > 0
    s, t = scores[keep], tp[keep].double()
    if not len(s):
        return 0.0
    t = t[s.argsort(descending=True)]
    hits = t.cumsum(0)
    precision = hits / torch.arange(1, len(t) + 1)
    recall = hits / positives
    envelope = precision.flip(0).cummax(0).values.flip(0)
    steps = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((steps * envelope).sum())


def crowded(cfg: BenchConfig) -> dict:
    """``{"<people> people, noise <s>": {variant: {"ap_1px", "ap_2px", "recall_2px", "precision_2px",
    "error_px"}}}``; error is the mean distance of the true positives at 2 px."""
    g = torch.Generator().manual_seed(cfg.seed + 3)
    size = (cfg.height, cfg.width)
    out: dict = {}
    for people in PEOPLE:
        for noise in NOISE:
            maps, centres = crowded_maps(cfg.crowded_maps, people, size, cfg.sigma, noise, g)
            row = {}
            for name, opts in variants(cfg).items():
                coords, scores = multipeak_decode(maps, **opts)
                coords, scores = coords[:, 0], scores[:, 0]
                positives = centres.shape[0] * centres.shape[1]
                tp1, _ = match(coords, scores, centres, 1.0)
                tp2, err2 = match(coords, scores, centres, 2.0)
                found = (scores > 0).sum().item()
                row[name] = {
                    "ap_1px": average_precision(scores, tp1, positives),
                    "ap_2px": average_precision(scores, tp2, positives),
                    "recall_2px": tp2.sum().item() / positives,
                    "precision_2px": tp2.sum().item() / max(found, 1),
                    "error_px": err2[tp2].mean().item() if tp2.any() else float("nan"),
                }
            out[f"{people} people, noise {noise:g}"] = row
    return out
