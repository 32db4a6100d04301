"""The rendered-data cache: every split of a config rendered once into ``<data_dir>/<prefix>-<hash>/``.

What a sample stores and how it is rendered is the :class:`Layout` (:data:`SINGLE`, one person per frame,
the ``synth-`` folders; :data:`heatlit.data.generator.crowd.CROWD`, several, the ``synth_multi-`` folders);
everything else here is shared.

Written to a temporary folder, fsynced and renamed into place with a manifest of counts, shapes, sizes and
SHA-256 digests; a cache that does not verify is rebuilt, never read. Sizes and headers are checked every
time; the bytes of a split's files are checked against their digests the first time a process uses them
(hashing the default 160x80 cache, ~105 MB, takes ~0.3 s on one core: under 0.1 % of a default run).
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heatlit.body.skeleton import NUM_JOINTS
from heatlit.data.errors import DataError
from heatlit.data.generator.config import GENERATOR_VERSION, SynthConfig, file_sha256, stream_rng
from heatlit.data.generator.world import ACTIVITY_ORDER, DEVICES, SynthWorld, render_view

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")

_MANIFEST = "manifest.json"
_CHUNK = 256  # samples per job when generating with several processes


@dataclass(frozen=True)
class Layout:
    """One kind of rendered dataset: what a sample stores and the function that renders samples.

    Attributes:
        prefix: the cache folder is ``<data_dir>/<prefix>-<config hash>``; the manifest's format is
            ``heatlit-<prefix>``.
        fields: ``fields(cfg) -> {name: (dtype, per-sample shape)}``.
        fill: ``fill(cfg, split, folder, start, stop, counter=None) -> count`` renders samples ``start:stop``
            of ``split`` into the preallocated ``<split>_<name>.npy`` files of ``folder``. Module-level
            functions, so generator processes can receive them.
    """

    prefix: str
    fields: Callable[[SynthConfig], dict[str, tuple[type, tuple[int, ...]]]]
    fill: Callable[..., int]

    @property
    def format(self) -> str:
        return f"heatlit-{self.prefix}"

    def folder(self, data_dir: str | Path, cfg: SynthConfig) -> Path:
        return Path(data_dir) / f"{self.prefix}-{cfg.hash()}"


def single_fields(cfg: SynthConfig) -> dict[str, tuple[type, tuple[int, ...]]]:
    """One person per frame: name -> (dtype, per-sample shape)."""
    return {
        "depth": (np.uint16, (cfg.height, cfg.width)),
        "keypoints": (np.float64, (NUM_JOINTS, 2)),
        "visible": (np.bool_, (NUM_JOINTS,)),
        "joints3d": (np.float32, (NUM_JOINTS, 3)),
        "cam_K": (np.float64, (3, 3)),
        "index": (np.int64, (4,)),  # subject, activity index, frame, camera
    }


# Files whose bytes matched their manifest digest in this process: path -> (size, mtime_ns) when checked.
# A forked DataLoader worker inherits it; a file rewritten since (new size or time) is hashed again.
_VERIFIED: dict[str, tuple[int, int]] = {}


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _remember_verified(path: Path) -> None:
    _VERIFIED[str(path)] = _stamp(path)


def check_content(path: Path, sha256: str) -> str | None:
    """None if ``path``'s bytes hash to ``sha256`` (computed once per process and file), else why not."""
    if _VERIFIED.get(str(path)) == _stamp(path):
        return None
    if file_sha256(path) != sha256:
        return (
            f"{path} does not match the SHA-256 recorded when it was written (changed or corrupted on disk)"
        )
    _remember_verified(path)
    return None


def open_split(folder: Path, split: str) -> dict[str, np.ndarray]:
    """Memory maps of one split's files, their bytes checked first (see :func:`check_content`).

    Raises:
        DataError: a file's content or the manifest does not verify; the message names the file.
    """
    manifest_path = folder / _MANIFEST
    try:
        files = json.loads(manifest_path.read_text())["splits"][split]["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{manifest_path}: no readable entry for split {split!r} ({err!r})") from err
    arrays = {}
    for name in files:  # verified against the layout when the cache was opened
        path = folder / f"{split}_{name}.npy"
        expected = (files.get(name) or {}).get("sha256")
        problem = (
            f"{manifest_path} has no digest of {path.name}" if not expected else check_content(path, expected)
        )
        if problem:
            raise DataError(f"{problem}; delete {folder} to render it again")
        arrays[name] = np.load(path, mmap_mode="r")
    return arrays


@functools.lru_cache(maxsize=2)
def world_of(cfg: SynthConfig) -> SynthWorld:
    # One world per process and config: generator jobs reuse its parsed mocap and rendered backgrounds.
    return SynthWorld(cfg)


def open_for_filling(cfg: SynthConfig, layout: Layout, split: str, folder: str) -> dict[str, np.ndarray]:
    """Writable memory maps of a split's preallocated files (what a layout's ``fill`` writes into)."""
    return {
        name: np.load(Path(folder) / f"{split}_{name}.npy", mmap_mode="r+") for name in layout.fields(cfg)
    }


def fill_single(cfg: SynthConfig, split: str, folder: str, start: int, stop: int, counter=None) -> int:
    """Render samples ``start:stop`` of ``split`` into the preallocated ``.npy`` files of ``folder``."""
    world = world_of(cfg)
    plan = world.plan(split)
    arrays = open_for_filling(cfg, SINGLE, split, folder)
    split_id = SPLITS.index(split)
    i = start
    while i < stop:
        subject, a = int(plan[i, 0]), int(plan[i, 1])
        j = i
        while j < stop and plan[j, 0] == subject and plan[j, 1] == a:
            j += 1
        frames, inverse = np.unique(plan[i:j, 2], return_inverse=True)
        perf = world.performance(subject, ACTIVITY_ORDER[a], frames)
        for n in range(i, j):
            f = int(inverse[n - i])
            camera = world.output_camera(subject, int(plan[n, 3]))
            rng = stream_rng(cfg, 9, split_id, n) if cfg.noise else None
            view = render_view(world, subject, perf.joints[f], world.scene(subject, perf, f), camera, rng)
            arrays["depth"][n] = view["depth"]
            arrays["keypoints"][n] = view["keypoints"]
            arrays["visible"][n] = view["visible"]
            arrays["joints3d"][n] = view["joints3d"]
            arrays["cam_K"][n] = camera.K
            arrays["index"][n] = plan[n]
            if counter is not None:
                counter(1)
        i = j
    for arr in arrays.values():
        arr.flush()
    return stop - start


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale_temp(root: Path, name: str) -> None:
    """Remove temp folders of killed generator runs (their owner pid is gone); they are never read."""
    for tmp in root.glob(f".{name}.tmp-*"):
        try:
            pid = int(tmp.name.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            pid = -1
        if pid != os.getpid() and not _pid_alive(pid):
            log.warning("removing partial synthetic cache %s left by a killed run", tmp)
            shutil.rmtree(tmp, ignore_errors=True)


def verify_cache(
    folder: Path, cfg: SynthConfig, content: Sequence[str] = (), layout: Layout | None = None
) -> str | None:
    """Check a cache folder against its manifest.

    Args:
        folder: ``<data_dir>/synth-<hash>``.
        cfg: the config it must match.
        content: splits whose files' bytes are also checked against the SHA-256 recorded at write time
            (once per file and process, see :func:`check_content`); the others by size and header only.
        layout: what the samples store (default :data:`SINGLE`).

    Returns:
        None if it is complete and matches, else a reason naming the file (for the log).
    """
    manifest_path = folder / _MANIFEST
    if not manifest_path.is_file():
        return f"{manifest_path} is missing (a run was interrupted before finishing)"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as err:
        return f"{manifest_path} is unreadable ({err})"
    layout = layout or SINGLE
    if manifest.get("format") != layout.format or manifest.get("config_hash") != cfg.hash():
        return f"{manifest_path} belongs to another config or format"
    for split in SPLITS:
        entry = manifest.get("splits", {}).get(split)
        if entry is None or entry.get("count") != cfg.frames(split):
            return f"{manifest_path}: split {split!r} count differs from the config"
        for name, (dtype, shape) in layout.fields(cfg).items():
            info = entry["files"].get(name)
            path = folder / f"{split}_{name}.npy"
            if info is None or not path.is_file():
                return f"{path} is missing"
            if path.stat().st_size != info["bytes"]:
                return (
                    f"{path} has {path.stat().st_size} bytes, the manifest says {info['bytes']} (truncated?)"
                )
            try:
                arr = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as err:
                return f"{path} is not a readable .npy ({err})"
            if arr.shape != (cfg.frames(split), *shape) or arr.dtype != np.dtype(dtype):
                return f"{path} has shape {arr.shape} {arr.dtype}, expected {(cfg.frames(split), *shape)}"
            if split in content and (problem := check_content(path, info["sha256"])):
                return problem
    return None


def build_cache(
    data_dir: str | Path,
    cfg: SynthConfig,
    *,
    progress: bool = True,
    workers: int = 0,
    content: Sequence[str] = (),
    layout: Layout | None = None,
) -> Path:
    """Generate every split of ``cfg`` into ``<data_dir>/<prefix>-<hash>`` unless a verified copy exists.

    Args:
        data_dir: cache root.
        cfg: generator settings.
        progress: show a rich progress bar.
        workers: processes to render with (0 = one per CPU up to 8 for large configs, 1 otherwise).
            The output does not depend on it: every sample has its own seed.
        content: splits whose bytes must match their recorded SHA-256 (see :func:`verify_cache`); a
            copy that fails is re-rendered.
        layout: what the samples store and how they are rendered (default :data:`SINGLE`).

    Returns:
        The cache folder (complete and verified).
    """
    layout = layout or SINGLE
    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = layout.folder(root, cfg)
    name = final.name
    _clean_stale_temp(root, name)
    if final.exists():
        problem = verify_cache(final, cfg, content, layout)
        if problem is None:
            return final
        log.warning("synthetic cache %s is incomplete or corrupt (%s); rebuilding it", final, problem)
        trash = root / f".{name}.bad-{os.getpid()}-{time.time_ns()}"
        os.replace(final, trash)
        shutil.rmtree(trash, ignore_errors=True)

    tmp = root / f".{name}.tmp-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        world = SynthWorld(cfg)
        plans = {split: world.plan(split) for split in SPLITS}
        for split in SPLITS:
            n = len(plans[split])
            for fname, (dtype, shape) in layout.fields(cfg).items():
                np.lib.format.open_memmap(
                    tmp / f"{split}_{fname}.npy", mode="w+", dtype=dtype, shape=(n, *shape)
                ).flush()
        total = sum(len(p) for p in plans.values())
        if workers <= 0:
            workers = min(os.cpu_count() or 1, 8) if total > 20000 else 1
        started = time.perf_counter()
        _generate(cfg, layout, plans, tmp, total, progress, workers)
        elapsed = time.perf_counter() - started
        splits = {}
        for split in SPLITS:
            files = {}
            for fname in layout.fields(cfg):
                path = tmp / f"{split}_{fname}.npy"
                _fsync(path)
                files[fname] = {"file": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
            splits[split] = {"count": len(plans[split]), "files": files}
        manifest = {
            "format": layout.format,
            "version": GENERATOR_VERSION,
            "config_hash": cfg.hash(),
            "config": cfg.key(),
            "activities": list(ACTIVITY_ORDER),
            "devices": list(DEVICES),
            "splits": splits,
            "seconds": round(elapsed, 2),
        }
        with open(tmp / _MANIFEST, "w") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        _fsync(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if (
                verify_cache(final, cfg, layout=layout) is None
            ):  # another process finished the same config first
                shutil.rmtree(tmp, ignore_errors=True)
                return final
            raise
        _fsync(root)
        for entry in splits.values():  # hashed from the bytes just written: no need to read them again
            for info in entry["files"].values():
                _remember_verified(final / info["file"])
        log.info("generated %d synthetic samples in %.1f s into %s", total, elapsed, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _generate(
    cfg: SynthConfig, layout: Layout, plans: dict, folder: Path, total: int, progress: bool, workers: int
) -> None:
    """Render every planned sample, in-process or over ``workers`` processes, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("synth {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not progress,
        transient=True,
    )
    with bar:
        task = bar.add_task(f"{cfg.width}x{cfg.height}", total=total)
        if workers == 1:
            for split in SPLITS:
                layout.fill(cfg, split, str(folder), 0, len(plans[split]), lambda k: bar.advance(task, k))
            return
        jobs = [
            (split, s, min(s + _CHUNK, len(plans[split])))
            for split in SPLITS
            for s in range(0, len(plans[split]), _CHUNK)
        ]
        with cf.ProcessPoolExecutor(workers) as pool:
            futures = [pool.submit(layout.fill, cfg, split, str(folder), a, b) for split, a, b in jobs]
            for fut in cf.as_completed(futures):
                bar.advance(task, fut.result())


#: One person per frame (``data=synth``).
SINGLE = Layout("synth", single_fields, fill_single)
