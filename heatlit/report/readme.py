"""README result tables regenerated from runs: ``python -m heatlit.report.readme update|check``.

README's result tables sit between markers, one block per table::

    <!-- results:default -->
    ...table written by this module...
    <!-- /results:default -->

Blocks and their sources:

- ``default``: the test metrics of every decoder of one run (``make train``'s run folder);
- ``decoders``: the same run's decoders minus argmax, paired bootstrap over its test samples
  (``per_sample.npz``);
- ``study``: the encoding effect with 95% CIs over seeds of a ``study_cpu`` sweep folder (``make study``);
- ``representations``: the ranked representations table of a ``representations_cpu`` sweep folder.

``update`` rewrites the blocks whose source is given; ``check RUN`` compares the ``default`` block with what
RUN's ``results.json`` holds, cell by cell as printed (two decimals), and exits 1 naming every difference.
``make results`` runs the three experiments and ``update``; ``make check-readme`` trains the default
experiment into a fresh folder and runs ``check`` on it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from heatlit.report.collect import ReportError, collect
from heatlit.report.effects import sweep_records
from heatlit.report.stats import paired_effects
from heatlit.results import FILE_NAME, ResultsError, read_results

README = Path(__file__).resolve().parents[2] / "README.md"
DEFAULT_METRICS = ("pckh@0.1", "pckh@0.5", "auc", "rmse")
HEADERS = {"pckh@0.1": "PCKh@0.1 ↑", "pckh@0.5": "PCKh@0.5 ↑", "auc": "AUC ↑", "rmse": "RMSE (px) ↓"}


class ReadmeError(ValueError):
    """A README block or a source that cannot be used; the message names the file."""


def block_pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- results:{name} -->\n)(.*?)(<!-- /results:{name} -->)", re.S)


def read_block(text: str, name: str, path: Path = README) -> str:
    """The text between ``name``'s markers; ReadmeError when the markers are missing."""
    match = block_pattern(name).search(text)
    if match is None:
        raise ReadmeError(f"{path}: no <!-- results:{name} --> ... <!-- /results:{name} --> block")
    return match.group(2)


def replace_block(text: str, name: str, body: str, path: Path = README) -> str:
    read_block(text, name, path)  # the markers must be there
    return block_pattern(name).sub(
        lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(3), text, count=1
    )


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# ------------------------------------------------------------------------------------------- default
def default_table(run_dir: str | Path, split: str = "test") -> str:
    """Every decoder's metrics of one run, as printed in README (two decimals)."""
    path = Path(run_dir) / FILE_NAME
    try:
        stage = read_results(path).stage(split)
    except (OSError, ResultsError) as exc:
        raise ReadmeError(f"{path}: {exc}") from exc
    if not stage:
        raise ReadmeError(f"{path}: no {split} results")
    lines = [
        _row(["decoder", *(HEADERS[m] for m in DEFAULT_METRICS)]),
        _row(["---", *("---:" for _ in DEFAULT_METRICS)]),
    ]
    for decoder, metrics in stage.items():
        values = [metrics.get(m) for m in DEFAULT_METRICS]
        lines.append(_row([decoder, *("–" if v is None else f"{v:.2f}" for v in values)]))
    return "\n".join(lines) + "\n"


def table_cells(markdown: str) -> dict[tuple[str, str], str]:
    """``(row label, column header) -> cell`` of a Markdown table (the separator row skipped)."""
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in markdown.splitlines()
        if line.strip().startswith("|")
    ]
    if len(rows) < 2:
        return {}
    header, body = rows[0], [r for r in rows[2:]]
    return {(r[0], h): c for r in body for h, c in zip(header[1:], r[1:])}


def compare_default(readme_text: str, run_dir: str | Path, path: Path = README) -> list[str]:
    """Differences between README's ``default`` block and ``run_dir``'s results, one line each."""
    shown = table_cells(read_block(readme_text, "default", path))
    fresh = table_cells(default_table(run_dir))
    problems = []
    for key in sorted(set(shown) | set(fresh)):
        if shown.get(key) != fresh.get(key):
            problems.append(
                f"{key[0]} {key[1]}: README {shown.get(key, 'missing')}, run {fresh.get(key, 'missing')}"
            )
    return problems


def decoders_table(run_dir: str | Path, metrics: Sequence[str] = DEFAULT_METRICS) -> str:
    """Each decoder minus the reference (argmax) on one run, 95% paired bootstrap over its test samples."""
    from heatlit.report.decoders import bootstrap, load_checked, reference_decoder

    run_dir = Path(run_dir)
    try:
        stage = read_results(run_dir / FILE_NAME).stage("test")
    except (OSError, ResultsError) as exc:
        raise ReadmeError(f"{run_dir / FILE_NAME}: {exc}") from exc
    samples, why = load_checked(run_dir, stage)
    if samples is None:
        raise ReadmeError(f"{run_dir}: {why}")
    reference = reference_decoder(list(stage))
    lines, header = [], ""
    for decoder in stage:
        if decoder == reference:
            continue
        cells = []
        for metric in metrics:
            iv = bootstrap(samples, decoder, reference, metric)
            header = iv.header("test samples")
            cells.append(f"**{iv.format()}**" if iv.sign else iv.format())
        lines.append(_row([decoder, *cells]))
    return (
        "\n".join(
            [
                f"Δ = decoder − {reference} on the same forward pass ({header}); **bold**: the interval excludes 0.",
                "",
                _row(["decoder", *(f"Δ {HEADERS[m]}" for m in metrics)]),
                _row(["---", *("---:" for _ in metrics)]),
                *lines,
            ]
        )
        + "\n"
    )


# --------------------------------------------------------------------------------------------- study
def study_table(sweep_dir: str | Path, metrics: Sequence[str] = DEFAULT_METRICS) -> str:
    """Δ = unquant - quant per decoder and metric, mean ± 95% CI half-width over seeds; bold = resolved."""
    try:
        rows, _failed = collect(sweep_dir, "test")
    except ReportError as exc:
        raise ReadmeError(str(exc)) from exc
    effects = paired_effects(sweep_records(rows, metrics), "encoding", "quant")
    if not effects:
        raise ReadmeError(f"{sweep_dir}: no quant/unquant pair with the same seed")
    cell: dict[tuple[str, str], str] = {}
    decoders: list[str] = []
    ns = set()
    for effect in effects:
        decoder, metric = str(effect.group.get("decoder")), str(effect.group.get("metric"))
        decoders += [decoder] if decoder not in decoders else []
        text = effect.interval.format()
        cell[decoder, metric] = f"**{text}**" if effect.interval.sign else text
        ns.add(effect.interval.n)
    header = effects[0].interval.header("seeds") if len(ns) == 1 else "95% CI, Student t, n varies"
    lines = [
        f"Δ = unquant − quant, mean ± half-width ({header}); **bold**: the interval excludes 0.",
        "",
        _row(["decoder", *(f"Δ {HEADERS[m]}" for m in metrics)]),
        _row(["---", *("---:" for _ in metrics)]),
    ]
    lines += [_row([d, *(cell.get((d, m), "–") for m in metrics)]) for d in decoders]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------- representations
def representations_table(sweep_dir: str | Path) -> str:
    from heatlit.report.representations import build_table, to_markdown

    try:
        return to_markdown(build_table(sweep_dir))
    except (ReportError, ValueError) as exc:
        raise ReadmeError(f"{sweep_dir}: {exc}") from exc


BUILDERS = {
    "default": default_table,
    "decoders": decoders_table,
    "study": study_table,
    "representations": representations_table,
}


def update(readme: Path, sources: Mapping[str, str | Path]) -> list[str]:
    """Rewrite the blocks named in ``sources`` (block -> run or sweep folder); returns the names rewritten."""
    text = readme.read_text()
    for name, source in sources.items():
        text = replace_block(text, name, BUILDERS[name](source), readme)
    readme.write_text(text)
    return list(sources)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m heatlit.report.readme", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--readme", type=Path, default=README)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("update", help="rewrite README blocks from the given run / sweep folders")
    for name in BUILDERS:
        up.add_argument(f"--{name}", type=Path, default=None, help=f"source folder of the {name} block")
    check = sub.add_parser("check", help="compare README's default-experiment table with a run")
    check.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "update":
            sources = {n: getattr(args, n) for n in BUILDERS if getattr(args, n) is not None}
            if not sources:
                parser.error("give at least one of " + ", ".join(f"--{n}" for n in BUILDERS))
            print(f"{args.readme}: rewrote {', '.join(update(args.readme, sources))}")
            return 0
        problems = compare_default(args.readme.read_text(), args.run_dir, args.readme)
    except (ReadmeError, OSError) as exc:
        print(f"heatlit.report.readme: {exc}", file=sys.stderr)
        return 1
    if problems:
        print(f"{args.readme}: the default-experiment table differs from {args.run_dir}:", file=sys.stderr)
        print("\n".join(f"  {p}" for p in problems), file=sys.stderr)
        return 1
    print(f"{args.readme}: the default-experiment table matches {args.run_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
