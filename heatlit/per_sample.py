"""``per_sample.npz``: every decoder's per-joint test errors, beside a run's results.json.

Decoders score the same forward pass, so their results are paired per test sample; a comparison of two
decoders within one run needs those pairs (:func:`heatlit.report.stats.paired_bootstrap`), which the pooled
numbers of results.json no longer hold. The test stage therefore keeps, for the 2D keypoint metrics:

``per_sample.npz`` (``numpy.savez_compressed``), version 1::

    version        [] int: 1
    decoders       [D] str: decoder names, in the order the run scored them
    error/<name>   [N, K] float32: Euclidean error of the decoder's (x, y) in input px; NaN where the
                   prediction or the ground truth is not finite
    scored         [N, K] bool: the joints every 2D metric counts (visible, finite ground truth, finite
                   normaliser > 0; heatlit.metrics.base.KeypointMetric's policy)
    norm           [N] float32: the PCK(h) normaliser px (head segment for PCKh, box size for PCK)
    auc_alphas     [T] float64: the thresholds of the AUC curve (empty when the run had no AUC)
    sample_index   [N] int64: the dataset index of each row (-1 when the data do not give one)

From these, :meth:`PerSample.values` gives per-joint values and weights that pool exactly as the metrics
do: ``pckh@a`` / ``pck@a`` = 100 x mean over scored joints of ``error <= a * norm`` (a non-finite prediction
is wrong), ``auc`` = 100 x mean of the trapezoid rule over ``auc_alphas``, ``rmse`` = root mean square and
``mean_error`` = mean of the finite errors. Stored in float32, so a recomputed value matches results.json to
float32 rounding (a joint within ~1e-7 of a threshold may flip). Multi-person runs (peak detection), 3D
(MPJPE) and OKS metrics are not kept; a run on several processes (DDP) writes no file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE_NAME = "per_sample.npz"
VERSION = 1
# metric -> how its per-joint values pool: "mean" (sum w v / sum w) or "rms" (sqrt(sum w v^2 / sum w))
REDUCE = {"rmse": "rms", "mean_error": "mean", "auc": "mean"}


class PerSampleError(ValueError):
    """A per_sample.npz that cannot be read, or a metric it cannot give."""


@dataclass(frozen=True)
class PerSample:
    """The content of ``per_sample.npz`` (shapes in the module docstring)."""

    errors: dict[str, np.ndarray]
    scored: np.ndarray
    norm: np.ndarray
    auc_alphas: np.ndarray
    sample_index: np.ndarray

    @classmethod
    def of(cls, errors, scored, norm, auc_alphas=(), sample_index=None) -> PerSample:
        """From arrays of any dtype (errors kept as float32, ``sample_index`` -1 when None)."""
        scored = np.asarray(scored, dtype=bool)
        index = np.full(len(scored), -1) if sample_index is None else sample_index
        return cls(
            {str(d): np.asarray(e, np.float32) for d, e in errors.items()},
            scored,
            np.asarray(norm, np.float32),
            np.asarray(auc_alphas, np.float64),
            np.asarray(index, np.int64),
        )

    def __post_init__(self):
        if self.scored.ndim != 2:
            raise PerSampleError(f"{FILE_NAME}: scored must be [N, K], got shape {self.scored.shape}")
        n, k = self.scored.shape
        bad = [d for d, e in self.errors.items() if e.shape != (n, k)]
        if bad or self.norm.shape != (n,) or self.sample_index.shape != (n,):
            raise PerSampleError(
                f"{FILE_NAME}: shapes disagree (scored {self.scored.shape}, norm {self.norm.shape}, "
                f"sample_index {self.sample_index.shape}, errors of {bad or 'every decoder'})"
            )

    @property
    def num_samples(self) -> int:
        return int(self.scored.shape[0])

    def reduce(self, metric: str) -> str:
        """How ``metric``'s per-joint values pool: ``"mean"`` or ``"rms"``."""
        return REDUCE.get(metric, "mean")

    def values(self, decoder: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-joint values and weights ``([N, K], [N, K])`` float64 that pool (:meth:`reduce`) to ``metric``.

        Raises:
            PerSampleError: an unknown decoder, a metric the file cannot give (AP, MPJPE, ...), or AUC
                without its thresholds.
        """
        if decoder not in self.errors:
            raise PerSampleError(f"{FILE_NAME} has no decoder {decoder!r} (has: {', '.join(self.errors)})")
        err = self.errors[decoder].astype(np.float64)
        finite = np.isfinite(err)
        scored = self.scored.astype(np.float64)
        norm = self.norm.astype(np.float64)[:, None]
        kind, _, alpha = metric.partition("@")
        if kind in ("pckh", "pck") and alpha:
            return 100.0 * _within(err, finite, float(alpha) * norm), scored
        if metric == "auc":
            alphas = np.asarray(self.auc_alphas, dtype=np.float64)
            if len(alphas) < 2:
                raise PerSampleError(f"{FILE_NAME} holds no AUC thresholds")
            # the trapezoid rule is linear in the per-threshold hits: integrate per joint, then pool
            coef = np.full(len(alphas), 1.0 / (len(alphas) - 1))
            coef[[0, -1]] *= 0.5
            hits = _within(err[None], finite[None], alphas[:, None, None] * norm[None])
            return 100.0 * np.tensordot(coef, hits, axes=1), scored
        if metric in ("rmse", "mean_error"):
            return np.where(finite, err, 0.0), scored * finite
        raise PerSampleError(f"{FILE_NAME} cannot give {metric!r} (PCK(h)@a, AUC, RMSE and mean error only)")

    def metric(self, decoder: str, metric: str) -> float:
        """The pooled value, as the run's metric computed it (results.json, to float32 rounding)."""
        values, weight = self.values(decoder, metric)
        total = weight.sum()
        if total == 0:
            return 0.0  # the metrics' value when nothing was scored
        power = 2 if self.reduce(metric) == "rms" else 1
        mean = float((weight * values**power).sum() / total)
        return math.sqrt(mean) if power == 2 else mean


def _within(err: np.ndarray, finite: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    return (finite & (np.where(finite, err, np.inf) <= threshold)).astype(np.float64)


def write_per_sample(path: str | Path, data: PerSample) -> Path:
    """Write ``per_sample.npz`` (fields in the module docstring) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        version=np.int64(VERSION),
        decoders=np.array(list(data.errors), dtype=str),
        scored=data.scored,
        norm=data.norm,
        auc_alphas=data.auc_alphas,
        sample_index=data.sample_index,
        **{f"error/{d}": e for d, e in data.errors.items()},
    )
    tmp.replace(path)
    return path


def read_per_sample(path: str | Path) -> PerSample:
    """Parse ``per_sample.npz``.

    Raises:
        PerSampleError: missing, unreadable, a newer version, or fields that disagree (naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise PerSampleError(f"no {path.name}")
    try:
        with np.load(path, allow_pickle=False) as f:
            version = int(f["version"])
            if version > VERSION:
                raise PerSampleError(f"version {version}; this heatlit reads up to {VERSION}")
            decoders = [str(d) for d in f["decoders"]]
            return PerSample(
                {d: f[f"error/{d}"] for d in decoders},
                f["scored"].astype(bool),
                f["norm"],
                f["auc_alphas"],
                f["sample_index"],
            )
    except PerSampleError as exc:
        raise PerSampleError(f"{path}: {exc}") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise PerSampleError(f"unreadable {path}: {exc}") from exc
