"""`HeatmapDataModule`: raw samples of any source -> augmented input crops -> batched heatmap targets.

Pipeline (shapes and the coordinate convention: ``docs/CONTRACTS.md``): a *source*
(:class:`~heatlit.data.base.Source`) returns raw-sample dicts; :class:`~heatlit.data.samples.SampleDataset`
crops, augments and normalises each; :class:`~heatlit.data.samples.HeatmapCollate` encodes a batch's
targets on the :class:`~heatlit.codecs.grid.HeatmapGrid` this module builds from its settings.

Randomness: every sample draws its augmentation from its own generator seeded by
``(seed, epoch, index)``, and the training order from ``(seed, epoch)``, so a batch depends on the seed
and the epoch only, not on ``num_workers`` nor on which worker built it. Worker processes also get
their numpy / random / torch globals seeded from ``(seed, epoch, worker id)``
(:func:`~heatlit.data.samples.seed_worker_globals`) for any source that draws from them; the main
process's generators are never touched or consumed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from heatlit.codecs.grid import HeatmapGrid
from heatlit.data import transforms as T
from heatlit.data.base import SPLITS, DatasetDescription, description_of
from heatlit.data.samples import HeatmapCollate, SampleDataset


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
        source: a factory ``source(split=...) -> Source`` (e.g. a Hydra ``_partial_: true`` node of
            ``SynthSource`` / ``Human4DSource`` / ``CocoSource``), or a mapping ``split -> factory or
            Source`` when splits need different settings.
        input_size: ``(H, W)`` of the network input.
        stride: input px per heatmap px; must divide H and W.
        batch_size, num_workers: loader settings (the last training batch is dropped if incomplete).
        seed: base seed of order and augmentation (default 1314).
        heatmap_depth: D depth bins for 3D volumetric targets, None for 2D maps.
        depth_range_mm: depth extent (mm, centred on the root joint) of the D bins (see
            :mod:`heatlit.codecs.grid`).
        grid_mapping: the input <-> heatmap mapping, a name of :data:`heatlit.codecs.grid.MAPPINGS`
            (``aligned``, the default, or ``udp``).
        augment: :class:`~heatlit.data.transforms.AugmentConfig` fields (training split only); None
            or ``enabled: false`` = no augmentation.
        depth_offset_m, depth_scale_m: depth input = ``(metres - offset) / scale``.
        encoder: the target encoder; default ``GaussianEncoder(sigma=2.0, quantize=False)``.
        pin_memory: None = pin when CUDA is available.
        metric_kind: accepted so run configs stored in older checkpoints still build; the metric is
            the source's (:attr:`DatasetDescription.pck`), and a value that contradicts it is an error.

    Read by the trainer: :attr:`grid` (the :class:`~heatlit.codecs.grid.HeatmapGrid`, built here once
    from the settings above) and :attr:`description` (the sources' :class:`DatasetDescription`);
    :meth:`source` gives a split's raw source.
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
        grid_mapping: str = "aligned",
    ) -> None:
        super().__init__()
        self.grid = HeatmapGrid(input_size, stride, heatmap_depth, depth_range_mm, grid_mapping)
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
        self._metric_kind = metric_kind
        for spec in source.values() if isinstance(source, Mapping) else (source,):
            _check_factory(spec)
        self._source_spec = source
        self._sources: dict[str, Dataset] = {}
        self.datasets: dict[str, SampleDataset] = {}
        self._collate: HeatmapCollate | None = None

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
            source = spec(split=split) if callable(spec) and not isinstance(spec, Dataset) else spec
            self._check_source(source, split)
            self._sources[split] = source
        return self._sources[split]

    def _check_source(self, source: Dataset, split: str) -> None:
        desc = description_of(source)
        if self._metric_kind is not None and self._metric_kind not in (
            desc.pck,
            "coco" if desc.oks_sigmas else None,
        ):
            raise ValueError(
                f"metric_kind={self._metric_kind!r} contradicts the {desc.name} data, scored by {desc.pck}"
                f"{' and OKS AP' if desc.oks_sigmas else ''}; remove data.metric_kind"
            )
        if self.grid.depth_bins is not None and desc.multi_person:
            raise ValueError(
                f"heatmap_depth={self.grid.depth_bins}: 3D volumes bin depth relative to one person's root, "
                f"so the multi-person {desc.name} data has 2D bottom-up targets only; use heatmap_depth=null"
            )
        if self.grid.depth_bins is not None and not desc.has_3d:
            raise ValueError(
                f"heatmap_depth={self.grid.depth_bins} asks for 3D volumetric targets, but the {split} source "
                f"{type(source).__name__} has no 3D joints; use heatmap_depth=null with this data"
            )

    @property
    def description(self) -> DatasetDescription:
        """The data's :class:`DatasetDescription` (any split's source: they share one)."""
        # Prefer a split already built, else the (usually small) val split.
        for split in (*self._sources, "val", "train", "test"):
            try:
                return description_of(self.source(split))
            except KeyError:
                continue
        raise KeyError("no data source configured")

    @property
    def collate(self) -> HeatmapCollate:
        if self._collate is None:
            desc = self.description
            self._collate = HeatmapCollate(self.encoder, self.grid, desc.root, desc.multi_person)
        return self._collate

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
                self.grid.input_size,
                augment=self.augment if split == "train" else None,
                seed=self.seed,
                depth_offset_m=self.depth_offset_m,
                depth_scale_m=self.depth_scale_m,
                need_3d=self.grid.depth_bins is not None,
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
