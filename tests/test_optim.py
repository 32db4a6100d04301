"""`heatlit.training.optim`: the fused / foreach step is picked where torch has it and updates as the loop does."""

import functools

import pytest
import torch

from heatlit.training.optim import build_optimizer, fast_step_options

# conf/optim/adam.yaml as Hydra's `_partial_` builds it
ADAM = functools.partial(torch.optim.Adam, lr=2.0e-3, betas=(0.9, 0.999), weight_decay=0.0)


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 3, 1),
    )


def _train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int = 5) -> None:
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(4, 2, 6, 5, generator=gen)
        target = torch.randn(4, 3, 6, 5, generator=gen)
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), target).backward()
        optimizer.step()


def test_adam_on_cpu_is_fused():
    params = list(_tiny_model().parameters())
    assert fast_step_options(ADAM, params) == {"fused": True}
    optimizer = build_optimizer(ADAM, params)
    assert optimizer.defaults["fused"] is True and optimizer.defaults["lr"] == 2.0e-3


@pytest.mark.parametrize("fast", [{"fused": True}, {"foreach": True}])
def test_fast_step_updates_as_the_plain_loop(fast):
    plain, other = _tiny_model(), _tiny_model()
    _train(plain, ADAM(plain.parameters(), foreach=False, fused=False))
    _train(other, ADAM(other.parameters(), **fast))
    moved = [(p - q).abs().max() for p, q in zip(plain.parameters(), _tiny_model().parameters(), strict=True)]
    assert min(moved) > 1e-3  # five steps of lr 2e-3 really moved every parameter
    for p, q in zip(plain.parameters(), other.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)


def test_configured_choice_is_kept_and_unknown_classes_untouched():
    params = list(_tiny_model().parameters())
    assert fast_step_options(functools.partial(ADAM, foreach=False), params) == {}
    assert build_optimizer(functools.partial(ADAM, fused=False), params).defaults["fused"] is False
    # no `fused` argument: foreach; neither: nothing added
    assert fast_step_options(functools.partial(torch.optim.Adamax, lr=1e-3), params) == {"foreach": True}
    assert fast_step_options(functools.partial(torch.optim.LBFGS), params) == {}
    # integer tensors have no fused kernel
    assert fast_step_options(ADAM, [torch.zeros(2, dtype=torch.long)]) != {"fused": True}
