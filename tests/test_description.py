"""`DatasetDescription`: validation, the flip permutation, and what each source says about itself."""

from __future__ import annotations

import numpy as np
import pytest

from heatlit.body import skeleton as sk
from heatlit.data.base import DatasetDescription, canonical_split, description_of
from heatlit.data.coco import COCO
from heatlit.data.human4d import Human4DSource
from heatlit.data.synth import SynthSource


def test_flip_index_swaps_pairs_and_is_an_involution():
    desc = DatasetDescription("five", ("c", "l1", "r1", "l2", "r2"), flip_pairs=((1, 2), (3, 4)))
    assert desc.flip_index == (0, 2, 1, 4, 3)
    perm = np.asarray(desc.flip_index)
    np.testing.assert_array_equal(perm[perm], np.arange(5))
    assert DatasetDescription("none", ("a", "b")).flip_index == (0, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"flip_pairs": ((0, 5),)}, "flip_pairs .* outside the 3 keypoints"),
        ({"skeleton": ((-1, 0),)}, "skeleton .* outside the 3 keypoints"),
        ({"oks_sigmas": (0.1, 0.2)}, "2 OKS sigmas for 3 keypoints"),
        ({"in_channels": 2}, "in_channels must be 1"),
        ({"pck": "oks"}, "pck must be"),
    ],
)
def test_bad_descriptions_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DatasetDescription("bad", ("a", "b", "c"), **kwargs)


def test_each_source_describes_itself():
    depth = {SynthSource.description.name: SynthSource, Human4DSource.description.name: Human4DSource}
    assert set(depth) == {"synth", "human4d"}
    for source in depth.values():
        d = source.description
        assert d.keypoints == sk.JOINT_NAMES and d.has_3d and d.in_channels == 1
        assert (d.pck, d.monitor, d.oks_sigmas) == ("pckh", "pckh@0.1", sk.OKS_SIGMAS)
        assert d.keypoints[d.head_segment[0]] == "Neck" and d.keypoints[d.head_segment[1]] == "HeadEnd"
        assert len(d.skeleton) == 17  # a tree over 18 joints
    assert (COCO.pck, COCO.monitor, COCO.has_3d, COCO.in_channels) == ("pck", "ap", False, 3)
    assert COCO.to_dict()["flip_pairs"][0] == [1, 2] and "_flip_index" not in COCO.to_dict()


def test_a_source_without_a_description_is_named():
    class Bare:
        pass

    with pytest.raises(TypeError, match="Bare has no `description`"):
        description_of(Bare())


def test_split_aliases():
    assert [canonical_split(s) for s in ("training", "validation", "valid", "testing")] == [
        "train",
        "val",
        "val",
        "test",
    ]
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        canonical_split("dev")
