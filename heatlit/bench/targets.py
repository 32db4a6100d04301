"""The codec targets, per CPU thread count, and how a run's numbers are checked against them.

Speed ratios use each method's least disturbed run: at one thread its minimum CPU time (other processes
cannot inflate it, which keeps the targets meaningful on a shared machine), at more threads its minimum
wall time (the CPU time would miss the helper threads' work). The loop baselines are single-threaded
numpy/OpenCV and are compared at their own one-thread time.
"""

from __future__ import annotations

DARK_VS_LOOP = 25.0  # at 2 threads: DARK decode at least this many times faster than the per-map loop
DARK_VS_ARGMAX = 8.0  # at 1 thread: at most this many numpy argmax passes over the same batch
ENCODE_VS_LOOP = 10.0  # at 1 thread: unbiased encode at least this many times faster than the per-joint loop
MULTIPEAK_VS_ARGMAX = 50.0  # at 1 thread: the multi-peak decoder's ceiling (its goal is 20)
MULTIPEAK_GOAL = 20.0
DARK_CLEAN_ERR = 0.01  # px, noise-free interior maps
CRB_TOLERANCE = 0.15  # two-sided: far below the bound would mean the bound or the error is wrong
DARK_BORDER_ERR = 0.05  # px, noise-free maps centred within 1.5 px of an edge or a corner


def cost(timing: dict, threads: int) -> float:
    """The statistic the targets compare (see the module docstring)."""
    return timing["cpu_min_ms"] if threads == 1 else timing["min_ms"]


def evaluate(results: dict) -> list[dict]:
    """Each target as ``{"name", "value", "threshold", "passed"}``; nothing is asserted here."""
    speed, interior, border = results["speed"], results["accuracy"], results["border"]
    ref = speed["cpu_reference"]
    targets: list[dict] = []

    def add(name: str, value: float, threshold: str, passed: bool) -> None:
        targets.append({"name": name, "value": value, "threshold": threshold, "passed": bool(passed)})

    loop_dark, loop_enc = cost(ref["dark_loop"], 1), cost(ref["encode_loop"], 1)
    for count, t in speed.get("cpu", {}).items():
        count = int(count)
        argmax, dark = cost(t["numpy_argmax"], count), cost(t["dark_decode"], count)
        if count == 2:
            add(
                "cpu, 2 threads: dark_decode speed-up vs loop",
                loop_dark / dark,
                f">= {DARK_VS_LOOP:g}x",
                loop_dark / dark >= DARK_VS_LOOP,
            )
        if count == 1:
            enc, multi = cost(t["gaussian_heatmaps"], 1), cost(t["multipeak"], 1)
            add(
                "cpu, 1 thread: dark_decode / numpy argmax",
                dark / argmax,
                f"<= {DARK_VS_ARGMAX:g}x",
                dark / argmax <= DARK_VS_ARGMAX,
            )
            add(
                "cpu, 1 thread: gaussian_heatmaps speed-up vs loop",
                loop_enc / enc,
                f">= {ENCODE_VS_LOOP:g}x",
                loop_enc / enc >= ENCODE_VS_LOOP,
            )
            add(
                "cpu, 1 thread: multipeak / numpy argmax",
                multi / argmax,
                f"<= {MULTIPEAK_VS_ARGMAX:g}x (goal {MULTIPEAK_GOAL:g}x)",
                multi / argmax <= MULTIPEAK_VS_ARGMAX,
            )
    err = interior["noise_free"]["dark_decode"]["mean_err_px"]
    add(
        "dark_decode mean error, noise-free interior (px)", err, f"< {DARK_CLEAN_ERR:g}", err < DARK_CLEAN_ERR
    )
    for axis in ("x", "y"):
        ratio = interior["dark_vs_crb"]["dark_decode"][f"ratio_{axis}"]
        add(
            f"dark_decode noisy RMS {axis} / CRB (amplitude known)",
            ratio,
            f"1 +- {CRB_TOLERANCE:g}",
            abs(ratio - 1) <= CRB_TOLERANCE,
        )
    for region, stats in border.items():
        err = stats["noise_free"]["dark_decode"]["mean_err_px"]
        add(
            f"dark_decode mean error, noise-free {region} (px)",
            err,
            f"<= {DARK_BORDER_ERR:g}",
            err <= DARK_BORDER_ERR,
        )
        for data in ("noise_free", "noisy"):
            dark = stats[data]["dark_decode"]["mean_err_px"]
            std = stats[data]["standard (0.25 shift)"]["mean_err_px"]
            add(f"dark_decode / standard mean error, {data} {region}", dark / std, "<= 1", dark <= std)
    return targets
