"""Scene primitives: a posed body as capsules and ellipsoids, and props (world mm, labelled)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from heatlit.body import skeleton as sk

LABEL_NONE, LABEL_FLOOR, LABEL_WALL, LABEL_PROP, LABEL_BODY = 0, 1, 2, 3, 8


@dataclass
class Scene:
    """Primitives in world mm, each with a label (see ``LABEL_*``).

    Attributes:
        capsules: list of ``(a [3], b [3], radius, label)``: segment ``a-b`` swept by a sphere.
        ellipsoids: list of ``(center [3], axes [3, 3] (columns: unit axes), radii [3], label)``.
    """

    capsules: list = field(default_factory=list)
    ellipsoids: list = field(default_factory=list)

    def extend(self, other: Scene) -> Scene:
        self.capsules += other.capsules
        self.ellipsoids += other.ellipsoids
        return self


def _frame(up: np.ndarray, right_hint: np.ndarray) -> np.ndarray:
    """Orthonormal ``[3, 3]`` with columns (right, forward, up) from an up vector and a rough right."""
    up = up / np.linalg.norm(up)
    right = right_hint - np.dot(right_hint, up) * up
    norm = np.linalg.norm(right)
    right = right / norm if norm > 1e-9 else np.cross(up, [0.0, 1.0, 0.0])
    return np.stack([right, np.cross(up, right), up], axis=1)


def body_scene(joints: np.ndarray, body) -> Scene:
    """The primitives of one posed body.

    Args:
        joints: ``[18, 3]`` world mm.
        body: :class:`heatlit.body.shape.Body` (radii, height).

    Returns:
        :class:`Scene` of about 30 primitives labelled ``LABEL_BODY + k``; every joint lies inside one.
    """
    j = np.asarray(joints, dtype=np.float64)
    r, h = body.radii, body.height
    scene = Scene()
    cap = scene.capsules

    def label(k: int) -> int:
        return LABEL_BODY + k

    for side, arm, fore, hand, upleg, leg, foot, toe in (
        (0, sk.R_ARM, sk.R_FOREARM, sk.R_HAND, sk.R_UPLEG, sk.R_LEG, sk.R_FOOT, sk.R_TOE),
        (1, sk.L_ARM, sk.L_FOREARM, sk.L_HAND, sk.L_UPLEG, sk.L_LEG, sk.L_FOOT, sk.L_TOE),
    ):
        b = 10 * side
        cap.append((j[sk.NECK], j[arm], r["clavicle"], label(b + 1)))
        cap.append((j[arm], j[arm], r["shoulder"], label(b + 2)))
        cap.append((j[arm], j[fore], r["upper_arm"], label(b + 3)))
        cap.append((j[fore], j[hand], r["forearm"], label(b + 4)))
        direction = j[hand] - j[fore]
        direction /= max(np.linalg.norm(direction), 1e-9)
        cap.append((j[hand] + direction * 0.02 * h, j[hand] + direction * 0.06 * h, r["hand"], label(b + 5)))
        cap.append((j[upleg], j[leg], r["thigh"], label(b + 6)))
        cap.append((j[leg], j[foot], r["shank"], label(b + 7)))
        cap.append((j[foot], j[toe], r["foot"], label(b + 8)))
    right_chest = j[sk.R_ARM] - j[sk.L_ARM]
    right_hips = j[sk.R_UPLEG] - j[sk.L_UPLEG]
    # Chest: spans Spine1..Neck plus a margin, so the neck joint sits just under its top.
    spine = j[sk.NECK] - j[sk.SPINE1]
    chest_axes = _frame(spine, right_chest)
    rx, ry, _ = r["chest"]
    half = 0.5 * np.linalg.norm(spine) + 0.035 * h * body.girth**0.3
    scene.ellipsoids.append((j[sk.SPINE1] + 0.55 * spine, chest_axes, np.array([rx, ry, half]), label(20)))
    pelvis_axes = _frame(j[sk.SPINE1] - j[sk.HIPS], right_hips)
    scene.ellipsoids.append(
        (j[sk.HIPS] + 0.35 * (j[sk.SPINE1] - j[sk.HIPS]), pelvis_axes, np.asarray(r["pelvis"]), label(21))
    )
    head_up = j[sk.HEAD_END] - j[sk.NECK]
    head_axes = _frame(head_up, right_chest)
    hr = np.asarray(r["head"])
    # The head top sits 0.008 H above HeadEnd, so the head-top joint is inside the head.
    head_center = j[sk.HEAD_END] - head_axes[:, 2] * (hr[2] - 0.008 * h) + head_axes[:, 1] * 0.01 * h
    scene.ellipsoids.append((head_center, head_axes, hr, label(22)))
    cap.append((j[sk.NECK], head_center, r["neck"], label(23)))
    return scene


def stool_scene(center_xy: np.ndarray, height: float, radius: float = 190.0) -> Scene:
    """A round stool: a flat seat whose top is at ``height`` mm over ``center_xy`` and a central post."""
    c = np.array([center_xy[0], center_xy[1], height - 35.0])
    seat = (c, np.eye(3), np.array([radius, radius, 35.0]), LABEL_PROP)
    post = (np.array([c[0], c[1], 0.0]), c, 35.0, LABEL_PROP)
    return Scene(capsules=[post], ellipsoids=[seat])
