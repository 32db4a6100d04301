"""The deterministic world of a config: subjects, cameras, rooms, the sample plan of each split, a view.

Splits follow the reproduction: subjects 1..N-1 train; the last subject's activities are split in halves
(alternate entries of :data:`ACTIVITY_ORDER`) into validation and test.
"""

from __future__ import annotations

import math

import numpy as np

from heatlit.body.camera import (
    CROP_SIZE,
    CROP_TOP,
    FULL_SIZE,
    Camera,
    crop_K,
    joint_visibility,
    look_at,
    project,
    resize_K,
    sensor_to_depth_K,
)
from heatlit.body.shape import random_body
from heatlit.data.generator import render as rd
from heatlit.data.generator.bvh import load_bvh
from heatlit.data.generator.config import SynthConfig, stream_rng
from heatlit.data.generator.mocap import MocapClip
from heatlit.data.generator.motion import ACTIVITIES, ActivityParams, Performance, perform
from heatlit.data.generator.scene import LABEL_FLOOR, LABEL_WALL, Scene, body_scene, stool_scene

DEVICES: tuple[str, ...] = ("M72e", "M72h", "M72i", "M72j")  # HUMAN4D's device names
MOCAP_ACTIVITY = "cmu_01_01"
#: Every activity in a fixed order: val takes the even entries, test the odd ones (for the held-out subject).
ACTIVITY_ORDER: tuple[str, ...] = (*ACTIVITIES, MOCAP_ACTIVITY)


class SynthWorld:
    """The deterministic scene of a config: bodies, activities, cameras and their backgrounds.

    Subject ``s`` (1-based) has ``bodies[s - 1]`` and ``rigs[s - 1]``: four cameras at the HUMAN4D sensor
    resolution 320x180. :meth:`output_camera` gives the cropped / resampled camera of the stored images.
    """

    def __init__(self, cfg: SynthConfig):
        self.cfg = cfg
        self.clip: MocapClip | None = None
        if cfg.mocap_path:
            self.clip = MocapClip(load_bvh(cfg.mocap_path), name=MOCAP_ACTIVITY)
        self.activities = [a for a in ACTIVITY_ORDER if a != MOCAP_ACTIVITY or self.clip is not None]
        self.bodies = [random_body(stream_rng(cfg, 1, s)) for s in range(1, cfg.subjects + 1)]
        self.sensor_K = [self._device_K(k) for k in range(len(DEVICES))]
        self.rigs, self.planes = [], []
        for s in range(1, cfg.subjects + 1):
            rig, planes = self._session(s)
            self.rigs.append(rig)
            self.planes.append(planes)
        self._backgrounds: dict = {}

    def _device_K(self, k: int) -> np.ndarray:
        """1280x720 intrinsics of device ``k`` (a D415-like field of view, small per-device spread)."""
        rng = stream_rng(self.cfg, 2, k)
        fx = 890.0 + rng.uniform(-12, 12)
        fy = fx * (1 + rng.uniform(-0.004, 0.004))
        cx, cy = 639.5 + rng.uniform(-8, 8), 359.5 + rng.uniform(-6, 6)
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])

    def _session(self, subject: int) -> tuple[list[Camera], list]:
        """Four cameras around the capture centre and the room (floor, one wall) of one subject."""
        cfg = self.cfg
        rng = stream_rng(cfg, 3, subject)
        base = rng.uniform(0, 360)
        cams = []
        for k, name in enumerate(DEVICES):
            az = math.radians(base + 90 * k + rng.uniform(-12, 12))
            radius = rng.uniform(*cfg.cam_radius_mm)
            eye = np.array([radius * math.cos(az), radius * math.sin(az), rng.uniform(*cfg.cam_height_mm)])
            target = np.array([rng.uniform(-150, 150), rng.uniform(-150, 150), rng.uniform(850, 1100)])
            R, t = look_at(eye, target)
            K = sensor_to_depth_K(self.sensor_K[k])
            cams.append(Camera(name, K, R, t, *FULL_SIZE))
        # One wall, between two cameras and behind both, facing the capture centre.
        wall_az = math.radians(base + 45 + 90 * int(rng.integers(4)))
        normal = -np.array([math.cos(wall_az), math.sin(wall_az), 0.0])
        dist = max(float(-normal @ c.center) for c in cams) + rng.uniform(300, 900)
        planes = [(np.array([0.0, 0.0, 1.0]), 0.0, LABEL_FLOOR), (normal, dist, LABEL_WALL)]
        return cams, planes

    def output_camera(self, subject: int, k: int) -> Camera:
        """Camera ``k`` of ``subject`` for the stored images: the 320x160 crop resampled to the config size."""
        cam = self.rigs[subject - 1][k]
        K = resize_K(crop_K(cam.K, CROP_TOP), CROP_SIZE, (self.cfg.width, self.cfg.height))
        return cam.with_image(K, self.cfg.width, self.cfg.height)

    def background(self, subject: int, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
        """Floor and wall depth of one view (cached: cameras are static within a session)."""
        key = (subject, camera.name, camera.width, camera.height, camera.K.tobytes())
        if key not in self._backgrounds:
            self._backgrounds[key] = rd.render_planes(camera, self.planes[subject - 1])
        return self._backgrounds[key]

    def performance(self, subject: int, activity: str, frames: np.ndarray) -> Performance:
        """Joints ``[T, 18, 3]`` world mm of ``subject`` doing ``activity`` at frame numbers ``frames``."""
        a = ACTIVITY_ORDER.index(activity)
        rng = stream_rng(self.cfg, 4, subject, a)
        params = ActivityParams.sample(rng)
        origin = rng.uniform(-200, 200, size=2)
        heading = rng.uniform(0, 360)
        t = np.asarray(frames, dtype=np.float64) / self.cfg.fps
        body = self.bodies[subject - 1]
        if activity == MOCAP_ACTIVITY:
            if self.clip is None:
                raise ValueError(f"activity {activity!r} needs the mocap clip, which this config lacks")
            return self.clip.retarget(body, t, origin=origin, heading=heading)
        return perform(activity, body, t, params, rng, origin=origin, heading=heading)

    def scene(self, subject: int, perf: Performance, index: int) -> Scene:
        """Primitives of frame ``index`` of a performance (body plus props)."""
        scene = body_scene(perf.joints[index], self.bodies[subject - 1])
        for kind, p in perf.props:
            if kind == "stool":
                scene.extend(stool_scene(p["center"], p["height"]))
        return scene

    def sequence_length(self, activity: str) -> int:
        """Frames in one sequence of ``activity`` at ``cfg.fps``."""
        if activity == MOCAP_ACTIVITY and self.clip is not None:
            return int(self.clip.duration * self.cfg.fps)
        return int(round(self.cfg.duration_s * self.cfg.fps))

    def split_sequences(self, split: str) -> list[tuple[int, str]]:
        """``(subject, activity)`` pairs of a split: subjects 1..N-1 train, subject N halves val / test."""
        held_out = self.cfg.subjects
        if split == "train":
            return [(s, a) for s in range(1, held_out) for a in self.activities]
        half = ACTIVITY_ORDER[0::2] if split == "val" else ACTIVITY_ORDER[1::2]
        return [(held_out, a) for a in self.activities if a in half]

    def plan(self, split: str) -> np.ndarray:
        """The samples of a split: ``[N, 4]`` int64 (subject, activity index, frame, camera).

        Samples are spread evenly over the split's sequences; within a sequence the time steps are evenly
        spaced over its length (stretched when more steps than frames are needed) and each step is seen by
        all four cameras, the camera order rotating so truncation favours none.
        """
        total = self.cfg.frames(split)
        seqs = self.split_sequences(split)
        if total and not seqs:
            raise ValueError(f"split {split!r} has no sequences")
        rows = []
        counts = np.full(len(seqs), total // max(len(seqs), 1))
        counts[: total - counts.sum()] += 1
        for (subject, activity), n in zip(seqs, counts):
            if n == 0:
                continue
            steps = math.ceil(n / len(DEVICES))
            length = max(self.sequence_length(activity), steps)
            frames = np.floor(np.arange(steps) * length / steps).astype(np.int64)
            a = ACTIVITY_ORDER.index(activity)
            for step, frame in enumerate(frames):
                for k in range(len(DEVICES)):
                    rows.append((subject, a, int(frame), (step + k) % len(DEVICES)))
            del rows[len(rows) - (steps * len(DEVICES) - n) :]
        return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


def render_view(
    world: SynthWorld,
    subject: int,
    joints: np.ndarray,
    scene: Scene,
    camera: Camera,
    rng: np.random.Generator | None,
) -> dict:
    """Render one view and its ground truth.

    Args:
        world: the scene's world.
        subject: 1-based subject (selects body and room).
        joints: ``[18, 3]`` world mm.
        scene: the primitives to draw.
        camera: the view (any intrinsics / size).
        rng: noise generator, or None for a clean sensor.

    Returns:
        dict with ``depth`` uint16 ``[H, W]`` (100 um units), ``clean_mm`` float32 ``[H, W]`` (noise-free
        z-buffer, inf where empty), ``label`` uint8 ``[H, W]``, ``keypoints [18, 2]`` float64 px,
        ``visible [18]`` bool, ``joints3d [18, 3]`` float32 camera mm.
    """
    depth, label = rd.render(camera, scene, world.background(subject, camera))
    joints_cam = camera.to_cam(joints)
    xy = project(camera.K, joints_cam)
    slack = world.bodies[subject - 1].visibility_slack
    visible = joint_visibility(depth, xy, joints_cam[:, 2], slack)
    return {
        "depth": sensor_depth(world.cfg, depth, rng),
        "clean_mm": depth,
        "label": label,
        "keypoints": xy,
        "visible": visible,
        "joints3d": joints_cam.astype(np.float32),
    }


def sensor_depth(cfg: SynthConfig, depth_mm: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """What the sensor stores of a z-buffer: ``[H, W]`` mm -> uint16 100 um units, with the config's noise
    and dropout drawn from ``rng`` (None: a clean sensor, only its range applied)."""
    if rng is None:
        stored = rd.clean_depth(depth_mm)
    else:
        stored = rd.sensor_noise(depth_mm, rng, cfg.noise_sigma, edge_drop=cfg.edge_drop, dropout=cfg.dropout)
    return rd.to_depth_units(stored)
