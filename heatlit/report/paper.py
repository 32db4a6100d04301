"""The reproduction report's own layout: its Table 2, Table 3 and claims, ours beside its numbers.

``table2.md`` / ``table2.csv`` hold the report's 16 rows in its order ("SH_4S (w/ quant) + ArgMax", ...);
``table3.md`` the best model's CoM and DARK rows; ``claims.md`` a verdict per claim with its evidence rows.
The report's numbers come from ``paper_tables.yaml`` (stored once, with their source); ours from the sweep's
rows (results.json through :mod:`heatlit.results`). Readings of the report (which heatlit decoder is its
"Standard", the RMSE unit, "best model") are in docs/REPRODUCTION.md.

Our models are placed against the report's by config name: ``hourglass`` is SH_4S, ``hrnet`` HRNet_4S, and
the CPU variants (``hourglass_tiny``) are labelled ``SH_4S-tiny`` on the same rows.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from heatlit.report.collect import Row, label
from heatlit.report.decoders import samples_interval
from heatlit.report.stats import Interval, mean_interval
from heatlit.report.tables import fmt

PAPER_FILE = Path(__file__).with_name("paper_tables.yaml")
MODELS = {"hourglass": "SH_4S", "hrnet": "HRNet_4S"}  # heatlit config -> the report's model
TINY = "_tiny"
ENCODINGS = {"quant": "w/ quant", "unquant": "w/o quant"}
# The report's decoders -> heatlit decoders, preferred first: "Standard" is eq. 2 (standard_top2); runs that
# did not score it show HRNet's per-axis rule (standard), marked with FALLBACK.
DECODERS = {
    "ArgMax": ("argmax",),
    "Standard": ("standard_top2", "standard"),
    "CoM": ("com",),
    "DARK": ("dark",),
}
FALLBACK = "†"
METRICS = ("pckh@0.1", "pckh@0.5", "rmse")
HEADERS = {"pckh@0.1": "PCKh-0.1 ↑", "pckh@0.5": "PCKh-0.5 ↑", "rmse": "RMSE ↓"}
LOWER_IS_BETTER = frozenset({"rmse"})
# The paper layout places runs by model and encoding alone; seeds repeat a setting.
PLACED_AXES = frozenset({"model", "encoding", "seed"})
BEST_BY = ("DARK", "pckh@0.1")  # "best performing model": highest DARK PCKh-0.1 (a reading)


# ------------------------------------------------------------------------------------- the report
@dataclass(frozen=True)
class PaperTables:
    """The report's Table 2 rows (in order) and the rows Table 3 repeats."""

    source: str
    rows: dict[tuple[str, str, str], dict[str, float]]  # (model, encoding, decoder) -> metric -> value
    table3: tuple[str, str, tuple[str, ...]]  # model, encoding, decoders

    def value(self, model: str, encoding: str, decoder: str, metric: str) -> float | None:
        return self.rows.get((model, encoding, decoder), {}).get(metric)


def load_paper(path: str | Path = PAPER_FILE) -> PaperTables:
    """Read ``paper_tables.yaml``."""
    data = yaml.safe_load(Path(path).read_text())
    metrics = data["metrics"]
    rows = {tuple(r[:3]): dict(zip(metrics, map(float, r[3:]), strict=True)) for r in data["table2"]}
    t3 = data["table3"]
    return PaperTables(data["source"], rows, (t3["model"], t3["encoding"], tuple(t3["decoders"])))


def row_label(model: str, encoding: str, decoder: str) -> str:
    """``SH_4S (w/ quant) + ArgMax``: the report's row label."""
    return f"{model} ({encoding}) + {decoder}"


# ------------------------------------------------------------------------------------------- ours
@dataclass(frozen=True, order=True)
class Setting:
    """One of our (model, encoding) pairs, placed against the report's rows."""

    order: tuple  # sort key: the report's model order, full size first, w/ quant first
    label: str  # "SH_4S-tiny"
    paper: str  # "SH_4S"
    encoding: str  # "w/ quant"

    @property
    def name(self) -> str:
        return f"{self.label} ({self.encoding})"


def place(model: str, encoding: str) -> Setting | None:
    """Our model and encoding choice as a :class:`Setting`, or None when the report has no such row."""
    base = model.removesuffix(TINY)
    if base not in MODELS or encoding not in ENCODINGS:
        return None
    paper = MODELS[base]
    tiny = model.endswith(TINY)
    order = (list(MODELS).index(base), tiny, list(ENCODINGS).index(encoding))
    return Setting(order, paper + ("-tiny" if tiny else ""), paper, ENCODINGS[encoding])


@dataclass(frozen=True)
class Estimate:
    """A mean over runs (or over paired differences) and its 95% CI: Student t over n >= 2 seeds, or, for a
    decoder comparison within a single run, the paired bootstrap over test samples; None for a single run
    without one."""

    mean: float | None
    n: int = 0
    interval: Interval | None = None

    @classmethod
    def of(cls, values: Sequence[float]) -> Estimate:
        if not values:
            return cls(None)
        iv = mean_interval(values)
        return cls(iv.mean, len(values), iv if iv.method != "none" else None)

    @property
    def half(self) -> float | None:
        return None if self.interval is None else self.interval.half_width

    def text(self, signed: bool = False) -> str:
        """``45.17`` (one run); ``45.17 ± 0.40`` over seeds; ``+0.25 [+0.10, +0.41]`` over test samples."""
        if self.mean is None or self.interval is None:
            return fmt(self.mean, signed)
        return self.interval.format(signed=signed)


@dataclass
class Placed:
    """Our runs placed against the report: setting -> seed -> decoder -> metric -> value."""

    runs: dict[Setting, dict[str, dict[str, dict[str, float | None]]]] = field(default_factory=dict)
    folders: dict[tuple[Setting, str], Path] = field(
        default_factory=dict
    )  # (setting, seed) -> the run's folder
    order: dict[str, int] = field(default_factory=dict)  # decoders in the order the runs scored them
    data: list[str] = field(default_factory=list)
    seeds: list[str] = field(default_factory=list)

    @property
    def settings(self) -> list[Setting]:
        return sorted(self.runs)

    def decoder(self, setting: Setting, paper_decoder: str) -> str | None:
        """The heatlit decoder standing for ``paper_decoder``: the first candidate every run scored."""
        runs = self.runs[setting].values()
        return next((d for d in DECODERS[paper_decoder] if all(d in r for r in runs)), None)

    def values(self, setting: Setting, decoder: str | None, metric: str) -> dict[str, float]:
        """seed -> value (runs without it left out)."""
        if decoder is None:
            return {}
        runs = self.runs[setting].items()
        return {s: r[decoder][metric] for s, r in runs if r.get(decoder, {}).get(metric) is not None}

    def paired(
        self, setting: Setting, better: str | None, other: str | None
    ) -> Callable[[str, str], Interval | None]:
        """``(seed, metric) ->`` the paired bootstrap over the run's test samples of decoder ``better`` minus
        ``other``, oriented (positive favours ``better``), or None without a usable ``per_sample.npz``
        (:func:`~heatlit.report.decoders.samples_interval`)."""

        def interval(seed: str, metric: str) -> Interval | None:
            folder = self.folders.get((setting, seed))
            if folder is None or better is None or other is None:
                return None
            a, b = (other, better) if metric in LOWER_IS_BETTER else (better, other)
            return samples_interval(folder, a, b, metric, self.runs[setting][seed])

        return interval

    def estimate(self, setting: Setting, decoder: str | None, metric: str) -> Estimate:
        return Estimate.of(list(self.values(setting, decoder, metric).values()))

    def others(self, setting: Setting) -> list[str]:
        """Decoders this setting's runs scored that stand for none of the report's."""
        used = {self.decoder(setting, d) for d in DECODERS}
        scored = {d for r in self.runs[setting].values() for d in r}
        return sorted(scored - used, key=lambda d: self.order.get(d, len(self.order)))


def place_rows(rows: Sequence[Row]) -> Placed:
    """Group the sweep's rows by setting and seed; rows of models or encodings the report lacks are left out."""
    placed = Placed()
    owner: dict[tuple[Setting, str], Path] = {}
    for row in rows:
        placed.order.setdefault(row.decoder, len(placed.order))
        setting = place(row.value("model"), row.value("encoding"))
        if setting is None:
            continue
        seed = row.value("seed")
        if owner.setdefault((setting, seed), row.job.path) != row.job.path:
            continue  # the same setting and seed twice: the first job wins
        placed.runs.setdefault(setting, {}).setdefault(seed, {})[row.decoder] = dict(row.metrics)
        placed.folders[(setting, seed)] = row.job.path
        name = (row.job.dataset or {}).get("name") or label(row.job.settings.get("data"))
        placed.data += [] if name in placed.data else [name]
        placed.seeds += [] if seed in placed.seeds else [seed]
    return placed


def place_paper(paper: PaperTables) -> Placed:
    """The report's own numbers as one run per full-size setting (heatlit decoder names), to test its claims."""
    placed = Placed(data=["HUMAN4D"], seeds=["report"])
    for (model, encoding, decoder), values in paper.rows.items():
        base = next(k for k, v in MODELS.items() if v == model)
        setting = place(base, next(k for k, v in ENCODINGS.items() if v == encoding))
        run = placed.runs.setdefault(setting, {}).setdefault("report", {})
        run[DECODERS[decoder][0]] = dict(values)
    return placed


def skip_reason(rows: Sequence[Row], axes: Sequence[str]) -> str | None:
    """Why the paper layout does not apply to a sweep, or None when it does."""
    extra = [a for a in axes if a not in PLACED_AXES]
    if extra:
        return (
            f"the sweep also varies {', '.join(extra)}; the report's rows differ in model and encoding only"
        )
    if not any(place(r.value("model"), r.value("encoding")) for r in rows):
        return (
            "no run has a model and encoding of the report's Table 2 (hourglass/hrnet[_tiny] x quant/unquant)"
        )
    return None


# ---------------------------------------------------------------------------------------- tables
def header(placed: Placed, paper: PaperTables, split: str) -> list[str]:
    """Where our numbers come from, what the report's are, and the units."""
    seeds = ", ".join(placed.seeds)
    runs = sum(len(v) for v in placed.runs.values())
    lines = [
        f"Ours: {split} split of {', '.join(placed.data)}; {runs} run(s), seed(s) {seeds}. "
        f"The report's: HUMAN4D test split, {paper.source}.",
        "PCKh in percent. RMSE: ours in input pixels; the report's unit is not stated "
        "(docs/REPRODUCTION.md).",
    ]
    if any(s.label != s.paper for s in placed.runs):
        lines.append(
            "`-tiny`: heatlit's CPU-scale models, placed against the report's rows for the full-size ones."
        )
    if len(placed.seeds) > 1:
        lines.append(
            f"Cells over several seeds: mean ± half-width, 95% CI, Student t, n={len(placed.seeds)} seeds."
        )
    return lines


def table_lines(rows: list[tuple[str, dict[str, Estimate], dict[str, float | None]]]) -> list[str]:
    """Markdown: label, then ours and the report's per metric."""
    head = ["Model + Coordinate Decoding"] + [h for m in METRICS for h in (HEADERS[m], "report")]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (2 * len(METRICS))]
    for text, ours, theirs in rows:
        cells = [text] + [c for m in METRICS for c in (ours[m].text(), fmt(theirs.get(m)))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def table2_rows(placed: Placed, paper: PaperTables) -> list[dict]:
    """The report's rows in its order; each with ours for every setting placed on it (or none)."""
    out = []
    for model in MODELS.values():
        settings = [s for s in placed.settings if s.paper == model]
        for decoder in DECODERS:
            for encoding in ENCODINGS.values():
                theirs = paper.rows[(model, encoding, decoder)]
                mine = [s for s in settings if s.encoding == encoding]
                for s in mine or [None]:
                    used = placed.decoder(s, decoder) if s else None
                    mark = FALLBACK if used is not None and used != DECODERS[decoder][0] else ""
                    out.append(
                        {
                            "row": row_label(s.label if s else model, encoding, decoder + mark),
                            "report_row": row_label(model, encoding, decoder),
                            "setting": s,
                            "decoder": used,
                            "ours": {
                                m: placed.estimate(s, used, m) if s else Estimate(None) for m in METRICS
                            },
                            "report": theirs,
                        }
                    )
    return out


def table2_markdown(placed: Placed, paper: PaperTables, split: str) -> str:
    rows = table2_rows(placed, paper)
    lines = ["# Table 2 in the report's layout", "", *header(placed, paper, split)]
    if any(r["row"].endswith(FALLBACK) for r in rows):
        lines.append(
            f"{FALLBACK} Standard here is HRNet's per-axis quarter-pixel rule (`standard`): these runs did not "
            "score the report's eq. 2 (`standard_top2`)."
        )
    lines += ["", *table_lines([(r["row"], r["ours"], r["report"]) for r in rows])]
    extra = [
        (f"{s.name} + {d}", {m: placed.estimate(s, d, m) for m in METRICS})
        for s in placed.settings
        for d in placed.others(s)
    ]
    if extra:
        lines += [
            "",
            "## Decoders the report did not score",
            "",
            "| Model + Coordinate Decoding | " + " | ".join(HEADERS[m] for m in METRICS) + " |",
            "| --- |" + " ---: |" * len(METRICS),
        ]
        lines += ["| " + " | ".join([t] + [v[m].text() for m in METRICS]) + " |" for t, v in extra]
    return "\n".join(lines) + "\n"


def write_table2_csv(placed: Placed, paper: PaperTables, path: Path) -> Path:
    """One line per row of table2.md: labels, heatlit's decoder, runs, ours, its CI half-width, the report's."""
    header_row = ["row", "report_row", "decoder", "n"]
    header_row += [c for m in METRICS for c in (m, f"{m}_ci95_half", f"{m}_report")]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header_row)
        for r in table2_rows(placed, paper):
            n = max((e.n for e in r["ours"].values()), default=0)
            cells = [r["row"], r["report_row"], r["decoder"] or "", n]
            for m in METRICS:
                e = r["ours"][m]
                cells += [_raw(e.mean), _raw(e.half), _raw(r["report"].get(m))]
            writer.writerow(cells)
    return path


def _raw(value: float | None) -> str:
    return "" if value is None else repr(value)


def best_setting(placed: Placed) -> Setting | None:
    """The setting with the highest DARK PCKh-0.1 (the report's "best performing model"); ties: first."""
    decoder, metric = BEST_BY
    scored = [
        (e.mean, s)
        for s in placed.settings
        if (e := placed.estimate(s, placed.decoder(s, decoder), metric)).mean is not None
    ]
    return max(scored, key=lambda t: t[0])[1] if scored else None


def table3_markdown(placed: Placed, paper: PaperTables, split: str) -> str:
    model, encoding, decoders = paper.table3
    best = best_setting(placed)
    lines = [
        "# Table 3 in the report's layout: the best model, CoM vs DARK",
        "",
        *header(placed, paper, split),
    ]
    if best is None:
        return "\n".join([*lines, "", "No run scored DARK's PCKh-0.1: no best model to show."]) + "\n"
    lines += [
        f"Best model here: {best.name} (highest DARK PCKh-0.1); the report's: {model} ({encoding}).",
        "",
    ]
    rows = [
        (
            f"{best.name} + {d}",
            {m: placed.estimate(best, placed.decoder(best, d), m) for m in METRICS},
            paper.rows[(model, encoding, d)],
        )
        for d in decoders
    ]
    return "\n".join([*lines, *table_lines(rows)]) + "\n"


# ---------------------------------------------------------------------------------------- claims
@dataclass(frozen=True)
class Evidence:
    """One comparison behind a claim: the claimed-better side against another, on one metric.

    ``diff`` is oriented so that a positive value favours the claim (for RMSE: other minus claimed side).
    """

    subject: str
    better: str
    other: str
    metric: str
    a: Estimate
    b: Estimate
    diff: Estimate
    verdict: str  # "supports", "contradicts", "not resolved" ("context": shown, not judged)
    report: float | None = None  # the same oriented difference in the report's numbers


def oriented(a: float, b: float, metric: str) -> float:
    """``a - b``, sign flipped for lower-is-better metrics: positive favours ``a``."""
    return b - a if metric in LOWER_IS_BETTER else a - b


VERDICTS = {1: "supports", -1: "contradicts", 0: "not resolved"}


def judge(diff: Estimate) -> str:
    """Whether the 95% CI of the (oriented) difference excludes 0; a single run without one: its sign."""
    if diff.interval is not None:
        return VERDICTS[diff.interval.sign]
    return VERDICTS[(diff.mean > 0) - (diff.mean < 0)]


def compare(
    subject, better, other, metric, a: dict[str, float], b: dict[str, float], report, paired=None
) -> Evidence | None:
    """Paired over the seeds both sides have; None when they share none.

    ``paired``: for decoders of one setting, ``(seed, metric) -> Interval | None``, the per-sample bootstrap
    used when a single seed gives no interval over seeds.
    """
    seeds = [s for s in a if s in b]
    if not seeds:
        return None
    diff = Estimate.of([oriented(a[s], b[s], metric) for s in seeds])
    if diff.interval is None and paired is not None:
        diff = replace(diff, interval=paired(seeds[0], metric))
    return Evidence(
        subject,
        better,
        other,
        metric,
        Estimate.of([a[s] for s in seeds]),
        Estimate.of([b[s] for s in seeds]),
        diff,
        judge(diff),
        report,
    )


def paper_diff(
    paper: PaperTables, metric: str, a: tuple[str, str, str], b: tuple[str, str, str]
) -> float | None:
    va, vb = paper.value(*a, metric), paper.value(*b, metric)
    return None if va is None or vb is None else oriented(va, vb, metric)


def claim1(placed: Placed, paper: PaperTables) -> list[Evidence]:
    """DARK against each other decoder of the report, per setting and metric."""
    out = []
    for s in placed.settings:
        dark = placed.decoder(s, "DARK")
        for other in ("ArgMax", "Standard", "CoM"):
            dec = placed.decoder(s, other)
            for m in METRICS:
                report = paper_diff(paper, m, (s.paper, s.encoding, "DARK"), (s.paper, s.encoding, other))
                a, b = placed.values(s, dark, m), placed.values(s, dec, m)
                ev = compare(s.name, "DARK", other, m, a, b, report, placed.paired(s, dark, dec))
                if ev is not None:
                    out.append(ev)
    return out


def claim2(placed: Placed, paper: PaperTables) -> list[Evidence]:
    """w/o quant against w/ quant, per model, decoder and metric (the same heatlit decoder on both sides)."""
    out = []
    by_model: dict[str, dict[str, Setting]] = {}
    for s in placed.settings:
        by_model.setdefault(s.label, {})[s.encoding] = s
    w, wo = ENCODINGS["quant"], ENCODINGS["unquant"]
    for model_label, pair in by_model.items():
        if w not in pair or wo not in pair:
            continue
        for d in DECODERS:
            runs = [*placed.runs[pair[w]].values(), *placed.runs[pair[wo]].values()]
            dec = next((c for c in DECODERS[d] if all(c in r for r in runs)), None)
            for m in METRICS:
                report = paper_diff(paper, m, (pair[w].paper, wo, d), (pair[w].paper, w, d))
                a, b = placed.values(pair[wo], dec, m), placed.values(pair[w], dec, m)
                ev = compare(f"{model_label} + {d}", wo, w, m, a, b, report)
                if ev is not None:
                    out.append(ev)
    return out


def observation(placed: Placed, paper: PaperTables) -> tuple[Setting | None, list[Evidence]]:
    """On the best setting: CoM against DARK, RMSE first (the observation), then PCKh as context."""
    best = best_setting(placed)
    if best is None:
        return None, []
    model, encoding, _ = paper.table3
    out = []
    for m in ("rmse", "pckh@0.1", "pckh@0.5"):
        report = paper_diff(paper, m, (model, encoding, "CoM"), (model, encoding, "DARK"))
        com, dark = placed.decoder(best, "CoM"), placed.decoder(best, "DARK")
        a, b = placed.values(best, com, m), placed.values(best, dark, m)
        ev = compare(best.name, "CoM", "DARK", m, a, b, report, placed.paired(best, com, dark))
        if ev is not None:
            out.append(ev if m == "rmse" else replace(ev, verdict="context"))
    return best, out


def verdict(evidence: Sequence[Evidence]) -> str:
    """held: every comparison supports; not held: one contradicts; otherwise not resolved."""
    if not evidence:
        return "not resolved"
    kinds = {e.verdict for e in evidence}
    return "not held" if "contradicts" in kinds else "held" if kinds == {"supports"} else "not resolved"


def basis(evidence: Sequence[Evidence]) -> str:
    """What the verdicts rest on: ``95% CI over 3 seeds``, ``single run, 95% CI over test samples (paired
    bootstrap)``, ``single run`` (no interval: judged by the sign), or several of these joined by ``; ``."""
    kinds = {e.diff.interval.method if e.diff.interval is not None else "none" for e in evidence}
    ns = sorted({e.diff.n for e in evidence if e.diff.n > 1})
    parts = []
    if ns:
        parts.append(f"95% CI over {'-'.join(map(str, (ns[0], ns[-1]))) if len(ns) > 1 else ns[0]} seeds")
    if "bootstrap" in kinds:
        parts.append("single run, 95% CI over test samples (paired bootstrap)")
    if "none" in kinds:
        parts.append("single run" + (" without per_sample.npz: by sign" if len(kinds) > 1 else ""))
    return "; ".join(parts)


def counts(evidence: Sequence[Evidence]) -> str:
    """``comparisons: 20 support, 3 contradict, 1 not resolved``."""
    n = {k: sum(1 for e in evidence if e.verdict == k) for k in ("supports", "contradicts", "not resolved")}
    return f"comparisons: {n['supports']} support, {n['contradicts']} contradict, {n['not resolved']} not resolved"


def paper_verdict(evidence: Sequence[Evidence]) -> str:
    """The verdict on the report's own numbers (one value per row: by sign), with its counts."""
    return f"{verdict(evidence)} ({counts(evidence)})" if evidence else "no counterpart rows"


CLAIMS = (
    (
        "Claim 1: DARK beats ArgMax, Standard and CoM for every model, encoding and metric",
        'The report: "fully supported" (sec. 4.1.1), naming one exception: the RMSE of SH_4S (w/o quant) + CoM.',
        ("DARK vs", "DARK", "other"),
        claim1,
    ),
    (
        "Claim 2: w/o quant beats w/ quant for every model, decoder and metric",
        'The report: "totally supporting the second claim of the authors" (sec. 4.1.2).',
        (None, "w/o quant", "w/ quant"),
        claim2,
    ),
)


def evidence_lines(evidence: Sequence[Evidence], columns: tuple[str | None, str, str]) -> list[str]:
    """The evidence table: setting, [the other side,] metric, both sides, Δ, n, verdict, the report's Δ."""
    versus, a, b = columns
    head = ["setting", *([versus] if versus else []), "metric", a, b, "Δ", "n", "verdict", "report Δ"]
    align = ["---"] * (len(head) - 6) + ["---:", "---:", "---:", "---:", "---", "---:"]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    for e in evidence:
        cells = [
            e.subject,
            *([e.other] if versus else []),
            HEADERS[e.metric].split()[0],
            e.a.text(),
            e.b.text(),
        ]
        cells += [e.diff.text(signed=True), str(e.diff.n), e.verdict, fmt(e.report, signed=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def claims_markdown(placed: Placed, paper: PaperTables, split: str) -> tuple[str, list[str]]:
    """``claims.md`` and one summary line per claim (for the console and report.md)."""
    lines = ["# The reproduction report's claims, tested", "", *header(placed, paper, split)]
    lines.append(
        "Δ is oriented so that a positive value favours the claim (for RMSE: the other side minus the claimed "
        "side). Over several seeds: the mean paired difference and its 95% CI (Student t over seeds). A single "
        "run: decoders are compared on the same test samples, with a paired bootstrap 95% CI over them when the "
        'run left per_sample.npz; without it, or for the encodings, a single run has no error bar ("single run") '
        'and is judged by its sign. A difference whose interval contains 0 is not resolved. "report Δ" is the '
        "same difference in the report's numbers."
    )
    summary, report = [], place_paper(paper)
    for title, theirs, columns, gather in CLAIMS:
        evidence = gather(placed, paper)
        found, why = verdict(evidence), basis(evidence) if evidence else "no runs to test it"
        summary.append(f"{title.split(':')[0]}: {found} ({why})")
        lines += ["", f"## {title}", ""]
        if not evidence:
            lines.append(f"**{found}** ({why}).")
            continue
        lines += [
            f"**{found}** ({why}); {counts(evidence)}.",
            f"On the report's own numbers: {paper_verdict(gather(report, paper))}. {theirs}",
            "",
            *evidence_lines(evidence, columns),
        ]
    best, evidence = observation(placed, paper)
    decisive = [e for e in evidence if e.metric == "rmse"]
    found, why = verdict(decisive), basis(decisive) if decisive else "no runs to test it"
    summary.append(f"CoM vs DARK: {found} ({why})")
    lines += ["", "## CoM vs DARK on the best model: CoM's RMSE is lower than DARK's", ""]
    if not evidence:
        lines.append(f"**{found}** ({why}).")
        return "\n".join(lines) + "\n", summary
    theirs = [e for e in observation(report, paper)[1] if e.metric == "rmse"]
    model, encoding, _ = paper.table3
    lines += [
        f"**{found}** ({why}) on {best.name}, the best model here (highest DARK PCKh-0.1).",
        f"On the report's own numbers ({model} ({encoding}), Table 3): {paper_verdict(theirs)}. "
        'The report: "in RMSE ... CoM presents lower errors than DARK" (sec. 4.2.1). Only the RMSE row '
        "decides; the PCKh rows show how comparable the two are.",
        "",
        *evidence_lines(evidence, (None, "CoM", "DARK")),
    ]
    return "\n".join(lines) + "\n", summary


# ------------------------------------------------------------------------------------------ write
def write_paper(
    rows: Sequence[Row], axes: Sequence[str], split: str, out: Path
) -> tuple[dict[str, Path], list[str]]:
    """Write table2.md/csv, table3.md and claims.md into ``out``.

    Returns:
        (file name -> path, summary lines); no files and the reason as the one line when the layout does not
        apply (the sweep varies something besides model, encoding and seed, or has none of the report's rows).
    """
    reason = skip_reason(rows, axes)
    if reason is not None:
        return {}, [f"paper layout not written: {reason}"]
    paper, placed = load_paper(), place_rows(rows)
    written = {name: out / name for name in ("table2.md", "table2.csv", "table3.md", "claims.md")}
    written["table2.md"].write_text(table2_markdown(placed, paper, split))
    write_table2_csv(placed, paper, written["table2.csv"])
    written["table3.md"].write_text(table3_markdown(placed, paper, split))
    text, summary = claims_markdown(placed, paper, split)
    written["claims.md"].write_text(text)
    return written, summary
