"""Training losses: heatmap MSE, integral (soft-argmax) L1 or both (:class:`HeatmapLoss`), and the losses of
the other coordinate representations: DSNT, SimCC (KL / cross-entropy) and UDP's offset maps.

Shapes follow :mod:`heatlit.codecs`: predictions ``[B, K, H, W]`` or ``[B, K, D, H, W]``; keypoints in
heatmap pixels ``[B, K, n]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from heatlit.codecs import megvii_heatmaps, soft_argmax

Tensor = torch.Tensor


def heatmap_mse(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """DARK/HRNet's joints MSE: ``0.5 * mean((w * (pred - target))^2)`` over batch, joints and pixels.

    Args:
        pred, target: ``[B, K, *S]``; weight: ``[B, K]`` target weights (0 drops a joint).
    """
    if not isinstance(target, Tensor) or pred.shape != target.shape:
        raise ValueError(
            f"heatmap predictions {list(pred.shape)} do not match the targets "
            f"{list(getattr(target, 'shape', [type(target).__name__]))}: this encoding's targets need another "
            "head and loss (udp_offset: UDPOffsetLoss; simcc: the SimCC head and SimCCLoss)"
        )
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


class MSPNLoss(HeatmapLoss):
    """Heatmap MSE with MSPN's per-stage targets (Li et al. 2019): early stages learn wider Megvii targets.

    The last stage is compared with the encoding's target (``batch["heatmaps"]``: MSPN's final kernel 7 in
    ``representation=mspn``); the stages before it with Megvii targets (:func:`heatlit.codecs.megvii_heatmaps`)
    blurred by ``stage_kernels``, counted back from the stage before the last (MSPN's 15, 11, 9: a 2-stage model
    uses 9, a 4-stage one all three; stages beyond the list reuse its first kernel). Those targets are encoded
    from ``batch["keypoints_hm"]`` and the joints with ``target_weight > 0`` (a Megvii target's weight does not
    depend on its kernel), with OpenCV's sigma for each kernel.
    """

    def __init__(
        self, stage_kernels: Sequence[int] = (15, 11, 9), peak: float = 1.0, decode_beta: float = 20.0
    ):
        super().__init__(mse_weight=1.0, integral_weight=0.0, decode_beta=decode_beta)
        self.stage_kernels = tuple(int(k) for k in stage_kernels)
        if not self.stage_kernels or any(k < 1 or k % 2 == 0 for k in self.stage_kernels):
            raise ValueError(
                f"MSPNLoss: stage_kernels must be odd positive widths, got {list(stage_kernels)}"
            )
        self.peak = float(peak)

    def forward(self, outputs: Sequence[Tensor], batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        weight, final = batch["target_weight"], batch["heatmaps"]
        n = final.dim() - 2
        parts = {"mse": heatmap_mse(outputs[-1], final, weight)}
        for back, o in enumerate(reversed(outputs[:-1])):
            kernel = self.stage_kernels[max(len(self.stage_kernels) - 1 - back, 0)]
            target, _ = megvii_heatmaps(
                batch["keypoints_hm"][..., :n], weight > 0, final.shape[2:], kernel, None, self.peak
            )
            key = f"mse_k{kernel}"  # stages beyond the list share their kernel's entry
            parts[key] = parts.get(key, 0.0) + heatmap_mse(o, target, weight)
        return sum(parts.values()), parts


# ---------------------------------------------------------------- losses of the other representations (issue 17)
# Same module contract as HeatmapLoss: ``loss(outputs, batch) -> (total, parts)`` with ``outputs`` the model's
# per-stage predictions (summed over stages) and ``batch`` the data module's dict. DSNTLoss, a heatmap loss,
# also carries ``decode_beta`` for the soft-argmax decoder's config. ``output_kind`` names the predictions a
# loss reads (heatlit.training.outputs; a loss without it reads heatmaps).


def _weighted_mean(per_joint: Tensor, weight: Tensor) -> Tensor:
    """``per_joint [B, K]`` -> mean over joints with ``weight [B, K] > 0`` (0 when none); NaN-safe."""
    w = weight.to(per_joint.dtype)
    return torch.where(w > 0, per_joint * w, torch.zeros_like(per_joint)).sum() / w.sum().clamp(min=1e-12)


def _divergence(log_p: Tensor, log_q: Tensor, kind: str) -> Tensor:
    """Divergence between distributions given as log-probabilities ``[..., N]`` -> ``[...]`` (nats).

    ``"kl"``: KL(p || q), as the DSNT reference orders it (p the prediction); ``"js"``: Jensen-Shannon,
    symmetric and bounded by log 2. Log-space throughout, so zeros of either distribution stay finite.
    """
    if kind == "kl":
        return (log_p.exp() * (log_p - log_q)).sum(-1)
    log_m = torch.logaddexp(log_p, log_q) - math.log(2.0)
    return 0.5 * (log_p.exp() * (log_p - log_m)).sum(-1) + 0.5 * (log_q.exp() * (log_q - log_m)).sum(-1)


DIVERGENCES = ("js", "kl")


def dsnt_loss(
    pred: Tensor, keypoints_hm: Tensor, weight: Tensor, sigma: float = 1.0, divergence: str = "js"
) -> tuple[Tensor, Tensor]:
    """DSNT (Nibali et al. 2018): coordinate loss on the soft-argmax plus a divergence regulariser.

    The heatmap is normalised by a spatial softmax; its expectation is the predicted coordinate
    (:func:`heatlit.codecs.soft_argmax` at beta 1). The coordinate term is DSNT's Euclidean distance in
    its normalised units, where each axis' frame extent ``[-0.5, S - 0.5]`` spans ``[-1, 1]``
    (``u = (2 x + 1) / S - 1``, exactly DSNT's pixel-centre convention). The regulariser is the
    divergence between the normalised heatmap and a Gaussian of standard deviation ``sigma`` heatmap px
    centred on the ground truth, normalised over the frame (computed in log space, so it is finite
    everywhere).

    Args:
        pred: ``[B, K, *S]`` logits (2D or 3D). keypoints_hm: ``[B, K, >=n]`` heatmap px (the first n columns).
        weight: ``[B, K]``; joints with weight 0 or non-finite coordinates are left out.
        sigma: target standard deviation, heatmap px. divergence: ``"js"`` or ``"kl"``.

    Returns:
        ``(coordinate loss, divergence)``: each the mean over weighted joints (0 when there are none).
    """
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
    pred = pred.float()
    spatial = pred.shape[2:]
    n = len(spatial)
    target = keypoints_hm[..., :n].to(pred.dtype)
    valid = (weight > 0) & torch.isfinite(target).all(-1)
    target = torch.where(valid[..., None], target, torch.zeros_like(target))
    weight = torch.where(valid, weight.to(pred.dtype), torch.zeros_like(target[..., 0]))

    coords, _ = soft_argmax(pred, beta=1.0)
    extent = torch.tensor([float(s) for s in reversed(spatial)], device=pred.device)
    # d(u) = 2 d(x) / S per axis; a tiny floor keeps the gradient of the norm finite at a perfect answer.
    dist = torch.sqrt((((coords - target) * 2 / extent) ** 2).sum(-1) + 1e-12)

    log_q = torch.zeros_like(pred)
    for axis, size in enumerate(reversed(spatial)):
        grid = torch.arange(size, dtype=pred.dtype, device=pred.device)
        d2 = (grid - target[..., axis, None]) ** 2 / (2 * sigma * sigma)  # [B, K, S_axis]
        log_q = log_q - d2.reshape(*d2.shape[:2], *[-1 if dim == n - 1 - axis else 1 for dim in range(n)])
    log_p = torch.log_softmax(pred.flatten(2), -1)
    div = _divergence(log_p, torch.log_softmax(log_q.flatten(2), -1), divergence)
    return _weighted_mean(dist, weight), _weighted_mean(div, weight)


class DSNTLoss(nn.Module):
    """``coordinate + reg_weight * divergence`` of :func:`dsnt_loss`, summed over supervised stages.

    Decode with the soft-argmax at beta 1 (``decode_beta``, read by ``conf/decoder/soft_argmax_auto.yaml``):
    that expectation is the coordinate DSNT trains. 2D and 3D heads.
    """

    def __init__(
        self, sigma: float = 1.0, divergence: str = "js", reg_weight: float = 1.0, decode_beta: float = 1.0
    ) -> None:
        super().__init__()
        if not sigma > 0 or not reg_weight >= 0 or divergence not in DIVERGENCES:
            raise ValueError(
                f"DSNTLoss needs sigma > 0, reg_weight >= 0 and divergence in {DIVERGENCES}; got sigma={sigma}, "
                f"reg_weight={reg_weight}, divergence={divergence!r}"
            )
        self.sigma, self.divergence, self.reg_weight = float(sigma), divergence, float(reg_weight)
        self.decode_beta = float(decode_beta)

    def forward(self, outputs: Sequence[Tensor], batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        """``outputs``: per-stage logits ``[B, K, *S]``; ``batch``: needs keypoints_hm and target_weight."""
        terms = [
            dsnt_loss(o, batch["keypoints_hm"], batch["target_weight"], self.sigma, self.divergence)
            for o in outputs
        ]
        parts = {"coord": sum(t[0] for t in terms), "divergence": sum(t[1] for t in terms)}
        return parts["coord"] + self.reg_weight * parts["divergence"], parts


def simcc_loss(
    pred: Sequence[Tensor], labels: Sequence[Tensor], weight: Tensor, beta: float = 1.0, kind: str = "kl"
) -> Tensor:
    """SimCC's classification loss, summed over the axes.

    ``"kl"``: ``KL(label || softmax(beta * logits))`` per vector, the reference's (in nats, summed over bins
    rather than averaged); ``"ce"``: cross-entropy ``-sum label * log softmax``, which is KL plus the labels'
    own entropy, a constant: the same gradients.

    Args:
        pred: n tensors ``[B, K, N_a]`` of logits (x, y[, z]); labels: matching label tensors (normalised
            here, so peak-1 labels work too); weight: ``[B, K]``.

    Returns:
        Mean over weighted joints of the per-joint sum over axes (0 when no joint has weight).
    """
    if kind not in ("kl", "ce"):
        raise ValueError(f"simcc loss kind must be 'kl' or 'ce', got {kind!r}")
    if len(pred) != len(labels) or any(p.shape != t.shape for p, t in zip(pred, labels)):
        raise ValueError(
            f"SimCC predictions {[list(p.shape) for p in pred]} do not match the labels "
            f"{[list(t.shape) for t in labels]}: the head's bins must be the codec's (frame size x split_ratio)"
        )
    per_joint = torch.zeros_like(weight, dtype=torch.float32)
    for logits, label in zip(pred, labels):
        log_p = torch.log_softmax(beta * logits.float(), -1)
        t = label.float() / label.float().sum(-1, keepdim=True).clamp(min=1e-30)
        cross = -(t * log_p).sum(-1)
        per_joint = per_joint + (cross + torch.special.xlogy(t, t).sum(-1) if kind == "kl" else cross)
    return _weighted_mean(per_joint, weight)


class SimCCLoss(nn.Module):
    """:func:`simcc_loss` summed over stages. ``outputs``: per-stage tuples of per-axis logits; the labels are
    ``batch["heatmaps"]`` (where the data module puts the encoder's output), weights ``batch["target_weight"]``."""

    output_kind = "simcc"

    def __init__(self, beta: float = 1.0, kind: str = "kl") -> None:
        super().__init__()
        if not beta > 0 or kind not in ("kl", "ce"):
            raise ValueError(
                f"SimCCLoss needs beta > 0 and kind in ('kl', 'ce'), got beta={beta}, kind={kind!r}"
            )
        self.beta, self.kind = float(beta), kind

    def forward(self, outputs: Sequence[Sequence[Tensor]], batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        total = sum(
            simcc_loss(o, batch["heatmaps"], batch["target_weight"], self.beta, self.kind) for o in outputs
        )
        return total, {self.kind: total}


def udp_offset_mse(pred: Tensor, target: Tensor, weight: Tensor, offset_weight: float = 1.0) -> Tensor:
    """UDP's combined-target loss: MSE on the classification plus MSE on the offsets inside the disk.

    Follows the reference's per-joint ``0.5 (mse_cls + mse_x + mse_y)``: offsets are compared only where the
    target classification is 1 (elsewhere they are undefined).

    Args:
        pred: ``[B, K, 1 + n, *S]``, or ``[B, K (1 + n), *S]`` as a plain head emits it (reshaped here).
        target: ``[B, K, 1 + n, *S]`` from :func:`heatlit.codecs.udp_offset_maps`; weight: ``[B, K]``.
    """
    if pred.shape != target.shape:
        if pred.numel() != target.numel():
            raise ValueError(
                f"UDP offset predictions {list(pred.shape)} do not fit the targets {list(target.shape)}: the head "
                "needs K * (1 + n) output channels"
            )
        pred = pred.reshape(target.shape)
    cls = target[:, :, :1]
    n = target.shape[2] - 1
    return heatmap_mse(pred[:, :, 0], target[:, :, 0], weight) + offset_weight * n * heatmap_mse(
        cls * pred[:, :, 1:], cls * target[:, :, 1:], weight
    )


class UDPOffsetLoss(nn.Module):
    """:func:`udp_offset_mse` summed over stages; targets are ``batch["heatmaps"]``."""

    output_kind = "udp_offset"

    def __init__(self, offset_weight: float = 1.0) -> None:
        super().__init__()
        if not offset_weight >= 0:
            raise ValueError(f"offset_weight must be >= 0, got {offset_weight}")
        self.offset_weight = float(offset_weight)

    def forward(self, outputs: Sequence[Tensor], batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        total = sum(
            udp_offset_mse(o, batch["heatmaps"], batch["target_weight"], self.offset_weight) for o in outputs
        )
        return total, {"udp_offset": total}
