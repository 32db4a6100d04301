"""``python -m heatlit.models``: the params / GMACs table (see :mod:`heatlit.models.summary`)."""

from .summary import main

main()
