"""Coordinate codecs: ground-truth coordinates -> target heatmaps, predicted heatmaps -> coordinates.

Conventions (stated once here; every module of heatlit follows them)
----------------------------------------------------------------------
* Coordinates are ``(x, y)`` or ``(x, y, z)`` in pixels of the space named, **pixel centres at
  integers**: pixel ``(i, j)`` of a ``[H, W]`` map is the point ``x = j, y = i`` and covers
  ``[j - 0.5, j + 0.5) x [i - 0.5, i + 0.5)``. A map of width W spans ``[-0.5, W - 0.5]``.
* Heatmaps are ``[B, K, H, W]`` (2D) or ``[B, K, D, H, W]`` (3D volumes); the coordinate vector runs
  over the spatial axes from last to first: x over W, y over H, z over D.
* Input-image and heatmap coordinates differ by the stride only: see :func:`coords.to_heatmap` (pixel
  *extents* aligned, ``x_hm = (x_in + 0.5) / s - 0.5``). That is the default mapping of the heatmap grid
  (:class:`grid.HeatmapGrid`, ``data.grid_mapping=aligned``); ``data.grid_mapping=udp`` selects UDP's
  instead (first and last pixel *centres* aligned, ``x_hm = x_in (W_hm - 1) / (W_in - 1)``), which
  differs by ``(s - 1) / (2 s) * (1 - 2 x_in / (W_in - 1))`` heatmap px: 0 at the frame centre, +-0.375
  heatmap px (+-1.5 input px) at stride 4 and +-0.4375 (+-3.5) at stride 8 at the outermost pixel
  centres. Both keep pixel centres at integers and a flip is ``x -> W - 1 - x`` in either space.
* Encoders: ``encoder(keypoints[B, K, n], visible[B, K], heatmap_size) -> (heatmaps, weights[B, K])``.
* Decoders: ``decoder(heatmaps) -> (coords[B, K, n], scores[B, K])`` with n = 2 or 3. Scores are the
  heatmap maximum clamped at 0 (so an all-negative map scores 0 but keeps its argmax, as logits should);
  a map without a peak (flat, or non-finite everywhere) gets score 0 and the frame centre. Non-finite
  values count as the map's smallest finite value. Coordinates are always finite and inside the frame.
  Decoders that find several peaks per map add a peak axis: ``coords[B, K, P, n], scores[B, K, P]``,
  strongest first, padding with score 0 (see :mod:`multipeak`); :func:`strongest_peak` turns any
  decoder's output into the single-peak form, :func:`candidate_peaks` into the peak-axis form. Every
  decoder object has ``dims``, the spatial dimensionalities it decodes.

Decoders (function / object / ``conf/decoder`` name):

* ``argmax_decode`` / ``ArgmaxDecoder`` / ``argmax``: the maximum pixel.
* ``standard_decode`` / ``StandardDecoder`` / ``standard``: argmax + a quarter pixel towards the higher
  neighbour per axis (HRNet; ``rule="hrnet"`` for its exact border condition).
* ``standard_top2_decode`` / ``StandardTop2Decoder`` / ``standard_top2``: the reproduction's eq. 2, a
  quarter pixel from the maximum towards the second-highest pixel.
* ``dark_decode`` / ``DarkDecoder`` / ``dark``: DARK (modulation, log, Newton step), with a border rule.
* ``com_decode`` / ``CentreOfMassDecoder`` / ``com``: centre of mass of the positive part.
* ``mom_decode`` / ``MedianOfMassDecoder`` / ``mom``: per-axis median of the positive mass.
* ``soft_argmax`` / ``SoftArgmaxDecoder`` / ``soft_argmax``: expectation under a softmax; differentiable.
* ``multipeak_decode`` / ``MultiPeakDecoder`` / ``multipeak``: up to P peaks per map (peak axis).

All functions are batched tensor code (no Python loop over samples or keypoints), device-agnostic
and free of host synchronisation except the multi-peak decoder's tie check (see there). On CPU, where
reading a value costs no sync, cheap checks skip work that is not needed (``base.host_checks``).
"""

from heatlit.codecs.base import candidate_peaks, strongest_peak
from heatlit.codecs.bottomup import bottom_up_heatmaps
from heatlit.codecs.coords import to_heatmap, to_input
from heatlit.codecs.dark import DarkDecoder, dark_decode, dark_refine, modulation_for_sigma
from heatlit.codecs.decoders import (
    ArgmaxDecoder,
    CentreOfMassDecoder,
    MedianOfMassDecoder,
    SoftArgmaxDecoder,
    StandardDecoder,
    StandardTop2Decoder,
    argmax_decode,
    com_decode,
    mom_decode,
    soft_argmax,
    standard_decode,
    standard_top2_decode,
)
from heatlit.codecs.encoders import GaussianEncoder, gaussian_heatmaps
from heatlit.codecs.grid import HeatmapGrid
from heatlit.codecs.multipeak import MultiPeakDecoder, multipeak_decode

__all__ = [
    "ArgmaxDecoder",
    "CentreOfMassDecoder",
    "DarkDecoder",
    "GaussianEncoder",
    "HeatmapGrid",
    "MedianOfMassDecoder",
    "MultiPeakDecoder",
    "SoftArgmaxDecoder",
    "StandardDecoder",
    "StandardTop2Decoder",
    "argmax_decode",
    "bottom_up_heatmaps",
    "candidate_peaks",
    "com_decode",
    "dark_decode",
    "dark_refine",
    "gaussian_heatmaps",
    "modulation_for_sigma",
    "mom_decode",
    "multipeak_decode",
    "soft_argmax",
    "standard_decode",
    "standard_top2_decode",
    "strongest_peak",
    "to_heatmap",
    "to_input",
]

# The other coordinate representations (issue 17). Imported last: they build on the heatmap codecs above.
from heatlit.codecs.mspn import MegviiCodec, MegviiDecoder, megvii_decode, megvii_heatmaps  # noqa: E402
from heatlit.codecs.simcc import SimCCCodec, SimCCDecoder, simcc_bins, simcc_decode, simcc_labels  # noqa: E402
from heatlit.codecs.udp import (  # noqa: E402
    UDPOffsetCodec,
    UDPOffsetDecoder,
    udp_offset_decode,
    udp_offset_maps,
    udp_radius,
    udp_to_heatmap,
    udp_to_input,
)

__all__ += [
    "MegviiCodec",
    "MegviiDecoder",
    "SimCCCodec",
    "SimCCDecoder",
    "UDPOffsetCodec",
    "UDPOffsetDecoder",
    "megvii_decode",
    "megvii_heatmaps",
    "simcc_bins",
    "simcc_decode",
    "simcc_labels",
    "udp_offset_decode",
    "udp_offset_maps",
    "udp_radius",
    "udp_to_heatmap",
    "udp_to_input",
]
