"""Body proportions: one subject's bone offsets and part radii, from its height and a few factors.

The 18 HUMAN4D subset joints (:mod:`heatlit.body.skeleton`), millimetres; the body frame at rest has x to
the subject's right, y forward and z up. The part radii also give each joint's visibility slack: how far
behind the visible depth surface a joint may lie and still count as seen (used for rendered and real
depth alike).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heatlit.body import skeleton as sk

# Rest directions (body frame) and lengths as fractions of the standing height; the chain sums to
# hips 0.56 H, neck 0.82 H and head top 1.0 H (Winter's anthropometric ratios, rounded).
_REST = {
    sk.SPINE1: ((0.0, 0.0, 1.0), 0.09),
    sk.NECK: ((0.0, 0.0, 1.0), 0.17),
    sk.HEAD_END: ((0.0, 0.12, 1.0), 0.18),
    sk.R_ARM: ((1.0, 0.0, -0.12), 0.115),
    sk.R_FOREARM: ((0.0, 0.0, -1.0), 0.186),
    sk.R_HAND: ((0.0, 0.0, -1.0), 0.146),
    sk.R_UPLEG: ((0.052, 0.0, -0.03), None),  # the vector itself, in H
    sk.R_LEG: ((0.0, 0.0, -1.0), 0.245),
    sk.R_FOOT: ((0.0, 0.0, -1.0), 0.246),
    sk.R_TOE: ((0.0, 0.105, -0.022), None),
}
_SEGMENT = {  # which proportion multiplier scales each bone
    sk.SPINE1: "torso", sk.NECK: "torso", sk.HEAD_END: "head", sk.R_ARM: "shoulders",
    sk.R_FOREARM: "upper_arm", sk.R_HAND: "forearm", sk.R_UPLEG: "hips", sk.R_LEG: "thigh",
    sk.R_FOOT: "shank", sk.R_TOE: "foot",
}  # fmt: skip
_MIRROR = {sk.L_ARM: sk.R_ARM, sk.L_FOREARM: sk.R_FOREARM, sk.L_HAND: sk.R_HAND, sk.L_UPLEG: sk.R_UPLEG,
           sk.L_LEG: sk.R_LEG, sk.L_FOOT: sk.R_FOOT, sk.L_TOE: sk.R_TOE}  # fmt: skip

# Part radii as fractions of the height, before the subject's girth factors.
_RADII = {
    "upper_arm": 0.027, "forearm": 0.021, "hand": 0.026, "thigh": 0.046, "shank": 0.031, "foot": 0.02,
    "neck": 0.032, "shoulder": 0.033, "clavicle": 0.03,
    "head": (0.047, 0.057, 0.066), "chest": (0.1, 0.06, 0.0), "pelvis": (0.095, 0.062, 0.085),
}  # fmt: skip

# The body parts around each joint: how deep under the surface the joint can lie is the largest of their
# radii (ellipsoids: their two horizontal radii), which is the slack the z-buffer visibility test allows.
_JOINT_PARTS = (
    ("pelvis",), ("pelvis", "chest"), ("neck", "chest"), ("head",), ("shoulder", "clavicle", "upper_arm"),
    ("upper_arm", "forearm"), ("forearm", "hand"), ("shoulder", "clavicle", "upper_arm"), ("upper_arm", "forearm"),
    ("forearm", "hand"), ("thigh", "pelvis"), ("thigh", "shank"), ("shank", "foot"), ("foot",),
    ("thigh", "pelvis"), ("thigh", "shank"), ("shank", "foot"), ("foot",),
)  # fmt: skip


@dataclass(frozen=True)
class Body:
    """One subject's proportions.

    Attributes:
        height: standing height, mm.
        offsets: ``[18, 3]`` float64 rest offset of each joint from its parent in the body frame, mm
            (row 0 unused).
        radii: part name -> radius in mm (float, or ``(right, forward, up)`` for ellipsoids; the chest's
            vertical radius is derived from the spine at render time).
        girth: overall girth factor (1 = average).
    """

    height: float
    offsets: np.ndarray
    radii: dict
    girth: float

    @property
    def bone_lengths(self) -> np.ndarray:
        """``[18]`` mm, length of the bone ending at each joint (0 for the root)."""
        return np.linalg.norm(self.offsets, axis=1)

    @property
    def visibility_slack(self) -> np.ndarray:
        """``[18]`` mm a joint may lie behind the visible surface and still count as seen.

        1.2 x the largest radius of the parts around the joint (oblique views see a little deeper) + 15 mm
        (sensor-scale tolerance).
        """

        def radius(part: str) -> float:
            r = self.radii[part]
            return max(r[:2]) if isinstance(r, tuple) else r

        return 1.2 * np.array([max(radius(p) for p in parts) for parts in _JOINT_PARTS]) + 15.0


def make_body(
    height: float = 1700.0, props: dict | None = None, girth: float = 1.0, limbs: float = 1.0
) -> Body:
    """A body from explicit proportions.

    Args:
        height: standing height, mm.
        props: segment name (``torso, head, shoulders, upper_arm, forearm, hips, thigh, shank, foot``)
            -> length multiplier (default 1).
        girth: torso girth multiplier (heads keep their size).
        limbs: limb radius multiplier.

    Returns:
        :class:`Body`.
    """
    props = props or {}
    offsets = np.zeros((sk.NUM_JOINTS, 3))
    for joint, (direction, length) in _REST.items():
        vec = np.asarray(direction, dtype=np.float64)
        vec = vec * height if length is None else vec / np.linalg.norm(vec) * length * height
        offsets[joint] = vec * props.get(_SEGMENT[joint], 1.0)
    for left, right in _MIRROR.items():
        offsets[left] = offsets[right] * (-1.0, 1.0, 1.0)
    radii = {}
    for name, value in _RADII.items():
        if isinstance(value, tuple):
            radii[name] = tuple(v * height * girth for v in value)
        else:
            radii[name] = value * height * limbs
    radii["head"] = tuple(v * height for v in _RADII["head"])  # heads vary little with girth
    return Body(height=float(height), offsets=offsets, radii=radii, girth=float(girth))


def random_body(rng: np.random.Generator) -> Body:
    """A random adult: height U(1550, 1950) mm, segment lengths +-8 %, girth U(0.85, 1.3).

    Args:
        rng: the subject's generator (the only source of randomness).
    """
    height = rng.uniform(1550.0, 1950.0)
    names = ("torso", "head", "shoulders", "upper_arm", "forearm", "hips", "thigh", "shank", "foot")
    props = {n: float(np.clip(1.0 + rng.normal(0.0, 0.035), 0.92, 1.08)) for n in names}
    props["shoulders"] *= rng.uniform(0.92, 1.1)
    props["hips"] *= rng.uniform(0.92, 1.12)
    return make_body(height, props, girth=rng.uniform(0.85, 1.3), limbs=rng.uniform(0.85, 1.25))
