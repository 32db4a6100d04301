"""Model zoo: shapes, parameter counts, gradients, overfitting, alignment, configs, pretrained loading."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from heatlit.codecs.coords import to_heatmap, to_input
from heatlit.models import (
    HRNet,
    SimpleBaseline,
    StackedHourglass,
    count_macs,
    count_params,
    load_pretrained,
)
from heatlit.models.blocks import upsample_to
from heatlit.models.heads import HeatmapHead
from heatlit.models.summary import CONF_DIR, build_from_conf

TINY = ("hourglass_tiny", "hrnet_tiny", "simplebaseline_tiny")
PAPER = {"hourglass": StackedHourglass, "hrnet": HRNet, "simplebaseline": SimpleBaseline}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny models gain nothing from intra-op threads, and on a busy 2-core runner OpenMP barriers waiting
    # on a descheduled thread made these tests 20x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(name: str, **overrides) -> torch.nn.Module:
    return build_from_conf(name, **{"num_joints": 3, "in_channels": 1, **overrides})


def expected_stages(model) -> int:
    return model.num_stacks if isinstance(model, StackedHourglass) else 1


@pytest.mark.parametrize("size", [(80, 160), (320, 160), (36, 52)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("head", ["2d", "3d"])
@pytest.mark.parametrize("name", TINY)
def test_output_shapes(name, head, size):
    model = tiny(name, head=head, depth_bins=8)
    h, w = size
    with torch.no_grad():
        outs = model(torch.randn(2, 1, h, w))
    assert isinstance(outs, list) and len(outs) == expected_stages(model)
    spatial = (h // 4, w // 4)
    want = (2, 3, 8, *spatial) if head == "3d" else (2, 3, *spatial)
    assert all(tuple(o.shape) == want for o in outs)
    assert (model.stride, model.num_joints) == (4, 3)
    assert (model.head_dim, model.depth_bins) == ((3, 8) if head == "3d" else (2, None))


def test_hourglass_returns_one_map_per_stack():
    # Batch 2: at 32x32 the depth-4 hourglass bottoms out at 1x1, where BN needs more than one sample.
    assert len(tiny("hourglass_tiny", num_stacks=3)(torch.randn(2, 1, 32, 32))) == 3


@pytest.mark.parametrize("stride", [1, 2, 8])
@pytest.mark.parametrize("name", TINY)
def test_strides(name, stride):
    model = tiny(name, stride=stride)
    with torch.no_grad():
        outs = model(torch.randn(1, 1, 48, 80))
    assert model.stride == stride
    assert all(tuple(o.shape) == (1, 3, 48 // stride, 80 // stride) for o in outs)


@pytest.mark.parametrize("name", TINY)
def test_in_channels_rgb(name):
    out = tiny(name, in_channels=3)(torch.randn(2, 3, 32, 64))[-1]
    assert out.shape == (2, 3, 8, 16)


def test_param_count_hrnet_w32():
    n = count_params(HRNet(num_joints=17, in_channels=3, width=32, num_modules=(1, 4, 3), num_blocks=4))
    assert abs(n / 28.5e6 - 1) < 0.02
    assert n == 28_536_113  # the official pose_hrnet_w32 layout, layer for layer


def test_param_count_simplebaseline_r50():
    n = count_params(SimpleBaseline(num_joints=17, in_channels=3, resnet_depth=50))
    assert abs(n / 34.0e6 - 1) < 0.02
    assert n == 33_999_697


@pytest.mark.parametrize("name", TINY)
def test_gradient_reaches_input_and_every_parameter(name):
    model = tiny(name, head="3d", depth_bins=4)
    x = torch.randn(2, 1, 48, 64, requires_grad=True)
    sum(o.square().mean() for o in model(x)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"parameters without gradient: {dead[:5]}"


def gaussian_target(num_joints: int, size: tuple[int, int], sigma: float = 1.5) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(size[0]), torch.arange(size[1]), indexing="ij")
    centres = torch.tensor([[4.0, 5.0], [10.3, 8.7], [13.0, 3.5]])[:num_joints]
    d2 = (xs[None] - centres[:, 0, None, None]) ** 2 + (ys[None] - centres[:, 1, None, None]) ** 2
    return torch.exp(-d2 / (2 * sigma**2))[None]


@pytest.mark.parametrize("name", TINY)
def test_single_sample_overfit(name):
    model = tiny(name)
    x = torch.randn(1, 1, 64, 96)
    target = gaussian_target(3, (16, 24))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        outs = model(x)
        loss = sum(torch.nn.functional.mse_loss(o, target) for o in outs)  # intermediate supervision
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(torch.nn.functional.mse_loss(outs[-1], target).item())
    assert losses[-1] < losses[0] / 10, f"{name}: MSE {losses[0]:.2e} -> {losses[-1]:.2e}"


def test_3d_head_is_reshaped_channels():
    head = HeatmapHead(8, 3, head="3d", depth_bins=5)
    x = torch.randn(2, 8, 6, 7)
    y = head(x)
    flat = head.final(x)
    assert y.shape == (2, 3, 5, 6, 7)
    assert torch.equal(y[1, 2, 4], flat[1, 2 * 5 + 4])


def _centroid(profile: torch.Tensor) -> float:
    return float((profile * torch.arange(len(profile))).sum() / profile.sum())


@torch.no_grad()
@pytest.mark.parametrize(
    ("up", "down", "columns", "src_stride", "dst_stride"),
    [(1, 0, [7], 2, 1), (0, 1, [6, 7], 1, 2)],  # one coarse pixel -> fine; the fine extent of one -> coarse
)
def test_learned_resampling_keeps_pixel_extents(up, down, columns, src_stride, dst_stride):
    """With symmetric (all-ones) kernels, the response to a pixel's extent is centred where the coordinate
    convention (x + 0.5) / s - 0.5 puts that pixel in the other map."""
    head = HeatmapHead(1, 1, upsample=up, downsample=down, channels=1).eval()
    torch.nn.init.ones_(head.resample[0].weight)
    x = torch.zeros(1, 1, 8, 16)
    x[..., columns] = 1.0
    out = head.resample(x)[0, 0]
    profile = out[out.shape[0] // 2]
    centre = sum(columns) / len(columns)
    expected = to_heatmap(to_input(torch.tensor(centre), src_stride), dst_stride)
    assert math.isclose(_centroid(profile), float(expected), abs_tol=1e-5)


def test_upsample_to_copies_the_containing_coarse_pixel():
    coarse = torch.arange(3.0).view(1, 1, 1, 3)
    assert upsample_to(coarse, 2, (1, 5)).flatten().tolist() == [0, 0, 1, 1, 2]


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: SimpleBaseline(resnet_depth=42), "unknown ResNet depth 42.*18, 34, 50, 101, 152"),
        (lambda: HRNet(stride=3), "stride must be one of"),
        (lambda: StackedHourglass(head="4d"), "head must be one of"),
        (lambda: HRNet(num_modules=(1, 1)), "num_modules"),
        (lambda: HRNet(num_joints=0), "num_joints"),
    ],
)
def test_invalid_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize("name", TINY)
def test_invalid_inputs(name):
    model = tiny(name, stride=8)
    with pytest.raises(ValueError, match=r"multiples of 8.*got 36x64.*40x64"):
        model(torch.randn(1, 1, 36, 64))
    with pytest.raises(ValueError, match=r"expects input \[B, 1, H, W\]"):
        model(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize("name", [p.stem for p in sorted(CONF_DIR.glob("*.yaml"))])
def test_hydra_configs(name):
    cfg = OmegaConf.load(CONF_DIR / f"{name}.yaml")
    assert cfg._target_.startswith("heatlit.models.")
    assert "name" not in cfg
    model = build_from_conf(name, num_joints=18, in_channels=1)
    assert isinstance(model, PAPER[name.removesuffix("_tiny")])
    assert (model.num_joints, model.in_channels, model.stride, model.head_dim) == (18, 1, 4, 2)
    if name.endswith("_tiny"):
        out = model(torch.randn(8, 1, 80, 160))[-1]
        assert out.shape == (8, 18, 20, 40)


def test_paper_configs_match_the_reproduction():
    hg = OmegaConf.load(CONF_DIR / "hourglass.yaml")
    hr = OmegaConf.load(CONF_DIR / "hrnet.yaml")
    sb = OmegaConf.load(CONF_DIR / "simplebaseline.yaml")
    assert (hg.num_stacks, hg.features, hg.depth) == (4, 128, 4)
    assert (hr.width, list(hr.num_modules), hr.num_blocks) == (32, [1, 1, 1], 4)
    assert (sb.resnet_depth, sb.ppm) == (50, False)


def test_pyramid_pooling_option():
    model = tiny("simplebaseline_tiny", ppm=True, ppm_bins=[1, 2, 3, 6], ppm_channels=32)
    assert model.ppm is not None and model.ppm.bins == (1, 2, 3, 6)
    out = model(torch.randn(1, 1, 80, 160))  # batch 1: the 1x1 bin must not need BN statistics
    assert out[-1].shape == (1, 3, 20, 40)


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_pretrained_round_trip_plain_and_lightning(tmp_path: Path):
    src = tiny("hrnet_tiny")
    plain = tmp_path / "w.pth"
    torch.save(src.state_dict(), plain)
    assert _same_weights(src, tiny("hrnet_tiny", pretrained=str(plain)))

    # A Lightning checkpoint: network under `model.`, other members and plain hyper-parameters around it.
    ckpt = tmp_path / "last.ckpt"
    state = {f"model.{k}": v for k, v in src.state_dict().items()}
    state["loss_fn.weight"] = torch.ones(3)
    torch.save({"state_dict": state, "hyper_parameters": {"lr": 1e-3}}, ckpt)
    assert _same_weights(src, tiny("hrnet_tiny", pretrained=str(ckpt)))
    # Pickled objects (here OmegaConf hyper-parameters) are refused, never unpickled: the loader is weights-only.
    torch.save({"state_dict": state, "hyper_parameters": OmegaConf.create({"lr": 1e-3})}, ckpt)
    with pytest.raises(ValueError, match=r"refusing to load .*last.ckpt: it would import omegaconf"):
        load_pretrained(tiny("hrnet_tiny"), ckpt)


def test_pretrained_partial_and_aliased(tmp_path: Path):
    src = tiny("simplebaseline_tiny")
    # torchvision-style backbone keys (conv1.weight, layer1.0...) and a head for another joint count.
    path = tmp_path / "backbone.pt"
    torch.save({**src.backbone.state_dict(), "fc.weight": torch.zeros(2, 2)}, path)
    dst = tiny("simplebaseline_tiny", num_joints=5)
    report = load_pretrained(dst, path, SimpleBaseline.pretrained_aliases)
    assert _same_weights(src.backbone, dst.backbone)
    assert report.unexpected == ["fc.weight"] and all(k.startswith("head.") for k in report.missing)

    torch.save(src.state_dict(), path)
    report = load_pretrained(dst, path)
    assert sorted(report.mismatched) == ["head.final.bias", "head.final.weight"]


def test_pretrained_errors_name_the_file(tmp_path: Path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        HRNet(width=8, pretrained=str(missing))
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(ValueError, match="corrupt.pth"):
        HRNet(width=8, pretrained=str(corrupt))
    unrelated = tmp_path / "other.pth"
    torch.save({"foo.weight": torch.zeros(1)}, unrelated)
    with pytest.raises(ValueError, match="no tensor in .*other.pth"):
        HRNet(width=8, pretrained=str(unrelated))


def test_heatmap_head_init_is_small():
    head = tiny("hrnet_tiny").head.final
    assert head.weight.std() < 0.002 and torch.count_nonzero(head.bias) == 0


def test_count_macs_tiny():
    model = tiny("simplebaseline_tiny")
    true, paper = count_macs(model, (1, 32, 32)), count_macs(model, (1, 32, 32), paper_convention=True)
    assert 0 < true < paper  # deconvs cost 4x more when counted at output resolution


@pytest.mark.slow
def test_published_gflops():
    """The papers' convention (deconvs at output resolution, / 2**30) reproduces the published numbers."""
    hrnet = HRNet(num_joints=17, in_channels=3, num_modules=(1, 4, 3))
    sb = SimpleBaseline(num_joints=17, in_channels=3)
    assert abs(count_macs(hrnet, (3, 256, 192), paper_convention=True) / 2**30 / 7.1 - 1) < 0.02
    assert abs(count_macs(sb, (3, 256, 192), paper_convention=True) / 2**30 / 8.9 - 1) < 0.02
