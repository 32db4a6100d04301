"""Multi-scale testing and the speed-accuracy command (``python -m heatlit.speed``)."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch import nn

from heatlit.codecs import DarkDecoder, HeatmapGrid, gaussian_heatmaps
from heatlit.data.base import DatasetDescription
from heatlit.metrics import build_metrics
from heatlit.models.checkpoint import CheckpointError
from heatlit.training.losses import HeatmapLoss
from heatlit.training.module import CHOICES_KEY, CONFIG_KEY, HeatmapModule, resize_maps, scaled_input_size
from heatlit.training.run import build_datamodule, build_decoders, build_module
from tests.conftest import CONF_DIR
from tests.test_train import TINY


def test_resize_maps_keeps_coordinates_on_aligned_extents():
    kp = torch.tensor([[[7.3, 4.6], [30.2, 15.1]]])
    hm, _ = gaussian_heatmaps(kp, torch.ones(1, 2), (20, 40), 2.0)
    for size, factor in (((30, 60), 1.5), ((10, 20), 0.5)):
        coords, _ = DarkDecoder()(resize_maps(hm, size))
        # aligned pixel extents: x' + 0.5 = (x + 0.5) * factor
        torch.testing.assert_close(coords, (kp + 0.5) * factor - 0.5, atol=0.08, rtol=0)
    volume = torch.rand(2, 3, 4, 5, 6)
    assert resize_maps(volume, (10, 12)).shape == (2, 3, 4, 10, 12)
    assert scaled_input_size((80, 160), 0.8, 4) == (64, 128)
    assert scaled_input_size((80, 160), 0.01, 8) == (8, 8)


class PoolModel(nn.Module):
    """A model whose heatmaps are its input averaged over stride-4 cells: scale-equivariant by design."""

    stride, num_joints, head_dim, size_multiple = 4, 1, 2, 4

    def forward(self, x):
        return [nn.functional.avg_pool2d(x, 4)]


def _module(scales, flip=False):
    desc = DatasetDescription("toy", ("a",), in_channels=1)
    return HeatmapModule(
        model=PoolModel(),
        loss=HeatmapLoss(),
        decoders={"dark": DarkDecoder()},
        make_metrics=functools.partial(build_metrics, "pckh", num_joints=1),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        grid=HeatmapGrid((64, 96), 4),
        description=desc,
        flip_test=flip,
        test_scales=scales,
    )


def test_multiscale_averages_maps_that_agree_on_the_keypoint():
    truth = torch.tensor([[[41.3, 27.8]]])  # input px
    image, _ = gaussian_heatmaps(truth, torch.ones(1, 1), (64, 96), 6.0)
    single = _module((1.0,)).predict_heatmaps(image)
    multi = _module((0.5, 1.0, 1.5)).predict_heatmaps(image)
    assert multi.shape == single.shape == (1, 1, 16, 24)
    a, _ = DarkDecoder()(single)
    b, _ = DarkDecoder()(multi)
    torch.testing.assert_close(b, a, atol=0.05, rtol=0)
    assert not torch.allclose(multi, single)  # the other scales did contribute
    torch.testing.assert_close(_module((1.0, 1.0)).predict_heatmaps(image), single)
    with pytest.raises(ValueError, match="positive factors"):
        _module((0.0,))


def _checkpoint(tmp_path, data_dir):
    """A checkpoint as heatlit.train writes it (state dict, run config, choices), of an untrained tiny model."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, f"data.source.data_dir={data_dir}", "output_dir=x"])
    dm = build_datamodule(cfg)
    module = build_module(cfg, dm, build_decoders(cfg))
    path = tmp_path / "best.ckpt"
    config = OmegaConf.to_container(cfg, resolve=True)
    torch.save({"state_dict": module.state_dict(), CONFIG_KEY: config, CHOICES_KEY: {"model": "tiny"}}, path)
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("synth-speed")


def test_speed_entry_point_end_to_end(tmp_path, data_dir, capsys):
    from heatlit.speed import main

    ckpt = _checkpoint(tmp_path, data_dir)
    out = tmp_path / "speed"
    argv = [str(ckpt), "--resolutions", "0.5,1", "--batches", "1,4", "--iters", "2", "--warmup", "1"]
    argv += ["--multiscale", "1,1", "--decoders", "argmax,dark", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "threads 1 of" in printed and "load average" in printed and "round" in printed
    results = json.loads((out / "speed.json").read_text())
    rows = results["rows"]
    assert len(rows) == 2 * 2 * 2 * 2  # resolutions x scale options x batches x decoders
    assert {tuple(r["input_size"]) for r in rows} == {(16, 32), (32, 64)}
    for r in rows:
        assert r["images_per_s"] == pytest.approx(r["batch"] / (r["forward_ms"] + r["decode_ms"]) * 1e3)
        assert 0 <= r["metrics"]["pckh@0.5"] <= 100
    # scales 1+1 average two identical maps: the same accuracy as single scale, at about twice the forward
    by = {(tuple(r["input_size"]), tuple(r["scales"]), r["decoder"], r["batch"]): r for r in rows}
    for (size, scales, dec, batch), r in by.items():
        if scales == (1.0, 1.0):
            single = by[(size, (1.0,), dec, batch)]
            assert r["metrics"] == pytest.approx(single["metrics"])
    assert results["machine"]["torch_threads"] == 1 and len(results["machine"]["load_average_timing"]) == 2
    assert (out / "speed.png").stat().st_size > 10_000
    table = (out / "speed.md").read_text()
    assert "| tiny | 32x64 | 1+1 | dark |" in table and "img/s b4" in table
    # redraw from the saved numbers: the same table, a figure of the chosen decoders and metric
    again = tmp_path / "again"
    argv = ["--from-json", str(out / "speed.json"), "--plot-decoders", "dark", "--metric", "pckh@0.5"]
    assert main([*argv, "--out", str(again)]) == 0
    assert (again / "speed.md").read_text() == table and (again / "speed.png").stat().st_size > 10_000
    assert main(["--from-json", str(out / "speed.json"), "--plot-decoders", "nope", "--out", str(again)]) == 2
    assert "were not measured" in capsys.readouterr().err


def test_speed_refuses_code_in_a_checkpoint(tmp_path, capsys):
    from heatlit.speed import main

    class Payload:
        def __reduce__(self):
            return (print, ("this ran",))

    bad = tmp_path / "evil.ckpt"
    torch.save({"state_dict": Payload()}, bad)
    assert main([str(bad), "--out", str(tmp_path / "out")]) == 2
    printed = capsys.readouterr()
    assert "refusing to load" in printed.err and "this ran" not in printed.out
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        from heatlit.bench.speed_accuracy import load_run

        load_run(tmp_path / "none.ckpt")
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, plain)
    assert main([str(plain), "--out", str(tmp_path / "out")]) == 2
    assert "holds no heatlit run config" in capsys.readouterr().err
