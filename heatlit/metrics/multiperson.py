"""Multi-person keypoint detection: the candidate peaks of each channel against every person's joint.

Bottom-up heatmaps hold all people in one channel per joint type, so a decoder returns several candidate
peaks per channel (:class:`heatlit.codecs.MultiPeakDecoder`) and there is no "joint k of sample b" to
compare one coordinate with. Scoring, per channel and distance threshold ``t``:

1. **Matching**: peaks and the visible ground-truth joints of that type are paired one to one, a pair only
   if it is at most ``t`` apart; the matching has as many pairs as possible and, among those, the smallest
   summed distance (the linear-assignment, "Hungarian", answer with distance as the cost and ``t`` as the
   gate). Scores play no part: a peak counts as found by where it is, not by how confident it is. (COCO's
   greedy rule instead walks the peaks by score and gives each the nearest free joint; it can pair fewer.)
   :func:`match_peaks` solves it exactly and batched, by dynamic programming over the subsets of a
   channel's joints (2^M states, fine for the few people of a frame; M <= :data:`MAX_TRUTH`).
2. **Precision / recall / F1 at t**: matched peaks over all peaks, matched joints over all visible joints.
3. **AP at t**: all peaks of all channels and samples ranked by score (descending, ties in input order),
   precision at each rank made non-increasing (the all-point interpolation of VOC 2010+ and COCO, without
   COCO's 101-point sampling), summed over the matched peaks and divided by the number of joints.
   ``peak_ap`` is the mean of AP over ``ap_thresholds``, as COCO's AP averages over OKS thresholds.

A peak is real when its score is > 0 (the multi-peak decoders pad with score 0); a peak with a non-finite
coordinate never matches. A joint is counted when ``visible`` and finite; a visible joint with a
non-finite coordinate is skipped and counted in ``num_skipped``. Units: thresholds are in the units of the
coordinates (the trainer passes input pixels); ratios are in percent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat, rank_zero_warn

Tensor = torch.Tensor

#: Default distances ``peak_ap`` averages over: 1, 2, ..., 8.
AP_THRESHOLDS = tuple(float(t) for t in range(1, 9))
MAX_TRUTH = 10  # joints of one type per channel the exact matching handles (2^10 subset states)


def _pairs(peaks: Tensor, real: Tensor, truth: Tensor, valid: Tensor) -> Tensor:
    """``[N, P, M]`` float64 distances, +inf where a peak is not real or a joint not valid."""
    d = torch.linalg.vector_norm(peaks.double()[:, :, None] - truth.double()[:, None], dim=-1)
    usable = real[:, :, None] & valid[:, None, :] & torch.isfinite(d)
    return torch.where(usable, d, torch.inf)


def match_peaks(
    peaks: Tensor, real: Tensor, truth: Tensor, valid: Tensor, thresholds: Sequence[float]
) -> Tensor:
    """Which peaks the largest, then shortest, matching pairs with a joint, per distance threshold.

    Args:
        peaks: ``[N, P, n]`` candidate positions of N channels; real: ``[N, P]`` bool (false: padding).
        truth: ``[N, M, n]`` joint positions; valid: ``[N, M]`` bool (false: not visible or padding).
        thresholds: T gates: a pair is allowed when the distance is ``<= t``.

    Returns:
        ``hits [T, N, P]`` bool: the peak is paired with a joint in the matching for that threshold (see
        the module docstring). Exact: dynamic programming over the subsets of each channel's M joints, one
        pass per peak slot, batched over thresholds and channels (no loop over either).
    """
    n, p = real.shape
    m = valid.shape[1]
    if m > MAX_TRUTH:
        raise ValueError(
            f"match_peaks: {m} joints per channel, more than the {MAX_TRUTH} the exact matching takes"
        )
    dist = _pairs(peaks, real, truth, valid)
    t = torch.as_tensor(list(thresholds), dtype=torch.float64, device=dist.device)
    hits = torch.zeros(len(t), n, p, dtype=torch.bool, device=dist.device)
    allowed = dist[None] <= t[:, None, None, None]  # [T, N, P, M]
    rows = allowed.flatten(2).any(-1).flatten().nonzero()[:, 0]  # (threshold, channel) pairs with a pair
    if rows.numel() == 0:
        return hits
    allowed = allowed.flatten(0, 1)[rows]
    # Objective: pairs x big - summed distance, with big above any summed distance: most pairs first.
    big = (m + 1) * (float(t.max()) + 1.0)
    gain = torch.where(allowed, big - dist.repeat(len(t), 1, 1)[rows], -torch.inf)  # [R, P, M]
    states = torch.arange(1 << m, device=dist.device)
    bits = 1 << torch.arange(m, device=dist.device)
    holds = (states[:, None] & bits) > 0  # [S, M]: joint j is in subset s
    before = states[:, None] ^ bits  # [S, M]: the subset without joint j
    value = torch.full((len(rows), 1 << m), -torch.inf, dtype=torch.float64, device=dist.device)
    value[:, 0] = 0.0
    choice = torch.zeros(len(rows), p, 1 << m, dtype=torch.int8, device=dist.device)  # 0: unpaired, j+1
    for slot in range(p):
        paired = (value[:, before] + gain[:, slot, None, :]).masked_fill(~holds, -torch.inf)  # [R, S, M]
        best, joint = paired.max(-1)
        take = best > value
        choice[:, slot] = torch.where(take, joint + 1, 0).to(torch.int8)
        value = torch.where(take, best, value)
    state = value.argmax(-1)
    out = torch.zeros(len(rows), p, dtype=torch.bool, device=dist.device)
    for slot in reversed(range(p)):
        joint = choice[:, slot].gather(1, state[:, None])[:, 0].long()
        out[:, slot] = joint > 0
        state = torch.where(joint > 0, state ^ (1 << (joint - 1).clamp(min=0)), state)
    hits.view(len(t) * n, p)[rows] = out
    return hits


def average_precision(scores: Tensor, hits: Tensor, num_truth: int) -> Tensor:
    """All-point interpolated AP of ranked detections.

    Args:
        scores: ``[N]`` detection scores; hits: ``[N, T]`` bool, detection matched at each threshold.
        num_truth: joints to find.

    Returns:
        ``[T]`` float64 in [0, 1]: ``sum_i hit_i * max_{j >= i} precision_j / num_truth`` over the
        detections ranked by descending score (ties keep input order); 0 when ``num_truth`` is 0.
    """
    if num_truth == 0 or scores.numel() == 0:
        return torch.zeros(hits.shape[-1], dtype=torch.float64, device=hits.device)
    order = torch.argsort(scores, descending=True, stable=True)
    ranked = hits[order].double()
    rank = torch.arange(1, len(scores) + 1, dtype=torch.float64, device=hits.device)[:, None]
    precision = ranked.cumsum(0) / rank
    envelope = precision.flip(0).cummax(0).values.flip(0)
    return (envelope * ranked).sum(0) / num_truth


def _check(values: Sequence[float], name: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in values)
    if not values or any(not (math.isfinite(v) and v >= 0) for v in values):
        raise ValueError(
            f"PeakDetection: {name} must be a non-empty list of finite distances >= 0, got {values}"
        )
    return values


class PeakDetection(Metric):
    """Precision, recall, F1 and AP of candidate peaks against several people's joints (module docstring).

    Args:
        thresholds: distances at which ``peak_p@t``, ``peak_r@t``, ``peak_f1@t`` and ``peak_ap@t`` are
            reported (coordinate units; input px in training).
        ap_thresholds: distances ``peak_ap`` averages AP over (default :data:`AP_THRESHOLDS`, 1 to 8; None:
            ``thresholds``). The defaults suit input pixels at stride 4: 2 px is half a heatmap pixel.

    ``update(peaks [B, K, P, n], scores [B, K, P], truth [B, M, K, n], visible [B, M, K])``: P peaks per
    channel (score <= 0: padding), M people. ``compute()`` -> dict of scalar tensors, in percent.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(
        self,
        thresholds: Sequence[float] = (2.0, 4.0, 8.0),
        ap_thresholds: Sequence[float] | None = AP_THRESHOLDS,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.thresholds = _check(thresholds, "thresholds")
        self.ap_thresholds = _check(thresholds if ap_thresholds is None else ap_thresholds, "ap_thresholds")
        self.gates = tuple(sorted(set(self.thresholds) | set(self.ap_thresholds)))
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("hits", default=[], dist_reduce_fx="cat")
        self.add_state("num_truth", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("num_skipped", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, peaks: Tensor, scores: Tensor, truth: Tensor, visible: Tensor) -> None:
        if peaks.dim() != 4 or scores.shape != peaks.shape[:3]:
            raise ValueError(
                f"PeakDetection: expected peaks [B, K, P, n] and scores [B, K, P], got "
                f"{tuple(peaks.shape)} and {tuple(scores.shape)}"
            )
        b, k, p, n = peaks.shape
        if (
            truth.dim() != 4
            or truth.shape[0] != b
            or truth.shape[2:] != (k, n)
            or visible.shape != truth.shape[:3]
        ):
            raise ValueError(
                f"PeakDetection: expected truth [B, M, K, n] = [{b}, M, {k}, {n}] and visible [B, M, K], got "
                f"{tuple(truth.shape)} and {tuple(visible.shape)}"
            )
        visible = visible.bool()
        valid = visible & torch.isfinite(truth).all(-1)
        self.num_skipped += (visible & ~valid).sum()
        self.num_truth += valid.sum()
        real = scores > 0  # NaN scores are not > 0: padding
        hits = match_peaks(
            peaks.reshape(b * k, p, n),
            real.reshape(b * k, p),
            truth.transpose(1, 2).reshape(b * k, -1, n),
            valid.transpose(1, 2).reshape(b * k, -1),
            self.gates,
        )
        flat = real.reshape(-1)
        self.scores.append(scores.reshape(-1)[flat].double())
        self.hits.append(hits.reshape(len(self.gates), -1)[:, flat].T)

    def compute(self) -> dict[str, Tensor]:
        if int(self.num_skipped):
            rank_zero_warn(
                f"PeakDetection: {int(self.num_skipped)} visible joints with non-finite coordinates skipped"
            )
        num_truth = int(self.num_truth)
        if num_truth == 0:
            rank_zero_warn(
                "PeakDetection: no visible joint was scored; recall and AP are 0", category=UserWarning
            )
        scores = dim_zero_cat(self.scores) if self.scores else torch.zeros(0, dtype=torch.float64)
        hits = (
            dim_zero_cat(self.hits)
            if self.hits
            else torch.zeros(0, len(self.gates), dtype=torch.bool, device=scores.device)
        )
        ap = average_precision(scores, hits, num_truth)
        found = hits.sum(0).double()
        precision = found / max(len(scores), 1)
        recall = found / max(num_truth, 1)
        f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        out = {}
        for t in self.thresholds:
            g = self.gates.index(t)
            out[f"peak_p@{t:g}"], out[f"peak_r@{t:g}"] = precision[g], recall[g]
            out[f"peak_f1@{t:g}"], out[f"peak_ap@{t:g}"] = f1[g], ap[g]
        out["peak_ap"] = ap[[self.gates.index(t) for t in self.ap_thresholds]].mean()
        return {name: (100.0 * value).float() for name, value in out.items()}
