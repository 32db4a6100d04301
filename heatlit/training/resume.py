"""Which folder a training command works in, and resuming only the run the user named.

The rules (README, "Runs and checkpoints"):

* ``ckpt_path=null``: a new run in ``output_dir``; a folder that already holds a run is refused.
* ``ckpt_path=<run folder>`` or ``<run>/checkpoints/<name>.ckpt``: resume that run, in its own folder.
* ``ckpt_path=last``: ``<output_dir>/checkpoints/last.ckpt``, the run in the folder this command was given
  (``hydra.run.dir=<run>``, or each job of a multirun in a pinned ``hydra.sweep.dir``); never a search.
  A multirun job with no checkpoint yet starts fresh, one that already finished is kept as it is.
* A resumed run uses the config saved in its checkpoint. Typed overrides that contradict it are refused
  with the list of differences; safe ones (more epochs, test options) need ``resume_extend=true``.
* A finished run (``results.json`` written) is resumed only when ``trainer.max_epochs`` is raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from heatlit.models.checkpoint import load_checkpoint
from heatlit.results import FILE_NAME
from heatlit.training.checks import ConfigError
from heatlit.training.job import hydra_groups, is_multirun, is_rank_zero
from heatlit.training.module import CHOICES_KEY, CONFIG_KEY, GROUPS_KEY, SHAPE_KEY

# Keys that describe how this command runs, not the experiment: they follow the command line.
INVOCATION_KEYS = (
    "ckpt_path",
    "output_dir",
    "resume_extend",
    "gpu_lease",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.strategy",
    "trainer.num_nodes",
    "trainer.enable_progress_bar",
    "callbacks.progress",
    "data.num_workers",
    "data.pin_memory",
    "data.source.data_dir",  # the cache of rendered data; its content is fixed by the render settings
)
# Changes that extend a run without redefining it: accepted with resume_extend=true.
SAFE_KEYS = ("trainer.max_epochs", "trainer.max_steps", "trainer.max_time", "test", "qualitative")
_ABSENT = "<absent>"


@dataclass
class RunPlan:
    """Where and how :func:`heatlit.training.run.train` runs.

    Attributes:
        run_dir: the run folder; everything the run writes lands here.
        config: the config to run with (the saved one when resuming).
        ckpt: the checkpoint to resume from; None for a new run.
        epochs / global_step: what that checkpoint completed.
        choices / groups: the resumed run's choices as reported and its config-group options (None: this
            command's).
        finished: a multirun job that already wrote its results; left as it is.
        notes: lines to log once the run starts.
        state_shapes / shape: the checkpoint's tensor shapes and data shape record (checked against the model).
    """

    run_dir: Path
    config: DictConfig
    ckpt: Path | None = None
    epochs: int = 0
    global_step: int = 0
    choices: dict | None = None
    groups: dict | None = None
    finished: bool = False
    notes: list[str] = field(default_factory=list)
    state_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    shape: dict | None = None


def plan_run(cfg: DictConfig) -> RunPlan:
    """Decide the run folder and, for a resume, the checkpoint and config; refuse what is unsafe.

    Raises:
        ConfigError: an unnamed or missing run, overrides that contradict the resumed run, a finished run
            without more epochs, a new run in a folder that already holds one.
        CheckpointError: an unreadable or unsafe checkpoint.
    """
    out = Path(cfg.output_dir)
    target = cfg.get("ckpt_path")
    if target in (None, "", "null"):
        _refuse_taken(out)
        return RunPlan(out, cfg)
    if target == "last":
        ckpt = out / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            if is_multirun():  # a job of a pinned sweep that never finished an epoch
                if (out / FILE_NAME).is_file():
                    return RunPlan(out, cfg, finished=True)
                _refuse_taken(out)
                return RunPlan(out, cfg, notes=[f"no checkpoint in {out} yet: this job starts fresh"])
            raise ConfigError(
                f"ckpt_path=last resumes the run in this command's own folder, and {out} holds no "
                "checkpoints/last.ckpt; name the run to resume: ckpt_path=<run folder> "
                "(e.g. outputs/train/<time>), or hydra.run.dir=<run folder> ckpt_path=last"
            )
    else:
        ckpt = _named_checkpoint(Path(str(target)))
    return _plan_resume(cfg, ckpt)


def run_folder(cfg: DictConfig) -> Path:
    """The folder a training command works in: ``output_dir``, or the named run's when it resumes one."""
    target = cfg.get("ckpt_path")
    if target in (None, "", "null", "last"):
        return Path(cfg.output_dir)
    return _named_checkpoint(Path(str(target))).parent.parent


def _named_checkpoint(path: Path) -> Path:
    if path.is_dir():
        ckpt = path / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            raise ConfigError(
                f"ckpt_path={path}: no checkpoints/last.ckpt in it (not a heatlit run folder, or no epoch "
                "finished yet)"
            )
        return ckpt
    if not path.is_file():
        raise ConfigError(f"ckpt_path={path}: no such run folder or checkpoint file")
    if path.parent.name != "checkpoints":
        raise ConfigError(
            f"ckpt_path={path} is not inside a run folder (<run>/checkpoints/): a resume continues a run in "
            f"its own folder; to start a new run from these weights use model.pretrained={path}"
        )
    return path


def _plan_resume(cfg: DictConfig, ckpt: Path) -> RunPlan:
    run_dir = ckpt.parent.parent
    checkpoint = load_checkpoint(ckpt)
    if not isinstance(checkpoint, dict) or CONFIG_KEY not in checkpoint or "loops" not in checkpoint:
        raise ConfigError(f"{ckpt} is not a heatlit training checkpoint (no run config or loop state)")
    saved = OmegaConf.create(checkpoint[CONFIG_KEY])
    epochs = _epochs_done(checkpoint)
    diffs = _typed_differences(cfg, saved, checkpoint.get(GROUPS_KEY) or checkpoint.get(CHOICES_KEY) or {})
    free = [d for d in diffs if _under(d[0], INVOCATION_KEYS)]
    safe = [d for d in diffs if _under(d[0], SAFE_KEYS) and d not in free]
    wrong = [d for d in diffs if d not in free and d not in safe]
    if wrong:
        raise ConfigError(
            f"resuming {run_dir}: these overrides contradict its saved config: {_listing(wrong)}; "
            "a resumed run keeps its own config (drop them, or start a new run)"
        )
    if safe and not cfg.get("resume_extend"):
        raise ConfigError(
            f"resuming {run_dir}: {_listing(safe)} changes the saved config; add resume_extend=true to "
            "accept these safe changes"
        )
    config = _adapted(saved, cfg, run_dir, ckpt, [d[0] for d in free + safe])
    max_epochs = OmegaConf.select(config, "trainer.max_epochs")
    if max_epochs is not None and 0 <= max_epochs < epochs:
        raise ConfigError(
            f"resuming {run_dir}: trainer.max_epochs={max_epochs} but {ckpt.name} has {epochs} epochs"
        )
    finished = (run_dir / FILE_NAME).is_file() and (max_epochs is None or max_epochs <= epochs)
    plan = RunPlan(
        run_dir,
        config,
        ckpt=ckpt,
        epochs=epochs,
        global_step=int(checkpoint.get("global_step", 0)),
        choices=checkpoint.get(CHOICES_KEY),
        groups=checkpoint.get(GROUPS_KEY),
        state_shapes={k: tuple(v.shape) for k, v in (checkpoint.get("state_dict") or {}).items()},
        shape=checkpoint.get(SHAPE_KEY),
    )
    if finished:
        if is_multirun() and cfg.get("ckpt_path") == "last":
            return RunPlan(run_dir, config, finished=True)
        raise ConfigError(
            f"{run_dir} already finished ({FILE_NAME} written, {epochs} epochs); to train it further raise "
            f"trainer.max_epochs above {epochs} with resume_extend=true"
        )
    return plan


def _epochs_done(checkpoint: dict) -> int:
    try:
        return int(checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError):
        return int(checkpoint.get("epoch", -1)) + 1


def _under(key: str, prefixes) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _listing(diffs) -> str:
    return ", ".join(f"{key}: {then} -> {now}" for key, then, now in diffs)


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _typed_differences(cfg: DictConfig, saved: DictConfig, saved_groups: dict) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, this command's value)`` for every override typed now that the saved run differs on.

    Only typed overrides count: the defaults may have changed since the run started, and the run keeps its own
    values for everything the command does not mention. Without Hydra (a programmatic call) every key counts.
    """
    try:
        typed = list(HydraConfig.get().overrides.task)
    except ValueError:
        typed = None
    if typed is None:
        now, then = _flat(OmegaConf.to_container(cfg, resolve=True)), _flat(OmegaConf.to_container(saved))
        keys = sorted(set(now) | set(then))
        return [
            (k, then.get(k, _ABSENT), now.get(k, _ABSENT))
            for k in keys
            if now.get(k, _ABSENT) != then.get(k, _ABSENT)
        ]
    from hydra.core.override_parser.overrides_parser import OverridesParser

    groups = hydra_groups()
    diffs = []
    for override in OverridesParser.create().parse_overrides(typed):
        name = override.key_or_group + (f"@{override.package}" if override.package else "")
        if name == "hydra" or name.startswith(("hydra.", "hydra/")):
            continue
        if name in groups or name in saved_groups:  # a config-group option: compare the option chosen
            now, then = groups.get(name, _ABSENT), saved_groups.get(name, _ABSENT)
        else:
            key = override.package or override.key_or_group
            now = _plain(OmegaConf.select(cfg, key, default=_ABSENT))
            then = _plain(OmegaConf.select(saved, key, default=_ABSENT))
        if now != then and all(name != d[0] for d in diffs):  # an option typed twice counts once
            diffs.append((name, then, now))
    return diffs


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: tree}


def _adapted(saved: DictConfig, cfg: DictConfig, run_dir: Path, ckpt: Path, follow: list[str]) -> DictConfig:
    """The saved config, moved to where the run folder is now, with the accepted overrides applied."""
    old = saved.get("output_dir")
    tree = OmegaConf.to_container(saved)
    if old and str(old) != str(run_dir):  # the folder moved: paths inside it (checkpoints, logs) move too
        tree = _repoint(tree, str(old), str(run_dir))
    config = OmegaConf.create(tree)
    with open_dict(config):
        for key in cfg:  # keys added to the config schema since the run started
            if key not in config and key != "hydra":
                config[key] = _plain(cfg[key])
        for key in follow:
            if "@" not in key:
                OmegaConf.update(config, key, _plain(OmegaConf.select(cfg, key)), force_add=True)
        config.output_dir = str(run_dir)
        config.ckpt_path = str(ckpt)
    return config


def _repoint(tree: Any, old: str, new: str) -> Any:
    if isinstance(tree, dict):
        return {k: _repoint(v, old, new) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_repoint(v, old, new) for v in tree]
    if isinstance(tree, str) and (tree == old or tree.startswith(old.rstrip("/") + "/")):
        return new + tree[len(old) :]
    return tree


def _refuse_taken(out: Path) -> None:
    """A new run never starts in a folder that holds another run's checkpoints or results."""
    if not is_rank_zero():  # DDP workers start after rank zero has checked (and begun writing)
        return
    held = [
        p.relative_to(out).as_posix()
        for p in (out / FILE_NAME, *sorted(out.glob("checkpoints/*.ckpt")))
        if p.is_file()
    ]
    if held:
        raise ConfigError(
            f"{out} already holds a run ({', '.join(held[:3])}); resume it with ckpt_path={out}, or give the "
            "new run its own folder"
        )


def wandb_run_id(run_dir: Path) -> str | None:
    """The id of the run folder's latest wandb run (``wandb/[offline-]run-<time>-<id>``), if any."""
    runs = sorted((run_dir / "wandb").glob("*run-*-*"), key=lambda p: p.name.rsplit("run-", 1)[-1])
    return runs[-1].name.rsplit("-", 1)[-1] if runs else None
