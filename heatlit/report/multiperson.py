"""The multi-person section of a sweep report: candidate peaks scored per decoder, and what each multi-peak
option changes on the same forward passes (blur before NMS, DARK refinement).

Reads the rows of jobs whose results.json ``dataset`` says ``multi_person`` (metrics ``peak_*`` of
:class:`heatlit.metrics.PeakDetection`); everything else of the report is untouched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from heatlit.report.collect import Row, natural_key
from heatlit.report.tables import Table, difference, results_table, sort_rows, to_markdown

#: (what changes, decoder with it, decoder without it): the multi-peak variants of
#: ``conf/experiment/multiperson.yaml``, each pair scored on the same forward passes.
COMPARISONS: tuple[tuple[str, str, str], ...] = (
    ("blur before NMS (integer peaks)", "multipeak_blur_int", "multipeak_int"),
    ("blur before NMS (Taylor-refined peaks)", "multipeak_blur", "multipeak"),
    ("DARK refinement (blur around each peak, Taylor step)", "multipeak_dark", "multipeak_int"),
    ("Taylor step on the map as predicted", "multipeak", "multipeak_int"),
    ("Taylor step after blur before NMS", "multipeak_blur", "multipeak_blur_int"),
)
_AT = re.compile(r"^peak_(ap|f1|p|r)@(.+)$")


def multi_person_rows(rows: Sequence[Row]) -> list[Row]:
    """The rows of jobs trained and scored on multi-person data."""
    return [r for r in rows if (r.job.dataset or {}).get("multi_person")]


def peak_columns(rows: Sequence[Row], kinds: Sequence[str] = ("ap", "f1")) -> list[str]:
    """``peak_ap``, then ``peak_<kind>@t`` for each kind and threshold present, thresholds ascending."""
    present = {m for r in rows for m, v in r.metrics.items() if v is not None}
    at = sorted((m for m in present if (hit := _AT.match(m)) and hit[1] in kinds), key=_column_key(kinds))
    return (["peak_ap"] if "peak_ap" in present else []) + at


def _column_key(kinds: Sequence[str]):
    def key(metric: str):
        kind, t = _AT.match(metric).groups()
        return kinds.index(kind), natural_key(t)

    return key


def peaks_table(rows: Sequence[Row], axes: Sequence[str], split: str = "test") -> Table:
    """One record per job and decoder: mean AP over the thresholds, then AP and F1 at each threshold."""
    table = results_table(rows, axes, peak_columns(rows), split)
    table.title = f"multi-person peaks ({split}): {' x '.join([*axes, 'decoder'])}"
    return table


def variants_table(rows: Sequence[Row], axes: Sequence[str]) -> Table | None:
    """Per job and :data:`COMPARISONS` entry: the variant's metrics minus its baseline's (same forward
    passes, so the difference is the decoder's alone). None when no job scored a pair."""
    metrics = peak_columns(rows)
    by_job: dict[tuple, dict[str, Row]] = {}
    for row in sort_rows(rows, axes):
        by_job.setdefault(tuple(row.value(a) for a in axes), {})[row.decoder] = row
    table = Table(
        "multi-peak options: with − without, same forward passes",
        [*axes, "change"],
        metrics,
        signed=True,
        note="positive: the option helps",
    )
    for key, decoders in by_job.items():
        for what, with_it, without in COMPARISONS:
            if with_it in decoders and without in decoders:
                record = {**dict(zip(axes, key)), "change": what}
                a, b = decoders[with_it].metrics, decoders[without].metrics
                record.update({m: difference(a.get(m), b.get(m)) for m in metrics})
                table.records.append(record)
    return table if table.records else None


def section_markdown(rows: Sequence[Row], axes: Sequence[str], split: str = "test") -> str:
    """The report section, or "" when no job was multi-person."""
    rows = multi_person_rows(rows)
    if not rows:
        return ""
    parts = [
        f"## Multi-person peaks ({split})\n",
        "Every decoder's candidate peaks per channel matched one to one to every person's visible joints "
        "(most pairs within the distance, then the shortest; docs/MULTIPERSON.md). AP: ranked by score, "
        "`peak_ap` its mean over the distance thresholds; F1 of all peaks; distances in input px, values in "
        "percent. Single-peak decoders offer one candidate per channel.\n",
        to_markdown(peaks_table(rows, axes, split), axes),
    ]
    variants = variants_table(rows, axes)
    if variants is not None:
        parts += [
            f"### {variants.title[0].upper()}{variants.title[1:]}\n",
            f"{variants.note}.\n",
            to_markdown(variants),
        ]
    return "\n".join(parts)
