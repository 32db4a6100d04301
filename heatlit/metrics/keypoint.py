"""2D keypoint metrics: PCK / PCKh, AUC of the PCK curve, RMSE and mean error (pixels).

Shared update signature: ``update(pred[B, K, 2], target[B, K, 2], visible[B, K], norm[B])`` with
``(x, y)`` in the same pixel space for ``pred`` and ``target`` (see ``docs/CONTRACTS.md``), ``visible``
bool or 0/1 and ``norm`` the per-sample normaliser (head segment for PCKh, bbox size for PCK).
Exclusion and empty-input policies: :class:`heatlit.metrics.base.KeypointMetric`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from heatlit.metrics.base import ErrorSumMetric, KeypointMetric, check_per_sample, usable_norm

Tensor = torch.Tensor


class ThresholdCountMetric(KeypointMetric):
    """Counts, per threshold ``alpha_t`` and joint, the joints with ``error <= alpha_t * norm``.

    States: ``correct[T, K]`` and ``total[K]`` (long), plus ``num_skipped``/``num_invalid``. A visible joint
    with a non-finite prediction is in ``total`` but never in ``correct``. The comparison is made in float64
    and is inclusive, so an error of exactly ``alpha * norm`` is correct.

    Args:
        alphas: the T thresholds, fractions of ``norm`` (>= 0).
        num_joints, kwargs: see :class:`~heatlit.metrics.base.KeypointMetric`.
    """

    higher_is_better = True
    _num_state = "correct"
    _den_state = "total"
    _invalid_policy = "counted as wrong"

    def __init__(self, alphas: Sequence[float], num_joints: int | None = None, **kwargs) -> None:
        super().__init__(num_joints, **kwargs)
        alphas = tuple(float(a) for a in alphas)
        if not alphas or not all(a >= 0 and a < float("inf") for a in alphas):
            raise ValueError(
                f"{type(self).__name__}: alphas must be a non-empty list of finite values >= 0, got {alphas}"
            )
        self.alphas = alphas
        self._add_joint_state("correct", lead=(len(alphas),))
        self._add_joint_state("total")

    def update(self, pred: Tensor, target: Tensor, visible: Tensor, norm: Tensor) -> None:
        """Accumulate a batch.

        Args:
            pred: ``[B, K, 2]`` predicted (x, y) px.
            target: ``[B, K, 2]`` ground-truth (x, y) px.
            visible: ``[B, K]`` bool or 0/1.
            norm: ``[B]`` normaliser px; samples with ``norm <= 0`` or non-finite are skipped.
        """
        pred, target, visible = self._prepare(pred, target, visible)
        norm = check_per_sample(norm, pred.shape[0], "norm", type(self).__name__).to(pred)
        usable = usable_norm(norm)[:, None].expand_as(visible)
        counted, valid, err = self._score(pred, target, visible, usable)
        alphas = torch.tensor(self.alphas, dtype=torch.float64, device=pred.device)
        hit = valid & (err <= alphas[:, None, None] * norm[None, :, None])  # [T, B, K]
        self.correct += hit.sum(1)
        self.total += counted.sum(0)

    def _finish(self, ratio: Tensor) -> Tensor:
        return 100.0 * self._summarise(ratio)

    def _summarise(self, curve: Tensor) -> Tensor:
        """``[T, ...]`` fraction correct per threshold -> ``[...]``."""
        raise NotImplementedError


class PCK(ThresholdCountMetric):
    """Percentage of Correct Keypoints: ``error <= alpha * norm``, in percent (0-100).

    ``norm[B]`` is whatever size the protocol prescribes, e.g. ``max(w, h)`` of the person box. See
    :class:`ThresholdCountMetric` for states and policies; ``compute_per_joint()`` gives ``[K]`` percent.

    Args:
        alpha: threshold as a fraction of ``norm`` (default 0.2).
        num_joints, kwargs: see :class:`~heatlit.metrics.base.KeypointMetric`.
    """

    def __init__(self, alpha: float = 0.2, num_joints: int | None = None, **kwargs) -> None:
        super().__init__((alpha,), num_joints, **kwargs)
        self.alpha = float(alpha)

    def _summarise(self, curve: Tensor) -> Tensor:
        return curve[0]


class PCKh(PCK):
    """PCK normalised by the head segment (``norm[B]`` = neck-to-head length px), in percent.

    The threshold is exactly ``alpha`` (default 0.1). The HRNet/DarkPose MPII evaluation reports
    ``pckAll[11]`` of ``np.arange(0, 0.5 + 0.01, 0.01)`` as "PCKh@0.1", which is alpha = 0.11; numbers
    from this class are therefore not comparable with theirs at 0.1 (they are at 0.5).
    """

    def __init__(self, alpha: float = 0.1, num_joints: int | None = None, **kwargs) -> None:
        super().__init__(alpha, num_joints, **kwargs)


class AUC(ThresholdCountMetric):
    """Area under the PCK curve over ``alpha`` in ``[0, alpha_max]``, divided by ``alpha_max``, in percent.

    The curve is sampled at ``num_thresholds`` equally spaced alphas (both ends included) and integrated
    with the trapezoid rule, from exact per-threshold counts (no errors are stored). 100 means every joint
    is within ``0 * norm``; a joint at ratio ``r = error / norm`` contributes about ``1 - r / alpha_max``.

    Args:
        alpha_max: upper end of the threshold range (default 0.5, for head-segment normalisers).
        num_thresholds: samples of the curve, >= 2 (default 51, a step of 0.01 for 0.5).
        num_joints, kwargs: see :class:`~heatlit.metrics.base.KeypointMetric`.
    """

    def __init__(
        self, alpha_max: float = 0.5, num_thresholds: int = 51, num_joints: int | None = None, **kwargs
    ) -> None:
        if not alpha_max > 0 or int(num_thresholds) < 2:
            raise ValueError(
                f"AUC: need alpha_max > 0 and num_thresholds >= 2, got {alpha_max}, {num_thresholds}"
            )
        alphas = torch.linspace(0.0, float(alpha_max), int(num_thresholds), dtype=torch.float64).tolist()
        super().__init__(alphas, num_joints, **kwargs)
        self.alpha_max = float(alpha_max)

    def _summarise(self, curve: Tensor) -> Tensor:
        return torch.trapezoid(curve, dx=1.0 / (curve.shape[0] - 1), dim=0)


class _Error2D(ErrorSumMetric):
    """2D error metric with the shared update signature (``norm`` is accepted and checked, not used)."""

    def update(self, pred: Tensor, target: Tensor, visible: Tensor, norm: Tensor | None = None) -> None:
        """Accumulate a batch.

        Args:
            pred: ``[B, K, 2]`` predicted (x, y) px.
            target: ``[B, K, 2]`` ground-truth (x, y) px.
            visible: ``[B, K]`` bool or 0/1.
            norm: ``[B]`` or None; ignored (kept so one MetricCollection call feeds every 2D metric).
        """
        pred, target, visible = self._prepare(pred, target, visible)
        if norm is not None:
            check_per_sample(norm, pred.shape[0], "norm", type(self).__name__)
        self._accumulate(pred, target, visible, torch.ones_like(visible))


class RMSE(_Error2D):
    """Root mean squared Euclidean error in px, ``sqrt(sum ||e||^2 / N)`` over scored joints.

    Non-finite predictions are left out of both sum and N and counted in ``num_invalid`` (``compute()``
    warns), so check that state: it is the price of a finite, defined value.
    """

    power = 2


class MeanError(_Error2D):
    """Mean Euclidean error in px over scored joints (non-finite predictions as in :class:`RMSE`)."""

    power = 1
