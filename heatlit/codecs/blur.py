"""Whole-map separable Gaussian blur, as OpenCV's ``GaussianBlur`` computes it, written as small matrices.

Design: a 1D "same" filter over an axis of length S is a fixed ``[S, S]`` matrix (border handling
included), so an n-D separable blur is n matrix products and the blur of a one-hot impulse is one column
of that matrix. The MSPN/Megvii encoder uses the columns (an exact impulse blur with OpenCV's default
border, no map is ever filled), the MSPN and UDP decoders the products. Heatmaps are small (tens of pixels
per axis), so the dense matrices cost less than a convolution call and are cached per size.

Shapes: maps ``[..., *S]`` with the last ``ndim`` axes spatial; coordinate convention of
:mod:`heatlit.codecs` (axis -1 is x).
"""

from __future__ import annotations

import functools

import torch

Tensor = torch.Tensor

BORDERS = ("reflect", "zeros")


def opencv_sigma(kernel: int) -> float:
    """OpenCV's standard deviation for ``sigma=0`` and an odd ``kernel`` width: ``0.3 ((k - 1) / 2 - 1) + 0.8``.

    2.0 for 11, 3.8 for 23: the values the MSPN and UDP reference codes rely on.
    """
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


def check_kernel(kernel: int, name: str = "kernel") -> int:
    """A positive odd integer blur width, or a ValueError naming it."""
    if isinstance(kernel, bool) or int(kernel) != kernel or kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"{name} must be a positive odd integer, got {kernel!r}")
    return int(kernel)


def gaussian_kernel1d(kernel: int, sigma: float | None = None, dtype=torch.float64) -> Tensor:
    """``[kernel]`` sampled Gaussian summing to 1; ``sigma=None`` uses :func:`opencv_sigma`."""
    kernel = check_kernel(kernel)
    sigma = opencv_sigma(kernel) if sigma is None else float(sigma)
    if not sigma > 0:
        raise ValueError(f"blur sigma must be > 0, got {sigma}")
    t = torch.arange(kernel, dtype=torch.float64) - (kernel - 1) / 2
    g = torch.exp(-(t * t) / (2 * sigma * sigma))
    return (g / g.sum()).to(dtype)


@functools.lru_cache(maxsize=128)
def blur_matrix(
    size: int, kernel: int, sigma: float | None, border: str, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """``[size, size]`` matrix M of a 1D Gaussian "same" filter: ``blurred = M @ signal``.

    ``M[i, m]`` is the weight of input sample m in output sample i. Borders:

    - ``"reflect"``: OpenCV's default ``BORDER_REFLECT_101`` (``...c b | a b c d | c b...``, the edge
      sample is not repeated), applied as often as the kernel needs on short axes.
    - ``"zeros"``: samples outside the axis count as 0 (the DARK reference's zero-padded blur).

    The returned tensor is cached and shared: never modify it in place.
    """
    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
    g = gaussian_kernel1d(kernel, sigma)
    radius = (kernel - 1) // 2
    rows = torch.arange(size)[:, None].expand(size, kernel)
    source = rows + torch.arange(-radius, radius + 1)[None, :]
    weight = g[None, :].expand(size, kernel).clone()
    if border == "reflect":
        period = max(2 * (size - 1), 1)
        source = source % period
        source = torch.where(source >= size, period - source, source)
    else:
        weight = weight * ((source >= 0) & (source < size))
        source = source.clamp(0, size - 1)
    m = torch.zeros(size, size, dtype=torch.float64)
    m.index_put_((rows.reshape(-1), source.reshape(-1)), weight.reshape(-1), accumulate=True)
    return m.to(dtype=dtype, device=device)


def separable_blur(
    maps: Tensor, ndim: int, kernel: int, sigma: float | None = None, border: str = "zeros"
) -> Tensor:
    """Blur the last ``ndim`` axes of ``maps [..., *S]`` with a ``kernel``-wide Gaussian (one pass per axis).

    Equals ``cv2.GaussianBlur(map, (k, k), sigma)`` per 2D map for ``border="reflect"`` and
    ``sigma=None``. Returns a new tensor of the same shape and dtype; differentiable. Accumulates in
    float64: a map symmetric about a pixel then stays exactly symmetric once rounded back, which matters
    to decoders that step towards the higher neighbour (a one-ulp difference would decide the step).
    """
    dtype = maps.dtype if maps.is_floating_point() else torch.float32
    out = maps.double()
    for axis in range(1, ndim + 1):
        size = maps.shape[-axis]
        m = blur_matrix(size, check_kernel(kernel), sigma, border, torch.float64, maps.device)
        out = torch.movedim(torch.movedim(out, -axis, -1) @ m.T, -1, -axis)
    return out.to(dtype)
