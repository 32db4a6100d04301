"""Lines that Lightning and torch print on every run and that say nothing about it, silenced one by one.

Each filter matches one known message exactly (its text and, for warnings, its category); every other warning
and log record stays visible. Installed by :func:`heatlit.training.run.main_guard`, so every entry point and
every job of a multirun gets them.
"""

from __future__ import annotations

import logging
import warnings

#: ``(message regex, category)`` of warnings about library internals that no setting of a run can change:
#: Lightning's own pytree helper still builds torch's deprecated ``LeafSpec`` (torch >= 2.10).
WARNINGS = ((r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),)
#: Text of rank-zero info records that advertise rather than inform (Lightning's cloud-logger tip).
LOG_LINES = ("try installing [litlogger]",)


class DropKnownLines(logging.Filter):
    """Drops log records whose message contains one of :data:`LOG_LINES`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in LOG_LINES)


def quiet_known_noise() -> None:
    """Install the filters (idempotent)."""
    for message, category in WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    import lightning.pytorch  # noqa: F401  (points lightning_utilities' rank-zero logger at Lightning's)
    from lightning_utilities.core import rank_zero

    # rank_zero_info logs through this module-level logger, which Lightning replaces by its own on import
    logger = rank_zero.log
    if not any(isinstance(f, DropKnownLines) for f in logger.filters):
        logger.addFilter(DropKnownLines())
