"""HUMAN4D depth maps with VICON joints (``data=human4d``).

Layout read (the authors' published tooling; where it is ambiguous, the reading chosen here is marked
**choice** and the loader enforces it, raising an error that names the file otherwise)::

    <root>/device_repository.json     [{"Device": "M72e", "Depth Intrinsics": [{"1280x720": [9 numbers]}, ...]}, ...]
    <root>/training.txt               split lists, one sample frame per line: "<frame> <subject> <recording>"
    <root>/validation.txt
    <root>/testing.txt
    <root>/S1/offsets.txt             one line per recording: "<recording> <skip>" (tab or spaces)
    <root>/S1/pose/<DEV>.extrinsics   4 lines x 3 numbers: rows 0-2 rotation R, row 3 translation t (mm)
    <root>/S1/<recording>/Dump/depth/<frame>_<DEV>_depth_<n>.pgm    ASCII P2, 320x180, 100 um units
    <root>/S1/<recording>/Dump/gposes3d/<pose index>.npy             [people, 33, 3] float, mm, world

- Intrinsics: the ``"1280x720"`` entry is the row-major 3x3 K of the 1280x720 depth sensor; fx, fy, cx, cy
  are divided by 4 for the 320x180 maps (the tooling's recipe, no half-pixel shift), then ``cy -= 10`` for
  the reproduction's 320x160 centre crop (rows 10..169).
- Extrinsics are camera-to-world: ``X_world = R @ X_cam + t`` with R the 3x3 of rows 0-2 as written
  (**choice**, the tooling's ``y = R x + t``); joints go to the camera by ``X_cam = R.T @ (X_world - t)``.
- Offsets (**choice**): ``pose index = frame - skip`` where ``skip`` is the recording's offsets.txt value
  (the tooling names poses ``<frame - skip>.npy``); frames with a negative pose index have no pose.
- Split lists (**choice**): ``<frame>`` is the depth frame number of the file names, ``<subject>`` the
  subject folder (``S1``), ``<recording>`` the folder under it. Every listed frame yields one sample per
  device. A subject folder that holds ``Dump/`` itself (the abbreviated ``S<n>/Dump/...`` form) is one
  recording named after the subject.
- Person (**choice**): ``gposes3d`` arrays may hold several people; ``person`` (default 0) selects one.
- Visibility: in the cropped frame and not behind a depth-map surface nearer than the joint's slack
  (an average body's part radii, as for the synthetic data); missing depth never hides a joint.

Malformed files raise :class:`~heatlit.data.errors.DataError` (missing ones ``FileNotFoundError``) naming
the file and what was expected; with ``on_missing="skip"`` listed samples whose depth or pose file is
absent are dropped and counted in the log instead.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from heatlit.body import camera as dc
from heatlit.body import skeleton as sk
from heatlit.body.shape import make_body
from heatlit.data.base import canonical_split
from heatlit.data.depth_humans import DEPTH_HUMANS, DepthHumanSource
from heatlit.data.errors import DataError

log = logging.getLogger(__name__)

SPLIT_FILES = {"train": "training.txt", "val": "validation.txt", "test": "testing.txt"}
_DEPTH_NAME = re.compile(r"^(\d+)_([A-Za-z0-9]+)_depth_(\d+)\.pgm$")
_SLACK = make_body(1700.0).visibility_slack  # an average body's part radii


# ----------------------------------------------------------------------------------------- readers
def read_pgm(path: str | Path, size: tuple[int, int] | None = dc.FULL_SIZE) -> np.ndarray:
    """Read an ASCII (P2) PGM strictly.

    Args:
        path: the file.
        size: required ``(W, H)``, or None to accept any.

    Returns:
        ``[H, W]`` uint16 raw values (HUMAN4D: depth in 100 um units, 0 = missing).

    Raises:
        FileNotFoundError: no such file.
        DataError: not P2, bad header, wrong size, values out of range, or too few / many values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HUMAN4D depth map not found: {path}")
    text = path.read_text(errors="replace")
    tokens = re.sub(r"#[^\n]*", " ", text).split()
    if len(tokens) < 4 or tokens[0] != "P2":
        raise DataError(f"{path}: expected an ASCII PGM ('P2' header), found {tokens[:1] or 'an empty file'}")
    try:
        width, height, maxval = int(tokens[1]), int(tokens[2]), int(tokens[3])
    except ValueError as err:
        raise DataError(f"{path}: bad PGM header {tokens[1:4]} (expected width height maxval)") from err
    if size is not None and (width, height) != tuple(size):
        raise DataError(f"{path}: PGM is {width}x{height}, expected {size[0]}x{size[1]}")
    if not 0 < maxval <= 65535:
        raise DataError(f"{path}: PGM maxval {maxval} outside 1..65535")
    values = tokens[4:]
    if len(values) != width * height:
        raise DataError(
            f"{path}: expected {width}x{height} = {width * height} depth values, found {len(values)} (truncated?)"
        )
    try:
        data = np.array(values, dtype=np.int64)
    except ValueError as err:
        raise DataError(f"{path}: non-integer PGM value ({err})") from err
    if data.min() < 0 or data.max() > maxval:
        raise DataError(f"{path}: PGM values must lie in 0..{maxval}, found {data.min()}..{data.max()}")
    return data.reshape(height, width).astype(np.uint16)


def read_poses(path: str | Path) -> np.ndarray:
    """``[people, 33, 3]`` float64 world mm from a ``gposes3d`` file (errors name the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HUMAN4D pose file not found: {path}")
    try:
        poses = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: unreadable .npy (expected [people, 33, 3] float mm): {err}") from err
    if poses.ndim != 3 or poses.shape[1:] != (len(sk.HUMAN4D_33), 3) or poses.shape[0] < 1:
        raise DataError(f"{path}: joint array has shape {poses.shape}, expected [people >= 1, 33, 3]")
    if not np.issubdtype(poses.dtype, np.number):
        raise DataError(f"{path}: joint array has dtype {poses.dtype}, expected a float type")
    return poses.astype(np.float64)


def read_intrinsics(path: str | Path) -> dict[str, np.ndarray]:
    """Device name -> ``[3, 3]`` 1280x720 depth intrinsics from ``device_repository.json``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HUMAN4D device repository not found: {path}")
    try:
        entries = json.loads(path.read_text())
    except ValueError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON list of devices, found {type(entries).__name__}")
    out = {}
    for n, entry in enumerate(entries):
        try:
            name = entry["Device"]
            modes = entry["Depth Intrinsics"]
            K = next(np.asarray(m["1280x720"], dtype=np.float64) for m in modes if "1280x720" in m)
        except (KeyError, TypeError, StopIteration, ValueError) as err:
            raise DataError(
                f"{path}: entry {n} lacks 'Device' / 'Depth Intrinsics' [{{'1280x720': 9 numbers}}] ({err!r})"
            ) from err
        if K.size != 9:
            raise DataError(f"{path}: device {name!r} 1280x720 intrinsics have {K.size} numbers, expected 9")
        out[str(name)] = K.reshape(3, 3)
    return out


def read_extrinsics(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Camera-to-world ``(R [3, 3], t [3] mm)`` from a 4x3 ``.extrinsics`` text file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HUMAN4D extrinsics not found: {path}")
    try:
        data = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise DataError(f"{path}: expected 4 lines of 3 numbers ({err})") from err
    if data.shape != (4, 3):
        raise DataError(
            f"{path}: extrinsics have shape {data.shape}, expected 4x3 (rotation rows, translation)"
        )
    R, t = data[:3], data[3]
    if np.abs(R @ R.T - np.eye(3)).max() > 1e-3 or np.linalg.det(R) < 0:
        raise DataError(f"{path}: rows 0-2 are not a rotation matrix")
    return R, t


def read_offsets(path: str | Path) -> dict[str, int]:
    """Recording -> frame skip from a subject's ``offsets.txt``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HUMAN4D offsets file not found: {path}")
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"-?\d+", parts[1]):
            raise DataError(f"{path}:{n}: expected '<recording> <skip>', found {line!r}")
        out[parts[0]] = int(parts[1])
    return out


def read_split(path: str | Path) -> list[tuple[int, str, str]]:
    """``(frame, subject, recording)`` lines of a split list."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HUMAN4D split list not found: {path}")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or not parts[0].isdigit():
            raise DataError(f"{path}:{n}: expected '<frame> <subject> <recording>', found {line!r}")
        out.append((int(parts[0]), parts[1], parts[2]))
    return out


# ------------------------------------------------------------------------------------------ layout
def recording_dump(subject_dir: Path, recording: str) -> Path:
    """The ``Dump`` folder of a recording (``S1/<recording>/Dump``, or ``S1/Dump`` for the abbreviated form)."""
    if not subject_dir.is_dir():
        raise FileNotFoundError(f"HUMAN4D subject folder not found: {subject_dir}")
    flat = subject_dir / "Dump"
    dump = flat if recording == subject_dir.name and flat.is_dir() else subject_dir / recording / "Dump"
    for sub in ("depth", "gposes3d"):
        if not (dump / sub).is_dir():
            raise FileNotFoundError(f"HUMAN4D folder not found: {dump / sub}")
    return dump


def subject_devices(
    subject_dir: Path, intrinsics: dict, devices=None, repository: Path | None = None
) -> list[str]:
    """The devices a subject's samples use: ``devices``, else every one with extrinsics and intrinsics."""
    pose_dir = subject_dir / "pose"
    if devices is not None:
        for d in devices:
            if d not in intrinsics:
                raise DataError(f"{repository or 'device_repository.json'}: no intrinsics for device {d!r}")
        return list(devices)
    use = [d for d in sorted(p.stem for p in pose_dir.glob("*.extrinsics")) if d in intrinsics]
    if not use:
        raise FileNotFoundError(
            f"no <DEV>.extrinsics with intrinsics in {pose_dir} (devices: {list(intrinsics)})"
        )
    return use


def list_depth(dump: Path) -> dict[tuple[int, str], str]:
    """``(frame, device) -> file name`` of a recording's depth maps (one directory listing)."""
    out = {}
    for name in (p.name for p in (dump / "depth").iterdir()):
        m = _DEPTH_NAME.match(name)
        if m:
            out[(int(m.group(1)), m.group(2))] = name
    return out


def list_poses(dump: Path) -> set[int]:
    """Pose indices with a ``gposes3d/<index>.npy`` file."""
    return {int(p.stem) for p in (dump / "gposes3d").glob("*.npy") if p.stem.isdigit()}


# ------------------------------------------------------------------------------------------ source
def _subject_name(s) -> str:
    return f"S{s}" if isinstance(s, int) or str(s).isdigit() else str(s)


class Human4DSource(DepthHumanSource):
    """HUMAN4D depth samples as raw-sample dicts (``docs/CONTRACTS.md``); layout: see the module doc.

    Args:
        root: dataset root (holds ``device_repository.json`` and ``S1..S4``).
        split: ``"train"``, ``"val"`` or ``"test"`` (reads training / validation / testing.txt).
        subjects: subject names or numbers to keep (default: all in the split list).
        devices: device names to use (default: every device with intrinsics and extrinsics).
        person: which person of multi-person pose files.
        on_missing: ``"error"`` (default) or ``"skip"`` listed samples whose depth or pose file is absent
            (the skips are counted in the log).
        occlusion: mark joints behind a nearer depth surface invisible.
        slack_mm: how far (mm, scalar or ``[18]``) a joint may lie behind the depth surface and still
            count as visible; default: an average body's part radii (as the synthetic data uses).
    """

    description = replace(DEPTH_HUMANS, name="human4d")

    def __init__(
        self,
        root: str,
        split: str,
        subjects=None,
        devices=None,
        *,
        person: int = 0,
        on_missing: str = "error",
        occlusion: bool = True,
        slack_mm=None,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"HUMAN4D root not found: {self.root}")
        self.split = canonical_split(split)
        if on_missing not in ("error", "skip"):
            raise ValueError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
        self.person = int(person)
        self.slack = np.broadcast_to(
            np.asarray(_SLACK if slack_mm is None else slack_mm, dtype=np.float64), (sk.NUM_JOINTS,)
        )
        if not occlusion:
            self.slack = np.full(sk.NUM_JOINTS, np.inf)
        intrinsics = read_intrinsics(self.root / "device_repository.json")
        listed = read_split(self.root / SPLIT_FILES[self.split])
        keep = None if subjects is None else {_subject_name(s) for s in subjects}
        # One entry per sample: (depth path, pose path, subject, recording, frame, pose index, device).
        self.samples: list[tuple] = []
        self.cameras: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        skipped = {"depth": 0, "pose": 0, "before_offset": 0}
        recordings: dict[tuple[str, str], dict] = {}
        for frame, subject, recording in listed:
            if keep is not None and subject not in keep:
                continue
            rec = recordings.get((subject, recording))
            if rec is None:
                rec = recordings[(subject, recording)] = self._scan(subject, recording, intrinsics, devices)
            pose_index = frame - rec["skip"]
            if pose_index < 0:
                skipped["before_offset"] += len(rec["devices"])
                continue
            pose_path = rec["dump"] / "gposes3d" / f"{pose_index}.npy"
            if pose_index not in rec["poses"]:
                if on_missing == "error":
                    raise FileNotFoundError(
                        f"HUMAN4D pose file not found: {pose_path} (listed frame {frame} of {subject}/{recording}, "
                        f"skip {rec['skip']})"
                    )
                skipped["pose"] += len(rec["devices"])
                continue
            for device in rec["devices"]:
                name = rec["depth"].get((frame, device))
                if name is None:
                    if on_missing == "error":
                        raise FileNotFoundError(
                            f"HUMAN4D depth map not found: {rec['dump'] / 'depth'}/{frame}_{device}_depth_*.pgm "
                            f"(listed in {self.root / SPLIT_FILES[self.split]})"
                        )
                    skipped["depth"] += 1
                    continue
                self.samples.append(
                    (rec["dump"] / "depth" / name, pose_path, subject, recording, frame, pose_index, device)
                )
        if any(skipped.values()):
            log.warning(
                "HUMAN4D %s: skipped %d samples without a depth map, %d without a pose file, "
                "%d listed before their recording's offset",
                self.split,
                skipped["depth"],
                skipped["pose"],
                skipped["before_offset"],
            )
        self.skipped = skipped
        self.devices = sorted({s[6] for s in self.samples})

    def _scan(self, subject: str, recording: str, intrinsics: dict, devices) -> dict:
        """Index one recording: its skip, cameras, depth files and pose files (one directory listing each)."""
        subject_dir = self.root / subject
        dump = recording_dump(subject_dir, recording)
        offsets = read_offsets(subject_dir / "offsets.txt")
        if recording not in offsets:
            raise DataError(f"{subject_dir / 'offsets.txt'}: no line for recording {recording!r}")
        use = subject_devices(subject_dir, intrinsics, devices, self.root / "device_repository.json")
        for d in use:
            if (subject, d) not in self.cameras:
                R, t = read_extrinsics(subject_dir / "pose" / f"{d}.extrinsics")
                K = dc.crop_K(dc.sensor_to_depth_K(intrinsics[d]), dc.CROP_TOP)
                self.cameras[(subject, d)] = (R, t, K)
        return {
            "dump": dump,
            "skip": offsets[recording],
            "devices": use,
            "depth": list_depth(dump),
            "poses": list_poses(dump),
        }

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        depth_path, pose_path, subject, recording, frame, pose_index, device = self.samples[i]
        raw = read_pgm(depth_path)
        crop = raw[dc.CROP_TOP : dc.CROP_TOP + dc.CROP_SIZE[1]].astype(np.float32)
        depth_mm = crop * np.float32(dc.DEPTH_UNIT_MM)
        poses = read_poses(pose_path)
        if self.person >= len(poses):
            raise DataError(f"{pose_path}: has {len(poses)} people, person {self.person} requested")
        world = sk.select_18(poses[self.person])
        R, t, K = self.cameras[(subject, device)]
        joints_cam = (world - t) @ R  # R.T @ (X - t) for row vectors
        known = np.isfinite(joints_cam).all(axis=1) & (joints_cam[:, 2] > 0)
        safe = np.where(known[:, None], joints_cam, [0.0, 0.0, 1.0])
        keypoints = np.where(known[:, None], dc.project(K, safe), 0.0)
        visible = known & dc.joint_visibility(depth_mm, keypoints, safe[:, 2], self.slack)
        meta = {
            "sample_id": i,
            "image_id": i,
            "split": self.split,
            "subject": int(subject[1:]) if subject[1:].isdigit() else subject,
            "subject_name": subject,
            "activity": recording,
            "camera": self.devices.index(device),
            "device": device,
            "frame": frame,
            "pose_index": pose_index,
            "file": str(depth_path),
        }
        joints3d = np.where(known[:, None], joints_cam, 0.0)
        return self.frame_record(crop, keypoints, visible, joints3d, K, dc.DEPTH_UNIT_MM, meta)
