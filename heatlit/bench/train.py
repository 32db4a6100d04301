"""Training-step benchmark: where a step of the default experiment goes, and what Lightning adds to it.

``python -m heatlit.bench train [--steps N] [--rounds R] [overrides ...]`` (= ``make bench train``). One
process, one model, one data module built from ``conf/train.yaml`` (plus the overrides, as for
``heatlit.train``). Each round runs the same number of training steps twice, back to back:

- bare: ``next(loader)``, ``model`` + loss, ``backward``, ``optimizer.step`` + ``zero_grad``, each phase timed
  (device synchronised around it), with the run's own optimiser (:func:`heatlit.training.optim.build_optimizer`);
- Lightning: ``trainer.fit`` of one epoch of those steps with the run's trainer, callbacks and loggers
  (validation off), the epoch timed from its first batch to its end by a callback.

Interleaving the two arms round after round spreads load from other processes over both. The framework
overhead is Lightning's epoch over the bare loop's, paired per round (median). Wall time counts what other
processes took from us; process CPU time (every thread of this process) does not, so both are shown. The
fixed cost of a ``fit`` (trainer set-up, loggers, the end-of-epoch checkpoint) is reported apart: a default run
pays it once per run or once per epoch, not per step.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, open_dict
from rich.console import Console
from rich.table import Table

from heatlit.bench.machine import environment, load_average

PHASES = ("data", "forward", "backward", "optimizer")


def compose_train(overrides: Sequence[str], output_dir: Path) -> DictConfig:
    """``conf/train.yaml`` with ``overrides``, as ``heatlit.train`` composes it, writing into ``output_dir``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(str(conf), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"output_dir={output_dir}"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # the loggers' names read the run's choices
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def helpers_cpu() -> float:
    """CPU seconds used so far by this process's living descendants (wandb's service, loader workers), read
    from ``/proc``; 0 where there is none."""
    me, parents, cpu = os.getpid(), {}, {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # gone meanwhile, or no /proc
            continue
        pid = int(entry.parent.name)
        parents[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
    total = 0.0
    for pid in cpu:
        up, seen = parents.get(pid), 0
        while up not in (None, 0, me) and seen < 64:
            up, seen = parents.get(up), seen + 1
        total += cpu[pid] if up == me else 0.0
    return total


class _Clock:
    """Wall and process-CPU stopwatch; synchronises the device first (CUDA work is asynchronous)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __call__(self) -> tuple[float, float]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter(), time.process_time()

    def with_helpers(self) -> tuple[float, float, float]:
        """Also :func:`helpers_cpu` (a ``/proc`` scan: around the epoch, not inside steps)."""
        return (*self(), helpers_cpu())


class _EpochTimer(L.Callback):
    """Times the training epoch from just before its first batch is fetched to the end of its last step."""

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.start = self.end = (0.0, 0.0, 0.0)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.start = self.clock.with_helpers()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.end = self.clock.with_helpers()


def bare_steps(module, loader, steps: int, clock: _Clock) -> dict[str, list[float]]:
    """``steps`` training steps without Lightning; per phase the (wall, cpu) seconds of each step."""
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    module.train()
    times: dict[str, list[tuple[float, float]]] = {p: [] for p in PHASES}
    batches = iter(loader)
    for _ in range(steps):
        t0 = clock()
        batch = {k: v.to(module.device) if torch.is_tensor(v) else v for k, v in next(batches).items()}
        t1 = clock()
        total, _ = module.loss(module.model(batch["image"]), batch)
        t2 = clock()
        total.backward()
        t3 = clock()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t4 = clock()
        for phase, (a, b) in zip(PHASES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4)), strict=True):
            times[phase].append((b[0] - a[0], b[1] - a[1]))
    return times


def lightning_epoch(cfg: DictConfig, module, datamodule, steps: int, clock: _Clock) -> dict[str, float]:
    """One ``trainer.fit`` epoch of ``steps`` steps with the run's trainer, callbacks and loggers (no
    validation): the epoch's wall / cpu seconds and the whole fit's."""
    from heatlit.training.run import build_trainer, finish_loggers, monitor_key

    timer = _EpochTimer(clock)
    with open_dict(cfg):
        cfg.trainer.max_epochs = 1
        cfg.trainer.limit_train_batches = steps
        cfg.trainer.limit_val_batches = 0
        cfg.trainer.enable_model_summary = False
    trainer = build_trainer(cfg, monitor_key(cfg, datamodule))
    trainer.callbacks.insert(0, timer)
    start = clock()
    try:
        trainer.fit(module, datamodule=datamodule)
    finally:
        finish_loggers(trainer)
    end = clock()
    return {
        "epoch_wall": timer.end[0] - timer.start[0],
        "epoch_cpu": timer.end[1] - timer.start[1],
        "epoch_helpers_cpu": timer.end[2] - timer.start[2],
        "fit_wall": end[0] - start[0],
        "fit_cpu": end[1] - start[1],
    }


def run(overrides: Sequence[str], steps: int, rounds: int, console: Console | None = None) -> dict:
    """Interleave ``rounds`` bare and Lightning runs of ``steps`` steps; print and return the breakdown."""
    from heatlit.training.run import build_datamodule, build_decoders, build_module

    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="heatlit-bench-train-") as tmp:
        cfg = compose_train(overrides, Path(tmp))
        L.seed_everything(cfg.seed, workers=True)
        datamodule = build_datamodule(cfg)
        module = build_module(cfg, datamodule, build_decoders(cfg))
        datamodule.setup("fit")
        trainer_probe = build_trainer_device(cfg)
        module.to(trainer_probe)
        clock = _Clock(trainer_probe)
        bare_steps(module, datamodule.train_dataloader(), 2, clock)  # warm-up: allocator, first-call set-up
        bare: list[dict[str, list[tuple[float, float]]]] = []
        light: list[dict[str, float]] = []
        load = [load_average()]
        for r in range(rounds):
            arms = ("bare", "lightning") if r % 2 == 0 else ("lightning", "bare")
            for arm in arms:
                if arm == "bare":
                    module.to(trainer_probe)
                    bare.append(bare_steps(module, datamodule.train_dataloader(), steps, clock))
                else:
                    light.append(lightning_epoch(cfg.copy(), module, datamodule, steps, clock))
            load.append(load_average())
    results = summarise(bare, light, steps)
    results.update(
        {
            "steps": steps,
            "rounds": rounds,
            "overrides": list(overrides),
            "device": str(trainer_probe),
            "environment": environment([trainer_probe.type]),
            "load_average": load,
        }
    )
    render(results, console)
    return results


def build_trainer_device(cfg: DictConfig) -> torch.device:
    """The device ``trainer.accelerator`` picks: CUDA for ``auto``/``gpu``/``cuda`` when present, else CPU."""
    wants_gpu = str(cfg.trainer.get("accelerator", "auto")) in ("auto", "gpu", "cuda")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def summarise(bare: list[dict], light: list[dict], steps: int) -> dict:
    """Per-step phase times (median over rounds of each round's total), the framework overhead paired per
    round, and the fit's fixed cost."""
    out: dict = {"phases_ms": {}, "phases_cpu_ms": {}}
    for phase in PHASES:
        out["phases_ms"][phase] = statistics.median(sum(w for w, _ in b[phase]) for b in bare) / steps * 1e3
        out["phases_cpu_ms"][phase] = (
            statistics.median(sum(c for _, c in b[phase]) for b in bare) / steps * 1e3
        )
    bare_wall = [sum(w for p in PHASES for w, _ in b[p]) for b in bare]
    bare_cpu = [sum(c for p in PHASES for _, c in b[p]) for b in bare]
    out["bare_step_ms"] = statistics.median(bare_wall) / steps * 1e3
    out["lightning_step_ms"] = statistics.median(x["epoch_wall"] for x in light) / steps * 1e3
    out["overhead_wall"] = statistics.median(
        x["epoch_wall"] / b - 1 for x, b in zip(light, bare_wall, strict=True)
    )
    out["overhead_cpu"] = statistics.median(
        x["epoch_cpu"] / b - 1 for x, b in zip(light, bare_cpu, strict=True)
    )
    out["overhead_wall_rounds"] = [x["epoch_wall"] / b - 1 for x, b in zip(light, bare_wall, strict=True)]
    out["fit_fixed_s"] = statistics.median(x["fit_wall"] - x["epoch_wall"] for x in light)
    # wandb's service and any loader workers: CPU taken from the same cores while the epoch ran
    out["helpers_cpu_ms"] = statistics.median(x["epoch_helpers_cpu"] for x in light) / steps * 1e3
    return out


def render(results: dict, console: Console) -> None:
    """The breakdown as one table: each phase's time per step and its share of Lightning's step."""
    step = results["lightning_step_ms"]
    table = Table(
        title=f"training step, {results['steps']} steps x {results['rounds']} rounds, {results['device']} "
        f"(medians over rounds; load {results['load_average'][0]} -> {results['load_average'][-1]})"
    )
    for col in ("part", "ms / step", "CPU ms / step", "share of the Lightning step"):
        table.add_column(col, justify="right" if col != "part" else "left")
    for phase in PHASES:
        ms, cpu = results["phases_ms"][phase], results["phases_cpu_ms"][phase]
        table.add_row(phase, f"{ms:.1f}", f"{cpu:.1f}", f"{ms / step:.1%}")
    framework = step - results["bare_step_ms"]
    table.add_row("framework (Lightning)", f"{framework:.1f}", "", f"{framework / step:.1%}")
    table.add_row("Lightning step", f"{step:.1f}", "", "100%")
    table.add_row("helper processes (wandb, workers)", "", f"{results['helpers_cpu_ms']:.1f}", "")
    console.print(table)
    console.print(
        f"Lightning over the bare loop: {results['overhead_wall']:+.1%} wall, {results['overhead_cpu']:+.1%} "
        f"process CPU (median of {results['rounds']} paired rounds: "
        + ", ".join(f"{v:+.1%}" for v in results["overhead_wall_rounds"])
        + f"); a fit's fixed cost (set-up, loggers, end-of-epoch checkpoint): {results['fit_fixed_s']:.2f} s"
    )
