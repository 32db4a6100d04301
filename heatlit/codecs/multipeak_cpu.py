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
from heatlit.codecs.patches import flat_offsets, patch_offsets, patch_values

Tensor = torch.Tensor

LOWEST = -32768  # int16 key of the padding: below every key a candidate can have (those are >= +0.0)
CHUNK_CELLS = 1 << 19  # buffer cells per chunk: a few int16 buffers of this size stay in a core's L2
_NO_KEY = np.iinfo(np.int64).max
TORCH_GRAIN = (
    32768  # elements below which torch's CPU ops run on the calling thread (at::internal::GRAIN_SIZE)
)
PATCH_RADIUS = 1  # the refinement's patch: DARK's central differences without modulation (kernel 1)


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
        # beyond the farthest cell a window reads: stale buffer ends never count
        self.pad = 2 * r * sum(strides)
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
        # padded cell -> flat offsets (clipped into the frame) of its NMS window without itself, and which
        # of them lie inside the frame: a rounding tie of keys is decided on these pixels
        n = len(spatial)
        offsets = patch_offsets(n, r).numpy()[:, ::-1]  # [L^n, n] in array-axis order (z, y, x)
        offsets = np.delete(offsets, len(offsets) // 2, 0)
        where = np.stack(np.unravel_index(np.maximum(self.pixel_of, 0), spatial), -1)[:, None] + offsets
        self.window_inside = ((where >= 0) & (where < np.array(spatial))).all(-1)
        self.window_at = np.ravel_multi_index(tuple(np.moveaxis(where, -1, 0)), spatial, mode="clip")
        # padded cell -> flat index of the centre of its refinement patch (moved inside the frame, as
        # patch_values(shift_inside=True) reads it), and the patch's flat offsets
        self.patch_at, self.patch_offsets = None, None
        if all(s > 2 * PATCH_RADIUS for s in spatial):
            centre = np.stack(np.unravel_index(np.maximum(self.pixel_of, 0), spatial), -1)
            centre = np.clip(centre, PATCH_RADIUS, np.array(spatial) - 1 - PATCH_RADIUS)
            self.patch_at = np.ravel_multi_index(tuple(centre.T), spatial)
            self.patch_offsets = flat_offsets(spatial, PATCH_RADIUS, torch.device("cpu")).numpy()


_local = threading.local()


def _workspace(spatial: tuple[int, ...], r: int, chunk: int) -> _Workspace:
    """This thread's workspace for the layout (one kept at a time; the keys buffer is not shared between
    threads)."""
    ws = getattr(_local, "ws", None)
    if ws is None or ws.layout != (spatial, r, chunk):
        ws = _local.ws = _Workspace(spatial, r, chunk)
    return ws


def _keys_of_finite_maps(part: Tensor, keys: Tensor, slices: int) -> bool:
    """Write the float16 keys of ``part [m, *S]`` into ``keys [m, *S]``; whether every value is finite
    (a finite sum proves it, read while the maps are in the caches).

    ``slices`` maps at a time: the two torch ops are the search's only ones, and on a busy CPU a call large
    enough to use torch's thread team waits milliseconds for a descheduled member (the median of a 2-thread
    run under load grew 20-fold); below the parallel grain they run on the calling thread alone.
    """
    finite = True
    for i in range(0, len(part), slices):
        piece = part[i : i + slices]
        keys[i : i + slices].copy_(piece)
        finite &= bool(torch.isfinite(piece.sum()))
    return finite


def top_peaks(
    maps: Tensor, r: int, threshold: float, max_peaks: int, patches: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray] | None:
    """The ``max_peaks`` strongest strict window maxima above ``threshold`` of every map.

    Args:
        maps: ``[M, *S]`` float CPU maps.
        r: window radius (the window is ``2r + 1`` wide per axis, clipped at the frame).
        patches: also read each peak's refinement patch (the ``3^n`` pixels around it, moved inside the
            frame), while its chunk of maps is still in the caches.

    Returns:
        ``values [M, P]`` and flat ``pixel [M, P]``, strongest first (ties: first in flat order);
        ``valid [M, P]`` False in the slots after a map's last peak (value -inf, pixel 0);
        ``patches [M, P, 3^n]`` (arbitrary finite pixels where not valid) or None; ``plateau [M]``:
        maps with two equal window maxima within a window, whose peaks are to be computed by the
        definition instead. None if a map holds a non-finite value (the caller then sanitises).
    """
    m_total, spatial = maps.shape[0], tuple(maps.shape[1:])
    padded, strides, block = _layout(spatial, r)
    n_pix = math.prod(spatial)
    chunk = max(1, min(m_total, CHUNK_CELLS // block))
    ws = _workspace(spatial, r, chunk)
    frame, mask, above, own, others, body = ws.frame, ws.mask, ws.above, ws.own, ws.others, ws.body
    frame16 = frame.view(torch.float16)
    flat = maps.reshape(-1).numpy()
    patches = patches and ws.patch_at is not None
    key_threshold = np.array(threshold, np.float16).view(np.int16)
    values = np.full((m_total, max_peaks), -np.inf, flat.dtype)
    pixels = np.zeros((m_total, max_peaks), np.int64)
    valid = np.zeros((m_total, max_peaks), np.bool_)
    out_patches = np.zeros((m_total, max_peaks, len(ws.patch_offsets)), flat.dtype) if patches else None
    plateau = np.zeros(m_total, np.bool_)
    inverse = 1.0 / block
    # with a thread team, torch's ops below its parallel grain stay on this thread (see _keys_of_finite_maps)
    slices = chunk if torch.get_num_threads() == 1 else max(1, TORCH_GRAIN // n_pix)
    for start in range(0, m_total, chunk):
        m = min(chunk, m_total - start)
        if not _keys_of_finite_maps(maps[start : start + m], frame16[:m], slices):
            return None
        if m < chunk:
            frame[m:] = LOWEST
        for a, b, out in ws.passes:
            np.maximum(a, b, out=out)
        np.greater_equal(own, others, out=mask[:body])
        np.greater_equal(own, key_threshold, out=above)
        np.logical_and(mask[:body], above, out=mask[:body])
        pos = _flatnonzero(mask)
        owner = ((pos + 0.5) * inverse).astype(np.int64)  # exact: pos < 2^40, and 0.5 keeps off integers
        rest = pos - owner * block
        local = flat[start * n_pix : (start + m) * n_pix]  # the chunk's maps, still in the caches
        index = owner * n_pix + ws.pixel_of[rest]
        value = local.take(index)
        keep = value > threshold  # keys tie with the threshold's: the exact test
        loose = np.flatnonzero(own[pos] <= others[pos])  # keys tie in the window: decide on the floats
        if len(loose):
            at = (owner[loose] * n_pix)[:, None] + ws.window_at[rest[loose]]
            best = np.where(ws.window_inside[rest[loose]], local.take(at), -np.inf).max(-1)
            keep[loose[best > value[loose]]] = False  # no window maximum
            plateau[start + owner[loose[best == value[loose]]]] = True  # an equal pixel in the window
        if not keep.all():
            owner, rest, index, value = owner[keep], rest[keep], index[keep], value[keep]
        if not len(owner):
            continue
        chosen, ok = _top_per_map(owner, value, m, max_peaks)
        rows = slice(start, start + m)
        values[rows] = np.where(ok, value[chosen], -np.inf)
        pixels[rows] = np.where(ok, index[chosen] - np.arange(m)[:, None] * n_pix, 0)
        valid[rows] = ok
        if patches:
            # (slots without a peak read candidate 0's patch: finite values the caller discards)
            at = (owner[chosen] * n_pix + ws.patch_at[rest[chosen]])[..., None] + ws.patch_offsets
            local.take(at, out=out_patches[rows])
    return values, pixels, valid, out_patches, plateau


def _top_per_map(owner: np.ndarray, values: np.ndarray, maps: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``p`` largest candidates of each map, descending, ties by flat index.

    ``owner`` is sorted (candidates in flat order). Returns ``chosen [maps, p]`` (candidate numbers) and
    ``valid [maps, p]`` (False in the slots of maps with fewer candidates; their ``chosen`` is 0).
    """
    counts = np.bincount(owner, minlength=maps)
    starts = np.zeros(maps + 1, np.int64)
    np.cumsum(counts, out=starts[1:])
    width = int(counts.max()) if len(owner) else 0
    chosen = np.zeros((maps, p), np.int64)
    valid = np.zeros((maps, p), np.bool_)
    if width == 0:
        return chosen, valid
    rank = np.arange(len(owner)) - starts[owner]
    cell = owner * width + rank  # the candidate's cell of a [maps, width] table, row = its map
    take = min(width, p)
    if values.dtype == np.float32:
        # one int64 per candidate sorts by value (descending; positive floats order as their bits) and
        # then by rank: a row sort of int64 is several times faster than an argsort
        key = (np.int64(0x7FFFFFFF) - values.view(np.int32)).astype(np.int64) << 32 | rank
        table = np.full((maps, width), _NO_KEY, np.int64)
        table.reshape(-1)[cell] = key
        table.sort(axis=1)
        top = table[:, :take]
        valid[:, :take] = top != _NO_KEY
        order = top & 0xFFFFFFFF
    else:
        table = np.full((maps, width), np.inf, values.dtype)
        table.reshape(-1)[cell] = -values
        order = np.argsort(table, axis=1, kind="stable")[:, :take]
        valid[:, :take] = np.take_along_axis(table, order, 1) < np.inf
    chosen[:, :take] = np.where(valid[:, :take], starts[:-1, None] + order, 0)
    return chosen, valid


def host_candidates(
    h: Tensor, max_peaks: int, threshold: float, nms_kernel: int, patches: bool = False
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None] | None:
    """Top ``P`` peaks per map on a CPU.

    Args:
        h: ``[B, K, *S]`` float32/float64 CPU maps.
        patches: also return the refinement patches of the peaks (see :func:`top_peaks`).

    Returns:
        ``values [B, K, P]``, flat ``index [B, K, P]`` and ``ints [B, K, P, n]`` (x, y[, z]), strongest
        first, as :func:`~heatlit.codecs.multipeak.exact_candidates` gives them for the peaks above
        ``threshold`` (slots after them: -inf and index 0); for a map without such a peak, slot 0 holds
        its maximum (first in flat order). ``flat [B, K]`` bool: maps whose minimum equals their
        maximum. ``redo [B, K]`` bool: maps with a plateau, to be computed by the definition.
        ``patches [B, K, P, 3^n]`` or None. None altogether if a map holds a non-finite value.
    """
    b, k = h.shape[:2]
    spatial = tuple(h.shape[2:])
    m_total, n_pix = b * k, math.prod(spatial)
    maps = h.reshape(m_total, *spatial).contiguous()
    flat = maps.reshape(m_total, n_pix).numpy()
    found = top_peaks(maps, nms_kernel // 2, threshold, max_peaks, patches)
    if found is None:
        return None
    values, pixels, valid, out_patch, redo = found
    flat_map = np.zeros(m_total, np.bool_)
    empty = np.flatnonzero(~valid[:, 0])
    if len(empty):  # no peak above the threshold: slot 0 is the map's maximum
        best = np.argmax(flat[empty], axis=1)
        pixels[empty, 0] = best
        values[empty, 0] = flat[empty, best]
        flat_map[empty] = flat[empty].min(1) == values[empty, 0]
        if out_patch is not None:
            centres = unravel(torch.from_numpy(best), spatial).reshape(-1, 1, 1, len(spatial))
            sub = torch.from_numpy(flat[empty])[:, None]
            out_patch[empty, 0] = patch_values(
                sub, spatial, centres, PATCH_RADIUS, shift_inside=True
            ).reshape(len(empty), -1)
    ints = np.empty((*pixels.shape, len(spatial)), np.int64)
    rest = pixels
    for axis, size in enumerate(reversed(spatial)):  # (x, y[, z]): the fastest axis first
        rest, ints[..., axis] = np.divmod(rest, size)
    shape = (b, k, max_peaks)
    return (
        torch.from_numpy(values).reshape(shape),
        torch.from_numpy(pixels).reshape(shape),
        torch.from_numpy(ints).reshape(*shape, len(spatial)),
        torch.from_numpy(flat_map).reshape(b, k),
        torch.from_numpy(redo).reshape(b, k),
        None if out_patch is None else torch.from_numpy(out_patch).reshape(*shape, -1),
    )
