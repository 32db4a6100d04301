"""One GPU per process for parallel sweeps.

Hydra's joblib launcher reuses worker processes, so a per-job ``CUDA_VISIBLE_DEVICES`` cannot be relied
on. Instead each process takes an exclusive, non-blocking ``flock`` on ``gpu<i>.lock`` in a shared folder
and keeps it for its lifetime: jobs that run in the same worker reuse its GPU, and the operating system
drops the lock when the process exits, even after a crash.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

_held: tuple[int, object] | None = None  # (gpu index, open lock file) for this process


def lease_gpu(
    count: int, lock_dir: str | Path | None = None, timeout_s: float = 24 * 3600, poll_s: float = 5.0
) -> int:
    """Index of a GPU that no other process of this machine holds; waits while all ``count`` are taken.

    Args:
        count: number of visible GPUs (>= 1).
        lock_dir: folder of the lock files (default ``$HEATLIT_GPU_LOCKS`` or ``<tmp>/heatlit-gpu-locks``).
    """
    global _held
    if _held is not None:
        return _held[0]
    folder = Path(
        lock_dir or os.environ.get("HEATLIT_GPU_LOCKS") or Path(tempfile.gettempdir()) / "heatlit-gpu-locks"
    )
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    while True:
        for index in range(count):
            handle = open(folder / f"gpu{index}.lock", "a")  # noqa: SIM115 - held for the process lifetime
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held = (index, handle)
            log.info("process %d leased GPU %d (%s)", os.getpid(), index, folder)
            return index
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU among {count} within {timeout_s} s (locks in {folder})")
        time.sleep(poll_s)


def release_gpu() -> None:
    """Give the lease back early (tests; normally the process exit does it)."""
    global _held
    if _held is not None:
        _held[1].close()
        _held = None
