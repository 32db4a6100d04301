"""STAND-IN until ``heatlit/report/stats.py`` lands: the 95% confidence interval of a mean.

Everything the dashboard says about uncertainty comes from :func:`mean_interval` here. It mirrors the
interface the statistics module is being written with (``mean_interval(values) -> Interval`` with
``mean``, ``low``, ``high``, ``n``, ``method``), so the integration is one import in
``heatlit/dashboard/tables.py`` and the deletion of this file.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

LEVEL = 0.95
# Two-sided 95% Student t quantiles t_{0.975, dof} for dof = 1..30 (standard tables).
T975 = (
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
    2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
    2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
)  # fmt: skip
Z975 = 1.959964


@dataclass(frozen=True)
class Interval:
    """A mean and its two-sided interval; ``method`` is ``"t"`` or ``"none"`` (n < 2, infinite ends)."""

    mean: float
    low: float
    high: float
    n: int
    method: str
    level: float = LEVEL


def t_quantile_975(dof: int) -> float:
    """``t_{0.975, dof}``: the table up to 30, the Cornish-Fisher expansion beyond (error < 1e-5)."""
    if dof < 1:
        raise ValueError(f"t quantile needs dof >= 1, got {dof}")
    if dof <= len(T975):
        return T975[dof - 1]
    z, v = Z975, float(dof)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
    )


def mean_interval(values: Iterable[float]) -> Interval:
    """Mean of independent values (per-seed paired differences) with its 95% Student t interval.

    ``mean ± t_{0.975, n-1} * sd / sqrt(n)``; for a single value the ends are infinite (``method="none"``),
    never a zero-width interval. Raises ValueError on no values or a non-finite one.
    """
    x = [float(v) for v in values]
    if not x or not all(math.isfinite(v) for v in x):
        raise ValueError(f"mean_interval: need finite values, got {x}")
    n, mean = len(x), math.fsum(x) / len(x)
    if n < 2:
        return Interval(mean, -math.inf, math.inf, n, "none")
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in x) / (n - 1))
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, "t")
