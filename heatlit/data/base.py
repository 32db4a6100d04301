"""What every data source is: a torch ``Dataset`` of raw samples with one :class:`DatasetDescription`.

The description is the one place a dataset says what its keypoints are and how it is scored; metrics,
flip testing, the qualitative figure and results.json read it, so nothing outside a source branches on a
dataset's name. Raw samples follow ``docs/CONTRACTS.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from torch.utils.data import Dataset

SPLITS = ("train", "val", "test")
#: Split names the sources accept (HUMAN4D's list files say training/validation/testing).
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "validation": "val",
    "valid": "val",
    "test": "test",
    "testing": "test",
}


def canonical_split(split: str) -> str:
    """``"training"`` -> ``"train"`` etc.; a ValueError listing the accepted names otherwise."""
    if split not in SPLIT_ALIASES:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_ALIASES)}")
    return SPLIT_ALIASES[split]


@dataclass(frozen=True)
class DatasetDescription:
    """What a dataset's samples mean, for everything outside the data package.

    Attributes:
        name: short name written to results.json (``"synth"``, ``"human4d"``, ``"coco"``).
        keypoints: keypoint names, in index order.
        flip_pairs: ``(left, right)`` index pairs that swap under a horizontal flip.
        skeleton: ``(a, b)`` index pairs drawn as bones.
        in_channels: 1 (depth in metres) or 3 (RGB).
        has_3d: samples carry camera-frame ``joints3d`` and ``cam_K``.
        pck: the 2D accuracy protocol, ``"pckh"`` or ``"pck"``: PCK normalised by each sample's ``norm``.
        norm: what a sample's ``norm`` measures (the PCK normaliser), in words.
        head_segment: ``(neck, head top)`` indices when ``norm`` is the head segment, else None.
        root: index of the root joint; 3D depth bins and MPJPE are relative to it.
        oks_sigmas: per-keypoint OKS sigmas when the dataset is scored by COCO OKS AP: against its split's
            annotation file (:attr:`Source.ann_file`), or, without one, against each sample's own person;
            None when it is not scored by OKS.
        monitor: the metric that selects the best checkpoint unless ``monitor.metric`` says otherwise.
        multi_person: samples hold several people (``people_keypoints`` / ``people_visible``); targets are
            bottom-up (every person in one channel per joint type) and predictions are scored as peak
            detections (:class:`heatlit.metrics.PeakDetection`), not per-joint PCK.
    """

    name: str
    keypoints: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()
    in_channels: int = 1
    has_3d: bool = False
    pck: str = "pckh"
    norm: str = "head segment (neck to head top), px"
    head_segment: tuple[int, int] | None = None
    root: int = 0
    oks_sigmas: tuple[float, ...] | None = None
    monitor: str = "pckh@0.1"
    multi_person: bool = False
    _flip_index: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        k = len(self.keypoints)
        set_ = object.__setattr__
        set_(self, "keypoints", tuple(str(n) for n in self.keypoints))
        for name in ("flip_pairs", "skeleton"):
            pairs = tuple((int(a), int(b)) for a, b in getattr(self, name))
            if any(not (0 <= i < k) for pair in pairs for i in pair):
                raise ValueError(f"{self.name}: {name} {pairs} index outside the {k} keypoints")
            set_(self, name, pairs)
        if self.head_segment is not None:
            set_(self, "head_segment", (int(self.head_segment[0]), int(self.head_segment[1])))
        if self.oks_sigmas is not None:
            set_(self, "oks_sigmas", tuple(float(s) for s in self.oks_sigmas))
            if len(self.oks_sigmas) != k:
                raise ValueError(f"{self.name}: {len(self.oks_sigmas)} OKS sigmas for {k} keypoints")
        if self.in_channels not in (1, 3):
            raise ValueError(f"{self.name}: in_channels must be 1 (depth) or 3 (RGB), got {self.in_channels}")
        if self.pck not in ("pckh", "pck"):
            raise ValueError(f"{self.name}: pck must be 'pckh' or 'pck', got {self.pck!r}")
        perm = list(range(k))
        for left, right in self.flip_pairs:
            perm[left], perm[right] = right, left
        set_(self, "_flip_index", tuple(perm))

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    @property
    def flip_index(self) -> tuple[int, ...]:
        """``[K]`` permutation ``p`` with ``flipped[i] = original[p[i]]``: left and right swap labels."""
        return self._flip_index

    def to_dict(self) -> dict[str, Any]:
        """Plain values for results.json."""

        def plain(value: Any) -> Any:
            return [plain(v) for v in value] if isinstance(value, tuple | list) else value

        out = asdict(self)
        out.pop("_flip_index")
        return {k: plain(v) for k, v in out.items()}


class Source(Dataset):
    """The small base of every data source: ``source[i]`` is a raw sample (``docs/CONTRACTS.md``).

    Subclasses set :attr:`description` (a class attribute) and :attr:`split`, and implement ``__len__`` and
    ``__getitem__``. :attr:`ann_file` names the ground-truth file a split is scored against, for datasets
    scored by an external protocol (COCO OKS AP); None otherwise.
    """

    description: ClassVar[DatasetDescription]
    split: str = "train"
    ann_file: str | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        raise NotImplementedError


def description_of(source: Any) -> DatasetDescription:
    """The :class:`DatasetDescription` of a source, or a TypeError saying what a source must carry."""
    desc = getattr(source, "description", None)
    if not isinstance(desc, DatasetDescription):
        raise TypeError(
            f"data source {type(source).__name__} has no `description` (a heatlit.data.DatasetDescription); "
            "subclass heatlit.data.Source and set one"
        )
    return desc
