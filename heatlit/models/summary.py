"""Parameter and compute counts for the zoo, and the table printed by ``python -m heatlit.models``.

Two compute columns, both multiply-accumulates (what the pose papers call "FLOPs"), both from
``torch.utils.flop_counter.FlopCounterMode`` (total / 2; convs, deconvs and matmuls; BN, ReLU, pooling and
upsampling ignored, as in the papers):

- ``GMACs``: the true count, 1e9 MACs; a transposed conv costs (input pixels x weights).
- ``paper GFLOPs``: the convention behind the published numbers (the HRNet repo's ``get_model_summary``,
  also used for SimpleBaseline): every conv, transposed or not, costs (output pixels x weights), and the
  total is divided by 2**30. It reproduces HRNet-W32 256x192 = 7.1 and SimpleBaseline-R50 256x192 = 8.9
  (8.99 here), whereas the true counts are 7.65 and 5.43 GMACs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "model"


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (BN running statistics excluded, as in the papers)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _conv_at_output(
    x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, *args, out_shape=None, **kw
):
    return conv_flop_count(x_shape, w_shape, out_shape, transposed=False)


_aten = torch.ops.aten
_PAPER_MAPPING = {
    op: _conv_at_output
    for op in (
        _aten.convolution,
        _aten._convolution,
        _aten.convolution_overrideable,
        _aten._slow_conv2d_forward,
    )
}


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: tuple[int, int, int], paper_convention: bool = False) -> int:
    """Multiply-accumulates of one eval-mode forward pass on a single ``input_shape = (C, H, W)`` input.

    ``paper_convention=True`` counts transposed convs at output resolution (see the module docstring);
    divide that by 2**30 for the published "GFLOPs".
    """
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(
            display=False, custom_mapping=_PAPER_MAPPING if paper_convention else None
        ) as counter:
            model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def build_from_conf(name: str, **overrides) -> nn.Module:
    """Instantiate ``conf/model/<name>.yaml`` with keyword ``overrides`` (e.g. num_joints, in_channels)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    path = CONF_DIR / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no model config {path}")
    return instantiate(OmegaConf.load(path), **overrides)


#: (label, config node, extra overrides): the paper-scale models, plus standard W32 as a reference point.
PAPER_MODELS = [
    ("SH_4S (hourglass)", "hourglass", {}),
    ("HRNet_4S (hrnet)", "hrnet", {}),
    ("HRNet-W32 (1,4,3)", "hrnet", {"num_modules": [1, 4, 3]}),
    ("SimpleBaseline-R50", "simplebaseline", {}),
]
TINY_MODELS = [(f"{n}_tiny", f"{n}_tiny", {}) for n in ("hourglass", "hrnet", "simplebaseline")]
#: (label, num_joints, (C, H, W))
INPUTS = [("RGB 3x256x192, K=17", 17, (3, 256, 192)), ("depth 1x160x320, K=18", 18, (1, 160, 320))]


def table(models=PAPER_MODELS, inputs=INPUTS) -> str:
    """The params / compute table as text, one row per model and input."""
    lines = [
        "params: trainable, M.  GMACs: true multiply-accumulates / 1e9.  paper GFLOPs: MACs with deconvs counted",
        "at output resolution / 2**30 (HRNet repo convention: HRNet-W32 7.1, SimpleBaseline-R50 8.9 at 256x192).",
        f"{'model':<22} {'input':<22} {'params (M)':>10} {'GMACs':>7} {'paper GFLOPs':>13}",
    ]
    for label, name, extra in models:
        for in_label, joints, shape in inputs:
            model = build_from_conf(name, num_joints=joints, in_channels=shape[0], **extra)
            params = count_params(model) / 1e6
            macs = count_macs(model, shape) / 1e9
            paper = count_macs(model, shape, paper_convention=True) / 2**30
            lines.append(f"{label:<22} {in_label:<22} {params:>10.2f} {macs:>7.2f} {paper:>13.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """CLI: print the table; ``--tiny`` adds the tiny CPU variants at 1x80x160."""
    parser = argparse.ArgumentParser(prog="python -m heatlit.models", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiny", action="store_true", help="also list the tiny CPU variants (1x80x160, K=18)"
    )
    args = parser.parse_args(argv)
    print(table())
    if args.tiny:
        print("\n".join(table(TINY_MODELS, [("depth 1x80x160, K=18", 18, (1, 80, 160))]).splitlines()[3:]))
