"""Render a collected folder as one self-contained HTML page.

Everything the page needs travels inside it: Plotly's JavaScript (the copy bundled with the ``plotly``
package), the page's own script and style, the data as JSON, and the images as data URIs. The page opens
from disk with no network; nothing in it has an ``http(s)`` ``src`` or ``href``.
"""

from __future__ import annotations

import base64
import html
import json
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from heatlit.dashboard.collect import EPOCH_PREFIX, Folder, settings_of
from heatlit.dashboard.tables import (
    Cell,
    Grid,
    effect_table,
    final_table,
    run_id,
    run_label,
    splits_of,
)
from heatlit.report.build import duration
from heatlit.report.collect import label, natural_key
from heatlit.report.tables import metric_label

# Plotly's default qualitative palette; a run keeps its colour in every chart.
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
DASHES = ("solid", "dash", "dot", "dashdot")  # one per encoding
PREFERRED_METRIC = ("pckh@0.1", "ap", "pck@0.2")
PREFERRED_TRAIN = "train/loss"


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def script_json(payload: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` can end or confuse it."""
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def inline_script(code: str) -> str:
    """A ``<script>`` element holding ``code`` (which must not close it early)."""
    return "<script>" + code.replace("</script", "<\\/script") + "</script>"


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def asset(name: str) -> str:
    return resources.files("heatlit.dashboard").joinpath("static", name).read_text(encoding="utf-8")


def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def chart_payload(folder: Folder) -> dict[str, Any]:
    """What the page's script draws: runs (label, colour, dash, filter labels) and their curves."""
    encodings = sorted({label(r.job.settings.get("encoding")) for r in folder.runs}, key=natural_key)
    runs, val_metrics, train_series = [], {}, {}
    decoders = {d: None for r in folder.finished for split in r.results.values() for d in split}
    for i, run in enumerate(folder.runs):
        rid = run_id(run, folder.root)
        curves = {name: [c.x, c.y] for name, c in run.curves.items()}
        for name in run.curves:
            if name.startswith(EPOCH_PREFIX) and name.count("/") == 2:
                _, decoder, metric = name.split("/")
                decoders.setdefault(decoder, None)
                val_metrics.setdefault(metric, None)
            elif not name.startswith(EPOCH_PREFIX):
                train_series.setdefault(name, None)
        runs.append(
            {
                "id": rid,
                "label": run_label(run, folder.axes),
                "status": run.status,
                "filters": dict(settings_of(run, folder.axes)),
                "colour": COLOURS[i % len(COLOURS)],
                "dash": DASHES[encodings.index(label(run.job.settings.get("encoding"))) % len(DASHES)],
                "curves": curves,
            }
        )
    metrics = list(val_metrics)
    train = sorted(train_series, key=lambda n: (n != PREFERRED_TRAIN, not n.startswith("train/"), n))
    return {
        "runs": runs,
        "decoders": list(decoders),
        "metrics": metrics,
        "metricLabels": {m: metric_label(m) for m in metrics},
        "defaultMetric": next((m for m in PREFERRED_METRIC if m in metrics), metrics[0] if metrics else None),
        "trainSeries": train,
    }


def render_grid(section: str, title: str, grid: Grid | None, empty: str) -> str:
    """A section with a sortable table: each cell's sort value in ``data-v``, each row's filter labels in
    ``data-f``; ``empty`` in place of the table when there is none."""
    if grid is None or not grid.rows:
        return f'<section id="{section}"><h2>{esc(title)}</h2><p class="empty">{esc(empty)}</p></section>'
    head = "".join(
        f'<th data-numeric="{int(c.numeric)}" class="{"num" if c.numeric else "text"}" '
        f'title="{esc(c.title or "click to sort")}">{esc(c.header)}</th>'
        for c in grid.columns
    )
    body = []
    for row in grid.rows:
        cells = "".join(cell_html(c, col.numeric) for c, col in zip(row.cells, grid.columns))
        run = f' data-run="{esc(row.run)}"' if row.run else ""
        body.append(f'<tr data-f="{esc(json.dumps(row.filters))}"{run}>{cells}</tr>')
    return (
        f'<section id="{section}"><h2>{esc(grid.title)}</h2><p class="note">{esc(grid.note)}</p>'
        f'<div class="scroll"><table class="sortable" id="{section}-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div></section>"
    )


def cell_html(cell: Cell, numeric: bool) -> str:
    attrs = "" if cell.value is None else f' data-v="{esc(cell.value)}"'
    attrs += f' title="{esc(cell.title)}"' if cell.title else ""
    css = " ".join(c for c in (cell.css, "num" if numeric else "") if c)
    attrs += f' class="{css}"' if css else ""
    return f"<td{attrs}>{esc(cell.text)}</td>"


def render_filters(folder: Folder, decoders: Sequence[str]) -> str:
    """A checkbox per value of every axis (and decoder), and one per run with its colour swatch."""
    groups = {a: sorted({settings_of(r, [a])[a] for r in folder.runs}, key=natural_key) for a in folder.axes}
    groups = {a: values for a, values in groups.items() if len(values) > 1 or a in ("model", "encoding")}
    if len(decoders) > 1:
        groups["decoder"] = list(decoders)
    parts = []
    for axis, values in groups.items():
        boxes = "".join(
            f'<label><input type="checkbox" checked data-axis="{esc(axis)}" value="{esc(v)}"> {esc(v)}</label>'
            for v in values
        )
        parts.append(f'<div class="filter"><span class="axis">{esc(axis)}</span>{boxes}</div>')
    return "".join(parts)


def render_run_list(payload: dict[str, Any]) -> str:
    items = []
    for run in payload["runs"]:
        rid, status = esc(run["id"]), run["status"]
        note = "" if status == "finished" else f" <em>({esc(status)})</em>"
        items.append(
            f'<label class="run" data-run="{rid}"><input type="checkbox" checked data-run-toggle="{rid}">'
            f'<span class="swatch" style="background:{esc(run["colour"])}"></span>{esc(run["label"])}{note}</label>'
        )
    return f'<div class="runs"><span class="axis">runs</span>{"".join(items)}</div>'


def when(seconds: float | None) -> str:
    return "–" if seconds is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def render_unfinished(folder: Folder) -> str:
    """Jobs without results: status, the last error line (or last log line) and where it was read."""
    runs = folder.unfinished
    if not runs:
        return '<p class="empty">None: every job finished.</p>'
    rows = []
    for run in runs:
        rid = run_id(run, folder.root)
        source = "" if run.line_source is None else f" ({esc(run.line_source.name)})"
        why = (
            [f'<span class="kind">{run.line_kind}{source}:</span> <code>{esc(run.line)}</code>']
            if run.line
            else []
        )
        why += [esc(run.note)] if run.note else []
        epoch = run.last_epoch()
        rows.append(
            f'<tr data-run="{esc(rid)}"><td>{esc(rid)}</td><td><code>{esc(" ".join(run.job.overrides) or "–")}</code></td>'
            f'<td class="status">{esc(run.status)}</td><td>{"<br>".join(why) or "no log line found"}</td>'
            f"<td>{'–' if epoch is None else epoch}</td><td>{esc(when(run.last_activity))}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>" for h in ("job", "overrides", "status", "why", "last val epoch", "last write")
    )
    return f'<table id="unfinished"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def render_figures(folder: Folder) -> tuple[str, str]:
    """The runs' qualitative images (filtered with their runs) and the report's PNGs, as data URIs."""
    unreadable = set(folder.unreadable_images)
    qualitative = "".join(
        f'<figure data-run="{esc(run_id(r, folder.root))}"><img alt="qualitative {esc(run_label(r, folder.axes))}" '
        f'src="{data_uri(r.job.qualitative)}"><figcaption>{esc(run_label(r, folder.axes))}</figcaption></figure>'
        for r in folder.finished
        if r.job.qualitative is not None and r.job.qualitative not in unreadable
    )
    report = "".join(
        f'<figure class="wide"><img alt="{esc(p.name)}" src="{data_uri(p)}"><figcaption>{esc(p.relative_to(folder.root))}'
        "</figcaption></figure>"
        for p in folder.report_images
    )
    if unreadable:
        names = ", ".join(
            esc(p.relative_to(folder.root) if p.is_relative_to(folder.root) else p) for p in unreadable
        )
        report += f'<p class="empty">Not a readable PNG, left out: {names}</p>'
    return (
        qualitative or '<p class="empty">No qualitative.png in any finished run.</p>',
        report
        or '<p class="empty">No report figures (run <code>python -m heatlit.report DIR</code> first).</p>',
    )


def summary(folder: Folder) -> str:
    """Counts, wall time and devices in one line."""
    crashed = sum(r.status == "crashed" for r in folder.runs)
    other = len(folder.unfinished) - crashed
    wall = sum(r.job.wall_time_s or 0.0 for r in folder.finished)
    devices = sorted({r.job.device for r in folder.finished if r.job.device})
    parts = [
        f"{len(folder.finished)} finished",
        f"{crashed} crashed",
        f"{other} running, crashed or unreadable",
    ]
    return (
        f"{len(folder.runs)} job(s): {', '.join(parts)}; wall time {duration(wall)} summed over finished jobs"
        + (f" on {', '.join(devices)}" if devices else "")
    )


def render_page(folder: Folder, title: str | None = None) -> str:
    """The whole dashboard as one HTML document."""
    payload = chart_payload(folder)
    effect_split = "test" if "test" in splits_of(folder.finished) else "val"
    qualitative, report = render_figures(folder)
    curves_note = (
        "Training series per optimiser step; validation metrics per epoch, one chart per decoder. "
        "Hover a line for its run; drag to zoom, double-click to reset."
        if any(r["curves"] for r in payload["runs"])
        else "No curves: no csv/metrics.csv in any job (logger=csv or the default logger writes it)."
    )
    problems = "".join(
        f'<p class="empty">Curves left out: {esc(r.curve_problem)}</p>'
        for r in folder.runs
        if r.curve_problem
    )
    where = folder.root.resolve()
    title = title or f"heatlit dashboard: {where.parent.name}/{where.name}"
    sections = [
        f"<header><h1>{esc(title)}</h1><p>{esc(folder.root)}</p><p>{esc(summary(folder))}; "
        f"page written {esc(when(time.time()))}.</p></header>",
        '<section id="select"><h2>Select runs</h2>'
        + render_filters(folder, payload["decoders"])
        + render_run_list(payload)
        + "</section>",
        f'<section id="curves"><h2>Curves</h2><p class="note">{esc(curves_note)}</p>{problems}'
        '<div class="controls"><label>training series <select id="train-series"></select></label>'
        '<label>validation metric <select id="val-metric"></select></label></div>'
        '<div id="train-chart" class="chart wide"></div><div id="val-charts" class="charts"></div></section>',
        render_grid("final", "Final results", final_table(folder), "No finished run yet."),
        render_grid(
            "effect",
            "Encoding effect",
            effect_table(folder, effect_split),
            "No encoding effect: the finished runs do not have two encodings to pair.",
        ),
        f'<section id="jobs"><h2>Jobs without results</h2>{render_unfinished(folder)}</section>',
        f'<section id="qualitative"><h2>Qualitative results</h2><div class="figures">{qualitative}</div></section>',
        f'<section id="report"><h2>Report figures</h2><div class="figures">{report}</div></section>',
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
        f"<style>{asset('dashboard.css')}</style></head><body>"
        + "".join(sections)
        + f'<script type="application/json" id="dashboard-data">{script_json(payload)}</script>'
        + inline_script(plotly_js())
        + inline_script(asset("dashboard.js"))
        + "</body></html>"
    )
