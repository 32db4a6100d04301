"""``python -m heatlit.sweep <name> [overrides]``: run a sweep from ``sweeps/sweep/<name>.yaml``, then its report.

The sweep directory is fixed up front (``multirun/<name>/<timestamp>``, or the user's own
``hydra.sweep.dir=...``) so the report knows where to look; extra arguments go to ``heatlit.train``
(e.g. ``hydra/launcher=joblib hydra.launcher.n_jobs=2``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps" / "sweep"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = sorted(p.stem for p in SWEEPS.glob("*.yaml"))
    if not argv or argv[0] not in names:
        print(
            f"usage: python -m heatlit.sweep <name> [overrides]; names: {', '.join(names)}", file=sys.stderr
        )
        return 2
    name, overrides = argv[0], argv[1:]
    given = [o.split("=", 1)[1] for o in overrides if o.startswith("hydra.sweep.dir=")]
    if given:
        sweep_dir, overrides = Path(given[-1]), [o for o in overrides if not o.startswith("hydra.sweep.dir=")]
    else:
        sweep_dir = Path("multirun") / name / time.strftime("%Y-%m-%d_%H-%M-%S")
    started = time.time()
    cmd = [
        sys.executable,
        "-m",
        "heatlit.train",
        f"+sweep={name}",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]
    print("+", " ".join(cmd), flush=True)
    status = subprocess.call(cmd)
    print(
        f"sweep {name} finished with status {status} in {time.time() - started:.0f} s: {sweep_dir}",
        flush=True,
    )
    from heatlit.report.cli import main as report_main

    # the report lists crashed jobs itself, so it runs whatever the sweep's status
    report_status = report_main([str(sweep_dir)])
    return status or report_status


if __name__ == "__main__":
    raise SystemExit(main())
