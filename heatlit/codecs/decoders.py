"""Single-peak decoders: heatmaps ``[B, K, H, W]`` or ``[B, K, D, H, W]`` -> ``coords [B, K, n]``, ``scores [B, K]``.

Shapes and coordinate convention: see :mod:`heatlit.codecs`. Every decoder here shares the bad-input
policy and the score of :mod:`heatlit.codecs.base`. DARK has its own module, :mod:`heatlit.codecs.dark`.
"""

from __future__ import annotations

import functools

import torch

from heatlit.codecs.base import Decoder, Peaks, axis_steps, find_peaks, finish, prepare_heatmaps
from heatlit.codecs.coords import axis_grids, unravel
from heatlit.codecs.patches import gather_patches

Tensor = torch.Tensor


def argmax_decode(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Integer location of the maximum. ``[B, K, *S] -> coords [B, K, n], scores [B, K]``."""
    peaks = find_peaks(heatmaps, "argmax")
    return finish(peaks.ints.to(peaks.maps.dtype), peaks)


STANDARD_RULES = ("per_axis", "hrnet")


def standard_decode(heatmaps: Tensor, shift: float = 0.25, rule: str = "per_axis") -> tuple[Tensor, Tensor]:
    """Argmax plus ``shift`` pixels towards the higher neighbour on each axis (Newell et al.; HRNet).

    The shift on an axis is ``shift * sign(h[p + 1] - h[p - 1])`` (0 when the neighbours are equal).
    Where it applies:

    * ``rule="per_axis"`` (default): on every axis whose two neighbours lie inside the frame
      (``0 < p < S - 1``), independently of the other axes.
    * ``rule="hrnet"``: HRNet's reference code exactly, ``if 1 < px < W - 1 and 1 < py < H - 1`` (and
      ``1 < pz < D - 1`` in 3D): all axes shift, or none. The margin is asymmetric (2 px at the low
      edge, 1 px at the high one).

    ``[B, K, *S] -> coords [B, K, n], scores [B, K]``.
    """
    if rule not in STANDARD_RULES:
        raise ValueError(f"standard rule must be one of {STANDARD_RULES}, got {rule!r}")
    peaks = find_peaks(heatmaps, "standard")
    flat, spatial, index, ints = peaks.flat, peaks.spatial, peaks.index, peaks.ints
    sizes = torch.tensor(list(reversed(spatial)), device=ints.device)
    if rule == "per_axis":
        applies = (ints > 0) & (ints < sizes - 1)
    else:
        applies = ((ints > 1) & (ints < sizes - 1)).all(-1, keepdim=True).expand_as(ints)
    n_pix = flat.shape[-1]
    signs = []
    for step in axis_steps(spatial):
        hi = flat.gather(-1, (index + step).clamp(max=n_pix - 1)[..., None])[..., 0]
        lo = flat.gather(-1, (index - step).clamp(min=0)[..., None])[..., 0]
        signs.append(torch.sign(hi - lo))
    offsets = torch.where(applies, shift * torch.stack(signs, -1), 0)
    return finish(ints.to(flat.dtype) + offsets, peaks)


@functools.lru_cache(maxsize=16)
def _pixel_positions(spatial: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """``[N, n]`` (x, y[, z]) of every flat index."""
    n_pix = 1
    for s in spatial:
        n_pix *= s
    return unravel(torch.arange(n_pix, device=device), spatial).to(dtype)


def standard_top2_decode(heatmaps: Tensor, shift: float = 0.25) -> tuple[Tensor, Tensor]:
    """The reproduction's Standard decoder (its eq. 2): ``p = m + shift (s - m) / ||s - m||_2``.

    ``m`` is the maximum pixel and ``s`` the second-highest pixel of the whole map (top-2 over the map,
    as the reproduction's kit computes it; ``s`` need not be a neighbour of ``m``). Degenerate cases:

    * ties for the maximum: ``m`` is the first in flat order (as argmax), and the other maximal pixels
      are the second-highest, so ``s`` is among them;
    * ties for ``s`` (several pixels share the second-highest value): ``s`` is their centroid, so a
      symmetric tie (a quantised Gaussian centred on a pixel: four equal neighbours) has no direction;
    * ``s == m`` (that centroid is ``m`` itself, or a one-pixel map): no shift;
    * a flat map: the frame centre and score 0, as for every decoder.

    ``[B, K, *S] -> coords [B, K, n], scores [B, K]``.
    """
    peaks = find_peaks(heatmaps, "standard_top2")
    flat, index = peaks.flat, peaks.index
    others = flat.scatter(-1, index[..., None], -torch.inf)
    second = others.amax(-1, keepdim=True)
    tied = (others == second).to(flat.dtype)  # a one-pixel map ties its own -inf: centroid m, no shift
    centroid = (tied @ _pixel_positions(peaks.spatial, flat.dtype, flat.device)) / tied.sum(-1, keepdim=True)
    m = peaks.ints.to(flat.dtype)
    d = centroid - m
    norm = d.norm(dim=-1, keepdim=True)
    step = torch.where(norm > 0, shift * d / torch.where(norm > 0, norm, 1), 0)
    return finish(m + step, peaks)


def _marginals(peaks: Peaks, radius: int | None, name: str) -> tuple[list[Tensor], Tensor]:
    """Marginal mass of the positive part per axis, over the whole map or the argmax's window.

    Returns ``([m_x [B, K, L_x], m_y, (m_z)], origin [B, K, n])``: entry i of axis a sits at coordinate
    ``origin_a + i`` (origin 0 for the whole map).
    """
    h, spatial, ints = peaks.maps, peaks.spatial, peaks.ints
    if radius is None:
        w, origin = h.clamp(min=0), torch.zeros_like(ints)
    else:
        if int(radius) != radius or radius < 0:
            raise ValueError(f"{name} radius must be a non-negative integer or None, got {radius}")
        r = int(radius)
        values, _, _ = gather_patches(peaks.flat, spatial, ints[:, :, None], r)
        w = values[:, :, 0].clamp(min=0).reshape(*ints.shape[:2], *([2 * r + 1] * len(spatial)))
        origin = ints - r
    n = len(spatial)
    sums = [w.sum([2 + d for d in range(n) if d != n - 1 - axis]) for axis in range(n)]
    return sums, origin


def com_decode(heatmaps: Tensor, radius: int | None = None) -> tuple[Tensor, Tensor]:
    """Centre of mass of the positive part of the map.

    Args:
        heatmaps: ``[B, K, *S]``.
        radius: None uses the whole map; r >= 0 uses the ``(2r+1)^n`` window around the argmax (which
            keeps far-away background from pulling the estimate to the frame centre).

    Returns:
        ``coords [B, K, n]``, ``scores [B, K]``; a map with no positive mass falls back to its argmax.
    """
    peaks = find_peaks(heatmaps, "com")
    sums, origin = _marginals(peaks, radius, "com")
    dtype = peaks.maps.dtype
    mass = sums[0].sum(-1)
    grids = [torch.arange(m.shape[-1], device=m.device, dtype=dtype) for m in sums]
    weighted = torch.stack([(m * g).sum(-1) for m, g in zip(sums, grids)], -1)
    has_mass = mass > 0
    centre = weighted / torch.where(has_mass, mass, 1)[..., None] + origin
    return finish(torch.where(has_mass[..., None], centre, peaks.ints.to(dtype)), peaks)


def _lower_median(mass: Tensor) -> Tensor:
    """Smallest t with half the mass of ``mass [..., L]`` (float64, total > 0) below it, each pixel's mass
    spread uniformly over ``[i - 0.5, i + 0.5]``. ``[..., L] -> [...]``.

    The cumulative mass is piecewise linear, so t is exact: in the first pixel whose cumulative mass
    reaches half the total, at the fraction of that pixel's own mass still needed.
    """
    cum = mass.cumsum(-1)
    half = cum[..., -1:] / 2
    i = (cum < half).sum(-1, keepdim=True).clamp(max=mass.shape[-1] - 1)
    before = torch.where(i > 0, cum.gather(-1, (i - 1).clamp(min=0)), 0)
    own = mass.gather(-1, i)
    return (i - 0.5 + ((half - before) / torch.where(own > 0, own, 1)).clamp(0, 1))[..., 0]


def _continuous_median(mass: Tensor) -> tuple[Tensor, Tensor]:
    """Median of a 1D mass ``[..., L]``: ``(median [...], has_mass [...] bool)``.

    Where the cumulative mass stays at one half over a gap (mass on both sides, none between), the middle
    of the gap, so mirroring the map mirrors the answer.
    """
    m = mass.double()
    low = _lower_median(m)
    high = (mass.shape[-1] - 1) - _lower_median(m.flip(-1))
    return ((low + high) / 2).to(mass.dtype), m.sum(-1) > 0


def mom_decode(heatmaps: Tensor, radius: int | None = None) -> tuple[Tensor, Tensor]:
    """Median of mass: per axis, the median of the marginal mass of the positive part of the map.

    Each pixel's mass is spread uniformly over its extent, so the answer is continuous (a single pixel
    gives its centre; two equal neighbours the edge between them). Less pulled by a far-away blob than
    the centre of mass, which the reproduction names beside it (Tensmeyer and Martinez 2019).

    Args:
        heatmaps: ``[B, K, *S]``.
        radius: None uses the whole map; r >= 0 the ``(2r+1)^n`` window around the argmax (as com).

    Returns:
        ``coords [B, K, n]``, ``scores [B, K]``; a map with no positive mass falls back to its argmax.
    """
    peaks = find_peaks(heatmaps, "mom")
    sums, origin = _marginals(peaks, radius, "mom")
    medians, has_mass = zip(*(_continuous_median(m) for m in sums))
    centre = torch.stack(medians, -1) + origin
    return finish(torch.where(has_mass[0][..., None], centre, peaks.ints.to(centre.dtype)), peaks)


def soft_argmax(heatmaps: Tensor, beta: float = 1.0) -> tuple[Tensor, Tensor]:
    """Soft-argmax / integral regression: ``E[x]`` under ``softmax(beta * h)``; differentiable.

    The coordinates are a convex combination of pixel centres, so they are inside the frame by
    construction and are not clamped (clamping would cut the gradient).

    ``[B, K, *S] -> coords [B, K, n], scores [B, K]`` (scores carry no gradient).
    """
    if not beta > 0:
        raise ValueError(f"soft_argmax beta must be > 0, got {beta}")
    h, spatial = prepare_heatmaps(heatmaps, "soft_argmax")
    prob = torch.softmax(beta * h.flatten(2), -1).reshape(h.shape)
    coords = []
    for axis, grid in enumerate(axis_grids(spatial, h.device, h.dtype)):
        other = [2 + d for d in range(len(spatial)) if d != len(spatial) - 1 - axis]
        coords.append((prob.sum(other) * grid).sum(-1))
    flat = h.detach().flatten(2)
    maxval = flat.amax(-1)
    flat_map = flat.amin(-1) == maxval
    return torch.stack(coords, -1), torch.where(flat_map, torch.zeros_like(maxval), maxval.clamp(min=0))


class ArgmaxDecoder(Decoder):
    fn = staticmethod(argmax_decode)


class StandardDecoder(Decoder):
    fn = staticmethod(standard_decode)

    def __init__(self, shift: float = 0.25, rule: str = "per_axis") -> None:
        if rule not in STANDARD_RULES:
            raise ValueError(f"standard rule must be one of {STANDARD_RULES}, got {rule!r}")
        super().__init__(shift=shift, rule=rule)


class StandardTop2Decoder(Decoder):
    fn = staticmethod(standard_top2_decode)

    def __init__(self, shift: float = 0.25) -> None:
        super().__init__(shift=shift)


class CentreOfMassDecoder(Decoder):
    fn = staticmethod(com_decode)

    def __init__(self, radius: int | None = None) -> None:
        super().__init__(radius=radius)


class MedianOfMassDecoder(Decoder):
    fn = staticmethod(mom_decode)

    def __init__(self, radius: int | None = None) -> None:
        super().__init__(radius=radius)


class SoftArgmaxDecoder(Decoder):
    fn = staticmethod(soft_argmax)

    def __init__(self, beta: float = 1.0) -> None:
        if not beta > 0:
            raise ValueError(f"soft_argmax beta must be > 0, got {beta}")
        super().__init__(beta=beta)
