"""The HUMAN4D skeleton: its 33 VICON joints and the 18-joint subset the DARK reproduction trained on.

One home for joint names, the kinematic tree (parents / bones), flip pairs and the PCKh head segment, so
the synthetic generator, the HUMAN4D loader and the dataset description agree on every index.
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

#: OKS sigmas of the 18 joints (COCO's definition: the spread of human labels, as a fraction of the person's
#: scale). No labelled study exists for this skeleton, so each joint takes the sigma of the annotated joint it
#: corresponds to (docs/UPPER_BOUND.md): COCO's shoulder/elbow/wrist/hip/knee/ankle for Arm/ForeArm/Hand/
#: UpLeg/Leg/Foot; CrowdPose's head top and neck (0.079); for ToeBase (the ball of the foot) the mean of
#: COCO-WholeBody's big and small toe sigmas (0.068, 0.066, 0.092, 0.094 -> 0.080); Hips (the pelvis centre,
#: the midpoint of the two hip joints) and Spine1 (an unmarked point inside the torso) COCO's hip sigma 0.107,
#: the loosest body joint, since neither can be labelled more precisely than the hips.
OKS_SIGMAS: tuple[float, ...] = (
    0.107, 0.107, 0.079, 0.079,  # Hips, Spine1, Neck, HeadEnd
    0.079, 0.072, 0.062, 0.079, 0.072, 0.062,  # right, left: Arm, ForeArm, Hand
    0.107, 0.087, 0.089, 0.080, 0.107, 0.087, 0.089, 0.080,  # right, left: UpLeg, Leg, Foot, ToeBase
)  # fmt: skip

assert all(JOINT_NAMES[a] == "Left" + JOINT_NAMES[b][5:] for a, b in FLIP_PAIRS)
assert len(OKS_SIGMAS) == NUM_JOINTS and all(OKS_SIGMAS[a] == OKS_SIGMAS[b] for a, b in FLIP_PAIRS)


def select_18(joints33: np.ndarray) -> np.ndarray:
    """The reproduction's subset: ``[..., 33, D] -> [..., 18, D]`` (any dtype, any trailing size)."""
    if joints33.shape[-2] != len(HUMAN4D_33):
        raise ValueError(f"expected [..., 33, D] HUMAN4D joints, got shape {joints33.shape}")
    return joints33[..., list(SUBSET_18), :]
