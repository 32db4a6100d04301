"""Output kinds: what a representation's model emits, and how the flip test, scoring and the figure read it.

Every coordinate representation (``conf/representation/``) declares one kind (``conf/output/``):

=============  ===============================================  ======================  =========================
kind           model output per stage                           targets (``encoding``)  decoders
=============  ===============================================  ======================  =========================
``heatmap``    ``[B, K, *S]`` maps                              Gaussian, Megvii;       argmax ... soft-argmax,
                                                                none for DSNT           megvii, multi-peak
``udp_offset`` ``[B, K, 1 + n, *S]``: classification, then the  :class:`UDPOffsetCodec` ``udp_offset*``
               n (x, y[, z]) offsets in units of the radius
``simcc``      tuple of n logit vectors ``[B, K, S_a k]`` in    :class:`SimCCCodec`     ``simcc*``
               (x, y[, z]) order
=============  ===============================================  ======================  =========================

``S`` is the heatmap grid's ``(h, w)`` or ``(D, h, w)``; coordinates follow :mod:`heatlit.codecs`. Codecs,
losses and decoders state the kind they make or read as ``output_kind`` (a plain heatmap decoder or encoder
needs none); :func:`check_representation` refuses a mix before training starts, in one line.

Flip test (the input mirrored, ``x -> W - 1 - x`` in input and heatmap px under either grid mapping): maps are
mirrored along x and left/right keypoints swapped; UDP's x-offset channel also changes sign; SimCC's x vector
is reversed (bin j -> N - 1 - j: bin centres ``(j + 0.5) / k - 0.5`` mirror onto each other) and y (and z)
stay. The two predictions are averaged as they come (maps, offsets, logits), as the reference codes do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from hydra.utils import instantiate
from torch import nn

from heatlit.codecs.grid import HeatmapGrid
from heatlit.models.offset_head import OffsetMapsModel
from heatlit.models.simcc_head import SimCCModel
from heatlit.training.checks import ConfigError

Tensor = torch.Tensor
Output = Tensor | tuple[Tensor, ...]

#: The representation to choose for each kind, named in error messages.
REPRESENTATION_OF = {"heatmap": "gaussian", "udp_offset": "udp", "simcc": "simcc"}


def output_kind(obj) -> str:
    """The kind an encoder, loss or decoder makes or reads: its ``output_kind``, else ``"heatmap"``."""
    return getattr(obj, "output_kind", "heatmap")


def flip_heatmaps(heatmaps: Tensor, flip_index: Sequence[int]) -> Tensor:
    """Mirror heatmaps horizontally and swap left/right channels.

    With aligned pixel extents (see :func:`heatlit.codecs.coords.to_heatmap`) a flip is ``x -> W-1-x``
    in input and heatmap space alike, so no one-pixel shift is needed (HRNet needs one because its
    mapping is ``x / stride``).

    Args:
        heatmaps: ``[B, K, ..., W]``.
        flip_index: ``[K]`` channel permutation (:attr:`DatasetDescription.flip_index`).
    """
    flipped = torch.flip(heatmaps, dims=[-1])
    return flipped[:, torch.as_tensor(flip_index, dtype=torch.long, device=heatmaps.device)]


class HeatmapOutput:
    """``[B, K, *S]`` heatmaps (Gaussian, Megvii and DSNT representations): the model of the zoo as it is."""

    kind = "heatmap"

    def build(self, make_model: Callable[..., nn.Module], num_joints: int, grid: HeatmapGrid) -> nn.Module:
        """The model for ``num_joints`` keypoints on ``grid``; ``make_model(num_joints=...)`` builds a zoo model."""
        return make_model(num_joints=num_joints)

    def flip(self, output: Tensor, flip_index: Sequence[int]) -> Tensor:
        """The prediction for the mirrored input, mirrored back: ``[B, K, *S] -> [B, K, *S]``."""
        return flip_heatmaps(output, flip_index)

    def flip_average(self, output: Output, mirrored: Output, flip_index: Sequence[int]) -> Output:
        """Mean of ``output`` and the mirrored input's prediction ``mirrored`` mapped back (same kind and shape)."""
        back = self.flip(mirrored, flip_index)
        if isinstance(output, Tensor):
            return 0.5 * (output + back)
        return tuple(0.5 * (a + b) for a, b in zip(output, back))

    def preview(self, output: Tensor) -> Tensor:
        """``[B, h, w]``: the maximum over keypoints (and depth bins), drawn in the qualitative figure."""
        return output.flatten(1, -3).amax(1)


class UDPOffsetOutput(HeatmapOutput):
    """UDP's ``[B, K, 1 + n, *S]``: a zoo model with ``K (1 + n)`` channels, viewed per keypoint."""

    kind = "udp_offset"

    def build(self, make_model: Callable[..., nn.Module], num_joints: int, grid: HeatmapGrid) -> nn.Module:
        channels = 1 + grid.dims
        return OffsetMapsModel(make_model(num_joints=num_joints * channels), channels)

    def flip(self, output: Tensor, flip_index: Sequence[int]) -> Tensor:
        """Mirror maps and swap keypoints, then negate the x offsets (channel 1): ``[B, K, 1 + n, *S]``."""
        flipped = flip_heatmaps(output, flip_index)
        sign = torch.ones(output.shape[2], dtype=output.dtype, device=output.device)
        sign[1] = -1.0
        return flipped * sign.reshape(-1, *([1] * (output.dim() - 3)))

    def preview(self, output: Tensor) -> Tensor:
        """``[B, h, w]``: the classification maps' maximum over keypoints (and depth bins)."""
        return super().preview(output[:, :, 0])


class SimCCOutput(HeatmapOutput):
    """SimCC's per-axis logits: the zoo model's maps feed one linear classifier per axis.

    Args:
        split_ratio: bins per heatmap px (the encoding's).
    """

    kind = "simcc"

    def __init__(self, split_ratio: float = 2.0) -> None:
        self.split_ratio = float(split_ratio)

    def build(self, make_model: Callable[..., nn.Module], num_joints: int, grid: HeatmapGrid) -> nn.Module:
        return SimCCModel(make_model(num_joints=num_joints), grid.input_size, self.split_ratio)

    def flip(self, output: Sequence[Tensor], flip_index: Sequence[int]) -> tuple[Tensor, ...]:
        """Reverse the x vector's bins and swap keypoints; y (and z) keep their bins. ``n x [B, K, N_a]``."""
        index = torch.as_tensor(flip_index, dtype=torch.long, device=output[0].device)
        return tuple(
            (torch.flip(v, dims=[-1]) if axis == 0 else v)[:, index] for axis, v in enumerate(output)
        )

    def preview(self, output: Sequence[Tensor]) -> Tensor:
        """``[B, H k, W k]``: the product of the x and y softmax distributions, maximum over keypoints."""
        px, py = (torch.softmax(v.float(), -1) for v in output[:2])
        return (py[..., :, None] * px[..., None, :]).amax(1)


def build_output(cfg) -> HeatmapOutput:
    """The run's output kind from its ``output`` config node (absent in configs older than it: heatmaps)."""
    node = cfg.get("output")
    return instantiate(node) if node is not None else HeatmapOutput()


def check_representation(output, encoder, loss, decoders: Mapping[str, object]) -> None:
    """The encoding, loss, model output and every decoder must speak the same output kind.

    Raises:
        heatlit.training.checks.ConfigError: one line naming the mismatch and the representation to choose.
    """
    kind = output.kind
    parts = {"encoding": encoder, "loss": loss}
    for role, obj in parts.items():
        if output_kind(obj) != kind:
            raise ConfigError(
                f"{role} {type(obj).__name__} works with {output_kind(obj)} outputs but the model emits {kind} "
                f"outputs; choose a whole representation, e.g. representation={REPRESENTATION_OF[output_kind(obj)]}"
                " (conf/representation/)"
            )
    wrong = {name: output_kind(d) for name, d in decoders.items() if output_kind(d) != kind}
    if wrong:
        listed = ", ".join(f"{name} ({k})" for name, k in wrong.items())
        raise ConfigError(
            f"decoders {listed} cannot read the model's {kind} outputs; the representation's own decoders come "
            f"with representation={REPRESENTATION_OF[kind]}, or drop these with ~decoder@decoders.<name>"
        )
