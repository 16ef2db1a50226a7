"""report.html: one self-contained page (no scripts, no network) drawn from a results.json document.

Failures come first: the failed tests with their messages, then the gate table with failed gates at the
top; xfailed gates read "xfail (expected)"; metrics wrap, never cut; every chart and table is drawn once
(a gate called many times by one test is folded into its worst call, identical charts are drawn once).
Charts come from charts.py (matplotlib, inline SVG).
"""

from __future__ import annotations

import html

from ..gates.records import Curve, LatencySamples, StructureChecks, TokenHeatmap
from . import charts
from .runlog import RunLog
from .views import CAUGHT, FAIL, PASS, STORED, XFAIL, Row, counts, limit, measured, number, rows, snapshot_rows

OUTCOME_ORDER = ("failed", "error", "xpassed", "passed", "xfailed", "skipped")
STATUS_CLASS = {FAIL: "fail", XFAIL: "xfail", CAUGHT: "caught", PASS: "pass", STORED: "stored", "REGRESSED": "fail",
                "ok": "pass"}
NOT_GIVEN = "not given"

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1360px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:28px}
h3{font-size:14px;margin:14px 0 4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.metric{max-width:560px;white-space:normal;overflow-wrap:anywhere}
td.num{white-space:nowrap;font-variant-numeric:tabular-nums}
.pass{color:#17692f;font-weight:600}.fail{color:#b00020;font-weight:700}.xfail{color:#8a6d00;font-style:italic}
.caught{color:#555;font-style:italic}.stored{color:#555}.muted{color:#777;font-style:italic}
tr.failrow td{background:#fdecee}
pre{background:#f7f7f7;padding:8px;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}
.tok{display:inline-block;padding:1px 3px;margin:1px;border-radius:3px}.ex{margin:6px 0;font-size:14px}
.meta{font-size:12px;color:#555}
figure{display:inline-block;vertical-align:top;width:640px;margin:8px 16px 8px 0}
figure svg{max-width:100%;height:auto}figcaption{font-size:13px;overflow-wrap:anywhere}
.failure{border-left:4px solid #b00020;padding-left:10px;margin:10px 0}
"""


def _e(value) -> str:
    return html.escape(str(value))


def render_html(data: dict) -> str:
    log = RunLog.from_results(data)
    shown = rows(log)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>mangaassist gate report</title>"
             f"<style>{STYLE}</style></head><body>", _header(data, log), _failures(log), _inputs(data),
             _gate_table([r for r in shown if r.record.family.value != "snapshot"]), _snapshot(log),
             _charts("Per-layer curves", shown, Curve, charts.curve_svg),
             _charts("Latency", shown, LatencySamples, charts.latency_svg),
             _heatmaps(shown), _structure(shown), _recorded_tables(log), "</body></html>"]
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
    items = [f"<div class='failure'><h3>{_e(t.nodeid)} <span class='fail'>{_e(t.outcome.upper())}</span></h3>"
             f"<pre>{_e(t.message or 'no message')}</pre></div>" for t in failed]
    return _section(f"Failures ({len(failed)})", items)


def _inputs(data: dict) -> str:
    rows_ = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v) if v is not None else f'<span class=muted>{NOT_GIVEN}</span>'}"
                    f"</td></tr>" for k, v in data["inputs"].items())
    versions = ", ".join(f"{k} {v}" if v else f"{k} not installed" for k, v in data["versions"].items())
    return f"<h2>Inputs</h2><table>{rows_}</table><p class='meta'>{_e(versions)}</p>"


def _section(title: str, items: list[str]) -> str:
    return f"<h2>{_e(title)}</h2>" + "".join(items) if items else ""


def _gate_table(shown: list[Row]) -> str:
    body = []
    for r in shown:
        rec = r.record
        body.append(f"<tr class='{'failrow' if r.is_failure else ''}'><td>{_e(rec.family.value)}</td>"
                    f"<td>{_e(r.test.name)}</td><td>{_e(rec.gate)}</td><td class='metric'>{_e(r.metric)}</td>"
                    f"<td class='num'>{_e(measured(rec))}</td><td class='num'>{_e(limit(rec))}</td>"
                    f"<td>{_status(r.status)}</td></tr>")
    head = ("<tr><th>family</th><th>test</th><th>gate</th><th>metric</th><th>measured</th><th>limit</th>"
            "<th>verdict</th></tr>")
    return f"<h2>Gates</h2><table>{head}{''.join(body)}</table>" if body else ""


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


def _charts(title: str, shown: list[Row], kind, draw) -> str:
    items = [f"<figure>{draw(r.record, f'{kind.__name__}-{i}')}{_caption(r)}</figure>"
             for i, r in enumerate(_once(shown, kind))]
    return _section(title, items)


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
