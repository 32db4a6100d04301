"""README's result tables: regenerated from run folders, and checked against a fresh `make train`."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from heatlit.per_sample import PerSample, write_per_sample
from heatlit.report.readme import (
    README,
    ReadmeError,
    compare_default,
    decoders_table,
    default_table,
    main,
    read_block,
    study_table,
    update,
)
from heatlit.results import write_results

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, dark: float = 13.724) -> Path:
    run = tmp_path / "run"
    results = {
        "val": {"dark": {"pckh@0.1": 1.0}},
        "test": {
            "argmax": {"pckh@0.1": 8.755, "pckh@0.5": 72.69, "auc": 36.56, "rmse": 6.92},
            "dark": {"pckh@0.1": dark, "pckh@0.5": 74.02, "auc": 39.5, "rmse": 6.649},
        },
    }
    write_results(run / "results.json", {"model": "hourglass_tiny"}, results)
    return run


def _readme(tmp_path: Path, body: str = "old\n") -> Path:
    path = tmp_path / "README.md"
    path.write_text(f"# x\n\nbefore\n<!-- results:default -->\n{body}<!-- /results:default -->\nafter\n")
    return path


def test_default_table_prints_every_decoder_with_two_decimals(tmp_path):
    assert default_table(_run(tmp_path)) == (
        "| decoder | PCKh@0.1 ↑ | PCKh@0.5 ↑ | AUC ↑ | RMSE (px) ↓ |\n"
        "| --- | ---: | ---: | ---: | ---: |\n"
        "| argmax | 8.76 | 72.69 | 36.56 | 6.92 |\n"
        "| dark | 13.72 | 74.02 | 39.50 | 6.65 |\n"
    )


def test_update_then_check_round_trips_and_check_names_each_difference(tmp_path):
    readme = _readme(tmp_path)
    assert update(readme, {"default": _run(tmp_path)}) == ["default"]
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n<!-- results:default -->\n| decoder |") and text.endswith(
        "<!-- /results:default -->\nafter\n"
    )
    assert compare_default(text, tmp_path / "run", readme) == []
    assert main(["--readme", str(readme), "check", str(tmp_path / "run")]) == 0

    other = tmp_path / "other"
    other.mkdir()
    _run(other, dark=14.8)
    assert compare_default(text, other / "run", readme) == ["dark PCKh@0.1 ↑: README 13.72, run 14.80"]
    assert main(["--readme", str(readme), "check", str(other / "run")]) == 1


def test_missing_block_or_results_are_one_line_errors(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no blocks\n")
    with pytest.raises(ReadmeError, match=r"README.md: no <!-- results:default -->"):
        read_block(readme.read_text(), "default", readme)
    assert main(["--readme", str(readme), "check", str(_run(tmp_path))]) == 1
    assert main(["--readme", str(_readme(tmp_path)), "check", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "nowhere/results.json" in err[1]


def test_study_table_gives_paired_t_intervals_and_bolds_resolved_cells(tmp_path):
    values = {1314: (10.0, 12.0), 1315: (11.0, 14.0), 1316: (12.0, 16.0)}  # differences 2, 3, 4
    for num, (seed, pair) in enumerate(values.items()):
        for encoding, value in zip(("quant", "unquant"), pair):
            job = tmp_path / f"{num}_{encoding}"
            (job / ".hydra").mkdir(parents=True)
            (job / ".hydra" / "overrides.yaml").write_text(f"- encoding={encoding}\n- seed={seed}\n")
            choices = {"model": "hourglass_tiny", "encoding": encoding, "seed": seed}
            results = {"test": {"dark": {"pckh@0.1": value, "rmse": 5.0}}}
            (job / "results.json").write_text(json.dumps({"choices": choices, "results": results}))
    half = 4.302653 / math.sqrt(3)
    table = study_table(tmp_path, ["pckh@0.1", "rmse"])
    assert table.splitlines() == [
        "Δ = unquant − quant, mean ± half-width (95% CI, Student t, n=3 seeds); **bold**: the interval excludes 0.",
        "",
        "| decoder | Δ PCKh@0.1 ↑ | Δ RMSE (px) ↓ |",
        "| --- | ---: | ---: |",
        f"| dark | **+3.00 ± {half:.2f}** | +0.00 ± 0.00 |",
    ]


def test_decoders_table_is_the_paired_bootstrap_against_argmax(tmp_path):
    """40 samples x 2 joints, normaliser 10: argmax errs 2 px everywhere, dark 0.5 px. PCKh@0.1 (1 px):
    0 vs 100 %; PCKh@0.5 (5 px): both 100 %; RMSE 2 vs 0.5. Constant differences: zero-width intervals."""
    n, k = 40, 2
    errors = {"argmax": np.full((n, k), 2.0), "dark": np.full((n, k), 0.5)}
    write_per_sample(tmp_path / "per_sample.npz", PerSample.of(errors, np.ones((n, k)), np.full(n, 10.0)))
    results = {
        "argmax": {"pckh@0.1": 0.0, "pckh@0.5": 100.0, "rmse": 2.0},
        "dark": {"pckh@0.1": 100.0, "pckh@0.5": 100.0, "rmse": 0.5},
    }
    write_results(tmp_path / "results.json", {}, {"test": results})
    assert decoders_table(tmp_path, ["pckh@0.1", "pckh@0.5", "rmse"]).splitlines() == [
        "Δ = decoder − argmax on the same forward pass (95% CI, percentile bootstrap, n=40 test samples); "
        "**bold**: the interval excludes 0.",
        "",
        "| decoder | Δ PCKh@0.1 ↑ | Δ PCKh@0.5 ↑ | Δ RMSE (px) ↓ |",
        "| --- | ---: | ---: | ---: |",
        "| dark | **+100.00 [+100.00, +100.00]** | +0.00 [+0.00, +0.00] | **-1.50 [-1.50, -1.50]** |",
    ]
    results["dark"]["rmse"] = 0.7  # results.json that per_sample.npz does not recompute: refused
    write_results(tmp_path / "results.json", {}, {"test": results})
    with pytest.raises(ReadmeError, match="disagrees with results.json"):
        decoders_table(tmp_path)


@pytest.mark.parametrize(
    "page, blocks",
    [
        ("README.md", ("default", "decoders")),
        ("docs/STUDY.md", ("study",)),
        ("docs/REPRESENTATIONS.md", ("representations",)),
    ],
)
def test_pages_have_the_blocks_make_results_writes(page, blocks):
    path = ROOT / page
    for name in blocks:
        assert "STALE" not in read_block(path.read_text(), name, path)  # the placeholder before a first run


@pytest.mark.slow
def test_readme_default_table_is_what_make_train_writes(tmp_path):
    """`make check-readme`: the default experiment trained afresh matches README's table cell for cell.

    Bit-stable only on the machine and torch thread count that produced README's table, and with the CMU clip
    the rendered data include when it is found (see README)."""
    from heatlit.data.synth import default_mocap_path

    if default_mocap_path() is None:
        pytest.skip("README's table was made with the CMU clip (../shared/data/mocap); it is not here")
    run = tmp_path / "run"
    subprocess.run(
        [sys.executable, "-m", "heatlit.train", f"output_dir={run}", "logger=csv"], cwd=ROOT, check=True
    )
    assert compare_default(README.read_text(), run) == []
