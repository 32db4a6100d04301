"""The qualitative figure a run leaves behind (results.json is :mod:`heatlit.results`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch


def qualitative_figure(
    samples: Mapping[str, torch.Tensor],
    decoder: str = "dark",
    path: Path | None = None,
    skeleton: Sequence[Sequence[int]] = (),
):
    """Inputs with ground truth (cyan, bones from ``skeleton``) and predictions (red) over the heatmaps.

    Args:
        samples: ``image [N, H, W]``, ``keypoints [N, K, 2]`` input px, ``visible [N, K]``,
            ``heatmaps [N, h, w]`` (max over joints), ``pred/<decoder> [N, K, 2]`` input px.
        decoder: whose predictions to draw (the first decoder kept when absent).
        path: where to save the figure.
        skeleton: ``(a, b)`` keypoint pairs drawn as bones between visible ground-truth keypoints
            (the dataset description's ``skeleton``).

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
        for a, b in skeleton:
            if vis[a] and vis[b]:
                xy = samples["keypoints"][i][[a, b]]
                ax.plot(xy[:, 0], xy[:, 1], c="cyan", lw=0.8, alpha=0.6)
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
