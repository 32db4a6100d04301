"""The work behind ``python -m heatlit.train`` and ``python -m heatlit.eval``; the entry points stay thin."""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from heatlit.config import ConfigError, check_config, check_decoders, check_model_data, resolve_ckpt
from heatlit.results import decoder_table, ordered_metrics, write_results
from heatlit.training.artifacts import qualitative_figure
from heatlit.training.gpu_lease import lease_gpu
from heatlit.training.module import CHOICES_KEY, CONFIG_KEY, HeatmapModule
from heatlit.training.outputs import build_output, check_representation

log = logging.getLogger(__name__)


def output_dir(cfg: DictConfig) -> Path:
    """The run's output directory (``output_dir``, the Hydra job's directory unless overridden)."""
    path = Path(cfg.output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def choices(cfg: DictConfig) -> dict[str, Any]:
    """Which option of each config group this run used (model, encoding, loss, data, ...).

    An evaluation reports the training run's choices (stored in the checkpoint) under its own data.
    """
    if cfg.get("run_choices"):
        picked = dict(OmegaConf.to_container(cfg.run_choices))
        picked["data"] = _hydra_choices().get("data") or picked.get("data")
        return picked
    picked = _hydra_choices()
    for group in ("model", "encoding", "loss", "data"):
        picked.setdefault(group, OmegaConf.select(cfg, f"{group}._target_", default="?").rsplit(".", 1)[-1])
    sigma = OmegaConf.select(cfg, "encoding.sigma")
    picked["sigma"] = OmegaConf.to_container(sigma) if OmegaConf.is_config(sigma) else sigma
    picked["stride"] = OmegaConf.select(cfg, "data.stride")
    picked["seed"] = cfg.seed
    return picked


def _hydra_choices() -> dict[str, Any]:
    picked: dict[str, Any] = {}
    try:
        runtime = HydraConfig.get().runtime.choices
        picked = {
            k: v for k, v in runtime.items() if not k.startswith("hydra") and "@" not in k and v is not None
        }
    except ValueError:
        pass
    return picked


def build_datamodule(cfg: DictConfig):
    """The data module with the configured encoder. Bad data settings (a missing root, file or required
    option) surface as one ConfigError naming the problem, not as a chain of instantiation errors."""
    encoder = instantiate(cfg.encoding)
    try:
        return instantiate(cfg.data, encoder=encoder)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, ValueError | FileNotFoundError | MissingMandatoryValue):
            raise ConfigError(f"data={choices(cfg).get('data', '?')}: {cause}") from err
        raise


def build_decoders(cfg: DictConfig) -> dict:
    return {name: instantiate(node) for name, node in cfg.decoders.items()}


def build_module(cfg: DictConfig, datamodule, decoders: dict) -> HeatmapModule:
    """Model, loss, metrics and optimiser from the config, sized by the data module."""
    from heatlit.metrics import MPJPE, CocoOksAP, build_metrics

    output, loss = build_output(cfg), instantiate(cfg.loss)
    check_representation(output, datamodule.encoder, loss, decoders)
    desc, grid = datamodule.description, datamodule.grid
    make_model = functools.partial(instantiate, cfg.model, in_channels=desc.in_channels)
    model = output.build(make_model, desc.num_keypoints, grid)
    check_model_data(model, grid)
    check_decoders(decoders, model.head_dim)
    make_metrics = functools.partial(build_metrics, desc.pck, num_joints=desc.num_keypoints)
    make_3d = functools.partial(MPJPE, root_index=desc.root) if model.head_dim == 3 else None
    make_coco = None
    if desc.oks_sigmas is not None:  # each stage scores against its own split's annotation file

        def make_coco(stage: str) -> CocoOksAP:
            return CocoOksAP(ann_file=datamodule.source(stage).ann_file, sigmas=desc.oks_sigmas)

    return HeatmapModule(
        model=model,
        loss=loss,
        decoders=decoders,
        make_metrics=make_metrics,
        make_3d=make_3d,
        make_coco=make_coco,
        optimizer=instantiate(cfg.optim.optimizer),
        scheduler=instantiate(cfg.optim.scheduler) if cfg.optim.get("scheduler") else None,
        grid=grid,
        description=desc,
        flip_test=cfg.flip_test,
        qualitative=cfg.qualitative,
        output=output,
    )


def monitor_key(cfg: DictConfig, datamodule) -> str:
    """``val/<decoder>/<metric>``: ``monitor.metric``, else the metric the data's description names."""
    return f"val/{cfg.monitor.decoder}/{cfg.monitor.metric or datamodule.description.monitor}"


def build_trainer(cfg: DictConfig, monitor: str) -> L.Trainer:
    callbacks = [
        instantiate(node, **({"monitor": monitor} if "monitor" in node else {}))
        for node in (cfg.get("callbacks") or {}).values()
        if node
    ]
    loggers = [instantiate(node) for node in (cfg.get("logger") or {}).values() if node]
    if not loggers:  # Lightning refuses a learning-rate monitor with nothing to log to
        callbacks = [c for c in callbacks if type(c).__name__ != "LearningRateMonitor"]
    devices = {}
    # Only when several GPUs are visible and the job wants one: under SLURM each job already sees just its
    # own GPU, and a shared lock on "gpu0" there would serialise jobs that own different cards.
    if (
        cfg.get("gpu_lease")
        and cfg.trainer.get("accelerator") in ("auto", "gpu", "cuda")
        and cfg.trainer.get("devices") in (1, "1")
        and torch.cuda.is_available()
        and torch.cuda.device_count() > 1
    ):
        devices = {"devices": [lease_gpu(torch.cuda.device_count())]}
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **devices)


def wandb_loggers(trainer: L.Trainer) -> list:
    return [lg for lg in trainer.loggers if type(lg).__name__ == "WandbLogger"]


def finish_loggers(trainer: L.Trainer) -> None:
    """Close wandb so the next job of a multirun starts its own run."""
    if wandb_loggers(trainer):
        import wandb

        wandb.finish()


def report(module: HeatmapModule, trainer: L.Trainer, cfg: DictConfig, out: Path, extra: dict) -> dict:
    """Print the per-decoder table, write results.json and the qualitative figure; return the results."""
    from rich.console import Console

    results = module.results
    if "test" in results:
        Console().print(decoder_table(results["test"], "test"))
        metrics = ordered_metrics({m for v in results["test"].values() for m in v})
        rows = [[dec, *(values.get(m) for m in metrics)] for dec, values in results["test"].items()]
        for lg in wandb_loggers(trainer):
            lg.log_table(key="test/decoders", columns=["decoder", *metrics], data=rows)
    path = write_results(
        out / "results.json",
        choices(cfg),
        results,
        extra,
        grid=module.grid.describe(),
        dataset=module.description.to_dict(),
        decode_time=module.decode_times,
    )
    log.info("results written to %s", path)
    if module.samples:
        fig = qualitative_figure(
            module.samples, cfg.monitor.decoder, out / "qualitative.png", module.description.skeleton
        )
        for lg in wandb_loggers(trainer):
            import wandb

            lg.experiment.log({"test/qualitative": wandb.Image(fig)})
        import matplotlib.pyplot as plt

        plt.close(fig)
    return results


def train(cfg: DictConfig) -> dict:
    """Fit, test the best checkpoint with every decoder, write artefacts. Returns the results dict."""
    started = time.time()
    check_config(cfg)
    L.seed_everything(cfg.seed, workers=True)
    # In a multirun, `last` means this job's own folder (stable per job when hydra.sweep.dir is pinned);
    # searching the sweep would hand every job the same newest checkpoint.
    search = Path(cfg.output_dir) if _multirun() else Path(cfg.output_dir).parent
    ckpt = resolve_ckpt(cfg.ckpt_path, search)
    if ckpt is not None and Path(ckpt).parent.name == "checkpoints":
        # Resume in the interrupted run's folder, so best-checkpoint tracking and logs carry on there; the
        # CSV logger writes a new version there (reusing one would delete the earlier curve).
        cfg.output_dir = str(Path(ckpt).parent.parent)
        if OmegaConf.select(cfg, "logger.csv") is not None:
            cfg.logger.csv.version = time.strftime("resumed-%Y%m%d-%H%M%S")
        log.info("resuming %s in %s", ckpt, cfg.output_dir)
    out = output_dir(cfg)
    datamodule = build_datamodule(cfg)
    decoders = build_decoders(cfg)
    module = build_module(cfg, datamodule, decoders)
    module.run_config = OmegaConf.to_container(cfg, resolve=True)
    module.run_choices = choices(cfg)
    monitor = monitor_key(cfg, datamodule)
    trainer = build_trainer(cfg, monitor)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if cfg.test:
            trainer.test(
                module, datamodule=datamodule, ckpt_path=best or None, weights_only=False, verbose=False
            )
        extra = {
            "best_checkpoint": best or None,
            "monitor": monitor,
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "wall_time_s": round(time.time() - started, 1),
            "device": str(module.device),
        }
        return report(module, trainer, cfg, out, extra)
    finally:
        finish_loggers(trainer)


def evaluate(cfg: DictConfig) -> dict:
    """Test a checkpoint with every decoder; data and decoders may differ from the training run."""
    started = time.time()
    if not cfg.ckpt_path:
        raise ConfigError("evaluation needs ckpt_path=<path to a heatlit checkpoint>")
    path = resolve_ckpt(cfg.ckpt_path, Path(cfg.search_root))
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if CONFIG_KEY not in checkpoint:
        raise ConfigError(f"{path} holds no heatlit run config; was it written by heatlit.train?")
    run_cfg = OmegaConf.create(checkpoint[CONFIG_KEY])
    # The model (and so its stride and depth bins), encoding and loss are the checkpoint's; data, decoders and
    # test options are this call's, each replaced whole (a merge would mix two data sources' options).
    trained = run_cfg.data
    for key in ("data", "decoders", "flip_test", "monitor", "qualitative"):
        if cfg.get(key) is not None:
            run_cfg[key] = cfg[key]
    if cfg.get("data") is not None:
        run_cfg.data.stride = trained.stride
        run_cfg.data.heatmap_depth = trained.get("heatmap_depth")
        run_cfg.data.grid_mapping = trained.get("grid_mapping", "aligned")
    run_cfg.run_choices = checkpoint.get(CHOICES_KEY)
    run_cfg.output_dir = cfg.output_dir
    run_cfg.trainer = cfg.trainer
    run_cfg.logger = cfg.get("logger")
    run_cfg.callbacks = None
    check_config(run_cfg)
    L.seed_everything(run_cfg.seed, workers=True)
    datamodule = build_datamodule(run_cfg)
    module = build_module(run_cfg, datamodule, build_decoders(run_cfg))
    missing, unexpected = module.load_state_dict(checkpoint["state_dict"], strict=False)
    if [k for k in missing if not k.startswith("scorers.")] or unexpected:
        raise ConfigError(
            f"{path} does not fit the stored model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    trainer = build_trainer(run_cfg, monitor_key(run_cfg, datamodule))
    try:
        trainer.test(module, datamodule=datamodule, verbose=False)
        extra = {"checkpoint": path, "wall_time_s": round(time.time() - started, 1)}
        return report(module, trainer, run_cfg, output_dir(run_cfg), extra)
    finally:
        finish_loggers(trainer)


def main_guard(fn, cfg: DictConfig) -> Any:
    """Run ``fn(cfg)``; a config or data error (missing file, corrupt data) becomes a one-paragraph message
    and exit status 2, not a traceback."""
    from heatlit.data.errors import DataError

    try:
        return fn(cfg)
    except (ConfigError, FileNotFoundError, DataError) as err:
        from rich.console import Console

        kind = "configuration error" if isinstance(err, ConfigError) else "data error"
        Console(stderr=True).print(f"[bold red]{kind}:[/] {err}")
        # In a multirun, Hydra records a raised job failure and runs the remaining jobs; an exit would not.
        if os.environ.get("HEATLIT_RAISE") or _multirun():
            raise
        raise SystemExit(2) from None


def _multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False
