"""experiment=integral3d (the integral-regression report's 3D recipe) and its comparison, experiment=heatmap3d."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from heatlit.results import read_results
from heatlit.training.run import build_trainer
from tests.conftest import CONF_DIR
from tests.test_train import run_train


def _compose(overrides):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_integral3d_holds_the_reports_recipe():
    cfg = _compose(["experiment=integral3d"])
    assert cfg.hydra.runtime.choices.loss == "integral" and (
        cfg.loss.mse_weight,
        cfg.loss.integral_weight,
    ) == (0, 1)
    assert cfg.model.head == "3d" and cfg.model.depth_bins == cfg.data.heatmap_depth == 64
    assert cfg.model._target_.endswith("SimpleBaseline") and cfg.model.resnet_depth == 50
    assert cfg.optim.optimizer.lr == 1e-4 and list(cfg.optim.scheduler.milestones) == [40, 60]
    assert cfg.trainer.max_epochs == 70 and cfg.data.batch_size == 24
    aug = cfg.data.augment
    assert (aug.flip_prob, aug.scale, aug.rotation_deg, aug.rotation_prob) == (0.5, 0.25, 30.0, 0.6)
    assert (aug.occluder_prob, aug.occluder_max_count, aug.occluder_texture, aug.color_jitter) == (
        0.75,
        8,
        True,
        0.2,
    )
    assert (cfg.monitor.decoder, cfg.monitor.metric) == ("soft_argmax", "mpjpe")


def test_heatmap3d_differs_only_in_loss_and_read_out():
    integral, heatmap = (
        OmegaConf.to_container(_compose([f"experiment={e}"]), resolve=False)
        for e in ("integral3d", "heatmap3d")
    )
    for cfg in (integral, heatmap):
        del cfg["hydra"]
    assert heatmap["loss"]["mse_weight"] == 1.0 and heatmap["loss"]["integral_weight"] == 0.0
    assert heatmap["monitor"] == {"decoder": "dark", "metric": "mpjpe"}
    for key in ("loss", "monitor", "group"):
        del integral[key], heatmap[key]
    assert integral == heatmap


@pytest.mark.parametrize("name", ["integral3d", "integral3d_cpu"])
def test_integral3d_sweeps_compose_per_job(name):
    sweep = _compose([f"+sweep={name}"])
    assert str(sweep.hydra.mode) == "RunMode.MULTIRUN"
    assert sweep.hydra.sweeper.params.experiment == "heatmap3d,integral3d"
    job = _compose([f"+sweep={name}", "experiment=integral3d", f"model={sweep.hydra.sweeper.params.model}"])
    assert job.group == name and job.model.depth_bins == 64 and job.hydra.runtime.choices.loss == "integral"
    if name == "integral3d_cpu":
        assert (
            job.trainer.max_epochs == 3 and job.model.resnet_width == 16 and job.data.input_size == [40, 80]
        )


@pytest.mark.parametrize(
    ("metric", "mode"), [("mpjpe", "min"), ("rmse", "min"), ("pckh@0.1", "max"), ("ap", "max")]
)
def test_the_best_checkpoint_minimises_errors(metric, mode, tmp_path):
    cfg = _compose(["logger=none", f"output_dir={tmp_path}"])
    trainer = build_trainer(cfg, f"val/dark/{metric}")
    assert trainer.checkpoint_callback.mode == mode


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["integral3d", "heatmap3d"])
def test_both_recipes_train_and_report_mpjpe(experiment, tmp_path, tmp_path_factory):
    """Two epochs of each recipe on the tiny rendered data of tests/test_train.py."""
    data_dir = tmp_path_factory.mktemp("synth-3d")
    overrides = [
        f"experiment={experiment}",
        "model=simplebaseline_tiny",
        "trainer.max_epochs=2",
        "callbacks=default",
    ]
    overrides += ["callbacks.progress=null", "data.batch_size=8"]
    run_train(overrides, tmp_path, data_dir)
    run = read_results(tmp_path / "results.json")
    assert run.facts["monitor"].endswith("/mpjpe")
    for decoder in ("dark", "soft_argmax"):
        assert run.stage("test")[decoder]["mpjpe"] > 0
    assert run.grid["depth_bins"] == 64
