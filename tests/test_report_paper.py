"""The reproduction report's own layout (table2.md, table3.md, claims.md) on hand-built sweeps with known numbers."""

from __future__ import annotations

import csv
import math

from heatlit.per_sample import write_per_sample
from heatlit.report import collect, write_report
from heatlit.report.build import Sweep
from heatlit.report.paper import load_paper, write_paper
from tests.test_report import table2_sweep, write_job
from tests.test_report_seeds import per_sample

METRICS = ("pckh@0.1", "pckh@0.5", "rmse")
# SH_4S (full-size `hourglass`) w/ and w/o quant, every decoder on one forward pass: (PCKh-0.1, PCKh-0.5, RMSE).
# Built so that DARK loses three comparisons to CoM (Claim 1 not held), Standard ties once across encodings
# (Claim 2 not resolved) and CoM has the lower RMSE on the best model (the observation held).
RUNS = {
    "quant": {
        "argmax": (40.0, 70.0, 4.0),
        "standard_top2": (41.0, 70.5, 3.9),
        "standard": (42.0, 71.0, 3.8),
        "com": (43.0, 72.0, 3.5),
        "dark": (44.0, 71.5, 3.6),
        "soft_argmax": (45.0, 73.0, 3.4),
    },
    "unquant": {
        "argmax": (41.0, 70.5, 3.75),
        "standard_top2": (42.5, 70.5, 3.75),
        "standard": (43.0, 71.5, 3.6),
        "com": (44.0, 72.5, 3.25),
        "dark": (46.0, 73.0, 3.5),
        "soft_argmax": (47.0, 74.0, 3.1),
    },
}


def sweep_of(root, runs=RUNS, model="hourglass", seeds=(1314,)):
    """One job per encoding (and seed), as heatlit.train leaves them."""
    num = 0
    for seed in seeds:
        for encoding, decoders in runs.items():
            test = {d: dict(zip(METRICS, v)) for d, v in decoders.items()}
            overrides = [f"model={model}", f"encoding={encoding}"] + (
                [f"seed={seed}"] if len(seeds) > 1 else []
            )
            write_job(
                root,
                f"{num}_{model}_{encoding}",
                overrides,
                {"model": model, "encoding": encoding, "seed": seed},
                test,
            )
            num += 1
    return root


def paper_files(root, tmp_path):
    rows, failed = collect(root)
    sweep = Sweep(root, "test", rows, failed)
    out = tmp_path / "out"
    out.mkdir()
    return write_paper(sweep.rows, sweep.axes, sweep.split, out)


TABLE2_MD = """\
# Table 2 in the report's layout

Ours: test split of synth; 2 run(s), seed(s) 1314. The report's: HUMAN4D test split, seed 000, the reproduction report: Table 2 (sec. 4.1) and Table 3 (sec. 4.2.1).
PCKh in percent. RMSE: ours in input pixels; the report's unit is not stated (docs/REPRODUCTION.md).

| Model + Coordinate Decoding | PCKh-0.1 ↑ | report | PCKh-0.5 ↑ | report | RMSE ↓ | report |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
| SH_4S (w/ quant) + ArgMax | 40.00 | 35.38 | 70.00 | 68.14 | 4.00 | 4.12 |
| SH_4S (w/o quant) + ArgMax | 41.00 | 39.80 | 70.50 | 68.78 | 3.75 | 3.75 |
| SH_4S (w/ quant) + Standard | 41.00 | 36.37 | 70.50 | 68.36 | 3.90 | 4.07 |
| SH_4S (w/o quant) + Standard | 42.50 | 41.18 | 70.50 | 69.05 | 3.75 | 3.69 |
| SH_4S (w/ quant) + CoM | 43.00 | 37.77 | 72.00 | 70.35 | 3.50 | 3.87 |
| SH_4S (w/o quant) + CoM | 44.00 | 44.24 | 72.50 | 71.45 | 3.25 | 3.33 |
| SH_4S (w/ quant) + DARK | 44.00 | 39.54 | 71.50 | 70.75 | 3.60 | 3.87 |
| SH_4S (w/o quant) + DARK | 46.00 | 45.17 | 73.00 | 71.65 | 3.50 | 3.47 |
| HRNet_4S (w/ quant) + ArgMax | – | 37.29 | – | 68.10 | – | 3.93 |
| HRNet_4S (w/o quant) + ArgMax | – | 39.19 | – | 68.60 | – | 3.85 |
| HRNet_4S (w/ quant) + Standard | – | 38.48 | – | 68.35 | – | 3.87 |
| HRNet_4S (w/o quant) + Standard | – | 40.50 | – | 68.90 | – | 3.79 |
| HRNet_4S (w/ quant) + CoM | – | 33.95 | – | 68.38 | – | 3.94 |
| HRNet_4S (w/o quant) + CoM | – | 36.77 | – | 70.21 | – | 3.79 |
| HRNet_4S (w/ quant) + DARK | – | 41.73 | – | 70.29 | – | 3.65 |
| HRNet_4S (w/o quant) + DARK | – | 44.83 | – | 71.52 | – | 3.55 |

## Decoders the report did not score

| Model + Coordinate Decoding | PCKh-0.1 ↑ | PCKh-0.5 ↑ | RMSE ↓ |
| --- | ---: | ---: | ---: |
| SH_4S (w/ quant) + standard | 42.00 | 71.00 | 3.80 |
| SH_4S (w/ quant) + soft_argmax | 45.00 | 73.00 | 3.40 |
| SH_4S (w/o quant) + standard | 43.00 | 71.50 | 3.60 |
| SH_4S (w/o quant) + soft_argmax | 47.00 | 74.00 | 3.10 |
"""

TABLE3_MD = """\
# Table 3 in the report's layout: the best model, CoM vs DARK

Ours: test split of synth; 2 run(s), seed(s) 1314. The report's: HUMAN4D test split, seed 000, the reproduction report: Table 2 (sec. 4.1) and Table 3 (sec. 4.2.1).
PCKh in percent. RMSE: ours in input pixels; the report's unit is not stated (docs/REPRODUCTION.md).
Best model here: SH_4S (w/o quant) (highest DARK PCKh-0.1); the report's: SH_4S (w/o quant).

| Model + Coordinate Decoding | PCKh-0.1 ↑ | report | PCKh-0.5 ↑ | report | RMSE ↓ | report |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
| SH_4S (w/o quant) + CoM | 44.00 | 44.24 | 72.50 | 71.45 | 3.25 | 3.33 |
| SH_4S (w/o quant) + DARK | 46.00 | 45.17 | 73.00 | 71.65 | 3.50 | 3.47 |
"""

CLAIMS_MD = """\
# The reproduction report's claims, tested

Ours: test split of synth; 2 run(s), seed(s) 1314. The report's: HUMAN4D test split, seed 000, the reproduction report: Table 2 (sec. 4.1) and Table 3 (sec. 4.2.1).
PCKh in percent. RMSE: ours in input pixels; the report's unit is not stated (docs/REPRODUCTION.md).
Δ is oriented so that a positive value favours the claim (for RMSE: the other side minus the claimed side). Over several seeds: the mean paired difference and its 95% CI (Student t over seeds). A single run: decoders are compared on the same test samples, with a paired bootstrap 95% CI over them when the run left per_sample.npz; without it, or for the encodings, a single run has no error bar ("single run") and is judged by its sign. A difference whose interval contains 0 is not resolved. "report Δ" is the same difference in the report's numbers.

## Claim 1: DARK beats ArgMax, Standard and CoM for every model, encoding and metric

**not held** (single run); comparisons: 15 support, 3 contradict, 0 not resolved.
On the report's own numbers: not held (comparisons: 34 support, 1 contradict, 1 not resolved). The report: "fully supported" (sec. 4.1.1), naming one exception: the RMSE of SH_4S (w/o quant) + CoM.

| setting | DARK vs | metric | DARK | other | Δ | n | verdict | report Δ |
| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: |
| SH_4S (w/ quant) | ArgMax | PCKh-0.1 | 44.00 | 40.00 | +4.00 | 1 | supports | +4.16 |
| SH_4S (w/ quant) | ArgMax | PCKh-0.5 | 71.50 | 70.00 | +1.50 | 1 | supports | +2.61 |
| SH_4S (w/ quant) | ArgMax | RMSE | 3.60 | 4.00 | +0.40 | 1 | supports | +0.25 |
| SH_4S (w/ quant) | Standard | PCKh-0.1 | 44.00 | 41.00 | +3.00 | 1 | supports | +3.17 |
| SH_4S (w/ quant) | Standard | PCKh-0.5 | 71.50 | 70.50 | +1.00 | 1 | supports | +2.39 |
| SH_4S (w/ quant) | Standard | RMSE | 3.60 | 3.90 | +0.30 | 1 | supports | +0.20 |
| SH_4S (w/ quant) | CoM | PCKh-0.1 | 44.00 | 43.00 | +1.00 | 1 | supports | +1.77 |
| SH_4S (w/ quant) | CoM | PCKh-0.5 | 71.50 | 72.00 | -0.50 | 1 | contradicts | +0.40 |
| SH_4S (w/ quant) | CoM | RMSE | 3.60 | 3.50 | -0.10 | 1 | contradicts | +0.00 |
| SH_4S (w/o quant) | ArgMax | PCKh-0.1 | 46.00 | 41.00 | +5.00 | 1 | supports | +5.37 |
| SH_4S (w/o quant) | ArgMax | PCKh-0.5 | 73.00 | 70.50 | +2.50 | 1 | supports | +2.87 |
| SH_4S (w/o quant) | ArgMax | RMSE | 3.50 | 3.75 | +0.25 | 1 | supports | +0.28 |
| SH_4S (w/o quant) | Standard | PCKh-0.1 | 46.00 | 42.50 | +3.50 | 1 | supports | +3.99 |
| SH_4S (w/o quant) | Standard | PCKh-0.5 | 73.00 | 70.50 | +2.50 | 1 | supports | +2.60 |
| SH_4S (w/o quant) | Standard | RMSE | 3.50 | 3.75 | +0.25 | 1 | supports | +0.22 |
| SH_4S (w/o quant) | CoM | PCKh-0.1 | 46.00 | 44.00 | +2.00 | 1 | supports | +0.93 |
| SH_4S (w/o quant) | CoM | PCKh-0.5 | 73.00 | 72.50 | +0.50 | 1 | supports | +0.20 |
| SH_4S (w/o quant) | CoM | RMSE | 3.50 | 3.25 | -0.25 | 1 | contradicts | -0.14 |

## Claim 2: w/o quant beats w/ quant for every model, decoder and metric

**not resolved** (single run); comparisons: 11 support, 0 contradict, 1 not resolved.
On the report's own numbers: held (comparisons: 24 support, 0 contradict, 0 not resolved). The report: "totally supporting the second claim of the authors" (sec. 4.1.2).

| setting | metric | w/o quant | w/ quant | Δ | n | verdict | report Δ |
| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |
| SH_4S + ArgMax | PCKh-0.1 | 41.00 | 40.00 | +1.00 | 1 | supports | +4.42 |
| SH_4S + ArgMax | PCKh-0.5 | 70.50 | 70.00 | +0.50 | 1 | supports | +0.64 |
| SH_4S + ArgMax | RMSE | 3.75 | 4.00 | +0.25 | 1 | supports | +0.37 |
| SH_4S + Standard | PCKh-0.1 | 42.50 | 41.00 | +1.50 | 1 | supports | +4.81 |
| SH_4S + Standard | PCKh-0.5 | 70.50 | 70.50 | +0.00 | 1 | not resolved | +0.69 |
| SH_4S + Standard | RMSE | 3.75 | 3.90 | +0.15 | 1 | supports | +0.38 |
| SH_4S + CoM | PCKh-0.1 | 44.00 | 43.00 | +1.00 | 1 | supports | +6.47 |
| SH_4S + CoM | PCKh-0.5 | 72.50 | 72.00 | +0.50 | 1 | supports | +1.10 |
| SH_4S + CoM | RMSE | 3.25 | 3.50 | +0.25 | 1 | supports | +0.54 |
| SH_4S + DARK | PCKh-0.1 | 46.00 | 44.00 | +2.00 | 1 | supports | +5.63 |
| SH_4S + DARK | PCKh-0.5 | 73.00 | 71.50 | +1.50 | 1 | supports | +0.90 |
| SH_4S + DARK | RMSE | 3.50 | 3.60 | +0.10 | 1 | supports | +0.40 |

## CoM vs DARK on the best model: CoM's RMSE is lower than DARK's

**held** (single run) on SH_4S (w/o quant), the best model here (highest DARK PCKh-0.1).
On the report's own numbers (SH_4S (w/o quant), Table 3): held (comparisons: 1 support, 0 contradict, 0 not resolved). The report: "in RMSE ... CoM presents lower errors than DARK" (sec. 4.2.1). Only the RMSE row decides; the PCKh rows show how comparable the two are.

| setting | metric | CoM | DARK | Δ | n | verdict | report Δ |
| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |
| SH_4S (w/o quant) | RMSE | 3.25 | 3.50 | +0.25 | 1 | supports | +0.14 |
| SH_4S (w/o quant) | PCKh-0.1 | 44.00 | 46.00 | -2.00 | 1 | context | -0.93 |
| SH_4S (w/o quant) | PCKh-0.5 | 72.50 | 73.00 | -0.50 | 1 | context | -0.20 |
"""


def test_paper_layout_is_exact(tmp_path):
    written, summary = paper_files(sweep_of(tmp_path / "mr"), tmp_path)
    assert written["table2.md"].read_text() == TABLE2_MD
    assert written["table3.md"].read_text() == TABLE3_MD
    assert written["claims.md"].read_text() == CLAIMS_MD
    assert summary == [
        "Claim 1: not held (single run)",
        "Claim 2: not resolved (single run)",
        "CoM vs DARK: held (single run)",
    ]


def test_table2_csv_has_ours_the_report_and_the_decoder_used(tmp_path):
    written, _ = paper_files(sweep_of(tmp_path / "mr"), tmp_path)
    with open(written["table2.csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [r["row"] for r in rows[:3]] == [
        "SH_4S (w/ quant) + ArgMax",
        "SH_4S (w/o quant) + ArgMax",
        "SH_4S (w/ quant) + Standard",
    ]
    standard = rows[2]
    assert standard["decoder"] == "standard_top2" and standard["n"] == "1"  # eq. 2, not HRNet's rule
    assert float(standard["pckh@0.1"]) == 41.0 and float(standard["pckh@0.1_report"]) == 36.37
    hrnet = rows[-1]
    assert hrnet["row"] == "HRNet_4S (w/o quant) + DARK" and hrnet["pckh@0.1"] == "" and hrnet["n"] == "0"
    assert float(hrnet["rmse_report"]) == 3.55


def test_tiny_models_sit_on_the_reports_rows_with_the_standard_they_scored(tmp_path):
    written, summary = paper_files(table2_sweep(tmp_path / "tiny"), tmp_path)
    text = written["table2.md"].read_text()
    assert "| SH_4S-tiny (w/ quant) + Standard† | 45.50 | 36.37 | 91.00 | 68.36 | 3.50 | 4.07 |" in text
    assert "| HRNet_4S-tiny (w/o quant) + DARK | 66.50 | 44.83 | 97.50 | 71.52 | 1.88 | 3.55 |" in text
    assert "`-tiny`: heatlit's CPU-scale models" in text and "did not score the report's eq. 2" in text
    assert "| SH_4S-tiny (w/o quant) + soft_argmax | 52.00 | 93.00 | 2.50 |" in text
    assert "Best model here: HRNet_4S-tiny (w/o quant)" in written["table3.md"].read_text()
    assert summary == [
        "Claim 1: held (single run)",
        "Claim 2: not held (single run)",
        "CoM vs DARK: not held (single run)",
    ]


def shifted(offset, dark=0.0):
    """RUNS with every PCKh raised and every RMSE lowered by ``offset`` (a seed's noise), DARK's PCKh-0.1 by
    ``dark`` more."""
    return {
        e: {
            d: (a + offset + (dark if d == "dark" else 0.0), b + offset, c - offset / 10)
            for d, (a, b, c) in decs.items()
        }
        for e, decs in RUNS.items()
    }


def several_seeds(root):
    for seed, offset, dark in ((1314, 0.0, 0.0), (1315, 1.0, -3.0), (1316, -1.0, 1.0)):
        sweep_of(root / str(seed), shifted(offset, dark), seeds=(seed,))
    return root


def test_several_seeds_are_judged_by_their_t_interval(tmp_path):
    """Over 3 seeds, a difference is resolved only when its Student t 95% CI lies on one side of 0."""
    written, summary = paper_files(several_seeds(tmp_path / "mr"), tmp_path)
    per_seed = 4.302653 / math.sqrt(3)  # t_{0.975, 2} / sqrt(n): the half-width per unit of sd
    # SH_4S (w/o quant) + DARK PCKh-0.1 over the seeds: 46, 44, 46 (sd sqrt(4/3))
    table2 = written["table2.md"].read_text()
    assert "Cells over several seeds: mean ± half-width, 95% CI, Student t, n=3 seeds." in table2
    assert f"| SH_4S (w/o quant) + DARK | 45.33 ± {per_seed * math.sqrt(4 / 3):.2f} | 45.17 |" in table2
    claims = written["claims.md"].read_text()
    # DARK's PCKh-0.1 (w/ quant): 44, 42, 44 (sd sqrt(4/3)); ArgMax's 40, 41, 39 (sd 1); CoM's 43, 44, 42
    dark, one = f"43.33 ± {per_seed * math.sqrt(4 / 3):.2f}", f"{per_seed:.2f}"
    # DARK - ArgMax per seed: 4, 1, 5; DARK - CoM: 1, -2, 2 (both sd sqrt(13/3)): neither resolved
    wide = f"{per_seed * math.sqrt(13 / 3):.2f}"
    assert (
        f"| SH_4S (w/ quant) | ArgMax | PCKh-0.1 | {dark} | 40.00 ± {one} | +3.33 ± {wide} | 3 | not resolved |"
        in claims
    )
    assert (
        f"| SH_4S (w/ quant) | CoM | PCKh-0.1 | {dark} | 43.00 ± {one} | +0.33 ± {wide} | 3 | not resolved |"
        in claims
    )
    # RMSE moves with the seed by the same amount for every decoder: a constant difference, resolved
    assert "| SH_4S (w/ quant) | CoM | RMSE | " in claims and "| -0.10 ± 0.00 | 3 | contradicts |" in claims
    assert summary == [
        "Claim 1: not held (95% CI over 3 seeds)",
        "Claim 2: not resolved (95% CI over 3 seeds)",
        "CoM vs DARK: held (95% CI over 3 seeds)",
    ]


def test_a_single_run_judges_decoders_by_the_bootstrap_over_test_samples(tmp_path):
    """With per_sample.npz, DARK vs ArgMax in one run gets a paired interval over test samples: every sample
    gives DARK +50 points at PCKh-0.1 (resolved), none differs at PCKh-0.5 (a zero-width interval at 0)."""
    samples = per_sample()
    test = {d: {m: samples.metric(d, m) for m in METRICS} for d in samples.errors}
    for num, encoding in enumerate(("quant", "unquant")):
        job = write_job(
            tmp_path / "mr",
            str(num),
            [f"encoding={encoding}"],
            {"model": "hourglass", "encoding": encoding},
            test,
        )
        write_per_sample(job / "per_sample.npz", samples)
    written, summary = paper_files(tmp_path / "mr", tmp_path)
    claims = written["claims.md"].read_text()
    rmse = math.sqrt((0.25 + 9) / 2) - 0.5
    assert (
        "| SH_4S (w/ quant) | ArgMax | PCKh-0.1 | 100.00 | 50.00 | +50.00 [+50.00, +50.00] | 1 | supports |"
        in claims
    )
    assert (
        "| SH_4S (w/ quant) | ArgMax | PCKh-0.5 | 100.00 | 100.00 | +0.00 [+0.00, +0.00] | 1 | not resolved |"
        in claims
    )
    assert (
        f"| SH_4S (w/ quant) | ArgMax | RMSE | 0.50 | {rmse + 0.5:.2f} | {rmse:+.2f} [{rmse:+.2f}, {rmse:+.2f}] | 1 | supports |"
        in claims
    )
    assert summary[:2] == [
        "Claim 1: not resolved (single run, 95% CI over test samples (paired bootstrap))",
        "Claim 2: not resolved (single run)",  # the encodings: no interval from one seed
    ]


def test_paper_layout_skips_sweeps_over_other_axes(tmp_path):
    root = tmp_path / "mr"
    for num, stride in enumerate((4, 8)):
        test = {d: dict(zip(METRICS, v)) for d, v in RUNS["quant"].items()}
        write_job(
            root,
            f"{num}_s{stride}",
            [f"data.stride={stride}"],
            {"model": "hourglass", "encoding": "quant", "stride": stride},
            test,
        )
    written, summary = paper_files(root, tmp_path)
    assert written == {}
    assert summary == [
        "paper layout not written: the sweep also varies stride; the report's rows differ in model and encoding only"
    ]


def test_report_command_writes_the_paper_layout_beside_its_tables(tmp_path):
    written = write_report(sweep_of(tmp_path / "mr"), tmp_path / "out")
    assert {"table2.md", "table2.csv", "table3.md", "claims.md"} <= set(written)
    report = written["report.md"].read_text()
    assert "## In the reproduction report's layout" in report and "[claims.md](claims.md)" in report
    assert "- Claim 2: not resolved (single run)" in report


def test_the_reports_numbers_are_stored_once_as_printed():
    paper = load_paper()
    assert len(paper.rows) == 16
    assert list(paper.rows)[0] == ("SH_4S", "w/ quant", "ArgMax")
    assert list(paper.rows)[-1] == ("HRNet_4S", "w/o quant", "DARK")
    assert paper.rows[("SH_4S", "w/o quant", "DARK")] == {"pckh@0.1": 45.17, "pckh@0.5": 71.65, "rmse": 3.47}
    assert paper.rows[("HRNet_4S", "w/ quant", "CoM")] == {"pckh@0.1": 33.95, "pckh@0.5": 68.38, "rmse": 3.94}
    assert paper.table3 == ("SH_4S", "w/o quant", ("CoM", "DARK"))
    assert "Table 2" in paper.source and "Table 3" in paper.source
