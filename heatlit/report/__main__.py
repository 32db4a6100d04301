"""``python -m heatlit.report <multirun dir> [--out DIR] [--split test]``."""

from heatlit.report.cli import main

raise SystemExit(main())
