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
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import MissingMandatoryValue

from heatlit.data.base import SPLITS
from heatlit.data.errors import DataError
from heatlit.models.checkpoint import CheckpointError, load_checkpoint
from heatlit.per_sample import FILE_NAME as PER_SAMPLE_FILE
from heatlit.per_sample import write_per_sample
from heatlit.results import (
    FILE_NAME,
    LOWER_IS_BETTER,
    decoder_table,
    ordered_metrics,
    read_results,
    write_results,
)
from heatlit.training.artifacts import qualitative_figure
from heatlit.training.checks import (
    ConfigError,
    check_bottom_up_loss,
    check_config,
    check_decoders,
    check_fits,
    check_model_data,
)
from heatlit.training.gpu_lease import lease_gpu
from heatlit.training.job import (
    discard_invocation,
    hydra_groups,
    is_multirun,
    is_rank_zero,
    quiet_worker_logs,
    record_failure,
    settle_job_dir,
)
from heatlit.training.module import CHOICES_KEY, CONFIG_KEY, GROUPS_KEY, SHAPE_KEY, HeatmapModule
from heatlit.training.noise import quiet_known_noise
from heatlit.training.outputs import build_output, check_representation
from heatlit.training.resume import RunPlan, plan_run, wandb_run_id
from heatlit.training.scoring import DecoderScorer
from heatlit.training.start import log_destinations, split_sizes, start_block, trainer_device

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
        picked["data"] = hydra_groups().get("data") or picked.get("data")
        return picked
    picked = {k: v for k, v in hydra_groups().items() if "@" not in k}
    for group in ("model", "encoding", "loss", "data"):
        picked.setdefault(group, OmegaConf.select(cfg, f"{group}._target_", default="?").rsplit(".", 1)[-1])
    sigma = OmegaConf.select(cfg, "encoding.sigma")
    picked["sigma"] = OmegaConf.to_container(sigma) if OmegaConf.is_config(sigma) else sigma
    picked["stride"] = OmegaConf.select(cfg, "data.stride")
    picked["seed"] = cfg.seed
    return picked


def build_datamodule(cfg: DictConfig):
    """The data module with the configured encoder. Bad data settings (a missing root, file or required
    option, a 3D head on data without 3D joints) surface as one ConfigError naming the problem, not as a
    chain of instantiation errors."""
    encoder = instantiate(cfg.encoding)
    name = f"data={choices(cfg).get('data', '?')}"
    try:
        datamodule = instantiate(cfg.data, encoder=encoder)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, ValueError | FileNotFoundError | MissingMandatoryValue):
            raise ConfigError(f"{name}: {cause}") from err
        raise
    # Building a split's source runs the data's own checks (files, 3D joints) before any training.
    try:
        _ = datamodule.description
    except DataError:
        raise
    except ValueError as err:
        hint = (
            " (head=3d needs data with 3D joints: use head=2d here)" if cfg.data.get("heatmap_depth") else ""
        )
        raise ConfigError(f"{name}: {err}{hint}") from err
    return datamodule


def build_decoders(cfg: DictConfig) -> dict:
    return {name: instantiate(node) for name, node in cfg.decoders.items()}


def build_module(cfg: DictConfig, datamodule, decoders: dict) -> HeatmapModule:
    """Model, loss, metrics and optimiser from the config, sized by the data module."""
    from heatlit.metrics import (
        MPJPE,
        STAT_NAMES,
        CocoOksAP,
        KeypointExpansion,
        PeakDetection,
        SampleOksAP,
        build_metrics,
    )

    output, loss = build_output(cfg), instantiate(cfg.loss)
    check_representation(output, datamodule.encoder, loss, decoders)
    desc, grid = datamodule.description, datamodule.grid
    try:
        make_model = functools.partial(instantiate, cfg.model, in_channels=desc.in_channels)
        model = output.build(make_model, desc.num_keypoints, grid)
    except InstantiationException as err:
        # bad options, an unreadable or unsafe pretrained file
        if isinstance(err.__cause__, ValueError | FileNotFoundError):
            raise ConfigError(f"model={choices(cfg).get('model', '?')}: {err.__cause__}") from err
        raise
    check_model_data(model, grid)
    check_decoders(decoders, model.head_dim)
    make_metrics = functools.partial(build_metrics, desc.pck, num_joints=desc.num_keypoints)
    if desc.multi_person:  # candidate peaks against every person (thresholds in input px)
        check_bottom_up_loss(loss, desc.name)
        make_metrics = functools.partial(PeakDetection, **(cfg.get("peaks") or {}))
    make_3d = functools.partial(MPJPE, root_index=desc.root) if model.head_dim == 3 else None
    make_coco = None
    if desc.oks_sigmas is not None:
        # each stage scores against its own split's annotation file, or its samples' own persons without one
        bound = cfg.get("upper_bound")

        def make_coco(stage: str) -> CocoOksAP | SampleOksAP:
            # the keypoint-expansion upper bound is a test-time analysis, not a model-selection metric
            expansion = KeypointExpansion(**bound) if bound and stage == "test" else None
            ann_file = datamodule.source(stage).ann_file
            if ann_file is None:
                return SampleOksAP(desc.oks_sigmas, desc.keypoints, expansion=expansion)
            return CocoOksAP(ann_file=ann_file, sigmas=desc.oks_sigmas, expansion=expansion)

    return HeatmapModule(
        model=model,
        loss=loss,
        decoders=decoders,
        make_metrics=make_metrics,
        make_3d=make_3d,
        make_coco=make_coco,
        # validation scores OKS AP only when an OKS figure picks the checkpoint (COCO); test always does
        oks_val=(cfg.monitor.metric or desc.monitor).lower() in {name.lower() for name in STAT_NAMES},
        optimizer=instantiate(cfg.optim.optimizer),
        scheduler=instantiate(cfg.optim.scheduler) if cfg.optim.get("scheduler") else None,
        grid=grid,
        description=desc,
        flip_test=cfg.flip_test,
        # a config written before flip_val existed flipped validation whenever it flipped the test
        flip_val=cfg.get("flip_val", cfg.flip_test),
        qualitative=cfg.qualitative,
        output=output,
        test_scales=cfg.get("test_scales") or (1.0,),
    )


def monitor_key(cfg: DictConfig, datamodule) -> str:
    """``val/<decoder>/<metric>``: ``monitor.metric``, else the metric the data's description names."""
    return f"val/{cfg.monitor.decoder}/{cfg.monitor.metric or datamodule.description.monitor}"


def build_trainer(cfg: DictConfig, monitor: str) -> L.Trainer:
    # errors (MPJPE, RMSE) are minimised, ratios maximised: the best checkpoint is the best, whichever is watched
    mode = "min" if monitor.rsplit("/", 1)[-1] in LOWER_IS_BETTER else "max"
    callbacks = [
        instantiate(node, **({"monitor": monitor, "mode": mode} if "monitor" in node else {}))
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
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **devices)
    unfilled_memory()
    return trainer


def unfilled_memory() -> None:
    """Keep deterministic kernels, drop torch's NaN fill of every new uninitialised tensor.

    ``trainer.deterministic`` turns on ``torch.use_deterministic_algorithms``, which also fills each
    ``torch.empty`` with NaN so that code reading memory it never wrote shows it. heatlit writes every buffer
    before reading it (the same weights with and without the fill: tests/test_determinism.py), and the fill
    cost ~7 % of every CPU forward and backward of the default experiment (docs/TRAINING_SPEED.md).
    """
    torch.utils.deterministic.fill_uninitialized_memory = False


def wandb_loggers(trainer: L.Trainer) -> list:
    return [lg for lg in trainer.loggers if type(lg).__name__ == "WandbLogger"]


def finish_loggers(trainer: L.Trainer) -> None:
    """Close the TensorBoard writer once fit and test are over, and wandb so the next job of a multirun
    starts its own run."""
    for lg in trainer.loggers:
        if hasattr(lg, "close_writer"):
            lg.close_writer()
    if wandb_loggers(trainer):
        import wandb

        wandb.finish()


def report(
    module: HeatmapModule, trainer: L.Trainer, cfg: DictConfig, out: Path, extra: dict, picked: dict
) -> dict:
    """Print the per-decoder table, write results.json and the qualitative figure; return the results.

    Under DDP every process holds the same (reduced) results; only rank zero prints and writes.
    """
    from rich.console import Console

    results = module.results
    if not trainer.is_global_zero:
        return results
    # which stages' numbers are flip-averaged (validation and test may differ: flip_val, flip_test)
    flipped = {"val": module.flip_val, "test": module.flip_test}
    extra = {**extra, "flipped": {stage: flipped[stage] for stage in results if stage in flipped}}
    if "test" in results:
        Console().print(decoder_table(results["test"], "test"))
        metrics = ordered_metrics({m for v in results["test"].values() for m in v})
        rows = [[dec, *(values.get(m) for m in metrics)] for dec, values in results["test"].items()]
        for lg in wandb_loggers(trainer):
            lg.log_table(key="test/decoders", columns=["decoder", *metrics], data=rows)
    path = write_results(
        out / FILE_NAME,
        picked,
        results,
        extra,
        grid=module.grid.describe(),
        dataset=module.description.to_dict(),
        decode_time=module.decode_times,
    )
    log.info("results written to %s", path)
    write_test_samples(module, trainer, out)
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


def log_start(
    title: str, picked: dict, decoders, monitor: str | None, out: Path, trainer, datamodule, splits=SPLITS
) -> None:
    """The one block a run logs as it starts (:mod:`heatlit.training.start`); rank zero only. ``splits``: those
    the command uses (their sizes are shown)."""
    if not trainer.is_global_zero:
        return
    logs = log_destinations(trainer.loggers, out)
    sizes = split_sizes(datamodule, splits)
    block = start_block(title, picked, list(decoders), monitor, out, trainer_device(trainer), sizes, logs)
    log.info("%s", block)


def run_record(cfg: DictConfig, picked: dict, groups: dict, datamodule) -> dict:
    """What every checkpoint of the run carries beside the weights (plain containers only)."""
    desc = datamodule.description
    return {
        CONFIG_KEY: OmegaConf.to_container(cfg, resolve=True),
        CHOICES_KEY: picked,
        GROUPS_KEY: groups,
        SHAPE_KEY: {"num_joints": desc.num_keypoints, "in_channels": desc.in_channels},
    }


def train(cfg: DictConfig) -> dict:
    """Fit, test the best checkpoint with every decoder, write artefacts. Returns the results dict.

    Where the run goes and what it resumes is :func:`heatlit.training.resume.plan_run`'s decision.
    """
    started = time.time()
    quiet_worker_logs()
    try:
        plan = plan_run(cfg)
    except (ConfigError, CheckpointError):
        discard_invocation()  # a refused command leaves no folder or record behind
        raise
    settle_job_dir(plan.run_dir, new_run=plan.ckpt is None)
    if plan.finished:
        log.info("%s already finished (%s): kept as it is", plan.run_dir, FILE_NAME)
        return read_results(plan.run_dir / FILE_NAME).results
    cfg = plan.config
    check_config(cfg)
    if is_rank_zero():
        for note in plan.notes:
            log.info(note)
        if plan.ckpt is not None:
            log.info(
                "resuming %s after epoch %d (%s), up to max_epochs=%s",
                plan.run_dir,
                plan.epochs,
                plan.ckpt.name,
                OmegaConf.select(cfg, "trainer.max_epochs"),
            )
    if plan.ckpt is not None:
        _continue_loggers(cfg, plan)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    decoders = build_decoders(cfg)
    module = build_module(cfg, datamodule, decoders)
    out = output_dir(cfg)  # made once the config has proved buildable
    picked = plan.choices or choices(cfg)
    module.run_record = run_record(cfg, picked, plan.groups or dict(hydra_groups()), datamodule)
    if plan.ckpt is not None:
        check_fits(module, plan.ckpt, plan.state_shapes, plan.shape, datamodule)
    monitor = monitor_key(cfg, datamodule)
    trainer = build_trainer(cfg, monitor)
    log_start("heatlit.train", picked, decoders, monitor, out, trainer, datamodule)
    try:
        ckpt = None if plan.ckpt is None else str(plan.ckpt)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if cfg.test:
            trainer.test(
                module, datamodule=datamodule, ckpt_path=best or None, weights_only=True, verbose=False
            )
        extra = {
            "best_checkpoint": best or None,
            "monitor": monitor,
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "wall_time_s": round(time.time() - started, 1),
            "device": str(module.device),
        }
        if plan.ckpt is not None:
            extra["resumed_from"] = {"checkpoint": ckpt, "epoch": plan.epochs}
        return report(module, trainer, cfg, out, extra, picked)
    finally:
        finish_loggers(trainer)


def _continue_loggers(cfg: DictConfig, plan: RunPlan) -> None:
    """The resumed run's CSV continues in the same file, its wandb run under the same id."""
    with open_dict(cfg):
        if OmegaConf.select(cfg, "logger.csv") is not None:
            cfg.logger.csv._target_ = "heatlit.training.loggers.csv_logger"
            cfg.logger.csv.resume_step = plan.global_step
        run_id = wandb_run_id(plan.run_dir)
        if OmegaConf.select(cfg, "logger.wandb") is not None and run_id:
            cfg.logger.wandb.id = run_id
            cfg.logger.wandb.resume = "allow"


# What `heatlit.eval` reads from its command line; the model, encoding, loss and optimiser are the checkpoint's.
EVAL_KEYS = (
    "ckpt_path",
    "data",
    "decoders",
    "flip_test",
    "monitor",
    "qualitative",
    "upper_bound",
    "test_scales",
    "output_dir",
    "trainer",
    "logger",
    "task_name",
)


def with_data(run_cfg: DictConfig, data: DictConfig | None) -> DictConfig:
    """A checkpoint's run config with this command's data: ``data=<name>`` replaces the data config whole (a
    merge would mix two sources' options); settings alone (``+data.source.data_dir=...``, no ``_target_``) are
    merged into the run's own. The model's grid (stride, depth bins, mapping) stays the checkpoint's either way."""
    if data is None:
        return run_cfg
    trained = run_cfg.data
    if "_target_" in data:
        run_cfg.data = data
    else:
        run_cfg.data = OmegaConf.merge(trained, data)
    run_cfg.data.stride = trained.stride
    run_cfg.data.heatmap_depth = trained.get("heatmap_depth")
    run_cfg.data.grid_mapping = trained.get("grid_mapping", "aligned")
    return run_cfg


def eval_checkpoint(target: Any) -> Path:
    """The checkpoint ``heatlit.eval`` tests: a file, or a run folder's ``checkpoints/best.ckpt``."""
    if target in (None, "", "null", "???"):
        raise ConfigError("evaluation needs ckpt_path=<run folder or checkpoint file>")
    if target == "last":
        raise ConfigError(
            "heatlit.eval needs the run named: ckpt_path=<run folder> (tests its checkpoints/best.ckpt) or "
            "ckpt_path=<checkpoint file>"
        )
    path = Path(str(target))
    if path.is_dir():
        found = [
            path / "checkpoints" / n
            for n in ("best.ckpt", "last.ckpt")
            if (path / "checkpoints" / n).is_file()
        ]
        if not found:
            raise ConfigError(f"ckpt_path={path}: no checkpoints/best.ckpt or last.ckpt in it")
        return found[0]
    return path


def write_test_samples(module: HeatmapModule, trainer: L.Trainer, out: Path) -> Path | None:
    """``per_sample.npz`` beside results.json: every decoder's per-joint test errors (:mod:`heatlit.per_sample`).

    Not written by a run on several processes: each holds only its shard (padded by the sampler).
    """
    scorer = module.scorers["test"]
    samples = scorer.per_sample() if isinstance(scorer, DecoderScorer) else None
    if samples is None:
        return None
    if trainer.world_size > 1:
        log.info(
            "%s not written: %d processes each hold part of the test set", PER_SAMPLE_FILE, trainer.world_size
        )
        return None
    path = write_per_sample(out / PER_SAMPLE_FILE, samples)
    log.info("per-sample test errors written to %s", path)
    return path


def evaluate(cfg: DictConfig) -> dict:
    """Test a checkpoint with every decoder; data and decoders may differ from the training run."""
    started = time.time()
    quiet_worker_logs()
    foreign = [key for key in cfg if key not in EVAL_KEYS]
    if foreign:
        raise ConfigError(
            f"heatlit.eval takes the model, encoding, loss and optimiser from the checkpoint; it cannot use "
            f"{', '.join(foreign)} (remove those overrides, or train a new run with them)"
        )
    path = eval_checkpoint(None if OmegaConf.is_missing(cfg, "ckpt_path") else cfg.ckpt_path)
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, dict) or CONFIG_KEY not in checkpoint:
        raise ConfigError(f"{path} holds no heatlit run config; was it written by heatlit.train?")
    run_cfg = with_data(OmegaConf.create(checkpoint[CONFIG_KEY]), cfg.get("data"))
    # The model (and so its stride and depth bins), encoding and loss are the checkpoint's; decoders and test
    # options are this call's, each replaced whole.
    for key in ("decoders", "flip_test", "monitor", "qualitative", "upper_bound", "test_scales"):
        if cfg.get(key) is not None:
            run_cfg[key] = cfg[key]
    run_cfg.run_choices = checkpoint.get(CHOICES_KEY)
    run_cfg.output_dir = cfg.output_dir
    run_cfg.trainer = cfg.trainer
    run_cfg.logger = cfg.get("logger")
    run_cfg.callbacks = None
    check_config(run_cfg)
    L.seed_everything(run_cfg.seed, workers=True)
    datamodule = build_datamodule(run_cfg)
    module = build_module(run_cfg, datamodule, build_decoders(run_cfg))
    state = checkpoint.get("state_dict") or {}
    check_fits(
        module, path, {k: tuple(v.shape) for k, v in state.items()}, checkpoint.get(SHAPE_KEY), datamodule
    )
    module.load_state_dict(state, strict=False)
    trainer = build_trainer(run_cfg, monitor_key(run_cfg, datamodule))
    log_start(
        f"heatlit.eval {path}:",
        choices(run_cfg),
        module.scorers["test"].decoders,
        None,
        output_dir(run_cfg),
        trainer,
        datamodule,
        splits=("test",),
    )
    try:
        trainer.test(module, datamodule=datamodule, verbose=False)
        extra = {"checkpoint": str(path), "wall_time_s": round(time.time() - started, 1)}
        return report(module, trainer, run_cfg, output_dir(run_cfg), extra, choices(run_cfg))
    finally:
        finish_loggers(trainer)


def main_guard(fn, cfg: DictConfig) -> Any:
    """Run ``fn(cfg)``; a config, checkpoint or data error (missing file, corrupt data) becomes one message and
    exit status 2, not a traceback. Any failure is also recorded in the job's log file (``train.log``: the last
    error line the report and the dashboard show), and the known noise of every run is silenced first."""
    quiet_known_noise()
    try:
        return fn(cfg)
    except (ConfigError, CheckpointError, FileNotFoundError, DataError) as err:
        from rich.console import Console
        from rich.markup import escape

        kind = {ConfigError: "configuration error", CheckpointError: "checkpoint error"}.get(
            type(err), "data error"
        )
        record_failure(err, f"{kind}: {err}")
        # escaped: a path like `runs/[/x]` is text, not rich markup
        Console(stderr=True, soft_wrap=True).print(f"[bold red]{kind}:[/] {escape(str(err))}")
        # In a multirun, Hydra records a raised job failure and runs the remaining jobs; an exit would not.
        if os.environ.get("HEATLIT_RAISE") or is_multirun():
            raise
        raise SystemExit(2) from None
    except Exception as err:
        record_failure(err)
        raise
    except KeyboardInterrupt as err:
        record_failure(err, "KeyboardInterrupt: stopped by the user")
        raise
