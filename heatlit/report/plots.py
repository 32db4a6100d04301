"""The sweep's figures: metrics by decoder, metrics against stride, and the jobs' qualitative images.

Figures are built on the Agg canvas directly (no pyplot), so nothing global changes and nothing
needs closing: a report can run inside a training process or a notebook.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from heatlit.report.collect import Job, Row, label, natural_key
from heatlit.report.tables import LABELS, LOWER_IS_BETTER, decoder_order, sort_rows

DPI = 110
ACCURACY_METRICS = ("pckh@0.1", "pck@0.2", "ap")  # the first present is the accuracy panel
ERROR_METRICS = ("rmse", "mean_error", "mpjpe")  # the first present is the error panel
AXIS_NAMES = {"rmse": "RMSE (input px)", "mean_error": "mean error (input px)", "mpjpe": "MPJPE (mm)"}


def new_figure(nrows: int, ncols: int, width: float, height: float):
    """A figure of ``nrows x ncols`` axes (always a 2-D array) on the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save(fig, path: Path, top: float = 1.0) -> Path:
    """Lay out (leaving the figure's top fraction ``1 - top`` free for a legend) and write the PNG."""
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(path, dpi=DPI)
    return path


def axis_name(metric: str) -> str:
    arrow = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
    return f"{AXIS_NAMES.get(metric, LABELS.get(metric, metric))} ({arrow})"


def panel_metrics(rows: Sequence[Row]) -> list[str]:
    """The accuracy and the error metric to plot: PCKh@0.1 and RMSE for Table 2 data."""
    present = {m for r in rows for m, v in r.metrics.items() if v is not None}
    picks = [next((m for m in choice if m in present), None) for choice in (ACCURACY_METRICS, ERROR_METRICS)]
    return [m for m in picks if m is not None]


def group_rows(rows: Sequence[Row], axes: Sequence[str]) -> dict[tuple[str, ...], list[Row]]:
    """Rows by their values on ``axes``, groups in table order."""
    groups: dict[tuple[str, ...], list[Row]] = {}
    for row in sort_rows(rows, axes):
        groups.setdefault(tuple(row.value(a) for a in axes), []).append(row)
    return groups


def group_title(axes: Sequence[str], values: Sequence[str]) -> str:
    """``hrnet_tiny`` for the model, ``key=value`` for anything else."""
    return ", ".join(v if a == "model" else f"{a}={v}" for a, v in zip(axes, values)) or "all jobs"


def job_title(job: Job, axes: Sequence[str]) -> str:
    """``hrnet_tiny/unquant/stride=4``: model and encoding bare, other axes named."""
    return "/".join(
        label(job.settings.get(a)) if a in ("model", "encoding") else f"{a}={label(job.settings.get(a))}"
        for a in axes
    )


def decoders_plot(rows: Sequence[Row], axes: Sequence[str], path: Path) -> Path | None:
    """Grouped bars: each metric by decoder, one bar per encoding, one row of panels per model (and
    other axes). None when there is no metric to plot."""
    metrics = panel_metrics(rows)
    if not metrics:
        return None
    group_axes = [a for a in axes if a != "encoding"]
    groups = group_rows(rows, group_axes)
    decoders = list(decoder_order(rows))
    encodings = sorted({r.value("encoding") for r in rows}, key=natural_key)
    fig, grid = new_figure(
        len(groups), len(metrics), max(4.0, 0.9 * len(decoders) * len(encodings) ** 0.5), 3.2
    )
    width = 0.8 / len(encodings)
    for (values, members), panels in zip(groups.items(), grid):
        for ax, metric in zip(panels, metrics):
            for i, encoding in enumerate(encodings):
                by_decoder = {
                    r.decoder: r.metrics.get(metric) for r in members if r.value("encoding") == encoding
                }
                heights = [_nan(by_decoder.get(d)) for d in decoders]
                xs = [j + (i - (len(encodings) - 1) / 2) * width for j in range(len(decoders))]
                bars = ax.bar(xs, heights, width, label=encoding)
                # errors are a few pixels: two decimals, as in the table; percentages need one
                ax.bar_label(bars, fmt="%.2f" if metric in LOWER_IS_BETTER else "%.1f", fontsize=6, padding=1)
            ax.set_xticks(range(len(decoders)), decoders, rotation=20, fontsize=8)
            ax.set_ylabel(axis_name(metric), fontsize=8)
            ax.set_title(group_title(group_axes, values), fontsize=9)
            ax.margins(y=0.12)
    # one legend above all panels: inside a panel it would cover the bar labels
    handles, labels = grid[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, title="encoding", loc="upper center", ncol=len(encodings), fontsize=8)
    return save(fig, path, top=1 - 0.6 / fig.get_figheight())


def stride_plot(rows: Sequence[Row], axes: Sequence[str], path: Path) -> Path | None:
    """Error and accuracy against heatmap stride, a line per encoding x decoder (colour: decoder,
    dash: encoding), one row of panels per model (and other axes). None unless stride varies."""
    if "stride" not in axes:
        return None
    rows = [r for r in rows if _float(r.value("stride")) is not None]
    metrics = list(reversed(panel_metrics(rows)))  # error first: quantisation error is the point
    if not rows or not metrics:
        return None
    group_axes = [a for a in axes if a not in ("stride", "encoding")]
    groups = group_rows(rows, group_axes)
    decoders = list(decoder_order(rows))
    encodings = sorted({r.value("encoding") for r in rows}, key=natural_key)
    colours = {d: f"C{i % 10}" for i, d in enumerate(decoders)}
    dashes = {e: ("-", "--", ":", "-.")[i % 4] for i, e in enumerate(encodings)}
    strides = sorted({_float(r.value("stride")) for r in rows})
    fig, grid = new_figure(len(groups), len(metrics), 5.0, 3.6)
    for (values, members), panels in zip(groups.items(), grid):
        for ax, metric in zip(panels, metrics):
            for encoding in encodings:
                for decoder in decoders:
                    points = sorted(
                        (_float(r.value("stride")), r.metrics.get(metric))
                        for r in members
                        if r.decoder == decoder
                        and r.value("encoding") == encoding
                        and r.metrics.get(metric) is not None
                    )
                    if points:
                        ax.plot(
                            *zip(*points),
                            dashes[encoding],
                            color=colours[decoder],
                            marker="o",
                            markersize=3,
                            label=f"{encoding} / {decoder}",
                        )
            if min(strides) > 0:
                ax.set_xscale("log", base=2)  # strides double: 1, 2, 4, 8
            ax.set_xticks(strides, [f"{s:g}" for s in strides])
            ax.set_xlabel("heatmap stride (input px per heatmap px)", fontsize=8)
            ax.set_ylabel(axis_name(metric), fontsize=8)
            ax.set_title(group_title(group_axes, values), fontsize=9)
            ax.grid(alpha=0.3)
        panels[0].legend(fontsize=6, ncol=2)
    return save(fig, path)


def qualitative_grid(jobs: Sequence[Job], axes: Sequence[str], path: Path) -> tuple[Path | None, list[Path]]:
    """The jobs' ``qualitative.png`` side by side, titled by job.

    Returns:
        The written path (None when no job has a readable image) and the images that could not be read.
    """
    from matplotlib.image import imread

    images, unreadable = [], []
    for job in jobs:
        if job.qualitative is None:
            continue
        try:
            images.append((job_title(job, axes), imread(job.qualitative)))
        except (OSError, ValueError, SyntaxError):  # PIL reports some truncated files as SyntaxError
            unreadable.append(job.qualitative)
    if not images:
        return None, unreadable
    cols = min(len(images), 3)
    height, width = images[0][1].shape[:2]
    fig, grid = new_figure(math.ceil(len(images) / cols), cols, 6.0, 6.0 * height / width + 0.4)
    for ax in grid.flat:
        ax.axis("off")
    for ax, (title, image) in zip(grid.flat, images):
        ax.imshow(image)
        ax.set_title(title, fontsize=10)
    return save(fig, path), unreadable


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _nan(value: float | None) -> float:
    """Missing bars as NaN: matplotlib leaves a gap instead of drawing a zero."""
    return math.nan if value is None else value
