"""Dataset preparation: ``python -m heatlit.prepare human4d --root ROOT`` writes HUMAN4D's split lists."""
