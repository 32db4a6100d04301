"""The layer contract (docs/ARCHITECTURE.md): which package may import which, over the real import graph."""

from __future__ import annotations

import logging
import tomllib

import pytest

from tests.conftest import ROOT

importlinter_cli = pytest.importorskip("importlinter.cli", reason="import-linter is a dev dependency")

PYPROJECT = ROOT / "pyproject.toml"

# What the issue asked the contract to state; each must stay a contract of pyproject.toml.
REQUIRED = {
    "codecs import nothing of heatlit",
    "models import codecs only",
    "data imports codecs and body",
    "report reads results only",
    "real data, the data module and the source base do not import the synthetic generator",
}


def lint_imports(config) -> int:
    """Run import-linter in-process, leaving logging as it was (its CLI disables existing loggers)."""
    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]
    disabled = [lg.disabled for lg in loggers]
    try:
        return importlinter_cli.lint_imports(config_filename=str(config), no_cache=True)
    finally:
        for lg, was in zip(loggers, disabled, strict=True):
            lg.disabled = was


def test_every_layer_contract_is_declared():
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    assert REQUIRED <= {c["name"] for c in contracts}


def test_the_import_graph_keeps_every_contract(capsys):
    assert lint_imports(PYPROJECT) == 0, capsys.readouterr().out[-3000:]


def test_a_broken_contract_is_caught(tmp_path):
    """The checker does fail: training imports the data package, so forbidding it must be reported."""
    config = tmp_path / "broken.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "heatlit"\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "training without data (false)"\ntype = "forbidden"\n'
        'source_modules = ["heatlit.training"]\nforbidden_modules = ["heatlit.data"]\n'
    )
    assert lint_imports(config) == 1
