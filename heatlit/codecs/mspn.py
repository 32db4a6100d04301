"""MSPN / Megvii targets (CPN, Chen et al. 2018; MSPN, Li et al. 2019): a one-hot impulse, Gaussian-blurred.

Design note (how this reads the reference codec in heatlit's convention, see :mod:`heatlit.codecs`):

- **Impulse.** One pixel per keypoint: the pixel whose extent contains it, ``q = floor(x + 0.5)`` in
  heatmap pixels. The reference computes ``floor(x_in / s)`` (pixel corners at integers) and adds 0.5
  when decoding; under heatlit's extent-aligned input->heatmap mapping both name the same pixel, so no
  half-pixel shift appears here. The encoding is quantised by construction (error up to 0.5 px per axis).
- **Blur.** ``cv2.GaussianBlur(impulse, (k, k), 0)``: OpenCV's sigma rule for the width (2.0 for k = 11)
  and OpenCV's default border, which *reflects* (``BORDER_REFLECT_101``). Inside the frame the target is
  the quantised Gaussian truncated to the kernel; within ``(k - 1) / 2`` px of an edge the mirrored tail
  folds back in, so border targets are lopsided towards the edge: within about sigma px of it the
  target's maximum is no longer at ``q`` (with k = 11 an impulse 2 px from the edge peaks *on* the edge).
  heatlit reproduces that exactly (tested against OpenCV); the blur of an impulse is one column of a
  cached matrix, no map is filtered.
- **Rescale.** The value at ``q`` is set to ``peak``: the reference uses 255 (and divides scores by 255),
  heatlit's default 1 keeps the scale of the Gaussian targets and their MSE loss.
- **Weights.** 0 for invisible or non-finite keypoints and for ``q`` outside the frame (no pixel to put
  the impulse on).
- **Decoding** (the reference's): blur with the same kernel (zero border), argmax, a quarter pixel
  towards the higher neighbour per axis (:func:`heatlit.codecs.standard_decode`); the score is the
  maximum of the unblurred map (the reference rescales the blurred map to it). Round trip on noise-free
  targets (tested): exactly ``q`` once ``q`` is more than ``(k - 1) / 2`` px from every edge; 0.25 px off
  ``q`` closer in, and 1.25 px off on the edge pixel itself, where the zero border drags the peak inwards.
  (Decoding with the encoder's reflecting border is worse, up to 2 px, because of the lopsided targets.)
- MSPN supervises its stages with shrinking kernels (15, 11, 9, 7): the encoding makes the final stage's
  target (kernel 7) and :class:`heatlit.training.losses.MSPNLoss` the earlier stages' (``representation=mspn``).

2D and 3D (the same separable construction over D, H, W).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from heatlit.codecs import standard_decode
from heatlit.codecs.base import check_heatmaps, finish_frame, sanitize
from heatlit.codecs.blur import blur_matrix, check_kernel, separable_blur
from heatlit.codecs.codec import Codec, DecodesWhenCalled, check_keypoints

Tensor = torch.Tensor


def megvii_heatmaps(
    keypoints: Tensor,
    visible: Tensor,
    heatmap_size: Sequence[int],
    kernel: int = 11,
    sigma: float | None = None,
    peak: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Blurred-impulse targets.

    Args:
        keypoints: ``[B, K, n]`` (x, y[, z]) heatmap pixels, pixel centres at integers.
        visible: ``[B, K]`` bool or 0/1.
        heatmap_size: ``(H, W)`` or ``(D, H, W)``, ``n`` entries.
        kernel: odd blur width ``k``. sigma: blur standard deviation; None = OpenCV's rule for ``k``.
        peak: the target's value at the keypoint's pixel.

    Returns:
        ``heatmaps [B, K, *heatmap_size]`` float32 (value ``peak`` at ``q = floor(x + 0.5)``, zero beyond
        ``(k - 1) / 2`` px of it on any axis) and ``weights [B, K]`` float32 (1 or 0; 0 gives an empty map).
    """
    kernel = check_kernel(kernel)
    if not (isinstance(peak, int | float) and 0 < peak < float("inf")):
        raise ValueError(f"megvii_heatmaps: peak must be finite and > 0, got {peak!r}")
    kp, usable, size = check_keypoints(keypoints, visible, heatmap_size, "megvii_heatmaps")
    q = torch.floor(kp + 0.5)
    last = torch.tensor([s - 1 for s in reversed(size)], dtype=kp.dtype, device=kp.device)
    weights = usable & ((q >= 0) & (q <= last)).all(-1)
    q = torch.where(weights[..., None], q, torch.zeros_like(q)).long()

    profiles = []
    for axis, length in enumerate(reversed(size)):
        m = blur_matrix(length, kernel, sigma, "reflect", torch.float32, kp.device)
        column = m.T[q[..., axis]]  # [B, K, length]: the 1D blur of the impulse at q (column q of M)
        profiles.append(column / column.gather(-1, q[..., axis, None]))
    weights = weights.float()
    # The 2D/3D blur of an impulse with a separable kernel and a per-axis border is the outer product of
    # the 1D blurs, so no map is ever filtered.
    x = profiles[0] * (peak * weights)[..., None]
    if len(size) == 2:
        heatmaps = profiles[1][..., :, None] * x[..., None, :]
    else:
        heatmaps = profiles[2][..., :, None, None] * profiles[1][..., None, :, None] * x[..., None, None, :]
    return heatmaps, weights


def megvii_decode(
    heatmaps: Tensor, kernel: int = 11, sigma: float | None = None, shift: float = 0.25
) -> tuple[Tensor, Tensor]:
    """The MSPN reference decoder: zero-border blur, argmax, ``shift`` px towards the higher neighbour.

    Args:
        heatmaps: ``[B, K, H, W]`` or ``[B, K, D, H, W]``; non-finite values count as the map's minimum.
        kernel, sigma: the blur (as in :func:`megvii_heatmaps`); ``kernel=1`` skips it.
        shift: the per-axis step towards the higher neighbour (0.25 in the reference).

    Returns:
        ``coords [B, K, n]`` heatmap px inside the frame, ``scores [B, K]`` (the unblurred maximum clamped
        at 0; a flat map gets score 0 and the frame centre).
    """
    h, spatial = check_heatmaps(heatmaps, "megvii_decode")
    nd = len(spatial)
    h = sanitize(h)
    flat = h.flatten(2)
    maxval = flat.amax(-1)
    no_peak = maxval == flat.amin(-1)
    blurred = h if check_kernel(kernel) == 1 else separable_blur(h, nd, kernel, sigma, "zeros")
    coords, _ = standard_decode(blurred, shift=shift)
    return finish_frame(coords, maxval, no_peak, spatial)


class MegviiCodec(Codec):
    """MSPN/Megvii representation: ``encode`` = :func:`megvii_heatmaps`, ``decode`` = :func:`megvii_decode`.

    One kernel (and sigma) for both directions, as in the reference codec. Called, it encodes.
    """

    def __init__(self, kernel: int = 11, sigma: float | None = None, peak: float = 1.0, shift: float = 0.25):
        kernel = check_kernel(kernel)
        if sigma is not None and not sigma > 0:
            raise ValueError(f"MegviiCodec: sigma must be > 0 or None, got {sigma}")
        super().__init__(kernel=kernel, sigma=sigma, peak=peak, shift=shift)

    def encode(
        self, keypoints: Tensor, visible: Tensor, heatmap_size: Sequence[int]
    ) -> tuple[Tensor, Tensor]:
        o = self.options
        return megvii_heatmaps(keypoints, visible, heatmap_size, o["kernel"], o["sigma"], o["peak"])

    def decode(self, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        o = self.options
        return megvii_decode(heatmaps, o["kernel"], o["sigma"], o["shift"])


class MegviiDecoder(DecodesWhenCalled, MegviiCodec):
    """:class:`MegviiCodec` that decodes when called (``conf/decoder/megvii.yaml``)."""
