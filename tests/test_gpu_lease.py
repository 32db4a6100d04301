"""The per-process GPU lease used by parallel sweeps (file locks; no GPU needed to test it)."""

from __future__ import annotations

import multiprocessing as mp

from heatlit.training import gpu_lease


def _lease_and_report(lock_dir, queue, hold):
    queue.put(gpu_lease.lease_gpu(2, lock_dir, timeout_s=5, poll_s=0.05))
    hold.wait(10)


def test_two_processes_lease_different_gpus_and_a_process_keeps_its_own(tmp_path):
    ctx = mp.get_context("spawn")
    queue, hold = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_lease_and_report, args=(str(tmp_path), queue, hold)) for _ in range(2)]
    for p in procs:
        p.start()
    got = sorted(queue.get(timeout=60) for _ in procs)
    hold.set()
    for p in procs:
        p.join(30)
    assert got == [0, 1]
    # in this process: the same index on every call (joblib reuses workers), released on demand
    try:
        first = gpu_lease.lease_gpu(2, tmp_path)
        assert gpu_lease.lease_gpu(2, tmp_path) == first
    finally:
        gpu_lease.release_gpu()
