"""report.html: one self-contained page (no scripts, no network) drawn from a results.json document, read at a
glance: the failures first (one line each, the message one click away), then one table per gate family under
a header with its counts, each gate one line: test, gate and metric, the deciding figure with its interval
drawn against the limit, its trend over the suite's previous runs (with --mangaassist-mlflow), the verdict;
the full sentence and the failure's evidence in a <details>. Then the drawings: traffic replays, per-layer
curves, latency histograms, token attributions, ONNX structure, the snapshot and the recorded tables.

A gate called many times by one test is folded into its worst call and every chart is drawn once. Charts come
from charts.py (matplotlib, inline SVG); the one-line interval glyph of a row is a few SVG shapes written here,
as a matplotlib figure per row would cost a figure per gate for a line and a dot.
"""

from __future__ import annotations

import html
import math

from ..errors import display
from ..gates.records import Curve, LatencySamples, StructureChecks, TokenHeatmap, TrafficReplay
from . import charts
from .history import History, figure_keys
from .runlog import RunLog
from .views import CAUGHT, FAIL, PASS, STORED, XFAIL, Row, by_family, counts, first_line, limit, measured, number, \
    rows, snapshot_rows

OUTCOME_ORDER = ("failed", "error", "xpassed", "passed", "xfailed", "skipped")
STATUS_CLASS = {FAIL: "fail", XFAIL: "xfail", CAUGHT: "caught", PASS: "pass", STORED: "stored", "REGRESSED": "fail",
                "ok": "pass"}
NOT_GIVEN = "not given"
GLYPH_W, GLYPH_H = 120, 14  # px: the interval glyph of a gate row

STYLE = """
body{font-family:system-ui,sans-serif;margin:16px auto;padding:0 12px;color:#222;max-width:1360px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:24px}
h3{font-size:14px;margin:12px 0 4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border-bottom:1px solid #e4e4e4;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3;font-weight:600}
table.gates{width:100%;table-layout:fixed;line-height:1.35}
table:not(.gates){display:block;overflow-x:auto;max-width:100%}
table.gates td{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
col.test{width:22%}col.what{width:38%}col.fig{width:22%}col.trend{width:7%}col.verdict{width:11%}
table.gates details[open]{white-space:normal}
summary{cursor:pointer;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;list-style:none}
summary::before{content:"\\25B8 ";color:#888}details[open]>summary::before{content:"\\25BE "}
details>div{white-space:normal;overflow-wrap:anywhere;padding:4px 0 6px 14px;font-size:12px}
td.num,.num{white-space:nowrap;font-variant-numeric:tabular-nums}
svg.glyph{vertical-align:middle;margin-right:6px}
.trend svg{height:18px;width:auto;vertical-align:middle}
.counts{font-size:13px;font-weight:400;margin-left:8px}
.pass{color:#17692f;font-weight:600}.fail{color:#b00020;font-weight:700}.xfail{color:#8a6d00;font-style:italic}
.caught{color:#555;font-style:italic}.stored{color:#555}.muted{color:#777;font-style:italic}
tr.failrow td{background:#fdecee}
pre{background:#f7f7f7;padding:8px;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere;margin:4px 0}
.tok{display:inline-block;padding:1px 3px;margin:1px;border-radius:3px}.ex{margin:6px 0;font-size:14px}
.meta{font-size:12px;color:#555}
figure{display:inline-block;vertical-align:top;width:640px;max-width:100%;margin:8px 16px 8px 0}
figure svg{max-width:100%;height:auto}figcaption{font-size:13px;overflow-wrap:anywhere}
.failure{border-left:4px solid #b00020;padding-left:10px;margin:6px 0}
table.matrix td{text-align:right;font-variant-numeric:tabular-nums;border:1px solid #eee}
@media (max-width:700px){
 body{margin:8px auto;padding:0 6px}
 table.gates,table.gates tbody{display:block}table.gates colgroup,table.gates thead{display:none}
 table.gates tr{display:grid;grid-template-columns:minmax(0,1fr) auto;border-bottom:1px solid #ddd;padding:3px 0}
 table.gates td{border:0;padding:1px 4px}
 table.gates td.what,table.gates td.fig{grid-column:1/3}table.gates td.trend{display:none}
 table.gates td.verdict{grid-row:1;grid-column:2}
 figure{margin:8px 0}
}
"""


def _e(value) -> str:
    """Text for the page: control characters escaped as the terminal shows them (HTML forbids most of them),
    then HTML-escaped."""
    return html.escape(display(value, keep_newlines=True))


def render_html(data: dict, history: History | None = None) -> str:
    log = RunLog.from_results(data)
    shown = rows(log)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>mangaassist gate report</title><style>{STYLE}</style></head><body>", _header(data, log),
             _failures(log), _gate_tables(log, history),
             _charts("Traffic replay", shown, TrafficReplay, charts.replay_svg, _flip_matrix),
             _charts("Per-layer curves", shown, Curve, charts.curve_svg),
             _charts("Latency", shown, LatencySamples, charts.latency_svg),
             _heatmaps(shown), _structure(shown), _snapshot(log), _recorded_tables(log), _inputs(data, history),
             "</body></html>"]
    return "\n".join(p for p in parts if p)


def _status(status: str) -> str:
    return f"<span class='{STATUS_CLASS.get(status, '')}'>{_e(status)}</span>"


def _header(data: dict, log: RunLog) -> str:
    outcomes = data["outcomes"]
    ordered = sorted(outcomes, key=lambda k: OUTCOME_ORDER.index(k) if k in OUTCOME_ORDER else 99)
    shown = ", ".join(f"<span class='{'fail' if k in ('failed', 'error') else ''}'>{outcomes[k]} {_e(k)}</span>"
                      for k in ordered)
    gates = ", ".join(f"{n} {_status(s)}" for s, n in counts(log).items())
    return (f"<h1>mangaassist gate report</h1><p>{_e(data['started'])} · {data['seconds']} s · tests: <b>{shown}</b>"
            f"{' · gate results: ' + gates if gates else ''}</p>")


def _failures(log: RunLog) -> str:
    failed = [t for t in log.tests.values() if t.failed]
    items = [f"<details class='failure'><summary><b>{_e(t.name)}</b> <span class='fail'>{_e(t.outcome.upper())}"
             f"</span> · {_e(first_line(t.message))}</summary><pre>{_e(t.message or 'no message')}</pre></details>"
             for t in failed]
    return _section(f"Failures ({len(failed)})", items)


def _inputs(data: dict, history: History | None) -> str:
    rows_ = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v) if v is not None else f'<span class=muted>{NOT_GIVEN}</span>'}"
                    f"</td></tr>" for k, v in data["inputs"].items())
    if history is not None:
        runs = f"{len(history.runs)} previous run(s) of this suite" + (f"; {history.problem}" if history.problem
                                                                       else "")
        rows_ += f"<tr><th>MLflow</th><td>{_e(history.uri)} ({_e(runs)})</td></tr>"
    versions = ", ".join(f"{k} {v}" if v else f"{k} not installed" for k, v in data["versions"].items())
    return f"<h2>Inputs</h2><table>{rows_}</table><p class='meta'>{_e(versions)}</p>"


def _section(title: str, items: list[str]) -> str:
    return f"<h2>{_e(title)}</h2>" + "".join(items) if items else ""


def _tally(family_rows: list[Row]) -> str:
    found: dict[str, int] = {}
    for r in family_rows:
        found[r.status] = found.get(r.status, 0) + 1
    return " · ".join(f"{n} {_status(s)}" for s, n in found.items())


def _gate_tables(log: RunLog, history: History | None) -> str:
    """One table per family (failing families first), each gate one line."""
    keys = {id(rec): key for key, _, rec in figure_keys(log)}
    trends = history is not None and bool(history.runs)
    cols = "<col class='test'><col class='what'><col class='fig'>" + ("<col class='trend'>" if trends else "") + \
        "<col class='verdict'>"
    head = "<tr><th>test</th><th>gate · metric</th><th>figure · limit</th>" + \
        ("<th>trend</th>" if trends else "") + "<th>verdict</th></tr>"
    out = []
    for family, family_rows in by_family(log):
        body = "".join(_gate_row(r, keys.get(id(r.record)), history if trends else None) for r in family_rows)
        out.append(f"<h2>{_e(family.value)} <span class='counts'>{len(family_rows)} gate(s): {_tally(family_rows)}"
                   f"</span></h2><table class='gates'><colgroup>{cols}</colgroup><thead>{head}</thead>"
                   f"<tbody>{body}</tbody></table>")
    return "".join(out)


def _gate_row(r: Row, key: str | None, history: History | None) -> str:
    rec = r.record
    more = [f"<b>{_e(rec.gate)}</b>: {_e(r.metric)} = <span class='num'>{_e(measured(rec))}</span> "
            f"{_e(limit(rec))}"]
    if key:
        more.append(f"<span class='meta'>MLflow key: {_e(key)}</span>")
    if r.is_failure and r.test.message:
        more.append(f"<pre>{_e(r.test.message)}</pre>")
    trend = ""
    if history is not None:
        points = history.series(key, rec.value) if key else []
        drawn = charts.trend_svg(points, rec.threshold, f"trend-{key}", r.is_failure) if len(points) > 1 else ""
        label = "; ".join(f"{when}: {number(v)}" for when, v in points)
        trend = f"<td class='trend' title='{_e(label)}'>{drawn}</td>"
    return (f"<tr class='{'failrow' if r.is_failure else ''}'><td class='test' title='{_e(r.test.nodeid)}'>"
            f"{_e(r.test.name)}</td><td class='what'><details><summary>{_e(rec.gate)} · {_e(r.metric)}</summary>"
            f"<div>{'<br>'.join(more)}</div></details></td>"
            f"<td class='fig'>{_glyph(r)}<span class='num'>{_e(measured(rec))}</span> "
            f"<span class='meta'>{_e(limit(rec))}</span></td>{trend}"
            f"<td class='verdict'>{_status(r.status)}</td></tr>")


def _glyph(r: Row) -> str:
    """The figure (dot), its interval (bar) and the limit (tick, the failing side shaded) on one scale."""
    rec = r.record
    marks = [v for v in (rec.value, *(rec.interval or ()), rec.threshold) if v is not None and math.isfinite(v)]
    if not marks or not math.isfinite(rec.value):
        return ""
    low, high = min(marks), max(marks)
    pad = (high - low) * 0.12 or abs(high) * 0.1 or 1.0
    low, high = low - pad, high + pad

    def x(v: float) -> float:
        return round(2 + (v - low) / (high - low) * (GLYPH_W - 4), 1)

    mid = GLYPH_H / 2
    shapes = [f"<line x1='2' x2='{GLYPH_W - 2}' y1='{mid}' y2='{mid}' stroke='#ccc'/>"]
    t = rec.threshold
    if t is not None and math.isfinite(t):
        if rec.comparison in (">=", ">"):
            shapes.append(f"<rect x='0' y='0' width='{x(t)}' height='{GLYPH_H}' fill='#fbd5da'/>")
        elif rec.comparison in ("<=", "<"):
            shapes.append(f"<rect x='{x(t)}' y='0' width='{GLYPH_W - x(t)}' height='{GLYPH_H}' fill='#fbd5da'/>")
        shapes.append(f"<line x1='{x(t)}' x2='{x(t)}' y1='0' y2='{GLYPH_H}' stroke='{charts.LIMIT_COLOR}' "
                      f"stroke-width='2'/>")
    if rec.interval and all(math.isfinite(v) for v in rec.interval):
        shapes.append(f"<line x1='{x(rec.interval[0])}' x2='{x(rec.interval[1])}' y1='{mid}' y2='{mid}' "
                      f"stroke='#555' stroke-width='3'/>")
    color = charts.LIMIT_COLOR if rec.verdict.value == "failed" else "#17692f"
    shapes.append(f"<circle cx='{x(rec.value)}' cy='{mid}' r='4' fill='{color}'/>")
    return (f"<svg class='glyph' width='{GLYPH_W}' height='{GLYPH_H}' viewBox='0 0 {GLYPH_W} {GLYPH_H}' "
            f"role='img' aria-label='{_e(measured(rec))} {_e(limit(rec))}'>{''.join(shapes)}</svg>")


def _snapshot(log: RunLog) -> str:
    found = snapshot_rows(log)
    if not found:
        return ""
    body = "".join(
        f"<tr><td>{_e(test)}</td><td class='metric'>{_e(name)}</td>"
        f"<td class='num'>{_e(number(stored)) if stored is not None else '<span class=muted>not stored</span>'}</td>"
        f"<td class='num'>{_e(number(now))}</td><td class='num'>{'' if change is None else f'{change:+.4f}'}</td>"
        f"<td class='num'>{max_regression:g}</td><td>{_status(status)}</td></tr>"
        for test, name, stored, now, change, max_regression, status in found)
    head = ("<tr><th>test</th><th>figure</th><th>snapshot</th><th>now</th><th>change</th><th>max regression</th>"
            "<th></th></tr>")
    return f"<h2>Snapshot</h2><table>{head}{body}</table>"


def _once(shown: list[Row], kind) -> list[Row]:
    """The rows with a payload of this kind, each distinct chart once (failures first, as `shown` is)."""
    seen, out = set(), []
    for r in shown:
        if not isinstance(r.record.payload, kind):
            continue
        key = (r.record.gate, r.record.threshold, r.record.comparison, repr(r.record.payload))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _caption(r: Row) -> str:
    return (f"<figcaption>{_status(r.status)} <b>{_e(r.test.name)}</b> · {_e(r.record.gate)}: {_e(r.metric)} = "
            f"{_e(measured(r.record))} {_e(limit(r.record))}</figcaption>")


def _charts(title: str, shown: list[Row], kind, draw, beside=None) -> str:
    items = [f"<figure>{draw(r.record.payload if kind is TrafficReplay else r.record, f'{kind.__name__}-{i}')}"
             f"{_caption(r)}</figure>{beside(r.record.payload) if beside else ''}"
             for i, r in enumerate(_once(shown, kind))]
    return _section(title, items)


def _flip_matrix(replay: TrafficReplay) -> str:
    """Messages by production route (rows) and candidate route (columns); off the diagonal: route flips,
    shaded by their count."""
    most = max((n for i, row in enumerate(replay.matrix) for j, n in enumerate(row) if i != j), default=0) or 1
    head = "<tr><th>production \\ candidate</th>" + "".join(f"<th>{_e(r)}</th>" for r in replay.routes) + "</tr>"
    body = ""
    for i, (route, row) in enumerate(zip(replay.routes, replay.matrix)):
        cells = "".join(f"<td style='background:rgba(214,39,40,{0.08 + 0.7 * n / most:.2f})'>{n:,}</td>"
                        if i != j and n else f"<td>{n:,}</td>" for j, n in enumerate(row))
        body += f"<tr><th>{_e(route)}</th>{cells}</tr>"
    return f"<table class='matrix'>{head}{body}</table>"


def _heatmaps(shown: list[Row]) -> str:
    """Words coloured by attribution (red: towards the intent, blue: away), scaled per example."""
    items = []
    for r in _once(shown, TokenHeatmap):
        items.append(f"<h3>{_status(r.status)} {_e(r.test.name)} · {_e(r.record.gate)}: {_e(r.metric)}</h3>")
        for example in r.record.payload.rows:
            scale = max((abs(s) for _, s in example.words), default=1.0) or 1.0
            spans = "".join(_token_span(word, score / scale, score) for word, score in example.words)
            items.append(f"<div class='ex'>{spans} <span class='meta'>{_e(example.note)}</span></div>")
    return _section("Token attributions of flagged examples", items)


def _token_span(word: str, level: float, score: float) -> str:
    alpha = min(abs(level), 1.0) * 0.85
    color = f"rgba(214,39,40,{alpha:.2f})" if level >= 0 else f"rgba(31,119,180,{alpha:.2f})"
    return f"<span class='tok' style='background:{color}' title='{score:+.3f}'>{_e(word)}</span>"


def _structure(shown: list[Row]) -> str:
    items = []
    for r in _once(shown, StructureChecks):
        checks = sorted(r.record.payload.checks, key=lambda c: c.ok)  # failed properties first
        body = "".join(f"<tr><td>{_e(c.name)}</td><td>{_status('ok' if c.ok else 'FAIL')}</td>"
                       f"<td class='metric'>{_e(c.expected)}</td><td class='metric'>{_e(c.found)}</td></tr>"
                       for c in checks)
        items.append(f"<h3>{_status(r.status)} {_e(r.test.name)} · {_e(r.metric)}</h3><table><tr><th>property</th>"
                     f"<th></th><th>expected</th><th>found</th></tr>{body}</table>")
    return _section("ONNX structure", items)


def _recorded_tables(log: RunLog) -> str:
    seen, items = set(), []
    for t in log.tests.values():
        for title, text in t.tables:
            if (title, text) not in seen:
                seen.add((title, text))
                items.append(f"<h3>{_e(title)} <span class='meta'>({_e(t.name)})</span></h3><pre>{_e(text)}</pre>")
    return _section("Recorded tables", items)
