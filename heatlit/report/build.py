"""Tie the tables and figures of a sweep into ``<out>/report.md`` (and the console)."""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from heatlit.report.collect import (
    FailedJob,
    Job,
    ReportError,
    Row,
    collect,
    read_sweep,
    unique_jobs,
    varying_axes,
)
from heatlit.report.decoders import DecoderEffects, decoder_effects, decoder_markdown
from heatlit.report.failures import ERROR_LINE
from heatlit.report.multiperson import section_markdown as multiperson_markdown
from heatlit.report.paper import write_paper
from heatlit.report.plots import decoders_plot, qualitative_grid, stride_plot
from heatlit.report.representations import RepresentationTable, build_table, varies_by_representation
from heatlit.report.representations import to_markdown as representations_markdown
from heatlit.report.representations import write_csv as write_representations_csv
from heatlit.report.tables import (
    Table,
    effect_table,
    present_metrics,
    results_table,
    to_markdown,
    to_rich,
    write_csv,
)

FIGURES = {
    "decoders.png": "Metrics by decoder (bars: encodings)",
    "stride.png": "Metrics against heatmap stride (colour: decoder, dash: encoding)",
    "qualitative.png": "Qualitative results (cyan: ground truth, red: prediction)",
}


@dataclass
class Sweep:
    """Everything the report says about one multirun directory."""

    root: Path
    split: str
    rows: list[Row]
    failed: list[FailedJob]
    jobs: list[Job] = field(init=False)
    axes: list[str] = field(init=False)
    _decoders: DecoderEffects | bool | None = field(init=False, default=None)  # computed once (bootstrap)

    def __post_init__(self):
        self.jobs = unique_jobs(self.rows)
        self.axes = varying_axes(self.jobs)

    @property
    def best_within(self) -> list[str]:
        """Bold the best value per model (and other axes), across encodings and decoders."""
        return [a for a in self.axes if a not in ("encoding", "seed")]  # seeds are averaged

    def table(self, all_metrics: bool = False) -> Table:
        """The results table: Table 2's columns averaged over seeds, or every metric of every run (the CSV)."""
        return results_table(
            self.rows,
            self.axes,
            present_metrics(self.rows) if all_metrics else None,
            self.split,
            per_run=all_metrics,
        )

    @functools.cached_property
    def representations(self) -> RepresentationTable | None:
        """Each representation with its best decoder (:mod:`heatlit.report.representations`), when several ran."""
        return build_table(self.root) if varies_by_representation(self.jobs) else None

    def effect(self) -> Table | None:
        """Unquant minus quant per model (and other axes) x decoder; None for a single encoding."""
        return effect_table(self.rows, self.axes)

    def decoders(self) -> DecoderEffects | None:
        """Each decoder minus argmax per run, paired per test sample (``per_sample.npz``); None for one decoder."""
        if self._decoders is None:
            self._decoders = decoder_effects(self.rows, self.axes) or False
        return self._decoders or None

    def wall_time_s(self) -> float:
        """Summed over finished jobs: what the sweep cost, whatever ran in parallel."""
        return sum(j.wall_time_s or 0.0 for j in self.jobs)

    def devices(self) -> str:
        """``cpu``, or ``cuda:0 (3 jobs), cpu (1 job)`` when the jobs disagree."""
        counts = Counter(j.device or "unknown" for j in self.jobs)
        if len(counts) == 1:
            return next(iter(counts))
        return ", ".join(f"{d} ({n} job{'s' * (n != 1)})" for d, n in counts.most_common())


def duration(seconds: float) -> str:
    """``41.2 s``, ``6 min 52 s``, ``1 h 02 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def relative(path: Path, root: Path) -> str:
    return (path.relative_to(root) if path.is_relative_to(root) else path).as_posix() or "."


def no_results_message(root: Path, failed: list[FailedJob], split: str) -> str:
    """Why there is nothing to report, naming the directory and each job's status."""
    if not failed:
        return f"no Hydra job (.hydra/overrides.yaml) found under {root}"
    lines = [f"no finished job in {root}: {len(failed)} job(s), none with usable '{split}' results"]
    lines += [f"  {relative(f.path, root)}: {f.describe()}" for f in failed]
    return "\n".join(lines)


def failed_markdown(sweep: Sweep) -> str:
    if not sweep.failed:
        return "None: every job finished.\n"
    lines = ["| job | overrides | status | last error line |", "| --- | --- | --- | --- |"]
    for f in sweep.failed:
        overrides = " ".join(f.overrides) or "–"
        status, line = (text.replace("|", "\\|").replace("\n", " ") for text in (f.status, failure_line(f)))
        lines.append(f"| `{relative(f.path, sweep.root)}` | `{overrides}` | {status} | {line} |")
    return "\n".join(lines) + "\n"


def failure_line(job: FailedJob) -> str:
    """The report.md cell: the last error line and its log, the last log line when no error was found."""
    if job.line is None:
        return "no log line"
    prefix = "" if job.line_kind == ERROR_LINE else f"({job.line_kind}) "
    source = f" ({job.line_source.name})" if job.line_source is not None else ""
    return f"{prefix}{job.line}{source}"


def distinct(texts) -> list[str]:
    """Each text once, in order, without the Nones."""
    return [t for t in dict.fromkeys(texts) if t]


def describe_data(dataset) -> str | None:
    """``synth: 18 keypoints, pckh normalised by the head segment (neck to head top), px``."""
    if not dataset:
        return None
    scored = f"{dataset.get('pck')} normalised by the {dataset.get('norm')}"
    if dataset.get("multi_person"):
        scored = "several people per frame, candidate peaks scored by P/R/F1/AP"
    if dataset.get("oks_sigmas"):
        scored += ", COCO OKS AP"
    return f"{dataset.get('name')}: {len(dataset.get('keypoints') or [])} keypoints, {scored}"


def describe_grid(grid) -> str | None:
    """``20x40 at stride 4 from 80x160 inputs`` (``8x20x40 ...`` with depth bins), ``h x w`` order."""
    if not grid:
        return None
    size = "x".join(str(v) for v in grid.get("heatmap_size") or [])
    text = f"{size} at stride {grid.get('stride')} from {'x'.join(str(v) for v in grid.get('input_size') or [])} inputs"
    if grid.get("depth_bins"):
        text += f", {grid['depth_bins']} depth bins over {grid.get('depth_range_mm'):g} mm"
    return text


def header_markdown(sweep: Sweep) -> str:
    """Title and the sweep's vital statistics: jobs, wall time, device, the command-line grid."""
    info = read_sweep(sweep.root)
    lines = [
        f"# Sweep report: {sweep.root.name}",
        "",
        f"- directory: `{sweep.root}`",
        f"- split: `{sweep.split}`",
        f"- jobs: {len(sweep.jobs)} finished, {len(sweep.failed)} failed",
        f"- total wall time: {duration(sweep.wall_time_s())} (summed over finished jobs)",
        f"- device: {sweep.devices()}",
        f"- axes: {', '.join(sweep.axes)}; decoders: {', '.join(dict.fromkeys(r.decoder for r in sweep.rows))}",
    ]
    lines += [f"- data: {text}" for text in distinct(describe_data(j.dataset) for j in sweep.jobs)]
    lines += [f"- heatmaps: {text}" for text in distinct(describe_grid(j.grid) for j in sweep.jobs)]
    if info.get("overrides"):
        lines.append(f"- sweep overrides: `{' '.join(info['overrides'])}`")
    if info.get("params"):
        lines.append(f"- sweeper params: `{'  '.join(f'{k}={v}' for k, v in info['params'].items())}`")
    return "\n".join(lines) + "\n"


# prefixes of percent metrics
UNITS = {"pckh": "PCKh", "pck@": "PCK", "auc": "AUC", "ap": "AP", "ar": "AR", "peak_": "peak AP/F1/P/R"}


def units(metrics: list[str]) -> str:
    """``PCKh in percent, RMSE in input pixels``: only for the columns shown."""
    percent = list(
        dict.fromkeys(name for m in metrics for prefix, name in UNITS.items() if m.startswith(prefix))
    )
    parts = [f"{'/'.join(percent)} in percent"] if percent else []
    parts += [
        text
        for m, text in (
            ("rmse", "RMSE in input pixels"),
            ("mean_error", "mean error in input pixels"),
            ("mpjpe", "MPJPE in mm"),
        )
        if m in metrics
    ]
    return ", ".join(parts)


def paper_markdown(files: dict[str, Path], lines: list[str]) -> list[str]:
    """The section pointing at the reproduction report's layout (table2.md, table3.md, claims.md)."""
    if not files:
        return [f"{line}.\n" for line in lines]
    links = ", ".join(f"[{name}]({name})" for name in files if name.endswith(".md"))
    return [
        "## In the reproduction report's layout\n",
        f"Its Table 2, Table 3 and claims, ours beside its numbers: {links}.\n",
        "".join(f"- {line}\n" for line in lines),
    ]


def intervals_line(table: Table, paired: bool = False) -> list[str]:
    """What the table's cells are (``Cells: mean ± half-width, 95% CI, Student t, n=3 seeds.``), if it says."""
    text = table.intervals
    if not text:
        return []
    if paired and not text.startswith("single"):
        text = text.replace("cells: mean", "cells: mean paired difference (runs paired by seed)", 1)
    return [f"{text[0].upper()}{text[1:]}.\n"]


def report_markdown(
    sweep: Sweep,
    figures: dict[str, Path],
    unreadable: list[Path],
    paper: tuple[dict[str, Path], list[str]] = ({}, []),
) -> str:
    """The whole ``report.md``: header, results, encoding effect, the report's layout, failed jobs, figures."""
    table, effect = sweep.table(), sweep.effect()
    parts = [
        header_markdown(sweep),
        f"## Results ({sweep.split})\n",
        f"{units(table.metrics)}; the best value per {' / '.join(sweep.best_within) or 'sweep'} is in bold. "
        "Every metric of every run: [table.csv](table.csv).\n",
        *intervals_line(table),
        to_markdown(table, sweep.best_within),
    ]
    if effect is not None:
        parts += [
            f"## {effect.title[0].upper()}{effect.title[1:]}\n",
            f"{effect.note}.\n",
            *intervals_line(effect, paired=True),
            to_markdown(effect),
        ]
    decoders = sweep.decoders()
    if decoders is not None:
        parts.append(decoder_markdown(decoders))
    if sweep.representations is not None:
        parts += [
            "## Representations: each with its best decoder\n",
            representations_markdown(sweep.representations),
            "Also as [representations.csv](representations.csv).\n",
        ]
    multiperson = multiperson_markdown(sweep.rows, sweep.axes, sweep.split)
    if multiperson:
        parts.append(multiperson)
    parts += paper_markdown(*paper)
    parts += ["## Failed jobs\n", failed_markdown(sweep)]
    if figures or unreadable:
        parts.append("## Figures\n")
    for name, path in figures.items():
        parts += [f"### {FIGURES[name]}\n", f"![{path.stem}]({path.name})\n"]
    if unreadable:
        parts.append(
            "Unreadable qualitative images: "
            + ", ".join(f"`{relative(p, sweep.root)}`" for p in unreadable)
            + "\n"
        )
    return "\n".join(parts)


def write_figures(sweep: Sweep, out: Path) -> tuple[dict[str, Path], list[Path]]:
    """The PNGs that apply to this sweep, and any qualitative image that could not be read."""
    figures = {
        "decoders.png": decoders_plot(sweep.rows, sweep.axes, out / "decoders.png"),
        "stride.png": stride_plot(sweep.rows, sweep.axes, out / "stride.png"),
    }
    figures["qualitative.png"], unreadable = qualitative_grid(sweep.jobs, sweep.axes, out / "qualitative.png")
    return {k: v for k, v in figures.items() if v is not None}, unreadable


def write_tables(sweep: Sweep, out: Path) -> dict[str, Path]:
    """``table.md`` (Table 2 columns), ``table.csv`` (every metric) and the encoding-effect pair."""
    table = sweep.table()
    written = {"table.md": out / "table.md", "table.csv": out / "table.csv"}
    written["table.md"].write_text(
        f"## {table.title}\n\n"
        + "".join(f"{line}\n" for line in intervals_line(table))
        + to_markdown(table, sweep.best_within)
    )
    write_csv(sweep.table(all_metrics=True), written["table.csv"], sweep.root)
    effect = sweep.effect()
    if effect is not None:
        written["encoding_effect.md"] = out / "encoding_effect.md"
        written["encoding_effect.md"].write_text(
            f"## {effect.title}\n\n{effect.note}.\n\n"
            + "".join(f"{line}\n" for line in intervals_line(effect, paired=True))
            + to_markdown(effect)
        )
        written["encoding_effect.csv"] = write_csv(effect, out / "encoding_effect.csv")
    decoders = sweep.decoders()
    if decoders is not None:
        written["decoder_effects.md"] = out / "decoder_effects.md"
        written["decoder_effects.md"].write_text(decoder_markdown(decoders))
    representations = sweep.representations
    if representations is not None:
        written["representations.md"] = out / "representations.md"
        written["representations.md"].write_text(
            "## Representations: each with its best decoder\n\n" + representations_markdown(representations)
        )
        written["representations.csv"] = write_representations_csv(
            representations, out / "representations.csv"
        )
    multiperson = multiperson_markdown(sweep.rows, sweep.axes, sweep.split)
    if multiperson:
        written["multiperson.md"] = out / "multiperson.md"
        written["multiperson.md"].write_text(multiperson)
    return written


def print_report(sweep: Sweep, written: dict[str, Path], console, paper_lines: list[str] = ()) -> None:
    """The tables, the failed jobs and where everything went, on a rich console."""
    from rich.text import Text

    console.print(to_rich(sweep.table()))
    effect = sweep.effect()
    if effect is not None:
        console.print(to_rich(effect))
    for f in sweep.failed:
        # a line each, not a table: job paths and error messages must survive a narrow terminal whole
        console.print(
            Text.assemble(
                ("failed job ", "bold red"),
                relative(f.path, sweep.root),
                f" [{' '.join(f.overrides)}]: ",
                (f.describe(), "red"),
            ),
            soft_wrap=True,
        )
    for line in paper_lines:
        console.print(line, soft_wrap=True)
    console.print(
        f"{len(sweep.jobs)} job(s) finished, {len(sweep.failed)} failed; "
        f"total wall time {duration(sweep.wall_time_s())} on {sweep.devices()}"
    )
    for path in written.values():
        console.print(f"  wrote {path}")


def write_report(
    multirun_dir: str | Path, out_dir: str | Path | None = None, split: str = "test", console=None
) -> dict[str, Path]:
    """Write the sweep's report: tables (Markdown, CSV), figures (PNG) and ``report.md``.

    Args:
        multirun_dir: a Hydra multirun directory (``multirun/<group>/<timestamp>``) or a single run.
        out_dir: where to write; default ``<multirun_dir>/report``.
        split: the stage of ``results.json`` to report (``test`` or ``val``).
        console: a rich Console to print the tables and failed jobs on; None prints nothing.

    Returns:
        File name (``table.md``, ``decoders.png``, ``report.md``, ...) -> written path.

    Raises:
        ReportError: the directory is missing or none of its jobs finished.
    """
    root = Path(multirun_dir)
    rows, failed = collect(root, split)
    if not rows:
        raise ReportError(no_results_message(root, failed, split))
    sweep = Sweep(root, split, rows, failed)
    out = Path(out_dir) if out_dir is not None else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    written = write_tables(sweep, out)
    paper = write_paper(sweep.rows, sweep.axes, sweep.split, out)
    written.update(paper[0])
    figures, unreadable = write_figures(sweep, out)
    written.update(figures)
    written["report.md"] = out / "report.md"
    written["report.md"].write_text(report_markdown(sweep, figures, unreadable, paper))
    if console is not None:
        print_report(sweep, written, console, paper[1])
    return written
