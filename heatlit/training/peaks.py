"""Multi-person scoring: one forward pass, every decoder's candidate peaks against every person's joints.

The multi-person counterpart of :class:`heatlit.training.scoring.DecoderScorer`, chosen by
:class:`~heatlit.training.module.HeatmapModule` when the data's description says ``multi_person``. Shapes
and conventions: :mod:`heatlit.codecs` (coordinates), docs/CONTRACTS.md (batch keys).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from heatlit.codecs import candidate_peaks
from heatlit.codecs.grid import HeatmapGrid
from heatlit.training.scoring import DecoderScorer

Tensor = torch.Tensor


class PeakScorer(DecoderScorer):
    """Per-decoder peak-detection metrics fed from one set of heatmaps.

    Args:
        decoders: name -> decoder; single-peak decoders are scored as one candidate per channel.
        make_metric: factory of a fresh :class:`heatlit.metrics.PeakDetection`.
        grid: the :class:`~heatlit.codecs.grid.HeatmapGrid` of the heatmaps (heatmap px -> input px).
    """

    def __init__(self, decoders: Mapping[str, Callable], make_metric: Callable, grid: HeatmapGrid) -> None:
        super().__init__(decoders, make_metric, grid)

    @torch.no_grad()
    def update(self, heatmaps: Tensor, batch: Mapping) -> dict[str, Tensor]:
        """Score every decoder on ``heatmaps`` against ``batch["people_keypoints"]`` / ``people_visible``.

        Returns name -> the strongest candidate per channel in input px ``[B, K, 2]`` (for figures).
        """
        heatmaps = heatmaps.detach().float()
        strongest = {}
        for name, decoder in self.decoders.items():
            coords, scores = candidate_peaks(*decoder(heatmaps))
            xy = self.grid.to_input(coords[..., :2])
            self.metrics[name].update(xy, scores, batch["people_keypoints"], batch["people_visible"])
            strongest[name] = xy[:, :, 0]
        return strongest

    def compute(self) -> dict[str, dict[str, float]]:
        """name -> metric -> value (python floats), then resets every state."""
        results = {
            name: {k: float(v) for k, v in self.metrics[name].compute().items()} for name in self.decoders
        }
        self.reset()
        return results
