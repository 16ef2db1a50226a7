"""Charts of report.html, drawn with matplotlib (installed through captum) and inlined as SVG text, so the
page stays one self-contained file: no scripts, no images to fetch, text that stays text.

No pyplot: a bare Figure per chart, so nothing touches the user's matplotlib backend or global state.
Each chart gets its own SVG id salt, so the clip paths and markers of several inline charts never collide.
"""

from __future__ import annotations

import io
import math

from ..gates.records import Curve, GateRecord, LatencySamples, TrafficReplay

WIDTH_IN, HEIGHT_IN = 6.2, 3.1  # two charts side by side on a 1400 px page
TREND_W_IN, TREND_H_IN = 1.2, 0.3  # a sparkline in a gate row: one line of text high
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
LIMIT_COLOR = "#b00020"


def _figure():
    from matplotlib.figure import Figure

    return Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=100, layout="constrained")


def _svg(fig, salt: str) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt, "font.size": 9}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: inline SVG in HTML needs neither


def curve_svg(rec: GateRecord, salt: str) -> str:
    """A per-layer line chart: every series (gaps where a layer is undefined), the layer the gate read,
    and the gate's limit."""
    curve = rec.payload
    assert isinstance(curve, Curve)
    fig = _figure()
    ax = fig.subplots()
    xs = list(range(len(curve.x)))
    for k, (name, values) in enumerate(curve.series.items()):
        ys = [math.nan if v is None else float(v) for v in values]
        ax.plot(xs[: len(ys)], ys, marker="o", markersize=4, linewidth=1.8, color=COLORS[k % len(COLORS)],
                label=name)
    if curve.gated is not None and curve.gated in curve.x:
        ax.axvline(curve.x.index(curve.gated), color="#777", linestyle=":", linewidth=1.2,
                   label=f"gated layer ({curve.gated})")
    if rec.threshold is not None and math.isfinite(rec.threshold) and rec.comparison in (">=", ">", "<=", "<"):
        ax.axhline(rec.threshold, color=LIMIT_COLOR, linestyle="--", linewidth=1.2,
                   label=f"limit {rec.comparison} {rec.threshold:g}")
    ax.set_xticks(xs, list(curve.x), rotation=45 if len(xs) > 10 else 0)
    ax.set_xlabel("layer")
    ax.set_ylabel(", ".join(curve.series) if len(curve.series) == 1 else "value")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _svg(fig, salt)


def latency_svg(rec: GateRecord, salt: str, bins: int = 30) -> str:
    """A histogram of the timed calls, with its axes, the p50/p95/p99 and the budget line (an arrow at the
    edge when the budget is far off the samples' range), titled with the contention when the machine was busy."""
    import numpy as np

    latency = rec.payload
    assert isinstance(latency, LatencySamples)
    samples = np.asarray(latency.samples_ms, dtype=float)
    fig = _figure()
    ax = fig.subplots()
    ax.hist(samples, bins=bins, color="#9ecae1", edgecolor="#3182bd", linewidth=0.6)
    low, high = float(samples.min()), float(samples.max())
    p95_label = "" if rec.interval is None else f" (CI {rec.interval[0]:.3g}-{rec.interval[1]:.3g}: this run's noise)"
    for q, value, color, note in (("p50", latency.p50_ms, "#2ca02c", ""), ("p95", rec.value, "#1f77b4", p95_label),
                                  ("p99", latency.p99_ms, "#9467bd", "")):
        if value is not None and math.isfinite(value):
            ax.axvline(value, color=color, linewidth=1.2, label=f"{q} {value:.3g} ms{note}")
    budget = latency.budget_ms
    span = (high - low) or max(high, 1e-9)
    if math.isfinite(budget) and low - 3 * span <= budget <= high + 3 * span:
        ax.axvline(budget, color=LIMIT_COLOR, linestyle="--", linewidth=1.6, label=f"budget {budget:.3g} ms")
    else:  # the budget would squash the histogram: mark it at the edge it lies beyond
        side = "right" if budget > high else "left"
        ax.annotate(f"budget {budget:.3g} ms {'→' if side == 'right' else '←'}",
                    xy=(0.99 if side == "right" else 0.01, 0.94), xycoords="axes fraction",
                    ha="right" if side == "right" else "left", color=LIMIT_COLOR, fontsize=8)
    if latency.contention is not None and latency.contention.busy:
        ax.set_title(f"machine busy: {latency.contention.summary()}", fontsize=8, color=LIMIT_COLOR)
    ax.set_xlabel("latency per call (ms)")
    ax.set_ylabel("calls")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _svg(fig, salt)


def trend_svg(points: list[tuple[str, float]], threshold: float | None, salt: str, failed: bool) -> str:
    """A sparkline of one figure over the runs (this run last, ringed), with the limit as a dashed line;
    no axes: the row beside it says what and how much, the title lists the values."""
    fig = _small_figure()
    ax = fig.add_axes((0.02, 0.1, 0.96, 0.8))
    xs = list(range(len(points)))
    ys = [v for _, v in points]
    ax.plot(xs, ys, color="#1f77b4", linewidth=1.4, marker="o", markersize=2.5)
    ax.plot(xs[-1:], ys[-1:], marker="o", markersize=5, color=LIMIT_COLOR if failed else "#17692f")
    finite = [y for y in ys if math.isfinite(y)]
    if threshold is not None and math.isfinite(threshold) and finite:
        span = (max(finite) - min(finite)) or abs(threshold) or 1.0
        if min(finite) - 2 * span <= threshold <= max(finite) + 2 * span:  # else it would flatten the line
            ax.axhline(threshold, color=LIMIT_COLOR, linestyle="--", linewidth=1.0)
    ax.set_xlim(-0.3, max(len(points) - 1, 1) + 0.3)
    ax.axis("off")
    return _svg(fig, salt)


def _small_figure():
    from matplotlib.figure import Figure

    return Figure(figsize=(TREND_W_IN, TREND_H_IN), dpi=100)


def replay_svg(replay: TrafficReplay, salt: str) -> str:
    """A traffic replay: each route's share of the traffic under the production model and the candidate,
    and each route's flip rate (the share of its production messages the candidate routes elsewhere) with
    its 95% interval."""
    import numpy as np

    routes = list(replay.routes)
    fig = _figure()
    left, right = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(routes))
    production = [replay.shares[r][0] if r in replay.shares else 0.0 for r in routes]
    candidate = [replay.shares[r][1] if r in replay.shares else 0.0 for r in routes]
    left.barh(y - 0.2, production, height=0.4, color="#9ecae1", label="production")
    left.barh(y + 0.2, candidate, height=0.4, color="#3182bd", label="candidate")
    left.set_yticks(y, routes)
    left.invert_yaxis()
    left.set_xlabel("share of the traffic")
    left.legend(fontsize=8, loc="best")
    rates = [replay.route_flip_rates.get(r, (math.nan, math.nan, math.nan, 0)) for r in routes]
    values = np.array([r[0] for r in rates], dtype=float)
    errors = np.array([[max(r[0] - r[1], 0.0) for r in rates], [max(r[2] - r[0], 0.0) for r in rates]])
    right.errorbar(values, y, xerr=errors, fmt="o", color=LIMIT_COLOR, ecolor="#777", capsize=2, markersize=4)
    right.set_xlabel("flip rate (95% interval)")
    for ax in (left, right):
        ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle(f"{replay.replayed:,} of {replay.messages:,} messages replayed ({replay.engine})", fontsize=9)
    return _svg(fig, salt)
