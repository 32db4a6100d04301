"""heatlit: heatmap-based keypoint coordinate representation, encoded and decoded honestly.

The coordinate conventions live in :mod:`heatlit.codecs`; everything else follows them.
"""

__version__ = "0.1.0"
