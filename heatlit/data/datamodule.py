"""`HeatmapDataModule`: raw samples of any source -> augmented input crops -> batched heatmap targets.

Pipeline (shapes and the coordinate convention: ``docs/CONTRACTS.md``):

1. A *source* (``SynthSource``, ``Human4DSource``, ``CocoSource``, ...) returns the raw-sample dict.
2. :class:`SampleDataset` builds ONE affine ``image px -> input px`` per sample (box crop, random
   scale / rotation / flip, all in :mod:`heatlit.data.transforms`), warps the image and moves the
   keypoints with the same matrix, then applies intensity shift and occluders and normalises.
3. :class:`HeatmapCollate` stacks the samples, carries the keypoints into heatmap space with
   :func:`heatlit.codecs.coords.to_heatmap` (never quantised), and calls the encoder once per batch.

Randomness: every sample draws its augmentation from its own generator seeded by
``(seed, epoch, index)``, and the training order from ``(seed, epoch)``, so a batch depends on the seed
and the epoch only, not on ``num_workers`` nor on which worker built it. Worker processes also get
their numpy / random / torch globals seeded from ``(seed, epoch, worker id)`` (:func:`seed_worker_globals`)
for any source that draws from them; the main process's generators are never touched or consumed.
"""

from __future__ import annotations

import inspect
import logging
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from heatlit.codecs.coords import to_heatmap
from heatlit.data import transforms as T
from heatlit.data.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


# ---------------------------------------------------------------------------------- sample stage
def _describe(raw: Mapping[str, Any], index: int) -> str:
    """Name a raw sample in an error message: its file if the source said, else its id and index."""
    meta = raw.get("meta") or {}
    for key in ("file", "path", "image_file"):
        if meta.get(key):
            return f"{meta[key]} (sample {index})"
    if meta.get("sample_id") is not None:
        return f"sample {meta['sample_id']!r} (index {index})"
    return f"sample index {index}"


def _check_raw(raw: Mapping[str, Any], index: int, num_joints: int, in_channels: int) -> None:
    """Raise :class:`DataError` naming the sample if ``raw`` breaks the raw-sample contract."""
    where = _describe(raw, index)
    image = raw.get("image")
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != in_channels:
        got = getattr(image, "shape", type(image).__name__)
        raise DataError(f"{where}: image must be an array [H0, W0, {in_channels}], got {got}")
    expected = {"keypoints": (num_joints, 2), "visible": (num_joints,)}
    if raw.get("joints3d") is not None:
        expected["joints3d"] = (num_joints, 3)
    if raw.get("cam_K") is not None:
        expected["cam_K"] = (3, 3)
    for key, shape in expected.items():
        got = np.shape(raw.get(key))
        if got != shape:
            raise DataError(f"{where}: {key!r} must have shape {list(shape)}, got {list(got)}")
    for key in ("center", "scale"):
        if np.shape(raw.get(key)) != (2,):
            raise DataError(f"{where}: {key!r} must have shape [2], got {list(np.shape(raw.get(key)))}")
    if not np.all(np.asarray(raw["scale"], dtype=np.float64) > 0):
        raise DataError(f"{where}: box 'scale' must be positive, got {raw['scale']}")


class SampleDataset(Dataset):
    """One raw sample -> one input-frame sample (numpy), optionally augmented.

    Args:
        source: a dataset returning the raw-sample dict (``docs/CONTRACTS.md``).
        input_size: ``(H, W)`` of the network input.
        augment: :class:`~heatlit.data.transforms.AugmentConfig`, or None for val/test.
        seed: base seed of the per-sample generators.
        depth_offset_m, depth_scale_m: depth normalisation, see :func:`transforms.normalize_input`.
        need_3d: every sample must carry ``joints3d`` (3D volumetric targets).

    ``dataset[i]`` or ``dataset[(i, epoch)]`` (the form :class:`EpochSampler` yields) returns a dict:
    ``image [C, H, W]`` float32 (normalised), ``keypoints [K, 2]`` float32 input px, ``visible [K]``
    bool (false also once a keypoint leaves the input frame), ``joints3d [K, 3]`` float32 mm (zeros
    when unknown), ``has_3d`` bool, ``cam_K [3, 3]`` float32 (input-px projection), ``root_depth``
    float mm, ``norm`` float input px, ``to_image [2, 3]`` float32 (input px -> image px),
    ``image_id`` and ``sample_index`` int.

    Under a flip, joint labels swap (keypoints, visibility, joints3d) while joints3d stays in the
    original camera frame; cam_K contains the mirror, so ``cam_K @ joints3d`` still projects onto the
    keypoints.
    """

    def __init__(
        self,
        source: Dataset,
        input_size: Sequence[int],
        augment: T.AugmentConfig | None = None,
        seed: int = 1314,
        depth_offset_m: float = 0.0,
        depth_scale_m: float = 1.0,
        need_3d: bool = False,
    ) -> None:
        self.source = source
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.augment = augment if augment is not None and augment.enabled else None
        self.seed = int(seed)
        self.depth_offset_m = float(depth_offset_m)
        self.depth_scale_m = float(depth_scale_m)
        self.need_3d = need_3d
        self.num_joints = len(source.joint_names)
        self.in_channels = int(source.in_channels)
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (depth) or 3 (RGB), got {self.in_channels}")
        self.depth = self.in_channels == 1
        self.flip_perm = T.flip_permutation(self.num_joints, source.flip_pairs)
        self._seeded: tuple[int, int] | None = None  # (worker id, epoch) the worker globals were seeded for

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), 0)
        worker = get_worker_info()
        if worker is not None and (worker.id, epoch) != self._seeded:  # persistent workers: once per epoch
            seed_worker_globals(self.seed, epoch, worker.id)
            self._seeded = (worker.id, epoch)
        raw = self.source[index]
        _check_raw(raw, index, self.num_joints, self.in_channels)
        rng = np.random.default_rng([self.seed, epoch, index])
        aug = T.sample_augmentation(self.augment, rng, self.input_size)

        matrix = T.box_to_input_affine(
            np.asarray(raw["center"], dtype=np.float64),
            np.asarray(raw["scale"], dtype=np.float64) * aug.scale,
            self.input_size,
            rotation_deg=aug.rotation_deg,
            flip=aug.flip,
        )
        image = T.warp_image(raw["image"], matrix, self.input_size, nearest=self.depth)
        if self.depth:
            image = T.shift_depth(image, aug.depth_shift_m)
        else:
            image = T.adjust_rgb(image, aug.brightness, aug.contrast)
        image = T.add_occluders(image, aug.occluders, self.depth, rng)

        keypoints = T.affine_points(matrix, raw["keypoints"])
        visible = np.asarray(raw["visible"], dtype=bool).copy()
        # A NaN coordinate would survive as NaN * 0 in a masked loss; zero it and drop the joint.
        finite = np.isfinite(keypoints).all(axis=1)
        keypoints[~finite] = 0.0
        visible &= finite & T.in_frame(keypoints, self.input_size)

        joints3d = raw.get("joints3d")
        has_3d = joints3d is not None
        if self.need_3d and not has_3d:
            raise DataError(f"{_describe(raw, index)}: 3D heatmaps (heatmap_depth) need joints3d, got None")
        joints3d = np.zeros((self.num_joints, 3)) if joints3d is None else np.asarray(joints3d, np.float64)
        cam_k = raw.get("cam_K")
        cam_k = np.eye(3) if cam_k is None else T.homogeneous(matrix) @ np.asarray(cam_k, np.float64)
        if aug.flip:
            keypoints, visible, joints3d = (a[self.flip_perm] for a in (keypoints, visible, joints3d))

        meta = raw.get("meta") or {}
        return {
            "image": T.normalize_input(image, self.depth, self.depth_offset_m, self.depth_scale_m),
            "keypoints": keypoints.astype(np.float32),
            "visible": visible,
            "joints3d": joints3d.astype(np.float32),
            "has_3d": has_3d,
            "cam_K": cam_k.astype(np.float32),
            "root_depth": float(joints3d[0, 2]) if has_3d else 0.0,
            "norm": float(raw["norm"]) * T.affine_scale(matrix),
            "to_image": T.invert_affine(matrix).astype(np.float32),
            "image_id": int(meta.get("image_id", -1)),
            "sample_index": index,
        }


# ----------------------------------------------------------------------------------- batch stage
class HeatmapCollate:
    """Stack samples of :class:`SampleDataset` and encode all targets with ONE encoder call.

    Args:
        encoder: ``encoder(keypoints[B, K, n], visible[B, K], heatmap_size) -> (heatmaps, weights)``.
        stride: input px per heatmap px.
        heatmap_size: ``(h, w)``, or ``(D, h, w)`` for volumetric targets.
        depth_range_mm: 3D only: the depth extent (mm, centred on the root joint) the D bins cover.

    3D: the depth-bin coordinate of a joint is ``z_hm = z_rel / depth_range_mm * D + (D - 1) / 2`` with
    ``z_rel`` its camera-z minus the root joint's (index 0) in mm, i.e. ``z_rel`` in
    ``[-range/2, range/2]`` spans the bin extent ``[-0.5, D - 0.5]`` (pixel centres at integers, as
    in x and y). A joint outside that extent gets target weight 0.

    Returns the batch dict of ``docs/CONTRACTS.md`` (``heatmaps``, ``target_weight``, ``keypoints_hm``
    added to the stacked sample fields).
    """

    def __init__(
        self, encoder: Callable, stride: int, heatmap_size: Sequence[int], depth_range_mm: float = 2000.0
    ) -> None:
        self.encoder = encoder
        self.stride = stride
        self.heatmap_size = tuple(int(s) for s in heatmap_size)
        self.depth_range_mm = float(depth_range_mm)

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        batch = {
            "image": torch.from_numpy(np.stack([s["image"] for s in samples])),
            "keypoints": torch.from_numpy(np.stack([s["keypoints"] for s in samples])),
            "visible": torch.from_numpy(np.stack([s["visible"] for s in samples])),
            "joints3d": torch.from_numpy(np.stack([s["joints3d"] for s in samples])),
            "has_3d": torch.tensor([s["has_3d"] for s in samples], dtype=torch.bool),
            "cam_K": torch.from_numpy(np.stack([s["cam_K"] for s in samples])),
            "root_depth": torch.tensor([s["root_depth"] for s in samples], dtype=torch.float32),
            "norm": torch.tensor([s["norm"] for s in samples], dtype=torch.float32),
            "to_image": torch.from_numpy(np.stack([s["to_image"] for s in samples])),
            "image_id": torch.tensor([s["image_id"] for s in samples], dtype=torch.long),
            "sample_index": torch.tensor([s["sample_index"] for s in samples], dtype=torch.long),
        }
        keypoints_hm = to_heatmap(batch["keypoints"], self.stride)
        target_visible = batch["visible"]
        if len(self.heatmap_size) == 3:
            depth_bins = self.heatmap_size[0]
            z_rel = batch["joints3d"][..., 2] - batch["joints3d"][..., :1, 2]
            z_hm = z_rel / self.depth_range_mm * depth_bins + (depth_bins - 1) / 2.0
            keypoints_hm = torch.cat([keypoints_hm, z_hm[..., None]], dim=-1)
            target_visible = target_visible & (z_hm >= -0.5) & (z_hm < depth_bins - 0.5)
        heatmaps, weights = self.encoder(keypoints_hm, target_visible, self.heatmap_size)
        batch["keypoints_hm"] = keypoints_hm
        batch["heatmaps"] = heatmaps
        batch["target_weight"] = weights
        return batch


# --------------------------------------------------------------------------------- order and seeds
class EpochSampler(Sampler):
    """Training order seeded by ``(seed, epoch)``; yields ``(index, epoch)`` keys.

    Carrying the epoch inside the key is what lets worker processes (which hold stale copies of
    every Python object) seed each sample's augmentation by epoch. Lightning calls :meth:`set_epoch`
    before each epoch; a bare loop gets the next epoch automatically.
    """

    def __init__(self, length: int, seed: int, shuffle: bool = True) -> None:
        self.length = int(length)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        self.epoch += 1
        if self.shuffle:
            seed = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
            order = torch.randperm(self.length, generator=torch.Generator().manual_seed(seed)).tolist()
        else:
            order = range(self.length)
        return iter([(i, epoch) for i in order])


def seed_worker_globals(seed: int, epoch: int, worker_id: int) -> None:
    """Seed a DataLoader worker's numpy / random / torch globals from ``(seed, epoch, worker id)``.

    The augmentation never uses these globals (each sample has its own generator); seeding them keeps
    any source code that does reproducible too. Only called inside workers: the main process's
    generators belong to the trainer.
    """
    state = np.random.SeedSequence([seed, epoch, worker_id]).generate_state(2)
    np.random.seed(int(state[0]))
    random.seed(int(state[1]))
    torch.manual_seed(int(state[0]) << 32 | int(state[1]))


# ------------------------------------------------------------------------------------ data module
def _check_factory(spec: Any) -> None:
    """Fail at construction, naming the setting, when a source factory lacks a required argument.

    A Hydra ``root: ???`` under ``_partial_: true`` silently drops out of the partial; without this
    check the omission would surface only later, as a bare TypeError from inside ``setup``.
    """
    if isinstance(spec, Dataset) or not callable(spec):
        return
    try:
        params = inspect.signature(spec).parameters.values()
    except (TypeError, ValueError):  # builtins and C callables have no signature to check
        return
    missing = [
        p.name
        for p in params
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name != "split"
    ]
    if missing:
        name = getattr(getattr(spec, "func", spec), "__name__", repr(spec))
        settings = ", ".join(f"data.source.{m}" for m in missing)
        raise ValueError(f"data source {name} needs {settings} (e.g. data.source.{missing[0]}=/path/to/data)")


class HeatmapDataModule(L.LightningDataModule):
    """Keypoint heatmap data for every ``data=<name>`` option; batches follow ``docs/CONTRACTS.md``.

    Args:
        source: a factory ``source(split=...) -> Dataset`` (e.g. a Hydra ``_partial_: true`` node of
            ``SynthSource`` / ``Human4DSource`` / ``CocoSource``), or a mapping ``split -> factory or
            Dataset`` when splits need different settings.
        input_size: ``(H, W)`` of the network input.
        stride: input px per heatmap px; must divide H and W.
        batch_size, num_workers: loader settings (the last training batch is dropped if incomplete).
        seed: base seed of order and augmentation (default 1314).
        heatmap_depth: D depth bins for 3D volumetric targets, None for 2D maps.
        depth_range_mm: depth extent (mm, centred on the root joint) of the D bins, see
            :class:`HeatmapCollate`.
        augment: :class:`~heatlit.data.transforms.AugmentConfig` fields (training split only); None
            or ``enabled: false`` = no augmentation.
        depth_offset_m, depth_scale_m: depth input = ``(metres - offset) / scale``.
        encoder: the target encoder; default ``GaussianEncoder(sigma=2.0, quantize=False)``.
        pin_memory: None = pin when CUDA is available.
        metric_kind: ``"pckh"`` or ``"coco"``; None = the source's ``metric_kind`` or ``"pckh"``.

    Attributes read by the trainer: ``num_joints``, ``flip_pairs``, ``joint_names``, ``in_channels``,
    ``head_segment`` (from the source), ``input_size``, ``heatmap_size``, ``stride``,
    ``heatmap_depth``, ``depth_range_mm``, ``metric_kind``, ``coco_ann_file``.
    """

    def __init__(
        self,
        source: Callable[..., Dataset] | Mapping[str, Any],
        input_size: Sequence[int],
        stride: int = 4,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 1314,
        heatmap_depth: int | None = None,
        depth_range_mm: float = 2000.0,
        augment: Mapping[str, Any] | T.AugmentConfig | None = None,
        depth_offset_m: float = 0.0,
        depth_scale_m: float = 1.0,
        encoder: Callable | None = None,
        pin_memory: bool | None = None,
        metric_kind: str | None = None,
    ) -> None:
        super().__init__()
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.stride = int(stride)
        if self.stride < 1 or any(s % self.stride for s in self.input_size):
            raise ValueError(
                f"input_size {self.input_size} must be divisible by stride {self.stride} "
                f"(heatmap size = input size / stride)"
            )
        self.heatmap_depth = None if heatmap_depth is None else int(heatmap_depth)
        if self.heatmap_depth is not None and self.heatmap_depth < 1:
            raise ValueError(f"heatmap_depth must be a positive number of bins or None, got {heatmap_depth}")
        self.depth_range_mm = float(depth_range_mm)
        if self.depth_range_mm <= 0:
            raise ValueError(f"depth_range_mm must be > 0, got {depth_range_mm}")
        hw = (self.input_size[0] // self.stride, self.input_size[1] // self.stride)
        self.heatmap_size = hw if self.heatmap_depth is None else (self.heatmap_depth, *hw)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        if isinstance(augment, T.AugmentConfig) or augment is None:
            self.augment = augment
        else:
            fields = dict(augment)
            if "occluder_size" in fields:
                fields["occluder_size"] = tuple(float(v) for v in fields["occluder_size"])
            self.augment = T.AugmentConfig(**fields)
        self.depth_offset_m = float(depth_offset_m)
        self.depth_scale_m = float(depth_scale_m)
        if self.depth_scale_m <= 0:
            raise ValueError(f"depth_scale_m must be > 0, got {depth_scale_m}")
        if encoder is None:
            from heatlit.codecs import GaussianEncoder

            encoder = GaussianEncoder(sigma=2.0, quantize=False)
        self.encoder = encoder
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        if metric_kind not in (None, "pckh", "coco"):
            raise ValueError(f"metric_kind must be 'pckh', 'coco' or None, got {metric_kind!r}")
        self._metric_kind = metric_kind
        for spec in source.values() if isinstance(source, Mapping) else (source,):
            _check_factory(spec)
        self._source_spec = source
        self._sources: dict[str, Dataset] = {}
        self.datasets: dict[str, SampleDataset] = {}
        self.collate = HeatmapCollate(self.encoder, self.stride, self.heatmap_size, self.depth_range_mm)

    # -- sources -------------------------------------------------------------------------------
    def source(self, split: str) -> Dataset:
        """The raw source of ``split`` (built on first use, then cached)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split not in self._sources:
            spec = self._source_spec
            if isinstance(spec, Mapping) and not callable(spec):
                if split not in spec:
                    raise KeyError(f"no data source configured for split {split!r} (have {list(spec)})")
                spec = spec[split]
            self._sources[split] = (
                spec(split=split) if callable(spec) and not isinstance(spec, Dataset) else spec
            )
            self._check_3d(self._sources[split], split)
        return self._sources[split]

    def _check_3d(self, source: Dataset, split: str) -> None:
        if self.heatmap_depth is None:
            return
        has_3d = getattr(source, "has_3d", None)
        if has_3d is None and len(source) > 0:
            has_3d = source[0].get("joints3d") is not None
        if not has_3d:
            raise ValueError(
                f"heatmap_depth={self.heatmap_depth} asks for 3D volumetric targets, but the {split} source "
                f"{type(source).__name__} has no 3D joints; use heatmap_depth=null with this data"
            )

    @property
    def _meta_source(self) -> Dataset:
        # Any split carries the skeleton; prefer one already built, else the (usually small) val split.
        for split in (*self._sources, "val", "train", "test"):
            try:
                return self.source(split)
            except KeyError:
                continue
        raise KeyError("no data source configured")

    @property
    def joint_names(self) -> list[str]:
        return list(self._meta_source.joint_names)

    @property
    def num_joints(self) -> int:
        return len(self._meta_source.joint_names)

    @property
    def flip_pairs(self) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in self._meta_source.flip_pairs]

    @property
    def head_segment(self) -> tuple[int, int] | None:
        seg = getattr(self._meta_source, "head_segment", None)
        return None if seg is None else (int(seg[0]), int(seg[1]))

    @property
    def in_channels(self) -> int:
        return int(self._meta_source.in_channels)

    @property
    def metric_kind(self) -> str:
        if self._metric_kind is not None:
            return self._metric_kind
        return getattr(self._meta_source, "metric_kind", "pckh")

    @property
    def coco_ann_file(self) -> str | None:
        """Annotation file of the evaluated split (val) for COCO OKS AP; None for other data."""
        try:
            return getattr(self.source("val"), "ann_file", None)
        except KeyError:
            return None

    # -- Lightning hooks -------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Build the datasets the stage needs (fit: train + val, validate: val, test, predict: test)."""
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in splits.get(stage, SPLITS) if stage else SPLITS:
            self.dataset(split)

    def dataset(self, split: str) -> SampleDataset:
        """The :class:`SampleDataset` of ``split`` (augmented for train only)."""
        if split not in self.datasets:
            self.datasets[split] = SampleDataset(
                self.source(split),
                self.input_size,
                augment=self.augment if split == "train" else None,
                seed=self.seed,
                depth_offset_m=self.depth_offset_m,
                depth_scale_m=self.depth_scale_m,
                need_3d=self.heatmap_depth is not None,
            )
        return self.datasets[split]

    def _loader(self, split: str) -> DataLoader:
        dataset = self.dataset(split)
        train = split == "train"
        sampler = EpochSampler(len(dataset), self.seed, shuffle=train)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler if train else self._share(sampler),
            drop_last=train and len(dataset) >= self.batch_size,
            num_workers=self.num_workers,
            collate_fn=self.collate,
            pin_memory=self.pin_memory,
            # Own generator: creating an iterator must not draw from (and shift) the trainer's torch RNG.
            generator=torch.Generator().manual_seed(self.seed),
            persistent_workers=self.num_workers > 0,
        )

    def _share(self, sampler: EpochSampler) -> Sampler:
        """Under DDP, this process's share of an evaluated split: every sample exactly once over all processes.

        Lightning would wrap val/test in a DistributedSampler, which pads the split with repeated samples to
        give every process the same number; the metrics (sums over samples, reduced across processes) would
        count those twice. Shares may differ by one sample, which evaluation allows (no gradient sync).
        """
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.world_size <= 1:
            return sampler
        from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSamplerWrapper

        return UnrepeatedDistributedSamplerWrapper(
            sampler, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")
