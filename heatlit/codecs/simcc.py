"""SimCC (Li et al. 2022): each coordinate as a 1D classification over sub-pixel bins, one vector per axis.

Design note (heatlit's reading of the reference codec):

- **Frame and bins.** A codec works in the frame it is handed (heatlit's data pipeline hands it heatmap
  pixels, so ``split_ratio`` counts bins per *heatmap* pixel; the reference's 2 bins per input pixel is
  ``2 * stride`` here). An axis of S pixels gets ``N = S * split_ratio`` bins that tile its extent
  ``[-0.5, S - 0.5]``: bin j is centred on ``x = (j + 0.5) / k - 0.5``, i.e. bins are pixels of a grid at
  stride ``1 / k``, and the bin coordinate of x is ``u = (x + 0.5) k - 0.5``, heatlit's own
  input->heatmap mapping (:func:`heatlit.codecs.to_heatmap` with stride ``1 / k``). Because that mapping
  composes, a SimCC vector over heatmap pixels at stride s with ratio k is bin for bin the vector over
  input pixels with ratio ``k / s``. The reference puts bin j at ``x = j / k`` instead; the two differ by the
  constant ``0.5 - 0.5 / k`` px (0.25 px at k = 2), which cancels between its encoder and decoder.
- **Labels.** ``smoothing="gaussian"``: ``exp(-(j - u)^2 / (2 (sigma k)^2))`` with ``sigma`` in *pixels* of
  the frame (so one sigma means the same label width for heatmaps and SimCC; the reference's sigma counts
  bins), centred on the exact u (``quantize=True``: on the nearest bin, as the reference does).
  ``smoothing="standard"``: one-hot on the nearest bin, ``label_smoothing`` spread evenly over the others.
  ``normalize=True`` makes every label a distribution (sum 1 over its bins; the reference divides by
  ``sigma sqrt(2 pi)``, the same away from the frame edges), as the KL loss expects.
- **Weights.** 0 for invisible or non-finite keypoints; Gaussian labels use the Gaussian heatmaps' rule
  (the ``box_sigmas`` box must overlap the frame), one-hot labels need their bin inside the frame.
- **Decoding.** Argmax per vector, divided back by the split ratio; optionally one Newton step on the log
  of the three bins around it (1D DARK: exact for Gaussian labels). ``logits=True`` reads the vectors as
  logits (a log-density up to a constant, what a head trained with softmax + KL emits), ``False`` as
  non-negative label values. Score: the smaller of the per-axis maxima, clamped at 0 (the reference's).

Shapes: labels and head outputs are tuples of n tensors ``([B, K, N_x], [B, K, N_y][, [B, K, N_z]])`` in
coordinate order; coordinates ``[B, K, n]`` (x, y[, z]) in frame pixels, centres at integers. 2D and 3D.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from heatlit.codecs.base import sanitize
from heatlit.codecs.codec import Codec, DecodesWhenCalled, check_keypoints
from heatlit.codecs.coords import clamp_to_frame, frame_centre
from heatlit.codecs.encoders import gaussian_profile

Tensor = torch.Tensor

SMOOTHINGS = ("gaussian", "standard")


def simcc_bins(size: int, split_ratio: float) -> int:
    """Number of bins ``size * split_ratio`` of an axis; a ValueError unless it is a whole number."""
    if not (isinstance(split_ratio, int | float) and split_ratio > 0):
        raise ValueError(f"SimCC split_ratio must be > 0, got {split_ratio!r}")
    bins = size * split_ratio
    if abs(bins - round(bins)) > 1e-6 or round(bins) < 1:
        raise ValueError(
            f"SimCC: an axis of {size} px at split_ratio {split_ratio} gives {bins:g} bins; choose a ratio that "
            "makes a whole number of bins"
        )
    return round(bins)


def simcc_labels(
    keypoints: Tensor,
    visible: Tensor,
    size: Sequence[int],
    split_ratio: float = 2.0,
    sigma: float = 2.0,
    smoothing: str = "gaussian",
    label_smoothing: float = 0.0,
    quantize: bool = False,
    normalize: bool = True,
    box_sigmas: float = 3.0,
) -> tuple[tuple[Tensor, ...], Tensor]:
    """SimCC classification labels.

    Args:
        keypoints: ``[B, K, n]`` (x, y[, z]) frame px, pixel centres at integers.
        visible: ``[B, K]`` bool or 0/1.
        size: ``(H, W)`` or ``(D, H, W)``: the frame, n entries.
        split_ratio: bins per pixel k.
        sigma: Gaussian label standard deviation in frame px (``sigma * k`` bins).
        smoothing: ``"gaussian"`` or ``"standard"`` (one-hot with ``label_smoothing``).
        label_smoothing: probability mass in [0, 1) spread over the other bins (``"standard"`` only).
        quantize: centre Gaussian labels on the nearest bin (the reference) instead of the exact position.
        normalize: scale every label to sum 1; else Gaussian labels peak at 1.
        box_sigmas: Gaussian labels whose ``box_sigmas * sigma`` box misses the frame get weight 0.

    Returns:
        ``(labels, weights)``: labels a tuple of n float32 tensors ``[B, K, S_a * k]`` in (x, y[, z]) order
        (zeros where the weight is 0), weights ``[B, K]`` float32.
    """
    if smoothing not in SMOOTHINGS:
        raise ValueError(f"simcc_labels: smoothing must be one of {SMOOTHINGS}, got {smoothing!r}")
    if not 0 <= label_smoothing < 1 or (label_smoothing and smoothing != "standard"):
        raise ValueError(
            f"simcc_labels: label_smoothing must be in [0, 1) and needs smoothing='standard', got "
            f"{label_smoothing} with {smoothing!r}"
        )
    if not (isinstance(sigma, int | float) and 0 < sigma < float("inf")):
        raise ValueError(f"simcc_labels: sigma must be finite and > 0 (frame px), got {sigma!r}")
    kp, weights, spatial = check_keypoints(keypoints, visible, size, "simcc_labels")
    bins = [simcc_bins(s, split_ratio) for s in reversed(spatial)]
    u = (kp + 0.5) * split_ratio - 0.5  # bin coordinates, [B, K, n]
    if smoothing == "standard" or quantize:
        u = torch.floor(u + 0.5)
    sigma_bins = float(sigma) * split_ratio
    for axis, n_bins in enumerate(bins):
        if smoothing == "gaussian":
            reach = box_sigmas * sigma_bins
            weights &= (u[..., axis] + reach >= -0.5) & (u[..., axis] - reach <= n_bins - 0.5)
        else:
            weights &= (u[..., axis] >= 0) & (u[..., axis] <= n_bins - 1)

    labels = []
    w = weights.float()[..., None]
    for axis, n_bins in enumerate(bins):
        grid = torch.arange(n_bins, dtype=kp.dtype, device=kp.device)
        if smoothing == "gaussian":
            label = gaussian_profile(grid, u[..., axis], sigma_bins)
            if normalize:
                label = label / label.sum(-1, keepdim=True).clamp(min=1e-30)
        else:
            hot = (grid == u[..., axis, None]).to(kp.dtype)
            rest = label_smoothing / (n_bins - 1) if n_bins > 1 else 0.0
            label = hot * (1 - label_smoothing - rest) + rest
        labels.append(label * w)
    return tuple(labels), weights.float()


def _vector_peak(v: Tensor, refine: bool, logits: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Argmax of ``v [B, K, N]`` (finite), optionally refined by a 1D Newton step on the log-values.

    Returns ``(bin coordinate [B, K], maximum [B, K], flat [B, K] bool)``.
    """
    index = v.argmax(-1)
    maxval = v.gather(-1, index[..., None])[..., 0]
    flat = maxval == v.amin(-1)
    pos = index.to(v.dtype)
    n_bins = v.shape[-1]
    if refine and n_bins >= 3:
        logv = v if logits else torch.log(v.clamp(min=1e-30))
        around = index[..., None] + torch.tensor([-1, 0, 1], device=v.device)
        vals = logv.gather(-1, around.clamp(0, n_bins - 1))
        d1 = 0.5 * (vals[..., 2] - vals[..., 0])
        d2 = vals[..., 2] - 2 * vals[..., 1] + vals[..., 0]
        ok = (d2 < 0) & (index > 0) & (index < n_bins - 1)  # a concave peak with both neighbours
        # The vertex of a parabola through a maximum and its two neighbours is within half a bin of it.
        step = (-d1 / torch.where(ok, d2, -1.0)).clamp(-0.5, 0.5)
        pos = pos + torch.where(ok, step, torch.zeros_like(step))
    return pos, maxval, flat


def simcc_decode(
    vectors: Sequence[Tensor], split_ratio: float = 2.0, refine: bool = False, logits: bool = True
) -> tuple[Tensor, Tensor]:
    """Coordinates from per-axis SimCC vectors.

    Args:
        vectors: n tensors ``[B, K, N_a]`` in (x, y[, z]) order (labels, or a head's logits); non-finite
            entries count as the vector's minimum.
        split_ratio: bins per pixel k (as encoded).
        refine: one Newton step on the log-values around the argmax (sub-bin precision).
        logits: the vectors are logits (log-density up to a constant); False: non-negative label values.

    Returns:
        ``coords [B, K, n]`` frame px, ``x = (bin + 0.5) / k - 0.5``, clamped into the frame ``S_a = N_a / k``;
        ``scores [B, K]``: the smallest per-axis maximum clamped at 0. An axis whose vector is flat gets the
        frame centre on that axis, and the keypoint score 0.
    """
    if not isinstance(vectors, list | tuple) or len(vectors) not in (2, 3):
        raise ValueError(f"simcc_decode: expected 2 or 3 vectors (x, y[, z]), got {type(vectors).__name__}")
    lead = vectors[0].shape[:2] if isinstance(vectors[0], Tensor) else None
    for v in vectors:
        if (
            not isinstance(v, Tensor)
            or v.dim() != 3
            or v.shape[:2] != lead
            or v.shape[-1] == 0
            or v.is_complex()
        ):
            raise ValueError(
                "simcc_decode: every vector must be a real [B, K, N] tensor with N > 0 and the same B, K; got "
                f"{[list(getattr(x, 'shape', [])) for x in vectors]}"
            )
    spatial = tuple(v.shape[-1] / split_ratio for v in reversed(vectors))  # the frame, (D,) H, W px
    coords, maxima, flats = [], [], []
    for v in vectors:
        pos, maxval, flat = _vector_peak(sanitize(v, 1), refine, logits)
        coords.append((pos + 0.5) / split_ratio - 0.5)
        maxima.append(maxval)
        flats.append(flat)
    coords, flat = torch.stack(coords, -1), torch.stack(flats, -1)
    # A flat vector carries no evidence: the frame centre on that axis, the other axes keep their answers.
    coords = clamp_to_frame(torch.where(flat, frame_centre(spatial, coords), coords), spatial)
    maxval = torch.stack(maxima, -1).amin(-1)
    return coords, torch.where(flat.any(-1), torch.zeros_like(maxval), maxval.clamp(min=0))


class SimCCCodec(Codec):
    """SimCC representation: ``encode`` = :func:`simcc_labels`, ``decode`` = :func:`simcc_decode`.

    Called, it encodes: ``(keypoints[B, K, n], visible, size) -> ((x[B, K, W k], y[B, K, H k][, z]), weights)``.
    """

    output_kind = "simcc"

    def __init__(
        self,
        split_ratio: float = 2.0,
        sigma: float = 2.0,
        smoothing: str = "gaussian",
        label_smoothing: float = 0.0,
        quantize: bool = False,
        normalize: bool = True,
        box_sigmas: float = 3.0,
        refine: bool = False,
        logits: bool = True,
    ) -> None:
        simcc_bins(1, split_ratio)  # the ratio's own checks; whole bins are checked per frame
        # sigma, smoothing and label_smoothing are checked now (on an empty batch), not at the first batch
        simcc_labels(torch.zeros(0, 0, 2), torch.zeros(0, 0), (1, 1), 1, sigma, smoothing, label_smoothing)
        super().__init__(
            split_ratio=split_ratio,
            sigma=sigma,
            smoothing=smoothing,
            label_smoothing=label_smoothing,
            quantize=bool(quantize),
            normalize=bool(normalize),
            box_sigmas=float(box_sigmas),
            refine=bool(refine),
            logits=bool(logits),
        )

    def encode(
        self, keypoints: Tensor, visible: Tensor, size: Sequence[int]
    ) -> tuple[tuple[Tensor, ...], Tensor]:
        o = dict(self.options)
        del o["refine"], o["logits"]
        return simcc_labels(keypoints, visible, size, **o)

    def decode(self, vectors: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        o = self.options
        return simcc_decode(vectors, o["split_ratio"], o["refine"], o["logits"])


class SimCCDecoder(DecodesWhenCalled, SimCCCodec):
    """:class:`SimCCCodec` that decodes when called (``conf/decoder/simcc*.yaml``)."""
