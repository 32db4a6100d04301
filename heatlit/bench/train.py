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

import itertools
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, open_dict
from rich.console import Console
from rich.table import Table

from heatlit.bench.machine import environment, load_average

PHASES = ("data", "forward", "backward", "optimizer")
_FITS = itertools.count()


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


class _PhaseTimer(L.Callback):
    """Inside a Lightning epoch: the wall / CPU seconds of the epoch and of each phase of its steps.

    data: the loader building a batch (``num_workers=0``: in this process); forward: the model's forward
    to the end of the loss; backward: ``on_before_backward`` to ``on_after_backward``; optimizer:
    ``on_before_optimizer_step`` (after the closure) to the end of the optimiser's step (its post hook). What is left of the epoch is Lightning's: hooks, logging, the
    progress bar, moving the batch, the closure.
    """

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.start = self.end = (0.0, 0.0, 0.0)
        self.phases = {p: [0.0, 0.0] for p in PHASES}
        self._open: dict[str, tuple[float, float]] = {}
        self._handles: list = []
        self._detach_data = lambda: None

    def begin(self, phase: str) -> None:
        self._open[phase] = self.clock()

    def finish(self, phase: str) -> None:
        if phase in self._open:
            (w0, c0), (w1, c1) = self._open.pop(phase), self.clock()
            self.phases[phase][0] += w1 - w0
            self.phases[phase][1] += c1 - c0

    def attach(self, module, loader) -> None:
        """Time the loader's batches and the module's forward + loss (hooks removed by :meth:`detach`)."""
        dataset, collate = loader.dataset, loader.collate_fn

        def getitems(indices):
            self.begin("data")
            return [dataset[i] for i in indices]

        def timed_collate(items):
            try:
                return collate(items)
            finally:
                self.finish("data")

        dataset.__getitems__ = getitems  # the loader's fetcher prefers it to dataset[i], one call per batch
        loader.collate_fn = timed_collate
        self._detach_data = lambda: delattr(dataset, "__getitems__")
        self._handles += [
            module.model.register_forward_pre_hook(lambda *_: self.begin("forward")),
            module.loss.register_forward_hook(lambda *_: self.finish("forward")),
        ]

    def detach(self) -> None:
        self._detach_data()
        for handle in self._handles:
            handle.remove()

    def on_train_start(self, trainer, pl_module) -> None:
        for optimizer in trainer.optimizers:
            self._handles.append(optimizer.register_step_post_hook(lambda *_: self.finish("optimizer")))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # Lightning runs the closure (forward, backward) inside optimizer.step, then this hook, then the update
        self.begin("optimizer")

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.begin("backward")

    def on_after_backward(self, trainer, pl_module) -> None:
        self.finish("backward")

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
    validation): the epoch's wall / cpu seconds, its phases (:class:`_PhaseTimer`) and the whole fit's."""
    from heatlit.training.run import build_trainer, finish_loggers, monitor_key

    timer = _PhaseTimer(clock)
    with open_dict(cfg):
        cfg.output_dir = f"{cfg.output_dir}/fit-{next(_FITS)}"  # each fit its own checkpoints and logs
        cfg.trainer.max_epochs = 1
        cfg.trainer.limit_train_batches = steps
        cfg.trainer.limit_val_batches = 0
        cfg.trainer.enable_model_summary = False
    trainer = build_trainer(cfg, monitor_key(cfg, datamodule))
    trainer.callbacks.insert(0, timer)
    make_loader = datamodule.train_dataloader

    def timed_loader():
        loader = make_loader()
        timer.attach(module, loader)
        return loader

    datamodule.train_dataloader = timed_loader
    start = clock()
    try:
        with warnings.catch_warnings():
            # by design here: no validation (so no monitored metric), an epoch shorter than log_every_n_steps
            warnings.filterwarnings("ignore", message=".*could not find the monitored key")
            warnings.filterwarnings("ignore", message=".*smaller than the logging interval")
            trainer.fit(module, datamodule=datamodule)
    finally:
        del datamodule.train_dataloader  # the class's method again
        timer.detach()
        finish_loggers(trainer)
    end = clock()
    return {
        "epoch_wall": timer.end[0] - timer.start[0],
        "epoch_cpu": timer.end[1] - timer.start[1],
        "epoch_helpers_cpu": timer.end[2] - timer.start[2],
        "phases": {p: tuple(v) for p, v in timer.phases.items()},
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
        # one epoch holds the steps of each arm: no more than the training split has batches
        steps = min(steps, len(datamodule.train_dataloader()))
        device = run_device(cfg)
        module.to(device)
        clock = _Clock(device)
        # Warm-up of both arms (allocator, first calls); the trainer also sets the run's torch flags
        # (deterministic kernels), which then hold for the bare loop as well.
        lightning_epoch(cfg.copy(), module, datamodule, 2, clock)
        module.to(device)
        bare_steps(module, datamodule.train_dataloader(), 2, clock)
        bare: list[dict[str, list[tuple[float, float]]]] = []
        light: list[dict[str, float]] = []
        load = [load_average()]
        for r in range(rounds):
            arms = ("bare", "lightning") if r % 2 == 0 else ("lightning", "bare")
            for arm in arms:
                if arm == "bare":
                    module.to(device)
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
            "device": str(device),
            "environment": environment([device.type]),
            "load_average": load,
        }
    )
    render(results, console)
    return results


def run_device(cfg: DictConfig) -> torch.device:
    """The device ``trainer.accelerator`` picks: CUDA for ``auto``/``gpu``/``cuda`` when present, else CPU."""
    wants_gpu = str(cfg.trainer.get("accelerator", "auto")) in ("auto", "gpu", "cuda")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def summarise(bare: list[dict], light: list[dict], steps: int) -> dict:
    """Per-step times, medians over rounds. ``phases_ms`` / ``phases_cpu_ms``: data, forward, backward, optimizer
    and framework (the rest of the epoch) inside the Lightning epochs, measured in the same epoch; ``bare_*``:
    the bare loop's step; ``overhead_*``: Lightning's epoch over the bare loop's, paired per round."""

    def per_step(values) -> float:
        return statistics.median(values) / steps * 1e3

    out: dict = {"phases_ms": {}, "phases_cpu_ms": {}, "bare_phases_ms": {}, "bare_phases_cpu_ms": {}}
    for phase in PHASES:
        out["phases_ms"][phase] = per_step(x["phases"][phase][0] for x in light)
        out["phases_cpu_ms"][phase] = per_step(x["phases"][phase][1] for x in light)
        out["bare_phases_ms"][phase] = per_step(sum(w for w, _ in b[phase]) for b in bare)
        out["bare_phases_cpu_ms"][phase] = per_step(sum(c for _, c in b[phase]) for b in bare)
    out["phases_ms"]["framework"] = per_step(
        x["epoch_wall"] - sum(v[0] for v in x["phases"].values()) for x in light
    )
    out["phases_cpu_ms"]["framework"] = per_step(
        x["epoch_cpu"] - sum(v[1] for v in x["phases"].values()) for x in light
    )
    out["lightning_step_ms"] = per_step(x["epoch_wall"] for x in light)
    out["lightning_step_cpu_ms"] = per_step(x["epoch_cpu"] for x in light)
    out["framework_share"] = statistics.median(
        1 - sum(v[0] for v in x["phases"].values()) / x["epoch_wall"] for x in light
    )
    out["framework_share_cpu"] = statistics.median(
        1 - sum(v[1] for v in x["phases"].values()) / x["epoch_cpu"] for x in light
    )
    bare_wall = [sum(w for p in PHASES for w, _ in b[p]) for b in bare]
    bare_cpu = [sum(c for p in PHASES for _, c in b[p]) for b in bare]
    out["bare_step_ms"] = per_step(bare_wall)
    out["bare_step_cpu_ms"] = per_step(bare_cpu)
    pairs = list(zip(light, bare_wall, bare_cpu, strict=True))
    out["overhead_wall_rounds"] = [x["epoch_wall"] / w - 1 for x, w, _ in pairs]
    out["overhead_wall"] = statistics.median(out["overhead_wall_rounds"])
    out["overhead_cpu"] = statistics.median(x["epoch_cpu"] / c - 1 for x, _, c in pairs)
    out["fit_fixed_s"] = statistics.median(x["fit_wall"] - x["epoch_wall"] for x in light)
    # wandb's service and any loader workers: CPU taken from the same cores while the epoch ran
    out["helpers_cpu_ms"] = per_step(x["epoch_helpers_cpu"] for x in light)
    return out


def render(results: dict, console: Console) -> None:
    """The breakdown as one table: each part's time per Lightning step and its share of that step."""
    step, step_cpu = results["lightning_step_ms"], results["lightning_step_cpu_ms"]
    load = results["load_average"]
    table = Table(
        title=f"one Lightning training step of {results['steps']}, {results['rounds']} rounds, {results['device']} "
        f"(medians over rounds; load average {load[0][0] if load[0] else '?'} -> {load[-1][0] if load[-1] else '?'})"
    )
    for col in ("part", "wall ms", "share", "CPU ms", "CPU share", "bare loop: wall ms", "CPU ms"):
        table.add_column(col, justify="left" if col == "part" else "right")
    for part in (*PHASES, "framework"):
        ms, cpu = results["phases_ms"][part], results["phases_cpu_ms"][part]
        bare, bare_cpu = results["bare_phases_ms"].get(part), results["bare_phases_cpu_ms"].get(part)
        table.add_row(
            part if part != "framework" else "framework (Lightning)",
            f"{ms:.1f}",
            f"{ms / step:.1%}",
            f"{cpu:.1f}",
            f"{cpu / step_cpu:.1%}",
            "" if bare is None else f"{bare:.1f}",
            "" if bare_cpu is None else f"{bare_cpu:.1f}",
        )
    table.add_row(
        "step",
        f"{step:.1f}",
        "100%",
        f"{step_cpu:.1f}",
        "100%",
        f"{results['bare_step_ms']:.1f}",
        f"{results['bare_step_cpu_ms']:.1f}",
    )
    console.print(table)
    console.print(
        f"framework share of the step, measured in the same epochs: {results['framework_share']:.1%} wall, "
        f"{results['framework_share_cpu']:.1%} CPU. Lightning's epoch over the bare loop's, paired per round: "
        f"{results['overhead_wall']:+.1%} wall ("
        + ", ".join(f"{v:+.1%}" for v in results["overhead_wall_rounds"])
        + f"), {results['overhead_cpu']:+.1%} CPU. Helper processes (wandb's service): "
        f"{results['helpers_cpu_ms']:.1f} CPU ms per step. A fit's fixed cost (set-up, loggers, the end-of-epoch "
        f"checkpoint): {results['fit_fixed_s']:.2f} s."
    )
