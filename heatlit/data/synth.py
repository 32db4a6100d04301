"""Synthetic depth people (the default ``data=synth``): a data source over the generator's rendered cache.

The data are rendered once per config by :mod:`heatlit.data.generator` into ``<data_dir>/synth-<hash>/``;
this source reads one split of it through memory maps.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from heatlit.body.camera import DEPTH_UNIT_MM
from heatlit.data.base import canonical_split
from heatlit.data.depth_humans import DEPTH_HUMANS, DepthHumanSource
from heatlit.data.generator.cache import SINGLE, build_cache, open_split, verify_cache
from heatlit.data.generator.config import CrowdConfig, SynthConfig
from heatlit.data.generator.crowd import CROWD
from heatlit.data.generator.world import ACTIVITY_ORDER, DEVICES

log = logging.getLogger(__name__)

_AUTO = "auto"


def default_mocap_path() -> Path | None:
    """The CMU clip: ``$HEATLIT_MOCAP`` if set, else ``<repo>/../shared/data/mocap/cmu_01_01.bvh``."""
    env = os.environ.get("HEATLIT_MOCAP")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    for root in (repo.parent, Path.cwd().parent):
        candidate = root / "shared" / "data" / "mocap" / "cmu_01_01.bvh"
        if candidate.is_file():
            return candidate
    return None


class SynthSource(DepthHumanSource):
    """Synthetic depth people: a torch ``Dataset`` of raw samples (``docs/CONTRACTS.md``).

    Args:
        data_dir: cache root (the data lives in ``<data_dir>/synth-<config hash>``).
        split: ``"train"``, ``"val"`` or ``"test"``.
        width, height: image size, px (default 160x80, half the reproduction's 320x160).
        train_frames, val_frames, test_frames: samples per split.
        subjects: number of subjects; the last is held out (val / test).
        seed: generator seed.
        noise: sensor noise on the stored depth.
        mocap_path: BVH clip path, ``"auto"`` (``$HEATLIT_MOCAP`` or ``../shared/data/mocap/cmu_01_01.bvh``;
            procedural activities only, with a warning, when absent) or None.
        progress: rich progress bar while generating.
        workers: generator processes (0 = automatic); not part of the cache key.
        visibility: ``"unoccluded"`` (in frame and not hidden behind a nearer surface, the default) or
            ``"in_frame"`` (every joint inside the image counts, as when mocap joints are projected onto
            depth maps without occlusion reasoning). Read-time only: not part of the cache key.
        **options: other :class:`SynthConfig` fields (``fps``, ``duration_s``, ``noise_sigma``, ...).

    Attributes:
        generated: True when this instance had to build the cache (False when it reused one).
        cache_dir: the cache folder.
    """

    description = replace(DEPTH_HUMANS, name="synth")
    layout = SINGLE  # what the cache stores per sample (a multi-person source stores several people)
    config_class = SynthConfig

    def __init__(
        self,
        data_dir: str = "data",
        split: str = "train",
        *,
        width: int = 160,
        height: int = 80,
        train_frames: int = 3000,
        val_frames: int = 500,
        test_frames: int = 500,
        subjects: int = 4,
        seed: int = 1314,
        noise: bool = True,
        mocap_path: str | None = _AUTO,
        progress: bool = True,
        workers: int = 0,
        visibility: str = "unoccluded",
        **options,
    ):
        if visibility not in ("unoccluded", "in_frame"):
            raise ValueError(f"visibility must be 'unoccluded' or 'in_frame', got {visibility!r}")
        self.visibility = visibility
        self.split = canonical_split(split)
        if mocap_path == _AUTO:
            found = default_mocap_path()
            if found is None or not found.is_file():
                log.warning(
                    "mocap clip not found (%s); synthetic data uses procedural activities only",
                    found or "set HEATLIT_MOCAP or provide ../shared/data/mocap/cmu_01_01.bvh",
                )
                mocap_path = None
            else:
                mocap_path = str(found)
        elif mocap_path is not None and not Path(mocap_path).is_file():
            raise FileNotFoundError(f"mocap_path {mocap_path} does not exist")
        unknown = set(options) - {f.name for f in dataclasses.fields(self.config_class)}
        if unknown:
            raise TypeError(f"unknown {type(self).__name__} options: {sorted(unknown)}")
        self.config = self.config_class(
            width=width,
            height=height,
            train_frames=train_frames,
            val_frames=val_frames,
            test_frames=test_frames,
            subjects=subjects,
            seed=seed,
            noise=noise,
            mocap_path=mocap_path,
            **options,
        )
        root = Path(data_dir)
        existing = self.layout.folder(root, self.config)
        # This split's bytes are checked against their digests here, so a damaged copy is re-rendered now
        # rather than found by a DataLoader worker.
        content = (self.split,)
        self.generated = not (
            existing.exists() and verify_cache(existing, self.config, content, self.layout) is None
        )
        self.cache_dir = build_cache(
            root, self.config, progress=progress, workers=workers, content=content, layout=self.layout
        )
        self.activities = list(ACTIVITY_ORDER)
        self._arrays: dict | None = None
        self._count = self.config.frames(self.split)

    def _open(self) -> dict:
        # Memory maps, opened lazily so DataLoader workers (fork or spawn) each map the same pages.
        if self._arrays is None:
            self._arrays = open_split(self.cache_dir, self.split)
        return self._arrays

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_arrays"] = None
        return state

    def __len__(self) -> int:
        return self._count

    def _visible(self, stored: np.ndarray, keypoints: np.ndarray, w: int, h: int) -> np.ndarray:
        """``[..., 18]`` bool under the configured visibility rule (pixel extents: ``[-0.5, size - 0.5]``).

        ``stored`` is the cache's (unoccluded) visibility, ``keypoints [..., 18, 2]`` their projections.
        """
        if self.visibility == "unoccluded":
            return np.array(stored, dtype=bool)
        x, y = keypoints[..., 0], keypoints[..., 1]
        return (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)

    def _index(self, i: int) -> int:
        if not -self._count <= i < self._count:
            raise IndexError(f"index {i} out of range for {self._count} {self.split} samples")
        return int(i) % self._count

    def _meta(self, arr: dict, i: int) -> dict:
        subject, activity, frame, camera = (int(v) for v in arr["index"][i])
        return {
            "sample_id": i,
            "image_id": i,
            "split": self.split,
            "subject": subject,
            "activity": self.activities[activity],
            "camera": camera,
            "device": DEVICES[camera],
            "frame": frame,
        }

    def __getitem__(self, i: int) -> dict:
        i = self._index(i)
        arr = self._open()
        depth = np.asarray(arr["depth"][i])
        h, w = depth.shape
        keypoints = np.array(arr["keypoints"][i], dtype=np.float64)
        visible = self._visible(arr["visible"][i], keypoints, w, h)
        return self.frame_record(
            depth, keypoints, visible, arr["joints3d"][i], arr["cam_K"][i], DEPTH_UNIT_MM, self._meta(arr, i)
        )


class SynthMultiSource(SynthSource):
    """Synthetic depth frames with 2-4 people each (``data=synth_multi``), for bottom-up heatmaps.

    Rendered by :mod:`heatlit.data.generator.crowd` into ``<data_dir>/synth_multi-<hash>``. A raw sample is
    a :class:`SynthSource` sample of the frame's *host* (person 0: the planned subject, whose keypoints,
    visibility, 3D joints and PCKh normaliser fill the single-person fields) plus every person's
    ``people_keypoints [M, 18, 2]`` image px and ``people_visible [M, 18]`` (occlusion by other people
    counts; ``M`` = people in this frame); ``meta["people"] = M``.

    Args: those of :class:`SynthSource`, and the crowd settings of
    :class:`~heatlit.data.generator.config.CrowdConfig` (``min_people``, ``max_people``,
    ``guest_depth_mm``, ``guest_fov``, ``min_gap_mm``) as options.
    """

    description = replace(DEPTH_HUMANS, name="synth_multi", multi_person=True, monitor="peak_ap")
    layout = CROWD
    config_class = CrowdConfig

    def __getitem__(self, i: int) -> dict:
        i = self._index(i)
        arr = self._open()
        depth = np.asarray(arr["depth"][i])
        h, w = depth.shape
        m = int(arr["people"][i])
        keypoints = np.array(arr["keypoints"][i, :m], dtype=np.float64)
        visible = self._visible(arr["visible"][i, :m], keypoints, w, h)
        meta = {**self._meta(arr, i), "people": m}
        record = self.frame_record(
            depth, keypoints[0], visible[0], arr["joints3d"][i, 0], arr["cam_K"][i], DEPTH_UNIT_MM, meta
        )
        return {**record, "people_keypoints": keypoints, "people_visible": visible}
