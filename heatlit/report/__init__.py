"""Sweep reports: ``python -m heatlit.report multirun/<group>/<timestamp>``.

Reads every job of a Hydra multirun (``.hydra/overrides.yaml`` + ``results.json``), and writes the
reproduction's Table 2 (rows: model x encoding x decoder, plus whatever else the sweep varies) as
Markdown and CSV, the encoding effect (unquant - quant), figures and a ``report.md`` tying them
together. Failed or unfinished jobs are listed, never fatal.

API:
    rows, failed = collect(multirun_dir)            # one Row per finished job x decoder
    written = write_report(multirun_dir, out_dir)   # {"table.md": Path, "report.md": Path, ...}
"""

from heatlit.report.build import write_report
from heatlit.report.collect import FailedJob, Job, ReportError, Row, collect, varying_axes
from heatlit.report.tables import effect_table, results_table

__all__ = [
    "FailedJob",
    "Job",
    "ReportError",
    "Row",
    "collect",
    "effect_table",
    "results_table",
    "varying_axes",
    "write_report",
]
