"""Model zoo: heatmap regressors written in plain torch.

Every model maps ``x[B, C, H, W]`` to a list of heatmap tensors, one per supervised stage with the final
prediction last: ``[B, K, H/stride, W/stride]`` for the 2D head, ``[B, K, D, H/stride, W/stride]`` for the
3D (integral regression) head. Models carry ``stride``, ``num_joints``, ``head_dim`` and ``depth_bins``.
Build them from the Hydra nodes in ``conf/model`` (``hydra.utils.instantiate``) or directly.

- :class:`StackedHourglass` (Newell et al. 2016), ``model=hourglass``
- :class:`HRNet` (Sun et al. 2019), ``model=hrnet``
- :class:`SimpleBaseline` (Xiao et al. 2018), ``model=simplebaseline``

``python -m heatlit.models`` prints parameters and GMACs of the paper-scale configurations.
"""

from .base import HeatmapModel
from .heads import HeatmapHead
from .hourglass import StackedHourglass
from .hrnet import HRNet
from .pretrained import LoadReport, load_pretrained
from .resnet import ResNet
from .simple_baseline import SimpleBaseline
from .summary import count_macs, count_params

__all__ = [
    "HRNet",
    "HeatmapHead",
    "HeatmapModel",
    "LoadReport",
    "ResNet",
    "SimpleBaseline",
    "StackedHourglass",
    "count_macs",
    "count_params",
    "load_pretrained",
]
