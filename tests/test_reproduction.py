"""``experiment=table2``: the reproduction report's recipe (seed 000, sec. 3.1-3.5), value by value."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import open_dict

from heatlit.results import read_results
from tests.conftest import CONF_DIR
from tests.human4d_fixture import write_human4d_fixture

# The report's decoders (sec. 3.2.1) under heatlit's names: ArgMax, Standard (eq. 2), CoM, DARK.
REPORT_DECODERS = {"argmax", "standard_top2", "com", "dark"}


def compose_train(overrides, hydra=False):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=hydra)


def test_table2_experiment_is_the_reports_recipe():
    cfg = compose_train(["experiment=table2"])
    assert cfg.data.source._target_ == "heatlit.data.human4d.Human4DSource"
    assert cfg.data.source.occlusion is False  # every in-frame joint scored, as projected mocap
    assert list(cfg.data.input_size) == [160, 320] and cfg.data.stride == 4 and cfg.data.batch_size == 32
    assert cfg.data.augment.enabled is False and cfg.flip_test is False
    assert (cfg.data.depth_offset_m, cfg.data.depth_scale_m) == (0.0, 1.0)
    assert cfg.trainer.max_epochs == 30 and cfg.trainer.precision == "32-true"
    opt = cfg.optim.optimizer
    assert opt._target_ == "torch.optim.Adam" and opt.lr == 2e-3 and list(opt.betas) == [0.9, 0.999]
    assert opt.weight_decay == 0.0 and cfg.optim.scheduler is None
    assert cfg.seed == 1314 and cfg.data.seed == 1314
    assert cfg.loss.mse_weight == 1.0 and cfg.loss.integral_weight == 0.0  # "simple MSE loss"
    assert cfg.monitor.decoder == "dark" and cfg.monitor.metric == "pckh@0.1"
    assert REPORT_DECODERS | {"standard"} <= set(cfg.decoders)  # HRNet's per-axis rule beside eq. 2


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("hourglass", {"num_stacks": 4, "features": 128}),  # SH: "128 width and 4 stages" (sec. 3.1)
        ("hrnet", {"width": 32, "num_modules": [1, 1, 1], "num_blocks": 4}),  # HRNet: W32, 1 block of 4 units
    ],
)
def test_table2_models_are_the_reports(model, expected):
    cfg = compose_train(["experiment=table2", f"model={model}"])
    for key, value in expected.items():
        got = cfg.model[key]
        assert (list(got) if isinstance(value, list) else got) == value, key
    net = instantiate(cfg.model, num_joints=18, in_channels=1)
    assert net.stride == 4 and net.num_joints == 18


@pytest.mark.parametrize(
    ("name", "source"), [("table2", "human4d.Human4DSource"), ("table2_synth", "synth.SynthSource")]
)
def test_table2_sweeps_run_the_recipe_on_their_data(name, source):
    cfg = compose_train([f"+sweep={name}"], hydra=True)
    assert cfg.group == name and cfg.hydra.runtime.choices["experiment"] == "table2"
    assert cfg.data.source._target_ == f"heatlit.data.{source}"
    assert list(cfg.data.input_size) == [160, 320] and cfg.data.augment.enabled is False
    assert cfg.trainer.max_epochs == 30 and cfg.flip_test is False
    assert dict(cfg.hydra.sweeper.params) == {"model": "hourglass,hrnet", "encoding": "quant,unquant"}
    if name == "table2_synth":
        assert cfg.data.source.visibility == "in_frame" and cfg.data.source.width == 320


def test_debug_settings_still_win_over_the_experiment():
    cfg = compose_train(["experiment=table2", "debug=limit"])
    assert cfg.trainer.max_epochs == 2 and cfg.trainer.limit_train_batches == 4


@pytest.mark.slow
def test_table2_experiment_trains_on_human4d_layout(tmp_path):
    """The preset end to end on a rendered HUMAN4D tree (tiny model, one batch): results.json says what ran."""
    from heatlit.training.run import train

    root = tmp_path / "h4d"
    write_human4d_fixture(root, subjects=(1, 2), activities=("walking", "punching"), frames=2, skip=1)
    overrides = [
        "experiment=table2",
        f"data.source.root={root}",
        "model=hourglass_tiny",
        "debug=fast",
        "data.batch_size=4",
        "logger=none",
        "callbacks=none",
        f"output_dir={tmp_path / 'run'}",
    ]
    cfg = compose_train(overrides, hydra=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    train(cfg)
    run = read_results(tmp_path / "run" / "results.json")
    assert run.choices["experiment"] == "table2" and run.choices["data"] == "human4d_table2"
    assert run.grid["input_size"] == [160, 320] and run.grid["heatmap_size"] == [40, 80]
    assert REPORT_DECODERS <= set(run.stage("test"))
