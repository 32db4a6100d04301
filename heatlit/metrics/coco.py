"""COCO keypoint AP (object keypoint similarity) through pycocotools' ``COCOeval``.

Two ground truths: a COCO annotation file (:class:`CocoOksAP`), or the persons the batches carry, one per
sample (:class:`SampleOksAP`, for data scored by OKS without a file, such as the rendered depth humans).
Either can also report the keypoint-expansion upper bound (:mod:`heatlit.metrics.oks`) as ``AP_bound``.
"""

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
from heatlit.metrics.oks import KeypointExpansion

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


class _OksAP(Metric):
    """The machinery shared by the OKS AP metrics: prediction states, the results list, ``COCOeval``.

    Subclasses say where the ground truth comes from: :meth:`_ground_truth` (a pycocotools ``COCO``) and
    :meth:`_truth_for` (each prediction's candidate persons, for the upper bound).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(
        self,
        sigmas: np.ndarray | None,
        score_threshold: float,
        predicted_images_only: bool,
        expansion: KeypointExpansion | None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.sigmas = np.asarray(
            Params(iouType="keypoints").kpt_oks_sigmas if sigmas is None else sigmas, float
        )
        self.num_keypoints = len(self.sigmas)
        self.score_threshold = float(score_threshold)
        self.predicted_images_only = bool(predicted_images_only)
        self.expansion = expansion
        self.last_eval: COCOeval | None = None
        self.last_stats: dict[str, float] | None = None
        for name in ("image_id", "sample_index", "keypoints", "keypoint_scores", "score"):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self.add_state("num_invalid", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @property
    def _who(self) -> str:
        return type(self).__name__

    def _store(
        self,
        image_id: Tensor,
        keypoints: Tensor,
        keypoint_scores: Tensor,
        score: Tensor | None,
        sample_index: Tensor | None,
    ) -> int:
        """Check and store one batch of predictions (see :meth:`CocoOksAP.update`); returns B."""
        k, who = self.num_keypoints, self._who
        if not isinstance(keypoints, Tensor) or keypoints.ndim != 3 or keypoints.shape[1:] != (k, 2):
            shape = tuple(keypoints.shape) if isinstance(keypoints, Tensor) else type(keypoints).__name__
            raise ValueError(f"{who}: expected keypoints of shape [B, {k}, 2], got {shape}")
        b = keypoints.shape[0]
        if not isinstance(keypoint_scores, Tensor) or keypoint_scores.shape != (b, k):
            shape = tuple(keypoint_scores.shape) if isinstance(keypoint_scores, Tensor) else keypoint_scores
            raise ValueError(f"{who}: expected keypoint_scores of shape [B, K] = ({b}, {k}), got {shape}")
        image_id = check_per_sample(image_id, b, "image_id", who).long()
        sample_index = (
            torch.full((b,), -1, dtype=torch.long)
            if sample_index is None
            else check_per_sample(sample_index, b, "sample_index", who).long()
        )
        kp = keypoints.double()
        kp_scores = keypoint_scores.double()
        if score is None:
            score = instance_score(kp_scores, self.score_threshold)
        score = check_per_sample(score, b, "score", who).double()
        bad = (
            ~torch.isfinite(kp).all(-1).all(-1) | ~torch.isfinite(kp_scores).all(-1) | ~torch.isfinite(score)
        )
        self.num_invalid += bad.sum()
        self.image_id.append(image_id)
        self.sample_index.append(sample_index.to(image_id.device))
        self.keypoints.append(torch.nan_to_num(kp, nan=_FAR, posinf=_FAR, neginf=_FAR))
        self.keypoint_scores.append(torch.nan_to_num(kp_scores, nan=0.0, posinf=0.0, neginf=0.0))
        self.score.append(torch.nan_to_num(score, nan=0.0, posinf=0.0, neginf=0.0))
        return b

    def _kept(self) -> np.ndarray:
        """Indices of the stored predictions to evaluate: repeated ``sample_index`` values count once."""
        sample_index = dim_zero_cat(self.sample_index).long().cpu().numpy()
        keep = np.ones(len(sample_index), bool)
        indexed = np.flatnonzero(sample_index >= 0)
        _, first = np.unique(sample_index[indexed], return_index=True)
        keep[indexed] = False
        keep[indexed[first]] = True
        return np.flatnonzero(keep)

    def _predictions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(image_id [N], keypoints [N, K, 2], keypoint_scores [N, K], score [N])`` of the kept predictions."""
        keep = self._kept()
        image_id = dim_zero_cat(self.image_id).long().cpu().numpy()[keep]
        kp = dim_zero_cat(self.keypoints).double().cpu().numpy().reshape(-1, self.num_keypoints, 2)[keep]
        kp_scores = dim_zero_cat(self.keypoint_scores).double().cpu().numpy()
        kp_scores = kp_scores.reshape(-1, self.num_keypoints)[keep]
        score = dim_zero_cat(self.score).double().cpu().numpy()[keep]
        return image_id, kp, kp_scores, score

    def _ground_truth(self) -> COCO:
        raise NotImplementedError

    def _truth_for(self, image_id: np.ndarray) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Candidate persons of each prediction: ``gt [N, G, K, 2]``, ``visible [N, G, K]``, ``area [N, G]``,
        ``valid [N, G]`` (float64 / bool tensors)."""
        raise NotImplementedError

    def _check_images(self, coco: COCO, image_id: np.ndarray) -> None:
        unknown = sorted(set(image_id.tolist()) - set(coco.getImgIds()))
        if unknown:
            raise ValueError(f"{self._who}: image ids {unknown[:10]} are not in {self._gt_name()}")

    def _gt_name(self) -> str:
        return "the ground truth"

    @staticmethod
    def _results(image_id, kp, kp_scores, score) -> list[dict]:
        return [
            {
                "image_id": int(image_id[i]),
                "category_id": 1,
                "keypoints": np.concatenate([kp[i], kp_scores[i][:, None]], 1).reshape(-1).tolist(),
                "score": float(score[i]),
            }
            for i in range(len(image_id))
        ]

    def _coco_eval(self, coco: COCO, results: list[dict]) -> COCOeval:
        with contextlib.redirect_stdout(io.StringIO()):
            coco_eval = COCOeval(coco, coco.loadRes(results), iouType="keypoints")
            coco_eval.params.kpt_oks_sigmas = self.sigmas
            if self.predicted_images_only:
                coco_eval.params.imgIds = sorted({r["image_id"] for r in results})
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        return coco_eval

    @staticmethod
    def _percent(stats) -> dict[str, float]:
        return {n: (100.0 * float(s) if s >= 0 else -1.0) for n, s in zip(STAT_NAMES, stats)}

    def _evaluate(self) -> dict[str, float]:
        if int(self.num_invalid):
            rank_zero_warn(
                f"{self._who}: {int(self.num_invalid)} predictions had non-finite values",
                category=UserWarning,
            )
        image_id, kp, kp_scores, score = self._predictions() if len(self.image_id) else (np.zeros(0),) * 4
        if not len(image_id):
            rank_zero_warn(f"{self._who}: no predictions were stored; AP is 0.0", category=UserWarning)
            self.last_eval, self.last_stats = None, dict.fromkeys(STAT_NAMES, 0.0)
            if self.expansion is not None:
                self.last_stats["AP_bound"] = 0.0
            return self.last_stats
        coco = self._ground_truth()
        self._check_images(coco, image_id)
        self.last_eval = self._coco_eval(coco, self._results(image_id, kp, kp_scores, score))
        self.last_stats = self._percent(self.last_eval.stats)
        if self.expansion is not None:
            gt, visible, area, valid = self._truth_for(image_id)
            refined, _, _ = self.expansion.refine(
                torch.from_numpy(kp), gt, visible, area, torch.from_numpy(self.sigmas), valid
            )
            bound = self._coco_eval(coco, self._results(image_id, refined.numpy(), kp_scores, score))
            self.last_stats["AP_bound"] = self._percent(bound.stats)["AP"]
        return self.last_stats

    def compute(self) -> Tensor:
        """Scalar float32 AP (OKS 0.50:0.95, all areas, 20 detections per image) in percent."""
        ap = self._evaluate()["AP"]
        if ap < 0:
            rank_zero_warn(
                f"{self._who}: AP undefined (no ground-truth person with keypoints); 0.0",
                category=UserWarning,
            )
            ap = 0.0
        return torch.tensor(ap, dtype=torch.float32)

    def compute_stats(self) -> dict[str, float]:
        """All ten COCO keypoint statistics (:data:`STAT_NAMES`) in percent, synchronised like ``compute``;
        with an ``expansion``, also ``AP_bound``: the AP of the predictions refined by it."""
        with self.sync_context(
            dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync, should_unsync=self._should_unsync
        ):
            return dict(self._evaluate())


class CocoOksAP(_OksAP):
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
        expansion: also report the keypoint-expansion upper bound (``AP_bound``): each prediction may
            match any non-crowd person with keypoints in its image.
        kwargs: forwarded to :class:`torchmetrics.Metric`.

    ``compute()`` -> scalar float32 AP in percent (0-100), 0.0 with a warning when undefined;
    ``compute_stats()`` -> dict of all ten :data:`STAT_NAMES` in percent (-1.0 where pycocotools
    reports "undefined"). After either, ``last_eval`` holds the ``COCOeval`` object (``ious`` etc.).
    """

    def __init__(
        self,
        ann_file: str | Path,
        score_threshold: float = 0.2,
        sigmas: np.ndarray | None = None,
        predicted_images_only: bool = False,
        expansion: KeypointExpansion | None = None,
        **kwargs,
    ) -> None:
        super().__init__(sigmas, score_threshold, predicted_images_only, expansion, **kwargs)
        self.ann_file = Path(ann_file)
        self._coco = load_coco(self.ann_file)
        names = self._coco.loadCats(1)[0]["keypoints"]
        if len(names) != self.num_keypoints:
            raise ValueError(
                f"CocoOksAP: {len(self.sigmas)} sigmas but {self.ann_file} has {len(names)} keypoints"
            )

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
        self._store(image_id, keypoints, keypoint_scores, score, sample_index)

    def _ground_truth(self) -> COCO:
        return self._coco

    def _gt_name(self) -> str:
        return str(self.ann_file)

    def _truth_for(self, image_id: np.ndarray) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        k = self.num_keypoints
        persons: dict[int, list[dict]] = {}
        for img in set(image_id.tolist()):
            anns = self._coco.loadAnns(self._coco.getAnnIds(imgIds=[img], iscrowd=False))
            persons[img] = [a for a in anns if a.get("num_keypoints", 0) > 0]
        g = max(1, max(len(p) for p in persons.values()))
        gt = np.zeros((len(image_id), g, k, 3))
        area = np.zeros((len(image_id), g))
        valid = np.zeros((len(image_id), g), bool)
        for i, img in enumerate(image_id.tolist()):
            for j, ann in enumerate(persons[img]):
                gt[i, j] = np.asarray(ann["keypoints"], float).reshape(k, 3)
                area[i, j] = float(ann["area"])
                valid[i, j] = True
        return (
            torch.from_numpy(gt[..., :2]),
            torch.from_numpy(gt[..., 2] > 0),
            torch.from_numpy(area),
            torch.from_numpy(valid),
        )


class SampleOksAP(_OksAP):
    """OKS AP against the person each sample carries (one per sample), scored by pycocotools.

    For data that is scored by OKS but has no annotation file (the rendered depth humans): every sample is
    one "image" (its ``sample_index``) with one ground-truth person, whose keypoints, labelled joints and
    area come with the batch. A person without labelled joints is ignored, as COCO ignores it.

    Args:
        sigmas: per-keypoint OKS sigmas ``[K]``.
        keypoint_names: ``[K]`` names (the in-memory annotation's category), default ``kp0..``.
        score_threshold, predicted_images_only, expansion, kwargs: as :class:`CocoOksAP` (every person is a
            candidate of only its own sample's prediction).
    """

    def __init__(
        self,
        sigmas: np.ndarray,
        keypoint_names: list[str] | tuple[str, ...] | None = None,
        score_threshold: float = 0.2,
        predicted_images_only: bool = False,
        expansion: KeypointExpansion | None = None,
        **kwargs,
    ) -> None:
        super().__init__(sigmas, score_threshold, predicted_images_only, expansion, **kwargs)
        k = self.num_keypoints
        self.keypoint_names = [f"kp{i}" for i in range(k)] if keypoint_names is None else list(keypoint_names)
        if len(self.keypoint_names) != k:
            raise ValueError(f"SampleOksAP: {len(self.keypoint_names)} keypoint names for {k} sigmas")
        for name in ("truth_keypoints", "truth_visible", "truth_area"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        keypoints: Tensor,
        keypoint_scores: Tensor,
        truth_keypoints: Tensor,
        truth_visible: Tensor,
        truth_area: Tensor,
        sample_index: Tensor,
        score: Tensor | None = None,
    ) -> None:
        """Store one batch of predictions and the persons they are scored against.

        Args:
            keypoints: ``[B, K, 2]`` predicted (x, y) image px; keypoint_scores: ``[B, K]``.
            truth_keypoints: ``[B, K, 2]`` ground truth, image px; truth_visible: ``[B, K]`` bool, the joints
                scored; truth_area: ``[B]`` person area, px^2.
            sample_index: ``[B]`` dataset indices >= 0: the image id of each sample (repeats count once).
            score: ``[B]`` instance scores, or None (as :meth:`CocoOksAP.update`).
        """
        # the truth is checked before anything is stored, so a refused batch leaves the states as they were
        sample_index = torch.as_tensor(sample_index)
        if bool((sample_index < 0).any()):
            raise ValueError("SampleOksAP: sample_index must be >= 0 (it names the sample's image)")
        shape = tuple(getattr(keypoints, "shape", ()))
        if not isinstance(truth_keypoints, Tensor) or tuple(truth_keypoints.shape) != shape:
            raise ValueError(
                f"SampleOksAP: expected truth_keypoints of shape {shape} like keypoints, "
                f"got {tuple(getattr(truth_keypoints, 'shape', ()))}"
            )
        visible = torch.as_tensor(truth_visible)
        if visible.shape != shape[:2]:
            raise ValueError(
                f"SampleOksAP: expected truth_visible of shape [B, K] = {shape[:2]}, got {tuple(visible.shape)}"
            )
        area = check_per_sample(truth_area, shape[0], "truth_area", "SampleOksAP").double()
        self._store(sample_index, keypoints, keypoint_scores, score, sample_index)
        # a person whose truth cannot be scored (non-finite joints or area) has no labelled joints: ignored
        finite = torch.isfinite(truth_keypoints).all(-1) & torch.isfinite(area)[:, None] & (area > 0)[:, None]
        self.truth_keypoints.append(torch.nan_to_num(truth_keypoints.double()))
        self.truth_visible.append(visible.bool() & finite)
        self.truth_area.append(torch.nan_to_num(area, nan=0.0, posinf=0.0))

    def _truth(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = self._kept()
        k = self.num_keypoints
        gt = dim_zero_cat(self.truth_keypoints).double().cpu().numpy().reshape(-1, k, 2)[keep]
        vis = dim_zero_cat(self.truth_visible).bool().cpu().numpy().reshape(-1, k)[keep]
        area = dim_zero_cat(self.truth_area).double().cpu().numpy()[keep]
        return gt, vis, area

    def _ground_truth(self) -> COCO:
        image_id = dim_zero_cat(self.image_id).long().cpu().numpy()[self._kept()]
        gt, vis, area = self._truth()
        annotations = []
        for i, img in enumerate(image_id.tolist()):
            xy = gt[i][vis[i]]
            x0, y0 = xy.min(0) if len(xy) else (0.0, 0.0)
            x1, y1 = xy.max(0) if len(xy) else (0.0, 0.0)
            flags = np.where(vis[i], 2.0, 0.0)
            annotations.append(
                {
                    "id": i + 1,
                    "image_id": int(img),
                    "category_id": 1,
                    "iscrowd": 0,
                    "keypoints": np.concatenate([gt[i], flags[:, None]], 1).reshape(-1).tolist(),
                    "num_keypoints": int(vis[i].sum()),
                    "area": float(area[i]),
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                }
            )
        coco = COCO()
        coco.dataset = {
            "images": [{"id": int(i)} for i in image_id.tolist()],
            "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "keypoints": self.keypoint_names}],
        }
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return coco

    def _truth_for(self, image_id: np.ndarray) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        gt, vis, area = self._truth()
        n = len(image_id)
        return (
            torch.from_numpy(gt).view(n, 1, -1, 2),
            torch.from_numpy(vis).view(n, 1, -1),
            torch.from_numpy(area).view(n, 1),
            torch.from_numpy(vis.any(-1)).view(n, 1),
        )
