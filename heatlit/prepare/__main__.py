"""``python -m heatlit.prepare human4d --root ROOT [--step auto|N] [--drop 100] [--dry-run] [--force]``."""

from heatlit.prepare.cli import main

raise SystemExit(main())
