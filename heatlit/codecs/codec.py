"""The codec object shared by the representations of issue 17 (MSPN, UDP offsets, SimCC), and their input checks.

Design: mmpose-like, one object per representation holds the options of both directions:
``codec.encode(keypoints[B, K, n], visible[B, K], size) -> (target, weights[B, K])`` and
``codec.decode(output) -> (coords[B, K, n], scores[B, K])``. Called, a codec *encodes*, so it drops into
the data pipeline wherever an encoder goes (``conf/encoding``); its ``...Decoder`` twin is the same
object that *decodes* when called (``conf/decoder``). Coordinates follow :mod:`heatlit.codecs`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from heatlit.codecs.coords import clamp_to_frame, frame_centre

Tensor = torch.Tensor

UNDERFLOW = -40.0  # exp(-40) ~ 4e-18: below it a Gaussian profile is written as an exact 0 (no subnormals)


class Codec:
    """Base: ``encode`` and ``decode`` of one representation; ``codec(...)`` is ``codec.encode(...)``.

    Subclasses store their options in ``self.options`` (shown by ``repr``) and set ``dims``: the spatial
    dimensionalities they handle (read by the run's decoder checks).
    """

    dims: tuple[int, ...] = (2, 3)
    #: What the representation's model emits and its decoder reads: ``"heatmap"`` (``[B, K, *S]`` maps),
    #: ``"udp_offset"`` or ``"simcc"`` (read by the run's representation check).
    output_kind: str = "heatmap"

    def __init__(self, **options) -> None:
        self.options = options

    def encode(self, keypoints: Tensor, visible: Tensor, size: Sequence[int]):
        raise NotImplementedError

    def decode(self, output) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.encode(*args, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.options.items())})"


class DecodesWhenCalled:
    """Mixin for a codec's decoder twin: ``decoder(output)`` is ``decoder.decode(output)``."""

    def __call__(self, output):
        return self.decode(output)


def check_keypoints(
    keypoints: Tensor, visible: Tensor, size: Sequence[int], name: str
) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """Validate an encoder's inputs.

    Args:
        keypoints: ``[B, K, n]`` (x, y[, z]); visible: ``[B, K]`` bool or 0/1; size: ``(H, W)`` or
            ``(D, H, W)`` with ``len(size) == n``.

    Returns:
        ``(keypoints float32 with non-finite rows zeroed, usable [B, K] bool = visible & finite, size)``.
    """
    if not isinstance(keypoints, Tensor) or keypoints.dim() != 3:
        raise ValueError(
            f"{name}: keypoints must be a [B, K, n] tensor, got {getattr(keypoints, 'shape', type(keypoints))}"
        )
    spatial = tuple(int(s) for s in size)
    n = keypoints.shape[-1]
    if len(spatial) not in (2, 3) or any(s <= 0 for s in spatial) or len(spatial) != n:
        raise ValueError(
            f"{name}: size must be (H, W) for [B, K, 2] keypoints or (D, H, W) for [B, K, 3], with positive "
            f"entries; got size {tuple(size)} for keypoints of shape {list(keypoints.shape)}"
        )
    visible = torch.as_tensor(visible, device=keypoints.device)
    if visible.shape != keypoints.shape[:2]:
        raise ValueError(
            f"{name}: visible must be [B, K] = {list(keypoints.shape[:2])}, got {list(visible.shape)}"
        )
    kp = keypoints.float()
    finite = torch.isfinite(kp).all(-1)
    kp = torch.where(finite[..., None], kp, torch.zeros_like(kp))
    return kp, (visible > 0) & finite, spatial


def replace_nonfinite(maps: Tensor, ndim: int) -> Tensor:
    """Non-finite values -> the smallest finite value of their own map (0 for a map with none).

    The heatmap decoders' rule (see :mod:`heatlit.codecs`), for tensors whose last ``ndim`` axes are one
    map: ``[..., *S] -> [..., *S]`` floating point.
    """
    if not maps.is_floating_point():
        maps = maps.float()
    finite = torch.isfinite(maps)
    floor = torch.where(finite, maps, torch.inf).flatten(-ndim).amin(-1)
    floor = torch.where(torch.isfinite(floor), floor, 0).reshape(*floor.shape, *([1] * ndim))
    return torch.where(finite, maps, floor.to(maps.dtype))


def gaussian_profile(grid: Tensor, centre: Tensor, sigma: Tensor) -> Tensor:
    """``exp(-(grid - centre)^2 / (2 sigma^2))`` with exact zeros below ``exp(UNDERFLOW)``.

    ``grid [N]``, ``centre [B, K]``, ``sigma [B, K]`` or scalar -> ``[B, K, N]``.
    """
    d = grid - centre[..., None]
    arg = -(d * d) / (2 * torch.as_tensor(sigma, dtype=d.dtype, device=d.device)[..., None] ** 2)
    return torch.exp(arg.clamp(min=UNDERFLOW)).masked_fill_(arg <= UNDERFLOW, 0.0)


def check_maps(maps: Tensor, name: str, dims: Sequence[int] = (2, 3), extra: int = 0) -> tuple[int, ...]:
    """Validate a decoder's map input ``[B, K, *E, *S]``: ``extra`` leading channel axes E after K, then
    ``len(S)`` in ``dims`` non-empty spatial axes. Returns ``S``."""
    if not isinstance(maps, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(maps).__name__}")
    nd = maps.dim() - 2 - extra
    if nd not in dims:
        lead = "B, K" + ", C" * extra
        shapes = " or ".join(f"[{lead}, {', '.join('DHW'[3 - d :])}]" for d in dims)
        raise ValueError(f"{name}: expected {shapes}, got shape {list(maps.shape)}")
    spatial = tuple(maps.shape[2 + extra :])
    if any(s == 0 for s in spatial):
        raise ValueError(f"{name}: empty spatial size {list(spatial)}")
    if maps.is_complex():
        raise ValueError(f"{name}: complex input is not supported")
    return spatial


def finish(coords: Tensor, maxval: Tensor, no_peak: Tensor, spatial: Sequence[int]) -> tuple[Tensor, Tensor]:
    """The decoders' common ending (see :mod:`heatlit.codecs`): a map without a peak gets the frame centre and
    score 0, every coordinate is clamped into the frame extent, scores are the maximum clamped at 0.

    ``coords [B, K, n]`` (x, y[, z]), ``maxval, no_peak [B, K]``, ``spatial`` ``(H, W)`` / ``(D, H, W)``.
    """
    coords = torch.where(no_peak[..., None], frame_centre(tuple(spatial), coords), coords)
    coords = clamp_to_frame(coords, tuple(spatial))
    scores = torch.where(no_peak, torch.zeros_like(maxval), maxval.clamp(min=0))
    return coords, scores
