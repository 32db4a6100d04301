"""The one error type for malformed data (a missing file raises the builtin ``FileNotFoundError``)."""

from __future__ import annotations


class DataError(ValueError):
    """A data file or sample exists but is not what was expected (truncated, wrong shape, bad JSON).

    The message always names the offending file (or sample) and what was expected, so a failing
    epoch can be traced to one file without a debugger.
    """
