"""Hydra plugin: put the repository's ``sweeps/`` folder on the config search path.

With it, ``python -m heatlit.train -m +sweep=table2_cpu`` finds ``sweeps/sweep/table2_cpu.yaml`` from any
working directory of a fresh clone, without copying sweep files into ``conf/``.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"


class HeatlitSweepsSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if SWEEPS.is_dir():
            search_path.append(provider="heatlit-sweeps", path=f"file://{SWEEPS}")
