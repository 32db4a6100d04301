"""Training side of the other representations (issue 17): DSNT, SimCC and UDP-offset losses, the SimCC head,
and every new config node (composed inside the run config, as a run sees it)."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from heatlit.codecs import (
    HeatmapGrid,
    SimCCCodec,
    gaussian_heatmaps,
    megvii_heatmaps,
    simcc_decode,
    simcc_labels,
    udp_offset_maps,
)
from heatlit.models import SimpleBaseline
from heatlit.models.simcc_head import SimCCHead, SimCCModel
from heatlit.training.losses import (
    DSNTLoss,
    HeatmapLoss,
    MSPNLoss,
    SimCCLoss,
    UDPOffsetLoss,
    dsnt_loss,
    simcc_loss,
    udp_offset_mse,
)
from tests.conftest import CONF_DIR

NAN = float("nan")


def _log_gaussian(kp: torch.Tensor, size, sigma: float) -> torch.Tensor:
    """``[B, K, *size]`` log of unnormalised Gaussians at ``kp`` (the logits whose softmax is the target)."""
    maps, _ = gaussian_heatmaps(kp, torch.ones(kp.shape[:2]), size, sigma)
    return torch.log(maps.clamp(min=1e-38))


# ---------------------------------------------------------------- DSNT


@pytest.mark.parametrize("divergence", ["js", "kl"])
def test_dsnt_loss_vanishes_at_its_own_target_2d_and_3d(divergence):
    # keypoints >= 3.3 sigma from every edge: the softmax of the log-Gaussian is the target, untruncated
    for size, kp in (
        ((16, 20), torch.tensor([[[9.3, 7.6], [5.0, 5.5]]])),
        ((8, 10, 12), torch.tensor([[[6.3, 4.6, 3.7], [5.0, 5.5, 4.0]]])),
    ):
        coord, div = dsnt_loss(_log_gaussian(kp, size, 1.0), kp, torch.ones(1, 2), 1.0, divergence)
        assert coord < 1e-3 and abs(div) < 1e-5, size


def test_dsnt_kl_between_shifted_gaussians_is_the_closed_form():
    # KL(N(a, s^2 I) || N(b, s^2 I)) = |a - b|^2 / (2 s^2), and DSNT's coordinate term is the Euclidean
    # distance in units where the frame extent spans [-1, 1] (x_norm = (2x + 1) / W - 1).
    size = (40, 48)
    a = torch.tensor([[[20.0, 18.0]]])
    b = torch.tensor([[[22.4, 16.2]]])
    coord, div = dsnt_loss(_log_gaussian(a, size, 2.0), b, torch.ones(1, 1), 2.0, "kl")
    assert div.item() == pytest.approx(((2.4**2 + 1.8**2) / 8), rel=1e-4)
    assert coord.item() == pytest.approx(math.hypot(2.4 * 2 / 48, 1.8 * 2 / 40), rel=1e-4)
    _, js = dsnt_loss(_log_gaussian(a, size, 1.0), a + 15, torch.ones(1, 1), 1.0, "js")
    assert math.log(2) * 0.99 < js.item() <= math.log(2)  # disjoint: JS reaches its bound log 2


def test_dsnt_loss_skips_weightless_and_non_finite_joints_and_has_gradients():
    size = (16, 16)
    kp = torch.tensor([[[5.2, 9.1], [NAN, 3.0], [7.0, 7.0]]])
    pred = torch.randn(1, 3, *size, requires_grad=True)
    full = dsnt_loss(pred, kp, torch.tensor([[1.0, 1.0, 0.0]]))
    alone = dsnt_loss(pred[:, :1], kp[:, :1], torch.ones(1, 1))
    for got, want in zip(full, alone):
        assert torch.isfinite(got) and got.item() == pytest.approx(want.item(), rel=1e-6)
    (full[0] + full[1]).backward()
    assert (
        torch.isfinite(pred.grad).all() and pred.grad[0, 0].abs().sum() > 0 and (pred.grad[0, 1:] == 0).all()
    )
    zero = dsnt_loss(pred, kp, torch.zeros(1, 3))
    assert zero[0].item() == 0 and zero[1].item() == 0


def test_dsnt_module_sums_stages_and_is_configured_for_soft_argmax():
    kp = torch.tensor([[[5.2, 9.1]]])
    batch = {"keypoints_hm": kp, "target_weight": torch.ones(1, 1)}
    pred = torch.randn(1, 1, 16, 16)
    loss = DSNTLoss(sigma=1.0, reg_weight=0.5)
    total, parts = loss([pred, pred], batch)
    coord, div = dsnt_loss(pred, kp, torch.ones(1, 1))
    assert parts["coord"].item() == pytest.approx(2 * coord.item()) and parts[
        "divergence"
    ].item() == pytest.approx(2 * div.item())
    assert total.item() == pytest.approx(2 * (coord + 0.5 * div).item())
    with pytest.raises(ValueError, match="divergence"):
        DSNTLoss(divergence="hellinger")


# ---------------------------------------------------------------- SimCC


def test_simcc_kl_is_zero_at_the_labels_and_ce_adds_their_entropy():
    kp = torch.tensor([[[3.3, 2.1], [1.0, 0.5]]])
    labels, w = simcc_labels(kp, torch.ones(1, 2), (4, 6), 2.0, sigma=0.8)
    logits = [torch.log(t.clamp(min=1e-30)) for t in labels]
    assert simcc_loss(logits, labels, w).item() == pytest.approx(0.0, abs=1e-5)
    entropy = sum(-(t * torch.log(t.clamp(min=1e-30))).sum(-1) for t in labels).mean()
    ce = simcc_loss(logits, labels, w, kind="ce")
    assert ce.item() == pytest.approx(entropy.item(), rel=1e-4)
    # uniform logits: KL = log N - H(label) per axis
    flat = [torch.zeros_like(t) for t in labels]
    kl = simcc_loss(flat, labels, w)
    assert kl.item() == pytest.approx((math.log(12) + math.log(8) - entropy).item(), rel=1e-4)
    with pytest.raises(ValueError, match="bins"):
        simcc_loss([torch.zeros(1, 2, 10), flat[1]], labels, w)


def test_simcc_head_and_loss_learn_a_coordinate():
    # A SimCC head on fixed random maps, trained with the KL loss, decodes the labels' coordinates.
    torch.manual_seed(0)
    size = (6, 8)
    kp = torch.tensor([[[2.3, 4.1], [6.6, 0.7]]]).expand(4, 2, 2)
    codec = SimCCCodec(split_ratio=2.0, sigma=0.75, refine=True)
    labels, w = codec(kp, torch.ones(4, 2), size)
    head = SimCCHead(size, 2.0)
    maps = torch.randn(4, 2, *size)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    loss = SimCCLoss()
    for _ in range(60):
        opt.zero_grad()
        total, _ = loss([head(maps)], {"heatmaps": labels, "target_weight": w})
        total.backward()
        opt.step()
    coords, _ = codec.decode(head(maps))
    assert total.item() < 0.05 and (coords - kp).abs().max() < 0.05


def test_simcc_model_wraps_any_heatmap_model_and_matches_the_codec():
    for head, spatial in (("2d", (8, 12)), ("3d", (4, 8, 12))):
        model = SimpleBaseline(3, 1, stride=4, head=head, depth_bins=4, resnet_width=8, deconv_channels=16)
        wrapped = SimCCModel(model, input_size=(32, 48), split_ratio=2.0)
        outputs = wrapped(torch.randn(2, 1, 32, 48))
        labels, _ = simcc_labels(torch.zeros(2, 3, len(spatial)), torch.ones(2, 3), spatial, 2.0)
        assert [tuple(v.shape) for v in outputs[-1]] == [tuple(t.shape) for t in labels]
        assert wrapped.stride == 4 and wrapped.num_joints == 3 and wrapped.head_dim == len(spatial)
        coords, _ = simcc_decode(outputs[-1], 2.0)
        assert coords.shape == (2, 3, len(spatial))
    with pytest.raises(ValueError, match="multiple of the model stride"):
        SimCCModel(model, input_size=(30, 48))


# ---------------------------------------------------------------- UDP offsets


def test_udp_offset_loss_compares_offsets_only_inside_the_disk():
    kp = torch.tensor([[[5.3, 4.6], [2.0, 2.0]]])
    target, w = udp_offset_maps(kp, torch.ones(1, 2), (10, 12), radius=2.0)
    assert udp_offset_mse(target, target, w).item() == 0
    outside = target.clone()
    outside[:, :, 1:] += 5.0 * (1 - target[:, :, :1])  # offsets changed only where the class is 0
    assert udp_offset_mse(outside, target, w).item() == 0
    flat_head = target.clone().reshape(1, 6, 10, 12)  # a plain head's [B, K * 3, H, W] output
    flat_head[0, 0] += 1.0  # classification of keypoint 0 off by 1 everywhere
    assert udp_offset_mse(flat_head, target, w).item() == pytest.approx(0.5 * 120 / 240)
    total, parts = UDPOffsetLoss()([flat_head, flat_head], {"heatmaps": target, "target_weight": w})
    assert total.item() == pytest.approx(1.0 * 120 / 240) and "udp_offset" in parts
    with pytest.raises(ValueError, match=r"K \* \(1 \+ n\)"):
        udp_offset_mse(torch.zeros(1, 2, 10, 12), target, w)


def test_heatmap_loss_names_a_target_that_does_not_fit():
    target, w = udp_offset_maps(torch.zeros(1, 2, 2), torch.ones(1, 2), (10, 12), radius=2.0)
    batch = {"heatmaps": target, "target_weight": w, "keypoints_hm": torch.zeros(1, 2, 2)}
    with pytest.raises(ValueError, match="need another head and loss"):
        HeatmapLoss()([torch.zeros(1, 2, 10, 12)], batch)


# ---------------------------------------------------------------- configs


# ---------------------------------------------------------------- MSPN's per-stage targets


def test_mspn_loss_gives_each_stage_its_own_kernel():
    kp = torch.tensor([[[5.2, 6.7], [20.0, 3.4], [30.0, 12.0]]])
    visible = torch.tensor([[1.0, 1.0, 0.0]])
    size = (16, 40)
    targets = {k: megvii_heatmaps(kp, visible, size, k)[0] for k in (15, 11, 9, 7)}
    final, weight = megvii_heatmaps(kp, visible, size, 7)
    batch = {"heatmaps": final, "target_weight": weight, "keypoints_hm": kp}
    loss = MSPNLoss(stage_kernels=(15, 11, 9))
    # four stages learning 15, 11, 9 and the encoding's 7: a perfect prediction costs nothing
    total, parts = loss([targets[15], targets[11], targets[9], final], batch)
    assert total == 0 and set(parts) == {"mse", "mse_k15", "mse_k11", "mse_k9"}
    # a two-stage model: the stage before the last learns the last listed kernel (9), not the first
    total, parts = loss([targets[9], final], batch)
    assert total == 0 and set(parts) == {"mse", "mse_k9"}
    _, parts = loss([targets[11], final], batch)
    expected = 0.5 * ((targets[11] - targets[9]) * weight[..., None, None]).pow(2).mean()
    torch.testing.assert_close(parts["mse_k9"], expected)
    # stages beyond the list reuse its first kernel; joints without weight are not supervised
    _, parts = loss([targets[11], targets[15], targets[11], targets[9], final], batch)
    assert set(parts) == {"mse", "mse_k15", "mse_k11", "mse_k9"} and parts["mse_k11"] == 0
    torch.testing.assert_close(
        parts["mse_k15"], 0.5 * ((targets[11] - targets[15]) * weight[..., None, None]).pow(2).mean()
    )
    with pytest.raises(ValueError, match="odd"):
        MSPNLoss(stage_kernels=(8,))


def _run_config(*overrides):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize(
    ("encoding", "decoders", "tol"),
    [
        ("megvii", ["megvii", "dark"], 0.71),  # quantised: the decoders return the impulse's pixel
        ("udp_offset", ["udp_offset_raw"], 1e-4),
        ("simcc", ["simcc_refine"], 1e-3),
        ("simcc_smooth", ["simcc"], 0.25 + 1e-6),
    ],
)
def test_every_representation_config_round_trips(encoding, decoders, tol):
    # The decoder nodes read their codec's settings from the run's encoding (split ratio, kernel, radius).
    extra = [f"+decoder@decoders.{name}={name}" for name in decoders if name != "dark"]
    cfg = _run_config(f"encoding={encoding}", *extra)
    codec = instantiate(cfg.encoding)
    size = (24, 32)
    g = torch.Generator().manual_seed(3)
    kp = torch.rand(2, 4, 2, generator=g) * torch.tensor([19.0, 11.0]) + 6.0
    target, weights = codec(kp, torch.ones(2, 4), size)
    assert (weights == 1).all()
    for name in decoders:
        decoder = instantiate(cfg.decoders[name])
        if name.startswith("simcc"):
            decoder.options["logits"] = False  # decoding labels, not a head's logits
        coords, _ = decoder(target)
        assert (coords - kp).abs().max() <= tol, (encoding, name)


def test_representation_loss_and_head_configs_instantiate():
    cfg = _run_config("loss=dsnt")
    assert isinstance(instantiate(cfg.loss), DSNTLoss) and cfg.decoders.soft_argmax.beta == 1.0
    for name, cls in (("simcc", SimCCLoss), ("udp_offset", UDPOffsetLoss)):
        with initialize_config_dir(str(CONF_DIR / "loss"), version_base="1.3"):
            assert isinstance(instantiate(compose(name)), cls)
    cfg = _run_config("representation=simcc", "encoding.split_ratio=3", "model=simplebaseline_tiny")
    h, w = cfg.data.input_size
    make_model = functools.partial(instantiate, cfg.model, in_channels=1)
    wrapped = instantiate(cfg.output).build(make_model, 2, HeatmapGrid((h, w), 4))
    outputs = wrapped(torch.zeros(1, 1, h, w))[-1]
    assert [v.shape[-1] for v in outputs] == [w // 4 * 3, h // 4 * 3]


@pytest.mark.slow
def test_heatmap_shaped_representations_train_through_configs_alone(tmp_path):
    # MSPN targets and the DSNT loss need no code in the training loop: a run selects them by name.
    from tests.test_train import run_train

    results = run_train(
        [
            "model=simplebaseline_tiny",
            "encoding=megvii",
            "loss=dsnt",
            "+decoder@decoders.megvii=megvii",
            "debug=fast",
        ],
        tmp_path / "run",
        tmp_path / "data",
    )
    assert {"megvii", "soft_argmax", "dark"} <= set(results["test"])
    for metrics in results["test"].values():
        assert 0 <= metrics["pckh@0.1"] <= metrics["pckh@0.5"] <= 100 and math.isfinite(metrics["rmse"])


@pytest.mark.slow
@pytest.mark.parametrize(("representation", "mapping"), [("udp", "udp"), ("simcc", "aligned")])
def test_structured_outputs_train_test_and_evaluate_end_to_end(representation, mapping, tmp_path):
    # The two output kinds that are not heatmaps, through the whole loop: training step, flip-tested validation
    # and test, checkpoint, results.json (with decode times), the figure, and heatlit.eval of the checkpoint.
    from heatlit.results import read_results
    from heatlit.training.run import evaluate
    from tests.test_train import run_train

    decoders = {"udp": {"udp_offset", "udp_offset_raw"}, "simcc": {"simcc", "simcc_refine"}}[representation]
    one_epoch = ["trainer.max_epochs=1", "callbacks=default", "callbacks.progress=null", "callbacks.lr=null"]
    results = run_train(
        [f"representation={representation}", "trainer.accelerator=cpu", *one_epoch],
        tmp_path / "run",
        tmp_path / "data",
    )
    run = read_results(tmp_path / "run" / "results.json")
    assert set(results["test"]) == decoders and run.grid["mapping"] == mapping
    for name in decoders:
        metrics = run.stage("test")[name]
        assert 0 <= metrics["pckh@0.1"] <= metrics["pckh@0.5"] <= 100 and math.isfinite(metrics["rmse"])
        assert run.ms_per_batch(name) > 0 and run.decode_time["test"][name]["batches"] == 1
    assert (tmp_path / "run" / "qualitative.png").stat().st_size > 5_000
    evaluated = run_train(
        [
            f"ckpt_path={run.facts['best_checkpoint']}",
            f"decoders={representation}",
            "logger=none",
            "trainer.accelerator=cpu",
            "qualitative=0",
        ],
        tmp_path / "eval",
        tmp_path / "data",
        config="eval",
        fn=evaluate,
    )
    for name in decoders:
        for metric, value in results["test"][name].items():
            assert evaluated["test"][name][metric] == pytest.approx(value, abs=1e-4), (name, metric)
