"""``python -m heatlit.dashboard DIR [--out page.html]``: one offline HTML page for a run or a sweep.

Modules: :mod:`~heatlit.dashboard.collect` (jobs, curves, images; why a job has no results is the report's
:mod:`heatlit.report.failures`), :mod:`~heatlit.dashboard.tables` (final and encoding-effect tables, their
intervals from :mod:`heatlit.report.stats`), :mod:`~heatlit.dashboard.page` (HTML), :mod:`~heatlit.dashboard.cli`.
"""

from heatlit.dashboard.cli import write_dashboard

__all__ = ["write_dashboard"]
