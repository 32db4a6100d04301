"""Motion of bodies: forward kinematics and procedural activities (BVH retargeting: :mod:`.mocap`).

Everything here produces the 18 HUMAN4D subset joints (:mod:`heatlit.body.skeleton`) in the world frame:
millimetres, right-handed, z up, floor at z = 0. A body is posed by forward kinematics over per-bone local
rotations. The body frame at rest has x to the subject's right, y forward and z up; each bone's rotation
is expressed in its parent bone's frame, so a shoulder angle means the same thing whatever the spine does.

Angle conventions of the procedural activities (degrees, positive as named; right side mirrored):
``flex`` swings a limb forward (hip, shoulder, elbow), ``knee`` bends the shank back, ``ankle`` lifts the
toes, ``abd`` moves a limb away from the midline, ``twist`` rotates it externally about its own axis; the
spine's ``(flex, lat, twist)`` bends forward, bends right and turns left. Root pitch tilts the pelvis
forward.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from heatlit.body import skeleton as sk
from heatlit.body.shape import Body


# --------------------------------------------------------------------------------------- rotations
def rot_x(deg: np.ndarray) -> np.ndarray:
    """``[...]`` degrees -> ``[..., 3, 3]`` rotation about x (right-handed)."""
    a = np.deg2rad(np.asarray(deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(deg: np.ndarray) -> np.ndarray:
    """``[...]`` degrees -> ``[..., 3, 3]`` rotation about y."""
    a = np.deg2rad(np.asarray(deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(deg: np.ndarray) -> np.ndarray:
    """``[...]`` degrees -> ``[..., 3, 3]`` rotation about z."""
    a = np.deg2rad(np.asarray(deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


# ------------------------------------------------------------------------------ forward kinematics
_SIDES = (("r", +1.0, sk.R_ARM, sk.R_FOREARM, sk.R_HAND, sk.R_LEG, sk.R_FOOT, sk.R_TOE),
          ("l", -1.0, sk.L_ARM, sk.L_FOREARM, sk.L_HAND, sk.L_LEG, sk.L_FOOT, sk.L_TOE))  # fmt: skip


def local_rotations(angles: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Per-bone local rotations from named joint angles.

    Args:
        angles: degrees; ``spine``, ``chest``, ``neck``: ``[T, 3]`` (flex, lat, twist); ``{l,r}_shoulder``,
            ``{l,r}_hip``: ``[T, 3]`` (flex, abd, twist); ``{l,r}_clav`` ``[T]`` (elevation);
            ``{l,r}_elbow``, ``{l,r}_knee``, ``{l,r}_ankle``: ``[T]``. Missing entries are zero.
        n: number of frames T.

    Returns:
        ``[T, 18, 3, 3]``: rotation of the bone ending at each joint, in its parent bone's frame.
    """

    def get(name: str, dims: int) -> np.ndarray:
        value = angles.get(name)
        if value is None:
            return np.zeros((n, dims) if dims > 1 else (n,))
        return np.broadcast_to(np.asarray(value, dtype=np.float64), (n, dims) if dims > 1 else (n,))

    out = np.broadcast_to(np.eye(3), (n, sk.NUM_JOINTS, 3, 3)).copy()
    for name, joint in (("spine", sk.SPINE1), ("chest", sk.NECK), ("neck", sk.HEAD_END)):
        a = get(name, 3)
        out[:, joint] = rot_z(a[:, 2]) @ rot_y(a[:, 1]) @ rot_x(-a[:, 0])
    for side, m, arm, upper, fore, thigh, shank, foot in _SIDES:
        # Elevation, abduction and twist mirror between sides: the right limb abducts about -y, the left
        # about +y (and a right clavicle, pointing to +x, rises about -y).
        out[:, arm] = rot_y(-m * get(f"{side}_clav", 1))
        s = get(f"{side}_shoulder", 3)
        out[:, upper] = rot_x(s[:, 0]) @ rot_y(-m * s[:, 1]) @ rot_z(-m * s[:, 2])
        out[:, fore] = rot_x(get(f"{side}_elbow", 1))
        h = get(f"{side}_hip", 3)
        out[:, thigh] = rot_x(h[:, 0]) @ rot_y(-m * h[:, 1]) @ rot_z(-m * h[:, 2])
        out[:, shank] = rot_x(-get(f"{side}_knee", 1))
        out[:, foot] = rot_x(get(f"{side}_ankle", 1))
    return out


def forward(body: Body, root_pos: np.ndarray, root_rot: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Forward kinematics of the 18-joint body.

    Args:
        body: proportions.
        root_pos: ``[T, 3]`` Hips position, world mm.
        root_rot: ``[T, 3, 3]`` pelvis frame in the world (columns: right, forward, up).
        local: ``[T, 18, 3, 3]`` from :func:`local_rotations`.

    Returns:
        ``[T, 18, 3]`` float64 world mm.
    """
    n = root_pos.shape[0]
    frames = np.zeros((n, sk.NUM_JOINTS, 3, 3))
    pos = np.zeros((n, sk.NUM_JOINTS, 3))
    pos[:, 0] = root_pos
    frames[:, 0] = root_rot
    for child in range(1, sk.NUM_JOINTS):
        parent = sk.PARENTS[child]
        frames[:, child] = frames[:, parent] @ local[:, child]
        pos[:, child] = pos[:, parent] + frames[:, child] @ body.offsets[child]
    return pos


def root_rotation(
    yaw: np.ndarray, pitch: np.ndarray | float = 0.0, roll: np.ndarray | float = 0.0
) -> np.ndarray:
    """Pelvis orientation ``[T, 3, 3]`` from heading (deg, about z), forward pitch and right roll (deg)."""
    yaw = np.asarray(yaw, dtype=np.float64)
    pitch = np.broadcast_to(np.asarray(pitch, dtype=np.float64), yaw.shape)
    roll = np.broadcast_to(np.asarray(roll, dtype=np.float64), yaw.shape)
    return rot_z(yaw) @ rot_x(-pitch) @ rot_y(roll)


def lowest_point(body: Body, joints: np.ndarray) -> np.ndarray:
    """``[T]`` mm: height of the lowest body surface point (feet and shanks, capsule radii included)."""
    foot_r, shank_r = body.radii["foot"], body.radii["shank"]
    zs = [
        joints[:, j, 2] - r
        for j, r in ((sk.R_TOE, foot_r), (sk.L_TOE, foot_r), (sk.R_FOOT, shank_r), (sk.L_FOOT, shank_r))
    ]
    return np.min(np.stack(zs, -1), axis=-1)


# ------------------------------------------------------------------------------------- activities
@dataclass(frozen=True)
class ActivityParams:
    """Per (subject, activity) variation.

    Attributes:
        tempo: frequency multiplier.
        amp: amplitude multiplier.
        phase: radians added to the activity's cycle.
        side: +1 or -1, mirrors one-sided activities (which arm waves, which way the circle turns).
    """

    tempo: float = 1.0
    amp: float = 1.0
    phase: float = 0.0
    side: float = 1.0

    @classmethod
    def sample(cls, rng: np.random.Generator) -> ActivityParams:
        """Random variation: tempo and amplitude U(0.85, 1.15), any phase, either side."""
        return cls(
            rng.uniform(0.85, 1.15),
            rng.uniform(0.85, 1.15),
            rng.uniform(0, 2 * np.pi),
            float(rng.choice([-1.0, 1.0])),
        )


def _pulse(phase: np.ndarray, sharpness: float = 2.0) -> np.ndarray:
    """Smooth periodic bump in [0, 1], 1 at ``phase = 0 mod 2 pi``."""
    return (0.5 + 0.5 * np.cos(phase)) ** sharpness


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _stand(n: int) -> dict[str, np.ndarray]:
    """Relaxed standing: arms slightly away from the torso so they do not sink into it."""
    z = np.zeros(n)
    return {
        "r_shoulder": np.stack([z + 5, z + 8, z], -1),
        "l_shoulder": np.stack([z + 5, z + 8, z], -1),
        "r_elbow": z + 12,
        "l_elbow": z + 12,
        "r_hip": np.stack([z, z + 3, z], -1),
        "l_hip": np.stack([z, z + 3, z], -1),
    }


def _vec3(a, b=0.0, c=0.0) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return np.stack(np.broadcast_arrays(a, b, c), -1)


def _walk_like(t, p, freq, hip, knee, arm, elbow, lean, speed, radius):
    phi = 2 * np.pi * freq * p.tempo * t + p.phase
    a = _stand(len(t))
    for side, ph in (("l", phi), ("r", phi + np.pi)):
        a[f"{side}_hip"] = _vec3(hip[0] + hip[1] * p.amp * np.sin(ph), 4.0)
        a[f"{side}_knee"] = knee[0] + knee[1] * p.amp * _pulse(ph + 0.3, 3.0)
        a[f"{side}_ankle"] = 5.0 * np.sin(ph - 1.0)
        a[f"{side}_shoulder"] = _vec3(arm[0] - arm[1] * p.amp * np.sin(ph), 9.0)
        a[f"{side}_elbow"] = elbow[0] + elbow[1] * (0.5 - 0.5 * np.sin(ph))
    a["spine"] = _vec3(lean, 0.0, 5.0 * np.sin(phi))
    a["chest"] = _vec3(0.0, 0.0, -6.0 * np.sin(phi))
    omega = speed * p.tempo / radius * p.side  # rad/s around a circle in the capture area
    theta = omega * t + p.phase
    xy = radius * np.stack([np.cos(theta), np.sin(theta)], -1)
    # Face along the path: at yaw psi the body's forward is (-sin psi, cos psi), d(xy)/dt's direction.
    yaw = np.rad2deg(theta) + (0.0 if p.side > 0 else 180.0)
    return a, xy, yaw


def walking(t, p):
    """Walking a 0.55 m circle at ~1 m/s."""
    a, xy, yaw = _walk_like(t, p, 0.9, (10, 22), (6, 55), (4, 18), (15, 15), 3.0, 1000.0, 550.0)
    return {**a, "xy": xy, "yaw": yaw}


def running(t, p):
    """Jogging a 0.75 m circle, trunk leaning forward, short flight phases."""
    a, xy, yaw = _walk_like(t, p, 1.4, (22, 32), (20, 85), (10, 35), (80, 20), 10.0, 1900.0, 750.0)
    phi = 2 * np.pi * 1.4 * p.tempo * t + p.phase
    return {**a, "xy": xy, "yaw": yaw, "lift": 45.0 * p.amp * np.abs(np.sin(phi)) ** 4}


def jumping_jacks(t, p):
    """Arms from the sides to overhead and legs apart, hopping at each transition."""
    phi = 2 * np.pi * 0.9 * p.tempo * t + p.phase
    s = 0.5 - 0.5 * np.cos(phi)
    a = _stand(len(t))
    for side in "lr":
        a[f"{side}_shoulder"] = _vec3(8.0, 10 + 155 * s * p.amp**0.3, 60 * s)
        a[f"{side}_clav"] = 12 * s  # shoulders shrug as the arms go overhead
        a[f"{side}_elbow"] = 10 + 10 * s
        a[f"{side}_hip"] = _vec3(3.0, 3 + 17 * s * p.amp)
        a[f"{side}_knee"] = 8 + 14 * np.abs(np.sin(phi))
        a[f"{side}_ankle"] = -10 * np.abs(np.sin(phi))
    return {**a, "lift": 80.0 * p.amp * np.abs(np.sin(phi))}


def bending(t, p):
    """Bending forward from the hips to reach the knees and back up."""
    phi = 2 * np.pi * 0.25 * p.tempo * t + p.phase
    s = _smoothstep(0.5 - 0.5 * np.cos(phi)) * p.amp
    a = _stand(len(t))
    pitch = 40 * s
    a["spine"] = _vec3(25 * s)
    a["chest"] = _vec3(15 * s)
    a["neck"] = _vec3(-15 * s)
    for side in "lr":
        a[f"{side}_hip"] = _vec3(pitch - 8 * s, 3.0)  # the legs stay near vertical under a tilted pelvis
        a[f"{side}_knee"] = 12 * s
        a[f"{side}_ankle"] = 4 * s
        a[f"{side}_shoulder"] = _vec3(75 * s + 5, 8.0)  # arms hang down
        a[f"{side}_elbow"] = 10 + 5 * s
    return {**a, "pitch": pitch}


def punching(t, p):
    """Boxing stance, alternating straight punches with a trunk twist."""
    phi = 2 * np.pi * 0.8 * p.tempo * t + p.phase
    a = _stand(len(t))
    punch = {"r": _pulse(phi, 6.0), "l": _pulse(phi + np.pi, 6.0)}
    for side in "lr":
        pk = punch[side] * p.amp
        # Shoulder angles are relative to the trunk, which leans ~15 deg: guard fists at the chin.
        a[f"{side}_shoulder"] = _vec3(55 + 50 * pk, 20 - 10 * pk, -30 + 25 * pk)
        a[f"{side}_elbow"] = 130 * (1 - pk) + 5 * pk
        a[f"{side}_hip"] = _vec3(18.0, 10.0)
        a[f"{side}_knee"] = 25.0 + 0 * t
        a[f"{side}_ankle"] = 7.0 + 0 * t
    a["spine"] = _vec3(5.0, 0.0, 15 * (punch["r"] - punch["l"]))
    a["chest"] = _vec3(3.0, 0.0, 10 * (punch["r"] - punch["l"]))
    return {**a, "pitch": 8.0 + 0 * t}


def sitting(t, p):
    """Sitting down on a stool, gesturing while seated, standing up again (8 s cycle)."""
    cycle = (t * p.tempo / 8.0 + p.phase / (2 * np.pi)) % 1.0
    s = _smoothstep(cycle / 0.25) - _smoothstep((cycle - 0.75) / 0.25)  # 0 standing .. 1 seated
    lean = 30 * np.sin(np.pi * s) * p.amp
    a = _stand(len(t))
    g = 2 * np.pi * 0.7 * t
    for k, side in enumerate("lr"):
        a[f"{side}_hip"] = _vec3(90 * s + lean, 6.0)
        a[f"{side}_knee"] = 90 * s
        a[f"{side}_ankle"] = -lean * 0.3
        a[f"{side}_shoulder"] = _vec3(5 + 25 * s + 12 * s * np.sin(g + k), 10.0)
        a[f"{side}_elbow"] = 12 + 50 * s + 25 * s * np.sin(1.3 * g + 2 * k)
    a["spine"] = _vec3(-5 * s)
    a["neck"] = _vec3(8 * np.sin(0.5 * g))
    return {**a, "pitch": lean, "stool": True}


def waving(t, p):
    """One arm raised and waving from the elbow, weight shifting."""
    a = _stand(len(t))
    side = "r" if p.side > 0 else "l"
    w = 2 * np.pi * 1.6 * p.tempo * t + p.phase
    a[f"{side}_shoulder"] = _vec3(15.0, 110 + 15 * p.amp + 0 * t, 80.0)
    a[f"{side}_elbow"] = 55 + 30 * p.amp * np.sin(w)
    a["spine"] = _vec3(0.0, 5 * np.sin(0.2 * w))
    a["neck"] = _vec3(0.0, 0.0, 10 * p.side + 0 * t)
    return a


def squatting(t, p):
    """Deep squats with the arms stretched forward for balance, heels down."""
    phi = 2 * np.pi * 0.35 * p.tempo * t + p.phase
    s = _smoothstep(0.5 - 0.5 * np.cos(phi)) * min(p.amp, 1.0)
    a = _stand(len(t))
    pitch, hip, knee = 35 * s, 125 * s, 115 * s
    for side in "lr":
        a[f"{side}_hip"] = _vec3(hip, 10 * s + 3)
        a[f"{side}_knee"] = knee
        a[f"{side}_ankle"] = pitch - hip + knee  # keeps the feet flat on the floor
        a[f"{side}_shoulder"] = _vec3(125 * s + 5, 8.0)  # horizontal in the world at the bottom
        a[f"{side}_elbow"] = 12 - 5 * s
    a["spine"] = _vec3(10 * s)
    a["neck"] = _vec3(-20 * s)
    return {**a, "pitch": pitch}


def kicking(t, p):
    """Alternating front kicks (chamber, extend, retract) from a guard."""
    phi = 2 * np.pi * 0.5 * p.tempo * t + p.phase
    a = _stand(len(t))
    kick = {"r": _pulse(phi, 3.0), "l": _pulse(phi + np.pi, 3.0)}
    for side in "lr":
        k = kick[side] * p.amp
        a[f"{side}_hip"] = _vec3(80 * k, 5.0)
        a[f"{side}_knee"] = 320 * k * (1 - k) + 8  # bent half way up, straight at the top
        a[f"{side}_ankle"] = -25 * k
        a[f"{side}_shoulder"] = _vec3(40.0, 15.0, -30.0)
        a[f"{side}_elbow"] = 110.0 + 0 * t
    a["spine"] = _vec3(-10 * (kick["r"] + kick["l"]))
    return a


def arm_circles(t, p):
    """Both arms held sideways drawing circles, the trunk steady."""
    phi = 2 * np.pi * 0.8 * p.tempo * t + p.phase
    a = _stand(len(t))
    for side in "lr":
        a[f"{side}_shoulder"] = _vec3(25 * p.amp * np.sin(phi), 90 + 25 * p.amp * np.cos(phi), 20.0)
        a[f"{side}_elbow"] = 5.0 + 0 * t
    return a


def talking(t, p):
    """Standing conversation: weight shifts, hand gestures and head nods."""
    g = 2 * np.pi * p.tempo * t + p.phase
    a = _stand(len(t))
    for k, side in enumerate("lr"):
        a[f"{side}_shoulder"] = _vec3(15 + 15 * np.sin(0.9 * g + k), 12 + 6 * np.sin(0.5 * g), -20.0)
        a[f"{side}_elbow"] = 60 + 30 * p.amp * np.sin(1.3 * g + 2.0 * k)
        a[f"{side}_hip"] = _vec3(0.0, 3 + 4 * np.sin(0.25 * g) * (1 if side == "l" else -1))
    a["spine"] = _vec3(0.0, 4 * np.sin(0.25 * g), 8 * np.sin(0.3 * g))
    a["neck"] = _vec3(8 * np.sin(1.1 * g), 0.0, 20 * np.sin(0.4 * g))
    return a


#: Procedural activities, name -> function(t [T] seconds, ActivityParams) -> angle dict (see module doc).
ACTIVITIES: dict[str, Callable] = {
    "walking": walking, "running": running, "jumping_jacks": jumping_jacks, "bending": bending,
    "punching": punching, "sitting": sitting, "waving": waving, "squatting": squatting,
    "kicking": kicking, "arm_circles": arm_circles, "talking": talking,
}  # fmt: skip


class _Jitter:
    """Slow smooth angle noise per joint and axis (sum of 3 sines), so no two cycles repeat.

    The random draws happen once, so the noise at a time does not depend on which other times are asked.
    """

    def __init__(self, rng: np.random.Generator, amp_deg: float = 4.0):
        self.freq = rng.uniform(0.08, 0.6, size=(3, sk.NUM_JOINTS, 3))
        self.phase = rng.uniform(0, 2 * np.pi, size=(3, sk.NUM_JOINTS, 3))
        self.amp = rng.uniform(0.3, 1.0, size=(3, sk.NUM_JOINTS, 3)) * amp_deg / 2

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """``[T]`` seconds -> ``[T, 18, 3]`` degrees."""
        return np.sum(self.amp * np.sin(2 * np.pi * self.freq * t[:, None, None, None] + self.phase), axis=1)


@dataclass
class Performance:
    """A posed sequence.

    Attributes:
        joints: ``[T, 18, 3]`` float64 world mm, feet on the floor.
        props: extra scene objects as ``(kind, params)``: ``("stool", {"center": [2], "height": mm})``.
    """

    joints: np.ndarray
    props: list


def perform(
    name: str,
    body: Body,
    t: np.ndarray,
    params: ActivityParams,
    rng: np.random.Generator,
    origin: np.ndarray | None = None,
    heading: float = 0.0,
) -> Performance:
    """Pose ``body`` doing procedural activity ``name`` at times ``t``.

    Every frame depends only on its own time, so any subset of frames gives the same poses.

    Args:
        name: a key of :data:`ACTIVITIES`.
        body: subject.
        t: ``[T]`` seconds.
        params: variation of this (subject, activity).
        rng: generator for the smooth angle jitter.
        origin: ``[2]`` mm, where in the capture area the activity happens (default 0).
        heading: degrees added to the activity's own heading.

    Returns:
        :class:`Performance` (joints grounded per frame, then lifted by the activity's jumps).
    """
    jitter = _Jitter(rng)
    c, s = math.cos(math.radians(heading)), math.sin(math.radians(heading))
    path_rot = np.array([[c, s], [-s, c]])  # row vectors: rotates the path by the heading
    offset = np.zeros(2) if origin is None else np.asarray(origin, dtype=np.float64)

    def pose(times: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        n = len(times)
        angles = ACTIVITIES[name](times, params)
        local = local_rotations(angles, n)
        jit = jitter(times)
        for j in range(1, sk.NUM_JOINTS):
            local[:, j] = local[:, j] @ rot_z(jit[:, j, 2]) @ rot_y(jit[:, j, 1]) @ rot_x(jit[:, j, 0])
        yaw = np.broadcast_to(np.asarray(angles.get("yaw", 0.0), dtype=np.float64), (n,)) + heading
        rot = root_rotation(yaw + 3.0 * jit[:, 0, 2], angles.get("pitch", 0.0), 0.5 * jit[:, 0, 1])
        xy = np.broadcast_to(np.asarray(angles.get("xy", np.zeros(2)), dtype=np.float64), (n, 2))
        root = np.concatenate([xy @ path_rot + offset, np.zeros((n, 1))], axis=1)
        joints = forward(body, root, rot, local)
        lift = np.broadcast_to(np.asarray(angles.get("lift", 0.0), dtype=np.float64), (n,))
        joints[..., 2] += (lift - lowest_point(body, joints))[:, None]
        return joints, rot, angles

    joints, _, angles = pose(np.asarray(t, dtype=np.float64))
    props = []
    if angles.get("stool"):
        # The stool goes under the buttocks of the deepest seated pose of a fixed reference cycle (the
        # root never moves sideways while sitting), whatever frames were asked for.
        ref_joints, ref_rot, _ = pose(np.arange(0.0, 8.0 / params.tempo, 0.05))
        k = int(np.argmin(ref_joints[:, sk.HIPS, 2]))
        back = -ref_rot[k, :, 1] * 0.03 * body.height
        seat = ref_joints[k, sk.HIPS, 2] - 0.8 * body.radii["pelvis"][2]
        props.append(("stool", {"center": ref_joints[k, sk.HIPS, :2] + back[:2], "height": float(seat)}))
    return Performance(joints=joints, props=props)
