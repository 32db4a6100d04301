"""The start of a run and what it leaves for later (issue 15 item 3): the start block, TensorBoard and logger
combinations, ``--help`` with examples, the failing job's last error line in its log, the known-noise filters."""

from __future__ import annotations

import logging
import struct
import sys
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from heatlit.report.failures import CRASHED, diagnose
from heatlit.results import read_results
from heatlit.training.checks import ConfigError
from heatlit.training.noise import quiet_known_noise
from heatlit.training.run import main_guard
from tests.conftest import CONF_DIR


def test_start_block_says_what_where_on_what_with_how_much(depth_run):
    """One block: the choices, the run folder, the device, samples per split, where the logs go."""
    blocks = [line for line in depth_run["log"] if line.startswith("heatlit.train ")]
    assert len(blocks) == 1
    lines = blocks[0].splitlines()
    assert lines[0].startswith(
        "heatlit.train model=hourglass_tiny encoding=unquant loss=mse head=2d data=synth"
    )
    assert "(sigma 2.0, stride 4, seed 1314)" in lines[0]
    rows = dict(line.split(None, 1) for line in lines[1:])
    scored = read_results(depth_run["dir"] / "results.json").stage(
        "test"
    )  # every configured decoder, in order
    assert rows["decoders"] == f"{', '.join(scored)}; best checkpoint by val/dark/pckh@0.1"
    assert rows["run"] == str(depth_run["dir"])
    assert rows["device"] == "cpu, 1 process"
    assert rows["samples"] == "train 16, val 8, test 8"
    assert rows["logs"].startswith("csv/metrics.csv, tensorboard/ (tensorboard --logdir ")


def read_event_tags(path: Path) -> set[str]:
    """Scalar tags of a TensorBoard event file (TFRecord framing: length, crc, Event proto, crc)."""
    from tensorboardX.proto.event_pb2 import Event

    tags, data, offset = set(), path.read_bytes(), 0
    while offset < len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        event = Event.FromString(data[offset + 12 : offset + 12 + length])
        tags |= {value.tag for value in event.summary.value}
        offset += 12 + length + 4
    return tags


def test_tensorboard_events_are_written_inside_the_run_folder(depth_run):
    events = sorted((depth_run["dir"] / "tensorboard").glob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file in the run folder"
    tags = set().union(*(read_event_tags(p) for p in events))
    assert {"val/dark/pckh_0.1", "test/dark/pckh_0.5", "test/argmax/rmse"} <= tags  # '@' is no tag character
    assert (depth_run["dir"] / "csv" / "metrics.csv").is_file()  # beside the CSV log


@pytest.mark.parametrize(
    "choice, expected",
    [
        ("tensorboard", {"tensorboard"}),
        ("[csv,tensorboard]", {"csv", "tensorboard"}),
        ("default", {"csv", "wandb"}),
    ],
)
def test_logger_choices_combine(choice, expected):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"logger={choice}"])
    loggers = OmegaConf.to_container(cfg.logger, resolve=False)
    assert set(loggers) == expected
    assert all(node["save_dir"] == "${output_dir}" for node in loggers.values())  # inside the run folder


@pytest.mark.parametrize("entry", ["heatlit.train", "heatlit.predict"])
def test_help_shows_examples(entry, monkeypatch, capsys):
    import importlib

    module = importlib.import_module(entry)
    monkeypatch.setattr(sys, "argv", [entry, "--help"])
    monkeypatch.setenv("HYDRA_MAIN_MODULE", "__main__")  # find conf/ as `python -m` does: beside the file
    with pytest.raises(SystemExit) as done:
        module.main()
    assert done.value.code in (0, None)
    text = capsys.readouterr().out
    assert "Examples:" in text and f"python -m {entry} " in text
    assert "Config groups" in text and "decoder: argmax, com, dark" in text
    if entry == "heatlit.train":
        assert "python -m heatlit.train debug=fast" in text and "logger=[csv,tensorboard]" in text


@pytest.fixture
def job_log(tmp_path):
    """A file handler on the root logger, as Hydra's job log (``train.log``) is."""
    handler = logging.FileHandler(tmp_path / "train.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)
    yield tmp_path / "train.log"
    logging.getLogger().removeHandler(handler)
    handler.close()


def test_a_failing_job_leaves_its_last_error_line_in_its_log(job_log, capsys):
    """A crash: its traceback in the log (not twice on the terminal), the exception its last error line."""

    def crash(cfg):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(torch.OutOfMemoryError):
        main_guard(crash, None)
    status, line, _, source = diagnose(job_log.parent, job_log.parent, None)
    assert (status, source) == (CRASHED, job_log)
    assert line == "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert "Traceback (most recent call last):" in job_log.read_text()
    assert "Traceback" not in capsys.readouterr().err  # the terminal keeps Hydra's own report only


def test_a_refused_job_leaves_its_one_line_in_its_log(job_log, capsys):
    def refuse(cfg):
        raise ConfigError("model stride 4 != data stride 8")

    with pytest.raises(SystemExit):
        main_guard(refuse, None)
    assert capsys.readouterr().err.strip() == "configuration error: model stride 4 != data stride 8"
    status, line, _, _ = diagnose(job_log.parent, job_log.parent, None)
    assert status == CRASHED and line.endswith(
        "[ERROR] - configuration error: model stride 4 != data stride 8"
    )


def test_known_noise_is_silenced_and_other_warnings_still_show():
    from lightning.pytorch.utilities._pytree import _tree_flatten

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_known_noise()
        _tree_flatten(torch.zeros(1))  # Lightning builds torch's deprecated LeafSpec here
        warnings.warn("`isinstance(x, Other)` is deprecated", FutureWarning, stacklevel=1)
        warnings.warn("something else", UserWarning, stacklevel=1)
    messages = [str(w.message) for w in caught]
    assert not any("LeafSpec" in m for m in messages)
    assert "`isinstance(x, Other)` is deprecated" in messages and "something else" in messages

    from lightning_utilities.core import rank_zero

    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    rank_zero.log.addHandler(handler)
    try:
        L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_model_summary=False)
    finally:
        rank_zero.log.removeHandler(handler)
    assert any("GPU available" in r for r in records)  # Lightning's other lines stay
    assert not any("litlogger" in r for r in records)


def test_tensorboard_keeps_fit_events_when_the_test_starts_in_the_same_second(tmp_path, monkeypatch):
    """tensorboardX names event files by whole seconds: a writer closed after fit and reopened for the test
    in the same second used to overwrite every training and validation event (seen in fast full runs)."""
    import types

    import tensorboardX.event_file_writer as event_file_writer

    from heatlit.training.loggers import tensorboard_logger

    monkeypatch.setattr(event_file_writer, "time", types.SimpleNamespace(time=lambda: 1796409845.0))
    logger = tensorboard_logger(str(tmp_path), version="")
    logger.log_metrics({"val/dark/pckh@0.1": 1.0}, step=0)
    logger.finalize("success")  # Lightning, at the end of fit
    logger.log_metrics({"test/dark/pckh@0.1": 2.0}, step=1)
    logger.finalize("success")  # at the end of test
    logger.close_writer()  # heatlit.training.run.finish_loggers
    (events,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    assert {"val/dark/pckh_0.1", "test/dark/pckh_0.1"} <= read_event_tags(events)
