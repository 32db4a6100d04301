"""Object keypoint similarity (OKS) and the keypoint-expansion upper bound (LOGO-CAP, seed 004).

OKS is COCO's: ``OKS = mean over labelled joints of exp(-d^2 / (2 * area * (2 sigma_k)^2))`` with ``d`` the
distance in image px, ``area`` the person's area in px^2 and ``sigma_k`` the joint's sigma (pycocotools'
``computeOks``).

The upper bound asks: how good could these poses be if every keypoint were allowed to move to the best
point of a small grid around it? Each predicted keypoint is expanded into a ``ksize x ksize`` grid of
candidates whose step is ``unit * sigma_k / min(sigma)`` (LOGO-CAP's Algorithm 1: the joint with the
smallest sigma moves by ``unit`` px per step, a joint with twice the sigma by twice that); against each
ground-truth person the candidate nearest to the true joint is taken, the person with the highest OKS after
that choice is the pose's match, and the refined pose replaces the prediction. Scoring the refined poses with
the ordinary OKS AP gives the *empirical upper bound* of a local refinement of these predictions.

Reading chosen where the seed is silent or inconsistent (docs/UPPER_BOUND.md):

* the grid is ``-r .. r`` with ``r = ksize // 2`` (the seed's ``torch.arange(-radius, radius)`` yields 10
  values, not the 11 its text and tensor shapes state);
* ``unit`` is in image px (the space the poses are scored in), default 1 px as in the seed;
* a joint the matched person does not label keeps its predicted position (nothing to move it to).

Coordinates: ``(x, y)`` image px, pixel centres at integers (``docs/CONTRACTS.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

Tensor = torch.Tensor

#: pycocotools' guard against a zero area (``np.spacing(1)``).
_AREA_EPS = 2.220446049250313e-16


def _sigmas(sigmas: Sequence[float] | Tensor, like: Tensor) -> Tensor:
    s = torch.as_tensor(sigmas, dtype=like.dtype, device=like.device)
    if s.ndim != 1 or not bool((s > 0).all()):
        raise ValueError(f"sigmas must be a positive [K] vector, got {s.tolist()}")
    return s


def keypoint_similarity(pred: Tensor, gt: Tensor, area: Tensor, sigmas: Sequence[float] | Tensor) -> Tensor:
    """Per-joint COCO keypoint similarity ``exp(-d^2 / (2 * area * (2 sigma)^2))``.

    Args:
        pred, gt: ``[..., K, 2]`` (x, y) image px, broadcastable against each other.
        area: ``[...]`` person area in px^2 (broadcast over K).
        sigmas: ``[K]``.

    Returns:
        ``[..., K]`` in ``[0, 1]``; 0 where a coordinate is not finite.
    """
    s = _sigmas(sigmas, pred)
    d2 = (pred - gt).pow(2).sum(-1)
    e = d2 / ((2 * s) ** 2 * (area[..., None] + _AREA_EPS) * 2)
    return torch.exp(-torch.nan_to_num(e, nan=float("inf")))


def oks(pred: Tensor, gt: Tensor, visible: Tensor, area: Tensor, sigmas: Sequence[float] | Tensor) -> Tensor:
    """COCO OKS of poses against ground-truth persons.

    Args:
        pred, gt: ``[..., K, 2]`` image px (broadcastable); visible: ``[..., K]`` bool, the labelled joints
            of ``gt``; area: ``[...]`` px^2; sigmas: ``[K]``.

    Returns:
        ``[...]`` OKS in ``[0, 1]``; 0 for a person without labelled joints (pycocotools scores those by
        their box instead; they never count in AP, see :class:`~heatlit.metrics.coco.CocoOksAP`).
    """
    ks = keypoint_similarity(pred, gt, area, sigmas)
    visible = visible.to(torch.bool)
    return (ks * visible).sum(-1) / visible.sum(-1).clamp(min=1)


def expansion_offsets(
    sigmas: Sequence[float] | Tensor, ksize: int = 11, unit: float = 1.0, like: Tensor | None = None
) -> Tensor:
    """The candidate offsets of the keypoint expansion: ``[K, ksize, ksize, 2]`` (dx, dy) image px.

    Row ``i``, column ``j`` of joint ``k`` is ``((j - r) * step_k, (i - r) * step_k)`` with ``r = ksize // 2``
    and ``step_k = unit * sigma_k / min(sigma)``; the centre ``(r, r)`` is the prediction itself.
    """
    if int(ksize) != ksize or ksize < 1 or ksize % 2 == 0:
        raise ValueError(f"ksize must be an odd positive integer, got {ksize}")
    if not unit > 0:
        raise ValueError(f"unit must be > 0 px, got {unit}")
    like = torch.zeros((), dtype=torch.float64) if like is None else like
    s = _sigmas(sigmas, like)
    r = int(ksize) // 2
    steps = torch.arange(-r, r + 1, dtype=like.dtype, device=like.device)
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    scale = (float(unit) * s / s.min()).view(-1, 1, 1)
    return torch.stack([dx * scale, dy * scale], -1)


def expand_keypoints(
    pred: Tensor, sigmas: Sequence[float] | Tensor, ksize: int = 11, unit: float = 1.0
) -> Tensor:
    """Keypoint expansion maps: ``pred [N, K, 2]`` -> candidates ``[N, K, ksize, ksize, 2]`` image px."""
    if pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"expand_keypoints: expected pred of shape [N, K, 2], got {tuple(pred.shape)}")
    return pred[:, :, None, None, :] + expansion_offsets(sigmas, ksize, unit, pred)


@dataclass(frozen=True)
class KeypointExpansion:
    """The upper-bound refinement: every keypoint may move to the best point of its expansion grid.

    Attributes:
        ksize: grid side (odd), 11 in the seed.
        unit: step of the joint with the smallest sigma, image px (1 in the seed).
        chunk: poses refined at a time (memory is ``chunk x G x K x ksize^2`` distances).
    """

    ksize: int = 11
    unit: float = 1.0
    chunk: int = 512

    def __post_init__(self) -> None:
        expansion_offsets([1.0], self.ksize, self.unit)  # validates ksize and unit
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk}")

    def refine(
        self,
        pred: Tensor,
        gt: Tensor,
        visible: Tensor,
        area: Tensor,
        sigmas: Sequence[float] | Tensor,
        valid: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Move every keypoint to its best expansion candidate for the best-matching ground-truth person.

        Args:
            pred: ``[N, K, 2]`` predicted poses, image px.
            gt: ``[N, G, K, 2]`` the ground-truth persons each pose may match (its image's), image px.
            visible: ``[N, G, K]`` bool, labelled joints of each person.
            area: ``[N, G]`` px^2.
            sigmas: ``[K]``.
            valid: ``[N, G]`` bool, which of the G slots hold a person (padding otherwise); default all.

        Returns:
            ``refined [N, K, 2]`` (the prediction where the match does not label a joint, or where a pose
            has no valid person), ``best_oks [N]`` (the matched person's OKS after refinement, 0 without
            one) and ``matched [N]`` long (index into G, -1 without one).
        """
        n, k = pred.shape[0], pred.shape[1]
        if pred.shape != (n, k, 2) or gt.ndim != 4 or gt.shape[0] != n or gt.shape[2:] != (k, 2):
            raise ValueError(
                f"KeypointExpansion.refine: expected pred [N, K, 2] and gt [N, G, K, 2], "
                f"got {tuple(pred.shape)} and {tuple(gt.shape)}"
            )
        g = gt.shape[1]
        valid = torch.ones(n, g, dtype=torch.bool, device=pred.device) if valid is None else valid.bool()
        if visible.shape != (n, g, k) or area.shape != (n, g) or valid.shape != (n, g):
            raise ValueError(
                f"KeypointExpansion.refine: expected visible [N, G, K] = {(n, g, k)} and area, valid "
                f"[N, G] = {(n, g)}, got {tuple(visible.shape)}, {tuple(area.shape)}, {tuple(valid.shape)}"
            )
        parts = [
            self._refine(pred[i : i + self.chunk], gt[i : i + self.chunk], visible[i : i + self.chunk],
                         area[i : i + self.chunk], sigmas, valid[i : i + self.chunk])
            for i in range(0, n, self.chunk)
        ]  # fmt: skip
        if not parts:
            return pred.clone(), pred.new_zeros(0), torch.zeros(0, dtype=torch.long, device=pred.device)
        return tuple(torch.cat(p) for p in zip(*parts))  # type: ignore[return-value]

    def _refine(self, pred, gt, visible, area, sigmas, valid):
        n, k = pred.shape[:2]
        cand = expand_keypoints(pred, sigmas, self.ksize, self.unit).flatten(2, 3)  # [n, K, S*S, 2]
        d2 = (cand[:, None] - gt[:, :, :, None, :]).pow(2).sum(-1)  # [n, G, K, S*S]
        d2 = torch.nan_to_num(d2, nan=float("inf"))
        # OKS is monotone in each joint's distance, so the nearest candidate is the best one for any area.
        nearest = d2.argmin(-1)  # [n, G, K]
        best = cand[:, None].expand(-1, gt.shape[1], -1, -1, -1)
        best = torch.gather(best, 3, nearest[..., None, None].expand(-1, -1, -1, 1, 2))[..., 0, :]
        score = oks(best, gt, visible, area, sigmas).masked_fill(~valid, -1.0)  # [n, G]
        top, matched = score.max(-1)
        has = top >= 0
        rows = torch.arange(n, device=pred.device)
        moved = best[rows, matched]  # [n, K, 2]
        labelled = visible[rows, matched] & has[:, None]
        refined = torch.where(labelled[..., None], moved, pred)
        return refined, top.clamp(min=0.0), torch.where(has, matched, torch.full_like(matched, -1))
