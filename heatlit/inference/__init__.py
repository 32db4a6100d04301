"""Prediction with a trained checkpoint (``python -m heatlit.predict``).

Modules: :mod:`~heatlit.inference.inputs` (depth maps, RGB images and person boxes from files),
:mod:`~heatlit.inference.outputs` (COCO keypoint results, overlays), :mod:`~heatlit.inference.run` (the work).
"""

from heatlit.inference.run import predict

__all__ = ["predict"]
