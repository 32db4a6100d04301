"""Training and evaluation through the real configs (Hydra compose), on tiny synthetic data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from heatlit.codecs import HeatmapGrid
from heatlit.metrics import KeypointExpansion, SampleOksAP
from heatlit.per_sample import read_per_sample
from heatlit.results import SCHEMA_VERSION, read_results
from heatlit.training.checks import ConfigError
from heatlit.training.run import build_datamodule, build_decoders, build_module, monitor_key, train
from tests.conftest import CONF_DIR, DEFAULT_DECODERS, ROOT

# A tiny rendered dataset, shared by every test of this module (generated once into a session cache).
TINY = [
    "data.source.width=64",
    "data.source.height=32",
    "data.input_size=[32,64]",
    "data.source.train_frames=24",
    "data.source.val_frames=8",
    "data.source.test_frames=8",
    "data.batch_size=8",
    "logger=none",
    "callbacks=none",
    "qualitative=2",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synth-cache")


def run_train(overrides, out: Path, data_dir: Path, config: str = "train", fn=train):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config,
            overrides=[*TINY, f"data.source.data_dir={data_dir}", f"output_dir={out}", *overrides]
            if config == "train"
            else [f"output_dir={out}", *overrides],
            return_hydra_config=True,
        )
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return fn(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["hourglass_tiny", "hrnet_tiny", "simplebaseline_tiny"])
@pytest.mark.parametrize("encoding", ["quant", "unquant"])
@pytest.mark.parametrize("loss", ["mse", "integral", "both"])
def test_fast_dev_run_every_model_encoding_loss(model, encoding, loss, tmp_path, data_dir):
    results = run_train(
        [f"model={model}", f"encoding={encoding}", f"loss={loss}", "debug=fast"], tmp_path, data_dir
    )
    test = results["test"]
    assert set(test) == set(DEFAULT_DECODERS)
    for metrics in test.values():
        assert {"pckh@0.1", "pckh@0.5", "rmse"} <= set(metrics)
        assert 0 <= metrics["pckh@0.1"] <= metrics["pckh@0.5"] <= 100
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["choices"]["model"] == model and saved["choices"]["encoding"] == encoding
    assert saved["results"]["test"]["dark"]["rmse"] == pytest.approx(test["dark"]["rmse"])


@pytest.mark.slow
def test_3d_head_with_integral_loss_reports_mpjpe(tmp_path, data_dir):
    results = run_train(
        [
            "model=simplebaseline_tiny",
            "model.head=3d",
            "model.depth_bins=8",
            "data.heatmap_depth=8",
            "loss=integral",
            "debug=fast",
        ],
        tmp_path,
        data_dir,
    )
    for metrics in results["test"].values():
        assert metrics["mpjpe"] > 0 and torch.isfinite(torch.tensor(metrics["mpjpe"]))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["encoding.sigma=0"], "sigma must be > 0"),
        (["model.stride=2"], "data.stride=4 but model.stride=2"),
        (["model=simplebaseline_tiny", "model.head=3d"], "data.heatmap_depth"),
        (["data.heatmap_depth=8"], "model.head=3d"),
        (["monitor.decoder=nope"], "not among the configured decoders"),
    ],
)
def test_bad_configs_fail_before_training(overrides, message, tmp_path, data_dir):
    with pytest.raises(ConfigError, match=message):
        run_train([*overrides, "debug=fast"], tmp_path, data_dir)


def test_unknown_group_option_lists_valid_ones(tmp_path):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        with pytest.raises(Exception, match="hourglass") as err:
            compose("train", overrides=["model=nope"])
    assert "nope" in str(err.value)


# ------------------------------------------------------------------- the entry points, end to end
ENV = {**os.environ, "WANDB_MODE": "disabled"}
ONE_EPOCH = [  # every stage of a real run, checkpoints included, on the tiny data
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "callbacks=default",
    "callbacks.progress=null",
    "callbacks.lr=null",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir) -> Path:
    """``python -m heatlit.train`` once, as a user runs it: the run folder it leaves behind."""
    run_dir = tmp_path_factory.mktemp("train-cli")
    cmd = [
        sys.executable,
        "-m",
        "heatlit.train",
        *TINY,
        *ONE_EPOCH,
        f"data.source.data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir / "stdout.txt").write_text(proc.stdout)
    return run_dir


def test_train_entry_point_end_to_end(trained):
    assert "test: every decoder on the same forward pass" in (trained / "stdout.txt").read_text()
    run = read_results(trained / "results.json")
    assert run.version == SCHEMA_VERSION and run.choices["model"] == "hourglass_tiny"
    assert run.grid == HeatmapGrid((32, 64), 4).describe()  # data.input_size=[32,64], stride 4
    assert run.dataset["name"] == "synth" and len(run.dataset["keypoints"]) == 18
    assert run.facts["monitor"] == "val/dark/pckh@0.1" and run.facts["epochs"] == 1
    assert run.facts["flipped"] == {"val": False, "test": True}  # flip_val=false, flip_test=true
    test = run.stage("test")
    assert set(test) == set(DEFAULT_DECODERS)
    for metrics in test.values():
        assert set(metrics) == {"pckh@0.1", "pckh@0.5", "rmse", "auc", "ap", "ap_bound", "ap50", "ap75", "ar"}
        assert 0 <= metrics["pckh@0.1"] <= metrics["pckh@0.5"] <= 100 and metrics["rmse"] > 0
        assert 0 <= metrics["ap"] <= metrics["ap_bound"] <= 100
    assert run.monitored("test") == test["dark"]["pckh@0.1"]
    assert (trained / "qualitative.png").stat().st_size > 10_000
    assert Path(run.facts["best_checkpoint"]) == trained / "checkpoints" / "best.ckpt"
    # per_sample.npz recomputes every decoder's 2D metrics as results.json holds them
    samples = read_per_sample(trained / "per_sample.npz")
    assert list(samples.errors) == list(test) and samples.num_samples > 0
    for decoder, metrics in test.items():
        for metric in ("pckh@0.1", "pckh@0.5", "auc", "rmse"):
            assert samples.metric(decoder, metric) == pytest.approx(metrics[metric], rel=1e-5, abs=1e-4)


def test_eval_entry_point_reproduces_the_test_metrics(trained, tmp_path):
    """``python -m heatlit.eval`` on the run's checkpoint: the model, data and numbers come back."""
    cmd = [
        sys.executable,
        "-m",
        "heatlit.eval",
        f"ckpt_path={trained / 'checkpoints' / 'best.ckpt'}",
        "logger=none",
        "trainer.accelerator=cpu",
        "qualitative=0",
        f"hydra.run.dir={tmp_path}",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained_test = read_results(trained / "results.json").stage("test")
    evaluated = read_results(tmp_path / "results.json")
    assert evaluated.grid == read_results(trained / "results.json").grid
    for decoder, metrics in trained_test.items():
        for name, value in metrics.items():
            assert evaluated.stage("test")[decoder][name] == pytest.approx(value, abs=1e-4), (decoder, name)


@pytest.mark.slow
def test_cli_config_error_is_one_clean_message(tmp_path):
    cmd = [sys.executable, "-m", "heatlit.train", "encoding.sigma=-1", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "configuration error" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_data_root_is_a_config_error(tmp_path):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["data=human4d", "logger=none", f"output_dir={tmp_path}"],
            return_hydra_config=True,
        )
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        with pytest.raises(ConfigError, match="data.source.root"):
            train(cfg)


@pytest.mark.slow
def test_cli_missing_data_root_names_it(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "heatlit.train",
        "data=human4d",
        "data.source.root=/nonexistent/h4d",
        "logger=none",
        f"hydra.run.dir={tmp_path}",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "/nonexistent/h4d" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("loss", "beta"), [("mse", 20.0), ("integral", 1.0), ("both", 20.0)])
def test_soft_argmax_decodes_at_the_losses_temperature(loss, beta):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"loss={loss}"])
    assert cfg.decoders.soft_argmax.beta == beta


def test_dropped_decoder_leaves_no_half_config(tmp_path):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["~decoder@decoders.soft_argmax"])
    assert "soft_argmax" not in cfg.decoders
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["+decoders.bogus.beta=3"])
    from heatlit.training.checks import check_config

    with pytest.raises(ConfigError, match="decoders.bogus is not a decoder config"):
        check_config(cfg)


def _compose(overrides):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def test_scoring_follows_the_data_description(data_dir, shared_data):
    """Metrics, OKS AP, flip test and the monitored metric come from the description, for each dataset."""
    synth = _compose([*TINY, f"data.source.data_dir={data_dir}", "model=hourglass_tiny"])
    dm = build_datamodule(synth)
    module = build_module(synth, dm, build_decoders(synth))
    assert set(module.scorers["val"].metrics["dark"].keys()) == {"pckh@0.1", "pckh@0.5", "rmse", "auc"}
    assert module.scorers["val"].metrics_3d is None
    # no annotation file: OKS AP against each frame's own person, at test time only (PCKh picks the
    # checkpoint), with the upper bound
    assert module.scorers["val"].metrics_coco is None
    assert isinstance(module.scorers["test"].metrics_coco["dark"], SampleOksAP)
    assert module.scorers["test"].metrics_coco["dark"].expansion == KeypointExpansion(ksize=11, unit=1.0)
    by_ap_cfg = _compose([*TINY, f"data.source.data_dir={data_dir}", "monitor.metric=ap"])
    by_ap = build_module(by_ap_cfg, dm, build_decoders(by_ap_cfg))
    assert by_ap.scorers["val"].metrics_coco is not None  # an OKS figure picks the checkpoint: scored at val
    assert module.description.flip_index == dm.description.flip_index and module.grid is dm.grid
    assert monitor_key(synth, dm) == "val/dark/pckh@0.1"

    coco = _compose(["data=coco", "model=simplebaseline_tiny", "data.input_size=[64,48]", "logger=none"])
    dm = build_datamodule(coco)
    module = build_module(coco, dm, build_decoders(coco))
    assert module.model.num_joints == 17 and dm.description.in_channels == 3
    assert set(module.scorers["val"].metrics["dark"].keys()) == {"pck@0.2", "rmse", "auc"}
    assert module.scorers["val"].metrics_coco["dark"].expansion is None  # AP picks the checkpoint; no bound
    oks = module.scorers["test"].metrics_coco["dark"]
    assert str(oks.ann_file) == str(shared_data / "coco_sample" / "test_coco.json")
    assert list(oks.sigmas) == list(dm.description.oks_sigmas)
    assert monitor_key(coco, dm) == "val/dark/ap"
    with pytest.raises(ValueError, match="metric_kind='pckh' contradicts the coco data"):
        _ = build_datamodule(_compose(["data=coco", "+data.metric_kind=pckh"])).description
