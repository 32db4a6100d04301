"""``heatlit.prepare human4d``: the reproduction's split lists, counted by hand on small HUMAN4D-layout trees."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from heatlit.data.errors import DataError
from heatlit.data.human4d import Human4DSource, read_split
from heatlit.prepare import human4d as h4d
from heatlit.prepare.cli import main
from tests.conftest import ROOT
from tests.human4d_fixture import write_human4d_fixture, write_human4d_layout

SKIP = 3
# (subject, recording folder) -> posed frames. With the first 100 clipped and step 4, a recording of n frames
# keeps positions 100, 104, ... < n: ceil((n - 100) / 4) frames, 4 views each.
LAYOUT = {
    ("S1", "running"): 113,  # 100 104 108 112 -> 4 frames
    ("S1", "junping_jack"): 105,  # the tooling's folder name for jumping_jack: 100 104 -> 2
    ("S2", "running"): 100,  # nothing left after the clip
    ("S2", "bending"): 109,  # 100 104 108 -> 3, one of them without a view -> 2
    ("S3", "dancing_together"): 2,  # multi-person: not one of the 14, left out
    ("S3", "sitting_on_a_chair"): 110,  # sitting_on_a_stool: 100 104 108 -> 3
    ("S4", "running"): 117,  # first half -> validation: 100 .. 116 -> 5
    ("S4", "sitting_down"): 104,  # 7th activity, validation: 100 -> 1
    ("S4", "sitting_on_a_chair"): 103,  # 8th, testing: 100 -> 1
    ("S4", "talking_n_walking"): 111,  # walking_n_talking, testing: 100 104 108 -> 3
}
MISSING = [("S2", "bending", 104 + SKIP, "M72h")]
EXPECTED = {"train": (4 + 2 + 0 + 2 + 3) * 4, "val": (5 + 1) * 4, "test": (1 + 3) * 4}


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("h4d-layout")
    write_human4d_layout(root, LAYOUT, skip=SKIP, missing=MISSING)
    return root


def test_counts_follow_the_report_recipe(layout):
    splits = h4d.assign(h4d.scan(layout), step=4)
    assert splits.samples == EXPECTED
    assert splits.incomplete == 1
    assert splits.lines["train"][:5] == [
        "103 S1 running",
        "107 S1 running",
        "111 S1 running",
        "115 S1 running",
        "103 S1 junping_jack",  # activity order of the report, not folder order
    ]
    assert "107 S2 bending" not in splits.lines["train"]  # a view is missing
    assert {line.split()[2] for line in splits.lines["val"]} == {"running", "sitting_down"}
    assert {line.split()[2] for line in splits.lines["test"]} == {"sitting_on_a_chair", "talking_n_walking"}
    assert not any("dancing_together" in line for lines in splits.lines.values() for line in lines)


def test_halves_are_the_reports_list_cut_in_the_middle():
    assert len(h4d.ACTIVITIES) == 14 and set(h4d.VAL_ACTIVITIES).isdisjoint(h4d.TEST_ACTIVITIES)
    assert h4d.VAL_ACTIVITIES[-1] == "sitting_down" and h4d.TEST_ACTIVITIES[0] == "sitting_on_a_stool"
    assert h4d.REPORT_COUNTS == {"train": 73_248, "val": 12_236, "test": 13_380}
    assert sum(h4d.REPORT_COUNTS.values()) == 98_864  # the report's total, 4 views of 24,716 frames


def test_auto_step_recovers_the_step_that_made_the_counts(layout):
    recordings = h4d.scan(layout)
    for step in (3, 7):
        target = h4d.assign(recordings, step, drop=0).samples
        assert h4d.choose_step(recordings, drop=0, target=target).step == step


def test_lists_are_deterministic_and_guarded(layout, tmp_path):
    a = h4d.assign(h4d.scan(layout), step=4)
    b = h4d.assign(h4d.scan(layout), step=4)
    assert a.lines == b.lines
    paths = h4d.write_splits(layout, a)
    assert json.loads(paths["info"].read_text())["samples"] == EXPECTED
    h4d.write_splits(layout, b)  # the same lists: nothing to guard
    with pytest.raises(FileExistsError, match="--force"):
        h4d.write_splits(layout, h4d.assign(h4d.scan(layout), step=2))
    assert read_split(layout / "training.txt")[0] == (103, "S1", "running")


def test_errors_name_what_is_missing(tmp_path, capsys):
    assert main(["human4d", "--root", str(tmp_path / "nope")]) == 2
    assert "HUMAN4D root not found" in capsys.readouterr().err
    write_human4d_layout(tmp_path / "r", {("S1", "running"): 3, ("S4", "dancing_together"): 3})
    with pytest.raises(FileNotFoundError, match="S2"):
        h4d.scan(tmp_path / "r")
    with pytest.raises(DataError, match="S4: no recording of the 14"):
        h4d.scan(tmp_path / "r", train_subjects=("S1",))
    (tmp_path / "r" / h4d.METADATA).write_text("S1 running\n")
    with pytest.raises(DataError, match=r"metadata_single.txt:1"):
        h4d.scan(tmp_path / "r", train_subjects=("S1",))


def test_entry_point_builds_lists_the_loader_reads(tmp_path):
    """``python -m heatlit.prepare``: rendered recordings mapped to activities by the tooling's metadata file."""
    root = tmp_path / "h4d"
    write_human4d_fixture(
        root, subjects=(1, 2), activities=("walking", "punching"), frames=3, skip=1, lists=False
    )
    (root / h4d.METADATA).write_text(
        "S1\trunning\twalking\nS1\ttalking_n_walking\tpunching\nS1\tbending\tpunching!\n"
        "S2\trunning\twalking\nS2\ttalking_n_walking\tpunching\n"
    )
    args = [
        "human4d",
        "--root",
        str(root),
        "--drop",
        "1",
        "--step",
        "2",
        "--train-subjects",
        "S1",
        "--held-out",
        "S2",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run(
        [sys.executable, "-m", "heatlit.prepare", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # posed frames 1..3: frame 1 clipped, of 2 and 3 every second one kept: frame 2, 4 views per recording
    assert "train       8 samples" in proc.stdout and "test        4 samples" in proc.stdout
    assert "warning: train: 8 samples, the report has 73,248" in proc.stderr
    for split, recordings in (
        ("train", {"walking", "punching"}),
        ("val", {"walking"}),
        ("test", {"punching"}),
    ):
        src = Human4DSource(str(root), split)
        assert len(src) == {"train": 8, "val": 4, "test": 4}[split]
        assert {s[3] for s in src.samples} == recordings and {s[4] for s in src.samples} == {2}
    assert Human4DSource(str(root), "val")[0]["meta"]["activity"] == "walking"  # the listed files load
    assert main([*args[:5], "--step", "1", *args[7:]]) == 2  # other lists exist: kept without --force
    assert len(Human4DSource(str(root), "train")) == 8
