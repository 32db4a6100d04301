"""Ready-made metric sets with the keys the trainer logs (``pckh@0.1``, ``rmse``, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torchmetrics import Metric, MetricCollection

from heatlit.metrics.coco import CocoOksAP
from heatlit.metrics.keypoint import AUC, PCK, RMSE, PCKh
from heatlit.metrics.pose3d import MPJPE


class KeypointMetricCollection(MetricCollection):
    """A :class:`~torchmetrics.MetricCollection` whose keys may contain ``"."`` (``"pckh@0.1"``).

    ``torch.nn.ModuleDict`` forbids dots in module names, so each metric is registered under its key with
    ``"."`` replaced by ``"_"`` and every public name (``keys()``, ``items()``, ``compute()``/``forward()``
    results, ``[key]``) is mapped back. Compute groups are off by default: metrics that differ only in a
    constructor argument (PCKh at 0.1 and at 0.5) can have equal states after one batch, and torchmetrics
    would then merge them for good.

    Args:
        metrics: ``{key: Metric}``.
        prefix, postfix: as in ``MetricCollection``.
        compute_groups: as in ``MetricCollection`` (default False, see above).
    """

    def __init__(
        self,
        metrics: dict[str, Metric],
        prefix: str | None = None,
        postfix: str | None = None,
        compute_groups: bool | list[list[str]] = False,
    ) -> None:
        display = {key.replace(".", "_"): key for key in metrics}
        if len(display) != len(metrics):
            raise ValueError(f"KeypointMetricCollection: keys {sorted(metrics)} collide once '.' becomes '_'")
        super().__init__(
            {safe: metrics[key] for safe, key in display.items()},
            prefix=prefix,
            postfix=postfix,
            compute_groups=compute_groups,
        )
        self._display = display
        self._safe = {key: safe for safe, key in display.items()}

    def _set_name(self, base: str) -> str:
        return super()._set_name(getattr(self, "_display", {}).get(base, base))

    def __getitem__(self, key: str, copy_state: bool = True) -> Metric:
        name = key
        if self.prefix and name.startswith(self.prefix):
            name = name[len(self.prefix) :]
        if self.postfix and name.endswith(self.postfix):
            name = name[: -len(self.postfix)]
        return super().__getitem__(self._safe.get(name, name), copy_state=copy_state)


def build_metrics(
    kind: str,
    *,
    num_joints: int | None = None,
    alphas: Sequence[float] | None = None,
    auc_alpha_max: float = 0.5,
    auc_num_thresholds: int = 51,
    root_index: int | None = None,
    ann_file: str | Path | None = None,
    prefix: str | None = None,
) -> KeypointMetricCollection:
    """Build the metric set for one evaluation protocol.

    Kinds and keys (all ratios in percent, errors in px / mm):

    * ``"pckh"``: ``pckh@<a>`` for ``alphas`` (default 0.1 and 0.5), ``rmse``, ``auc`` -- 2D, norm = head
      segment; update ``(pred[B,K,2], target[B,K,2], visible[B,K], norm[B])``.
    * ``"pck"``: ``pck@<a>`` (default 0.2), ``rmse``, ``auc`` -- same update, norm = bbox size.
    * ``"mpjpe"``: ``mpjpe`` with ``root_index``; update ``(pred[B,K,3], target[B,K,3], visible, has_3d)``.
    * ``"coco"``: ``ap`` (:class:`CocoOksAP` on ``ann_file``); update ``(image_id, keypoints, keypoint_scores)``.

    ``<a>`` is formatted with ``:g`` (0.1 -> ``pckh@0.1``). ``num_joints`` sizes the per-joint states
    up front, which multi-process runs should do (see :class:`~heatlit.metrics.base.KeypointMetric`).
    """
    if kind in ("pckh", "pck"):
        cls = PCKh if kind == "pckh" else PCK
        alphas = (0.1, 0.5) if alphas is None and kind == "pckh" else (0.2,) if alphas is None else alphas
        metrics: dict[str, Metric] = {f"{kind}@{a:g}": cls(alpha=a, num_joints=num_joints) for a in alphas}
        metrics["rmse"] = RMSE(num_joints=num_joints)
        metrics["auc"] = AUC(auc_alpha_max, auc_num_thresholds, num_joints=num_joints)
    elif kind == "mpjpe":
        metrics = {"mpjpe": MPJPE(root_index=root_index, num_joints=num_joints)}
    elif kind == "coco":
        if ann_file is None:
            raise ValueError("build_metrics('coco') needs ann_file, the ground-truth annotation JSON")
        metrics = {"ap": CocoOksAP(ann_file)}
    else:
        raise ValueError(
            f"build_metrics: unknown kind {kind!r}; expected one of 'pckh', 'pck', 'mpjpe', 'coco'"
        )
    return KeypointMetricCollection(metrics, prefix=prefix)
