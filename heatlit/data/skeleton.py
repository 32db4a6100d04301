"""The HUMAN4D skeleton: its 33 VICON joints and the 18-joint subset the DARK reproduction trained on.

One home for joint names, the kinematic tree (parents / bones), flip pairs and the PCKh head segment, so
the synthetic generator, the HUMAN4D loader and the metrics agree on every index.
"""

from __future__ import annotations

import numpy as np

#: The 33 joints of HUMAN4D's ``gposes3d`` arrays, in file order.
HUMAN4D_33: tuple[str, ...] = (
    "Hips", "Spine", "Spine1", "Spine2", "Spine3", "Neck", "Neck1", "Head", "HeadEnd",
    "RightShoulder", "RightArm", "RightForeArm", "RightHand", "RightHandThumb1", "RightHandMiddle1",
    "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand", "LeftHandThumb1", "LeftHandMiddle1",
    "RightUpLeg", "RightLeg", "RightFoot", "RightForeFoot", "RightToeBase", "RightToeBaseEnd",
    "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftForeFoot", "LeftToeBase", "LeftToeBaseEnd",
)  # fmt: skip

#: Indices into :data:`HUMAN4D_33` of the 18 joints used by the reproduction.
SUBSET_18: tuple[int, ...] = (0, 2, 5, 8, 10, 11, 12, 16, 17, 18, 21, 22, 23, 25, 27, 28, 29, 31)

#: The 18 joint names, in subset order (what every data source returns).
JOINT_NAMES: tuple[str, ...] = tuple(HUMAN4D_33[i] for i in SUBSET_18)
NUM_JOINTS = len(JOINT_NAMES)

HIPS, SPINE1, NECK, HEAD_END = 0, 1, 2, 3
R_ARM, R_FOREARM, R_HAND = 4, 5, 6
L_ARM, L_FOREARM, L_HAND = 7, 8, 9
R_UPLEG, R_LEG, R_FOOT, R_TOE = 10, 11, 12, 13
L_UPLEG, L_LEG, L_FOOT, L_TOE = 14, 15, 16, 17

#: Parent of each of the 18 joints (-1 for the root): the tree the subset keeps of the VICON skeleton,
#: with the shoulder chain hung from Neck because the subset drops the clavicles.
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 2, 4, 5, 2, 7, 8, 0, 10, 11, 12, 0, 14, 15, 16)

#: Bones as (parent, child) pairs, one per non-root joint.
BONES: tuple[tuple[int, int], ...] = tuple((p, c) for c, p in enumerate(PARENTS) if p >= 0)

#: (left, right) index pairs swapped by a horizontal flip.
FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (L_ARM, R_ARM), (L_FOREARM, R_FOREARM), (L_HAND, R_HAND),
    (L_UPLEG, R_UPLEG), (L_LEG, R_LEG), (L_FOOT, R_FOOT), (L_TOE, R_TOE),
)  # fmt: skip

#: PCKh head segment (neck, head top), indices into the 18 joints.
HEAD_SEGMENT: tuple[int, int] = (NECK, HEAD_END)

assert all(JOINT_NAMES[a] == "Left" + JOINT_NAMES[b][5:] for a, b in FLIP_PAIRS)


def flip_permutation() -> np.ndarray:
    """``[18]`` int permutation mapping joint ``k`` to its mirror (identity for centre joints)."""
    perm = np.arange(NUM_JOINTS)
    for left, right in FLIP_PAIRS:
        perm[left], perm[right] = right, left
    return perm


def select_18(joints33: np.ndarray) -> np.ndarray:
    """The reproduction's subset: ``[..., 33, D] -> [..., 18, D]`` (any dtype, any trailing size)."""
    if joints33.shape[-2] != len(HUMAN4D_33):
        raise ValueError(f"expected [..., 33, D] HUMAN4D joints, got shape {joints33.shape}")
    return joints33[..., list(SUBSET_18), :]


def expand_to_33(joints18: np.ndarray) -> np.ndarray:
    """Plausible 33-joint HUMAN4D poses from the 18-joint subset (used to write HUMAN4D-layout fixtures).

    The 18 subset joints are copied exactly; the other 15 are interpolated or extrapolated along the
    neighbouring bones, so ``select_18(expand_to_33(j)) == j`` bit for bit.

    Args:
        joints18: ``[..., 18, 3]`` any units.

    Returns:
        ``[..., 33, 3]`` same dtype and units.
    """
    j = np.asarray(joints18)
    if j.shape[-2:] != (NUM_JOINTS, 3):
        raise ValueError(f"expected [..., 18, 3] joints, got shape {j.shape}")
    out = np.zeros(j.shape[:-2] + (len(HUMAN4D_33), 3), dtype=j.dtype)
    out[..., list(SUBSET_18), :] = j
    idx = {name: k for k, name in enumerate(HUMAN4D_33)}

    def lerp(a: int, b: int, w: float) -> np.ndarray:
        return j[..., a, :] + w * (j[..., b, :] - j[..., a, :])

    out[..., idx["Spine"], :] = lerp(HIPS, SPINE1, 0.5)
    out[..., idx["Spine2"], :] = lerp(SPINE1, NECK, 1 / 3)
    out[..., idx["Spine3"], :] = lerp(SPINE1, NECK, 2 / 3)
    out[..., idx["Neck1"], :] = lerp(NECK, HEAD_END, 0.25)
    out[..., idx["Head"], :] = lerp(NECK, HEAD_END, 0.5)
    for side, arm, fore, hand, foot, toe in (
        ("Right", R_ARM, R_FOREARM, R_HAND, R_FOOT, R_TOE),
        ("Left", L_ARM, L_FOREARM, L_HAND, L_FOOT, L_TOE),
    ):
        out[..., idx[f"{side}Shoulder"], :] = lerp(NECK, arm, 0.4)
        out[..., idx[f"{side}HandThumb1"], :] = lerp(fore, hand, 1.15)
        out[..., idx[f"{side}HandMiddle1"], :] = lerp(fore, hand, 1.35)
        out[..., idx[f"{side}ForeFoot"], :] = lerp(foot, toe, 0.6)
        out[..., idx[f"{side}ToeBaseEnd"], :] = lerp(foot, toe, 1.4)
    return out


#: Split names the depth sources accept (HUMAN4D's list files say training/validation/testing).
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "validation": "val",
    "valid": "val",
    "test": "test",
    "testing": "test",
}


class DepthHumanSource:
    """What every source of 18-joint depth humans (rendered or HUMAN4D) tells the data module."""

    joint_names = JOINT_NAMES
    flip_pairs = FLIP_PAIRS
    head_segment = HEAD_SEGMENT
    in_channels = 1
    has_3d = True
    metric_kind = "pckh"

    def frame_record(self, depth_units, keypoints, visible, joints3d, cam_K, depth_unit_mm, meta) -> dict:
        """The raw-sample dict (docs/CONTRACTS.md) of one whole depth frame.

        Args:
            depth_units: ``[H, W]`` depth in sensor units (0 = missing); depth_unit_mm: mm per unit.
            keypoints: ``[18, 2]`` image px; visible: ``[18]`` bool; joints3d: ``[18, 3]`` camera mm;
            cam_K: ``[3, 3]``; meta: plain values describing the sample.

        The crop box is the whole frame and the PCKh normaliser the neck-to-head-top length in px.
        """
        h, w = depth_units.shape
        neck, head = self.head_segment
        return {
            "image": (depth_units.astype(np.float32) * np.float32(depth_unit_mm / 1000.0))[..., None],
            "keypoints": keypoints,
            "visible": visible,
            "joints3d": np.asarray(joints3d, dtype=np.float32),
            "cam_K": np.array(cam_K, dtype=np.float64),
            "center": np.array([(w - 1) / 2.0, (h - 1) / 2.0]),
            "scale": np.array([float(w), float(h)]),
            "norm": float(np.linalg.norm(keypoints[head] - keypoints[neck])),
            "meta": meta,
        }
