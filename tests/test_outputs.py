"""Output kinds (heatmap, udp_offset, simcc): flip test, model building, preview and the representation check."""

from __future__ import annotations

import functools

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from heatlit.codecs import HeatmapGrid, SimCCCodec, UDPOffsetCodec, gaussian_heatmaps
from heatlit.models import SimpleBaseline
from heatlit.training.checks import ConfigError
from heatlit.training.outputs import (
    HeatmapOutput,
    SimCCOutput,
    UDPOffsetOutput,
    check_representation,
    output_kind,
)
from tests.conftest import CONF_DIR, DEFAULT_DECODERS

GAUSSIAN_DECODERS = set(DEFAULT_DECODERS)
FLIP_INDEX = (1, 0, 2, 4, 3)  # two left/right pairs and one middle joint
SIZE = (12, 16)  # heatmap (h, w)


def _gaussian(kp, visible, size):
    return gaussian_heatmaps(kp, visible, size, 1.5)


# (output kind, encoder ``(keypoints, visible, size) -> (target, weights)``, decoder, tolerance px)
KINDS = {
    "heatmap": (HeatmapOutput(), _gaussian, None, None),
    "udp_offset": (UDPOffsetOutput(), UDPOffsetCodec(border="zeros", offset_kernel=1), None, 1e-4),
    "simcc": (
        SimCCOutput(2.0),
        SimCCCodec(split_ratio=2.0, sigma=1.0, refine=True, logits=False),
        None,
        1e-3,
    ),
}


def _pose(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    kp = torch.rand(b, len(FLIP_INDEX), 2, generator=g) * torch.tensor([SIZE[1] - 4.0, SIZE[0] - 4.0]) + 2.0
    return kp, torch.ones(b, len(FLIP_INDEX))


def _mirror(kp):
    """The pose of the mirrored input: ``x -> W - 1 - x`` and left/right labels swapped."""
    out = kp.clone()
    out[..., 0] = SIZE[1] - 1 - out[..., 0]
    return out[:, list(FLIP_INDEX)]


@pytest.mark.parametrize("kind", KINDS)
def test_flipping_twice_is_the_identity(kind):
    output, encode, _, _ = KINDS[kind]
    target, _ = encode(*_pose(), SIZE)
    noisy = (
        target + 0.1 * torch.randn_like(target)
        if isinstance(target, torch.Tensor)
        else tuple(t + 0.1 * torch.randn_like(t) for t in target)
    )
    back = output.flip(output.flip(noisy, FLIP_INDEX), FLIP_INDEX)
    for a, b in zip(
        back if isinstance(back, tuple) else (back,), noisy if isinstance(noisy, tuple) else (noisy,)
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_the_mirrored_inputs_target_flips_back_onto_the_target(kind):
    # What a perfect model predicts for the mirrored input is the mirrored pose's target; flipped back it must
    # be the target itself, so flip-averaging returns the target (and its decoded pose) unchanged.
    output, encode, _, _ = KINDS[kind]
    kp, visible = _pose()
    target, _ = encode(kp, visible, SIZE)
    mirrored, _ = encode(_mirror(kp), visible, SIZE)
    averaged = output.flip_average(target, mirrored, FLIP_INDEX)
    pairs = zip(averaged, target) if isinstance(target, tuple) else [(averaged, target)]
    for a, b in pairs:
        torch.testing.assert_close(a, b, rtol=0, atol=2e-6)


def test_a_symmetric_pose_is_its_own_mirror_for_every_kind():
    # Joints 0/1 and 3/4 mirror each other about the centre column, joint 2 sits on it: the target is symmetric.
    w = SIZE[1]
    kp = torch.tensor([[[3.3, 4.0], [w - 1 - 3.3, 4.0], [(w - 1) / 2, 6.2], [5.6, 8.5], [w - 1 - 5.6, 8.5]]])
    for output, encode, _, _ in KINDS.values():
        target, _ = encode(kp, torch.ones(1, 5), SIZE)
        flipped = output.flip(target, FLIP_INDEX)
        for a, b in zip(flipped, target) if isinstance(target, tuple) else [(flipped, target)]:
            torch.testing.assert_close(a, b, rtol=0, atol=2e-6)


def test_udp_flip_negates_only_the_x_offsets():
    maps = torch.zeros(1, 1, 3, 4, 6)
    maps[0, 0, :, 1, 2] = torch.tensor([1.0, 0.25, -0.5])  # classification, x offset, y offset at (x=2, y=1)
    flipped = UDPOffsetOutput().flip(maps, (0,))
    assert flipped[0, 0, :, 1, 3].tolist() == [1.0, -0.25, -0.5] and flipped.abs().sum() == 1.75


def test_simcc_flip_reverses_x_bins_and_keeps_y():
    x = torch.arange(8.0).reshape(1, 1, 8).repeat(1, 2, 1)
    y = torch.arange(6.0).reshape(1, 1, 6).repeat(1, 2, 1)
    x[0, 1] += 100  # tell the joints apart
    fx, fy = SimCCOutput(2.0).flip((x, y), (1, 0))
    assert fx[0, 0].tolist() == list(range(107, 99, -1)) and fx[0, 1].tolist() == list(range(7, -1, -1))
    torch.testing.assert_close(fy, y)


@pytest.mark.parametrize("head", ["2d", "3d"])
def test_each_kind_builds_a_model_of_its_output_shape(head):
    grid = HeatmapGrid((32, 48), 4, depth_bins=4 if head == "3d" else None)
    make = functools.partial(
        SimpleBaseline,
        in_channels=1,
        stride=4,
        head=head,
        depth_bins=4,
        resnet_depth=18,
        resnet_width=8,
        deconv_channels=16,
    )
    image = torch.zeros(2, 1, 32, 48)
    n = grid.dims
    maps = HeatmapOutput().build(make, 5, grid)(image)[-1]
    assert maps.shape == (2, 5, *grid.heatmap_size)
    offsets = UDPOffsetOutput().build(make, 5, grid)
    assert offsets.num_joints == 5 and offsets(image)[-1].shape == (2, 5, 1 + n, *grid.heatmap_size)
    vectors = SimCCOutput(2.0).build(make, 5, grid)(image)[-1]
    assert [tuple(v.shape) for v in vectors] == [(2, 5, 2 * s) for s in reversed(grid.heatmap_size)]
    # the figure's map: one [B, h, w] image per sample for every kind
    assert HeatmapOutput().preview(maps).shape == (2, 8, 12)
    assert UDPOffsetOutput().preview(offsets(image)[-1]).shape == (2, 8, 12)
    assert SimCCOutput(2.0).preview(vectors).shape == (2, 16, 24)


def _compose(*overrides):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize(
    ("representation", "kind", "decoders"),
    [
        ("gaussian", "heatmap", GAUSSIAN_DECODERS),
        ("gaussian_quant", "heatmap", GAUSSIAN_DECODERS),
        ("udp_gaussian", "heatmap", GAUSSIAN_DECODERS),
        ("udp", "udp_offset", {"udp_offset", "udp_offset_raw"}),
        ("megvii", "heatmap", {"megvii", "argmax", "standard", "dark"}),
        ("mspn", "heatmap", {"megvii", "argmax", "standard", "dark"}),
        ("simcc", "simcc", {"simcc", "simcc_refine"}),
        ("dsnt", "heatmap", {"soft_argmax", "argmax", "dark"}),
    ],
)
def test_every_representation_is_consistent(representation, kind, decoders):
    cfg = _compose(f"representation={representation}")
    output = instantiate(cfg.output)
    built = {name: instantiate(node) for name, node in cfg.decoders.items()}
    assert output.kind == kind and set(built) == decoders and cfg.monitor.decoder in decoders
    check_representation(output, instantiate(cfg.encoding), instantiate(cfg.loss), built)  # no error
    assert cfg.data.grid_mapping == ("udp" if representation.startswith("udp") else "aligned")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["encoding=simcc"], "encoding SimCCCodec works with simcc outputs .* representation=simcc"),
        (["encoding=udp_offset", "loss=udp_offset"], "encoding UDPOffsetCodec .* representation=udp"),
        (
            ["representation=udp", "loss=mse"],
            "loss HeatmapLoss works with heatmap outputs but the model emits udp",
        ),
        (["representation=simcc", "+decoder@decoders.dark=dark"], "decoders dark \\(heatmap\\) cannot read"),
    ],
)
def test_a_mixed_representation_is_refused_in_one_line(overrides, message):
    cfg = _compose(*overrides)
    decoders = {name: instantiate(node) for name, node in cfg.decoders.items()}
    with pytest.raises(ConfigError, match=message) as err:
        check_representation(
            instantiate(cfg.output), instantiate(cfg.encoding), instantiate(cfg.loss), decoders
        )
    assert "\n" not in str(err.value)


def test_kinds_default_to_heatmaps():
    assert output_kind(object()) == "heatmap" and output_kind(UDPOffsetCodec()) == "udp_offset"
    assert output_kind(instantiate(_compose("loss=simcc").loss)) == "simcc"


def test_sigma_is_required_of_gaussian_encodings_only():
    from heatlit.training.checks import check_config

    for representation in ("udp", "mspn", "simcc"):  # no sigma, or an optional one
        check_config(_compose(f"representation={representation}"))
    with pytest.raises(ConfigError, match="encoding.sigma must be > 0"):
        check_config(_compose("representation=gaussian", "encoding.sigma=null"))
    with pytest.raises(ConfigError, match="encoding.sigma must be > 0"):
        check_config(_compose("representation=simcc", "encoding.sigma=-1"))
