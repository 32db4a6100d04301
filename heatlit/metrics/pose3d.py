"""3D pose metric: mean per-joint position error (MPJPE), in the unit of the inputs (mm by contract)."""

from __future__ import annotations

import torch

from heatlit.metrics.base import ErrorSumMetric, as_mask, check_per_sample

Tensor = torch.Tensor


class MPJPE(ErrorSumMetric):
    """Mean Euclidean distance between predicted and ground-truth 3D joints, mm.

    With ``root_index`` set, both skeletons are first translated so that joint ``root_index`` sits at
    the origin (the usual root-relative protocol); the root itself then contributes an error of 0 and is
    still counted, as in the common Human3.6M implementations. A sample whose root is not visible (or
    has non-finite ground truth) cannot be aligned: its visible joints are skipped (``num_skipped``).
    Samples with ``has_3d`` false are left out silently, since lacking 3D ground truth is expected.
    Non-finite predictions: excluded and counted in ``num_invalid``, as in :class:`~heatlit.metrics.RMSE`.
    ``compute()`` -> scalar mm; ``compute_per_joint()`` -> ``[K]`` mm.

    Args:
        root_index: joint to align at, or None for absolute positions (default).
        num_joints, kwargs: see :class:`~heatlit.metrics.base.KeypointMetric`.
    """

    coord_dim = 3
    power = 1

    def __init__(self, root_index: int | None = None, num_joints: int | None = None, **kwargs) -> None:
        super().__init__(num_joints, **kwargs)
        if root_index is not None and (
            int(root_index) < 0 or (num_joints is not None and root_index >= num_joints)
        ):
            raise ValueError(f"MPJPE: root_index must be in [0, num_joints), got {root_index}")
        self.root_index = None if root_index is None else int(root_index)

    def update(self, pred: Tensor, target: Tensor, visible: Tensor, has_3d: Tensor | None = None) -> None:
        """Accumulate a batch.

        Args:
            pred: ``[B, K, 3]`` predicted joints, mm.
            target: ``[B, K, 3]`` ground-truth joints, mm.
            visible: ``[B, K]`` bool or 0/1.
            has_3d: ``[B]`` bool or 0/1, or None (= every sample has 3D ground truth).
        """
        pred, target, visible = self._prepare(pred, target, visible)
        if has_3d is not None:
            has_3d = as_mask(check_per_sample(has_3d, pred.shape[0], "has_3d", "MPJPE"), "has_3d", "MPJPE")
            visible = visible & has_3d.to(visible.device)[:, None]
        usable = torch.ones_like(visible)
        r = self.root_index
        if r is not None:
            if r >= pred.shape[1]:
                raise ValueError(f"MPJPE: root_index {r} out of range for K={pred.shape[1]} joints")
            root_ok = visible[:, r] & torch.isfinite(target[:, r]).all(-1)
            usable = root_ok[:, None].expand_as(visible)
            pred = pred - pred[:, r : r + 1]
            target = target - target[:, r : r + 1]
        self._accumulate(pred, target, visible, usable)
