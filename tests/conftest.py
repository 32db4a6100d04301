"""Shared test fixtures and paths."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
CONF_DIR = ROOT / "conf"
# the default decoders (conf/decoders/gaussian.yaml), in the order every run scores them
DEFAULT_DECODERS = ("argmax", "standard", "standard_top2", "dark", "com", "mom", "soft_argmax")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real fixtures not found at {SHARED_DATA} (see shared/data/README.md)")
    return SHARED_DATA


# ---------------------------------------------------------------------------------------------------------------
# Tiny trained runs, each trained once per session in-process and used read-only (prediction, the start block,
# TensorBoard). A 64x32 rendered set whose input size equals the frame (input px = image px).
ONE_STEP = [
    "debug=limit",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "trainer.accelerator=cpu",
    "callbacks.progress=null",
    "callbacks.lr=null",
    "qualitative=0",
]
TINY_DEPTH = [
    "data.source.width=64",
    "data.source.height=32",
    "data.input_size=[32,64]",
    "data.source.train_frames=16",
    "data.source.val_frames=8",
    "data.source.test_frames=8",
    "data.batch_size=8",
    *ONE_STEP,
]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def train_in_process(overrides: list[str]) -> list[str]:
    """``heatlit.train`` on the composed config, as the CLI runs it; returns heatlit's log messages."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from heatlit.training.run import train

    handler = _Lines()
    logger = logging.getLogger("heatlit")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            with open_dict(cfg):
                del cfg["hydra"]
            train(cfg)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return handler.lines


@pytest.fixture(scope="session")
def depth_run(tmp_path_factory) -> dict:
    """A tiny depth run (hourglass_tiny on rendered data) logging to CSV and TensorBoard: its folder and log."""
    run_dir = tmp_path_factory.mktemp("depth-run") / "run"
    cache = tmp_path_factory.mktemp("depth-cache")
    lines = train_in_process(
        [*TINY_DEPTH, f"data.source.data_dir={cache}", f"output_dir={run_dir}", "logger=[csv,tensorboard]"]
    )
    return {"dir": run_dir, "log": lines}


@pytest.fixture(scope="session")
def coco_run(tmp_path_factory) -> Path:
    """A tiny COCO run (simplebaseline_tiny on the 4-image sample, 64x48 inputs), not tested: its folder."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real fixtures not found at {SHARED_DATA} (see shared/data/README.md)")
    run_dir = tmp_path_factory.mktemp("coco-run") / "run"
    train_in_process(
        [
            "data=coco",
            "model=simplebaseline_tiny",
            "data.input_size=[64,48]",
            "data.batch_size=16",
            *ONE_STEP,
            "test=false",
            "logger=none",
            f"output_dir={run_dir}",
        ]
    )
    return run_dir
