"""The representations table (``heatlit.report.representations``) on a hand-built sweep with known numbers."""

from __future__ import annotations

import csv
import math
import statistics

import pytest
import yaml

from heatlit.codecs import HeatmapGrid
from heatlit.data.synth import SynthSource
from heatlit.report import collect
from heatlit.report.build import Sweep, report_markdown, write_tables
from heatlit.report.representations import build_table, interval, to_markdown
from heatlit.results import write_results

SEEDS = (1, 2, 3)
# representation -> decoder -> (val pckh@0.1, test pckh@0.1 per seed, test rmse per seed), decode ms
SWEEP = {
    "gaussian": {
        "dark": (50.0, (60.0, 62.0, 58.0), (3.0, 2.8, 3.2), 2.0),
        "argmax": (40.0, (70.0, 70.0, 70.0), (4.0, 4.0, 4.0), 0.5),  # best on test, not on val: not picked
    },
    "simcc": {
        "simcc_refine": (55.0, (65.0, 66.0, 67.0), (2.5, 2.6, 2.4), 0.25),
        "simcc": (54.0, (1, 2, 3), (9, 9, 9), 0.2),
    },
    "udp": {"udp_offset": (30.0, (40.0, 44.0, 48.0), (5.0, 5.5, 6.0), 9.0)},
}


def _write(root):
    for i, (rep, decoders) in enumerate(SWEEP.items()):
        for s, seed in enumerate(SEEDS):
            job = root / f"{i}_{seed}"
            (job / ".hydra").mkdir(parents=True)
            (job / ".hydra" / "overrides.yaml").write_text(
                yaml.safe_dump([f"representation={rep}", f"seed={seed}"])
            )
            val = {d: {"pckh@0.1": v[0], "pckh@0.5": 90.0, "rmse": 1.0} for d, v in decoders.items()}
            test = {d: {"pckh@0.1": v[1][s], "pckh@0.5": 90.0, "rmse": v[2][s]} for d, v in decoders.items()}
            times = {
                d: {"ms_per_batch": v[3] * (1 + s), "batches": 16, "batch_size": 32}
                for d, v in decoders.items()
            }
            write_results(
                job / "results.json",
                {"representation": rep, "encoding": f"enc_{rep}", "model": "hourglass_tiny", "seed": seed},
                {"val": val, "test": test},
                {"wall_time_s": 60.0, "device": "cpu"},
                grid=HeatmapGrid((80, 160), 4, mapping="udp" if rep == "udp" else "aligned").describe(),
                dataset=SynthSource.description.to_dict(),
                decode_time={"test": times},
            )


def test_interval_is_the_student_t_interval():
    mean, half = interval([60.0, 62.0, 58.0])
    assert mean == 60.0 and half == pytest.approx(4.303 * 2.0 / math.sqrt(3), rel=1e-4)
    assert interval([1.0]) == (1.0, math.inf)
    assert interval([2.0] * 40)[1] == 0.0
    with pytest.raises(ValueError):
        interval([])


def test_table_picks_on_val_ranks_on_test_and_pairs_by_seed(tmp_path):
    _write(tmp_path)
    table = build_table(tmp_path)
    assert table.columns == ["representation"] and table.metrics == ["pckh@0.1", "pckh@0.5", "rmse"]
    ranked = table.ranked()
    assert [(e.key[0], e.decoder) for e in ranked] == [
        ("simcc", "simcc_refine"),
        ("gaussian", "dark"),
        ("udp", "udp_offset"),
    ]
    simcc, gaussian, udp = ranked
    assert simcc.stat("pckh@0.1") == pytest.approx((66.0, 4.303 / math.sqrt(3)), rel=1e-4)
    # paired by seed: simcc - gaussian = (5, 4, 9)
    diffs = [5.0, 4.0, 9.0]
    assert simcc.delta["pckh@0.1"][:2] == pytest.approx(
        (statistics.fmean(diffs), 4.303 * statistics.stdev(diffs) / math.sqrt(3)), rel=1e-4
    )
    assert "pckh@0.1" not in gaussian.delta  # the reference
    assert udp.ms_per_batch == 18.0 and udp.batch_size == 32  # median of 9, 18, 27
    text = to_markdown(table)
    assert "| 1 | simcc | simcc_refine | 3 | 66.00 ± 2.48 |" in text
    assert "| 3 | udp | udp_offset | 3 |" in text and "ref." in text and "18.00 (B=32)" in text
    sweep = Sweep(tmp_path, "test", *collect(tmp_path, "test"))
    assert "Representations: each with its best decoder" in report_markdown(sweep, {}, [])
    (tmp_path / "report").mkdir()
    written = write_tables(sweep, tmp_path / "report")
    rows = list(csv.DictReader(written["representations.csv"].open()))
    assert [r["representation"] for r in rows] == ["simcc", "gaussian", "udp"]
    assert float(rows[2]["rmse"]) == pytest.approx(5.5) and rows[0]["picked_on"] == "val"
