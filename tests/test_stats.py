"""``heatlit.report.stats`` against tabulated t quantiles, closed forms, hand sums and simulated coverage."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from heatlit.metrics.keypoint import RMSE, PCKh
from heatlit.report.effects import main
from heatlit.report.stats import (
    Interval,
    mean_interval,
    paired_bootstrap,
    paired_effects,
    paired_interval,
    student_t_cdf,
    student_t_quantile,
)
from tests.conftest import DEFAULT_DECODERS

# Two-sided 95% (p = 0.975) and 99% (p = 0.995) critical values of Student's t, as printed in the usual
# tables (three decimals).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
        10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}  # fmt: skip
T995 = {1: 63.657, 2: 9.925, 5: 4.032, 10: 3.169, 30: 2.750}


@pytest.mark.parametrize("dof", sorted(T975))
def test_t_quantile_matches_the_table(dof):
    assert student_t_quantile(0.975, dof) == pytest.approx(T975[dof], abs=6e-4)
    assert student_t_quantile(0.025, dof) == pytest.approx(-T975[dof], abs=6e-4)


@pytest.mark.parametrize("dof", sorted(T995))
def test_t_quantile_99_matches_the_table(dof):
    assert student_t_quantile(0.995, dof) == pytest.approx(T995[dof], abs=6e-4)


def test_t_quantile_tends_to_the_normal():
    assert student_t_quantile(0.975, math.inf) == pytest.approx(1.959964, abs=1e-6)
    assert student_t_quantile(0.975, 1e7) == pytest.approx(1.959964, abs=1e-5)
    assert student_t_quantile(0.5, 3) == 0.0


@pytest.mark.parametrize("t", [-7.0, -1.5, -0.2, 0.0, 0.3, 1.0, 2.5, 40.0])
def test_t_cdf_closed_forms(t):
    assert student_t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)  # Cauchy
    assert student_t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
    assert student_t_cdf(t, 7.5) == pytest.approx(1 - student_t_cdf(-t, 7.5), abs=1e-12)


def test_t_quantile_inverts_the_cdf():
    for p in (0.6, 0.9, 0.975, 0.999):
        for dof in (1, 2.5, 4, 17, 200):
            assert student_t_cdf(student_t_quantile(p, dof), dof) == pytest.approx(p, abs=1e-10)


def test_t_functions_reject_bad_input():
    for bad in (0.0, 1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="p must be in"):
            student_t_quantile(bad, 3)
    with pytest.raises(ValueError, match="dof must be > 0"):
        student_t_cdf(1.0, 0)
    with pytest.raises(ValueError, match="NaN"):
        student_t_cdf(float("nan"), 3)


def test_t_interval_by_hand():
    iv = mean_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t_0.975,2 = 4.3027
    assert iv.method == "t" and iv.n == 3 and iv.mean == 2.0
    assert iv.half_width == pytest.approx(4.302653 / math.sqrt(3), abs=1e-6)
    assert (iv.low, iv.high) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-6)
    assert iv.sign == 0
    assert mean_interval([1.0, 1.2, 0.9, 1.1]).sign == 1
    assert mean_interval([-1.0, -1.2, -0.9]).sign == -1


def test_one_value_gives_no_interval_not_a_zero_width_one():
    iv = mean_interval([0.7])
    assert (iv.method, iv.n, iv.mean, iv.low, iv.high, iv.sign) == ("none", 1, 0.7, -math.inf, math.inf, 0)
    assert iv.format() == "+0.70 (n=1)"


def test_constant_differences_give_a_zero_width_interval():
    for method in ("t", "bootstrap"):
        iv = mean_interval([0.5, 0.5, 0.5, 0.5], method=method)
        assert iv.low == iv.high == iv.mean == 0.5 and iv.sign == 1


def test_mean_interval_rejects_bad_input():
    with pytest.raises(ValueError, match="no values"):
        mean_interval([])
    with pytest.raises(ValueError, match="non-finite"):
        mean_interval([1.0, float("nan"), 2.0])
    with pytest.raises(ValueError, match="method"):
        mean_interval([1.0, 2.0], method="jackknife")
    with pytest.raises(ValueError, match="level"):
        mean_interval([1.0, 2.0], level=95)


def _coverage(method: str, n: int, trials: int, mu: float = 0.7) -> float:
    rng = np.random.default_rng(12)
    hits = 0
    for i in range(trials):
        iv = mean_interval(rng.normal(mu, 2.0, size=n), method=method, resamples=1000, seed=i)
        hits += iv.low <= mu <= iv.high
    return hits / trials


def test_t_interval_covers_95_percent_with_three_seeds():
    # 2000 trials: binomial sd 0.5 points, so +-1.5 points is three sd
    assert abs(_coverage("t", 3, 2000) - 0.95) < 0.015


def test_bootstrap_over_three_seeds_under_covers():
    # why the t interval is the default over seeds: the percentile bootstrap cannot reach past the
    # observed range, and with 3 seeds covers about 3 times in 4 (measured 0.747 over 1000 trials)
    assert _coverage("bootstrap", 3, 600) < 0.85


def test_paired_interval_pairs_and_skips_missing_runs():
    iv = paired_interval([3.0, 5.0, None, 7.0, float("nan")], [1.0, 2.0, 4.0, 3.0, 1.0])
    assert iv.n == 3 and iv.mean == pytest.approx(3.0)  # differences 2, 3, 4
    assert iv.half_width == pytest.approx(4.302653 / math.sqrt(3), abs=1e-6)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_interval([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no pair"):
        paired_interval([None], [1.0])


def _records():
    """Two models x two encodings x three seeds, one metric; unquant - quant is known per model."""
    effect = {"hg": [1.0, 2.0, 3.0], "hr": [-0.5, -0.5, -0.5]}
    out = []
    for model, diffs in effect.items():
        for seed, diff in zip((1314, 1315, 1316), diffs):
            base = 10.0 + seed % 7
            out.append({"model": model, "encoding": "quant", "seed": seed, "decoder": "dark", "value": base})
            out.append(
                {"model": model, "encoding": "unquant", "seed": seed, "decoder": "dark", "value": base + diff}
            )
    return out


def test_paired_effects_groups_pairs_and_intervals():
    effects = paired_effects(_records())
    assert [(e.group["model"], e.level, e.reference, e.units) for e in effects] == [
        ("hg", "unquant", "quant", (1314, 1315, 1316)),
        ("hr", "unquant", "quant", (1314, 1315, 1316)),
    ]
    hg, hr = effects
    assert hg.group == {"model": "hg", "decoder": "dark"}
    assert hg.interval.mean == pytest.approx(2.0)
    assert hg.interval.half_width == pytest.approx(4.302653 / math.sqrt(3), abs=1e-6)
    assert hr.interval.mean == pytest.approx(-0.5) and hr.interval.half_width == pytest.approx(0.0, abs=1e-12)
    assert hr.interval.sign == -1 and hg.interval.sign == 0
    assert hg.interval.header() == "95% CI, Student t, n=3 seeds"


def test_paired_effects_reports_unpaired_seeds_and_refuses_duplicates():
    records = _records()
    records.append({"model": "hg", "encoding": "unquant", "seed": 1317, "decoder": "dark", "value": 1.0})
    records.append({"model": "hg", "encoding": "quant", "seed": 1318, "decoder": "dark", "value": None})
    records.append({"model": "hg", "encoding": "unquant", "seed": 1318, "decoder": "dark", "value": 2.0})
    hg = paired_effects(records)[0]
    assert hg.units == (1314, 1315, 1316) and hg.unpaired == (1317, 1318)
    with pytest.raises(ValueError, match="two runs with encoding=quant, seed=1314"):
        paired_effects([*_records(), _records()[0]])
    with pytest.raises(ValueError, match="has no seed"):
        paired_effects([{"encoding": "quant", "value": 1.0}])
    assert paired_effects(_records(), reference="nonexistent") == []


def test_paired_bootstrap_constant_difference_has_zero_width():
    rng = np.random.default_rng(0)
    b = rng.random((300, 17))
    iv = paired_bootstrap(b + 0.25, b, resamples=2000)
    assert iv.method == "bootstrap" and iv.n == 300
    assert (iv.mean, iv.low, iv.high) == pytest.approx((0.25, 0.25, 0.25), abs=1e-12)


def test_paired_bootstrap_point_estimate_is_heatlits_metric_difference():
    """PCKh and RMSE from per-joint hits/errors, pooled over scored joints, equal heatlit's metrics."""
    gen = torch.Generator().manual_seed(3)
    n, k = 64, 5
    target = torch.rand(n, k, 2, generator=gen) * 40
    visible = torch.rand(n, k, generator=gen) > 0.2
    norm = 4 + torch.rand(n, generator=gen) * 4
    preds = [target + torch.randn(n, k, 2, generator=gen) * s for s in (0.6, 1.2)]
    hits, errors, pckh, rmse = [], [], [], []
    for pred in preds:
        err = (pred - target).norm(dim=-1)
        errors.append(err.numpy())
        hits.append((err <= 0.5 * norm[:, None]).double().numpy())
        m, r = PCKh(0.5, num_joints=k), RMSE(num_joints=k)
        m.update(pred, target, visible, norm)
        r.update(pred, target, visible, norm)
        pckh.append(float(m.compute()))
        rmse.append(float(r.compute()))
    w = visible.double().numpy()
    iv = paired_bootstrap(hits[0], hits[1], weight=w, resamples=200)
    assert 100 * iv.mean == pytest.approx(pckh[0] - pckh[1], abs=1e-4)
    iv = paired_bootstrap(errors[0], errors[1], weight=w, reduce="rms", resamples=200)
    assert iv.mean == pytest.approx(rmse[0] - rmse[1], abs=1e-4)
    assert iv.sign == -1  # half the noise, clearly lower RMSE on 64 samples


def test_paired_bootstrap_covers_a_known_mean():
    # per-sample differences N(mu, 1), N = 200: the interval should hold mu about 95 times in 100
    rng = np.random.default_rng(5)
    mu, trials, hits = 0.1, 300, 0
    for i in range(trials):
        b = rng.normal(0.0, 1.0, size=200)
        iv = paired_bootstrap(b + rng.normal(mu, 1.0, size=200), b, resamples=1000, seed=i)
        hits += iv.low <= mu <= iv.high
    assert abs(hits / trials - 0.95) < 0.04  # binomial sd 1.3 points at 300 trials


def test_paired_bootstrap_agrees_with_the_t_interval_on_many_samples():
    rng = np.random.default_rng(8)
    d = rng.normal(0.3, 1.0, size=2000)
    boot = paired_bootstrap(d, np.zeros_like(d), resamples=4000)
    t = mean_interval(d)
    assert boot.mean == pytest.approx(t.mean)
    assert boot.half_width == pytest.approx(t.half_width, rel=0.1)


def test_paired_bootstrap_ignores_unweighted_nan_and_refuses_weighted_nan():
    a = np.array([[1.0, np.nan], [0.0, 1.0], [1.0, 1.0]])
    b = np.array([[0.0, 5.0], [0.0, 0.0], [1.0, 0.0]])
    w = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    iv = paired_bootstrap(a, b, weight=w, resamples=500)
    assert iv.mean == pytest.approx(4 / 5 - 1 / 5) and np.isfinite([iv.low, iv.high]).all()
    with pytest.raises(ValueError, match="1 non-finite value"):
        paired_bootstrap(a, b)
    with pytest.raises(ValueError, match="share a shape"):
        paired_bootstrap(a, b[:2])
    with pytest.raises(ValueError, match="weights must be finite"):
        paired_bootstrap(b, b, weight=-w)
    with pytest.raises(ValueError, match="no entry with weight"):
        paired_bootstrap(b, b, weight=0 * w)
    with pytest.raises(ValueError, match="reduce"):
        paired_bootstrap(b, b, reduce="median")


def test_paired_bootstrap_is_reproducible_and_seeded():
    rng = np.random.default_rng(2)
    a, b = rng.random(100), rng.random(100)
    assert paired_bootstrap(a, b, seed=4) == paired_bootstrap(a, b, seed=4)
    assert paired_bootstrap(a, b, seed=4) != paired_bootstrap(a, b, seed=5)
    single = paired_bootstrap(a[:1], b[:1])
    assert single.method == "none" and single.mean == pytest.approx(a[0] - b[0])


def test_interval_formatting():
    assert Interval(1.234, 0.784, 1.684, 5, "t").format() == "+1.23 ± 0.45"
    assert Interval(-1.2, -1.7, -0.8, 500, "bootstrap").format() == "-1.20 [-1.70, -0.80]"
    assert Interval(1.2, 0.7, 1.7, 5, "t").format(1, signed=False) == "1.2 ± 0.5"
    assert Interval(1.2, 0.7, 1.8, 500, "bootstrap").header("samples") == (
        "95% CI, percentile bootstrap, n=500 samples"
    )


def _fake_sweep(root, values):
    """A multirun folder with one job per (encoding, seed): results.json holding dark's pckh@0.1."""
    for num, ((encoding, seed), value) in enumerate(values.items()):
        job = root / str(num)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- encoding={encoding}\n- seed={seed}\n")
        choices = {"model": "hourglass_tiny", "encoding": encoding, "seed": seed, "stride": 8}
        results = {"test": {"dark": {"pckh@0.1": value, "rmse": 5.0}}}
        (job / "results.json").write_text(json.dumps({"choices": choices, "results": results}))


def test_main_pairs_a_sweep_by_seed_and_writes_effects_md(tmp_path, capsys):
    values = {("quant", 1314): 10.0, ("quant", 1315): 11.0, ("quant", 1316): 12.0}
    values |= {("unquant", 1314): 12.0, ("unquant", 1315): 14.0, ("unquant", 1316): 16.0}
    _fake_sweep(tmp_path, values)
    (tmp_path / "9").mkdir()
    (tmp_path / "9" / ".hydra").mkdir()
    (tmp_path / "9" / ".hydra" / "overrides.yaml").write_text("- seed=1317\n")  # crashed: no results
    assert main([str(tmp_path), "--metrics", "pckh@0.1", "rmse"]) == 0
    half = 4.302653 / math.sqrt(3)  # differences 2, 3, 4: mean 3, sd 1
    expected = (
        "encoding: unquant − quant, mean paired difference over seeds, 95% CI (Student t unless marked)\n\n"
        "| decoder | metric | Δ | 95% CI | n seeds | resolved |\n"
        "| --- | --- | ---: | --- | ---: | --- |\n"
        f"| dark | pckh@0.1 | +3.00 ± {half:.2f} | [{3 - half:+.2f}, {3 + half:+.2f}] | 3 | yes (+) |\n"
        "| dark | rmse | +0.00 ± 0.00 | [+0.00, +0.00] | 3 | no |\n"
        "\n1 job(s) without results: 9\n"
    )
    assert capsys.readouterr().out == expected
    assert (tmp_path / "effects.md").read_text() == expected
    assert main([str(tmp_path / "missing")]) == 1


def test_study_sweep_varies_only_encoding_and_run_seed():
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["+sweep=study_cpu"], return_hydra_config=True)
    params = dict(cfg.hydra.sweeper.params)
    assert set(params) == {"encoding", "seed"} and params["encoding"] == "quant,unquant"
    assert len(params["seed"].split(",")) >= 5
    assert cfg.hydra.launcher.n_jobs == 2 and cfg.data.stride == 8 and cfg.encoding.sigma == 1.0
    assert cfg.data.source.seed == 1314  # the rendered data are the same for every job


@pytest.mark.slow
def test_study_sweep_end_to_end_writes_seeds_and_intervals(tmp_path):
    """``python -m heatlit.sweep study_cpu`` at fast_dev_run size, then the intervals over its two seeds."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "WANDB_MODE": "disabled", "HEATLIT_DATA": str(tmp_path / "data")}
    tiny = ["debug=fast", "data.source.width=64", "data.source.height=32", "data.input_size=[32,64]"]
    tiny += ["data.source.train_frames=24", "data.source.val_frames=8", "data.source.test_frames=8"]
    cmd = [sys.executable, "-m", "heatlit.sweep", "study_cpu", *tiny, "data.batch_size=8", "seed=1314,1315"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "multirun" / "study_cpu").iterdir()
    runs = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/results.json"))]
    assert sorted((r["choices"]["encoding"], r["choices"]["seed"]) for r in runs) == [
        ("quant", 1314),
        ("quant", 1315),
        ("unquant", 1314),
        ("unquant", 1315),
    ]
    assert main([str(sweep_dir), "--metrics", "rmse"]) == 0
    table = (sweep_dir / "effects.md").read_text()
    scored = list(runs[0]["results"]["test"])  # every configured decoder, one effect row each
    assert set(DEFAULT_DECODERS) <= set(scored)
    for decoder in scored:
        assert f"| {decoder} | rmse |" in table
    assert table.count("| 2 |") == len(scored)  # n seeds


def test_effects_command_runs_as_a_module_without_a_runpy_warning(tmp_path):
    """The one end-to-end test of ``python -m heatlit.report.effects``: -W error turns runpy's
    "found in sys.modules" RuntimeWarning (a CLI inside a module the package imports) into a failure."""
    import subprocess
    import sys

    _fake_sweep(tmp_path, {("quant", 1314): 10.0, ("unquant", 1314): 12.5})
    cmd = [sys.executable, "-W", "error::RuntimeWarning", "-m", "heatlit.report.effects", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == ""
    assert "| dark | pckh@0.1 | +2.50 (n=1) | – | 1 | no |" in proc.stdout
