"""HUMAN4D split lists as the reproduction report describes them (seed 000, sec. 3.3.2).

    "Using the single-person part of the HUMAN4D dataset, clipping the first 100 frames from each sequence
    (to exclude T-Pose calibration frames) and sub-sampling the remaining part of the sequence, we create a
    set of 98,864 single-view samples from 14 single-person activities, including all 4 depth maps per
    multi-view frame. We use the data of the first three subjects performing all the activities for
    training, while we split the activities performed by the fourth subject (unseen) in two halves for
    validation and testing. [...] The training, validation and testing data sets consist of 73,248, 12,236
    and 13,380 samples, respectively."

What the report leaves open is a **reading** here (docs/REPRODUCTION.md gives the reasons):

- a *sequence* is the frames of one (subject, activity) recording that have a pose file (pose index
  ``frame - skip >= 0``, see :mod:`heatlit.data.human4d`), in frame order; the first ``drop`` (100) are clipped;
- *sub-sampling* keeps every ``step``-th frame of the rest, starting with the first; the report does not give
  the step, so ``step="auto"`` takes the integer step whose counts come closest to the report's;
- a frame is kept only with a depth map from every device the loader uses (all 4 views), and yields one
  sample per device;
- the *two halves* of the held-out subject's activities are the first seven of the report's list (sec. 3.3.1)
  for validation and the last seven for testing;
- a recording's activity is read from ``<root>/metadata_single.txt`` (``subject<TAB>activity<TAB>recording``,
  the file the dataset authors' tooling reads) when it exists, else from the recording folder's name.

The lists are what :class:`heatlit.data.human4d.Human4DSource` reads: ``<frame> <subject> <recording>`` per line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from heatlit.data.errors import DataError
from heatlit.data.human4d import (
    SPLIT_FILES,
    list_depth,
    list_poses,
    read_intrinsics,
    read_offsets,
    recording_dump,
    subject_devices,
)

log = logging.getLogger(__name__)

#: The 14 single-person activities in the report's order (sec. 3.3.1).
ACTIVITIES = (
    "running",
    "jumping_jack",
    "bending",
    "punching_n_kicking",
    "basketball_dribbling",
    "laying_down",
    "sitting_down",
    "sitting_on_a_stool",
    "talking",
    "object_dropping_n_picking",
    "stretching_n_talking",
    "walking_n_talking",
    "watching_scary_movie",
    "in-flight_safety_announcement",
)
#: Folder names the dataset authors' tooling uses for three of them (same order, ids 2, 8 and 12).
ALIASES = {
    "junping_jack": "jumping_jack",
    "sitting_on_a_chair": "sitting_on_a_stool",
    "talking_n_walking": "walking_n_talking",
}
VAL_ACTIVITIES = ACTIVITIES[:7]  # reading: "in two halves", the report's list cut in the middle
TEST_ACTIVITIES = ACTIVITIES[7:]
TRAIN_SUBJECTS = ("S1", "S2", "S3")  # "the first three subjects performing all the activities"
HELD_OUT = "S4"  # "the fourth subject (unseen)"
DROP = 100  # "clipping the first 100 frames from each sequence"
REPORT_COUNTS = {"train": 73_248, "val": 12_236, "test": 13_380}  # samples, sec. 3.3.2
METADATA = "metadata_single.txt"
INFO = "splits.json"
MAX_AUTO_STEP = 60


def activity_of(name: str) -> str | None:
    """The report's activity name for a folder or metadata name, or None when it is not one of the 14."""
    name = ALIASES.get(name, name)
    return name if name in ACTIVITIES else None


@dataclass
class Recording:
    """One (subject, activity) recording: its frames with a pose, and which of them have every view."""

    subject: str
    activity: str
    recording: str
    frames: list[int]  # frame numbers with a pose file, ascending
    complete: set[int]  # of those, the frames with a depth map from every device
    devices: int

    def kept(self, step: int, drop: int) -> list[int]:
        """The frames the split lists: clip ``drop``, every ``step``-th of the rest, complete ones only."""
        return [f for f in self.frames[drop::step] if f in self.complete]


@dataclass
class Splits:
    """Split assignments and counts for one step."""

    step: int
    drop: int
    lines: dict[str, list[str]] = field(default_factory=dict)  # split -> "<frame> <subject> <recording>"
    samples: dict[str, int] = field(default_factory=dict)  # split -> listed frames x devices
    incomplete: int = 0  # frames dropped for a missing view

    def deviation(self, target: dict[str, int] = REPORT_COUNTS) -> int:
        """Summed absolute difference of the sample counts from ``target``."""
        return sum(abs(self.samples.get(k, 0) - v) for k, v in target.items())


def split_of(subject: str, activity: str, train_subjects: Sequence[str], held_out: str) -> str | None:
    if subject in train_subjects:
        return "train"
    if subject == held_out:
        return "val" if activity in VAL_ACTIVITIES else "test"
    return None


def read_metadata(path: Path) -> dict[tuple[str, str], str]:
    """``(subject, activity) -> recording`` from a ``metadata_single.txt``; recordings marked ``!`` are left out."""
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) != 3 or not all(parts):
            raise DataError(f"{path}:{n}: expected '<subject>\\t<activity>\\t<recording>', found {line!r}")
        subject, activity, recording = parts
        if "!" in recording:  # the tooling's mark for a recording not to use
            continue
        name = activity_of(activity)
        if name is not None:
            out[(subject, name)] = recording
    return out


def find_recordings(root: Path, subjects: Iterable[str]) -> tuple[dict[tuple[str, str], str], list[str]]:
    """``(subject, activity) -> recording folder`` for the single-person activities, and the folders ignored."""
    metadata = root / METADATA
    if metadata.is_file():
        found = {k: v for k, v in read_metadata(metadata).items() if k[0] in subjects}
        return found, []
    found, ignored = {}, []
    for subject in subjects:
        subject_dir = root / subject
        if not subject_dir.is_dir():
            raise FileNotFoundError(f"HUMAN4D subject folder not found: {subject_dir}")
        for folder in sorted(p.name for p in subject_dir.iterdir() if (p / "Dump").is_dir()):
            activity = activity_of(folder)
            if activity is None:
                ignored.append(f"{subject}/{folder}")
            else:
                found[(subject, activity)] = folder
    return found, ignored


def scan(root: str | Path, train_subjects=TRAIN_SUBJECTS, held_out: str = HELD_OUT) -> list[Recording]:
    """Every single-person recording of the split subjects, in subject and activity order.

    Raises:
        FileNotFoundError / DataError: a missing root, subject, folder or file, naming it; no recording found.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"HUMAN4D root not found: {root}")
    subjects = [*train_subjects, held_out]
    intrinsics = read_intrinsics(root / "device_repository.json")
    recordings, ignored = find_recordings(root, subjects)
    if ignored:
        log.info("not single-person activities, left out: %s", ", ".join(ignored))
    sequences = []
    for subject in subjects:
        missing = [a for a in ACTIVITIES if (subject, a) not in recordings]
        if len(missing) == len(ACTIVITIES):
            raise DataError(
                f"{root / subject}: no recording of the 14 single-person activities (folders named after them, "
                f"e.g. {root / subject / 'running'}, or a {root / METADATA} mapping them)"
            )
        if missing:
            log.warning("%s lacks %d activities: %s", subject, len(missing), ", ".join(missing))
        subject_dir = root / subject
        offsets = read_offsets(subject_dir / "offsets.txt")
        devices = subject_devices(subject_dir, intrinsics, repository=root / "device_repository.json")
        for activity in ACTIVITIES:
            recording = recordings.get((subject, activity))
            if recording is None:
                continue
            if recording not in offsets:
                raise DataError(f"{subject_dir / 'offsets.txt'}: no line for recording {recording!r}")
            dump = recording_dump(subject_dir, recording)
            skip, poses, depth = offsets[recording], list_poses(dump), list_depth(dump)
            frames = sorted(p + skip for p in poses)  # pose index = frame - skip (heatlit.data.human4d)
            complete = {f for f in frames if all((f, d) in depth for d in devices)}
            sequences.append(Recording(subject, activity, recording, frames, complete, len(devices)))
    return sequences


def assign(
    sequences: Sequence[Recording],
    step: int,
    drop: int = DROP,
    train_subjects=TRAIN_SUBJECTS,
    held_out: str = HELD_OUT,
) -> Splits:
    """The split lists and sample counts for one subsampling ``step``."""
    if step < 1 or drop < 0:
        raise ValueError(f"need step >= 1 and drop >= 0, got step={step}, drop={drop}")
    out = Splits(step, drop, {k: [] for k in SPLIT_FILES}, {k: 0 for k in SPLIT_FILES})
    for seq in sequences:
        split = split_of(seq.subject, seq.activity, train_subjects, held_out)
        if split is None:
            continue
        kept = seq.kept(step, drop)
        out.incomplete += len(seq.frames[drop::step]) - len(kept)
        out.lines[split] += [f"{f} {seq.subject} {seq.recording}" for f in kept]
        out.samples[split] += len(kept) * seq.devices
    return out


def choose_step(
    sequences: Sequence[Recording],
    drop: int = DROP,
    target: dict[str, int] = REPORT_COUNTS,
    max_step: int = MAX_AUTO_STEP,
    train_subjects=TRAIN_SUBJECTS,
    held_out: str = HELD_OUT,
) -> Splits:
    """The integer step whose counts come closest to ``target`` (summed absolute difference; ties: smaller)."""
    return min(
        (assign(sequences, s, drop, train_subjects, held_out) for s in range(1, max_step + 1)),
        key=lambda splits: (splits.deviation(target), splits.step),
    )


def write_splits(root: str | Path, splits: Splits, force: bool = False) -> dict[str, Path]:
    """Write the three lists (and ``splits.json``: step, drop, counts) into ``root``.

    Raises:
        FileExistsError: a list exists with other content and ``force`` is not set (nothing is written).
    """
    root = Path(root)
    texts = {k: "".join(line + "\n" for line in splits.lines[k]) for k in SPLIT_FILES}
    paths = {k: root / name for k, name in SPLIT_FILES.items()}
    clash = [p for k, p in paths.items() if p.is_file() and p.read_text() != texts[k]]
    if clash and not force:
        raise FileExistsError(
            f"{', '.join(map(str, clash))} exist with other lists; pass --force to replace them"
        )
    for k, path in paths.items():
        path.write_text(texts[k])
    info = {
        "source": "heatlit.prepare human4d (seed 000 sec. 3.3.2; readings in docs/REPRODUCTION.md)",
        "step": splits.step,
        "drop": splits.drop,
        "samples": splits.samples,
        "report_samples": REPORT_COUNTS,
        "frames_without_every_view": splits.incomplete,
    }
    paths["info"] = root / INFO
    paths["info"].write_text(json.dumps(info, indent=2) + "\n")
    return paths


def summary(splits: Splits) -> list[str]:
    """Printable lines: the counts beside the report's, and a warning line for each split that differs."""
    lines = [f"step {splits.step}, first {splits.drop} frames of every sequence clipped"]
    lines += [
        f"  {k:5s} {splits.samples[k]:7,d} samples from {len(splits.lines[k]):,d} frames; the report: {v:,d}"
        for k, v in REPORT_COUNTS.items()
    ]
    if splits.incomplete:
        lines.append(f"  {splits.incomplete} frame(s) left out: a depth view is missing")
    return lines


def differences(splits: Splits) -> list[str]:
    """One warning per split whose count is not the report's."""
    return [
        f"{k}: {splits.samples[k]:,d} samples, the report has {v:,d} ({splits.samples[k] - v:+,d})"
        for k, v in REPORT_COUNTS.items()
        if splits.samples[k] != v
    ]
