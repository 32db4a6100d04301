"""Several people in one depth frame: the multi-person (bottom-up) variant of the rendered data.

A crowd sample is a sample of the single-person plan (:meth:`SynthWorld.plan`: its subject, activity, frame
and camera), whose subject is stored as person 0 (the *host*), with guests added in front of the same
camera. Each guest gets a new random body (:func:`heatlit.body.shape.random_body`), one of the split's
activities at a random time, a bearing within the camera's field of view, a distance along it and a
heading, all from the guest's own generator (so any sample can be rendered alone, in any order).

People never overlap in 3D: a guest is placed only where its *footprint* (a vertical cylinder holding every
primitive of its body and props, :func:`footprint`) clears every other person's, the camera and the wall by
``min_gap_mm``; after 30 failed tries the guest is left out. They do hide each other in the image; the
z-buffer resolves it, and :func:`people_visibility` counts a joint as hidden when another person's surface
lies in front of it at all, or its own body's by more than its slack (the single-person rule).

Labels: person ``j``'s primitives are labelled ``LABEL_BODY + PERSON_LABELS * j + part`` (its props take
part :data:`PROP_PART`), so a label says whose surface a pixel shows (:func:`label_owner`).
"""

from __future__ import annotations

import math

import numpy as np

from heatlit.body import skeleton as sk
from heatlit.body.camera import Camera, joint_visibility, project
from heatlit.body.shape import Body, random_body
from heatlit.body.skeleton import NUM_JOINTS
from heatlit.data.generator import render as rd
from heatlit.data.generator.cache import SPLITS, Layout, open_for_filling, world_of
from heatlit.data.generator.config import CrowdConfig, stream_rng
from heatlit.data.generator.motion import ActivityParams, Performance, perform
from heatlit.data.generator.scene import LABEL_BODY, LABEL_WALL, Scene, body_scene, stool_scene
from heatlit.data.generator.world import ACTIVITY_ORDER, MOCAP_ACTIVITY, SynthWorld, sensor_depth

#: Label values per person; :func:`body_scene` uses parts 0-23.
PERSON_LABELS = 32
PROP_PART = 24
_TRIES = 30  # placements tried per guest before it is left out
_CAMERA_CLEARANCE_MM = 300.0


def label_owner(label: np.ndarray) -> np.ndarray:
    """Whose surface each pixel shows: ``[...]`` uint8 labels -> int64 person index, -1 for no person."""
    label = np.asarray(label, dtype=np.int64)
    return np.where(label >= LABEL_BODY, (label - LABEL_BODY) // PERSON_LABELS, -1)


def person_scene(joints: np.ndarray, body: Body, props: list, person: int) -> Scene:
    """The primitives of one posed person and its props, labelled as person ``person``.

    Args:
        joints: ``[18, 3]`` world mm; body: its proportions; props: ``Performance.props`` of the pose.
        person: index in the frame (0 = host).
    """
    scene = body_scene(joints, body)
    for kind, p in props:
        if kind == "stool":
            scene.extend(stool_scene(p["center"], p["height"]))
    base = LABEL_BODY + PERSON_LABELS * person

    def relabel(lab: int) -> int:
        return base + (lab - LABEL_BODY if lab >= LABEL_BODY else PROP_PART)

    scene.capsules = [(a, b, r, relabel(lab)) for a, b, r, lab in scene.capsules]
    scene.ellipsoids = [(c, ax, rad, relabel(lab)) for c, ax, rad, lab in scene.ellipsoids]
    return scene


def footprint(scene: Scene) -> tuple[np.ndarray, float]:
    """A vertical cylinder holding every primitive of ``scene``: ``(centre [2] world mm, radius mm)``.

    A capsule lies within its end spheres' horizontal extent (distance to a point is convex along the
    segment), an ellipsoid within its largest radius of its centre.
    """
    points = [p for a, b, r, _ in scene.capsules for p in ((a, r), (b, r))]
    points += [(c, float(np.max(radii))) for c, _, radii, _ in scene.ellipsoids]
    xy = np.array([np.asarray(p, dtype=np.float64)[:2] for p, _ in points])
    reach = np.array([r for _, r in points])
    centre = 0.5 * (xy.min(0) + xy.max(0))
    return centre, float(np.max(np.linalg.norm(xy - centre, axis=1) + reach))


def move(perf: Performance, index: int, to_xy: np.ndarray, yaw_deg: float) -> tuple[np.ndarray, list]:
    """Frame ``index`` of a performance turned by ``yaw_deg`` about the vertical through its hips and moved
    so the hips stand over ``to_xy``: ``(joints [18, 3] world mm, props)``."""
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    rot = np.array([[c, -s], [s, c]])
    anchor = perf.joints[index, sk.HIPS, :2].copy()
    joints = perf.joints[index].copy()
    joints[:, :2] = (joints[:, :2] - anchor) @ rot.T + to_xy
    props = [
        (kind, {**p, "center": (np.asarray(p["center"], dtype=np.float64) - anchor) @ rot.T + to_xy})
        for kind, p in perf.props
    ]
    return joints, props


def people_visibility(
    depth_mm: np.ndarray, label: np.ndarray, xy: np.ndarray, z_mm: np.ndarray, slack_mm: np.ndarray
) -> np.ndarray:
    """Which joints of which person a depth map shows.

    A joint is seen when it is in frame, no surface of its own body lies in front of it by more than its
    slack (:func:`heatlit.body.camera.joint_visibility`, the single-person rule) and no other person's
    surface lies in front of it at all. Both tests sample the pixel nearest to the projection.

    Args:
        depth_mm: ``[H, W]`` z-buffer, mm (inf or 0: nothing there); label: ``[H, W]`` labels of it.
        xy: ``[M, K, 2]`` exact projections, px; z_mm: ``[M, K]`` joint depths, mm.
        slack_mm: ``[M, K]`` per-joint slack of each person's body, mm.

    Returns:
        ``[M, K]`` bool.
    """
    owner = label_owner(label)
    seen = np.empty(z_mm.shape, dtype=bool)
    for j in range(len(xy)):
        others = np.where((owner >= 0) & (owner != j), depth_mm, np.inf)
        seen[j] = joint_visibility(depth_mm, xy[j], z_mm[j], slack_mm[j]) & joint_visibility(
            others, xy[j], z_mm[j], np.zeros_like(z_mm[j])
        )
    return seen


def _split_activities(world: SynthWorld, split: str) -> list[str]:
    seen = {activity for _, activity in world.split_sequences(split)}
    return [a for a in ACTIVITY_ORDER if a in seen]


def guest_pose(world: SynthWorld, split: str, rng: np.random.Generator) -> tuple[Performance, Body]:
    """A new random body doing one of ``split``'s activities at a random time (one frame)."""
    activities = _split_activities(world, split)
    activity = activities[int(rng.integers(len(activities)))]
    body = random_body(rng)
    t = np.array([rng.uniform(0.0, world.sequence_length(activity) / world.cfg.fps)])
    if activity == MOCAP_ACTIVITY:
        return world.clip.retarget(body, t), body
    return perform(activity, body, t, ActivityParams.sample(rng), rng), body


class _Floor:
    """Free floor space in front of one camera: what a new footprint must clear."""

    def __init__(self, world: SynthWorld, subject: int, camera: Camera, gap: float):
        self.gap = gap
        self.eye = camera.center[:2]
        self.walls = [(n, d) for n, d, lab in world.planes[subject - 1] if lab == LABEL_WALL]
        self.taken: list[tuple[np.ndarray, float]] = []

    def clear(self, centre: np.ndarray, radius: float) -> bool:
        if np.linalg.norm(centre - self.eye) < radius + _CAMERA_CLEARANCE_MM:
            return False
        # walls: n . X + d > 0 on the capture side (see SynthWorld._session)
        if any(float(n[:2] @ centre + d) < radius + self.gap for n, d in self.walls):
            return False
        return all(np.linalg.norm(centre - c) >= radius + r + self.gap for c, r in self.taken)


def _bearings(camera: Camera, fov: float) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Horizontal bearing range (rad, right positive) and the camera's forward / right floor directions."""
    K, w = camera.K, camera.width
    left = math.atan2(-0.5 - K[0, 2], K[0, 0]) * fov
    right = math.atan2(w - 0.5 - K[0, 2], K[0, 0]) * fov
    forward, side = camera.R[2, :2], camera.R[0, :2]
    return left, right, forward / np.linalg.norm(forward), side / np.linalg.norm(side)


def crowd_people(world: SynthWorld, split: str, n: int, row: np.ndarray, camera: Camera) -> list[dict]:
    """The people of sample ``n`` of ``split``: host first, then the guests that found room.

    Returns:
        ``[{"joints": [18, 3] world mm, "body": Body, "scene": Scene}, ...]``.
    """
    cfg: CrowdConfig = world.cfg
    subject, activity, frame = int(row[0]), ACTIVITY_ORDER[int(row[1])], int(row[2])
    perf = world.performance(subject, activity, np.array([frame]))
    body = world.bodies[subject - 1]
    host = person_scene(perf.joints[0], body, perf.props, 0)
    people = [{"joints": perf.joints[0], "body": body, "scene": host}]
    floor = _Floor(world, subject, camera, cfg.min_gap_mm)
    floor.taken.append(footprint(host))
    split_id = SPLITS.index(split)
    count = int(stream_rng(cfg, 30, split_id, n).integers(cfg.min_people, cfg.max_people + 1))
    left, right, forward, side = _bearings(camera, cfg.guest_fov)
    for g in range(1, count):
        rng = stream_rng(cfg, 31, split_id, n, g)
        guest, guest_body = guest_pose(world, split, rng)
        for _ in range(_TRIES):
            bearing = rng.uniform(left, right)
            dist = rng.uniform(*cfg.guest_depth_mm)
            to_xy = floor.eye + dist * (math.cos(bearing) * forward + math.sin(bearing) * side)
            joints, props = move(guest, 0, to_xy, rng.uniform(0.0, 360.0))
            scene = person_scene(joints, guest_body, props, len(people))
            centre, radius = footprint(scene)
            if floor.clear(centre, radius):
                floor.taken.append((centre, radius))
                people.append({"joints": joints, "body": guest_body, "scene": scene})
                break
    return people


def render_crowd(
    world: SynthWorld, people: list[dict], subject: int, camera: Camera, rng: np.random.Generator | None
) -> dict:
    """Render several people in one view with their exact ground truth.

    Args:
        world: the scene's world; people: :func:`crowd_people`; subject: the host (selects the room);
        camera: the view; rng: sensor noise generator, or None for a clean sensor.

    Returns:
        dict with ``depth`` uint16 ``[H, W]``, ``clean_mm`` float32 ``[H, W]`` (noise-free z-buffer, inf
        where empty), ``label`` uint8 ``[H, W]``, and per person (``M = len(people)``): ``keypoints
        [M, 18, 2]`` float64 px, ``visible [M, 18]`` bool (:func:`people_visibility`), ``joints3d
        [M, 18, 3]`` float32 camera mm.
    """
    scene = Scene()
    for person in people:
        scene.extend(person["scene"])  # grows the new scene's lists, not the person's
    depth, label = rd.render(camera, scene, world.background(subject, camera))
    joints_cam = np.stack([camera.to_cam(p["joints"]) for p in people])
    xy = project(camera.K, joints_cam)
    slack = np.stack([p["body"].visibility_slack for p in people])
    return {
        "depth": sensor_depth(world.cfg, depth, rng),
        "clean_mm": depth,
        "label": label,
        "keypoints": xy,
        "visible": people_visibility(depth, label, xy, joints_cam[..., 2], slack),
        "joints3d": joints_cam.astype(np.float32),
    }


def crowd_sample(cfg: CrowdConfig, split: str, n: int) -> dict:
    """Sample ``n`` of ``split`` rendered alone: :func:`render_crowd`'s dict plus ``cam_K`` and ``index``."""
    world = world_of(cfg)
    row = world.plan(split)[n]
    camera = world.output_camera(int(row[0]), int(row[3]))
    people = crowd_people(world, split, n, row, camera)
    noise = stream_rng(cfg, 9, SPLITS.index(split), n) if cfg.noise else None
    view = render_crowd(world, people, int(row[0]), camera, noise)
    return {**view, "cam_K": camera.K, "index": row}


def crowd_fields(cfg: CrowdConfig) -> dict[str, tuple[type, tuple[int, ...]]]:
    """Several people per frame: name -> (dtype, per-sample shape); person slots beyond ``people`` are
    zeros and not visible."""
    m = cfg.max_people
    return {
        "depth": (np.uint16, (cfg.height, cfg.width)),
        "people": (np.int64, ()),
        "keypoints": (np.float64, (m, NUM_JOINTS, 2)),
        "visible": (np.bool_, (m, NUM_JOINTS)),
        "joints3d": (np.float32, (m, NUM_JOINTS, 3)),
        "cam_K": (np.float64, (3, 3)),
        "index": (np.int64, (4,)),  # the host's subject, activity index, frame, camera
    }


def fill_crowd(cfg: CrowdConfig, split: str, folder: str, start: int, stop: int, counter=None) -> int:
    """Render samples ``start:stop`` of ``split`` into the preallocated ``.npy`` files of ``folder``."""
    arrays = open_for_filling(cfg, CROWD, split, folder)
    for n in range(start, stop):
        view = crowd_sample(cfg, split, n)
        m = len(view["visible"])
        arrays["depth"][n] = view["depth"]
        arrays["people"][n] = m
        for name in ("keypoints", "visible", "joints3d"):
            arrays[name][n, :m] = view[name]
        arrays["cam_K"][n] = view["cam_K"]
        arrays["index"][n] = view["index"]
        if counter is not None:
            counter(1)
    for arr in arrays.values():
        arr.flush()
    return stop - start


#: Several people per frame (``data=synth_multi``).
CROWD = Layout("synth_multi", crowd_fields, fill_crowd)
