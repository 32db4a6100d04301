"""``per_sample.npz``: kept by the test scorer, recomputing heatlit's metrics by hand and exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from heatlit.codecs import HeatmapGrid
from heatlit.metrics import build_metrics
from heatlit.per_sample import PerSample, PerSampleError, read_per_sample, write_per_sample
from heatlit.training.scoring import DecoderScorer


def fixed_decoder(batches):
    """A decoder that answers the next prepared ``[B, K, 2]`` coordinates, whatever the heatmaps."""
    queue = list(batches)

    def decode(heatmaps):
        coords = queue.pop(0)
        return coords, torch.ones(coords.shape[:2])

    return decode


def hand_case():
    """2 samples x 3 joints, errors along x: sample 0 (norm 10): 0.5, 3, (invisible); sample 1 (norm 20):
    1.0, NaN prediction, 12."""
    target = torch.zeros(2, 3, 2)
    visible = torch.tensor([[1, 1, 0], [1, 1, 1]])
    norm = torch.tensor([10.0, 20.0])
    a = torch.tensor([[[0.5, 0], [3, 0], [50, 0]], [[0, 1.0], [math.nan, 0], [12, 0]]])
    b = torch.tensor([[[1.5, 0], [0, 0], [0, 0]], [[0, 2.0], [0, 0], [4, 0]]])
    return target, visible, norm, a, b


def scored_by_hand():
    target, visible, norm, a, b = hand_case()
    scorer = DecoderScorer(
        {"a": fixed_decoder([a]), "b": fixed_decoder([b])},
        lambda: build_metrics("pckh"),
        HeatmapGrid((8, 8), 1),  # stride 1: heatmap px are input px
        keep_samples=True,
    )
    batch = {"keypoints": target, "visible": visible, "norm": norm, "sample_index": torch.tensor([7, 3])}
    with pytest.warns(UserWarning, match="non-finite"):
        scorer.update(torch.zeros(2, 3, 8, 8), batch)
        results = scorer.compute()
    return scorer.per_sample(), results


def test_scorer_keeps_errors_mask_and_normaliser():
    samples, _ = scored_by_hand()
    assert list(samples.errors) == ["a", "b"]
    np.testing.assert_allclose(samples.errors["a"], [[0.5, 3, 50], [1, math.nan, 12]])
    np.testing.assert_array_equal(samples.scored, [[True, True, False], [True, True, True]])
    np.testing.assert_array_equal(samples.norm, [10, 20])
    np.testing.assert_array_equal(samples.sample_index, [7, 3])
    assert len(samples.auc_alphas) == 51 and samples.auc_alphas[-1] == 0.5


def test_metrics_recompute_by_hand_and_as_the_run_computed_them():
    samples, results = scored_by_hand()
    # decoder a, 5 scored joints: within 0.1 norm: 0.5 <= 1, 1 <= 2 -> 2/5; within 0.5 norm: + 3 <= 5 -> 3/5
    # (12 > 10; the NaN prediction is wrong); RMSE over the 4 finite errors
    assert samples.metric("a", "pckh@0.1") == pytest.approx(40.0)
    assert samples.metric("a", "pckh@0.5") == pytest.approx(60.0)
    assert samples.metric("a", "rmse") == pytest.approx(math.sqrt((0.25 + 9 + 1 + 144) / 4))
    assert samples.metric("a", "mean_error") == pytest.approx((0.5 + 3 + 1 + 12) / 4)
    for decoder in ("a", "b"):
        for metric in ("pckh@0.1", "pckh@0.5", "auc", "rmse"):
            assert samples.metric(decoder, metric) == pytest.approx(results[decoder][metric], rel=1e-6)


def test_round_trip_and_clear_errors(tmp_path):
    samples, _ = scored_by_hand()
    path = write_per_sample(tmp_path / "run" / "per_sample.npz", samples)
    back = read_per_sample(path)
    for decoder in samples.errors:
        np.testing.assert_array_equal(back.errors[decoder], samples.errors[decoder])
        assert back.errors[decoder].dtype == np.float32
    np.testing.assert_array_equal(back.scored, samples.scored)
    np.testing.assert_array_equal(back.auc_alphas, samples.auc_alphas)
    assert path.stat().st_size < 4000
    with pytest.raises(PerSampleError, match="no decoder 'dark'"):
        back.values("dark", "rmse")
    with pytest.raises(PerSampleError, match="cannot give 'ap'"):
        back.values("a", "ap")
    with pytest.raises(PerSampleError, match="no per_sample.npz"):
        read_per_sample(tmp_path / "per_sample.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(PerSampleError, match="bad.npz"):
        read_per_sample(tmp_path / "bad.npz")
    with pytest.raises(PerSampleError, match="shapes disagree"):
        PerSample.of({"a": np.zeros((3, 2))}, np.ones((2, 2)), np.ones(2))


def test_auc_without_thresholds_is_refused():
    samples = PerSample.of({"a": np.zeros((1, 1))}, np.ones((1, 1)), np.ones(1))
    with pytest.raises(PerSampleError, match="no AUC thresholds"):
        samples.values("a", "auc")
    assert samples.metric("a", "pck@0.2") == 100.0
