"""What every source of 18-joint depth humans (rendered or HUMAN4D) shares: its description and record."""

from __future__ import annotations

import numpy as np

from heatlit.body import skeleton as sk
from heatlit.data.base import DatasetDescription, Source

#: The HUMAN4D 18-joint subset seen by a depth camera, scored by PCKh (the DARK reproduction's protocol) and,
#: beside it, by OKS AP against each frame's own person (sigmas and area: docs/UPPER_BOUND.md).
DEPTH_HUMANS = DatasetDescription(
    name="depth_humans",
    keypoints=sk.JOINT_NAMES,
    flip_pairs=sk.FLIP_PAIRS,
    skeleton=sk.BONES,
    in_channels=1,
    has_3d=True,
    pck="pckh",
    norm="head segment (neck to head top), px",
    head_segment=sk.HEAD_SEGMENT,
    root=sk.HIPS,
    oks_sigmas=sk.OKS_SIGMAS,
    monitor="pckh@0.1",
)


class DepthHumanSource(Source):
    """Base of the 18-joint depth sources: whole depth frames with camera-frame joints."""

    description = DEPTH_HUMANS

    def frame_record(self, depth_units, keypoints, visible, joints3d, cam_K, depth_unit_mm, meta) -> dict:
        """The raw-sample dict (docs/CONTRACTS.md) of one whole depth frame.

        Args:
            depth_units: ``[H, W]`` depth in sensor units (0 = missing); depth_unit_mm: mm per unit.
            keypoints: ``[18, 2]`` image px; visible: ``[18]`` bool; joints3d: ``[18, 3]`` camera mm;
            cam_K: ``[3, 3]``; meta: plain values describing the sample.

        The crop box is the whole frame and the PCKh normaliser the neck-to-head-top length in px.
        """
        h, w = depth_units.shape
        neck, head = self.description.head_segment
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
