"""Data: sources of raw samples and the `HeatmapDataModule` that turns them into heatmap batches.

Sources (``SynthSource``, ``Human4DSource``, ``CocoSource``) return the raw-sample dict of
``docs/CONTRACTS.md``; :class:`HeatmapDataModule` crops, augments, normalises and encodes them. The
synthetic and 4D-human sources are imported from their modules (``heatlit.data.synth``,
``heatlit.data.human4d``), not here, so that importing the data module costs nothing extra.
"""

from heatlit.data.coco import CocoSource
from heatlit.data.datamodule import EpochSampler, HeatmapCollate, HeatmapDataModule, SampleDataset
from heatlit.data.errors import DataError
from heatlit.data.transforms import AugmentConfig

__all__ = [
    "AugmentConfig",
    "CocoSource",
    "DataError",
    "EpochSampler",
    "HeatmapCollate",
    "HeatmapDataModule",
    "SampleDataset",
]
