"""``python -m heatlit.speed CKPT [CKPT ...] [options]``: speed against accuracy of trained checkpoints.

Measures test accuracy (every decoder) and throughput (forward + decode, images/s at batch 1 and 32, warm)
for each checkpoint x input resolution (x multi-scale testing with ``--multiscale``), in one run on this
machine, and writes ``speed.json``, ``speed.csv``, ``speed.md`` and the figure ``speed.png`` into ``--out``.
The work is in :mod:`heatlit.bench.speed_accuracy`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from err
    if not values or any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def _ints(text: str) -> list[int]:
    values = _floats(text)
    if any(v != int(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    return [int(v) for v in values]


def _names(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m heatlit.speed", description=__doc__.splitlines()[0])
    p.add_argument(
        "checkpoints", nargs="*", type=Path, help="heatlit checkpoints (a run's checkpoints/best.ckpt)"
    )
    p.add_argument(
        "--from-json",
        type=Path,
        default=None,
        metavar="SPEED_JSON",
        help="measure nothing: redraw the table and figure of an earlier run's speed.json",
    )
    p.add_argument(
        "--plot-decoders",
        type=_names,
        default=None,
        help="decoders drawn in the figure (default: all; the table keeps all)",
    )
    p.add_argument(
        "--resolutions",
        type=_floats,
        default=[0.8, 1.0, 1.2],
        help="input sizes as factors of the trained size (default 0.8,1,1.2)",
    )
    p.add_argument("--batches", type=_ints, default=[1, 32], help="batch sizes timed (default 1,32)")
    p.add_argument(
        "--decoders",
        type=_names,
        default=None,
        help="decoders to keep, comma-separated (default: the run's)",
    )
    p.add_argument(
        "--multiscale",
        type=_floats,
        default=None,
        help="also measure multi-scale testing with these factors, e.g. 0.75,1,1.25",
    )
    p.add_argument("--metric", default=None, help="accuracy metric of the figure (default pckh@0.1, else ap)")
    p.add_argument("--iters", type=int, default=20, help="timed repetitions (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed repetitions first")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--max-samples", type=int, default=None, help="score at most this many test samples")
    p.add_argument("--no-flip", action="store_true", help="no flip testing (default: each run's setting)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--data-dir", default=None, help="the rendered data's cache folder (default: the run's)")
    p.add_argument("--out", type=Path, default=Path("outputs/speed"), help="where the table and figure go")
    return p  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if bool(args.checkpoints) == (args.from_json is not None):
        parser.error("give checkpoints to measure, or --from-json SPEED_JSON to redraw, not both")
    if args.iters < 1 or args.warmup < 0 or (args.threads is not None and args.threads < 1):
        parser.error("--iters must be >= 1, --warmup >= 0, --threads >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is False")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from heatlit.bench import speed_accuracy as speed
    from heatlit.data.errors import DataError
    from heatlit.models.checkpoint import CheckpointError
    from heatlit.training.checks import ConfigError

    cfg = speed.SpeedConfig(
        checkpoints=args.checkpoints,
        resolutions=args.resolutions,
        batches=args.batches,
        decoders=args.decoders,
        multiscale=args.multiscale,
        iters=args.iters,
        warmup=args.warmup,
        max_samples=args.max_samples,
        flip_test=False if args.no_flip else None,
        device=args.device,
        data_dir=args.data_dir,
    )
    try:
        if args.from_json is not None:
            results = speed.read(args.from_json)
        else:
            results = speed.run(cfg, log=lambda line: print(line, flush=True))
        paths = speed.write(results, args.out, args.metric, args.plot_decoders)
    except (ConfigError, CheckpointError, DataError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(paths["md"].read_text())
    print("written:", ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
