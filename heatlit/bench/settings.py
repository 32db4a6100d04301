"""Sizes and settings of one codec benchmark run (``--quick`` shrinks them)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class BenchConfig:
    batch: int = 64
    joints: int = 17
    height: int = 64
    width: int = 48
    sigma: float = 2.0  # target Gaussian width (heatmap pixels)
    kernel: int = 11  # DARK blur kernel, the reference's TEST.BLUR_KERNEL for 64x48 maps
    threads: tuple[int, ...] = (1, 2)  # torch (and OpenCV) intra-op threads the speed runs use
    repeats: int = 50  # timed runs per method and thread count, in rounds (see machine.time_rounds)
    warmup: int = 10
    trials: int = 8192  # heatmaps per accuracy experiment
    border_trials: int = 4096  # heatmaps per border region
    crowded_maps: int = 400  # maps per crowded multi-peak setting
    noise_std: float = 0.05  # additive white Gaussian noise, relative to peak amplitude 1
    margin: float = 8.0  # keypoints at least 3 sigma + 2 px from the borders in the interior runs
    soft_beta: float = 20.0  # soft-argmax temperature for peak-1 maps, see accuracy.interior
    chunk: int = 2048  # maps per decoder call in the accuracy runs (bounds peak memory)
    seed: int = 0


QUICK = BenchConfig(
    batch=4, joints=3, repeats=3, warmup=1, trials=128, border_trials=64, crowded_maps=8, chunk=128
)


def config_from_args(
    quick: bool, repeats: int | None, trials: int | None, threads: tuple[int, ...] | None = None
) -> BenchConfig:
    cfg = QUICK if quick else BenchConfig()
    if repeats is not None:
        cfg = replace(cfg, repeats=repeats)
    if trials is not None:
        cfg = replace(cfg, trials=trials)
    if threads is not None:
        cfg = replace(cfg, threads=tuple(threads))
    return cfg
