"""Safe runs (issue 11): resume only the run named, load checkpoints without running code, one-line errors,
one writer under DDP. Every case uses real files: a tiny run trained once per session, copies of it, a real
malicious pickle, real CLI processes (the slow tier)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from heatlit.models.checkpoint import CheckpointError, load_checkpoint
from heatlit.models.pretrained import load_pretrained
from heatlit.training.checks import ConfigError
from heatlit.training.run import evaluate, main_guard, train
from tests.conftest import CONF_DIR, ROOT

# The session's tiny run: 3 short epochs, validation only every 2nd epoch (so epoch 3 brings no new best),
# a step schedule (its state pickles a Counter), a test split of 9 frames (odd: DDP shares of 5 and 4 frames, 2 and 1 batches).
RUN = [
    "data.source.width=64",
    "data.source.height=32",
    "data.input_size=[32,64]",
    "data.source.train_frames=24",
    "data.source.val_frames=8",
    "data.source.test_frames=9",
    "data.batch_size=4",
    "model.num_stacks=1",
    "model.features=16",
    "qualitative=2",
    "debug=limit",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=3",
    "+trainer.check_val_every_n_epoch=2",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.log_every_n_steps=1",
    "callbacks.progress=null",
    "callbacks.lr=null",
    "logger=csv",
    "optim=multistep",
    "optim.scheduler.milestones=[2]",
]
WITH_WANDB = [*(o for o in RUN if not o.startswith("logger=")), "logger=default"]


def call(fn, config: str, overrides: list[str]):
    """``fn`` on a config composed as the CLI would (the typed overrides recorded for the resume check)."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(config, overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return fn(cfg)


def snapshot(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and not p.relative_to(folder).as_posix().startswith(skip)
    }


class _RunsShell:
    """Unpickling this calls ``os.system`` (what a crafted checkpoint would do)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A real torch checkpoint whose unpickling would create ``marker``."""
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _RunsShell(f"touch {marker}")}, path)
    return path


class CrashOnce(L.Callback):
    """Kills the run at the start of epoch ``epoch`` the first time (the marker file remembers)."""

    def __init__(self, epoch: int, marker: str) -> None:
        self.epoch, self.marker = epoch, Path(marker)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch and not self.marker.exists():
            self.marker.touch()
            raise RuntimeError("simulated crash")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synth-safe")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, cache) -> Path:
    """A finished run folder (results.json, best and last checkpoints, csv), trained once; use read-only."""
    out = tmp_path_factory.mktemp("runs") / "finished"
    call(train, "train", [*RUN, f"data.source.data_dir={cache}", f"output_dir={out}"])
    return out


def test_checkpoint_loader_runs_no_code_and_names_bad_files(tmp_path):
    marker = tmp_path / "pwned"
    evil = malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(CheckpointError, match=r"refusing to load .*evil.ckpt: it would import posix.system"):
        load_checkpoint(evil)
    with pytest.raises(ValueError, match="refusing to load .*evil.ckpt"):  # pretrained weights: no fallback
        load_pretrained(torch.nn.Linear(1, 1), evil)
    import pickle

    legacy = tmp_path / "legacy.pt"  # a plain (non-zip) pickle stream
    legacy.write_bytes(pickle.dumps({"payload": _RunsShell(f"touch {marker}")}, protocol=2))
    with pytest.raises(CheckpointError, match="refusing to load .*legacy.pt: it would import posix.system"):
        load_checkpoint(legacy)
    assert not marker.exists()

    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "heatlit_config": {"a": [1, 2]}}, good)
    assert load_checkpoint(good)["heatlit_config"] == {"a": [1, 2]}
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    junk = tmp_path / "junk.ckpt"
    junk.write_text("not a checkpoint")
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    for path in (truncated, junk, empty):
        with pytest.raises(CheckpointError, match=f"cannot read {path}: truncated or not a torch checkpoint"):
            load_checkpoint(path)
    with pytest.raises(CheckpointError, match="checkpoint not found: .*missing.ckpt"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_error_printer_takes_paths_literally(capsys):
    def fails(cfg):
        raise ConfigError("no run at /tmp/a[/x]/b[bold]c")

    with pytest.raises(SystemExit) as exited:
        main_guard(fails, OmegaConf.create({}))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == "configuration error: no run at /tmp/a[/x]/b[bold]c"


def test_resume_rules_on_a_real_run(finished_run, cache, tmp_path):
    last = load_checkpoint(finished_run / "checkpoints" / "last.ckpt")
    best = load_checkpoint(finished_run / "checkpoints" / "best.ckpt")
    # last.ckpt is the end of the latest epoch (3 epochs, 2 steps each), though that epoch made no new best
    assert last["global_step"] == 6 and best["global_step"] == 4
    assert last["lr_schedulers"][0]["milestones"] == Counter(
        {2: 1}
    )  # a heatlit checkpoint loads weights-only
    assert last["heatlit_shape"] == {"num_joints": 18, "in_channels": 1}
    assert last["heatlit_groups"]["model"] == "hourglass_tiny"

    before = snapshot(finished_run)
    elsewhere = f"output_dir={tmp_path / 'elsewhere'}"
    loose = tmp_path / "loose.ckpt"
    shutil.copy(finished_run / "checkpoints" / "last.ckpt", loose)
    refused = [
        (["ckpt_path=last", elsewhere], "holds no checkpoints/last.ckpt; name the run to resume"),
        (
            [f"ckpt_path={finished_run}", "model=hrnet_tiny", "encoding.sigma=3.0", elsewhere],
            r"contradict its saved config: model: hourglass_tiny -> hrnet_tiny, encoding.sigma: 2.0 -> 3.0;",
        ),
        ([f"ckpt_path={finished_run}", elsewhere], r"already finished \(results.json written, 3 epochs\)"),
        (
            [f"ckpt_path={finished_run}", "trainer.max_epochs=5", elsewhere],
            r"trainer.max_epochs: 3 -> 5 changes the saved config; add resume_extend=true",
        ),
        (
            [f"ckpt_path={finished_run}", "trainer.max_epochs=2", "resume_extend=true", elsewhere],
            "trainer.max_epochs=2 but last.ckpt has 3 epochs",
        ),
        ([*RUN, f"data.source.data_dir={cache}", f"output_dir={finished_run}"], "already holds a run"),
        ([f"ckpt_path={finished_run / 'csv'}", elsewhere], "no checkpoints/last.ckpt in it"),
        ([f"ckpt_path={loose}", elsewhere], r"not inside a run folder .* model.pretrained="),
    ]
    for overrides, message in refused:
        with pytest.raises(ConfigError, match=message):
            call(train, "train", overrides)
    assert snapshot(finished_run) == before
    assert not (tmp_path / "elsewhere").exists()

    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    marker = tmp_path / "pwned"
    malicious_checkpoint(copy / "checkpoints" / "last.ckpt", marker)
    with pytest.raises(CheckpointError, match="refusing to load .*last.ckpt: it would import posix.system"):
        call(train, "train", [f"ckpt_path={copy}", elsewhere])
    assert not marker.exists()
    (copy / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(CheckpointError, match=f"cannot read {copy / 'checkpoints' / 'last.ckpt'}"):
        call(train, "train", [f"ckpt_path={copy}", elsewhere])


def test_eval_and_train_refuse_what_they_cannot_honour(finished_run, tmp_path, shared_data):
    out = f"output_dir={tmp_path / 'eval'}"
    with pytest.raises(ConfigError, match="from the checkpoint; it cannot use model"):
        call(evaluate, "eval", [f"ckpt_path={finished_run}", "+model=hrnet_tiny", out])
    with pytest.raises(ConfigError, match="needs the run named"):
        call(evaluate, "eval", ["ckpt_path=last", out])
    marker = tmp_path / "pwned"
    evil = malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(CheckpointError, match="refusing to load .*evil.ckpt"):
        call(evaluate, "eval", [f"ckpt_path={evil}", out])
    assert not marker.exists()
    with pytest.raises(ConfigError, match="checkpoint has 18 keypoints, data has 17"):
        call(evaluate, "eval", [f"ckpt_path={finished_run}", "data=coco", "logger=none", out])
    with pytest.raises(ConfigError, match="no 3D joints.*head=3d needs data with 3D joints"):
        call(train, "train", ["head=3d", "data=coco", "logger=none", f"output_dir={tmp_path / 'train'}"])
    assert not (tmp_path / "eval").exists() and not (tmp_path / "train").exists()


@pytest.mark.slow
def test_resume_after_a_crash_matches_an_uninterrupted_run(finished_run, cache, tmp_path, monkeypatch):
    """Killed at the start of epoch 3, resumed by naming the folder: the same numbers as the uninterrupted
    run, in the same folder, the CSV and the wandb run continued."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = tmp_path / "run"
    crash = [
        "+callbacks.crash._target_=tests.test_safe_runs.CrashOnce",
        "+callbacks.crash.epoch=2",
        f"+callbacks.crash.marker={tmp_path / 'crashed'}",
    ]
    command = [*WITH_WANDB, *crash, f"data.source.data_dir={cache}", f"output_dir={run_dir}"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        call(train, "train", command)
    assert not (run_dir / "results.json").exists()
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 4
    rows_before = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))

    resumed = call(train, "train", [f"ckpt_path={run_dir}", f"output_dir={tmp_path / 'ignored'}"])
    assert not (tmp_path / "ignored").exists()
    expected = json.loads((finished_run / "results.json").read_text())["results"]["test"]
    for decoder, metrics in expected.items():
        for name, value in metrics.items():
            assert resumed["test"][decoder][name] == pytest.approx(value, abs=1e-4), (decoder, name)
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["resumed_from"]["epoch"] == 2 and saved["epochs"] == 3

    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    kept = [{k: r[k] for k in rows_before[0]} for r in rows[: len(rows_before)]]
    assert kept == rows_before  # the curve up to the crash is kept
    train_steps = [r["step"] for r in rows if r.get("train/loss")]
    assert len(train_steps) == len(set(train_steps))  # nothing logged twice
    assert max(int(r["step"]) for r in rows) == 6
    wandb_runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 2 and len({p.name.rsplit("-", 1)[1] for p in wandb_runs}) == 1  # one run id

    # the checkpoint carries its config: evaluating the best one reproduces the test numbers
    evaluated = call(
        evaluate,
        "eval",
        [f"ckpt_path={finished_run}", "logger=none", "trainer.accelerator=cpu", "qualitative=0"]
        + ["+trainer.limit_test_batches=1", f"output_dir={tmp_path / 'eval'}"],
    )
    for name, value in expected["dark"].items():
        assert evaluated["test"]["dark"][name] == pytest.approx(value, abs=1e-4), name


def _cli(
    args: list[str], cwd: Path, wandb: str = "disabled", module: str = "heatlit.train", timeout: int = 300
):
    env = {**os.environ, "WANDB_MODE": wandb, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", module, *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_cli_resume_by_folder_and_refusals_leave_no_trace(finished_run, cache, tmp_path):
    run_dir, cwd = tmp_path / "run", tmp_path / "cwd"
    shutil.copytree(finished_run, run_dir)
    cwd.mkdir()
    before = snapshot(run_dir)
    for args, message in [
        ([f"ckpt_path={run_dir}", "model=hrnet_tiny"], "model: hourglass_tiny -> hrnet_tiny"),
        ([f"ckpt_path='{tmp_path}/we[/x]ird'"], f"{tmp_path}/we[/x]ird: no such run folder"),
    ]:
        proc = _cli(args, cwd)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert lines[-1].startswith("configuration error:") and message in lines[-1]
        assert "Traceback" not in proc.stderr
        assert not any(cwd.iterdir())  # Hydra's folder for the refused command is gone
    assert snapshot(run_dir) == before

    proc = _cli([f"ckpt_path={run_dir}", "trainer.max_epochs=4", "resume_extend=true"], cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not any(cwd.iterdir())  # the log went to the run folder, nothing else was written
    assert (
        f"resuming {run_dir} after epoch 3 (last.ckpt), up to max_epochs=4"
        in (run_dir / "train.log").read_text()
    )
    assert json.loads((run_dir / "results.json").read_text())["epochs"] == 4
    steps = [int(r["step"]) for r in csv.DictReader(open(run_dir / "csv" / "metrics.csv")) if r["train/loss"]]
    assert steps == sorted(set(steps)) and max(steps) == 7


@pytest.mark.slow
def test_multirun_resumes_each_job_in_its_own_folder(cache, tmp_path):
    sweep = tmp_path / "sweep"
    command = ["-m", *RUN, f"data.source.data_dir={cache}", "trainer.max_epochs=1", "encoding=quant,unquant"]
    command.append(f"hydra.sweep.dir={sweep}")
    first = _cli(command, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    kept, redo = sorted(p.parent for p in sweep.glob("*/results.json"))
    (redo / "results.json").unlink()  # killed after its last epoch, before the test
    kept_before = snapshot(kept, skip=(".hydra", "train.log"))
    record = (redo / ".hydra" / "overrides.yaml").read_text()

    second = _cli([*command, "ckpt_path=last"], tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert snapshot(kept, skip=(".hydra", "train.log")) == kept_before  # a finished job is left as it is
    assert json.loads((redo / "results.json").read_text())["resumed_from"]["epoch"] == 1
    # the record of the command that started the job stays; the resume's own record sits beside it
    assert (redo / ".hydra" / "overrides.yaml").read_text() == record
    assert "ckpt_path=last" in next((redo / ".hydra").glob("resumed-*/overrides.yaml")).read_text()


@pytest.mark.slow
def test_ddp_two_processes_one_writer_and_the_same_test_metrics(finished_run, cache, tmp_path):
    out = tmp_path / "ddp"
    ddp = ["trainer.devices=2", "+trainer.strategy=ddp"]
    once = ["trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1"]  # validation under DDP too
    args = [*WITH_WANDB, f"data.source.data_dir={cache}", *once, *ddp]
    proc = _cli([*args, f"hydra.run.dir={out}"], tmp_path, wandb="offline")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("every decoder on the same forward pass") == 1
    written = sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and "wandb" not in p.parts
    )
    assert [f for f in written if not f.startswith(".hydra/")] == [
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "csv/metrics.csv",
        "qualitative.png",
        "results.json",
        "train.log",
    ]
    assert len(list((out / "wandb").glob("offline-run-*"))) == 1

    # Test metrics over 2 processes equal those of 1 on the same checkpoint: the 9 test frames split 5 + 4,
    # no frame padded in twice.
    single = call(
        evaluate,
        "eval",
        [
            f"ckpt_path={finished_run}",
            "logger=none",
            "trainer.accelerator=cpu",
            f"output_dir={tmp_path / 'one'}",
        ],
    )
    proc = _cli(
        [
            f"ckpt_path={finished_run}",
            "logger=none",
            "trainer.accelerator=cpu",
            *ddp,
            f"hydra.run.dir={tmp_path / 'two'}",
        ],
        tmp_path,
        module="heatlit.eval",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("every decoder on the same forward pass") == 1
    two = json.loads((tmp_path / "two" / "results.json").read_text())["results"]["test"]
    for decoder, metrics in single["test"].items():
        for name, value in metrics.items():
            assert two[decoder][name] == pytest.approx(value, abs=1e-4), (decoder, name)
    assert not list((tmp_path / "two").glob("*ddp_process*"))
