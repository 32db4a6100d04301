"""Multi-peak decoding for heatmaps that hold several instances per channel (bottom-up / crowded maps).

Same contract as the single-peak decoders with a peak axis: ``[B, K, *S] -> coords [B, K, P, n], scores
[B, K, P]``, strongest first. Shapes and coordinate convention: see :mod:`heatlit.codecs`.

A peak is a pixel above the threshold that equals the maximum of its ``nms_kernel`` window (windows
clipped at the frame). Two such window maxima within the window's radius r of each other (Chebyshev
distance) are always equal, each being the maximum of a window holding the other: they are one peak (a
plateau, or a flat-topped blob), represented by its first pixel in flat order.

How they are found fast (what bounds the speed on a CPU is the number of passes over the maps):

1. The window maximum is separable; doubling gives it in three elementwise maxima per axis for a 5-wide
   window (a max-pooling call is tens of times slower on CPUs). One more pass keeps each
   window maximum's value and sends every other pixel below 0.
2. A block of r + 1 pixels per axis holds at most one peak (any two of its pixels are within r), so the
   top P are chosen among the block maxima, an (r + 1)^n-fold smaller array.
3. Chosen peaks of equal value may be one peak seen from two blocks; only maps with such a tie are redone
   by the direct computation (:func:`exact_candidates`), whose merge of equal window maxima is the one
   data-dependent loop in the codecs (as many passes as the widest such group is long) and the one host
   sync of this decoder.
4. The chosen peaks are refined with DARK (:func:`heatlit.codecs.dark.dark_refine`, border rule included).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import heatlit.codecs.base as base
from heatlit.codecs.base import Decoder, axis_steps, check_heatmaps, prepare_heatmaps
from heatlit.codecs.blur import check_kernel, separable_blur
from heatlit.codecs.coords import clamp_to_frame, frame_centre, ravel, unravel
from heatlit.codecs.dark import dark_refine
from heatlit.codecs.multipeak_cpu import host_candidates
from heatlit.codecs.patches import patch_values

Tensor = torch.Tensor


def window_max(x: Tensor, kernel: int) -> Tensor:
    """Maximum over the ``kernel``-wide window (clipped at the frame) of every pixel, each spatial axis.

    ``[B, K, *S] -> [B, K, *S]``. Pad with -inf once, then per axis windows of 1, 2, 4, ... pixels by
    doubling and one last maximum of two overlapping windows: a width-w window costs ``ceil(log2 w)``
    elementwise maxima per axis (a max-pooling call is tens of times slower on CPUs).
    """
    r = kernel // 2
    x = F.pad(x, [r, r] * (x.dim() - 2), value=-torch.inf)
    for axis in range(2, x.dim()):
        width = 1
        while 2 * width <= kernel:
            x = torch.maximum(
                x.narrow(axis, 0, x.shape[axis] - width), x.narrow(axis, width, x.shape[axis] - width)
            )
            width *= 2
        rest = kernel - width  # two width-w windows offset by kernel - w cover the kernel exactly
        if rest:
            x = torch.maximum(
                x.narrow(axis, 0, x.shape[axis] - rest), x.narrow(axis, rest, x.shape[axis] - rest)
            )
    return x


def _survivor_values(h: Tensor, nms_kernel: int, out: Tensor | None = None) -> Tensor:
    """``h`` where it is its window's maximum, a negative value elsewhere, in one elementwise pass.

    ``lerp(h, pooled, -max_float) = h - max_float * (pooled - h)``: window maxima have ``pooled == h`` and
    keep ``h``; any other pixel drops by ``max_float`` times at least one ulp of its value, below 0 (or to
    -inf). So with a threshold >= 0 it never counts as a peak, and it never outranks the map's maximum.
    """
    return torch.lerp(h, window_max(h, nms_kernel), -torch.finfo(h.dtype).max, out=out)


def _block_max(sv: Tensor, block: int) -> Tensor:
    """Maximum over non-overlapping ``block``^n cubes (-inf beyond the frame).
    ``[B, K, *S] -> [B, K, *ceil(S / block)]``."""
    pads = [p for size in reversed(sv.shape[2:]) for p in (0, -size % block)]
    x = F.pad(sv, pads, value=-torch.inf) if any(pads) else sv
    for axis in range(2, x.dim()):
        parts = [x.narrow(axis, i, x.shape[axis] - i) for i in range(block)]
        parts = [part[(slice(None),) * axis + (slice(None, None, block),)] for part in parts]
        x = parts[0]
        for part in parts[1:]:
            x = torch.maximum(x, part)
    return x


CHUNK = 128  # maps per pass on CPU: each pass's arrays then stay in the cache (~1.7x faster than one go)


def _block_candidates(h: Tensor, nms_kernel: int, block: int) -> tuple[Tensor, Tensor]:
    """``(sv, block maxima of sv)`` (:func:`_survivor_values`, :func:`_block_max`), chunk by chunk over
    the maps on CPU."""
    if not base.host_checks(h) or h.shape[0] * h.shape[1] <= CHUNK:
        sv = _survivor_values(h, nms_kernel)
        return sv, _block_max(sv, block)
    maps = h.reshape(-1, 1, *h.shape[2:])
    sv = torch.empty_like(maps)
    blocks = None
    for i in range(0, len(maps), CHUNK):
        part = _block_max(_survivor_values(maps[i : i + CHUNK], nms_kernel, out=sv[i : i + CHUNK]), block)
        if blocks is None:
            blocks = part.new_empty(len(maps), *part.shape[1:])
        blocks[i : i + CHUNK] = part
    return sv.reshape(h.shape), blocks.reshape(*h.shape[:2], *blocks.shape[2:])


def _top(values: Tensor, p: int) -> tuple[Tensor, Tensor]:
    """The ``p`` largest of ``values [B, K, N]`` (p <= N), descending: ``(values, index)``, each
    ``[B, K, p]`` (the order of equal values is left open: ties are settled by the exact path).

    On CPU, p passes of numpy's argmax beat ``torch.topk`` several-fold for the small p used here.
    """
    if not base.host_checks(values) or values.dtype not in (torch.float32, torch.float64):
        return values.topk(p, dim=-1)
    work = values.reshape(-1, values.shape[-1]).numpy().copy()
    rows = np.arange(len(work))
    index = np.empty((len(work), p), dtype=np.int64)
    top = np.empty((len(work), p), dtype=work.dtype)
    for j in range(p):
        index[:, j] = best = np.argmax(work, axis=-1)
        top[:, j] = work[rows, best]
        work[rows, best] = -np.inf
    shape = (*values.shape[:-1], p)
    return torch.from_numpy(top).reshape(shape), torch.from_numpy(index).reshape(shape)


def _pad_slots(values: Tensor, index: Tensor, max_peaks: int) -> tuple[Tensor, Tensor]:
    """Pad ``[..., take]`` candidates to ``max_peaks`` slots with -inf values (maps smaller than P)."""
    missing = max_peaks - values.shape[-1]
    if missing > 0:
        values = F.pad(values, (0, missing), value=-torch.inf)
        index = F.pad(index, (0, missing), value=0)
    return values, index


def _block_steps(spatial: tuple[int, ...], block: int, device: torch.device) -> Tensor:
    """``[block^n]`` flat-index offsets of a block's pixels from its first corner, in flat order."""
    offsets = torch.zeros(1, dtype=torch.long)
    for step in reversed(axis_steps(spatial)):  # slowest axis first keeps the flat order
        offsets = (offsets[:, None] + torch.arange(block) * step).flatten()
    return offsets.to(device)


def _fast_candidates(h: Tensor, max_peaks: int, nms_kernel: int) -> tuple[Tensor, Tensor]:
    """Top ``P`` peaks per map via block maxima: ``(values [B, K, P], flat index [B, K, P])``, strongest
    first. Exact unless two chosen values are equal (:func:`_has_ties`; the exact path then decides).
    Slots beyond the number of peaks hold negative or -inf values."""
    spatial = tuple(h.shape[2:])
    n = len(spatial)
    block = nms_kernel // 2 + 1
    sv, blocks = _block_candidates(h, nms_kernel, block)
    grid = tuple(blocks.shape[2:])
    values, chosen = _top(blocks.flatten(2), min(max_peaks, blocks[0, 0].numel()))
    # The pixel holding each chosen block's maximum: the first of its pixels equal to it. Index work
    # stays on [B, K, P] (integer tensor ops are slow on CPUs); one add makes the block's pixels.
    corner = unravel(chosen, grid) * block
    index = ravel(corner, spatial)[..., None] + _block_steps(spatial, block, h.device)
    if any(s % block for s in spatial):  # blocks sticking out of the frame: read their corner instead
        limits = torch.tensor(list(reversed(spatial)), device=h.device)
        within = unravel(torch.arange(block**n, device=h.device), (block,) * n)  # same order, as (x, y[, z])
        out = (corner[..., None, :] + within >= limits).any(-1)
        index = torch.where(out, index[..., :1], index)
    b, k, p, m = index.shape
    pixels = sv.flatten(2).gather(-1, index.reshape(b, k, p * m)).reshape(b, k, p, m)
    first = (pixels == values[..., None]).int().argmax(-1, keepdim=True)
    return _pad_slots(values, index.gather(-1, first)[..., 0], max_peaks)


def _merge_equal_peaks(peaks: Tensor, nms_kernel: int) -> Tensor:
    """Keep one pixel per group of window maxima linked by Chebyshev distance <= nms_kernel // 2 (their
    values are equal), the first in flat order. The minimum flat index is propagated through each group,
    (longest chain) + 1 times.

    Args:
        peaks: ``[B, K, *S]`` bool, the window maxima.

    Returns:
        ``[B, K, *S]`` bool, a subset of ``peaks``.
    """
    spatial = peaks.shape[2:]
    n_pix = peaks[0, 0].numel() if peaks.numel() else 0
    # float64 holds every flat index exactly, and the window maximum needs a floating type.
    own = torch.arange(n_pix, device=peaks.device, dtype=torch.float64).reshape(spatial).expand(peaks.shape)
    big = torch.full_like(own, float(n_pix))
    label = torch.where(peaks, own, big)
    while True:
        new = torch.where(peaks, -window_max(-label, nms_kernel), big)
        if torch.equal(new, label):
            break
        label = new
    return peaks & (label == own)


def exact_candidates(h: Tensor, max_peaks: int, nms_kernel: int) -> tuple[Tensor, Tensor]:
    """The definition, computed directly: window maxima, one per plateau, top ``P`` over the whole map.

    Same output as the fast path (:func:`_fast_candidates` plus the plateau check); used for the maps the
    plateau check flags, and by the tests as the reference.
    """
    peaks = _merge_equal_peaks(window_max(h, nms_kernel) == h, nms_kernel)
    flat = torch.where(peaks, h, -torch.inf).flatten(2)
    values, index = flat.sort(dim=-1, descending=True, stable=True)  # equal values: first in flat order
    return _pad_slots(values[..., :max_peaks], index[..., :max_peaks], max_peaks)


def _has_ties(values: Tensor, threshold: float) -> Tensor:
    """``[B, K]`` bool: two of the chosen ``values [B, K, P]`` (sorted) are equal where it matters: among
    the real peaks (above the threshold), or at slot 0 (which pixel is the map's maximum)."""
    equal = values[..., 1:] == values[..., :-1]
    matters = values[..., 1:] > threshold
    if matters.shape[-1]:
        matters[..., 0] |= values[..., 0] > -torch.inf
    return (equal & matters).any(-1)


MODULATIONS = ("none", "peaks", "map")


def multipeak_decode(
    heatmaps: Tensor,
    max_peaks: int = 20,
    threshold: float = 0.1,
    nms_kernel: int = 5,
    modulation: str = "none",
    kernel: int = 11,
    refine: bool = True,
) -> tuple[Tensor, Tensor]:
    """Up to ``max_peaks`` local maxima per channel, strongest first.

    A peak is a pixel above ``threshold`` that equals the maximum of its ``nms_kernel`` window, one per
    plateau; it is refined with DARK's Taylor step (border rule included).

    Args:
        heatmaps: ``[B, K, H, W]`` or ``[B, K, D, H, W]``.
        max_peaks: P >= 1, the length of the peak axis.
        threshold: minimum peak value (strict), >= 0.
        nms_kernel: odd NMS window width >= 3; window maxima closer than its radius are one peak.
        modulation: where DARK's Gaussian modulation (width ``kernel``) applies. ``"none"``: nowhere, peaks
            are found and refined on the map as it is. ``"peaks"``: around each peak for its refinement
            only, as single-peak DARK does. ``"map"``: the blog seed's order, the whole map is modulated
            first (:func:`heatlit.codecs.blur.separable_blur`, zero outside the frame, as DARK's reference) and the peaks are found,
            scored, thresholded and refined on it; peak values drop (a sigma-2 target blurred at sigma 2
            peaks at 0.5), and the threshold applies to the modulated values.
        kernel: odd modulation width (the reference's 11).
        refine: False returns the integer peaks.

    Returns:
        ``coords [B, K, P, n]`` and ``scores [B, K, P]``. Real peaks have score = their value (> 0);
        the slots after them are padding with score 0 and the coordinate of slot 0. If a map has no
        peak above the threshold, slot 0 holds its refined maximum with score 0, so ``coords[:, :, 0]``
        is always a single-peak answer; a flat map gives the frame centre, as every decoder does.
    """
    max_peaks, nms_kernel, kernel = _check_options(max_peaks, threshold, nms_kernel, modulation, kernel)
    h, spatial = check_heatmaps(heatmaps, "multipeak")
    b, k = h.shape[:2]
    n = len(spatial)
    if h.numel() == 0:
        return h.new_zeros(b, k, max_peaks, n), h.new_zeros(b, k, max_peaks)
    host = base.host_checks(h) and h.dtype in (torch.float32, torch.float64)
    found = None
    if host and modulation != "map":  # the search checks finiteness on the way (None: a non-finite value)
        found = host_candidates(h.detach(), max_peaks, threshold, nms_kernel, refine and modulation == "none")
    if found is None:
        h, _ = prepare_heatmaps(h, "multipeak")
        if modulation == "map":
            h = separable_blur(h, n, kernel, border="zeros")
        if host:
            found = host_candidates(
                h.detach(), max_peaks, threshold, nms_kernel, refine and modulation != "peaks"
            )
    patches = None  # the refinement's patches, when the candidate search reads them on the way
    if found is not None:
        values, index, ints, no_peak, redo, patches = found
    else:
        # one slot more than asked: a tie with the first peak left out decides which of the two is kept
        values, index = _fast_candidates(h, max_peaks + 1, nms_kernel)
        no_peak = h.flatten(2).amin(-1) == values[..., 0]  # slot 0 is the map's maximum: a flat map
        redo = _has_ties(values, threshold) & ~no_peak  # a flat map's answer needs no peak
        values, index = values[..., :max_peaks], index[..., :max_peaks]
        ints = unravel(index, spatial)
    if bool(redo.any()):  # the one host sync: exact ties are rare in real outputs
        bi, ki = redo.nonzero(as_tuple=True)
        redone = h[bi, ki][:, None]
        v, i = exact_candidates(redone, max_peaks, nms_kernel)
        values, index = values.index_put((bi, ki), v[:, 0]), index.index_put((bi, ki), i[:, 0])
        ints = ints.index_put((bi, ki), unravel(i[:, 0], spatial))
        no_peak = no_peak.index_put((bi, ki), redone.flatten(1).amin(-1) == v[:, 0, 0])
        if patches is not None:  # the redone peaks' patches
            patches[bi, ki] = patch_values(redone.flatten(2), spatial, ints[bi, ki][:, None], 1, True)[:, 0]
    if refine:
        coords = dark_refine(h, spatial, ints, kernel if modulation == "peaks" else 1, patches=patches)
    else:
        coords = ints.to(h.dtype)
    coords = clamp_to_frame(coords, spatial)
    real = (values > threshold) & ~no_peak[..., None]
    coords = torch.where(real[..., None], coords, coords[:, :, :1])
    coords = torch.where(no_peak[..., None, None], frame_centre(spatial, coords), coords)
    return coords, torch.where(real, values, 0)


def _check_options(max_peaks, threshold, nms_kernel, modulation, kernel) -> tuple[int, int, int]:
    if int(max_peaks) != max_peaks or max_peaks < 1:
        raise ValueError(f"max_peaks must be a positive integer, got {max_peaks}")
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0 (scores of real peaks are positive), got {threshold}")
    if check_kernel(nms_kernel, "nms_kernel") < 3:  # width 1 suppresses nothing: every pixel would be a peak
        raise ValueError(f"nms_kernel must be an odd integer >= 3, got {nms_kernel}")
    if modulation not in MODULATIONS:
        raise ValueError(f"modulation must be one of {MODULATIONS}, got {modulation!r}")
    return int(max_peaks), int(nms_kernel), check_kernel(kernel)


class MultiPeakDecoder(Decoder):
    """``decoder(heatmaps) -> (coords [B, K, P, n], scores [B, K, P])``; see :func:`multipeak_decode`."""

    fn = staticmethod(multipeak_decode)

    def __init__(
        self,
        max_peaks: int = 20,
        threshold: float = 0.1,
        nms_kernel: int = 5,
        modulation: str = "none",
        kernel: int = 11,
        refine: bool = True,
    ) -> None:
        max_peaks, nms_kernel, kernel = _check_options(max_peaks, threshold, nms_kernel, modulation, kernel)
        super().__init__(
            max_peaks=max_peaks,
            threshold=float(threshold),
            nms_kernel=nms_kernel,
            modulation=modulation,
            kernel=kernel,
            refine=bool(refine),
        )
