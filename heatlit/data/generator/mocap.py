"""Real motion capture on any body: a BVH clip reduced to the 18 subset joints and retargeted."""

from __future__ import annotations

import math

import numpy as np

from heatlit.body import skeleton as sk
from heatlit.body.shape import Body
from heatlit.data.generator.bvh import Bvh, forward_kinematics
from heatlit.data.generator.motion import Performance, lowest_point

#: HUMAN4D subset joint -> CMU BVH joint whose position drives it.
CMU_MAP: dict[str, str] = {
    "Hips": "Hips", "Spine1": "Spine", "Neck": "Neck1", "HeadEnd": "Head_End",
    "RightArm": "RightArm", "RightForeArm": "RightForeArm", "RightHand": "RightHand",
    "LeftArm": "LeftArm", "LeftForeArm": "LeftForeArm", "LeftHand": "LeftHand",
    "RightUpLeg": "RightUpLeg", "RightLeg": "RightLeg", "RightFoot": "RightFoot", "RightToeBase": "RightToeBase",
    "LeftUpLeg": "LeftUpLeg", "LeftLeg": "LeftLeg", "LeftFoot": "LeftFoot", "LeftToeBase": "LeftToeBase",
}  # fmt: skip

#: CMU files are y-up and face +z with the subject's left at +x; this maps them to x right, y forward, z up.
_CMU_TO_WORLD = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


class MocapClip:
    """A BVH clip reduced to the 18 subset joints, ready to retarget onto any :class:`Body`.

    Args:
        bvh: parsed CMU-style BVH (joint names as in :data:`CMU_MAP`).
        name: activity name of the clip.
        max_radius: mm; the horizontal path is centred and shrunk to stay within this radius of the
            capture centre (the CMU trial travels ~4 m, more than the cameras see).
    """

    def __init__(self, bvh: Bvh, name: str = "cmu_01_01", max_radius: float = 900.0):
        idx = [bvh.index(CMU_MAP[n]) for n in sk.JOINT_NAMES]
        pos, _ = forward_kinematics(bvh)
        self.name = name
        self.fps = 1.0 / bvh.frame_time
        self.positions = pos[:, idx] @ _CMU_TO_WORLD.T  # [F, 18, 3] file units, world axes
        self.max_radius = float(max_radius)

    @property
    def duration(self) -> float:
        """Clip length in seconds."""
        return len(self.positions) / self.fps

    def retarget(
        self, body: Body, t: np.ndarray, origin: np.ndarray | None = None, heading: float = 0.0
    ) -> Performance:
        """Pose ``body`` like the clip at times ``t`` (wrapping around the clip's end).

        Bone directions come from the clip and lengths from ``body``, so proportions follow the subject.
        The root path is scaled by the leg-length ratio, centred, rotated by ``heading`` (deg) and
        shrunk to ``max_radius``; the clip is grounded once as a whole, so jumps leave the floor.

        Args:
            body: subject.
            t: ``[T]`` seconds.
            origin: ``[2]`` mm offset of the path centre.
            heading: degrees about z.

        Returns:
            :class:`Performance` with ``joints [T, 18, 3]`` world mm.
        """
        q = self.positions
        legs = [(sk.R_UPLEG, sk.R_LEG), (sk.R_LEG, sk.R_FOOT)]
        clip_leg = sum(np.linalg.norm(q[0, a] - q[0, b]) for a, b in legs)
        scale = (body.bone_lengths[sk.R_LEG] + body.bone_lengths[sk.R_FOOT]) / clip_leg
        root = q[:, 0] * scale
        lo, hi = root[:, :2].min(0), root[:, :2].max(0)
        root[:, :2] -= (lo + hi) / 2
        reach = np.linalg.norm(root[:, :2], axis=1).max()
        if reach > self.max_radius:
            root[:, :2] *= self.max_radius / reach
        c, s = math.cos(math.radians(heading)), math.sin(math.radians(heading))
        rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        joints = np.zeros_like(q)
        joints[:, 0] = root
        for child in range(1, sk.NUM_JOINTS):
            parent = sk.PARENTS[child]
            d = q[:, child] - q[:, parent]
            d /= np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)
            joints[:, child] = joints[:, parent] + d * body.bone_lengths[child]
        joints = joints @ rz.T
        if origin is not None:
            joints[..., :2] += np.asarray(origin, dtype=np.float64)
        joints[..., 2] -= np.percentile(lowest_point(body, joints), 2.0)
        frames = np.round(np.asarray(t, dtype=np.float64) * self.fps).astype(np.int64) % len(q)
        return Performance(joints=joints[frames], props=[])
