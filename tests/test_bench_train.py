"""`make bench train`: the breakdown's arithmetic on known times, and (slow) the command end to end.

No timing asserts: speed is reported by ``make bench train``, never tested.
"""

import json

import pytest

from heatlit.bench import train
from heatlit.bench.__main__ import main
from tests.conftest import TINY_DEPTH


def _light(epoch, phases, helpers=0.0):
    return {
        "epoch_wall": epoch,
        "epoch_cpu": epoch / 2,
        "epoch_helpers_cpu": helpers,
        "phases": {p: (w, w / 2) for p, w in phases.items()},
        "fit_wall": epoch + 1.0,
        "fit_cpu": epoch / 2 + 0.5,
    }


def _bare(phases, steps):
    return {p: [(w / steps, w / steps / 2)] * steps for p, w in phases.items()}


def test_summary_of_known_times():
    steps = 4
    # seconds per epoch of 4 steps: data 0.4, forward 2, backward 2, optimizer 0.2; Lightning's epoch 5 s
    phases = {"data": 0.4, "forward": 2.0, "backward": 2.0, "optimizer": 0.2}
    light = [_light(5.0, phases, helpers=0.04), _light(5.2, phases, helpers=0.08)]
    bare = [_bare(phases, steps), _bare(phases, steps)]
    out = train.summarise(bare, light, steps)
    assert out["phases_ms"]["forward"] == pytest.approx(500.0)
    assert out["phases_ms"]["framework"] == pytest.approx((5.1 - 4.6) / 4 * 1e3)  # median of 0.4 and 0.6 s
    assert out["phases_cpu_ms"]["framework"] == pytest.approx((2.55 - 2.3) / 4 * 1e3)
    assert out["framework_share"] == pytest.approx(((0.4 / 5.0) + (0.6 / 5.2)) / 2)
    assert out["bare_step_ms"] == pytest.approx(1150.0) and out["bare_step_cpu_ms"] == pytest.approx(575.0)
    assert out["overhead_wall_rounds"] == pytest.approx([5.0 / 4.6 - 1, 5.2 / 4.6 - 1])
    assert out["fit_fixed_s"] == pytest.approx(1.0) and out["helpers_cpu_ms"] == pytest.approx(15.0)


def test_helpers_cpu_is_a_finite_count():
    assert train.helpers_cpu() >= 0.0


@pytest.mark.slow
def test_bench_train_end_to_end(tmp_path):
    data = tmp_path / "data"
    out = tmp_path / "bench.json"
    tiny = [*TINY_DEPTH, f"data.source.data_dir={data}", "logger=csv"]  # two batches of 8
    assert main(["train", "--steps", "2", "--rounds", "2", "--json", str(out), *tiny]) == 0
    res = json.loads(out.read_text())
    assert res["steps"] == 2 and res["rounds"] == 2 and len(res["overhead_wall_rounds"]) == 2
    assert set(res["phases_ms"]) == {"data", "forward", "backward", "optimizer", "framework"}
    assert all(res["phases_ms"][p] > 0 for p in ("data", "forward", "backward", "optimizer"))
    assert len(res["load_average"]) == 3  # before the rounds, after each
