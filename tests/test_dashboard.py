"""``heatlit.dashboard`` on a hand-built sweep folder with known numbers, and the page in headless Chromium."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from heatlit.dashboard.cli import main, write_dashboard
from heatlit.dashboard.collect import collect, read_curves
from heatlit.report.failures import CRASHED, UNDECIDED, diagnose, last_error_line

DECODERS = ("argmax", "dark")
SEEDS = (1314, 1315, 1316)
# test pckh@0.1 of (encoding, seed, decoder); unquant - quant for dark is +1, +2, +3 (mean 2, sd 1)
PCKH = {
    ("quant", 1314, "argmax"): 10.0,
    ("quant", 1315, "argmax"): 11.0,
    ("quant", 1316, "argmax"): 12.0,
    ("unquant", 1314, "argmax"): 10.5,
    ("unquant", 1315, "argmax"): 11.5,
    ("unquant", 1316, "argmax"): 12.5,
    ("quant", 1314, "dark"): 20.0,
    ("quant", 1315, "dark"): 20.0,
    ("quant", 1316, "dark"): 20.0,
    ("unquant", 1314, "dark"): 21.0,
    ("unquant", 1315, "dark"): 22.0,
    ("unquant", 1316, "dark"): 23.0,
}
# dark's rmse differences -0.9, -1.0, -1.1: mean -1, sd 0.1; argmax's are +0.5, -0.5, 0 (mean 0)
RMSE = {("quant", s, d): 5.0 for s in SEEDS for d in DECODERS}
RMSE |= {("unquant", s, "dark"): 5.0 + x for s, x in zip(SEEDS, (-0.9, -1.0, -1.1))}
RMSE |= {("unquant", s, "argmax"): 5.0 + x for s, x in zip(SEEDS, (0.5, -0.5, 0.0))}
TRACEBACK = """[2026-01-01 10:00:00,000][heatlit.data.synth][INFO] - generated 4000 synthetic samples
Traceback (most recent call last):
  File "heatlit/train.py", line 1, in <module>
    main()
ValueError: first failure
\nDuring handling of the above exception, another exception occurred:\n
Traceback (most recent call last):
  File "heatlit/training/run.py", line 9, in train
    trainer.fit(module)
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB
srun: error: node12: task 0: Exited with exit code 1
"""


def png(width: int = 3, height: int = 2) -> bytes:
    """A valid RGB PNG, hand-assembled (no image library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes([200, 30, 30] * width) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_job(root: Path, num: int, encoding: str, seed: int, launcher: str = "basic") -> Path:
    """A Hydra job folder as ``python -m heatlit.train -m`` leaves it, before results.json."""
    job = root / f"{num}_hourglass_tiny_{encoding}_mse"
    (job / ".hydra").mkdir(parents=True)
    overrides = [f"encoding={encoding}", f"seed={seed}", "logger=csv"]
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    choices = {"model": "hourglass_tiny", "encoding": encoding, "data": "synth", "loss": "mse"}
    choices |= {"decoder@decoders.dark": "dark", "hydra/launcher": launcher}
    hydra = {"hydra": {"runtime": {"choices": choices}, "job": {"num": num, "name": "train"}}}
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": seed}))
    return job


def write_metrics(job: Path, epochs: int, seed: int) -> None:
    """CSVLogger layout: train/loss and lr rows per step, val rows per epoch, one test row at the end."""
    columns = ["epoch", "lr-Adam", "step", "train/loss", "test/dark/pckh@0.1"]
    columns += [f"val/{d}/{m}" for d in DECODERS for m in ("pckh@0.1", "rmse")]
    rows = [{"lr-Adam": 0.002, "step": 0}]
    for epoch in range(epochs):
        for step in (2 * epoch, 2 * epoch + 1):
            rows.append({"epoch": epoch, "step": step, "train/loss": 1.0 / (step + 1) + seed * 1e-6})
        val = {f"val/{d}/pckh@0.1": 10.0 * (epoch + 1) + i for i, d in enumerate(DECODERS)}
        val |= {f"val/{d}/rmse": 9.0 - epoch for d in DECODERS}
        rows.append({"epoch": epoch, "step": 2 * epoch + 1, **val})
    (job / "csv").mkdir()
    with (job / "csv" / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)


def finish_job(job: Path, encoding: str, seed: int) -> None:
    test = {d: {"pckh@0.1": PCKH[(encoding, seed, d)], "rmse": RMSE[(encoding, seed, d)]} for d in DECODERS}
    # dark's val rmse is null (a NaN when written): shown as a dash, sorted last
    val = {d: {"pckh@0.1": 30.0 + i, "rmse": 7.0 if d == "argmax" else None} for i, d in enumerate(DECODERS)}
    choices = {"model": "hourglass_tiny", "encoding": encoding, "data": "synth", "loss": "mse", "sigma": 2.0}
    payload = {"choices": choices | {"stride": 4, "seed": seed}, "results": {"val": val, "test": test}}
    (job / "results.json").write_text(json.dumps(payload | {"wall_time_s": 10.0, "device": "cpu"}))
    (job / "qualitative.png").write_bytes(png())


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Six finished runs (2 encodings x 3 seeds) and three without results:

    6: crashed, its log ends in a traceback; 7: no log line, but job 8 started after it (basic launcher);
    8: the last job, a log line and two epochs of curves, no error: running or crashed.
    """
    root = tmp_path_factory.mktemp("multirun") / "2026-01-01_10-00-00"
    num = 0
    for encoding in ("quant", "unquant"):
        for seed in SEEDS:
            job = make_job(root, num, encoding, seed)
            write_metrics(job, 3, seed)
            finish_job(job, encoding, seed)
            num += 1
    (make_job(root, 6, "quant", 1317) / "train.log").write_text(TRACEBACK)
    (make_job(root, 7, "quant", 1318) / "train.log").write_text("")
    running = make_job(root, 8, "unquant", 1317)
    (running / "train.log").write_text(
        "[2026-01-01 10:05:00,000][heatlit.data.synth][INFO] - generated 4000\n"
    )
    write_metrics(running, 2, 1317)
    (root / "report").mkdir()
    (root / "report" / "decoders.png").write_bytes(png(4, 4))
    (root / "report" / "qualitative.png").write_bytes(png(5, 5))  # a montage of the runs' own: left out
    (root / "report" / "broken.png").write_bytes(b"not a png")
    return root


@pytest.fixture(scope="module")
def page(sweep, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("page") / "dashboard.html"
    assert main([str(sweep), "--out", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def embedded(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="dashboard-data">(.*?)</script>', page, re.S)
    return json.loads(match.group(1))


class Tables(HTMLParser):
    """Each table's rows as ``[(text, data-v, class), ...]``, header row included, keyed by table id."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str | None, str]]]] = {}
        self.links: list[tuple[str, str, str]] = []
        self.table = None
        self.cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [(tag, k, v) for k, v in attrs.items() if k in ("src", "href") and v]
        if tag == "table":
            self.table = self.tables.setdefault(attrs.get("id", f"table{len(self.tables)}"), [])
        elif tag == "tr" and self.table is not None:
            self.table.append([])
        elif tag in ("td", "th") and self.table is not None:
            self.cell = [[], attrs.get("data-v"), attrs.get("class", "")]

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[0].append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            text, value, css = self.cell
            self.table[-1].append(("".join(text).strip(), value, css))
            self.cell = None
        elif tag == "table":
            self.table = None


def parse(page: str) -> Tables:
    parser = Tables()
    parser.feed(page)
    return parser


def column(table, header: str) -> list[str]:
    index = [text for text, _, _ in table[0]].index(header)
    return [row[index][0] for row in table[1:]]


# ------------------------------------------------------------------------------------------- pieces


def test_last_error_line_picks_the_closing_exception():
    lines = TRACEBACK.splitlines()
    assert last_error_line(lines) == "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    slurm = ["epoch 3", "slurmstepd: error: *** JOB 12 ON n1 CANCELLED AT 2026-01-01 DUE TO TIME LIMIT ***"]
    assert last_error_line(slurm) == slurm[1]
    hydra_hint = [
        "Error executing job with overrides: ['seed=1']",
        "Set the environment variable HYDRA_FULL_ERROR=1",
    ]
    assert last_error_line(hydra_hint) is None
    # an exception whose name says nothing of errors still closes its traceback
    closing = ["Traceback (most recent call last):", '  File "x.py", line 1', "StopIteration"]
    assert last_error_line(closing) == "StopIteration"
    assert last_error_line(["[2026][heatlit.data.synth][INFO] - generated", "Epoch 3/11"]) is None


def test_submitit_stderr_is_read_for_its_array_task(tmp_path):
    """hydra/launcher=slurm: array task i of <sweep>/.submitit/<id>_i/ captured job i's stderr."""
    job = make_job(tmp_path, 2, "quant", 1, launcher="submitit_slurm")
    for task, message in ((1, "KeyError: 'other job'"), (2, "RuntimeError: NCCL timeout")):
        folder = tmp_path / ".submitit" / f"4242_{task}"
        folder.mkdir(parents=True)
        (folder / f"4242_{task}_0_log.err").write_text(
            f"Traceback (most recent call last):\n  x\n{message}\n"
        )
    status, line, kind, source = diagnose(job, tmp_path, 2)
    assert (status, line, kind, source.name) == (
        CRASHED,
        "RuntimeError: NCCL timeout",
        "last error line",
        "4242_2_0_log.err",
    )
    assert diagnose(job, tmp_path, 3)[:2] == (UNDECIDED, None)


def test_curves_merge_resumed_versions(tmp_path):
    """A resumed run logs into csv/resumed-*/metrics.csv; its epochs continue (and replace) the first file's."""
    first, second = tmp_path / "csv" / "metrics.csv", tmp_path / "csv" / "resumed-20260101" / "metrics.csv"
    second.parent.mkdir(parents=True)
    first.write_text("epoch,step,val/dark/rmse,train/loss\n0,1,9.0,\n1,3,8.0,\n,0,,0.5\n")
    second.write_text("epoch,step,val/dark/rmse\n1,3,7.5\n2,5,7.0\n")
    curves, problem = read_curves([first, second])
    assert problem is None
    assert (curves["val/dark/rmse"].x, curves["val/dark/rmse"].y) == ([0, 1, 2], [9.0, 7.5, 7.0])
    assert (curves["train/loss"].x, curves["train/loss"].y) == ([0], [0.5])
    first.write_bytes(b"epoch,step\n\xff\xfe\x00broken")
    assert read_curves([first])[1].startswith(str(first))


# ------------------------------------------------------------------------------------------- the page


def test_collect_sees_every_job_and_its_state(sweep):
    folder = collect(sweep)
    assert folder.axes == ["model", "encoding", "seed"]
    assert [r.status for r in folder.runs] == ["finished"] * 6 + [CRASHED, CRASHED, UNDECIDED]
    crashed, ended, running = folder.runs[6:]
    assert crashed.line == "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert crashed.line_source.name == "train.log"
    assert ended.line is None and "later job" in ended.note
    assert running.line.endswith("generated 4000") and running.last_epoch() == 1
    assert [p.name for p in folder.report_images] == ["decoders.png"]
    assert [p.name for p in folder.unreadable_images] == ["broken.png"]


def test_page_embeds_every_run_curve(page):
    data = embedded(page)
    runs = {r["id"]: r for r in data["runs"]}
    assert len(runs) == 9
    run = runs["4_hourglass_tiny_unquant_mse"]
    assert run["label"] == "hourglass_tiny/unquant/seed=1315"
    assert run["filters"] == {"model": "hourglass_tiny", "encoding": "unquant", "seed": "1315"}
    assert run["curves"]["val/dark/pckh@0.1"] == [[0, 1, 2], [11.0, 21.0, 31.0]]
    assert run["curves"]["train/loss"] == [[0, 1, 2, 3, 4, 5], [1.0 / (s + 1) + 1315e-6 for s in range(6)]]
    assert run["curves"]["lr-Adam"] == [[0], [0.002]]
    assert not any(name.startswith("test/") for name in run["curves"])
    assert runs["8_hourglass_tiny_unquant_mse"]["curves"]["val/argmax/rmse"] == [[0, 1], [9.0, 8.0]]
    assert (data["decoders"], data["metrics"], data["defaultMetric"]) == (
        ["argmax", "dark"],
        ["pckh@0.1", "rmse"],
        "pckh@0.1",
    )
    assert data["trainSeries"][0] == "train/loss"


def test_final_table_has_every_metric_of_every_decoder(page):
    table = parse(page).tables["final-table"]
    headers = [text for text, _, _ in table[0]]
    assert headers == [
        "model", "encoding", "seed", "decoder",
        "test PCKh@0.1 ↑", "test RMSE ↓", "val PCKh@0.1 ↑", "val RMSE ↓", "job",
    ]  # fmt: skip
    assert len(table) == 1 + 6 * len(DECODERS)
    row = next(r for r in table[1:] if r[1][0] == "unquant" and r[2][0] == "1316" and r[3][0] == "dark")
    assert [c[0] for c in row[4:8]] == ["23.00", "3.90", "31.00", "–"]
    assert float(row[5][1]) == pytest.approx(3.9) and row[7][1] is None  # sort values; null sorts last
    assert row[8][0] == "5_hourglass_tiny_unquant_mse"


def test_effect_table_pairs_seeds_with_t_intervals(page):
    table = parse(page).tables["effect-table"]
    assert [text for text, _, _ in table[0]] == [
        "model",
        "decoder",
        "comparison",
        "n seeds",
        "Δ PCKh@0.1 ↑",
        "Δ RMSE ↓",
    ]
    rows = {r[1][0]: r for r in table[1:]}
    assert list(rows) == ["argmax", "dark"]
    dark = rows["dark"]
    assert [c[0] for c in dark[2:4]] == ["unquant − quant", "3"]
    half = 4.302653 / math.sqrt(3)
    assert dark[4][0] == f"+2.00 ± {half:.2f}" and "resolved" not in dark[4][2].split()  # holds 0
    assert dark[5][0] == f"-1.00 ± {half * 0.1:.2f}" and "resolved" in dark[5][2].split()
    assert float(dark[5][1]) == pytest.approx(-1.0)
    assert rows["argmax"][4][0] == "+0.50 ± 0.00"  # three identical differences: a zero-width interval
    assert rows["argmax"][5][0] == f"+0.00 ± {half * 0.5:.2f}"


def test_jobs_without_results_are_listed_with_their_last_line(page):
    table = parse(page).tables["unfinished"]
    assert column(table, "job") == [
        "6_hourglass_tiny_quant_mse",
        "7_hourglass_tiny_quant_mse",
        "8_hourglass_tiny_unquant_mse",
    ]
    assert column(table, "status") == ["crashed", "crashed", "running or crashed"]
    why = column(table, "why")
    assert (
        why[0]
        == "last error line (train.log): torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    )
    assert "later job of this one-at-a-time sweep" in why[1]
    assert why[2].startswith("last log line (train.log): [2026-01-01 10:05:00,000]")
    assert column(table, "last val epoch") == ["–", "–", "1"]


def test_page_is_self_contained(page):
    """Images are data URIs, scripts inline, and nothing names the network as a source."""
    parsed = parse(page)
    assert all(value.startswith("data:image/png;base64,") for tag, _, value in parsed.links), parsed.links
    assert len(parsed.links) == 6 + 1  # six runs' qualitative images, the report's decoders.png
    assert not any(tag in ("script", "link", "iframe") for tag, _, _ in parsed.links)
    assert "Plotly" in page and "not a png" not in page
    assert "broken.png" in page  # named as left out


def test_damaged_files_are_named_not_fatal(tmp_path):
    """A corrupt results.json lists its job with the reason; an unreadable metrics.csv is named."""
    broken = make_job(tmp_path, 0, "quant", 1)
    (broken / "results.json").write_text('{"results": ')
    finished = make_job(tmp_path, 1, "quant", 1314)
    finish_job(finished, "quant", 1314)
    (finished / "csv").mkdir()
    (finished / "csv" / "metrics.csv").write_bytes(b"epoch,step\n\xff\xfe broken")
    page = write_dashboard(tmp_path, tmp_path / "page.html").read_text(encoding="utf-8")
    table = parse(page).tables["unfinished"]
    assert column(table, "job") == ["0_hourglass_tiny_quant_mse"]
    assert column(table, "status")[0].startswith("unreadable results.json: Expecting value")
    assert f"Curves left out: {finished / 'csv' / 'metrics.csv'}: " in page
    assert len(parse(page).tables["final-table"]) == 1 + len(DECODERS)


def test_single_run_folder_and_errors(sweep, tmp_path, capsys):
    run = sweep / "0_hourglass_tiny_quant_mse"
    out = write_dashboard(run, tmp_path / "one.html")
    data = embedded(out.read_text(encoding="utf-8"))
    assert [r["id"] for r in data["runs"]] == ["0_hourglass_tiny_quant_mse"]
    assert "No encoding effect" in out.read_text(encoding="utf-8")
    assert main([str(tmp_path / "missing")]) == 1
    assert "no such directory" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 1
    assert "no Hydra job" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # the page must draw with no network at all
)
# Appended to a copy of the page, run after the page's own script: records every resource the page fetched
# (scripts, images, XHR), then unchecks encoding=unquant and sorts the final table by test PCKh@0.1, as a user would.
PROBE = """<script>window.addEventListener("load", function () { setTimeout(function () {
  var body = document.body.dataset;
  body.resources = JSON.stringify(performance.getEntriesByType("resource").map(function (e) { return e.name; }));
  var box = document.querySelector('input[data-axis="encoding"][value="unquant"]');
  box.checked = false;
  box.dispatchEvent(new Event("change", {bubbles: true}));
  body.hiddenRows = document.querySelectorAll("#final-table tr.off").length;
  body.shownTraces = document.getElementById("train-chart").data.filter(function (t) { return t.visible; }).length;
  var th = document.querySelectorAll("#final-table th")[4];  // test PCKh@0.1
  th.click();
  th.click();  // the second click sorts descending
  body.sorted = (th.classList.contains("desc") ? "desc " : "") + document.querySelector("#final-table tbody tr:not(.off)").cells[4].dataset.v;
}, 0); });</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install -y chromium)")
def test_charts_render_in_headless_chromium(page, tmp_path):
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
         probed.as_uri()],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    dom = done.stdout
    assert 'data-ready="1"' in dom, done.stderr[-2000:]  # the page's script ran to its end
    # Plotly draws each chart into an <svg class="main-svg">: the training chart and one per decoder
    charts = re.findall(r'<div[^>]*class="[^"]*js-plotly-plot[^"]*"', dom)
    assert len(charts) == 1 + len(DECODERS)
    assert dom.count('class="main-svg"') >= len(charts)
    assert len(re.findall(r'class="[^"]*\bscatterlayer\b', dom)) == len(charts)
    probe = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', re.search(r"<body[^>]*>", dom).group(0)))
    assert json.loads(probe["resources"].replace("&quot;", '"')) == []
    # unquant unchecked: its 3 runs x 2 decoders leave the table, its curves (3 runs + job 8) the chart
    assert (probe["hidden-rows"], probe["shown-traces"]) == ("6", "3")
    assert probe["sorted"] == "desc 20.0"  # the best quant run first (unsorted: 10.0; unquant's 23.0 hidden)
    # the DOM after every script ran (Plotly adds links of its own, e.g. its logo unless displaylogo=false)
    links = parse(dom).links
    assert links and all(value.startswith("data:") for _, _, value in links), links
