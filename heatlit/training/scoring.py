"""One forward pass, every decoder: decode, map back to input/image space, update per-decoder metrics.

Shapes and conventions: :mod:`heatlit.codecs` (coordinates), docs/CONTRACTS.md (batch keys).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping

import torch
from torch import nn

from heatlit.codecs import strongest_peak
from heatlit.codecs.grid import HeatmapGrid
from heatlit.metrics import AUC, SampleOksAP
from heatlit.metrics.base import as_mask, counted_joints, usable_norm
from heatlit.per_sample import PerSample

Tensor = torch.Tensor


def lift_to_camera(coords_hm: Tensor, batch: Mapping, grid: HeatmapGrid) -> Tensor:
    """Heatmap-volume coordinates -> camera-frame joints in mm.

    Args:
        coords_hm: ``[B, K, 3]`` (x, y, z) in volume pixels; z is the depth bin of the joint's depth
            relative to the root (:meth:`HeatmapGrid.depth_to_bins`).
        batch: needs ``cam_K [B, 3, 3]`` (input-pixel intrinsics) and ``root_depth [B]`` mm: the
            ground-truth root depth, as in root-relative 3D protocols (the volume predicts depth relative
            to the root, not the root's own distance).
        grid: the 3D heatmap grid the coordinates live on.

    Returns:
        ``[B, K, 3]`` camera-frame (X, Y, Z) in mm, by back-projecting the input-pixel (x, y) at the
        predicted depth.
    """
    xy = grid.to_input(coords_hm[..., :2])
    z_rel = grid.bins_to_depth(coords_hm[..., 2])
    depth = batch["root_depth"].to(xy.dtype)[:, None] + z_rel
    pixels = torch.cat([xy, torch.ones_like(xy[..., :1])], -1)  # [B, K, 3] homogeneous
    # K^-1 [x, y, 1] is the ray with unit depth (K's last row is [0, 0, 1]); the full inverse also undoes
    # any mirror or rotation that augmentation folded into cam_K.
    rays = torch.linalg.solve(batch["cam_K"].to(xy.dtype)[:, None], pixels[..., None])[..., 0]
    return rays * depth[..., None]


def to_image_space(xy: Tensor, affine: Tensor) -> Tensor:
    """Apply per-sample 2x3 affines. ``xy [B, K, 2]`` input px, ``affine [B, 2, 3]`` -> ``[B, K, 2]`` image px."""
    return xy @ affine[:, :, :2].transpose(1, 2) + affine[:, None, :, 2]


def project(joints3d: Tensor, cam_k: Tensor) -> Tensor:
    """Pinhole projection: ``joints3d [B, K, 3]`` camera mm, ``cam_k [B, 3, 3]`` -> ``[B, K, 2]`` px of ``cam_k``."""
    uvw = joints3d @ cam_k.transpose(1, 2)
    return uvw[..., :2] / uvw[..., 2:].clamp(min=1e-6)


def oks_truth(batch: Mapping) -> tuple[Tensor, Tensor, Tensor]:
    """The person a sample is scored against by OKS, in original image px: ``(keypoints [B, K, 2],
    visible [B, K], area [B])``.

    The OKS area of a sample without an annotation file (docs/UPPER_BOUND.md): width x height of the box of
    its joints in image px -- every joint projected from 3D when the sample has 3D truth (so the area does not
    shrink when a limb is hidden), else its visible keypoints. A box is larger than the segmentation area COCO
    uses (on the COCO sample, segments cover a median 0.6 of their keypoints' box), so the same pixel error
    costs less OKS here than on COCO.
    """
    to_image = batch["to_image"]
    keypoints = to_image_space(batch["keypoints"].double(), to_image.double())
    projected = to_image_space(
        project(batch["joints3d"].double(), batch["cam_K"].double()), to_image.double()
    )
    has_3d = batch["has_3d"].bool()
    points = torch.where(has_3d[:, None, None], projected, keypoints)
    inside = has_3d[:, None] | batch["visible"].bool()
    lo = torch.where(inside[..., None], points, torch.full_like(points, float("inf"))).amin(1)
    hi = torch.where(inside[..., None], points, torch.full_like(points, float("-inf"))).amax(1)
    area = (hi - lo).clamp(min=0).prod(-1)
    return keypoints, batch["visible"].bool(), torch.nan_to_num(area, nan=0.0, posinf=0.0, neginf=0.0)


def _first(output) -> Tensor:
    return output if isinstance(output, Tensor) else output[0]


def _nothing() -> None:
    pass


class DecoderScorer(nn.Module):
    """Per-decoder metric collections fed from one set of heatmaps (or one prediction of another output kind,
    :mod:`heatlit.training.outputs`), and each decoder's time per batch.

    Args:
        decoders: name -> decoder callable ``heatmaps -> (coords, scores)`` (multi-peak decoders are
            scored through their strongest peak); coordinates in heatmap px whatever the output kind.
        make_metrics: factory returning a fresh ``nn.Module`` mapping metric name -> metric with
            ``update(pred[B,K,2], target[B,K,2], visible[B,K], norm[B])`` (a MetricCollection).
        grid: the :class:`~heatlit.codecs.grid.HeatmapGrid` of the heatmaps (heatmap px -> input px,
            depth bins -> mm).
        make_3d / make_coco: optional factories of a :class:`heatlit.metrics.MPJPE` (camera mm) and an OKS AP
            metric (image px): :class:`heatlit.metrics.CocoOksAP` (an annotation file's persons) or
            :class:`heatlit.metrics.SampleOksAP` (each sample's own person, :func:`oks_truth`).
        keep_samples: also keep every decoder's per-joint errors (:meth:`per_sample`, the test stage's
            ``per_sample.npz``).
    """

    def __init__(
        self,
        decoders: Mapping,
        make_metrics,
        grid: HeatmapGrid,
        make_3d=None,
        make_coco=None,
        keep_samples: bool = False,
    ) -> None:
        super().__init__()
        if not decoders:
            raise ValueError("at least one decoder must be configured for evaluation")
        self.decoders = dict(decoders)
        self.grid = grid
        self.metrics = nn.ModuleDict({name: make_metrics() for name in self.decoders})
        self.metrics_3d = nn.ModuleDict({n: make_3d() for n in self.decoders}) if make_3d else None
        self.metrics_coco = nn.ModuleDict({n: make_coco() for n in self.decoders}) if make_coco else None
        self.keep_samples = bool(keep_samples)
        self._kept: dict[str, list[Tensor]] = {}
        self.decode_seconds: dict[str, list[float]] = {name: [] for name in self.decoders}
        self.batch_size = 0

    def decode(self, name: str, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        return strongest_peak(*self.decoders[name](heatmaps))

    def timed_decode(self, name: str, heatmaps) -> tuple[Tensor, Tensor]:
        """:meth:`decode`, its wall time recorded (a GPU synchronised before and after: the decoder's own time)."""
        sync = torch.cuda.synchronize if _first(heatmaps).is_cuda else _nothing
        sync()
        started = time.perf_counter()
        out = self.decode(name, heatmaps)
        sync()
        self.decode_seconds[name].append(time.perf_counter() - started)
        return out

    @torch.no_grad()
    def update(self, heatmaps, batch: Mapping) -> dict[str, Tensor]:
        """Decode with every decoder and update its metrics. Returns name -> input-px coords ``[B, K, 2]``.

        ``heatmaps``: the model's final prediction, a tensor or (SimCC) a tuple of tensors.
        """
        if isinstance(heatmaps, Tensor):
            heatmaps = heatmaps.detach().float()
        else:
            heatmaps = tuple(v.detach().float() for v in heatmaps)
        self.batch_size = max(self.batch_size, int(batch["keypoints"].shape[0]))
        predictions = {}
        truth = None
        if self.metrics_coco is not None and isinstance(next(iter(self.metrics_coco.values())), SampleOksAP):
            truth = oks_truth(batch)
        for name in self.decoders:
            coords_hm, scores = self.timed_decode(name, heatmaps)
            xy = self.grid.to_input(coords_hm[..., :2])
            predictions[name] = xy
            self.metrics[name].update(xy, batch["keypoints"], batch["visible"], batch["norm"])
            if self.keep_samples:
                self._keep(f"error/{name}", joint_errors(xy, batch["keypoints"]))
            if self.metrics_3d is not None and coords_hm.shape[-1] == 3:
                joints = lift_to_camera(coords_hm, batch, self.grid)
                # every joint with 3D ground truth counts, also those hidden in the depth image
                known = torch.isfinite(batch["joints3d"]).all(-1)
                self.metrics_3d[name].update(joints, batch["joints3d"], known, batch["has_3d"])
            if self.metrics_coco is not None:
                image_xy = to_image_space(xy, batch["to_image"])
                if truth is not None:
                    self.metrics_coco[name].update(
                        image_xy, scores, *truth, sample_index=batch["sample_index"]
                    )
                else:
                    self.metrics_coco[name].update(
                        batch["image_id"], image_xy, scores, sample_index=batch.get("sample_index")
                    )
        if self.keep_samples:
            self._keep("scored", scored_joints(batch["keypoints"], batch["visible"], batch["norm"]))
            self._keep("norm", batch["norm"].detach().float())
            index = batch.get("sample_index")
            self._keep("sample_index", index if index is not None else torch.full_like(batch["norm"], -1))
        return predictions

    def _keep(self, key: str, value: Tensor) -> None:
        self._kept.setdefault(key, []).append(value.detach().cpu())

    def per_sample(self) -> PerSample | None:
        """Every decoder's per-joint errors since the last :meth:`clear_samples` (None when nothing was kept)."""
        if not self._kept:
            return None
        kept = {k: torch.cat(v).numpy() for k, v in self._kept.items()}
        first = self.metrics[next(iter(self.decoders))]
        auc = next((m.alphas for m in first.values() if isinstance(m, AUC)), ())
        return PerSample.of(
            {name: kept[f"error/{name}"] for name in self.decoders},
            kept["scored"],
            kept["norm"],
            auc,
            kept["sample_index"],
        )

    def compute(self) -> dict[str, dict[str, float]]:
        """name -> metric -> value (python floats), then resets every state."""
        results: dict[str, dict[str, float]] = {}
        for name in self.decoders:
            values = {k: float(v) for k, v in self.metrics[name].compute().items()}
            if self.metrics_3d is not None and self.metrics_3d[name].update_called:
                values["mpjpe"] = float(self.metrics_3d[name].compute())
            if self.metrics_coco is not None and self.metrics_coco[name].update_called:
                stats = self.metrics_coco[name].compute_stats()
                values.update(
                    {
                        k.lower(): float(stats[k])
                        for k in ("AP", "AP_bound", "AP50", "AP75", "AR")
                        if k in stats
                    }
                )
            results[name] = values
        self.reset()
        return results

    def decode_times(self) -> dict[str, dict[str, float | int]]:
        """name -> ``ms_per_batch`` (the median over the batches decoded since the last reset: robust to the
        first call's warm-up and to load spikes), ``batches`` and ``batch_size`` (the largest batch)."""
        return {
            name: {
                "ms_per_batch": 1000.0 * statistics.median(seconds),
                "batches": len(seconds),
                "batch_size": self.batch_size,
            }
            for name, seconds in self.decode_seconds.items()
            if seconds
        }

    def reset(self) -> None:
        """Reset every metric and the decode times; the kept per-sample errors are dropped only by
        :meth:`clear_samples`."""
        self.decode_seconds = {name: [] for name in self.decoders}
        self.batch_size = 0
        for group in (self.metrics, self.metrics_3d, self.metrics_coco):
            if group is not None:
                for m in group.values():
                    m.reset()

    def clear_samples(self) -> None:
        self._kept = {}


def joint_errors(pred: Tensor, target: Tensor) -> Tensor:
    """Per-joint Euclidean error ``[B, K]`` float32 px of ``pred``, ``target`` ``[B, K, 2]`` (same px space),
    computed in float64 as the metrics do; NaN where either side is not finite."""
    err = torch.linalg.vector_norm(pred.double() - target.double(), dim=-1)
    return torch.where(torch.isfinite(err), err, torch.full_like(err, float("nan"))).float()


def scored_joints(target: Tensor, visible: Tensor, norm: Tensor) -> Tensor:
    """``[B, K]`` bool: the joints the 2D metrics count (visible, finite ground truth, finite ``norm [B]`` > 0),
    the policy of :class:`heatlit.metrics.base.KeypointMetric`."""
    return counted_joints(target, as_mask(visible, "visible", "scored_joints"), usable_norm(norm)[:, None])
