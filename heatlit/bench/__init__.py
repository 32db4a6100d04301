"""Benchmarks. ``python -m heatlit.bench codecs`` (= ``make bench``) runs :mod:`heatlit.bench.codecs`.

Benchmarks print a report and return numbers; they never assert. ``--strict`` turns failed targets
into a non-zero exit code, ``--json PATH`` writes the numbers.
"""
