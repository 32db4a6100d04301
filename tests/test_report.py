"""``heatlit.report`` on hand-built multirun directories with known numbers."""

from __future__ import annotations

import csv
import json
import runpy
import sys

import pytest
import yaml

from heatlit.codecs import HeatmapGrid
from heatlit.data.synth import SynthSource
from heatlit.report import collect, effect_table, results_table, varying_axes, write_report
from heatlit.report.build import Sweep, write_tables
from heatlit.report.cli import main
from heatlit.report.collect import unique_jobs
from heatlit.results import write_results

DECODERS = ("argmax", "standard", "dark", "com", "soft_argmax")
MODELS = ("hourglass_tiny", "hrnet_tiny")
ENCODINGS = ("quant", "unquant")

# (pckh@0.1, pckh@0.5, rmse) per model, encoding and decoder: the test split of a 2 x 2 sweep.
TABLE2 = {
    ("hourglass_tiny", "quant"): {
        "argmax": (40.0, 90.0, 4.0),
        "standard": (45.5, 91.0, 3.5),
        "dark": (50.25, 92.0, 3.0),
        "com": (38.0, 89.5, 4.5),
        "soft_argmax": (47.0, 91.5, None),
    },
    ("hourglass_tiny", "unquant"): {
        "argmax": (41.0, 90.5, 3.75),
        "standard": (48.0, 92.5, 3.0),
        "dark": (58.75, 94.0, 2.25),
        "com": (39.5, 89.0, 4.25),
        "soft_argmax": (52.0, 93.0, 2.5),
    },
    ("hrnet_tiny", "quant"): {
        "argmax": (55.0, 95.0, 3.0),
        "standard": (57.0, 95.5, 2.75),
        "dark": (60.0, 96.0, 2.5),
        "com": (50.0, 94.0, 3.5),
        "soft_argmax": (58.0, 95.25, 2.625),
    },
    ("hrnet_tiny", "unquant"): {
        "argmax": (54.5, 95.0, 3.125),
        "standard": (59.0, 96.0, 2.5),
        "dark": (66.5, 97.5, 1.875),
        "com": (52.0, 94.5, 3.25),
        "soft_argmax": (63.0, 96.5, 2.25),
    },
}
METRICS = ("pckh@0.1", "pckh@0.5", "rmse")


def metrics_of(values):
    return dict(zip(METRICS, values)) | {"auc": 50.0}


def write_job(
    root, name, overrides, choices=None, test=None, raw=None, wall=100.0, device="cpu", qualitative=False
):
    """A job directory as Hydra and heatlit.train leave it; ``raw`` replaces results.json's text."""
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    (job / ".hydra" / "config.yaml").write_text("seed: 1314\n")
    if raw is not None:
        (job / "results.json").write_text(raw)
    elif test is not None:
        write_results(
            job / "results.json",
            {"loss": "mse", "data": "synth", "sigma": 2.0, "stride": 4, "seed": 1314, **(choices or {})},
            {"val": test, "test": test},
            {"wall_time_s": wall, "device": device},
            grid=HeatmapGrid((80, 160), (choices or {}).get("stride", 4)).describe(),
            dataset=SynthSource.description.to_dict(),
        )
    if qualitative:
        write_png(job / "qualitative.png")
    return job


def write_png(path):
    """A noisy image, so the grid of them is a PNG of realistic size."""
    import numpy as np
    from matplotlib.image import imsave

    imsave(path, np.random.default_rng(0).random((120, 200)), cmap="magma")


def table2_sweep(root, qualitative=False):
    """The 2 x 2 grid of TABLE2, one job per model x encoding, as ``multirun/<group>/<timestamp>``."""
    for num, (model, encoding) in enumerate((m, e) for m in MODELS for e in ENCODINGS):
        test = {d: metrics_of(v) for d, v in TABLE2[model, encoding].items()}
        write_job(
            root,
            f"{num}_{model}_{encoding}_mse",
            [f"model={model}", f"encoding={encoding}"],
            {"model": model, "encoding": encoding},
            test,
            wall=150.0 + num,
            qualitative=qualitative,
        )
    (root / "multirun.yaml").write_text(
        yaml.safe_dump(
            {"hydra": {"overrides": {"task": ["model=hourglass_tiny,hrnet_tiny", "encoding=quant,unquant"]}}}
        )
    )
    return root


@pytest.fixture(scope="module")
def table2_report(tmp_path_factory):
    """The 2 x 2 sweep (three jobs with a qualitative.png) and its report, written once: plots cost time."""
    root = table2_sweep(tmp_path_factory.mktemp("sweep") / "mr", qualitative=True)
    (root / "1_hourglass_tiny_unquant_mse" / "qualitative.png").unlink()  # skipped, not an error
    return root, write_report(root)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_table2_grid_has_every_row_with_its_values(tmp_path):
    rows, failed = collect(table2_sweep(tmp_path / "mr"))
    assert failed == [] and len(rows) == 20
    axes = varying_axes(unique_jobs(rows))
    assert axes == ["model", "encoding"]  # loss, stride, seed are the same for every job
    table = results_table(rows, axes)
    assert table.keys == ["model", "encoding", "decoder"]
    assert table.metrics == ["pckh@0.1", "pckh@0.5", "rmse"]  # Table 2's columns; auc only in the CSV
    expected = [(m, e, d, *TABLE2[m, e][d]) for m in MODELS for e in ENCODINGS for d in DECODERS]
    got = [tuple(r[k] for k in [*table.keys, *table.metrics]) for r in table.records]
    assert got == expected


def test_markdown_table(table2_report):
    _, written = table2_report
    lines = written["table.md"].read_text().splitlines()
    body = [line for line in lines if line.startswith("| ") and "---" not in line][1:]
    assert len(body) == 20
    assert lines[2] == "| model | encoding | decoder | PCKh@0.1 ↑ | PCKh@0.5 ↑ | RMSE ↓ |"
    # the best value per model is bold; a missing one is a dash
    assert "| hourglass_tiny | quant | soft_argmax | 47.00 | 91.50 | – |" in body
    assert "| hrnet_tiny | unquant | dark | **66.50** | **97.50** | **1.88** |" in body
    assert "| hourglass_tiny | quant | argmax | 40.00 | 90.00 | 4.00 |" in body


def test_encoding_effect_is_unquant_minus_quant(tmp_path, table2_report):
    rows, _ = collect(table2_sweep(tmp_path / "mr"))
    effect = effect_table(rows, varying_axes(unique_jobs(rows)))
    assert effect.title == "encoding effect: unquant − quant"
    assert effect.keys == ["model", "decoder"]
    assert len(effect.records) == 10
    by_key = {(r["model"], r["decoder"]): tuple(r[m] for m in METRICS) for r in effect.records}
    # by hand from TABLE2
    assert by_key["hourglass_tiny", "argmax"] == pytest.approx((1.0, 0.5, -0.25))
    assert by_key["hourglass_tiny", "dark"] == pytest.approx((8.5, 2.0, -0.75))
    assert by_key["hourglass_tiny", "soft_argmax"][:2] == pytest.approx((5.0, 1.5))
    assert by_key["hourglass_tiny", "soft_argmax"][2] is None  # quant's rmse is null
    assert by_key["hrnet_tiny", "argmax"] == pytest.approx((-0.5, 0.0, 0.125))
    assert by_key["hrnet_tiny", "dark"] == pytest.approx((6.5, 1.5, -0.625))
    assert by_key["hrnet_tiny", "com"] == pytest.approx((2.0, 0.5, -0.25))
    text = table2_report[1]["encoding_effect.md"].read_text()
    assert "| hrnet_tiny | dark | +6.50 | +1.50 | -0.62 |" in text  # -0.625 rounds half to even
    assert "| hourglass_tiny | soft_argmax | +5.00 | +1.50 | – |" in text


def test_csv_parses_back_to_the_same_numbers(table2_report):
    _, written = table2_report
    records = read_csv(written["table.csv"])
    assert len(records) == 20
    assert list(records[0]) == ["model", "encoding", "decoder", "pckh@0.1", "pckh@0.5", "auc", "rmse", "job"]
    for r in records:
        expected = TABLE2[r["model"], r["encoding"]][r["decoder"]]
        got = tuple(float(r[m]) if r[m] else None for m in METRICS)
        assert got == expected
        assert float(r["auc"]) == 50.0
        assert r["job"].endswith(f"{r['model']}_{r['encoding']}_mse")
    effect = read_csv(written["encoding_effect.csv"])
    dark = next(r for r in effect if r["model"] == "hrnet_tiny" and r["decoder"] == "dark")
    assert float(dark["pckh@0.1"]) == pytest.approx(6.5) and float(dark["rmse"]) == pytest.approx(-0.625)


def test_report_md_and_pngs(table2_report):
    root, written = table2_report
    assert written["report.md"].parent == root / "report"
    for name in ("decoders.png", "qualitative.png"):
        assert written[name].stat().st_size > 20_000, name
    assert "stride.png" not in written  # stride does not vary
    report = written["report.md"].read_text()
    assert "# Sweep report: mr" in report
    assert "- jobs: 4 finished, 0 failed" in report
    assert "- total wall time: 10 min 06 s" in report  # 150 + 151 + 152 + 153 s
    assert "- device: cpu" in report
    # what the jobs' results.json say about their data and heatmaps
    assert "- data: synth: 18 keypoints, pckh normalised by the head segment (neck to head top), px" in report
    assert "- heatmaps: 20x40 at stride 4 from 80x160 inputs" in report
    assert "model=hourglass_tiny,hrnet_tiny encoding=quant,unquant" in report
    assert "| hrnet_tiny | unquant | dark | **66.50** |" in report
    assert "## Encoding effect: unquant − quant" in report
    assert "None: every job finished." in report
    for name in ("decoders.png", "qualitative.png"):
        assert f"]({name})" in report


def test_failed_jobs_are_listed_and_the_rest_reported(tmp_path, capsys):
    root = table2_sweep(tmp_path / "mr")
    write_job(root, "4_hrnet_tiny_quant_both", ["model=hrnet_tiny", "encoding=quant", "loss=both"])
    write_job(
        root,
        "5_hrnet_tiny_unquant_both",
        ["model=hrnet_tiny", "encoding=unquant", "loss=both"],
        raw='{"choices": {"model": "hrnet_tiny"}, "results": {"test": {"dark": {"pckh@0.1": 1',
    )
    rows, failed = collect(root)
    assert len(rows) == 20
    assert [(f.path.name, f.status.split(":")[0]) for f in failed] == [
        ("4_hrnet_tiny_quant_both", "failed"),
        ("5_hrnet_tiny_unquant_both", "unreadable results.json"),
    ]
    assert failed[0].status == "failed: no results.json"
    assert failed[1].overrides == ("model=hrnet_tiny", "encoding=unquant", "loss=both")

    assert main([str(root)]) == 0
    out = capsys.readouterr().out
    assert "4_hrnet_tiny_quant_both" in out and "failed: no results.json" in out
    assert "5_hrnet_tiny_unquant_both" in out and "unreadable results.json" in out
    report = (root / "report" / "report.md").read_text()
    assert "- jobs: 4 finished, 2 failed" in report
    assert (
        "| `4_hrnet_tiny_quant_both` | `model=hrnet_tiny encoding=quant loss=both` | failed: no results.json | "
        "no log line |" in report
    )
    assert "| `5_hrnet_tiny_unquant_both` |" in report and "unreadable results.json: " in report
    assert len(read_csv(root / "report" / "table.csv")) == 20


def test_failed_jobs_are_named_with_their_last_error_line(tmp_path, capsys):
    """A crashed job's train.log holds its traceback (heatlit's entry points record it): the report names the job
    and that line, on the console and in report.md; a job whose logs name no error shows its last log line."""
    root = table2_sweep(tmp_path / "mr")
    crashed = write_job(root, "4_hrnet_tiny_quant_both", ["model=hrnet_tiny", "encoding=quant", "loss=both"])
    (crashed / "train.log").write_text(
        "[2026-01-01 10:00:00,000][heatlit.training.run][INFO] - heatlit.train model=hrnet_tiny\n"
        "[2026-01-01 10:05:00,000][heatlit.job][ERROR] - job failed\n"
        "Traceback (most recent call last):\n"
        '  File "heatlit/training/run.py", line 280, in train\n'
        "    trainer.fit(module)\n"
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
    )
    quiet = write_job(
        root, "5_hrnet_tiny_unquant_both", ["model=hrnet_tiny", "encoding=unquant", "loss=both"]
    )
    (quiet / "train.log").write_text("[2026-01-01 10:00:00,000][heatlit.training.run][INFO] - epoch 3\n")
    _, failed = collect(root)
    assert [(f.line, f.line_kind) for f in failed] == [
        ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", "last error line"),
        ("[2026-01-01 10:00:00,000][heatlit.training.run][INFO] - epoch 3", "last log line"),
    ]
    assert main([str(root)]) == 0
    out = capsys.readouterr().out
    assert (
        "failed job 4_hrnet_tiny_quant_both [model=hrnet_tiny encoding=quant loss=both]: failed: no results.json; "
        "last error line (train.log): torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    ) in out
    report = (root / "report" / "report.md").read_text()
    assert (
        "| failed: no results.json | torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (train.log) |"
        in report
    )
    assert (
        "| (last log line) [2026-01-01 10:00:00,000][heatlit.training.run][INFO] - epoch 3 (train.log) |"
        in report
    )


def test_a_finished_job_without_the_split_is_failed(tmp_path):
    root = table2_sweep(tmp_path / "mr")
    payload = json.loads((root / "0_hourglass_tiny_quant_mse" / "results.json").read_text())
    del payload["results"]["test"]
    (root / "0_hourglass_tiny_quant_mse" / "results.json").write_text(json.dumps(payload))
    rows, failed = collect(root)
    assert len(rows) == 15
    assert failed[0].status == "no 'test' results in results.json (has: val)"
    assert len(collect(root, split="val")[0]) == 20


def test_stride_sweep_adds_the_axis_and_plots_it(tmp_path):
    root = tmp_path / "stride"
    num = 0
    for stride in (2, 4, 16):
        for encoding in ENCODINGS:
            quant_error = 0.3 * stride if encoding == "quant" else 0.1 * stride
            test = {
                d: {"pckh@0.1": 70.0 - 2 * stride - i, "pckh@0.5": 95.0, "rmse": 1.0 + quant_error + 0.1 * i}
                for i, d in enumerate(DECODERS)
            }
            write_job(
                root,
                f"{num}_simplebaseline_tiny_{encoding}_mse",
                ["+sweep=stride_cpu", f"data.stride={stride}", f"encoding={encoding}"],
                {"model": "simplebaseline_tiny", "encoding": encoding, "stride": stride},
                test,
            )
            num += 1
    rows, failed = collect(root)
    # stride (choices) and data.stride (overrides) carry the same values: one axis, not two
    assert varying_axes(unique_jobs(rows)) == ["model", "encoding", "stride"]
    written = write_report(root, tmp_path / "out")
    assert written["stride.png"].stat().st_size > 20_000
    assert written["decoders.png"].stat().st_size > 20_000
    records = read_csv(written["table.csv"])
    assert len(records) == 30
    assert [r["stride"] for r in records[:15:5]] == ["2", "4", "16"]  # by value, not as text ("16" < "2")
    effect = read_csv(written["encoding_effect.csv"])
    sixteen = next(r for r in effect if r["stride"] == "16" and r["decoder"] == "argmax")
    assert float(sixteen["rmse"]) == pytest.approx(-3.2)  # (0.1 - 0.3) * 16


def test_loss_and_head_axes_are_detected(tmp_path):
    root = tmp_path / "loss"
    for num, (loss, head) in enumerate((lo, h) for lo in ("mse", "integral") for h in ("2d", "3d")):
        test = {
            d: {"pckh@0.1": 50.0 + num, "rmse": 2.0} | ({"mpjpe": 80.0 - num} if head == "3d" else {})
            for d in ("argmax", "dark")
        }
        write_job(
            root,
            f"{num}_job",
            [f"loss={loss}", f"head={head}"],
            {"model": "simplebaseline_tiny", "encoding": "unquant", "loss": loss, "head": head},
            test,
        )
    rows, _ = collect(root)
    axes = varying_axes(unique_jobs(rows))
    assert axes == ["model", "encoding", "loss", "head"]
    table = results_table(rows, axes)
    assert table.metrics == ["pckh@0.1", "rmse", "mpjpe"]
    # rows sorted by loss (integral, mse) then head: jobs 2, 3, 0, 1
    assert [r["mpjpe"] for r in table.records if r["decoder"] == "dark"] == [None, 77.0, None, 79.0]
    assert effect_table(rows, axes) is None  # one encoding: nothing to compare
    # the tables only: the figures are tested above and cost time
    written = write_tables(Sweep(root, "test", rows, []), tmp_path)
    assert "encoding_effect.md" not in written
    assert "MPJPE (mm) ↓" in written["table.md"].read_text()


def test_no_finished_job_exits_1_naming_the_dir(tmp_path, capsys):
    root = tmp_path / "crashed"
    write_job(root, "0_hrnet_tiny_quant_mse", ["model=hrnet_tiny"])
    assert main([str(root)]) == 1
    err = capsys.readouterr().err
    assert str(root) in err and "no finished job" in err and "failed: no results.json" in err
    assert not (root / "report").exists()

    missing = tmp_path / "nowhere"
    assert main([str(missing)]) == 1
    assert f"{missing}: no such directory" in capsys.readouterr().err

    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 1
    assert "no Hydra job" in capsys.readouterr().err


def test_python_m_entry_point(tmp_path, monkeypatch):
    root = tmp_path / "run"  # a single run's directory is a sweep of one job
    write_job(
        root,
        ".",
        ["model=hrnet_tiny"],
        {"model": "hrnet_tiny", "encoding": "unquant"},
        {"dark": metrics_of(TABLE2["hrnet_tiny", "unquant"]["dark"])},
    )
    monkeypatch.setattr(
        sys, "argv", ["heatlit.report", str(root), "--out", str(tmp_path / "out"), "--split", "val"]
    )
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("heatlit.report", run_name="__main__", alter_sys=True)
    assert exit_info.value.code == 0
    assert (tmp_path / "out" / "report.md").is_file()
    assert "- split: `val`" in (tmp_path / "out" / "report.md").read_text()


def test_version_1_results_still_read(tmp_path):
    """Files written before results.json had a version (no grid, no dataset) are reported as before."""
    root = table2_sweep(tmp_path / "mr")
    for path in root.glob("*/results.json"):
        payload = json.loads(path.read_text())
        for key in ("version", "grid", "dataset"):
            del payload[key]
        path.write_text(json.dumps(payload))
    rows, failed = collect(root)
    assert len(rows) == 20 and not failed and rows[0].job.grid is None
    report = write_report(root)["report.md"].read_text()
    assert "| hrnet_tiny | unquant | dark | **66.50** |" in report and "- heatmaps:" not in report
    path = root / "0_hourglass_tiny_quant_mse" / "results.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "version": 99}))
    assert "version 99" in collect(root)[1][0].status
