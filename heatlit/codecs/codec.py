"""The codec object shared by the representations of issue 17 (MSPN, UDP offsets, SimCC), and their input checks
(their decoders' checks and ending are every decoder's: :mod:`heatlit.codecs.base`).

Design: mmpose-like, one object per representation holds the options of both directions:
``codec.encode(keypoints[B, K, n], visible[B, K], size) -> (target, weights[B, K])`` and
``codec.decode(output) -> (coords[B, K, n], scores[B, K])``. Called, a codec *encodes*, so it drops into
the data pipeline wherever an encoder goes (``conf/encoding``); its ``...Decoder`` twin is the same
object that *decodes* when called (``conf/decoder``). Coordinates follow :mod:`heatlit.codecs`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Tensor = torch.Tensor


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
