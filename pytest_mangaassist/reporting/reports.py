"""Reports of a gate run: the terminal summary tables, results.json for CI and a self-contained report.html.

Everything here works from a RunLog (what the plugin gathered from the test reports: outcomes,
GateRecords, recorded tables), so it runs the same in the xdist controller as in a plain run.
The HTML has no external resources: charts are inline SVG written here (no plotting library is a
dependency), so the page renders offline and in CI artifacts.
"""

from __future__ import annotations

import hashlib
import html
import json
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from ..errors import format_table
from ..gates.records import GateRecord

PACKAGES = ("pytest-mangaassist", "torch", "transformers", "captum", "scikit-learn", "onnx", "onnxruntime", "pytest")
FAMILY_ORDER = ("classification", "comparison", "representation", "attribution", "behaviour", "export", "latency",
                "regression")


@dataclass
class TestEntry:
    nodeid: str
    outcome: str
    duration: float
    records: list[GateRecord] = field(default_factory=list)
    tables: list[tuple[str, str]] = field(default_factory=list)
    message: str = ""  # first line of a failure


@dataclass
class RunLog:
    started: float = field(default_factory=time.time)
    tests: dict[str, TestEntry] = field(default_factory=dict)

    @property
    def records(self) -> list[tuple[str, GateRecord]]:
        return [(t.nodeid, r) for t in self.tests.values() for r in collapse(t.records)]


FUZZ_CALLS = 4  # a test calling one gate more often than this (a hypothesis property) is shown as one row


def collapse(records: list[GateRecord]) -> list[GateRecord]:
    """One row per gate for tests that call it many times (fuzz tests): the worst call, and how many failed."""
    by_gate: dict[str, list[GateRecord]] = {}
    for rec in records:
        by_gate.setdefault(rec.gate, []).append(rec)
    out = []
    for gate, group in by_gate.items():
        if len(group) <= FUZZ_CALLS:
            out += group
            continue
        failed = [r for r in group if not r.passed]
        lower_is_worse = group[0].comparison in (">=", ">")  # else a larger value is worse (<=, <, ==)
        worst = min(failed or group, key=lambda r: r.value if lower_is_worse else -r.value)
        out.append(GateRecord(worst.family, gate, f"{len(group)} calls, {len(failed)} failed; worst: {worst.metric}",
                              worst.value, worst.threshold, worst.comparison, not failed, worst.interval, worst.data))
    return out


# -- terminal ----------------------------------------------------------------------------------
def _value(rec: GateRecord) -> str:
    text = _num(rec.value)
    if rec.interval:
        text += f" [{_num(rec.interval[0])}, {_num(rec.interval[1])}]"
    return text


def _num(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if value != value:
        return "n/a"
    return f"{value:.2e}" if value and abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.4f}"


def gate_tables(log: RunLog) -> list[tuple[str, str]]:
    """One compact table per gate family: test, gate, metric, measured (interval), threshold, verdict."""
    by_family: dict[str, list] = {}
    for nodeid, rec in log.records:
        threshold = "" if rec.threshold is None else f"{rec.comparison} {_num(rec.threshold)}"
        verdict = "stored" if rec.comparison == "stored" else ("pass" if rec.passed else "FAIL")
        by_family.setdefault(rec.family, []).append(
            (nodeid.split("::")[-1], rec.gate, _clip(rec.metric, 60), _value(rec), threshold, verdict))
    order = sorted(by_family, key=lambda f: (FAMILY_ORDER.index(f) if f in FAMILY_ORDER else 99, f))
    return [(family, format_table(("test", "gate", "metric", "measured", "threshold", "verdict"), by_family[family]))
            for family in order]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def baseline_moves(log: RunLog) -> str | None:
    rows = []
    for _, rec in log.records:
        if rec.family != "regression":
            continue
        stored = rec.data.get("baseline")
        change = "" if stored is None else f"{rec.value - stored:+.4f}"
        verdict = "stored" if rec.comparison == "stored" else ("ok" if rec.passed else "REGRESSED")
        rows.append((rec.data.get("metric_name", rec.metric), _num(stored), _num(rec.value), change,
                     _num(rec.data.get("tolerance")), verdict))
    if not rows:
        return None
    return format_table(("metric", "baseline", "now", "change", "tolerance", ""), rows)


# -- results.json --------------------------------------------------------------------------------
def file_hash(path: Path | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _versions() -> dict[str, str | None]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def results(log: RunLog, inputs: dict) -> dict:
    """Every gate's figures, thresholds and verdicts, with the inputs' hashes, versions and timings."""
    tests = [{"nodeid": t.nodeid, "outcome": t.outcome, "seconds": round(t.duration, 3), "message": t.message,
              "gates": [json.loads(r.to_json()) for r in collapse(t.records)], "tables": [list(x) for x in t.tables]}
             for t in log.tests.values()]
    counts = {}
    for t in log.tests.values():
        counts[t.outcome] = counts.get(t.outcome, 0) + 1
    return {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(log.started)),
            "seconds": round(time.time() - log.started, 1), "outcomes": counts, "inputs": inputs,
            "versions": _versions(), "tests": tests}


def write_reports(folder: Path, data: dict) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "results.json", folder / "report.html"
    json_path.write_text(json.dumps(data, indent=2, default=str, allow_nan=True), encoding="utf-8")
    html_path.write_text(render_html(data), encoding="utf-8")
    return json_path, html_path


# -- report.html ---------------------------------------------------------------------------------
STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f3f3f3}.pass{color:#17692f;font-weight:600}.fail{color:#b00020;font-weight:700}
.stored{color:#555}pre{background:#f7f7f7;padding:8px;font-size:12px;white-space:pre-wrap}
.tok{display:inline-block;padding:1px 3px;margin:1px;border-radius:3px}.ex{margin:6px 0;font-size:14px}
.meta{font-size:12px;color:#555}figure{display:inline-block;margin:8px 16px 8px 0}figcaption{font-size:13px}
"""


def _e(value) -> str:
    return html.escape(str(value))


def render_html(data: dict) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>mangaassist gate report</title>"
             f"<style>{STYLE}</style></head><body>", _header(data)]
    gates = [(t["nodeid"], g) for t in data["tests"] for g in t["gates"]]
    parts.append(_gate_table(gates))
    parts.append(_section("Per-layer curves", [_curve_svg(g) for _, g in gates if g["data"].get("curve")]))
    parts.append(_section("Token attributions of flagged examples", [_heatmap(g) for _, g in gates
                                                                     if g["data"].get("tokens")]))
    parts.append(_section("Latency", [_latency_svg(g) for _, g in gates if g["data"].get("samples_ms")]))
    parts.append(_section("ONNX structure", [_checks_table(g) for _, g in gates if g["data"].get("checks")]))
    tables = [f"<h3>{_e(title)}</h3><pre>{_e(text)}</pre>" for t in data["tests"] for title, text in t["tables"]]
    parts.append(_section("Recorded tables", tables))
    failed = [t for t in data["tests"] if t["outcome"] == "failed"]
    parts.append(_section("Failures", [f"<h3>{_e(t['nodeid'])}</h3><pre>{_e(t['message'])}</pre>" for t in failed]))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def _header(data: dict) -> str:
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(data["outcomes"].items()))
    inputs = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in data["inputs"].items())
    versions = ", ".join(f"{k} {v}" for k, v in data["versions"].items() if v)
    return (f"<h1>mangaassist gate report</h1><p>{_e(data['started'])} · {data['seconds']} s · <b>{_e(outcomes)}</b></p>"
            f"<table>{inputs}</table><p class='meta'>{_e(versions)}</p>")


def _section(title: str, items: list[str]) -> str:
    return f"<h2>{_e(title)}</h2>" + "".join(items) if items else ""


def _gate_table(gates: list) -> str:
    rows = []
    for nodeid, g in gates:
        verdict = "stored" if g["comparison"] == "stored" else ("pass" if g["passed"] else "fail")
        threshold = "" if g["threshold"] is None else f"{g['comparison']} {_num(g['threshold'])}"
        interval = f" [{_num(g['interval'][0])}, {_num(g['interval'][1])}]" if g.get("interval") else ""
        rows.append(f"<tr><td>{_e(g['family'])}</td><td>{_e(nodeid.split('::')[-1])}</td><td>{_e(g['gate'])}</td>"
                    f"<td>{_e(g['metric'])}</td><td>{_e(_num(g['value']) + interval)}</td><td>{_e(threshold)}</td>"
                    f"<td class='{verdict}'>{verdict.upper() if verdict == 'fail' else verdict}</td></tr>")
    head = "<tr><th>family</th><th>test</th><th>gate</th><th>metric</th><th>measured</th><th>threshold</th><th></th></tr>"
    return f"<h2>Gates</h2><table>{head}{''.join(rows)}</table>" if rows else ""


COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def _curve_svg(g: dict, width: int = 420, height: int = 220) -> str:
    """A line chart of per-layer series (data['curve'] = {'x': labels, 'series': {name: values}})."""
    curve = g["data"]["curve"]
    labels, series = curve["x"], curve["series"]
    values = [v for vs in series.values() for v in vs if v is not None and v == v]
    low, high = min(0.0, min(values, default=0.0)), max(1.0, max(values, default=1.0))
    left, right, top, bottom = 40, 10, 10, 30
    def px(i, v):
        x = left + (width - left - right) * (i / max(len(labels) - 1, 1))
        y = top + (height - top - bottom) * (1 - (v - low) / ((high - low) or 1))
        return x, y
    items = [f"<line x1='{left}' y1='{top}' x2='{left}' y2='{height - bottom}' stroke='#999'/>",
             f"<line x1='{left}' y1='{height - bottom}' x2='{width - right}' y2='{height - bottom}' stroke='#999'/>",
             f"<text x='4' y='{top + 8}' font-size='10'>{high:.2f}</text>",
             f"<text x='4' y='{height - bottom}' font-size='10'>{low:.2f}</text>"]
    for i, label in enumerate(labels):
        x, _ = px(i, low)
        items.append(f"<text x='{x:.0f}' y='{height - 12}' font-size='10' text-anchor='middle'>{_e(label)}</text>")
    for k, (name, vs) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        points = [px(i, v) for i, v in enumerate(vs) if v is not None and v == v]
        items.append(f"<polyline fill='none' stroke='{color}' stroke-width='2' points='"
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + "'/>")
        items += [f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='{color}'/>" for x, y in points]
        items.append(f"<text x='{width - 120}' y='{top + 12 + 12 * k}' font-size='11' fill='{color}'>{_e(name)}</text>")
    if g.get("threshold") is not None and low <= g["threshold"] <= high:
        _, y = px(0, g["threshold"])
        items.append(f"<line x1='{left}' y1='{y:.1f}' x2='{width - right}' y2='{y:.1f}' stroke='#b00020' "
                     f"stroke-dasharray='4 3'/>")
    svg = f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'>{''.join(items)}</svg>"
    return f"<figure>{svg}<figcaption>{_e(g['gate'])}: {_e(g['metric'])}</figcaption></figure>"


def _heatmap(g: dict) -> str:
    """Words coloured by attribution (red: towards the intent, blue: away), scaled per example."""
    rows = [f"<h3>{_e(g['gate'])}: {_e(g['metric'])}</h3>"]
    for example in g["data"]["tokens"]:
        scale = max((abs(s) for _, s in example["words"]), default=1.0) or 1.0
        spans = "".join(_token_span(word, score / scale, score) for word, score in example["words"])
        note = _e(example.get("note", ""))
        rows.append(f"<div class='ex'>{spans} <span class='meta'>{note}</span></div>")
    return "".join(rows)


def _token_span(word: str, level: float, score: float) -> str:
    alpha = min(abs(level), 1.0) * 0.85
    color = f"rgba(214,39,40,{alpha:.2f})" if level >= 0 else f"rgba(31,119,180,{alpha:.2f})"
    return f"<span class='tok' style='background:{color}' title='{score:+.3f}'>{_e(word)}</span>"


def _latency_svg(g: dict, width: int = 420, height: int = 200, bins: int = 30) -> str:
    import numpy as np

    samples = np.asarray(g["data"]["samples_ms"], dtype=float)
    counts, edges = np.histogram(samples, bins=bins)
    left, bottom, top = 40, 30, 10
    bar_w = (width - left - 10) / bins
    peak = max(int(counts.max()), 1)
    bars = [f"<rect x='{left + i * bar_w:.1f}' y='{top + (height - top - bottom) * (1 - c / peak):.1f}' "
            f"width='{bar_w - 1:.1f}' height='{(height - top - bottom) * c / peak:.1f}' fill='#1f77b4'/>"
            for i, c in enumerate(counts)]
    def x_of(v):
        return left + (width - left - 10) * (v - edges[0]) / ((edges[-1] - edges[0]) or 1)
    marks = []
    for row, (q, color) in enumerate(((50, "#2ca02c"), (95, "#d62728"))):
        v = float(np.percentile(samples, q))
        marks.append(f"<line x1='{x_of(v):.1f}' y1='{top}' x2='{x_of(v):.1f}' y2='{height - bottom}' stroke='{color}'/>"
                     f"<text x='{x_of(v) + 2:.1f}' y='{top + 10 + 12 * row}' font-size='10' fill='{color}'>"
                     f"p{q} {v:.2f} ms</text>")
    axis = (f"<text x='{left}' y='{height - 12}' font-size='10'>{edges[0]:.2f} ms</text>"
            f"<text x='{width - 60}' y='{height - 12}' font-size='10'>{edges[-1]:.2f} ms</text>")
    svg = f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'>{''.join(bars + marks)}{axis}</svg>"
    return f"<figure>{svg}<figcaption>{_e(g['metric'])}: {len(samples)} calls</figcaption></figure>"


def _checks_table(g: dict) -> str:
    rows = "".join(f"<tr><td>{_e(name)}</td><td class='{'pass' if ok else 'fail'}'>{'ok' if ok else 'FAIL'}</td>"
                   f"<td>{_e(expected)}</td><td>{_e(found)}</td></tr>" for name, ok, expected, found in g["data"]["checks"])
    return (f"<table><tr><th>property</th><th></th><th>expected</th><th>found</th></tr>{rows}</table>")
