"""Evaluation metrics (torchmetrics ``Metric`` subclasses, sum/cat states, safe to reduce across processes).

Units: ratios (PCK, PCKh, AUC, COCO AP) in percent 0-100; errors in the pixels of the inputs (RMSE,
MeanError) or their length unit, mm by contract (MPJPE). Coordinates: ``(x, y[, z])``, pixel centres at
integers (``docs/CONTRACTS.md``). Exclusion, non-finite and empty-input policies:
:class:`heatlit.metrics.base.KeypointMetric`.
"""

from heatlit.metrics.base import KeypointMetric
from heatlit.metrics.coco import STAT_NAMES, CocoOksAP, SampleOksAP, load_coco
from heatlit.metrics.collection import KeypointMetricCollection, build_metrics
from heatlit.metrics.keypoint import AUC, PCK, RMSE, MeanError, PCKh
from heatlit.metrics.multiperson import PeakDetection, average_precision, match_peaks
from heatlit.metrics.oks import KeypointExpansion, expand_keypoints, keypoint_similarity, oks
from heatlit.metrics.pose3d import MPJPE

__all__ = [
    "AUC",
    "MPJPE",
    "PCK",
    "RMSE",
    "STAT_NAMES",
    "CocoOksAP",
    "KeypointExpansion",
    "KeypointMetric",
    "KeypointMetricCollection",
    "MeanError",
    "PCKh",
    "PeakDetection",
    "average_precision",
    "SampleOksAP",
    "build_metrics",
    "expand_keypoints",
    "keypoint_similarity",
    "load_coco",
    "match_peaks",
    "oks",
]
