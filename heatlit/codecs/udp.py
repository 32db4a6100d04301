"""UDP, unbiased data processing (Huang et al. 2020): its input->heatmap transform and its offset-map target.

Design note.

**The transform.** UDP measures an image by the distance between its first and last pixel centres ("unit
length": ``W - 1``, not ``W``) and maps input to heatmap pixels by ``x_hm = x_in (W_hm - 1) / (W_in - 1)``:
first and last pixel *centres* coincide. heatlit maps pixel *extents* instead
(:func:`heatlit.codecs.to_heatmap`: ``x_hm = (x_in + 0.5) / s - 0.5``, ``W_hm = W_in / s``). Both put pixel
centres at integers, both are flip-consistent (``x -> W - 1 - x`` in either space), and both agree at the
frame centre. With ``W_hm = W_in / s`` the difference is linear in x::

    udp(x) - heatlit(x) = (s - 1) / (2 s) * (1 - 2 x / (W_in - 1))     [heatmap px]

so it is zero at the centre and largest at the first/last input pixel centre, ``+-(s - 1) / (2 s)`` heatmap
px = ``+-(s - 1) / 2`` input px: **0.375 heatmap px (1.5 input px) at stride 4, 0.4375 (3.5 input px) at
stride 8**, independent of the image size. UDP's heatmap scale is ``(W_hm - 1) / (W_in - 1)``, slightly
less than ``1 / s``. :func:`udp_to_heatmap` / :func:`udp_to_input` are that transform as pure functions;
the heatmap grid takes it as its ``udp`` mapping (``data.grid_mapping=udp``,
:class:`heatlit.codecs.grid.UnitLength`). UDP also crops the input with unit length (a box of width
``b`` scaled by ``(W_in - 1) / b``, heatlit by ``W_in / b``): a 0.6 % zoom at ``W_in = 160``, not a bias,
because ``to_image`` inverts whichever crop was made; heatlit keeps its crop under either mapping.

**The combined target** (UDP's "combined" heatmap type): per keypoint a binary classification map, 1 on
the pixels within ``radius`` of the keypoint (``radius = radius_factor * max(size)``, 3.5 px on a 64x48 map
for the reference's 0.0546875), and n offset maps holding ``(keypoint - pixel) / radius`` on those pixels,
0 elsewhere. Layout ``[B, K, 1 + n, *S]``: channel 0 the classification, 1..n the (x, y[, z]) offsets; a
head that emits ``[B, K * (1 + n), *S]`` maps onto it with ``view`` (keypoint-major, as the reference
interleaves its channels). Weight 0 for invisible or non-finite keypoints and where no pixel lies within
the radius (the keypoint is off the frame).

**Decoding** (the reference's): blur the classification map with a ``cls_kernel``-wide Gaussian (the
reference uses ``2 * 11 + 1 = 23``) and the offsets with ``offset_kernel`` (11), both with OpenCV's
reflecting border; take the argmax p of the blurred classification and return ``p + radius * offset(p)``.
Two properties of that reference decoder show on noise-free targets (measured in the tests, 64x48 maps,
radius 3.5): blurring the offsets averages a field that is zero outside the disk, which shrinks the offset
towards p (mean 0.19 px, max 0.46 px away from the borders); and the reflecting border folds the disk
back into the frame, so near a corner the blurred classification peaks *on* the corner, outside the disk,
where the offset is 0 (errors up to 4 px). ``border="zeros", offset_kernel=1`` (the ``udp_offset_raw``
decoder) avoids both and returns noise-free keypoints exactly. 2D and 3D.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from heatlit.codecs.base import check_heatmaps, finish_frame, sanitize
from heatlit.codecs.blur import BORDERS, check_kernel, separable_blur
from heatlit.codecs.codec import Codec, DecodesWhenCalled, check_keypoints
from heatlit.codecs.coords import axis_grids, unravel

Tensor = torch.Tensor

RADIUS_FACTOR = 0.0546875  # the reference's: 3.5 px on a 64-pixel axis


def _sizes(input_size: Sequence[int], heatmap_size: Sequence[int]) -> tuple[list[int], list[int]]:
    ins, outs = [int(s) for s in input_size], [int(s) for s in heatmap_size]
    if len(ins) != 2 or len(outs) != 2 or min(ins + outs) < 2:
        raise ValueError(
            f"UDP transform: input_size and heatmap_size must be (H, W) with every side >= 2 (a unit length "
            f"needs two pixel centres), got {tuple(input_size)} and {tuple(heatmap_size)}"
        )
    return ins[::-1], outs[::-1]  # (W, H): the coordinate order


def udp_to_heatmap(coords: Tensor, input_size: Sequence[int], heatmap_size: Sequence[int]) -> Tensor:
    """UDP's input -> heatmap mapping, ``x_hm = x_in (W_hm - 1) / (W_in - 1)`` per axis.

    Args:
        coords: ``[..., m]`` with m >= 2: (x, y) input px, pixel centres at integers; columns beyond the
            second (a depth coordinate) pass through unchanged.
        input_size, heatmap_size: ``(H, W)`` each, every side >= 2.

    Returns:
        ``[..., m]`` heatmap px. Differs from :func:`heatlit.codecs.to_heatmap` by
        ``(s - 1) / (2 s) * (1 - 2 x / (W_in - 1))`` heatmap px per axis when ``W_hm = W_in / s`` (module
        docstring): 0 at the frame centre, +-0.375 px at stride 4 and +-0.4375 px at stride 8 at the edges.
    """
    ins, outs = _sizes(input_size, heatmap_size)
    scale = torch.tensor(
        [(o - 1) / (i - 1) for i, o in zip(ins, outs)], dtype=coords.dtype, device=coords.device
    )
    return torch.cat([coords[..., :2] * scale, coords[..., 2:]], -1)


def udp_to_input(coords: Tensor, input_size: Sequence[int], heatmap_size: Sequence[int]) -> Tensor:
    """Inverse of :func:`udp_to_heatmap`: ``[..., m]`` heatmap px -> ``[..., m]`` input px."""
    ins, outs = _sizes(input_size, heatmap_size)
    scale = torch.tensor(
        [(i - 1) / (o - 1) for i, o in zip(ins, outs)], dtype=coords.dtype, device=coords.device
    )
    return torch.cat([coords[..., :2] * scale, coords[..., 2:]], -1)


def udp_radius(
    size: Sequence[int], radius: float | None = None, radius_factor: float = RADIUS_FACTOR
) -> float:
    """The classification radius in pixels: ``radius``, or ``radius_factor * max(size)``.

    Must be at least ``sqrt(n) / 2`` (n = len(size)) so that every point of the frame has a pixel centre
    within the radius; smaller radii would leave in-frame keypoints without a target.
    """
    r = float(radius) if radius is not None else float(radius_factor) * max(int(s) for s in size)
    if not (math.isfinite(r) and r >= math.sqrt(len(size)) / 2):
        raise ValueError(
            f"UDP radius {r:.4g} px (size {tuple(size)}) must be >= sqrt(n)/2 = {math.sqrt(len(size)) / 2:.3f} "
            "px so that every keypoint covers a pixel; raise radius or radius_factor"
        )
    return r


def udp_offset_maps(
    keypoints: Tensor,
    visible: Tensor,
    heatmap_size: Sequence[int],
    radius: float | None = None,
    radius_factor: float = RADIUS_FACTOR,
) -> tuple[Tensor, Tensor]:
    """UDP's combined classification + offset target.

    Args:
        keypoints: ``[B, K, n]`` (x, y[, z]) heatmap px, pixel centres at integers.
        visible: ``[B, K]`` bool or 0/1.
        heatmap_size: ``(H, W)`` or ``(D, H, W)``.
        radius / radius_factor: see :func:`udp_radius`.

    Returns:
        ``targets [B, K, 1 + n, *heatmap_size]`` float32: channel 0 is 1 within ``radius`` of the keypoint
        (distance <= radius) and 0 elsewhere, channel 1 + a holds ``(keypoint_a - pixel_a) / radius`` on
        those pixels and 0 elsewhere; ``weights [B, K]`` float32 (0 gives all-zero maps).
    """
    kp, usable, size = check_keypoints(keypoints, visible, heatmap_size, "udp_offset_maps")
    r = udp_radius(size, radius, radius_factor)
    n = len(size)
    # Per-axis (keypoint - pixel) / r, broadcast to the full map: axis a runs over spatial dim n - 1 - a.
    offsets = []
    for axis, grid in enumerate(axis_grids(size, kp.device)):
        d = (kp[..., axis, None] - grid) / r  # [B, K, S_a]
        offsets.append(d.reshape(*d.shape[:2], *[-1 if dim == n - 1 - axis else 1 for dim in range(n)]))
    inside = sum(o * o for o in offsets) <= 1.0  # [B, K, *S]
    weights = usable & inside.flatten(2).any(-1)
    cls = (inside & weights.reshape(*weights.shape, *([1] * n))).float()
    targets = torch.stack([cls, *(o * cls for o in offsets)], 2)
    return targets, weights.float()


def udp_offset_decode(
    maps: Tensor,
    radius: float | None = None,
    radius_factor: float = RADIUS_FACTOR,
    cls_kernel: int = 23,
    offset_kernel: int = 11,
    border: str = "reflect",
) -> tuple[Tensor, Tensor]:
    """Decode the combined target: argmax of the (blurred) classification, plus the offset read there.

    Args:
        maps: ``[B, K, 1 + n, H, W]`` or ``[B, K, 1 + n, D, H, W]`` (channel 0 classification, then the x, y[, z]
            offsets in units of the radius); non-finite classification values count as the map's minimum,
            non-finite offsets as 0.
        radius / radius_factor: as used for encoding (:func:`udp_radius` of the map size).
        cls_kernel / offset_kernel: odd Gaussian blur widths (OpenCV's sigma rule); 1 skips the blur. The
            reference uses 23 and 11.
        border: ``"reflect"`` (the reference's, OpenCV's default) or ``"zeros"``; see the module docstring.

    Returns:
        ``coords [B, K, n]`` heatmap px inside the frame; ``scores [B, K]`` the blurred classification
        maximum clamped at 0 (a flat classification map: score 0 and the frame centre).
    """
    maps, spatial = check_heatmaps(maps, "udp_offset_decode", extra=1)
    n = len(spatial)
    if maps.shape[2] != 1 + n:
        raise ValueError(
            f"udp_offset_decode: {n}D maps need 1 + {n} channels per keypoint (classification, then offsets), "
            f"got {maps.shape[2]} in shape {list(maps.shape)}"
        )
    r = udp_radius(spatial, radius, radius_factor)
    cls = sanitize(maps[:, :, 0])
    unblurred = cls.flatten(2)  # a flat map is judged before the blur: a zero border bends it
    no_peak = unblurred.amax(-1) == unblurred.amin(-1)
    offsets = torch.nan_to_num(maps[:, :, 1:], nan=0.0, posinf=0.0, neginf=0.0)
    if check_kernel(cls_kernel, "cls_kernel") > 1:
        cls = separable_blur(cls, n, cls_kernel, border=border)
    if check_kernel(offset_kernel, "offset_kernel") > 1:
        offsets = separable_blur(offsets, n, offset_kernel, border=border)

    flat = cls.flatten(2)
    index = flat.argmax(-1)  # [B, K]
    maxval = flat.gather(-1, index[..., None])[..., 0]
    at_peak = offsets.flatten(3).gather(-1, index[:, :, None, None].expand(-1, -1, n, 1))[..., 0]  # [B, K, n]
    coords = unravel(index, spatial).to(cls.dtype) + r * at_peak
    return finish_frame(coords, maxval, no_peak, spatial)


class UDPOffsetCodec(Codec):
    """UDP's combined representation: ``encode`` = :func:`udp_offset_maps`, ``decode`` = :func:`udp_offset_decode`.

    Called, it encodes: ``(keypoints[B, K, n], visible, heatmap_size) -> (targets[B, K, 1 + n, *S], weights)``.
    """

    output_kind = "udp_offset"

    def __init__(
        self,
        radius: float | None = None,
        radius_factor: float = RADIUS_FACTOR,
        cls_kernel: int = 23,
        offset_kernel: int = 11,
        border: str = "reflect",
    ) -> None:
        if radius is not None:
            udp_radius((2, 2), radius)  # the size-free part of the check
        check_kernel(cls_kernel, "cls_kernel")
        check_kernel(offset_kernel, "offset_kernel")
        if border not in BORDERS:
            raise ValueError(f"UDPOffsetCodec: border must be one of {BORDERS}, got {border!r}")
        super().__init__(
            radius=radius,
            radius_factor=radius_factor,
            cls_kernel=cls_kernel,
            offset_kernel=offset_kernel,
            border=border,
        )

    def encode(
        self, keypoints: Tensor, visible: Tensor, heatmap_size: Sequence[int]
    ) -> tuple[Tensor, Tensor]:
        o = self.options
        return udp_offset_maps(keypoints, visible, heatmap_size, o["radius"], o["radius_factor"])

    def decode(self, maps: Tensor) -> tuple[Tensor, Tensor]:
        return udp_offset_decode(maps, **self.options)


class UDPOffsetDecoder(DecodesWhenCalled, UDPOffsetCodec):
    """:class:`UDPOffsetCodec` that decodes when called (``conf/decoder/udp_offset*.yaml``)."""
