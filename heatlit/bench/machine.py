"""Timing that holds on a busy machine, and what the machine was doing while it ran."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import torch


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages (runnable processes), or None where the OS has none."""
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(devices: list[str]) -> dict:
    """Library versions, CPU, logical cores, devices and the load average now."""
    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "cpu": cpu_name(),
        "logical_cores": os.cpu_count(),
        "torch_default_threads": torch.get_num_threads(),
        "devices": list(devices),
        "cuda_device": torch.cuda.get_device_name(0) if "cuda" in devices else None,
        "load_average": load_average(),
        # libgomp's default lets idle torch threads spin: on a loaded CPU a threaded op then waits for a
        # descheduled team member (ms per op); PASSIVE makes them sleep
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    }


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads (OpenCV too), then restore both."""
    old_torch, old_cv = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(count)
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        torch.set_num_threads(old_torch)
        cv2.setNumThreads(old_cv)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(
    fn: Callable[[], object], repeats: int, warmup: int, device: torch.device
) -> tuple[list[float], list[float]]:
    """Wall and CPU time of ``fn()`` in ms, ``repeats`` times after ``warmup`` untimed calls.

    The device is synchronised before and after each call, so a CUDA time covers the kernels, not just
    their launch, and no earlier work leaks into it. Warm-up absorbs one-off costs (CUDA context and
    library handles, allocator growth, OpenCV/numpy first-call set-up). The CPU time is this thread's
    (``time.thread_time``): it leaves out the time other processes held the core, so at one intra-op
    thread it is the work itself, even on a busy machine; with more threads it misses the helpers' work.
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    wall, cpu = [], []
    for _ in range(repeats):
        _sync(device)
        start, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        _sync(device)
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.thread_time() - start_cpu) * 1e3)
    return wall, cpu


def time_rounds(
    methods: dict[str, Callable[[], object]], repeats: int, warmup: int, device: torch.device, rounds: int = 5
) -> dict[str, dict]:
    """Time every method in ``rounds`` rounds of ``repeats // rounds`` back-to-back calls each.

    Back-to-back calls keep each method's own data warm in the caches (a decoder in a loop sees that);
    cycling through the methods round after round spreads each one over the whole run, so a burst of
    load from another process hits all of them alike instead of one. Returns ``{name: timing}``
    (:func:`summary`).
    """
    rounds = min(rounds, repeats)
    per_round = repeats // rounds
    wall: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    for r in range(rounds):
        for name, fn in methods.items():
            w, c = time_ms(fn, per_round, warmup if r == 0 else 1, device)
            wall[name] += w
            cpu[name] += c
    return {name: summary(wall[name], cpu[name]) for name in methods}


def summary(wall: list[float], cpu: list[float]) -> dict:
    """``{"median_ms", "min_ms", "cpu_min_ms", "times_ms"}`` (wall unless named cpu). The minimum is the
    least disturbed run; the median shows what the load added; the CPU minimum leaves other processes
    out altogether (meaningful at one thread)."""
    return {
        "median_ms": statistics.median(wall),
        "min_ms": min(wall),
        "cpu_min_ms": min(cpu),
        "times_ms": wall,
    }
