"""Training losses on heatmap outputs: weighted heatmap MSE, integral (soft-argmax) L1, or both.

Shapes follow :mod:`heatlit.codecs`: predictions ``[B, K, H, W]`` or ``[B, K, D, H, W]``; keypoints in
heatmap pixels ``[B, K, n]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from heatlit.codecs import soft_argmax

Tensor = torch.Tensor


def heatmap_mse(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """DARK/HRNet's joints MSE: ``0.5 * mean((w * (pred - target))^2)`` over batch, joints and pixels.

    Args:
        pred, target: ``[B, K, *S]``; weight: ``[B, K]`` target weights (0 drops a joint).
    """
    w = weight.reshape(*weight.shape, *([1] * (pred.dim() - 2)))
    return 0.5 * ((pred - target) * w).pow(2).mean()


def integral_l1(pred: Tensor, keypoints_hm: Tensor, weight: Tensor, beta: float = 1.0) -> Tensor:
    """Integral regression (Sun et al. 2018): L1 between soft-argmax coordinates and the ground truth.

    Args:
        pred: ``[B, K, *S]`` logits; keypoints_hm: ``[B, K, >=n]`` heatmap pixels (the first n columns
            are used, n = number of spatial axes); weight: ``[B, K]``.

    Returns:
        Mean absolute error in heatmap pixels per coordinate over weighted joints (0 when none).
    """
    coords, _ = soft_argmax(pred, beta=beta)
    n = coords.shape[-1]
    err = (coords - keypoints_hm[..., :n]).abs().sum(-1) * weight
    return err.sum() / (weight.sum() * n).clamp(min=1)


class HeatmapLoss(nn.Module):
    """``mse_weight * heatmap_mse + integral_weight * integral_l1``, summed over supervised stages.

    Every stage of a multi-stage model (hourglass stacks) is supervised against the same target, as
    intermediate supervision prescribes.
    """

    def __init__(
        self,
        mse_weight: float = 1.0,
        integral_weight: float = 0.0,
        beta: float = 1.0,
        decode_beta: float | None = None,
    ) -> None:
        super().__init__()
        if mse_weight < 0 or integral_weight < 0 or mse_weight + integral_weight <= 0:
            raise ValueError(
                f"loss weights must be >= 0 and not both 0, got mse_weight={mse_weight}, "
                f"integral_weight={integral_weight}"
            )
        if not beta > 0:
            raise ValueError(f"loss beta must be > 0, got {beta}")
        self.mse_weight, self.integral_weight, self.beta = (
            float(mse_weight),
            float(integral_weight),
            float(beta),
        )
        # The soft-argmax sharpness that suits maps trained with this loss (read by the soft_argmax decoder's
        # config): the training beta for integral regression, a sharp one for peak-1 MSE Gaussians.
        self.decode_beta = float(decode_beta) if decode_beta is not None else self.beta

    def forward(self, outputs: Sequence[Tensor], batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        """``outputs``: per-stage predictions; ``batch``: needs heatmaps, target_weight, keypoints_hm."""
        parts: dict[str, Tensor] = {}
        weight = batch["target_weight"]
        if self.mse_weight > 0:
            parts["mse"] = sum(heatmap_mse(o, batch["heatmaps"], weight) for o in outputs)
        if self.integral_weight > 0:
            parts["integral"] = sum(integral_l1(o, batch["keypoints_hm"], weight, self.beta) for o in outputs)
        total = self.mse_weight * parts.get("mse", 0.0) + self.integral_weight * parts.get("integral", 0.0)
        return total, parts
