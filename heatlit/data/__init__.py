"""Data: sources of raw samples and the `HeatmapDataModule` that turns them into heatmap batches.

Sources (:class:`Source` subclasses: ``SynthSource``, ``Human4DSource``, ``CocoSource``) return the
raw-sample dict of ``docs/CONTRACTS.md`` and carry a :class:`DatasetDescription`;
:class:`HeatmapDataModule` crops, augments, normalises and encodes them. The synthetic and 4D-human
sources are imported from their modules (``heatlit.data.synth``, ``heatlit.data.human4d``), not here, so
that importing the data module costs nothing extra. The synthetic generator lives in
:mod:`heatlit.data.generator`; the body model (skeleton, shape, depth camera) in :mod:`heatlit.body`.
"""

from heatlit.data.base import DatasetDescription, Source
from heatlit.data.coco import CocoSource
from heatlit.data.datamodule import EpochSampler, HeatmapDataModule
from heatlit.data.errors import DataError
from heatlit.data.samples import HeatmapCollate, SampleDataset
from heatlit.data.transforms import AugmentConfig

__all__ = [
    "AugmentConfig",
    "CocoSource",
    "DataError",
    "DatasetDescription",
    "EpochSampler",
    "HeatmapCollate",
    "HeatmapDataModule",
    "SampleDataset",
    "Source",
]
