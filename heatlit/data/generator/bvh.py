"""A small, strict BVH (Biovision hierarchy) reader with vectorised forward kinematics.

Conventions (the ones the Biovision format and its common exporters, CMU included, use):

- A joint's local transform is ``T(offset + translation channels) @ R``, where ``R`` is the product of the
  rotation channels *in the order they are listed*: ``CHANNELS 3 Zrotation Xrotation Yrotation`` means
  ``R = Rz @ Rx @ Ry`` (intrinsic rotations, applied to column vectors). Angles are in degrees.
- Translation channels add to the OFFSET (CMU roots have a zero offset, so either reading agrees there).
- ``End Site`` blocks become channel-less joints named ``<parent>_End`` so that their positions (head top,
  finger tips) are available from forward kinematics.
- Units are whatever the file uses; nothing is rescaled here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from heatlit.data.errors import DataError

_AXES = {"X": 0, "Y": 1, "Z": 2}


@dataclass
class BvhJoint:
    """One joint of the hierarchy.

    Attributes:
        name: joint name (``<parent>_End`` for end sites).
        parent: index of the parent joint, -1 for the root.
        offset: ``[3]`` float64 offset from the parent, file units.
        channels: channel names in file order, e.g. ``["Zrotation", "Yrotation", "Xrotation"]``.
        channel_start: column of the first channel in the motion table.
    """

    name: str
    parent: int
    offset: np.ndarray
    channels: list[str] = field(default_factory=list)
    channel_start: int = 0


@dataclass
class Bvh:
    """A parsed BVH file.

    Attributes:
        joints: joints in file (depth-first) order, so a parent always precedes its children.
        motion: ``[F, C]`` float64 channel values per frame (degrees for rotations, file units for positions).
        frame_time: seconds per frame.
    """

    joints: list[BvhJoint]
    motion: np.ndarray
    frame_time: float

    @property
    def names(self) -> list[str]:
        """Joint names, end sites included, in file order."""
        return [j.name for j in self.joints]

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    def index(self, name: str) -> int:
        """Index of joint ``name``; raises ``KeyError`` naming the known joints otherwise."""
        for i, joint in enumerate(self.joints):
            if joint.name == name:
                return i
        raise KeyError(f"BVH has no joint {name!r}; joints: {self.names}")

    def channel_joints(self) -> list[BvhJoint]:
        """Joints that carry channels (excludes end sites): what a BVH "joint count" usually means."""
        return [j for j in self.joints if j.channels]


class BvhError(DataError):
    """Malformed BVH text; the message names the source and the offending token."""


def _rot(axis: int, degrees: np.ndarray) -> np.ndarray:
    """Rotation matrices about one axis: ``[...] deg -> [..., 3, 3]`` (right-handed, column vectors)."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    out = np.zeros(a.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


def euler_to_matrix(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """Intrinsic Euler angles to rotation matrices.

    Args:
        angles_deg: ``[..., 3]`` degrees, ``angles_deg[..., k]`` is the rotation about axis ``order[k]``.
        order: axis letters in application order as listed in the file, e.g. ``"ZXY"``.

    Returns:
        ``[..., 3, 3]`` float64, ``R = R_{order[0]} @ R_{order[1]} @ R_{order[2]}``.
    """
    angles_deg = np.asarray(angles_deg, dtype=np.float64)
    out = np.broadcast_to(np.eye(3), angles_deg.shape[:-1] + (3, 3)).copy()
    for k, letter in enumerate(order):
        out = out @ _rot(_AXES[letter], angles_deg[..., k])
    return out


def parse_bvh(text: str, source: str = "<string>") -> Bvh:
    """Parse BVH text.

    Args:
        text: the whole file.
        source: a name for error messages (usually the path).

    Returns:
        :class:`Bvh` with ``motion`` of shape ``[Frames, total channels]``.

    Raises:
        BvhError: on any structural problem (unbalanced braces, unknown channel, wrong value count ...).
    """
    tokens = text.split()
    pos = 0

    def take(literal: str | None = None, what: str = "a token") -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise BvhError(f"{source}: unexpected end of file (expected {literal or what})")
        tok = tokens[pos]
        pos += 1
        if literal is not None and tok != literal:
            raise BvhError(f"{source}: expected {literal!r}, found {tok!r} (token {pos})")
        return tok

    def number() -> float:
        tok = take(what="a number")
        try:
            return float(tok)
        except ValueError as err:
            raise BvhError(f"{source}: expected a number, found {tok!r} (token {pos})") from err

    joints: list[BvhJoint] = []
    n_channels = 0

    def parse_joint(name: str, parent: int, end_site: bool) -> None:
        nonlocal n_channels
        take("{")
        take("OFFSET")
        offset = np.array([number(), number(), number()])
        joint = BvhJoint(name=name, parent=parent, offset=offset, channel_start=n_channels)
        joints.append(joint)
        me = len(joints) - 1
        if not end_site:
            take("CHANNELS")
            count_tok = take(what="a channel count")
            if not count_tok.isdigit():
                raise BvhError(f"{source}: bad channel count {count_tok!r} for joint {name!r}")
            for _ in range(int(count_tok)):
                ch = take(what="a channel name")
                if len(ch) != 9 or ch[0] not in _AXES or ch[1:] not in ("rotation", "position"):
                    raise BvhError(f"{source}: unknown channel {ch!r} for joint {name!r}")
                joint.channels.append(ch)
            n_channels += len(joint.channels)
        while True:
            tok = take(what="JOINT, End or }")
            if tok == "}":
                return
            if end_site:
                raise BvhError(f"{source}: End Site of {joints[parent].name!r} has children ({tok!r})")
            if tok == "JOINT":
                parse_joint(take(what="a joint name"), me, False)
            elif tok == "End":
                take("Site")
                parse_joint(f"{name}_End", me, True)
            else:
                raise BvhError(f"{source}: expected JOINT, End Site or '}}' in {name!r}, found {tok!r}")

    take("HIERARCHY")
    take("ROOT")
    parse_joint(take(what="the root name"), -1, False)
    take("MOTION")
    take("Frames:")
    frames_tok = take(what="a frame count")
    if not frames_tok.isdigit():
        raise BvhError(f"{source}: bad frame count {frames_tok!r}")
    n_frames = int(frames_tok)
    take("Frame")
    take("Time:")
    frame_time = number()
    if not frame_time > 0:
        raise BvhError(f"{source}: frame time must be positive, got {frame_time}")
    values = tokens[pos:]
    if len(values) != n_frames * n_channels:
        raise BvhError(
            f"{source}: header promises {n_frames} frames x {n_channels} channels = {n_frames * n_channels} "
            f"values, the MOTION section has {len(values)} (truncated file?)"
        )
    try:
        motion = np.array(values, dtype=np.float64).reshape(n_frames, n_channels)
    except ValueError as err:
        raise BvhError(f"{source}: non-numeric value in the MOTION section ({err})") from err
    return Bvh(joints=joints, motion=motion, frame_time=frame_time)


def load_bvh(path: str | Path) -> Bvh:
    """Read and parse a BVH file (see :func:`parse_bvh`); a missing file raises ``FileNotFoundError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BVH file not found: {path}")
    return parse_bvh(path.read_text(), source=str(path))


def forward_kinematics(bvh: Bvh, frames: np.ndarray | slice | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Global joint positions and orientations, vectorised over frames.

    Args:
        bvh: parsed file.
        frames: frame indices or slice (default: all).

    Returns:
        ``positions [F, J, 3]`` float64 in file units and file axes, and ``rotations [F, J, 3, 3]`` (the
        global frame of each joint; an end site inherits its parent's), for all ``J = len(bvh.joints)``.
    """
    motion = bvh.motion if frames is None else bvh.motion[frames]
    n = motion.shape[0]
    positions = np.zeros((n, len(bvh.joints), 3))
    rotations = np.zeros((n, len(bvh.joints), 3, 3))
    for i, joint in enumerate(bvh.joints):
        local_t = np.broadcast_to(joint.offset, (n, 3)).copy()
        local_r = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
        rot_order, rot_cols = "", []
        for k, ch in enumerate(joint.channels):
            col = motion[:, joint.channel_start + k]
            if ch.endswith("position"):
                local_t[:, _AXES[ch[0]]] += col
            else:
                rot_order += ch[0]
                rot_cols.append(col)
        if rot_order:
            local_r = euler_to_matrix(np.stack(rot_cols, axis=-1), rot_order)
        if joint.parent < 0:
            positions[:, i] = local_t
            rotations[:, i] = local_r
        else:
            parent_r = rotations[:, joint.parent]
            positions[:, i] = positions[:, joint.parent] + np.einsum("fij,fj->fi", parent_r, local_t)
            rotations[:, i] = parent_r @ local_r
    return positions, rotations
