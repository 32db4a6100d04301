"""What a run leaves behind: results.json, the per-decoder table, the qualitative figure."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import torch

# Column order of every results table; metrics a run did not produce are left out.
METRIC_ORDER = (
    "pckh@0.1",
    "pckh@0.5",
    "pck@0.2",
    "auc",
    "rmse",
    "mean_error",
    "mpjpe",
    "ap",
    "ap50",
    "ap75",
    "ar",
)


def ordered_metrics(names) -> list[str]:
    """Known metrics in the canonical order, then any others alphabetically."""
    names = set(names)
    return [m for m in METRIC_ORDER if m in names] + sorted(names - set(METRIC_ORDER))


def write_results(path: Path, choices: Mapping, results: Mapping, extra: Mapping | None = None) -> Path:
    """Write ``results.json``: ``{"choices": {...}, "results": {stage: {decoder: {metric: value}}}, ...}``.

    Non-finite values are written as null so the file stays strict JSON.
    """

    def clean(v):
        if isinstance(v, Mapping):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    payload = {"choices": dict(choices), "results": clean(results), **(clean(extra) if extra else {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False))
    tmp.replace(path)  # a reader never sees half a file
    return path


def results_table(results: Mapping[str, Mapping[str, float]], title: str = "test"):
    """A rich Table: one row per decoder, one column per metric."""
    from rich.table import Table

    metrics = ordered_metrics({m for values in results.values() for m in values})
    table = Table(title=f"{title}: every decoder on the same forward pass")
    table.add_column("decoder")
    for m in metrics:
        table.add_column(m, justify="right")
    for decoder, values in results.items():
        table.add_row(decoder, *(f"{values[m]:.3f}" if m in values else "-" for m in metrics))
    return table


def qualitative_figure(samples: Mapping[str, torch.Tensor], decoder: str = "dark", path: Path | None = None):
    """Inputs with ground truth (cyan) and predictions (red) over the predicted heatmaps.

    Args:
        samples: ``image [N, H, W]``, ``keypoints [N, K, 2]`` input px, ``visible [N, K]``,
            ``heatmaps [N, h, w]`` (max over joints), ``pred/<decoder> [N, K, 2]`` input px.

    Returns:
        The matplotlib figure (also saved to ``path`` when given).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = (
        f"pred/{decoder}"
        if f"pred/{decoder}" in samples
        else next(k for k in samples if k.startswith("pred/"))
    )
    n = samples["image"].shape[0]
    height, width = samples["image"].shape[-2:]
    cols = min(n, 4)
    rows = 2 * math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 3.2 * rows * height / width + 0.4), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        r, c = 2 * (i // cols), i % cols
        ax = axes[r, c]
        ax.imshow(samples["image"][i].numpy(), cmap="gray")
        vis = samples["visible"][i].bool()
        gt, pred = samples["keypoints"][i][vis], samples[key][i][vis]
        ax.scatter(gt[:, 0], gt[:, 1], s=14, c="cyan", marker="o", label="ground truth")
        ax.scatter(pred[:, 0], pred[:, 1], s=14, c="red", marker="x", label=key.split("/", 1)[1])
        if i == 0:
            ax.legend(loc="lower left", fontsize=6, framealpha=0.6)
        axes[r + 1, c].imshow(samples["heatmaps"][i].numpy(), cmap="magma")
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig
