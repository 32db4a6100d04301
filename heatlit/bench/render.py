"""Print a codec benchmark run as tables: machine and load, speed per thread count, accuracy, targets."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from heatlit.bench.targets import cost

SPEED_ROWS = {  # heatlit method -> (label, loop baseline it replaces)
    "dark_decode": ("DARK decode", "dark_loop"),
    "gaussian_heatmaps": ("unbiased encode", "encode_loop"),
    "multipeak": ("multi-peak decode (default: modulation none)", None),
    "multipeak_peaks": ("multi-peak decode, modulation peaks", None),
    "multipeak_map": ("multi-peak decode, modulation map (blur before NMS)", None),
}


def _px(value: float) -> str:
    """Pixel errors: fixed point, or 2 significant digits when below 0.001 (DARK's noise-free error)."""
    return f"{value:.4f}" if value >= 1e-3 or value == 0 else f"{value:.1e}"


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    return table


def header(results: dict, console: Console) -> None:
    cfg, env = results["config"], results["environment"]
    console.print(
        f"[bold]heatlit codec benchmark[/bold]  B={cfg['batch']} K={cfg['joints']} heatmap "
        f"{cfg['height']}x{cfg['width']} (HxW)  sigma={cfg['sigma']:g}  blur k={cfg['kernel']}  "
        f"{cfg['repeats']} timed runs per method and thread count"
    )
    console.print(
        f"torch {env['torch']}, numpy {env['numpy']}, OpenCV {env['opencv']}; {env['cpu']}, "
        f"{env['logical_cores']} logical cores; devices: {', '.join(env['devices'])}"
        + (f" ({env['cuda_device']})" if env["cuda_device"] else "")
    )
    start, end = env["load_average"], results.get("load_average_end")
    if start is not None:
        busy = max(start[0], (end or start)[0]) > 0.5 * (env["logical_cores"] or 1)
        style = "yellow" if busy else "default"
        console.print(
            f"[{style}]load average (1, 5, 15 min): {start} at the start, {end} at the end"
            + (
                " - a busy machine: trust the min and CPU columns over the medians (multi-thread medians "
                f"suffer most; OMP_WAIT_POLICY={env.get('omp_wait_policy', 'default')})"
                if busy
                else ""
            )
            + f"[/{style}]"
        )


def speed_table(results: dict, console: Console) -> None:
    sp = results["speed"]
    ref = sp["cpu_reference"]
    table = _table(
        "Speed (baselines: single-threaded numpy/OpenCV on CPU; ratios from min wall time, or min CPU time at 1 thread)",
        [
            "method",
            "device",
            "threads",
            "median ms",
            "min ms",
            "min CPU ms",
            "speed-up vs loop",
            "x numpy argmax",
        ],
    )
    for name, timing in ref.items():
        table.add_row(
            f"{name} (reference loop)",
            "cpu",
            "1",
            f"{timing['median_ms']:.2f}",
            f"{timing['min_ms']:.2f}",
            f"{timing['cpu_min_ms']:.2f}",
            "-",
            "-",
        )
    for dev in results["environment"]["devices"]:
        for count, timings in sp[dev].items():
            n = int(count) if dev == "cpu" else 2  # a CUDA time is wall time
            argmax = cost(timings["numpy_argmax"], n)
            for method, (label, loop) in [
                ("numpy_argmax", ("np.argmax over the batch (floor)", None)),
                *SPEED_ROWS.items(),
            ]:
                t = timings[method]
                speedup = f"{cost(ref[loop], 1) / cost(t, n):.1f}x" if loop else "-"
                table.add_row(
                    label,
                    dev,
                    count,
                    f"{t['median_ms']:.3f}",
                    f"{t['min_ms']:.3f}",
                    f"{t['cpu_min_ms']:.3f}",
                    speedup,
                    f"{cost(t, n) / argmax:.1f}",
                )
    console.print(table)


def accuracy_tables(results: dict, console: Console) -> None:
    cfg, acc = results["config"], results["accuracy"]
    crb = acc["crb"]
    known, est = crb["amplitude_known"], crb["amplitude_estimated"]
    table = _table(
        f"Accuracy inside the frame: {cfg['trials']} unbiased sigma-{cfg['sigma']:g} maps, peak 1, keypoints "
        f">= {cfg['margin']:g} px inside; noisy = + N(0, {cfg['noise_std']:g}^2) per pixel",
        [
            "method",
            "clean mean err",
            "clean RMS x",
            "clean RMS y",
            "noisy mean err",
            "noisy RMS x",
            "noisy RMS y",
            "RMS/CRB x",
            "RMS/CRB y",
        ],
    )
    for name, clean in acc["noise_free"].items():
        noisy = acc["noisy"][name]
        table.add_row(
            name,
            _px(clean["mean_err_px"]),
            _px(clean["rms_x_px"]),
            _px(clean["rms_y_px"]),
            _px(noisy["mean_err_px"]),
            _px(noisy["rms_x_px"]),
            _px(noisy["rms_y_px"]),
            f"{noisy['rms_x_px'] / known['x_px']:.3f}",
            f"{noisy['rms_y_px'] / known['y_px']:.3f}",
        )
    console.print(table)
    console.print(
        f"Cramer-Rao bound on the per-axis std (discrete {cfg['height']}x{cfg['width']} grid, averaged over "
        f"the trials' centres): amplitude known x={known['x_px']:.5f} y={known['y_px']:.5f} px (used by the "
        f"target); amplitude also estimated x={est['x_px']:.5f} y={est['y_px']:.5f} px; continuum limit "
        f"noise_std*sqrt(2/pi) = {crb['continuum_px']:.5f} px. Errors in px."
    )
    for name, r in acc["dark_vs_crb"].items():
        cx, cy = r["ratio_x_ci95"], r["ratio_y_ci95"]
        console.print(
            f"  {name}: RMS/CRB x={r['ratio_x']:.3f} (95% CI {cx[0]:.3f}-{cx[1]:.3f}), "
            f"y={r['ratio_y']:.3f} (95% CI {cy[0]:.3f}-{cy[1]:.3f})"
        )
    border = results["border"]
    table = _table(
        f"Accuracy at the border: {cfg['border_trials']} maps per region, centred from the frame's edge to 1.5 px "
        "inside the border pixel; mean error (px)",
        [
            "method",
            *[f"{region} {data.replace('_', '-')}" for region in border for data in ("noise_free", "noisy")],
            "interior noisy",
        ],
    )
    for name in next(iter(border.values()))["noise_free"]:
        cells = [
            _px(border[region][data][name]["mean_err_px"])
            for region in border
            for data in ("noise_free", "noisy")
        ]
        table.add_row(name, *cells, _px(acc["noisy"][name]["mean_err_px"]))
    console.print(table)


def crowded_table(results: dict, console: Console) -> None:
    crowded = results["crowded"]
    cfg = results["config"]
    table = _table(
        f"Multi-peak on crowded maps ({cfg['crowded_maps']} maps per row; AP over score, greedy matching; "
        "error = mean distance of the matches at 2 px)",
        ["maps", "variant", "AP@1px", "AP@2px", "recall@2px", "precision@2px", "error px"],
    )
    for setting, row in crowded.items():
        for variant, m in row.items():
            table.add_row(
                setting,
                variant,
                f"{m['ap_1px']:.3f}",
                f"{m['ap_2px']:.3f}",
                f"{m['recall_2px']:.3f}",
                f"{m['precision_2px']:.3f}",
                f"{m['error_px']:.3f}",
            )
    console.print(table)


def targets_table(results: dict, console: Console) -> None:
    table = _table("Targets", ["target", "measured", "required", "result"])
    for t in results["targets"]:
        verdict = "[green]PASS[/green]" if t["passed"] else "[red]FAIL[/red]"
        table.add_row(t["name"], f"{t['value']:.4g}", t["threshold"], verdict)
    console.print(table)


def render(results: dict, console: Console) -> None:
    """Print every table of a run."""
    header(results, console)
    speed_table(results, console)
    accuracy_tables(results, console)
    crowded_table(results, console)
    targets_table(results, console)
