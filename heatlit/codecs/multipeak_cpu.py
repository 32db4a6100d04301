"""The multi-peak decoder's peak search on a CPU, in numpy: exactly the peaks of
:func:`heatlit.codecs.multipeak.exact_candidates`, in a few passes over the maps.

Shapes and coordinate convention: see :mod:`heatlit.codecs`. Peaks as defined in :mod:`heatlit.codecs.multipeak`
(window maxima above the threshold, one per plateau, strongest first).

What bounds the speed on a CPU is memory traffic: a pass of torch's CPU ops over the maps costs several
numpy argmax passes, and max-pooling tens. So the search reads the maps once and works on half-width keys:

1. Keys. Each map is rounded to float16 (monotone, so a window maximum of the map is one of the keys) and
   its bit pattern read as int16, which orders non-negative floats as the floats. The keys sit in a flat
   buffer with ``r = nms_kernel // 2`` padding cells after every row, slice and map holding the smallest
   key, so a neighbour at offset d along an axis is the cell d times the axis' stride away, and
   neighbours beyond the frame read as padding: every window maximum is then a maximum of shifted flat
   buffers, which numpy computes at memory speed.
2. For every pixel, the largest key of its window *without itself*, by separable maxima (six passes for a
   5x5 window): along x, the two half-windows ``[-r, -1]`` and ``[1, r]``; along y, the rows ``+-1..r``
   of the full x-windows; and so on. A pixel whose key exceeds it is a strict window maximum of the map
   (a peak of its own); one whose key equals it, a rare rounding tie, is decided on the map itself.
3. Candidates (key at least the threshold's key) are read out of the comparison mask, and scored with
   their exact values; the top ``P`` per map are chosen by value, ties by flat index (so slot 0 is the
   map's argmax, as the definition makes it).

Maps with a true plateau (two equal pixels within a window, both window maxima) are rare in real
outputs; they are redone by the direct definition (:func:`~heatlit.codecs.multipeak.exact_candidates`).
The work runs chunk by chunk over the maps so that each pass stays in the CPU's caches.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch

from heatlit.codecs.coords import unravel
from heatlit.codecs.patches import inside_frame, window_values

Tensor = torch.Tensor

LOWEST = -32768  # int16 key of the padding: below every key a candidate can have (those are >= +0.0)
CHUNK_CELLS = 1 << 17  # buffer cells per chunk: a few int16 buffers of this size stay in a core's L2
_NO_KEY = np.iinfo(np.int64).max


def _layout(spatial: tuple[int, ...], r: int) -> tuple[tuple[int, ...], list[int], int]:
    """Padded per-map shape, flat strides per axis (slowest first) and cells per map."""
    padded = tuple(s + r for s in spatial)
    strides = [1] * len(spatial)
    for axis in range(len(spatial) - 2, -1, -1):
        strides[axis] = strides[axis + 1] * padded[axis + 1]
    return padded, strides, strides[0] * padded[0]


def _plan(strides: list[int], r: int) -> tuple[list[tuple[int, int, int, int, int]], int]:
    """The passes of step 2 as ``(out, a, da, b, db)``: ``buf[out][c] = max(buf[a][c + da], buf[b][c + db])``.

    Buffer 0 holds the keys; the others are reused once their value is dead. Returns the ops and the number
    of buffers; the last op writes the excluded-centre maximum.
    """
    values: list[tuple[int, int, int, int, int]] = []  # ops on value ids (0 = keys), one new id per op

    def op(a: int, da: int, b: int, db: int) -> int:
        values.append((len(values) + 1, a, da, b, db))
        return len(values)

    full, excl = 0, None  # full window maximum over the axes done so far; excluded-centre maximum
    for i, step in enumerate(reversed(strides)):  # fastest axis first
        half, width = full, 1  # max over offsets [0, width) of `full` along this axis
        while 2 * width <= r:
            half = op(half, 0, half, width * step)
            width *= 2
        if r > width:
            half = op(half, 0, half, (r - width) * step)
        part = op(half, -r * step, half, step)  # offsets [-r, -1] and [1, r]
        excl = part if excl is None else op(excl, 0, part, 0)
        if i < len(strides) - 1:
            full = op(part, 0, full, 0)
    # register allocation: a value's buffer is free after its last use
    last_use = {}
    for out, a, _, b, _ in values:
        last_use[a] = last_use[b] = out
    buffer_of = {0: 0}
    free: list[int] = []
    count = 1
    ops = []
    for out, a, da, b, db in values:
        for v in {a, b}:
            if v and last_use.get(v) == out and v != excl:
                free.append(buffer_of[v])  # inputs may be overwritten only after this op: freed below
        target = next((f for f in free if f not in (buffer_of[a], buffer_of[b])), None)
        if target is None:
            target, count = count, count + 1
        else:
            free.remove(target)
        buffer_of[out] = target
        ops.append((target, buffer_of[a], da, buffer_of[b], db))
    return ops, count


def _flatnonzero(mask: np.ndarray) -> np.ndarray:
    """``np.flatnonzero`` for a sparse bool mask whose length is a multiple of 8: words of 8 cells first."""
    words = mask.view(np.uint64)
    hit = np.flatnonzero(words != 0)
    sub = np.flatnonzero(words[hit].view(np.bool_))
    return hit[sub >> 3] * 8 + (sub & 7)


class _Workspace:
    """Buffers of one layout, kept between calls: fresh multi-megabyte buffers would cost a page fault per
    4 kB on first touch, more than the passes themselves; the padding cells of the keys are written once."""

    def __init__(self, spatial: tuple[int, ...], r: int, chunk: int) -> None:
        padded, strides, block = _layout(spatial, r)
        self.layout = (spatial, r, chunk)
        self.pad = (
            2 * r * sum(strides)
        )  # beyond the farthest cell a window reads: stale buffer ends never count
        self.body = chunk * block
        length = 2 * self.pad + self.body
        length += -length % 8
        self.ops, count = _plan(strides, r)
        self.bufs = [np.empty(length, np.int16) for _ in range(count)]
        self.bufs[0].fill(LOWEST)
        cells = torch.from_numpy(self.bufs[0][self.pad : self.pad + self.body]).view(chunk, *padded)
        self.frame = cells[(slice(None),) + tuple(slice(0, s) for s in spatial)]
        self.mask = np.zeros(self.body + (-self.body % 8), np.bool_)
        self.above = np.empty(self.body, np.bool_)
        self.passes = []  # (a, b, out) views of one op each, computed once
        for out, a, da, b, db in self.ops:
            lo, hi = max(0, -da, -db), length - max(0, da, db)
            self.passes.append(
                (self.bufs[a][lo + da : hi + da], self.bufs[b][lo + db : hi + db], self.bufs[out][lo:hi])
            )
        self.own = self.bufs[0][self.pad : self.pad + self.body]
        self.others = self.bufs[self.ops[-1][0]][self.pad : self.pad + self.body]
        self.pixel_of = np.full(block, -1, np.int64)  # padded cell in a map -> flat pixel index
        self.pixel_of.reshape(padded)[tuple(slice(0, s) for s in spatial)] = np.arange(
            math.prod(spatial)
        ).reshape(spatial)


_local = threading.local()


def _workspace(spatial: tuple[int, ...], r: int, chunk: int) -> _Workspace:
    """This thread's workspace for the layout (one kept at a time; the keys buffer is not shared between
    threads)."""
    ws = getattr(_local, "ws", None)
    if ws is None or ws.layout != (spatial, r, chunk):
        ws = _local.ws = _Workspace(spatial, r, chunk)
    return ws


def key_maxima(maps: Tensor, r: int, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels whose float16 key is the maximum of their window and at least the threshold's key.

    Args:
        maps: ``[M, *S]`` finite float CPU maps.
        r: window radius (the window is ``2r + 1`` wide per axis, clipped at the frame).

    Returns:
        ``(map, pixel, strict)``, each ``[C]``, in flat order: map index, flat pixel index within the map,
        and whether the key is the window's only maximum (then the pixel is a strict window maximum of
        the map; otherwise it may or may not be a maximum at all).
    """
    m_total, spatial = maps.shape[0], tuple(maps.shape[1:])
    padded, strides, block = _layout(spatial, r)
    chunk = max(1, min(m_total, CHUNK_CELLS // block))
    ws = _workspace(spatial, r, chunk)
    frame, mask, above, own, others, body = ws.frame, ws.mask, ws.above, ws.own, ws.others, ws.body
    frame16 = frame.view(torch.float16)
    key_threshold = np.array(threshold, np.float16).view(np.int16)
    found, strict = [], []
    for start in range(0, m_total, chunk):
        m = min(chunk, m_total - start)
        frame16[:m].copy_(maps[start : start + m])
        if m < chunk:
            frame[m:] = LOWEST
        for a, b, out in ws.passes:
            np.maximum(a, b, out=out)
        np.greater_equal(own, others, out=mask[:body])
        np.greater_equal(own, key_threshold, out=above)
        np.logical_and(mask[:body], above, out=mask[:body])
        pos = _flatnonzero(mask)
        strict.append(own[pos] > others[pos])
        found.append(pos + start * block)
    owner, rest = np.divmod(np.concatenate(found), block)
    return owner, ws.pixel_of[rest], np.concatenate(strict)


def _top_per_map(
    owner: np.ndarray, pixel: np.ndarray, values: np.ndarray, maps: int, p: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``p`` largest candidates of each map, descending, ties by flat index.

    ``owner`` is sorted (candidates in flat order). Returns ``values [maps, p]`` (-inf padding),
    ``pixel [maps, p]`` (0 padding) and the number of candidates per map.
    """
    counts = np.bincount(owner, minlength=maps)
    starts = np.zeros(maps + 1, np.int64)
    np.cumsum(counts, out=starts[1:])
    width = int(counts.max()) if len(owner) else 0
    out_v = np.full((maps, p), -np.inf, values.dtype)
    out_i = np.zeros((maps, p), np.int64)
    if width == 0:
        return out_v, out_i, counts
    rank = np.arange(len(owner)) - starts[owner]
    take = min(width, p)
    if values.dtype == np.float32:
        # one int64 per candidate sorts by value (descending; positive floats order as their bits) and
        # then by rank: a row sort of int64 is several times faster than an argsort
        key = (np.int64(0x7FFFFFFF) - values.view(np.int32)).astype(np.int64) << 32 | rank
        table = np.full((maps, width), _NO_KEY, np.int64)
        table[owner, rank] = key
        table.sort(axis=1)
        top = table[:, :take]
        valid = top != _NO_KEY
        chosen = starts[:-1, None] + (top & 0xFFFFFFFF)
    else:
        table = np.full((maps, width), np.inf, values.dtype)
        table[owner, rank] = -values
        order = np.argsort(table, axis=1, kind="stable")[:, :take]
        valid = np.take_along_axis(table, order, 1) < np.inf
        chosen = starts[:-1, None] + order
    chosen = np.where(valid, chosen, 0)
    out_v[:, :take] = np.where(valid, values[chosen], -np.inf)
    out_i[:, :take] = np.where(valid, pixel[chosen], 0)
    return out_v, out_i, counts


def host_candidates(
    h: Tensor, max_peaks: int, threshold: float, nms_kernel: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Top ``P`` peaks per map on a CPU.

    Args:
        h: ``[B, K, *S]`` finite float32/float64 CPU maps.

    Returns:
        ``values [B, K, P]`` and flat ``index [B, K, P]``, strongest first, as
        :func:`~heatlit.codecs.multipeak.exact_candidates` gives them for the peaks above ``threshold``
        (slots after them: -inf); for a map without such a peak, slot 0 holds its maximum (first in flat
        order). ``flat [B, K]`` bool: maps whose minimum equals their maximum. ``redo [B, K]`` bool: maps
        with a plateau, to be computed by the definition.
    """
    b, k = h.shape[:2]
    spatial = tuple(h.shape[2:])
    m_total, n_pix = b * k, math.prod(spatial)
    maps = h.reshape(m_total, *spatial)
    flat = maps.reshape(m_total, n_pix).numpy()
    owner, pixel, strict = key_maxima(maps, nms_kernel // 2, threshold)
    values = flat[owner, pixel]
    keep = values > threshold
    redo = np.zeros(m_total, np.bool_)
    loose = np.flatnonzero(keep & ~strict)
    if len(loose):  # a rounding tie of keys: compare the floats of the window
        centres = unravel(torch.from_numpy(pixel[loose]), spatial)
        r = nms_kernel // 2
        window = window_values(
            maps.reshape(m_total, n_pix), torch.from_numpy(owner[loose]), centres, spatial, r
        )
        window = torch.where(inside_frame(centres, spatial, r), window, -torch.inf)
        window[:, window.shape[1] // 2] = -torch.inf  # the centre itself
        best = window.amax(-1).numpy()
        keep[loose[best > values[loose]]] = False
        redo[owner[loose[best == values[loose]]]] = True
    owner, pixel, values = owner[keep], pixel[keep], values[keep]
    top_v, top_i, counts = _top_per_map(owner, pixel, values, m_total, max_peaks)
    flat_map = np.zeros(m_total, np.bool_)
    empty = np.flatnonzero(counts == 0)
    if len(empty):  # no peak above the threshold: slot 0 is the map's maximum
        best = np.argmax(flat[empty], axis=1)
        top_i[empty, 0] = best
        top_v[empty, 0] = flat[empty, best]
        flat_map[empty] = flat[empty].min(1) == top_v[empty, 0]
    shape = (b, k)
    return (
        torch.from_numpy(top_v).reshape(*shape, max_peaks),
        torch.from_numpy(top_i).reshape(*shape, max_peaks),
        torch.from_numpy(flat_map).reshape(shape),
        torch.from_numpy(redo).reshape(shape),
    )
