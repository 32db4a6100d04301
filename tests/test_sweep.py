"""A real sweep through the CLI (Hydra multirun, fast_dev_run-sized), then the report command on it."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from tests.conftest import DEFAULT_DECODERS, ROOT
from tests.test_train import TINY


@pytest.mark.slow
def test_table2_sweep_through_cli_and_report(tmp_path, tmp_path_factory):
    sweep_dir = tmp_path / "sweep"
    data_dir = tmp_path_factory.mktemp("synth-sweep")
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [
        sys.executable,
        "-m",
        "heatlit.train",
        "+sweep=table2_cpu",
        "debug=fast",
        *TINY,
        f"data.source.data_dir={data_dir}",
        f"hydra.sweep.dir={sweep_dir}",
        "encoding.sigma=2.0,-1",  # the sigma=-1 jobs fail their config check: a sweep with crashed jobs
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0  # Hydra reports the failed jobs after running every job
    assert "sigma must be > 0" in proc.stderr
    finished = sorted(p.parent.name for p in sweep_dir.glob("*/results.json"))
    assert len(finished) == 4, proc.stderr[-3000:]

    report = subprocess.run(
        [sys.executable, "-m", "heatlit.report", str(sweep_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr[-2000:]
    with open(sweep_dir / "report" / "table.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * 7  # 4 finished runs x every decoder
    assert {r["model"] for r in rows} == {"hourglass_tiny", "hrnet_tiny"}
    assert {r["encoding"] for r in rows} == {"quant", "unquant"}
    assert {r["decoder"] for r in rows} == set(DEFAULT_DECODERS)
    text = (sweep_dir / "report" / "report.md").read_text()
    assert text.count("failed") >= 4  # the four crashed jobs are listed
    assert (sweep_dir / "report" / "decoders.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "name",
    [
        "table2",
        "table2_synth",
        "table2_cpu",
        "stride",
        "stride_cpu",
        "loss",
        "loss_cpu",
        "representations",
        "representations_cpu",
        "simcc_cpu",
    ],
)
def test_every_sweep_composes_with_its_grid(name):
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"+sweep={name}"], return_hydra_config=True)
    assert cfg.group == name
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN" and len(cfg.hydra.sweeper.params) == 2


def test_sweep_entry_point_end_to_end(tmp_path):
    """``python -m heatlit.sweep``: a one-job grid (both axes pinned) runs in the sweep folder the user named,
    then its report is written there."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [
        sys.executable,
        "-m",
        "heatlit.sweep",
        "table2_cpu",
        "model=hourglass_tiny",
        "encoding=unquant",
        "debug=fast",
        *TINY,
        f"data.source.data_dir={tmp_path / 'data'}",
        "hydra.sweep.dir=sweeps_here/mine",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "multirun").exists()  # not the default multirun/<name>/<timestamp>
    sweep_dir = tmp_path / "sweeps_here" / "mine"
    assert [p.parent.name for p in sweep_dir.glob("*/results.json")] == ["0_hourglass_tiny_unquant_mse"]
    with open(sweep_dir / "report" / "table.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["decoder"] for r in rows] == list(DEFAULT_DECODERS)
    assert {(r["model"], r["encoding"]) for r in rows} == {("hourglass_tiny", "unquant")}
    assert all(0 <= float(r["pckh@0.1"]) <= 100 for r in rows)
    assert f"report: {sweep_dir.relative_to(tmp_path) / 'report' / 'report.md'}" in proc.stdout


def test_sweep_entry_point_rejects_unknown_names(capsys):
    from heatlit.sweep import main

    assert main(["nope"]) == 2
    err = capsys.readouterr().err
    assert "usage: python -m heatlit.sweep <name>" in err and "table2_cpu" in err and "stride" in err
