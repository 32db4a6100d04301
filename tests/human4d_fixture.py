"""Writers of real files in the HUMAN4D layout, rendered by the synthetic generator (test fixtures)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from heatlit.body import skeleton as sk
from heatlit.body.camera import CROP_SIZE, CROP_TOP
from heatlit.data.generator.config import SynthConfig
from heatlit.data.generator.world import DEVICES, SynthWorld, render_view
from heatlit.data.human4d import SPLIT_FILES


def write_pgm(path: str | Path, image: np.ndarray) -> None:
    """Write ``[H, W]`` uint16 as an ASCII P2 PGM (maxval 65535), one image row per line."""
    image = np.asarray(image)
    rows = "\n".join(" ".join(map(str, row)) for row in image.astype(np.int64).tolist())
    Path(path).write_text(f"P2\n{image.shape[1]} {image.shape[0]}\n65535\n{rows}\n")


def expand_to_33(joints18: np.ndarray) -> np.ndarray:
    """Plausible 33-joint HUMAN4D poses from the 18-joint subset .

    The 18 subset joints are copied exactly; the other 15 are interpolated or extrapolated along the
    neighbouring bones, so ``select_18(expand_to_33(j)) == j`` bit for bit.

    Args:
        joints18: ``[..., 18, 3]`` any units.

    Returns:
        ``[..., 33, 3]`` same dtype and units.
    """
    j = np.asarray(joints18)
    if j.shape[-2:] != (sk.NUM_JOINTS, 3):
        raise ValueError(f"expected [..., 18, 3] joints, got shape {j.shape}")
    out = np.zeros(j.shape[:-2] + (len(sk.HUMAN4D_33), 3), dtype=j.dtype)
    out[..., list(sk.SUBSET_18), :] = j
    idx = {name: k for k, name in enumerate(sk.HUMAN4D_33)}

    def lerp(a: int, b: int, w: float) -> np.ndarray:
        return j[..., a, :] + w * (j[..., b, :] - j[..., a, :])

    out[..., idx["Spine"], :] = lerp(sk.HIPS, sk.SPINE1, 0.5)
    out[..., idx["Spine2"], :] = lerp(sk.SPINE1, sk.NECK, 1 / 3)
    out[..., idx["Spine3"], :] = lerp(sk.SPINE1, sk.NECK, 2 / 3)
    out[..., idx["Neck1"], :] = lerp(sk.NECK, sk.HEAD_END, 0.25)
    out[..., idx["Head"], :] = lerp(sk.NECK, sk.HEAD_END, 0.5)
    for side, arm, fore, hand, foot, toe in (
        ("Right", sk.R_ARM, sk.R_FOREARM, sk.R_HAND, sk.R_FOOT, sk.R_TOE),
        ("Left", sk.L_ARM, sk.L_FOREARM, sk.L_HAND, sk.L_FOOT, sk.L_TOE),
    ):
        out[..., idx[f"{side}Shoulder"], :] = lerp(sk.NECK, arm, 0.4)
        out[..., idx[f"{side}HandThumb1"], :] = lerp(fore, hand, 1.15)
        out[..., idx[f"{side}HandMiddle1"], :] = lerp(fore, hand, 1.35)
        out[..., idx[f"{side}ForeFoot"], :] = lerp(foot, toe, 0.6)
        out[..., idx[f"{side}ToeBaseEnd"], :] = lerp(foot, toe, 1.4)
    return out


def write_human4d_fixture(
    root: str | Path,
    *,
    subjects=(1, 2),
    activities=("walking", "punching"),
    frames: int = 2,
    skip: int = 2,
    noise: bool = False,
    seed: int = 1314,
    flat: bool = False,
    lists: bool = True,
) -> list[dict]:
    """Write a tiny dataset in the HUMAN4D layout from synthetic renders (for tests).

    Subjects and cameras are those of a :class:`~heatlit.data.generator.world.SynthWorld` with ``max(subjects)``
    subjects; each (subject, activity) becomes a recording with ``skip + frames`` depth frames per device
    of which the first ``skip`` precede the poses. The last subject's recordings alternate between
    validation.txt and testing.txt; the others go to training.txt.

    Args:
        root: output folder (created).
        subjects: subject numbers (``S<n>``).
        activities: procedural activity names (recording names).
        frames: posed frames per recording.
        skip: offsets.txt value of every recording.
        noise: sensor noise on the depth maps.
        seed: world seed.
        flat: write the abbreviated ``S<n>/Dump/...`` form (one recording per subject, named ``S<n>``).
        lists: write training / validation / testing.txt (False: leave them to ``heatlit.prepare``).

    Returns:
        Ground truth per written sample: dicts with ``subject`` (``"S1"``), ``recording``, ``frame``,
        ``device``, ``keypoints [18, 2]`` (in the 320x160 crop), ``joints3d [18, 3]`` camera mm,
        ``visible [18]`` (renderer z-buffer, in the crop), ``slack [18]`` (the subject's visibility slack, mm)
        and ``split``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    world = SynthWorld(
        SynthConfig(
            width=CROP_SIZE[0],
            height=CROP_SIZE[1],
            subjects=max(max(subjects), 2),
            seed=seed,
            noise=noise,
            mocap_path=None,
        )
    )
    repo = [
        {
            "Device": name,
            "Type": "RealSense D415",
            "Depth Intrinsics": [{"1280x720": world.sensor_K[k].reshape(-1).tolist()}],
        }
        for k, name in enumerate(DEVICES)
    ]
    (root / "device_repository.json").write_text(json.dumps(repo, indent=1))
    split_lines = {"train": [], "val": [], "test": []}
    truth = []
    held_out = max(subjects)
    for s in subjects:
        sdir = root / f"S{s}"
        (sdir / "pose").mkdir(parents=True, exist_ok=True)
        for cam in world.rigs[s - 1]:
            rows = np.vstack([cam.R.T, cam.center[None]])  # camera-to-world rotation, camera centre
            np.savetxt(sdir / "pose" / f"{cam.name}.extrinsics", rows, fmt="%.17g")
        acts = activities[:1] if flat else activities
        offsets = []
        for a_i, activity in enumerate(acts):
            recording = f"S{s}" if flat else activity
            dump = (sdir if flat else sdir / recording) / "Dump"
            (dump / "depth").mkdir(parents=True, exist_ok=True)
            (dump / "gposes3d").mkdir(parents=True, exist_ok=True)
            offsets.append(f"{recording}\t{skip}")
            split = "train" if s != held_out else ("val" if a_i % 2 == 0 else "test")
            pose_frames = np.arange(frames) * 7
            perf = world.performance(s, activity, pose_frames)
            for f in range(skip + frames):
                for k, cam in enumerate(world.rigs[s - 1]):
                    pose = f - skip
                    joints = perf.joints[max(pose, 0)]
                    rng = np.random.default_rng([seed, 77, s, a_i, f, k]) if noise else None
                    view = render_view(world, s, joints, world.scene(s, perf, max(pose, 0)), cam, rng)
                    write_pgm(dump / "depth" / f"{f}_{cam.name}_depth_{f}.pgm", view["depth"])
                    if pose < 0:
                        continue
                    kp = view["keypoints"] - [0.0, CROP_TOP]
                    in_crop = (kp[:, 1] >= -0.5) & (kp[:, 1] < CROP_SIZE[1] - 0.5)
                    truth.append(
                        {
                            "subject": f"S{s}",
                            "recording": recording,
                            "frame": f,
                            "device": DEVICES[k],
                            "keypoints": kp,
                            "joints3d": view["joints3d"],
                            "visible": view["visible"] & in_crop,
                            "slack": world.bodies[s - 1].visibility_slack,
                            "split": split,
                        }
                    )
                if pose >= 0:
                    np.save(dump / "gposes3d" / f"{pose}.npy", expand_to_33(perf.joints[pose])[None])
                    split_lines[split].append(f"{f} S{s} {recording}")
        (sdir / "offsets.txt").write_text("\n".join(offsets) + "\n")
    for split, lines in split_lines.items():
        if lists:
            (root / SPLIT_FILES[split]).write_text("".join(line + "\n" for line in lines))
    return truth


def write_human4d_layout(
    root: str | Path,
    frames: dict[tuple[str, str], int],
    *,
    skip: int = 3,
    devices=DEVICES,
    missing=(),
) -> None:
    """The HUMAN4D folder layout with empty depth and pose files: enough to build split lists, not to load.

    Args:
        root: output folder (created).
        frames: ``(subject, recording) -> n``: each recording gets ``skip + n`` depth frames per device, the first
            ``skip`` before the poses, and pose files ``0 .. n-1`` (frame = pose index + skip).
        skip: every recording's offsets.txt value.
        devices: device names (intrinsics and extrinsics are written for each).
        missing: ``(subject, recording, frame, device)`` depth maps left out.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    K = [[1000.0, 0.0, 640.0], [0.0, 1000.0, 360.0], [0.0, 0.0, 1.0]]
    repo = [{"Device": d, "Depth Intrinsics": [{"1280x720": np.ravel(K).tolist()}]} for d in devices]
    (root / "device_repository.json").write_text(json.dumps(repo))
    gone = set(missing)
    offsets: dict[str, list[str]] = {}
    for (subject, recording), n in frames.items():
        sdir = root / subject
        (sdir / "pose").mkdir(parents=True, exist_ok=True)
        for d in devices:
            np.savetxt(sdir / "pose" / f"{d}.extrinsics", np.vstack([np.eye(3), [0.0, 0.0, 3000.0]]))
        dump = sdir / recording / "Dump"
        (dump / "depth").mkdir(parents=True)
        (dump / "gposes3d").mkdir(parents=True)
        for f in range(skip + n):
            for d in devices:
                if (subject, recording, f, d) not in gone:
                    (dump / "depth" / f"{f}_{d}_depth_{f}.pgm").touch()
        for p in range(n):
            (dump / "gposes3d" / f"{p}.npy").touch()
        offsets.setdefault(subject, []).append(f"{recording}\t{skip}\n")
    for subject, lines in offsets.items():
        (root / subject / "offsets.txt").write_text("".join(lines))
