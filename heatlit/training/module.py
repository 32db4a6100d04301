"""LightningModule: one model, one loss, every decoder scored on the same forward pass."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import nn

from heatlit.codecs.grid import HeatmapGrid
from heatlit.data.base import DatasetDescription
from heatlit.training.losses import HeatmapLoss
from heatlit.training.optim import build_optimizer
from heatlit.training.outputs import HeatmapOutput
from heatlit.training.outputs import flip_heatmaps as flip_heatmaps  # its home before output kinds existed
from heatlit.training.peaks import PeakScorer
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


def scaled_input_size(size: Sequence[int], scale: float, multiple: int) -> tuple[int, int]:
    """``(H, W)`` times ``scale``, each rounded to the nearest positive multiple of ``multiple`` (the model's)."""
    return tuple(max(multiple, round(int(n) * scale / multiple) * multiple) for n in size)  # type: ignore[return-value]


def resize_maps(maps: Tensor, size: Sequence[int], mode: str = "bilinear") -> Tensor:
    """Resize ``[B, C(, D), h, w]`` to ``[B, C(, D), *size]`` over the last two axes, pixel extents aligned.

    ``align_corners=False`` maps ``[-0.5, w - 0.5]`` onto ``[-0.5, W - 0.5]``: the aligned mapping of
    :mod:`heatlit.codecs.coords`, so an image and its heatmaps resized this way keep their coordinates'
    meaning. ``mode`` ``"nearest-exact"`` (the same alignment without mixing values) suits depth images.
    """
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:]) if maps.dim() != 4 else maps
    kwargs = {} if mode.startswith("nearest") else {"align_corners": False}
    out = torch.nn.functional.interpolate(flat, size=tuple(int(n) for n in size), mode=mode, **kwargs)
    return out.reshape(*lead, *out.shape[-2:])


class HeatmapModule(L.LightningModule):
    """Trains a heatmap model (or another coordinate representation's) and scores it with every configured decoder.

    Args:
        model: ``model(image[B,C,H,W]) -> list[output]``, final prediction last; each output of the kind
            ``output`` describes (heatmaps by default, see :mod:`heatlit.training.outputs`).
        loss: ``loss(outputs, batch) -> (total, parts)``, e.g. :class:`HeatmapLoss`.
        decoders: name -> decoder; all of them are scored on validation and test.
        make_metrics / make_3d: metric factories (see :class:`DecoderScorer`; multi-person data: a
            :class:`heatlit.metrics.PeakDetection` factory for :class:`PeakScorer`); make_coco: ``stage ->``
            OKS AP metric (each split has its own annotation file), used at test and, with ``oks_val``, at
            validation (pycocotools' evaluation per decoder and epoch costs ~0.2 s each: only worth it when an
            OKS figure picks the checkpoint).
        optimizer: partial ``params -> torch.optim.Optimizer`` (built with torch's fused or foreach step where
            it has one: :mod:`heatlit.training.optim`); scheduler: optional partial
            ``optimizer -> LRScheduler`` (stepped per epoch).
        grid: the heatmap grid the model predicts on (the data module's).
        description: the data's :class:`DatasetDescription` (flip test, qualitative figure, results.json).
        flip_test: at test time (and in :meth:`predict_heatmaps`), average each prediction with the prediction
            on the mirrored input.
        flip_val: the same on the validation split. Off by default: validation only ranks checkpoints, and the
            flip doubles its forward passes every epoch; the test reports the flip-averaged numbers.
        test_scales: multi-scale testing: run the model on the input resized by each factor, resize its
            heatmaps back to the grid and average them (``(1.0,)``: single scale). Needs the aligned mapping.
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
        flip_val: bool = False,
        make_3d: Callable | None = None,
        make_coco: Callable | None = None,
        oks_val: bool = True,
        qualitative: int = 8,
        test_scales: Sequence[float] = (1.0,),
        output: HeatmapOutput | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.output = output if output is not None else HeatmapOutput()
        self.loss = loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.grid, self.description = grid, description
        self.flip_test, self.flip_val = bool(flip_test), bool(flip_val)
        self.test_scales = tuple(float(f) for f in test_scales)
        if not self.test_scales or any(not f > 0 for f in self.test_scales):
            raise ValueError(f"test_scales must be positive factors, got {list(test_scales)}")
        if self.test_scales != (1.0,) and grid.mapping.name != "aligned":
            raise ValueError(f"multi-scale testing needs the aligned grid mapping, not {grid.mapping.name!r}")
        if self.test_scales != (1.0,) and self.output.kind != "heatmap":
            raise ValueError(
                f"multi-scale testing resizes heatmaps; the model emits {self.output.kind} outputs"
            )
        self.scorers = nn.ModuleDict(
            {
                # several people per map: every decoder's candidate peaks against every person's joints
                stage: PeakScorer(decoders, make_metrics, grid)
                if description.multi_person
                else DecoderScorer(
                    decoders,
                    make_metrics,
                    grid,
                    make_3d,
                    functools.partial(make_coco, stage)
                    if make_coco and (oks_val or stage == "test")
                    else None,
                    keep_samples=stage == "test",  # per_sample.npz: decoders paired per test sample
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

    def predict_heatmaps(self, image: Tensor, flip: bool | None = None) -> Tensor:
        """Final-stage heatmaps ``[B, K, ...]`` on the grid of ``image``, flip-averaged when ``flip`` (default:
        :attr:`flip_test`) and averaged over :attr:`test_scales` (each scale's maps resized back to the scale-1
        size)."""
        flip = self.flip_test if flip is None else bool(flip)
        if self.test_scales == (1.0,):
            return self._predict_at(image, flip)
        size = image.shape[-2:]
        # depth resized by nearest: a blend of a person and the wall behind is a surface that exists nowhere
        mode = "nearest-exact" if self.description.in_channels == 1 else "bilinear"
        multiple = getattr(self.model, "size_multiple", 1)
        total = None
        for factor in self.test_scales:
            scaled = scaled_input_size(size, factor, multiple)
            heatmaps = self._predict_at(
                image if tuple(scaled) == tuple(size) else resize_maps(image, scaled, mode), flip
            )
            if tuple(heatmaps.shape[-2:]) != tuple(self.grid.heatmap_size[-2:]):
                heatmaps = resize_maps(heatmaps, self.grid.heatmap_size[-2:])
            total = heatmaps if total is None else total + heatmaps
        return total / len(self.test_scales)

    def _predict_at(self, image: Tensor, flip: bool) -> Tensor:
        heatmaps = self.model(image)[-1]
        if flip:
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
        heatmaps = self.predict_heatmaps(batch["image"], self.flip_test if stage == "test" else self.flip_val)
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
        timed = getattr(self.scorers[stage], "decode_times", None)  # the multi-person scorer keeps no times
        self.decode_times[stage] = timed() if timed else {}  # read before compute() resets them
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
        if isinstance(self.scorers["test"], DecoderScorer):
            self.scorers["test"].clear_samples()

    def on_test_epoch_end(self) -> None:
        self._log_results("test")

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.optimizer_factory, self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"},
        }
