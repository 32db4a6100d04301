"""COCO keypoint AP (object keypoint similarity) through pycocotools' ``COCOeval``."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval, Params
from torchmetrics import Metric
from torchmetrics.utilities import rank_zero_warn
from torchmetrics.utilities.data import dim_zero_cat

from heatlit.metrics.base import check_per_sample

Tensor = torch.Tensor

#: Names of ``COCOeval.stats`` for ``iouType="keypoints"``, in its order.
STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
#: Where a non-finite predicted coordinate is moved: far enough that its OKS term is 0 for any person,
#: near enough that the box pycocotools derives from the keypoints stays inside the "all" area range
#: (a box outside it would make an unmatched prediction *ignored* instead of a false positive).
_FAR = -1.0e4


def load_coco(path: str | Path) -> COCO:
    """Load a COCO keypoint annotation file once, quietly.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: it cannot be parsed as a COCO annotation file, or has no person category with
            keypoints (``category_id`` 1).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {path}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(path))
    except Exception as err:  # json, assertion or key errors alike mean "not a COCO file"
        raise ValueError(f"could not read COCO annotation file {path}: {type(err).__name__}: {err}") from err
    cats = coco.loadCats(coco.getCatIds()) if coco.dataset.get("categories") else []
    if not any(c.get("id") == 1 and c.get("keypoints") for c in cats):
        raise ValueError(f"COCO annotation file {path} has no category 1 with keypoints")
    return coco


def instance_score(keypoint_scores: Tensor, threshold: float = 0.2) -> Tensor:
    """A person's score from its keypoints' (HRNet's rescoring): the mean of the keypoint scores above
    ``threshold``, 0 when none is. ``[B, K] -> [B]``."""
    above = keypoint_scores > threshold
    return (keypoint_scores * above).sum(1) / above.sum(1).clamp(min=1)


class CocoOksAP(Metric):
    """COCO keypoint AP from predictions in original image pixels, via ``COCOeval(iouType="keypoints")``.

    Coordinates follow the project convention (pixel centres at integers), which is also how COCO
    keypoint annotations are labelled, so no half-pixel shift is applied. States are "cat" lists, one
    entry per batch; ``compute()`` builds the results list and runs the official evaluation over all
    images of the annotation file (or only the predicted ones, see ``predicted_images_only``).

    Non-finite input: a predicted coordinate that is not finite is moved far outside the image (its
    OKS term becomes 0, the instance stays a detection), non-finite scores become 0, and each such
    instance is counted in ``num_invalid`` (``compute()`` warns).

    Args:
        ann_file: ground-truth annotation JSON (loaded once here; see :func:`load_coco` for errors).
        score_threshold: keypoint scores above it are averaged into the instance score when no ``score``
            is given (HRNet's ``in_vis_thre`` = 0.2); an instance with none above scores 0.
        sigmas: per-keypoint OKS sigmas ``[K]``; default pycocotools' 17 COCO sigmas.
        predicted_images_only: evaluate only images that received a prediction (useful for subsets;
            the default evaluates every image in the file, as the official protocol does).
        kwargs: forwarded to :class:`torchmetrics.Metric`.

    ``compute()`` -> scalar float32 AP in percent (0-100), 0.0 with a warning when undefined;
    ``compute_stats()`` -> dict of all ten :data:`STAT_NAMES` in percent (-1.0 where pycocotools
    reports "undefined"). After either, ``last_eval`` holds the ``COCOeval`` object (``ious`` etc.).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(
        self,
        ann_file: str | Path,
        score_threshold: float = 0.2,
        sigmas: np.ndarray | None = None,
        predicted_images_only: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.ann_file = Path(ann_file)
        self._coco = load_coco(self.ann_file)
        self.sigmas = np.asarray(
            Params(iouType="keypoints").kpt_oks_sigmas if sigmas is None else sigmas, float
        )
        self.num_keypoints = len(self.sigmas)
        names = self._coco.loadCats(1)[0]["keypoints"]
        if len(names) != self.num_keypoints:
            raise ValueError(
                f"CocoOksAP: {len(self.sigmas)} sigmas but {self.ann_file} has {len(names)} keypoints"
            )
        self.score_threshold = float(score_threshold)
        self.predicted_images_only = bool(predicted_images_only)
        self.last_eval: COCOeval | None = None
        self.last_stats: dict[str, float] | None = None
        for name in ("image_id", "sample_index", "keypoints", "keypoint_scores", "score"):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self.add_state("num_invalid", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(
        self,
        image_id: Tensor,
        keypoints: Tensor,
        keypoint_scores: Tensor,
        score: Tensor | None = None,
        sample_index: Tensor | None = None,
    ) -> None:
        """Store one batch of person predictions.

        Args:
            image_id: ``[B]`` COCO image ids (must exist in the annotation file).
            keypoints: ``[B, K, 2]`` (x, y) in original image px.
            keypoint_scores: ``[B, K]`` confidences.
            score: ``[B]`` instance scores, or None for the mean of ``keypoint_scores`` above
                ``score_threshold`` (multiply by a detector's box score yourself if you have one).
            sample_index: ``[B]`` dataset indices, or None. When given, repeated indices (e.g. the padding
                a ``DistributedSampler`` adds) are evaluated once.
        """
        k = self.num_keypoints
        if not isinstance(keypoints, Tensor) or keypoints.ndim != 3 or keypoints.shape[1:] != (k, 2):
            shape = tuple(keypoints.shape) if isinstance(keypoints, Tensor) else type(keypoints).__name__
            raise ValueError(f"CocoOksAP: expected keypoints of shape [B, {k}, 2], got {shape}")
        b = keypoints.shape[0]
        if not isinstance(keypoint_scores, Tensor) or keypoint_scores.shape != (b, k):
            shape = tuple(keypoint_scores.shape) if isinstance(keypoint_scores, Tensor) else keypoint_scores
            raise ValueError(f"CocoOksAP: expected keypoint_scores of shape [B, K] = ({b}, {k}), got {shape}")
        image_id = check_per_sample(image_id, b, "image_id", "CocoOksAP").long()
        sample_index = (
            torch.full((b,), -1, dtype=torch.long)
            if sample_index is None
            else check_per_sample(sample_index, b, "sample_index", "CocoOksAP").long()
        )
        kp = keypoints.double()
        kp_scores = keypoint_scores.double()
        if score is None:
            score = instance_score(kp_scores, self.score_threshold)
        score = check_per_sample(score, b, "score", "CocoOksAP").double()
        bad = (
            ~torch.isfinite(kp).all(-1).all(-1) | ~torch.isfinite(kp_scores).all(-1) | ~torch.isfinite(score)
        )
        self.num_invalid += bad.sum()
        self.image_id.append(image_id)
        self.sample_index.append(sample_index.to(image_id.device))
        self.keypoints.append(torch.nan_to_num(kp, nan=_FAR, posinf=_FAR, neginf=_FAR))
        self.keypoint_scores.append(torch.nan_to_num(kp_scores, nan=0.0, posinf=0.0, neginf=0.0))
        self.score.append(torch.nan_to_num(score, nan=0.0, posinf=0.0, neginf=0.0))

    def _results(self) -> list[dict]:
        """The stored predictions as a COCO results list (duplicated ``sample_index`` removed)."""
        image_id = dim_zero_cat(self.image_id).long().cpu().numpy()
        sample_index = dim_zero_cat(self.sample_index).long().cpu().numpy()
        kp = dim_zero_cat(self.keypoints).double().cpu().numpy().reshape(-1, self.num_keypoints, 2)
        kp_scores = dim_zero_cat(self.keypoint_scores).double().cpu().numpy().reshape(-1, self.num_keypoints)
        score = dim_zero_cat(self.score).double().cpu().numpy()
        keep = np.ones(len(image_id), bool)
        indexed = np.flatnonzero(sample_index >= 0)
        _, first = np.unique(sample_index[indexed], return_index=True)
        keep[indexed] = False
        keep[indexed[first]] = True
        unknown = sorted(set(image_id[keep].tolist()) - set(self._coco.getImgIds()))
        if unknown:
            raise ValueError(f"CocoOksAP: image ids {unknown[:10]} are not in {self.ann_file}")
        return [
            {
                "image_id": int(image_id[i]),
                "category_id": 1,
                "keypoints": np.concatenate([kp[i], kp_scores[i][:, None]], 1).reshape(-1).tolist(),
                "score": float(score[i]),
            }
            for i in np.flatnonzero(keep)
        ]

    def _evaluate(self) -> dict[str, float]:
        if int(self.num_invalid):
            rank_zero_warn(
                f"CocoOksAP: {int(self.num_invalid)} predictions had non-finite values", category=UserWarning
            )
        results = self._results() if len(self.image_id) else []
        if not results:
            rank_zero_warn("CocoOksAP: no predictions were stored; AP is 0.0", category=UserWarning)
            self.last_eval, self.last_stats = None, dict.fromkeys(STAT_NAMES, 0.0)
            return self.last_stats
        with contextlib.redirect_stdout(io.StringIO()):
            coco_eval = COCOeval(self._coco, self._coco.loadRes(results), iouType="keypoints")
            coco_eval.params.kpt_oks_sigmas = self.sigmas
            if self.predicted_images_only:
                coco_eval.params.imgIds = sorted({r["image_id"] for r in results})
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        self.last_eval = coco_eval
        self.last_stats = {
            n: (100.0 * float(s) if s >= 0 else -1.0) for n, s in zip(STAT_NAMES, coco_eval.stats)
        }
        return self.last_stats

    def compute(self) -> Tensor:
        """Scalar float32 AP (OKS 0.50:0.95, all areas, 20 detections per image) in percent."""
        ap = self._evaluate()["AP"]
        if ap < 0:
            rank_zero_warn(
                "CocoOksAP: AP undefined (no ground-truth person with keypoints); 0.0", category=UserWarning
            )
            ap = 0.0
        return torch.tensor(ap, dtype=torch.float32)

    def compute_stats(self) -> dict[str, float]:
        """All ten COCO keypoint statistics (:data:`STAT_NAMES`) in percent, synchronised like ``compute``."""
        with self.sync_context(
            dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync, should_unsync=self._should_unsync
        ):
            return dict(self._evaluate())
