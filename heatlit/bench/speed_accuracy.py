"""Speed against accuracy (LOGO-CAP's speed-accuracy figure) for trained checkpoints.

For every checkpoint x input resolution x test-scale option: the test split's accuracy with every decoder
(one forward pass per batch, every decoder on it, as training's test does), then the throughput of forward
plus decode at each batch size, warm, on the same machine in one run. Timings come from
:func:`heatlit.bench.machine.time_rounds`: ``iters`` rounds, each timing every configuration in turn, so a
change of load on a shared machine falls on all of them alike; medians are reported, with the thread's CPU
time beside them; the thread count and the load average are recorded.

Throughput of a decoder is ``batch / (forward + decode)`` per batch: the forward pass (with flip testing and
multi-scale testing when on, as accuracy was measured) is timed once per round, each decoder on its output.
"""

from __future__ import annotations

import csv
import functools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from heatlit.bench.machine import environment, load_average, time_rounds
from heatlit.models.checkpoint import load_checkpoint
from heatlit.training.checks import ConfigError, check_fits
from heatlit.training.module import CHOICES_KEY, CONFIG_KEY, SHAPE_KEY, scaled_input_size

Tensor = torch.Tensor


@dataclass
class SpeedConfig:
    """What to measure.

    Attributes:
        checkpoints: heatlit training checkpoints (``checkpoints/best.ckpt`` of a run).
        resolutions: input sizes as factors of each checkpoint's training input size (rounded to the model's
            size multiple); 1.0 is the trained size.
        batches: batch sizes timed.
        decoders: decoder names to keep (None: every decoder the run configured).
        multiscale: also measure multi-scale testing with these factors (None: single scale only).
        iters, warmup: timed and untimed repetitions of every timing.
        max_samples: score at most this many test samples (None: the whole test split).
        flip_test: None keeps each run's setting.
        device: ``cpu`` or ``cuda``.
        data_dir: override the rendered data's cache folder (None: the run's).
    """

    checkpoints: Sequence[Path]
    resolutions: Sequence[float] = (0.8, 1.0, 1.2)
    batches: Sequence[int] = (1, 32)
    decoders: Sequence[str] | None = None
    multiscale: Sequence[float] | None = None
    iters: int = 20
    warmup: int = 3
    max_samples: int | None = None
    flip_test: bool | None = None
    device: str = "cpu"
    data_dir: str | None = None
    extra: dict = field(default_factory=dict)


def load_run(path: Path) -> dict:
    """A checkpoint written by ``heatlit.train``, loaded without running code from it (:func:`load_checkpoint`:
    ``weights_only=True``, one-line :class:`~heatlit.models.checkpoint.CheckpointError`); ConfigError when it
    holds no run config."""
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, dict) or CONFIG_KEY not in checkpoint or "state_dict" not in checkpoint:
        raise ConfigError(f"{path} holds no heatlit run config; was it written by heatlit.train?")
    return checkpoint


class Evaluation:
    """One checkpoint at one input size and test-scale option: the module, its data and its decoders."""

    def __init__(
        self,
        run_cfg: DictConfig,
        checkpoint: dict,
        path: Path,
        input_size: Sequence[int],
        scales,
        device: str,
    ):
        from heatlit.training.run import build_datamodule, build_decoders, build_module

        cfg = run_cfg.copy()
        with open_dict(cfg):
            cfg.data.input_size = [int(input_size[0]), int(input_size[1])]
            cfg.test_scales = list(scales)
            cfg.upper_bound = None  # an analysis with its own cost; not part of a throughput comparison
            cfg.qualitative = 0
        self.datamodule = build_datamodule(cfg)
        self.module = build_module(cfg, self.datamodule, build_decoders(cfg))
        state = checkpoint["state_dict"]
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        check_fits(self.module, path, shapes, checkpoint.get(SHAPE_KEY), self.datamodule)
        self.module.load_state_dict(state, strict=False)
        self.module.to(device).eval()
        self.device = device

    @torch.inference_mode()
    def accuracy(self, max_samples: int | None) -> dict[str, dict[str, float]]:
        """decoder -> metric -> value on the test split (every decoder on the same forward pass)."""
        self.datamodule.setup("test")
        scorer = self.module.scorers["test"]
        scorer.reset()
        seen = 0
        for batch in self.datamodule.test_dataloader():
            if max_samples is not None and seen >= max_samples:
                break
            batch = {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in batch.items()}
            scorer.update(self.module.predict_heatmaps(batch["image"]), batch)
            seen += batch["image"].shape[0]
        return scorer.compute()

    def images(self, count: int) -> Tensor:
        """The first ``count`` test inputs ``[count, C, H, W]`` (repeated when the split is smaller)."""
        self.datamodule.setup("test")
        dataset = self.datamodule.test_dataloader().dataset
        picked = [torch.from_numpy(dataset[i % len(dataset)]["image"]) for i in range(count)]
        return torch.stack(picked).to(self.device)


def _label(run_cfg: DictConfig, checkpoint: dict, path: Path) -> str:
    choices = checkpoint.get(CHOICES_KEY) or {}
    return str(choices.get("model") or OmegaConf.select(run_cfg, "model._target_", default=path.stem))


def _prepare(path: Path, cfg: SpeedConfig) -> tuple[str, DictConfig, dict]:
    """The model label, run config (with this measurement's decoders, flip and data folder) and checkpoint."""
    checkpoint = load_run(path)
    run_cfg = OmegaConf.create(checkpoint[CONFIG_KEY])
    with open_dict(run_cfg):
        if cfg.flip_test is not None:
            run_cfg.flip_test = cfg.flip_test
        if cfg.data_dir is not None and OmegaConf.select(run_cfg, "data.source.data_dir") is not None:
            run_cfg.data.source.data_dir = cfg.data_dir
        if cfg.decoders:
            unknown = sorted(set(cfg.decoders) - set(run_cfg.decoders))
            if unknown:
                raise ConfigError(
                    f"{path}: decoders {unknown} not configured in the run (has {list(run_cfg.decoders)})"
                )
            run_cfg.decoders = {k: run_cfg.decoders[k] for k in cfg.decoders}
    return _label(run_cfg, checkpoint, path), run_cfg, checkpoint


def run(cfg: SpeedConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every combination; returns ``{"machine": ..., "config": ..., "rows": [...]}``.

    First the accuracy of every checkpoint x input size x scale option, then the timings, round-robin over
    all of them (see :class:`Timing`). A row: model, checkpoint, input_size [H, W], scales, decoder, batch,
    forward_ms, decode_ms (medians), images_per_s, and the decoder's test metrics at that input size and
    scale option (``metrics``).
    """
    before = {**environment([cfg.device]), "torch_threads": torch.get_num_threads()}
    log(
        f"threads {before['torch_threads']} of {before['logical_cores']} CPUs, load average "
        f"{before['load_average']}, torch {before['torch']}, device {cfg.device}"
    )
    options = [(1.0,)] + ([tuple(cfg.multiscale)] if cfg.multiscale else [])
    measured: list[tuple[dict, Evaluation, dict]] = []
    for path in map(Path, cfg.checkpoints):
        model, run_cfg, checkpoint = _prepare(path, cfg)
        trained = tuple(int(n) for n in run_cfg.data.input_size)
        first = Evaluation(run_cfg, checkpoint, path, trained, (1.0,), cfg.device)
        for factor in cfg.resolutions:
            size = scaled_input_size(trained, factor, first.module.model.size_multiple)
            for scales in options:
                evaluation = (
                    first
                    if (tuple(size), scales) == (trained, (1.0,))
                    else Evaluation(run_cfg, checkpoint, path, size, scales, cfg.device)
                )
                started = time.perf_counter()
                metrics = evaluation.accuracy(cfg.max_samples)
                key = {
                    "model": model,
                    "checkpoint": str(path),
                    "input_size": list(size),
                    "scales": list(scales),
                }
                measured.append((key, evaluation, metrics))
                log(
                    f"{model} {size[0]}x{size[1]} scales {scales_label(scales)}: test split scored in "
                    f"{time.perf_counter() - started:.0f} s"
                )
    # every configuration's forward pass and decoders, timed round-robin (heatlit.bench.machine.time_rounds)
    methods: dict[str, Callable[[], object]] = {}
    configs = []
    for i, (key, evaluation, metrics) in enumerate(measured):
        for batch in cfg.batches:
            images = evaluation.images(int(batch))
            with torch.inference_mode():
                heatmaps = evaluation.module.predict_heatmaps(images).float()
            scorer = evaluation.module.scorers["test"]
            name = f"{i}/b{batch}"
            methods[f"{name}/forward"] = functools.partial(evaluation.module.predict_heatmaps, images)
            for decoder in metrics:
                methods[f"{name}/{decoder}"] = functools.partial(scorer.decode, decoder, heatmaps)
            configs.append((name, key, metrics, int(batch)))
    load_before = load_average()
    with torch.inference_mode():
        timed = time_rounds(methods, cfg.iters, cfg.warmup, torch.device(cfg.device), rounds=cfg.iters)
    load_after = load_average()
    log(
        f"timed {len(configs)} configurations in {cfg.iters} rounds; load average {load_before} -> {load_after}"
    )
    rows: list[dict[str, Any]] = []
    for name, key, metrics, batch in configs:
        forward = timed[f"{name}/forward"]
        for decoder, values in metrics.items():
            decode = timed[f"{name}/{decoder}"]
            rows.append(
                {
                    **key,
                    "decoder": decoder,
                    "batch": batch,
                    "forward_ms": forward["median_ms"],
                    "decode_ms": decode["median_ms"],
                    "images_per_s": batch / (forward["median_ms"] + decode["median_ms"]) * 1e3,
                    # this thread's CPU time: the work itself, what other processes took left out (1 thread)
                    "forward_cpu_min_ms": forward["cpu_min_ms"],
                    "decode_cpu_min_ms": decode["cpu_min_ms"],
                    "metrics": values,
                }
            )
    return {
        "machine": {**before, "load_average_timing": [load_before, load_after]},
        "config": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items() if k != "checkpoints"
        }
        | {"checkpoints": [str(p) for p in cfg.checkpoints]},
        "rows": rows,
    }


def _first(load: Sequence[float] | None) -> str:
    return "?" if not load else f"{load[0]:.1f}"


def accuracy_metric(rows: Sequence[dict], wanted: str | None = None) -> str:
    """The metric to plot: ``wanted``, else the first of PCKh@0.1, AP, PCK@0.2, MPJPE the rows have."""
    have = {m for r in rows for m in r["metrics"]}
    if wanted is not None:
        if wanted not in have:
            raise ConfigError(f"metric {wanted!r} not measured; have {sorted(have)}")
        return wanted
    return next(m for m in ("pckh@0.1", "ap", "pck@0.2", "mpjpe", *sorted(have)) if m in have)


def scales_label(scales: Sequence[float]) -> str:
    return "single" if list(scales) == [1.0] else "+".join(f"{s:g}" for s in scales)


def table_markdown(results: dict, metrics: Sequence[str]) -> str:
    """One row per model x input size x scales x decoder: images/s at each batch, forward/decode ms, metrics."""
    rows = results["rows"]
    batches = sorted({r["batch"] for r in rows})
    keyed: dict[tuple, dict[int, dict]] = {}
    for r in rows:
        key = (r["model"], tuple(r["input_size"]), scales_label(r["scales"]), r["decoder"])
        keyed.setdefault(key, {})[r["batch"]] = r
    head = ["model", "input", "scales", "decoder"]
    head += (
        [f"img/s b{b}" for b in batches]
        + [f"fwd ms b{b}" for b in batches]
        + [f"dec ms b{b}" for b in batches]
    )
    head += list(metrics)
    lines = [
        "| " + " | ".join(head) + " |",
        "| " + " | ".join(["---"] * 4 + ["---:"] * (len(head) - 4)) + " |",
    ]
    for (model, size, scales, decoder), by_batch in keyed.items():
        any_row = next(iter(by_batch.values()))
        cells = [model, f"{size[0]}x{size[1]}", scales, decoder]
        cells += [f"{by_batch[b]['images_per_s']:.1f}" if b in by_batch else "-" for b in batches]
        cells += [f"{by_batch[b]['forward_ms']:.1f}" if b in by_batch else "-" for b in batches]
        cells += [f"{by_batch[b]['decode_ms']:.2f}" if b in by_batch else "-" for b in batches]
        cells += [f"{any_row['metrics'].get(m, float('nan')):.2f}" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(results: dict, metric: str, path: Path, decoders: Sequence[str] | None = None) -> Path:
    """Accuracy against images/s, one panel per batch size (LOGO-CAP's figure): colour = model, marker =
    decoder, a line through a model's input sizes; multi-scale testing hollow and dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    rows = [r for r in results["rows"] if decoders is None or r["decoder"] in decoders]
    batches = sorted({r["batch"] for r in rows})
    models = list(dict.fromkeys(r["model"] for r in rows))
    decs = list(dict.fromkeys(r["decoder"] for r in rows))
    colours = {m: f"C{i}" for i, m in enumerate(models)}
    markers = dict(zip(decs, "osD^vP*X<>"))
    fig = Figure(figsize=(6.0 * len(batches), 4.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(batches), squeeze=False)[0]
    for ax, batch in zip(axes, batches):
        groups: dict[tuple, list[dict]] = {}
        for r in rows:
            if r["batch"] == batch:
                groups.setdefault((r["model"], r["decoder"], scales_label(r["scales"])), []).append(r)
        for (model, decoder, scales), group in groups.items():
            group.sort(key=lambda r: r["input_size"][0] * r["input_size"][1])
            single = scales == "single"
            ax.plot(
                [r["images_per_s"] for r in group],
                [r["metrics"].get(metric, float("nan")) for r in group],
                linestyle="-" if single else "--",
                marker=markers[decoder],
                color=colours[model],
                markerfacecolor=colours[model] if single else "none",
                alpha=0.85,
            )
            if decoder == decs[0]:
                for r in group:
                    ax.annotate(
                        f"{r['input_size'][0]}x{r['input_size'][1]}",
                        (r["images_per_s"], r["metrics"].get(metric, float("nan"))),
                        fontsize=7,
                        xytext=(3, 3),
                        textcoords="offset points",
                    )
        speeds = [r["images_per_s"] for r in rows if r["batch"] == batch]
        log_axis = max(speeds) > 3 * min(speeds)  # a log axis only where the speeds span a range worth it
        if log_axis:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"images/s, forward + decode, batch {batch}{' (log)' if log_axis else ''}")
        ax.set_ylabel(f"test {metric}")
        ax.grid(True, which="both", alpha=0.3)
    handles = [Line2D([], [], color=colours[m], label=m) for m in models]
    handles += [Line2D([], [], color="grey", marker=markers[d], linestyle="", label=d) for d in decs]
    if any(scales_label(r["scales"]) != "single" for r in rows):
        handles.append(
            Line2D(
                [], [], color="grey", marker="o", markerfacecolor="none", linestyle="--", label="multi-scale"
            )
        )
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 6), fontsize=8)
    info = results["machine"]
    fig.suptitle(
        f"torch threads: {info['torch_threads']}; 1-min load average {_first(info['load_average_timing'][0])} -> "
        f"{_first(info['load_average_timing'][1])} while timing (configurations timed round-robin)",
        y=0.02,
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.03, 1, 0.88))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def read(path: Path) -> dict:
    """An earlier run's ``speed.json``; ConfigError when it is missing or not one."""
    try:
        results = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read {path}: {err}") from err
    if not isinstance(results, dict) or not isinstance(results.get("rows"), list) or "machine" not in results:
        raise ConfigError(f"{path} is not a speed.json written by python -m heatlit.speed")
    return results


def write(
    results: dict, out: Path, metric: str | None = None, plot_decoders: Sequence[str] | None = None
) -> dict[str, Path]:
    """``speed.json`` (everything), ``speed.csv`` (flat rows), ``speed.md`` (the table) and ``speed.png``
    (``plot_decoders`` only, default all)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "speed.json",
        "csv": out / "speed.csv",
        "md": out / "speed.md",
        "png": out / "speed.png",
    }
    paths["json"].write_text(json.dumps(results, indent=2) + "\n")
    rows = results["rows"]
    metric_names = sorted({m for r in rows for m in r["metrics"]})
    with paths["csv"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "model",
                "input_h",
                "input_w",
                "scales",
                "decoder",
                "batch",
                "forward_ms",
                "decode_ms",
                "images_per_s",
                *metric_names,
            ]
        )
        for r in rows:
            writer.writerow(
                [r["model"], *r["input_size"], scales_label(r["scales"]), r["decoder"], r["batch"],
                 f"{r['forward_ms']:.3f}", f"{r['decode_ms']:.4f}", f"{r['images_per_s']:.3f}",
                 *(r["metrics"].get(m) for m in metric_names)]
            )  # fmt: skip
    unknown = sorted(set(plot_decoders or ()) - {r["decoder"] for r in rows})
    if unknown:
        raise ConfigError(
            f"--plot-decoders {unknown} were not measured; have {sorted({r['decoder'] for r in rows})}"
        )
    plotted = accuracy_metric(rows, metric) if rows else None
    shown = [m for m in ("pckh@0.1", "pckh@0.5", "ap", "pck@0.2", "mpjpe") if m in metric_names]
    paths["md"].write_text(table_markdown(results, shown))
    if plotted is not None:
        figure(results, plotted, paths["png"], plot_decoders)
    return paths
