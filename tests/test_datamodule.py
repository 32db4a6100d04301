"""`HeatmapDataModule`: geometry, targets, determinism, errors, and a batch from every data option."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from heatlit.codecs import GaussianEncoder
from heatlit.codecs.coords import unravel
from heatlit.data import (
    AugmentConfig,
    DataError,
    DatasetDescription,
    HeatmapDataModule,
    SampleDataset,
    Source,
)
from heatlit.data.transforms import affine_points
from tests.human4d_fixture import write_human4d_fixture

CONF_DATA = Path(__file__).resolve().parents[1] / "conf" / "data"
NO_AUG = dict(flip_prob=0.0, scale=0.0, rotation_prob=0.0, depth_shift_m=0.0, occluder_prob=0.0)


FAKE = DatasetDescription(
    name="fake",
    keypoints=("root", "neck", "head", "left_wrist", "right_wrist"),
    flip_pairs=((3, 4),),
    skeleton=((0, 1), (1, 2), (1, 3), (1, 4)),
    in_channels=1,
    has_3d=True,
    head_segment=(1, 2),
)


class FakeDepthSource(Source):
    """Five joints projected by a pinhole camera, each drawn as a depth disk at its own depth.

    The pose is asymmetric (left wrist high, right wrist low) so a flip is visible, and disks are far
    apart so the depth under a keypoint names the joint. ``bad_index`` returns a malformed sample.
    """

    description = FAKE
    H0, W0, RADIUS = 60, 100, 4

    def __init__(self, split="train", n=24, with_3d=True, bad_index=None):
        self.split, self.n, self.with_3d, self.bad_index = split, n, with_3d, bad_index
        self.description = replace(FAKE, has_3d=with_3d)
        self.cam_K = np.array([[60.0, 0, 49.5], [0, 60.0, 29.5], [0, 0, 1]])

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        rng = np.random.default_rng(index)
        layout = np.array([[0, 0, 0], [0, -300, -100], [0, -550, -150], [-450, -650, 250], [420, 200, 450]])
        joints3d = layout + rng.uniform(-40, 40, size=(5, 3)) + [rng.uniform(-200, 200), 0, 3000]
        uvw = joints3d @ self.cam_K.T
        keypoints = uvw[:, :2] / uvw[:, 2:]
        ys, xs = np.mgrid[: self.H0, : self.W0]
        image = np.zeros((self.H0, self.W0, 1), dtype=np.float32)
        for (x, y), z in zip(keypoints, joints3d[:, 2]):
            image[(xs - x) ** 2 + (ys - y) ** 2 <= self.RADIUS**2] = z / 1000.0
        if index == self.bad_index:
            keypoints = keypoints[:4]
        return {
            "image": image,
            "keypoints": keypoints,
            "visible": np.ones(5, dtype=bool),
            "joints3d": joints3d.astype(np.float32) if self.with_3d else None,
            "cam_K": self.cam_K.copy() if self.with_3d else None,
            "center": np.array([(self.W0 - 1) / 2, (self.H0 - 1) / 2]),
            "scale": np.array([self.W0, self.H0], dtype=np.float64),
            "norm": float(np.linalg.norm(keypoints[2] - keypoints[1])),
            "meta": {"sample_id": f"{self.split}-{index}", "file": f"fake/{self.split}/{index}.npz"},
        }


def make_dm(augment=None, **kwargs):
    kwargs.setdefault("input_size", (48, 80))
    kwargs.setdefault("batch_size", 8)
    source = kwargs.pop("source", FakeDepthSource)
    return HeatmapDataModule(source=source, augment=augment if augment is not None else {}, **kwargs)


def first_batch(dm, split="train"):
    dm.setup("fit" if split in ("train", "val") else split)
    return next(iter(getattr(dm, f"{split}_dataloader")()))


def test_batch_contract_and_attributes():
    dm = make_dm(stride=4)
    assert dm.description == FAKE and dm.source("val").ann_file is None
    grid = dm.grid
    assert (grid.input_size, grid.heatmap_size, grid.stride, grid.depth_bins) == ((48, 80), (12, 20), 4, None)
    b = first_batch(dm)
    shapes = {k: tuple(v.shape) for k, v in b.items()}
    assert shapes == {
        "image": (8, 1, 48, 80),
        "heatmaps": (8, 5, 12, 20),
        "target_weight": (8, 5),
        "keypoints": (8, 5, 2),
        "keypoints_hm": (8, 5, 2),
        "visible": (8, 5),
        "norm": (8,),
        "joints3d": (8, 5, 3),
        "has_3d": (8,),
        "cam_K": (8, 3, 3),
        "root_depth": (8,),
        "to_image": (8, 2, 3),
        "image_id": (8,),
        "sample_index": (8,),
    }
    assert b["visible"].dtype == b["has_3d"].dtype == torch.bool
    assert b["image_id"].dtype == b["sample_index"].dtype == torch.long
    assert b["image"].dtype == b["heatmaps"].dtype == b["keypoints"].dtype == torch.float32
    assert b["has_3d"].all()
    torch.testing.assert_close(b["root_depth"], b["joints3d"][:, 0, 2])


def test_targets_peak_at_keypoints_hm():
    b = first_batch(make_dm(augment={"occluder_prob": 0.0}, batch_size=16))
    hm = b["heatmaps"]
    peak = unravel(hm.flatten(2).argmax(-1), hm.shape[2:]).float()
    on = b["target_weight"] > 0
    assert on.sum() > 40
    assert ((peak - b["keypoints_hm"]).abs().amax(-1)[on] <= 0.5 + 1e-5).all()
    torch.testing.assert_close(b["keypoints_hm"], (b["keypoints"] + 0.5) / 4 - 0.5)
    # Unquantised: sub-pixel positions survive into heatmap space.
    assert (b["keypoints_hm"] - b["keypoints_hm"].round()).abs().max() > 0.1


def test_grid_mapping_reaches_the_targets():
    dm = make_dm(augment={"occluder_prob": 0.0}, batch_size=16, grid_mapping="udp")
    assert dm.grid.describe()["mapping"] == "udp"
    b = first_batch(dm)
    torch.testing.assert_close(b["keypoints_hm"], b["keypoints"] * torch.tensor([19 / 79, 11 / 47]))
    hm, on = b["heatmaps"], b["target_weight"] > 0
    peak = unravel(hm.flatten(2).argmax(-1), hm.shape[2:]).float()
    assert on.sum() > 40 and ((peak - b["keypoints_hm"]).abs().amax(-1)[on] <= 0.5 + 1e-5).all()


def test_flip_swaps_pairs_and_mirrors_image():
    src = FakeDepthSource()
    plain = SampleDataset(src, (48, 80), augment=AugmentConfig(**NO_AUG))
    flipped = SampleDataset(src, (48, 80), augment=AugmentConfig(**{**NO_AUG, "flip_prob": 1.0}))
    a, b = plain[3], flipped[3]
    # Nearest sampling at mirrored points: the flipped input is the mirror of the plain one.
    assert (b["image"] == a["image"][..., ::-1]).mean() > 0.995
    w = 80
    np.testing.assert_allclose(
        b["keypoints"][3], [w - 1 - a["keypoints"][4][0], a["keypoints"][4][1]], atol=1e-4
    )
    np.testing.assert_allclose(
        b["keypoints"][4], [w - 1 - a["keypoints"][3][0], a["keypoints"][3][1]], atol=1e-4
    )
    np.testing.assert_allclose(b["keypoints"][:3, 0], w - 1 - a["keypoints"][:3, 0], atol=1e-4)
    # The depth under the flipped "left wrist" is the right wrist's disk, and its 3D label swapped too.
    x, y = np.round(b["keypoints"][3]).astype(int)
    assert b["image"][0, y, x] == pytest.approx(a["joints3d"][4, 2] / 1000.0, abs=1e-5)
    np.testing.assert_array_equal(b["joints3d"][3], a["joints3d"][4])
    # to_image maps the flipped left wrist back onto the original right wrist.
    raw = src[3]["keypoints"]
    np.testing.assert_allclose(
        affine_points(b["to_image"].astype(np.float64), b["keypoints"][3]), raw[4], atol=1e-3
    )


def test_keypoints_follow_the_image_under_augmentation():
    aug = {**NO_AUG, "flip_prob": 0.5, "scale": 0.25, "rotation_deg": 40.0, "rotation_prob": 1.0}
    ds = SampleDataset(FakeDepthSource(), (48, 80), augment=AugmentConfig(**aug), seed=7)
    checked = 0
    for i in range(12):
        s = ds[i]
        for k in np.flatnonzero(s["visible"]):
            x, y = np.round(s["keypoints"][k]).astype(int)
            assert s["image"][0, y, x] == pytest.approx(s["joints3d"][k, 2] / 1000.0, abs=1e-5), (i, k)
            checked += 1
    assert checked > 40


def test_to_image_cam_k_and_norm_are_consistent():
    b = first_batch(make_dm(augment={"occluder_prob": 0.0}, batch_size=12))
    src = FakeDepthSource()
    for i, idx in enumerate(b["sample_index"].tolist()):
        raw = src[idx]
        back = affine_points(b["to_image"][i].double().numpy(), b["keypoints"][i].double().numpy())
        # Flip swaps labels: compare as sets of points (the flip test pins the labels).
        vis = b["visible"][i].numpy()
        dist = np.linalg.norm(back[vis][:, None] - raw["keypoints"][None], axis=-1).min(1)
        assert dist.max() < 1e-3
        uvw = b["joints3d"][i].double() @ b["cam_K"][i].double().T
        proj = (uvw[:, :2] / uvw[:, 2:]).float()
        torch.testing.assert_close(proj[vis], b["keypoints"][i][vis], atol=2e-3, rtol=0)
        kp = b["keypoints"][i]
        assert b["norm"][i].item() == pytest.approx((kp[2] - kp[1]).norm().item(), rel=1e-4)


def test_augmentation_off_for_val_and_test():
    for split in ("val", "test"):
        a = first_batch(make_dm(seed=1), split)
        b = first_batch(make_dm(seed=2), split)
        torch.testing.assert_close(a, b)
        assert a["sample_index"].tolist() == list(range(8))
    b = first_batch(make_dm(), "val")
    # The whole 100x60 frame into 80x48: one factor 1.25 back, pixel extents aligned (-0.5 -> -0.5).
    want = torch.tensor([[1.25, 0.0, 0.125], [0.0, 1.25, 0.125]]).expand(8, 2, 3)
    torch.testing.assert_close(b["to_image"], want)


def test_determinism_across_workers_and_seeds():
    def batches(seed, workers, n=2):
        dm = make_dm(seed=seed, num_workers=workers)
        dm.setup("fit")
        it = iter(dm.train_dataloader())
        return [next(it) for _ in range(n)]

    ref = batches(1314, 0)
    for x, y in zip(ref, batches(1314, 2)):
        torch.testing.assert_close(x, y)
    other = batches(1315, 0)
    assert not torch.equal(ref[0]["sample_index"], other[0]["sample_index"])
    # Same sample, different seed: different augmentation.
    ds_a = SampleDataset(FakeDepthSource(), (48, 80), AugmentConfig(), seed=1314)
    ds_b = SampleDataset(FakeDepthSource(), (48, 80), AugmentConfig(), seed=1315)
    assert not np.array_equal(ds_a[0]["to_image"], ds_b[0]["to_image"])
    np.testing.assert_array_equal(ds_a[(0, 3)]["image"], ds_a[(0, 3)]["image"])
    assert not np.array_equal(ds_a[(0, 3)]["to_image"], ds_a[(0, 4)]["to_image"])  # epochs differ


class GlobalRngSource(FakeDepthSource):
    """A source that (badly) draws from numpy's global generator."""

    def __getitem__(self, index):
        raw = super().__getitem__(index)
        raw["norm"] += float(np.random.random())
        return raw


def test_worker_globals_seeded_by_seed_epoch_and_worker():
    def norms(seed):
        dm = make_dm(seed=seed, num_workers=2, source=GlobalRngSource, augment={"enabled": False})
        dm.setup("fit")
        loader = dm.train_dataloader()
        return [torch.cat([b["norm"] for b in loader]) for _ in range(2)]  # two epochs

    a, b = norms(1314), norms(1314)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a[0].sort().values, a[1].sort().values)  # epoch enters the seed
    assert not torch.allclose(a[0], norms(1315)[0])


def test_one_encoder_call_per_batch():
    calls = []

    class Counting(GaussianEncoder):
        def __call__(self, keypoints, visible, heatmap_size):
            calls.append((tuple(keypoints.shape), tuple(heatmap_size)))
            return super().__call__(keypoints, visible, heatmap_size)

    dm = make_dm(encoder=Counting(sigma=1.5, quantize=True), batch_size=6)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 4 and calls == [((6, 5, 2), (12, 20))] * 4
    peak = batches[0]["heatmaps"].flatten(2).argmax(-1)
    on = batches[0]["target_weight"] > 0
    # Quantised encoder: the peak sits exactly on the rounded coordinate.
    want = torch.floor(batches[0]["keypoints_hm"] + 0.5)
    got = unravel(peak, (12, 20)).float()
    assert torch.equal(got[on], want[on])


def test_volumetric_targets():
    dm = make_dm(heatmap_depth=8, depth_range_mm=2000, augment={"occluder_prob": 0.0})
    assert dm.grid.heatmap_size == (8, 12, 20)
    b = first_batch(dm)
    assert b["heatmaps"].shape == (8, 5, 8, 12, 20) and b["keypoints_hm"].shape == (8, 5, 3)
    z_rel = b["joints3d"][..., 2] - b["joints3d"][..., :1, 2]
    torch.testing.assert_close(b["keypoints_hm"][..., 2], z_rel / 2000 * 8 + 3.5)
    assert (b["keypoints_hm"][:, 0, 2] == 3.5).all()
    peak = unravel(b["heatmaps"].flatten(2).argmax(-1), (8, 12, 20)).float()
    on = b["target_weight"] > 0
    assert on.sum() > 20
    assert ((peak - b["keypoints_hm"]).abs().amax(-1)[on] <= 0.5 + 1e-5).all()
    # A joint outside the depth extent gets no target.
    narrow = make_dm(heatmap_depth=8, depth_range_mm=100)
    nb = first_batch(narrow)
    outside = nb["keypoints_hm"][..., 2].sub(3.5).abs() > 4
    assert outside.any() and (nb["target_weight"][outside] == 0).all()


def test_volumetric_without_3d_is_an_error():
    dm = make_dm(heatmap_depth=8, source=lambda split: FakeDepthSource(split, with_3d=False))
    with pytest.raises(ValueError, match="heatmap_depth=8.*no 3D joints"):
        dm.setup("fit")


def test_config_errors():
    with pytest.raises(ValueError, match="divisible by stride 7"):
        make_dm(stride=7)
    with pytest.raises(KeyError, match="split 'test'"):
        HeatmapDataModule(source={"train": FakeDepthSource()}, input_size=(48, 80)).setup("test")


def test_malformed_sample_names_the_file():
    dm = make_dm(source=lambda split: FakeDepthSource(split, bad_index=2), batch_size=4)
    dm.setup("fit")
    with pytest.raises(
        DataError, match=r"fake/val/2\.npz.*'keypoints' must have shape \[5, 2\], got \[4, 2\]"
    ):
        list(dm.val_dataloader())


class Probe(L.LightningModule):
    """One parameter; records what each training step saw in ``seen``."""

    def __init__(self, seen: list):
        super().__init__()
        self.seen = seen
        self.w = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch, _):
        self.seen.append((self.current_epoch, batch["sample_index"].clone(), batch["image"].clone()))
        return (self.w - batch["heatmaps"].mean()) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(epochs: int, root: Path, seen: list, ckpt_path=None):
    trainer = L.Trainer(
        max_epochs=epochs,
        limit_train_batches=2,
        limit_val_batches=0,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        default_root_dir=root,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Probe(seen), datamodule=make_dm(), ckpt_path=ckpt_path)
    return trainer


@pytest.mark.filterwarnings("ignore:You passed in a `val_dataloader`")
@pytest.mark.filterwarnings("ignore:.*LeafSpec")
def test_lightning_epochs_and_resume(tmp_path):
    """Lightning sets the epoch: epochs differ, and a resumed run sees the uninterrupted run's batches."""
    full, part, resumed = [], [], []
    _fit(2, tmp_path / "full", full)
    _fit(1, tmp_path / "part", part).save_checkpoint(tmp_path / "last.ckpt")
    _fit(2, tmp_path / "resumed", resumed, ckpt_path=tmp_path / "last.ckpt")
    assert [e for e, _, _ in full] == [0, 0, 1, 1] and not torch.equal(full[0][1], full[2][1])
    for (e_a, i_a, x_a), (e_b, i_b, x_b) in zip(full, part + resumed, strict=True):
        assert e_a == e_b and torch.equal(i_a, i_b) and torch.equal(x_a, x_b)
    # The same augmentation as a bare loader told the epoch.
    ref = make_dm()
    ref.setup("fit")
    loader = ref.train_dataloader()
    loader.sampler.set_epoch(1)
    torch.testing.assert_close(next(iter(loader))["image"], full[2][2])


# ------------------------------------------------------------------------- every data option
def _load(name: str, **overrides):
    cfg = OmegaConf.load(CONF_DATA / f"{name}.yaml")
    if "defaults" in cfg:
        base = OmegaConf.load(CONF_DATA / f"{cfg.defaults[0]}.yaml")
        cfg = OmegaConf.merge(base, {k: v for k, v in cfg.items() if k != "defaults"})
    return OmegaConf.merge(cfg, OmegaConf.create(overrides))


def _smoke(cfg, split="train"):
    dm = instantiate(cfg, encoder=GaussianEncoder(sigma=2.0))
    b = first_batch(dm, split)
    h, w = dm.grid.input_size
    assert b["image"].shape[1:] == (dm.description.in_channels, h, w)
    assert b["heatmaps"].shape[1:] == (dm.description.num_keypoints, *dm.grid.heatmap_size)
    assert torch.isfinite(b["image"]).all() and (b["target_weight"] > 0).any()
    return dm, b


def test_synth_config_full_is_synth_at_scale():
    full = _load("synth_full")
    assert (full.source.width, full.source.height, list(full.input_size)) == (320, 160, [160, 320])
    assert full.source.train_frames > 50000 and full.stride == 4


def test_synth_option_yields_a_batch(tmp_path):
    cfg = _load(
        "synth",
        source={
            "data_dir": str(tmp_path),
            "train_frames": 16,
            "val_frames": 8,
            "test_frames": 8,
            "progress": False,
        },
        batch_size=4,
    )
    dm, b = _smoke(cfg)
    assert (dm.description.name, dm.description.pck) == ("synth", "pckh") and b["has_3d"].all()
    assert b["image"].shape == (4, 1, 80, 160) and b["heatmaps"].shape[2:] == (20, 40)


def test_human4d_option_yields_a_batch(tmp_path):
    root = tmp_path / "human4d"
    truth = write_human4d_fixture(root, subjects=(1, 2), activities=("walking", "punching"), frames=1)
    cfg = _load("human4d", source={"root": str(root)}, batch_size=2)
    dm, b = _smoke(cfg, "val")
    assert b["image"].shape == (2, 1, 160, 320) and dm.description.name == "human4d" and b["has_3d"].all()
    # Each val sample maps back (to_image) onto the renderer's ground truth of one written view.
    val = [t for t in truth if t["split"] == "val"]
    for i in range(2):
        back = affine_points(b["to_image"][i].double().numpy(), b["keypoints"][i].double().numpy())
        vis = b["visible"][i].numpy()
        err = min(np.abs(back[vis] - t["keypoints"][vis]).max() for t in val)
        assert err < 1e-3


def test_human4d_root_is_required():
    cfg = _load("human4d")
    assert OmegaConf.is_missing(cfg.source, "root")
    # Hydra silently drops a `???` from a partial; the DataModule names the missing setting.
    stand_in = OmegaConf.merge(cfg, {"source": {"_target_": f"{__name__}.RootedSource"}})
    with pytest.raises(Exception, match=r"RootedSource needs data.source.root"):
        instantiate(stand_in)
    with pytest.raises(Exception, match=r"data.source.root"):
        instantiate(cfg)


class RootedSource(FakeDepthSource):
    """Stand-in with Human4DSource's required ``root``."""

    def __init__(self, root, split="train"):
        super().__init__(split)
