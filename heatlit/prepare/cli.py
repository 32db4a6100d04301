"""``python -m heatlit.prepare human4d --root ROOT``: the reproduction's HUMAN4D split lists, with their counts."""

from __future__ import annotations

import argparse
import logging
import sys

from heatlit.prepare import human4d as h4d


def step_arg(text: str) -> int | None:
    """``auto`` -> None, else a positive integer."""
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive integer, got {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m heatlit.prepare", description=__doc__)
    sub = parser.add_subparsers(dest="dataset", required=True)
    p = sub.add_parser(
        "human4d",
        help="write training.txt / validation.txt / testing.txt as the reproduction report describes",
        description="HUMAN4D split lists after the reproduction report (seed 000, sec. 3.3.2): the 14 "
        "single-person activities, the first 100 frames of every sequence clipped, the rest subsampled; S1-S3 "
        "train, S4's activities halved into validation and test; all 4 depth views of a frame. Readings of "
        "the report: docs/REPRODUCTION.md.",
    )
    p.add_argument(
        "--root", required=True, help="HUMAN4D root (device_repository.json, S1..S4); lists go here"
    )
    p.add_argument(
        "--step",
        type=step_arg,
        default=None,
        help="keep every N-th frame; 'auto' (default): the step whose counts come closest to the report's "
        "73,248 / 12,236 / 13,380",
    )
    p.add_argument("--drop", type=int, default=h4d.DROP, help="frames clipped at the start of each sequence")
    p.add_argument(
        "--train-subjects", default=",".join(h4d.TRAIN_SUBJECTS), help="comma list (default S1,S2,S3)"
    )
    p.add_argument("--held-out", default=h4d.HELD_OUT, help="subject split into validation and test (S4)")
    p.add_argument("--dry-run", action="store_true", help="print the counts, write nothing")
    p.add_argument("--force", action="store_true", help="replace existing split lists that differ")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """0 when the lists were written (or, with --dry-run, counted); 2 on a data error, with the reason."""
    from heatlit.data.errors import DataError

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    subjects = {
        "train_subjects": tuple(s for s in args.train_subjects.split(",") if s),
        "held_out": args.held_out,
    }
    try:
        recordings = h4d.scan(args.root, **subjects)
        if args.step is None:
            splits = h4d.choose_step(recordings, args.drop, **subjects)
            print(f"--step auto: step {splits.step} comes closest to the report's counts")
        else:
            splits = h4d.assign(recordings, args.step, args.drop, **subjects)
        print("\n".join(h4d.summary(splits)))
        for line in h4d.differences(splits):
            print(f"warning: {line}", file=sys.stderr)
        if not args.dry_run:
            for path in h4d.write_splits(args.root, splits, force=args.force).values():
                print(f"wrote {path}")
    except (FileNotFoundError, FileExistsError, DataError, ValueError) as err:
        print(f"heatlit.prepare: {err}", file=sys.stderr)
        return 2
    return 0
