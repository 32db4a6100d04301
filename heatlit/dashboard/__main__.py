"""``python -m heatlit.dashboard DIR [--out page.html]``."""

from heatlit.dashboard.cli import main

raise SystemExit(main())
