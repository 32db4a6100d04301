"""The work behind ``python -m heatlit.predict``: a checkpoint's model on new inputs, or on its data's test split,
written as COCO keypoint results (:mod:`heatlit.inference.outputs`) and optional overlays.

The checkpoint brings its model, input size, normalisation and data description; the inputs go through the
same data module as the training data (:mod:`heatlit.inference.inputs` serves files as a source), and the
model's output through the same flip test and decoder code as the test step
(:meth:`HeatmapModule.predict_heatmaps`, :meth:`DecoderScorer.decode`), so a test-split prediction equals what
``heatlit.eval`` scores.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset, default_collate

from heatlit.data.errors import DataError
from heatlit.inference.inputs import DepthFiles, Entry, ImageFiles, image_id_of, list_inputs, read_boxes
from heatlit.inference.outputs import Prediction, draw_overlay, overlay_names, write_coco_results
from heatlit.metrics.coco import instance_score
from heatlit.models.checkpoint import load_checkpoint
from heatlit.training.checks import ConfigError, check_fits
from heatlit.training.job import hydra_groups
from heatlit.training.module import CONFIG_KEY, SHAPE_KEY
from heatlit.training.run import build_datamodule, build_decoders, build_module, eval_checkpoint, with_data
from heatlit.training.scoring import to_image_space

log = logging.getLogger(__name__)

OUT_NAME = "predictions.json"


class Unscored:
    """What :func:`heatlit.training.run.build_module` reads of a data module, without anything to score
    against: prediction has no labels, so no OKS metric (and no annotation file) is built."""

    def __init__(self, datamodule) -> None:
        self.grid = datamodule.grid
        self.encoder = datamodule.encoder
        self.description = replace(datamodule.description, oks_sigmas=None)


class Skipping(Dataset):
    """``dataset[i]``, or ``{"skipped": <why>}`` when its file cannot be read (named and skipped, not fatal), or
    ``{"refused": <why>}`` for input of the wrong kind (fatal: :func:`predict` raises it). Returned rather than
    raised, so a DataLoader worker hands the one-line message over unwrapped."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            return self.dataset[index]
        except ConfigError as err:
            return {"refused": str(err)}
        except (DataError, OSError) as err:  # FileNotFoundError too
            return {"skipped": str(err)}


def collate(items: list[dict]) -> tuple[dict | None, list[str], list[str]]:
    """``(batch of the readable samples or None, why each unreadable one was skipped, why any was refused)``;
    the caller raises a refusal (here it could be in a worker process)."""
    kept = [item for item in items if "skipped" not in item and "refused" not in item]
    return (
        default_collate(kept) if kept else None,
        [item["skipped"] for item in items if "skipped" in item],
        [item["refused"] for item in items if "refused" in item],
    )


@dataclass
class PredictRun:
    """What a prediction wrote and skipped."""

    out: Path
    predictions: list[Prediction] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    overlays: list[Path] = field(default_factory=list)
    inputs: int = 0


def configured_description(data_cfg: DictConfig):
    """The data description of a data config's source class, without building the source (no data needed)."""
    node = data_cfg.source
    if "_target_" not in node:  # per-split sources: any split's class describes them all
        node = next(v for v in node.values() if OmegaConf.is_dict(v) and "_target_" in v)
    return get_class(node._target_).description


def input_datamodule(cfg: DictConfig, run_cfg: DictConfig):
    """The checkpoint's data module with ``cfg.input`` (files) as its test split."""
    description = configured_description(run_cfg.data)
    depth = description.in_channels == 1
    files = list_inputs(Path(str(cfg.input)), depth)
    if depth:
        if cfg.get("boxes"):
            raise ConfigError("boxes= is for RGB models; a depth model reads each depth map whole")
        entries = [Entry(p, image_id_of(p, i)) for i, p in enumerate(files)]
        source = DepthFiles(entries, description, cfg.depth_unit_mm)
    else:
        if cfg.get("boxes"):
            entries = read_boxes(Path(str(cfg.boxes)), files, cfg.box_score_threshold)
            if not entries:
                raise ConfigError(f"boxes={cfg.boxes}: no person box of the input images")
        else:
            entries = [Entry(p, image_id_of(p, i)) for i, p in enumerate(files)]
        padding = OmegaConf.select(run_cfg.data, "source.padding", default=1.25)
        source = ImageFiles(entries, description, padding)
    data_cfg = OmegaConf.masked_copy(run_cfg.data, [k for k in run_cfg.data if k != "source"])
    return instantiate(data_cfg, source={"test": source}, encoder=instantiate(run_cfg.encoding))


def pick_device(name: str) -> torch.device:
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(str(name))
    except RuntimeError as err:
        raise ConfigError(f"device={name}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name}: no CUDA device here (device=auto or cpu)")
    return device


def predict(cfg: DictConfig) -> PredictRun:
    """Predict with ``cfg.ckpt_path``'s model; write ``cfg.out`` (and overlays to ``cfg.overlays``).

    Writes nothing else: no run folder, no log, no checkpoint (see conf/predict.yaml for where ``out`` goes).
    """
    started = time.time()
    path = eval_checkpoint(None if OmegaConf.is_missing(cfg, "ckpt_path") else cfg.ckpt_path)
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, dict) or CONFIG_KEY not in checkpoint:
        raise ConfigError(f"{path} holds no heatlit run config; was it written by heatlit.train?")
    run_cfg = with_data(OmegaConf.create(checkpoint[CONFIG_KEY]), cfg.get("data"))
    name = hydra_groups().get("decoder") or "decoder"
    # resolved inside the run's config: `${loss.decode_beta}` and the like are the run's
    run_cfg.decoders = {name: OmegaConf.to_container(cfg.decoder, resolve=False)}
    run_cfg.flip_test = bool(cfg.flip_test)
    from_files = cfg.get("input") is not None
    datamodule = input_datamodule(cfg, run_cfg) if from_files else build_datamodule(run_cfg)
    layout = Unscored(datamodule)
    module = build_module(run_cfg, layout, build_decoders(run_cfg))
    state = checkpoint.get("state_dict") or {}
    check_fits(module, path, {k: tuple(v.shape) for k, v in state.items()}, checkpoint.get(SHAPE_KEY), layout)
    module.load_state_dict(state, strict=False)
    device = pick_device(cfg.device)
    module.to(device).eval()

    dataset = datamodule.dataset("test")
    source = datamodule.source("test")
    loader = DataLoader(
        Skipping(dataset),
        batch_size=int(cfg.batch_size),
        shuffle=False,
        num_workers=int(cfg.num_workers),
        collate_fn=collate,
    )
    out = Path(str(cfg.out)) if cfg.get("out") else Path(str(cfg.output_dir)) / OUT_NAME
    run = PredictRun(out, inputs=len(dataset))
    log.info(
        "predicting %d %s with %s (decoder %s%s) on %s",
        len(dataset),
        "input(s) from " + str(cfg.input) if from_files else f"test sample(s) of {layout.description.name}",
        path,
        name,
        ", flip test" if cfg.flip_test else "",
        device,
    )
    from rich.progress import track

    with torch.inference_mode():
        for batch, skipped, refused in track(loader, description="predict", disable=not cfg.progress):
            if refused:
                raise ConfigError(refused[0])
            for why in skipped:
                log.warning("skipped: %s", why)
            run.skipped += skipped
            if batch is None:
                continue
            output = module.predict_heatmaps(batch["image"].to(device))
            coords_hm, scores = module.scorers["test"].decode(name, output)
            xy = to_image_space(datamodule.grid.to_input(coords_hm[..., :2]), batch["to_image"].to(device))
            people = instance_score(scores.double()).cpu().numpy()
            for i, index in enumerate(batch["sample_index"].tolist()):
                entry = source.entries[index] if from_files else None
                box_score = entry.score if entry is not None and entry.score is not None else 1.0
                run.predictions.append(
                    Prediction(
                        image_id=int(batch["image_id"][i]),
                        keypoints=xy[i].double().cpu().numpy(),
                        scores=scores[i].double().cpu().numpy(),
                        score=float(people[i]) * box_score,
                        sample_index=index,
                        file=str(entry.file) if entry is not None else None,
                    )
                )
    write_coco_results(out, run.predictions)
    if cfg.get("overlays"):
        # overlays=true: an overlays/ folder beside `out`; else the folder named
        folder = out.parent / "overlays" if cfg.overlays is True else Path(str(cfg.overlays))
        run.overlays = write_overlays(folder, run.predictions, source, layout.description)
    log.info(
        "%d prediction(s) of %d input(s) written to %s in %.1f s%s",
        len(run.predictions),
        run.inputs,
        out,
        time.time() - started,
        f"; overlays in {run.overlays[0].parent}" if run.overlays else "",
    )
    if run.skipped:
        log.warning("skipped %d unreadable input(s) of %d (named above)", len(run.skipped), run.inputs)
    return run


def write_overlays(folder: Path, predictions: list[Prediction], source, description) -> list[Path]:
    """One PNG per input image: every person predicted in it over the image."""
    groups: dict[str, list[Prediction]] = {}
    for p in predictions:
        groups.setdefault(p.file if p.file is not None else str(p.image_id), []).append(p)
    names = overlay_names(list(groups))
    written = []
    for key, people in groups.items():
        image = source[people[0].sample_index]["image"]
        written.append(
            draw_overlay(
                image, [(p.keypoints, p.scores) for p in people], description.skeleton, folder / names[key]
            )
        )
    return written
