"""Deterministic training without torch's NaN fill of new tensors: same weights, and the trainer sets it."""

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from heatlit.models import StackedHourglass
from heatlit.training.run import build_trainer, unfilled_memory


@pytest.fixture
def restore_determinism():
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    fill = torch.utils.deterministic.fill_uninitialized_memory
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    torch.utils.deterministic.fill_uninitialized_memory = fill


def _train_tiny_hourglass(fill: bool) -> list[torch.Tensor]:
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = fill
    torch.manual_seed(0)
    model = StackedHourglass(num_joints=3, num_stacks=2, features=8, depth=2, stem_channels=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        image = torch.randn(2, 1, 32, 64, generator=gen)
        outputs = model(image)
        loss = sum(((o - 0.1) ** 2).mean() for o in outputs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


def test_no_fill_trains_the_same_weights(restore_determinism):
    filled, unfilled = _train_tiny_hourglass(True), _train_tiny_hourglass(False)
    for a, b in zip(filled, unfilled, strict=True):
        assert torch.equal(a, b)  # bit for bit: no kernel reads memory it did not write


def test_trainer_keeps_deterministic_kernels_without_the_fill(restore_determinism):
    torch.utils.deterministic.fill_uninitialized_memory = True
    cfg = OmegaConf.create(
        {
            "trainer": {
                "_target_": "lightning.Trainer",
                "accelerator": "cpu",
                "devices": 1,
                "deterministic": "warn",
                "logger": False,
                "enable_progress_bar": False,
            },
            "callbacks": None,
            "logger": None,
        }
    )
    trainer = build_trainer(cfg, "val/dark/pckh@0.1")
    assert isinstance(trainer, L.Trainer)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory is False
    unfilled_memory()  # idempotent
    assert torch.utils.deterministic.fill_uninitialized_memory is False
