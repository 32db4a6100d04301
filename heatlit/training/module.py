"""LightningModule: one model, one loss, every decoder scored on the same forward pass."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from torch import nn

from heatlit.codecs.grid import HeatmapGrid
from heatlit.data.base import DatasetDescription
from heatlit.training.losses import HeatmapLoss
from heatlit.training.outputs import HeatmapOutput
from heatlit.training.outputs import flip_heatmaps as flip_heatmaps  # its home before output kinds existed
from heatlit.training.scoring import DecoderScorer

Tensor = torch.Tensor

# What every heatlit checkpoint carries beside the weights (plain containers only: see heatlit.models.checkpoint):
# the composed run config, resolved (what `heatlit.eval` and a resume run with); the run's choices as
# results.json reports them (model, encoding, sigma, ...); every config-group option the run used (a resume
# compares typed overrides with these); the keypoint count and input channels the model was built for.
CONFIG_KEY = "heatlit_config"
CHOICES_KEY = "heatlit_choices"
GROUPS_KEY = "heatlit_groups"
SHAPE_KEY = "heatlit_shape"  # {"num_joints": K, "in_channels": C}


class HeatmapModule(L.LightningModule):
    """Trains a heatmap model (or another coordinate representation's) and scores it with every configured decoder.

    Args:
        model: ``model(image[B,C,H,W]) -> list[output]``, final prediction last; each output of the kind
            ``output`` describes (heatmaps by default, see :mod:`heatlit.training.outputs`).
        loss: ``loss(outputs, batch) -> (total, parts)``, e.g. :class:`HeatmapLoss`.
        decoders: name -> decoder; all of them are scored on validation and test.
        make_metrics / make_3d: metric factories (see :class:`DecoderScorer`); make_coco: ``stage ->``
            OKS AP metric (each split has its own annotation file).
        optimizer: partial ``params -> torch.optim.Optimizer``; scheduler: optional partial
            ``optimizer -> LRScheduler`` (stepped per epoch).
        grid: the heatmap grid the model predicts on (the data module's).
        description: the data's :class:`DatasetDescription` (flip test, qualitative figure, results.json).
        flip_test: average each prediction with the prediction on the mirrored input.
        qualitative: how many test samples to keep for the qualitative figure.
        output: the model's output kind (:class:`~heatlit.training.outputs.HeatmapOutput` by default): its
            flip test and the map the qualitative figure draws.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: HeatmapLoss,
        decoders: Mapping[str, Callable],
        make_metrics: Callable,
        optimizer: Callable,
        grid: HeatmapGrid,
        description: DatasetDescription,
        scheduler: Callable | None = None,
        flip_test: bool = True,
        make_3d: Callable | None = None,
        make_coco: Callable | None = None,
        qualitative: int = 8,
        output: HeatmapOutput | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.output = output if output is not None else HeatmapOutput()
        self.loss = loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.grid, self.description = grid, description
        self.flip_test = bool(flip_test)
        self.scorers = nn.ModuleDict(
            {
                stage: DecoderScorer(
                    decoders,
                    make_metrics,
                    grid,
                    make_3d,
                    functools.partial(make_coco, stage) if make_coco else None,
                )
                for stage in ("val", "test")
            }
        )
        self.results: dict[str, dict[str, dict[str, float]]] = {}
        self.decode_times: dict[str, dict[str, dict[str, float | int]]] = {}  # stage -> decoder -> timing
        self.qualitative = int(qualitative)
        self.samples: dict[str, Tensor] = {}
        self.run_record: dict = {}  # CONFIG_KEY, CHOICES_KEY, ... -> plain containers, saved with every checkpoint

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint.update(self.run_record)

    def forward(self, image: Tensor) -> list[Tensor]:
        return self.model(image)

    def predict_heatmaps(self, image: Tensor) -> Tensor:
        """Final-stage heatmaps ``[B, K, ...]`` (or the output kind's prediction), flip-averaged when flip
        testing is on."""
        heatmaps = self.model(image)[-1]
        if self.flip_test:
            mirrored = self.model(torch.flip(image, dims=[-1]))[-1]
            heatmaps = self.output.flip_average(heatmaps, mirrored, self.description.flip_index)
        return heatmaps

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        outputs = self.model(batch["image"])
        total, parts = self.loss(outputs, batch)
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"training loss became {total.item()} at step {self.global_step}; lower optim.lr or check the data"
            )
        size = batch["image"].shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=size)
        for name, value in parts.items():
            self.log(f"train/{name}", value, batch_size=size)
        return total

    def _evaluate(self, stage: str, batch: dict) -> None:
        heatmaps = self.predict_heatmaps(batch["image"])
        predictions = self.scorers[stage].update(heatmaps, batch)
        if stage == "test" and self._kept() < self.qualitative:
            self._keep(batch, heatmaps, predictions)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate("test", batch)

    def _kept(self) -> int:
        return 0 if not self.samples else self.samples["image"].shape[0]

    def _keep(self, batch: dict, heatmaps, predictions: dict[str, Tensor]) -> None:
        take = self.qualitative - self._kept()
        new = {
            "image": batch["image"][:take, 0],
            "keypoints": batch["keypoints"][:take],
            "visible": batch["visible"][:take],
            "heatmaps": self.output.preview(heatmaps)[:take],
            **{f"pred/{k}": v[:take] for k, v in predictions.items()},
        }
        for key, value in new.items():
            value = value.detach().float().cpu()
            self.samples[key] = value if key not in self.samples else torch.cat([self.samples[key], value])

    def _log_results(self, stage: str) -> None:
        self.decode_times[stage] = self.scorers[stage].decode_times()  # read before compute() resets them
        results = self.scorers[stage].compute()
        self.results[stage] = results
        flat = {
            f"{stage}/{dec}/{name}": value
            for dec, values in results.items()
            for name, value in values.items()
        }
        # Already reduced across processes by torchmetrics: the mean of equal values changes nothing, and a
        # distributed run then logs without Lightning warning about unsynchronised epoch values.
        self.log_dict(flat, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self._log_results("val")

    def on_test_epoch_start(self) -> None:
        self.samples = {}

    def on_test_epoch_end(self) -> None:
        self._log_results("test")

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"},
        }
