"""The sample and batch stages of :class:`~heatlit.data.datamodule.HeatmapDataModule`.

1. :class:`SampleDataset` builds ONE affine ``image px -> input px`` per raw sample (box crop, random
   scale / rotation / flip, all in :mod:`heatlit.data.transforms`), warps the image and moves the
   keypoints with the same matrix, then applies intensity shift and occluders and normalises.
2. :class:`HeatmapCollate` stacks the samples, carries the keypoints into heatmap space through the
   :class:`~heatlit.codecs.grid.HeatmapGrid`, and calls the encoder once per batch.

Shapes and the coordinate convention: ``docs/CONTRACTS.md``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from heatlit.codecs.bottomup import bottom_up_heatmaps
from heatlit.codecs.grid import HeatmapGrid
from heatlit.data import transforms as T
from heatlit.data.base import description_of
from heatlit.data.errors import DataError


def _describe(raw: Mapping[str, Any], index: int) -> str:
    """Name a raw sample in an error message: its file if the source said, else its id and index."""
    meta = raw.get("meta") or {}
    for key in ("file", "path", "image_file"):
        if meta.get(key):
            return f"{meta[key]} (sample {index})"
    if meta.get("sample_id") is not None:
        return f"sample {meta['sample_id']!r} (index {index})"
    return f"sample index {index}"


def _check_raw(raw: Mapping[str, Any], index: int, num_joints: int, in_channels: int) -> None:
    """Raise :class:`DataError` naming the sample if ``raw`` breaks the raw-sample contract."""
    where = _describe(raw, index)
    image = raw.get("image")
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != in_channels:
        got = getattr(image, "shape", type(image).__name__)
        raise DataError(f"{where}: image must be an array [H0, W0, {in_channels}], got {got}")
    expected = {"keypoints": (num_joints, 2), "visible": (num_joints,)}
    if raw.get("joints3d") is not None:
        expected["joints3d"] = (num_joints, 3)
    if raw.get("cam_K") is not None:
        expected["cam_K"] = (3, 3)
    if raw.get("people_keypoints") is not None:  # multi-person sources: M people, any M
        m = (np.shape(raw["people_keypoints"]) or (-1,))[0]
        expected["people_keypoints"], expected["people_visible"] = (m, num_joints, 2), (m, num_joints)
    for key, shape in expected.items():
        got = np.shape(raw.get(key))
        if got != shape:
            raise DataError(f"{where}: {key!r} must have shape {list(shape)}, got {list(got)}")
    for key in ("center", "scale"):
        if np.shape(raw.get(key)) != (2,):
            raise DataError(f"{where}: {key!r} must have shape [2], got {list(np.shape(raw.get(key)))}")
    if not np.all(np.asarray(raw["scale"], dtype=np.float64) > 0):
        raise DataError(f"{where}: box 'scale' must be positive, got {raw['scale']}")


class SampleDataset(Dataset):
    """One raw sample -> one input-frame sample (numpy), optionally augmented.

    Args:
        source: a dataset returning the raw-sample dict (``docs/CONTRACTS.md``).
        input_size: ``(H, W)`` of the network input.
        augment: :class:`~heatlit.data.transforms.AugmentConfig`, or None for val/test.
        seed: base seed of the per-sample generators.
        depth_offset_m, depth_scale_m: depth normalisation, see :func:`transforms.normalize_input`.
        need_3d: every sample must carry ``joints3d`` (3D volumetric targets).

    ``dataset[i]`` or ``dataset[(i, epoch)]`` (the form :class:`EpochSampler` yields) returns a dict:
    ``image [C, H, W]`` float32 (normalised), ``keypoints [K, 2]`` float32 input px, ``visible [K]``
    bool (false also once a keypoint leaves the input frame), ``joints3d [K, 3]`` float32 mm (zeros
    when unknown), ``has_3d`` bool, ``cam_K [3, 3]`` float32 (input-px projection), ``root_depth``
    float mm, ``norm`` float input px, ``to_image [2, 3]`` float32 (input px -> image px),
    ``image_id`` and ``sample_index`` int.

    Under a flip, joint labels swap (keypoints, visibility, joints3d) while joints3d stays in the
    original camera frame; cam_K contains the mirror, so ``cam_K @ joints3d`` still projects onto the
    keypoints.
    """

    def __init__(
        self,
        source: Dataset,
        input_size: Sequence[int],
        augment: T.AugmentConfig | None = None,
        seed: int = 1314,
        depth_offset_m: float = 0.0,
        depth_scale_m: float = 1.0,
        need_3d: bool = False,
    ) -> None:
        self.source = source
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.augment = augment if augment is not None and augment.enabled else None
        self.seed = int(seed)
        self.depth_offset_m = float(depth_offset_m)
        self.depth_scale_m = float(depth_scale_m)
        self.need_3d = need_3d
        desc = description_of(source)
        self.num_joints = desc.num_keypoints
        self.in_channels = desc.in_channels
        self.depth = self.in_channels == 1
        self.flip_perm = np.asarray(desc.flip_index)
        self.root = desc.root
        self._seeded: tuple[int, int] | None = None  # (worker id, epoch) the worker globals were seeded for

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), 0)
        worker = get_worker_info()
        if worker is not None and (worker.id, epoch) != self._seeded:  # persistent workers: once per epoch
            seed_worker_globals(self.seed, epoch, worker.id)
            self._seeded = (worker.id, epoch)
        raw = self.source[index]
        _check_raw(raw, index, self.num_joints, self.in_channels)
        rng = np.random.default_rng([self.seed, epoch, index])
        aug = T.sample_augmentation(self.augment, rng, self.input_size)

        matrix = T.box_to_input_affine(
            np.asarray(raw["center"], dtype=np.float64),
            np.asarray(raw["scale"], dtype=np.float64) * aug.scale,
            self.input_size,
            rotation_deg=aug.rotation_deg,
            flip=aug.flip,
        )
        image = T.warp_image(raw["image"], matrix, self.input_size, nearest=self.depth)
        if self.depth:
            image = T.shift_depth(image, aug.depth_shift_m)
        else:
            image = T.adjust_rgb(image, aug.brightness, aug.contrast)
            if aug.channel_gains is not None:
                image = T.scale_channels(image, aug.channel_gains[: image.shape[2]])
        image = T.add_occluders(image, aug.occluders, self.depth, rng)

        keypoints, visible = self._move(matrix, raw["keypoints"], raw["visible"])

        joints3d = raw.get("joints3d")
        has_3d = joints3d is not None
        if self.need_3d and not has_3d:
            raise DataError(f"{_describe(raw, index)}: 3D heatmaps (heatmap_depth) need joints3d, got None")
        joints3d = np.zeros((self.num_joints, 3)) if joints3d is None else np.asarray(joints3d, np.float64)
        cam_k = raw.get("cam_K")
        cam_k = np.eye(3) if cam_k is None else T.homogeneous(matrix) @ np.asarray(cam_k, np.float64)
        if aug.flip:
            keypoints, visible, joints3d = (a[self.flip_perm] for a in (keypoints, visible, joints3d))

        meta = raw.get("meta") or {}
        people = {}
        if raw.get("people_keypoints") is not None:  # multi-person sources: every person, same transform
            points, seen = self._move(matrix, raw["people_keypoints"], raw["people_visible"])
            if aug.flip:
                points, seen = points[:, self.flip_perm], seen[:, self.flip_perm]
            people = {"people_keypoints": points.astype(np.float32), "people_visible": seen}
        return {
            **people,
            "image": T.normalize_input(image, self.depth, self.depth_offset_m, self.depth_scale_m),
            "keypoints": keypoints.astype(np.float32),
            "visible": visible,
            "joints3d": joints3d.astype(np.float32),
            "has_3d": has_3d,
            "cam_K": cam_k.astype(np.float32),
            "root_depth": float(joints3d[self.root, 2]) if has_3d else 0.0,
            "norm": float(raw["norm"]) * T.affine_scale(matrix),
            "to_image": T.invert_affine(matrix).astype(np.float32),
            "image_id": int(meta.get("image_id", -1)),
            "sample_index": index,
        }

    def _move(
        self, matrix: np.ndarray, keypoints: np.ndarray, visible: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Image px -> input px for ``keypoints [..., K, 2]``; ``visible [..., K]`` loses joints that leave
        the input frame or are not finite."""
        keypoints = T.affine_points(matrix, keypoints)
        visible = np.asarray(visible, dtype=bool).copy()
        # A NaN coordinate would survive as NaN * 0 in a masked loss; zero it and drop the joint.
        finite = np.isfinite(keypoints).all(axis=-1)
        keypoints[~finite] = 0.0
        inside = T.in_frame(keypoints.reshape(-1, 2), self.input_size).reshape(visible.shape)
        return keypoints, visible & finite & inside


class HeatmapCollate:
    """Stack samples of :class:`SampleDataset` and encode all targets with ONE encoder call.

    Args:
        encoder: ``encoder(keypoints[B, K, n], visible[B, K], heatmap_size) -> (heatmaps, weights)``.
        grid: the :class:`~heatlit.codecs.grid.HeatmapGrid` (heatmap size, stride, depth bins).
        root: index of the root joint, the origin of the depth bins (3D grids).
        multi_person: bottom-up targets: the samples carry ``people_keypoints`` / ``people_visible``, every
            person goes into the heatmaps (:func:`heatlit.codecs.bottomup.bottom_up_heatmaps`, people
            combined by their maximum, every channel weighted 1), and the batch gains ``people_keypoints
            [B, M, K, 2]`` input px and ``people_visible [B, M, K]`` (M: most people in any sample of the
            batch; empty slots are not visible).

    Keypoints go to heatmap coordinates by :meth:`HeatmapGrid.keypoints_to_heatmap` (never quantised);
    3D: a joint outside the depth extent gets target weight 0.

    Returns the batch dict of ``docs/CONTRACTS.md`` (``heatmaps``, ``target_weight``, ``keypoints_hm``
    added to the stacked sample fields).
    """

    def __init__(
        self, encoder: Callable, grid: HeatmapGrid, root: int = 0, multi_person: bool = False
    ) -> None:
        self.encoder = encoder
        self.grid = grid
        self.root = int(root)
        self.multi_person = bool(multi_person)

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        batch = {
            "image": torch.from_numpy(np.stack([s["image"] for s in samples])),
            "keypoints": torch.from_numpy(np.stack([s["keypoints"] for s in samples])),
            "visible": torch.from_numpy(np.stack([s["visible"] for s in samples])),
            "joints3d": torch.from_numpy(np.stack([s["joints3d"] for s in samples])),
            "has_3d": torch.tensor([s["has_3d"] for s in samples], dtype=torch.bool),
            "cam_K": torch.from_numpy(np.stack([s["cam_K"] for s in samples])),
            "root_depth": torch.tensor([s["root_depth"] for s in samples], dtype=torch.float32),
            "norm": torch.tensor([s["norm"] for s in samples], dtype=torch.float32),
            "to_image": torch.from_numpy(np.stack([s["to_image"] for s in samples])),
            "image_id": torch.tensor([s["image_id"] for s in samples], dtype=torch.long),
            "sample_index": torch.tensor([s["sample_index"] for s in samples], dtype=torch.long),
        }
        keypoints_hm, target_visible = self.grid.keypoints_to_heatmap(
            batch["keypoints"], batch["visible"], batch["joints3d"], self.root
        )
        if self.multi_person:
            people, seen = stack_people(samples)
            batch["people_keypoints"], batch["people_visible"] = people, seen
            heatmaps, weights = bottom_up_heatmaps(
                self.encoder, self.grid.to_heatmap(people), seen, self.grid.heatmap_size
            )
        else:
            heatmaps, weights = self.encoder(keypoints_hm, target_visible, self.grid.heatmap_size)
        batch["keypoints_hm"] = keypoints_hm
        batch["heatmaps"] = heatmaps
        batch["target_weight"] = weights
        return batch


def stack_people(samples: Sequence[Mapping[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``people_keypoints [B, M, K, 2]`` float32 and ``people_visible [B, M, K]`` bool, padded to the most
    people of any sample (padding: zeros, not visible)."""
    if any("people_keypoints" not in s for s in samples):
        raise DataError("multi-person batches need people_keypoints in every sample (a multi-person source)")
    most = max(len(s["people_keypoints"]) for s in samples)
    k = samples[0]["people_keypoints"].shape[1]
    points = np.zeros((len(samples), most, k, 2), dtype=np.float32)
    seen = np.zeros((len(samples), most, k), dtype=bool)
    for i, s in enumerate(samples):
        m = len(s["people_keypoints"])
        points[i, :m], seen[i, :m] = s["people_keypoints"], s["people_visible"]
    return torch.from_numpy(points), torch.from_numpy(seen)


def seed_worker_globals(seed: int, epoch: int, worker_id: int) -> None:
    """Seed a DataLoader worker's numpy / random / torch globals from ``(seed, epoch, worker id)``.

    The augmentation never uses these globals (each sample has its own generator); seeding them keeps
    any source code that does reproducible too. Only called inside workers: the main process's
    generators belong to the trainer.
    """
    state = np.random.SeedSequence([seed, epoch, worker_id]).generate_state(2)
    np.random.seed(int(state[0]))
    random.seed(int(state[1]))
    torch.manual_seed(int(state[0]) << 32 | int(state[1]))
