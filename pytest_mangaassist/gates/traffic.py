"""Traffic replay gates: the candidate against production on a month of unlabelled messages (a shadow replay).

The candidate (intent_model) and the model in production (production_model, passed as against=) route every
message of the traffic (the traffic fixture, --traffic) through their ONNX exports, as served; routes
follow the routing policy in force (the one given, the suite's --routing-policy, the label set's profile's,
else argmax: domain.routing_policy; the row names which). No labels: the gates bound how
much routing changes, and show the messages that changed.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..analysis.counterfactuals import RoutingPolicy
from ..analysis.intervals import CONFIDENCE, Rate, check_sample_size, examples_needed, rates_table
from ..analysis.traffic import RouteShift, TrafficComparison
from ..cache.traffic import ReplayStats, traffic_comparison
from ..domain import routing_policy
from ..errors import clip, format_table, renamed_keywords
from ..loading.traffic import Traffic
from . import validation as valid
from .records import Family, TrafficFlip, TrafficReplay, check

UPPER_BOUNDS = ("point", "upper")
MOST_CONFIDENT = 10  # flips shown, most confident first...
SAMPLED = 10  # ...and a seeded sample of the rest


class TrafficReplayResult:
    """The comparison and how it was obtained (throughput), as a gate returns it."""

    def __init__(self, comparison: TrafficComparison, stats: ReplayStats, traffic: Traffic, policy: RoutingPolicy):
        self.comparison, self.stats, self.traffic, self.policy = comparison, stats, traffic, policy

    def __getattr__(self, name):  # flip_rate(), flip_matrix(), route_shifts(), ...
        return getattr(self.comparison, name)

    def flip_matrix_table(self) -> str:
        matrix = self.comparison.flip_matrix()
        used = [i for i in range(len(self.comparison.routes)) if matrix[i].sum() or matrix[:, i].sum()]
        routes = self.comparison.routes
        rows = [(routes[i], *(int(matrix[i, j]) for j in used)) for i in used]
        return format_table(("production \\ candidate", *(routes[j] for j in used)), rows)

    def shares_table(self) -> str:
        rows = [(s.route + (" (rare)" if s.rare else ""), f"{s.production.estimate:.4f}",
                 f"{s.candidate.estimate:.4f}", f"{s.shift:+.4f}", f"[{s.low:+.4f}, {s.high:+.4f}]", s.moved_in,
                 s.moved_out) for s in self.comparison.route_shifts()]
        return format_table(("route", "production share", "candidate share", "shift",
                             f"{CONFIDENCE:.0%} interval", "in", "out"), rows)

    def example_flips(self) -> list[TrafficFlip]:
        comparison = self.comparison
        confident = comparison.most_confident_flips(MOST_CONFIDENT)
        sample = comparison.sample_of_other_flips(SAMPLED, confident)
        positions = [*confident.tolist(), *sample.tolist()]
        where = _positions(self.traffic, positions)
        records = self.traffic.records(list(where.values()))
        routes = comparison.routes
        return [TrafficFlip(json.dumps(records[where[i]], ensure_ascii=False, sort_keys=True),
                            routes[comparison.production[i]], float(comparison.production_confidence[i]),
                            routes[comparison.candidate[i]], float(comparison.candidate_confidence[i]),
                            "most confident" if k < len(confident) else "sample")
                for k, i in enumerate(positions)]

    def flips_table(self, flips: list[TrafficFlip]) -> str:
        field = self.traffic.text_field
        others = [f for f in self.traffic.fields if f != field]
        rows = []
        for flip in flips:
            record = json.loads(flip.record)
            rows.append((clip(str(record.get(field, ""))), *(clip(str(record.get(f, "")), 24) for f in others),
                         f"{flip.production} ({flip.production_confidence:.3f})",
                         f"{flip.candidate} ({flip.candidate_confidence:.3f})", flip.why))
        return format_table((field, *others, "production", "candidate", "shown as"), rows)

    def payload(self) -> TrafficReplay:
        comparison, stats = self.comparison, self.stats
        return TrafficReplay(
            routes=comparison.routes,
            matrix=tuple(tuple(int(x) for x in row) for row in comparison.flip_matrix()),
            route_flip_rates={r: (rate.estimate, rate.low, rate.high, rate.n)
                              for r, rate in comparison.route_flip_rates().items()},
            shares={s.route: (s.production.estimate, s.candidate.estimate, s.shift, s.low, s.high, s.rare)
                    for s in comparison.route_shifts()},
            flips=tuple(self.example_flips()), messages=stats.messages, replayed=stats.replayed,
            seconds=round(stats.seconds, 3), engine=stats.engine)


def _positions(traffic: Traffic, positions: list[int]) -> dict[int, tuple[int, int]]:
    """Message position in the whole traffic -> (shard index, row in the shard)."""
    ends = np.cumsum([shard.rows for shard in traffic.shards])
    out = {}
    for i in positions:
        s = int(np.searchsorted(ends, i, side="right"))
        out[i] = (s, i - (int(ends[s - 1]) if s else 0))
    return out



def _replay(caller: str, model, examples, against, policy) -> TrafficReplayResult:
    traffic = valid.of_type(caller, "examples", examples, Traffic, "Traffic (the traffic fixture, --traffic)",
                            "Pass the traffic fixture, or pytest_mangaassist.load_traffic(path); a golden set is "
                            "compared message by message with assert_no_negative_flips.")
    valid.loaded_model(caller, model)
    valid.against(caller, model, against)
    policy = routing_policy(model.labels, valid.policy(caller, policy))
    comparison, stats = traffic_comparison(model, traffic, against=against, policy=policy)
    return TrafficReplayResult(comparison, stats, traffic, policy)


def traffic_replay(model, examples: Traffic, *, against, policy: RoutingPolicy | None = None
                   ) -> TrafficReplayResult:
    """The candidate's and against's (production's) routes on every message of the traffic, with the tables."""
    return _replay("traffic_replay", model, examples, against, policy)


@Family.COMPARISON.gate(page="traffic.md", chart=TrafficReplay,
                        checks="on replayed traffic (`examples`: the `traffic` fixture): share of messages whose "
                               "route changes, exact interval; optionally each route's flip rate "
                               "([traffic](traffic.md))")
@renamed_keywords(min_examples="at_least_examples")  # the old names, for one release
def assert_traffic_agreement(model, examples: Traffic, *, against, max_flip_rate: float,
                             max_route_flip_rate: float | None = None, bound: str = "point",
                             policy: RoutingPolicy | None = None,
                             at_least_examples: int | None = None) -> TrafficReplayResult:
    """The share of messages whose route changes between against (production) and the candidate must be <=
    max_flip_rate (bound="upper": the upper end of its exact 95% interval); with max_route_flip_rate, so must
    each route's share of its production messages that the candidate routes elsewhere (routes with too few
    messages to decide are listed, not gated)."""
    __tracebackhide__ = True
    caller = "assert_traffic_agreement"
    max_flip_rate = valid.share(caller, "max_flip_rate", max_flip_rate)
    max_route_flip_rate = valid.share(caller, "max_route_flip_rate", max_route_flip_rate, optional=True)
    valid.choice(caller, "bound", bound, UPPER_BOUNDS)
    valid.count(caller, "at_least_examples", at_least_examples, minimum=1, optional=True)
    result = _replay(caller, model, examples, against, policy)
    rate = result.flip_rate()
    check_sample_size(caller, f"traffic {result.traffic.source}", rate.n, max_flip_rate, bound, at_least_examples)
    payload = result.payload()
    name = "route flip rate" if bound == "point" else f"{CONFIDENCE:.0%} upper bound of the route flip rate"
    per_route = result.route_flip_rates()

    def evidence(failing: dict[str, str] | None = None) -> str:
        return (f"flip matrix (messages; rows: production route, columns: candidate route):\n"
                f"{result.flip_matrix_table()}\n\nflip rate per production route:\n"
                f"{rates_table(per_route, 'flip rate', failing, key='route')}\n\nflipped messages "
                f"({MOST_CONFIDENT} the candidate is surest of, then a fixed sample of the rest):\n"
                f"{result.flips_table(list(payload.flips))}")

    check(caller, f"{name} on {rate.n:,} messages ({int(result.flipped.sum()):,} change route; rate "
                  f"{rate.estimate:.4f}, {CONFIDENCE:.0%} interval {_interval(rate)}; routing: {result.policy.source}; "
                  f"{result.stats.describe()})",
          rate.bound(bound), max_flip_rate, "<=", interval=(rate.low, rate.high), payload=payload,
          evidence=evidence, hint="read the flipped messages: a route the candidate now prefers for a family of "
                                  "messages is a change in training data or thresholds; accept it knowingly (raise "
                                  "the limit in review) or fix the candidate.")
    if max_route_flip_rate is not None:
        decidable = {r: rate for r, rate in per_route.items()
                     if rate.n >= (at_least_examples or examples_needed(max_route_flip_rate, bound))}
        worst = max(decidable, key=lambda r: decidable[r].bound(bound), default=None)
        failing = {r: "FAIL" for r, rate in decidable.items() if rate.bound(bound) > max_route_flip_rate}
        value = decidable[worst].bound(bound) if worst else math.nan
        check(caller, f"largest per-route flip rate ({worst}, of {len(decidable)} routes with enough messages)",
              value, max_route_flip_rate, "<=", 
              interval=(decidable[worst].low, decidable[worst].high) if worst else None,
              evidence=lambda: evidence(failing), hint="the routes marked FAIL lost more of their messages than "
                                                       "allowed; the flipped messages above show where they went.")
    return result


def _interval(rate: Rate) -> str:
    return f"[{rate.low:.4f}, {rate.high:.4f}]"


@Family.COMPARISON.gate(page="traffic.md", chart=TrafficReplay,
                        checks="on replayed traffic: each route's share of traffic moves by at most `max_shift`; "
                               "rare routes are named when they move ([traffic](traffic.md))")
@renamed_keywords(min_examples="at_least_examples")  # the old names, for one release
def assert_route_shares_stable(model, examples: Traffic, *, against, max_shift: float, bound: str = "point",
                               policy: RoutingPolicy | None = None,
                               at_least_examples: int | None = None) -> TrafficReplayResult:
    """Each route's share of the traffic must move by at most max_shift (absolute, e.g. 0.01 = one point)
    between against (production) and the candidate; bound="upper": the end of the shift's exact 95% interval
    farthest from zero. Rare routes (under 5% of production traffic) are named when they
    move, whatever the limit: a small absolute shift there is a large share of their messages."""
    __tracebackhide__ = True
    caller = "assert_route_shares_stable"
    max_shift = valid.share(caller, "max_shift", max_shift)
    valid.choice(caller, "bound", bound, UPPER_BOUNDS)
    valid.count(caller, "at_least_examples", at_least_examples, minimum=1, optional=True)
    result = _replay(caller, model, examples, against, policy)
    shifts = result.route_shifts()
    check_sample_size(caller, f"traffic {result.traffic.source}", result.n, max_shift, "point", at_least_examples)
    worst: RouteShift = max(shifts, key=lambda s: (s.bound(bound), s.route))
    moved_rare = [s for s in shifts if s.rare and s.moved]
    rare_note = ("; rare routes that moved: " + ", ".join(
        f"{s.route} {s.production.estimate:.4f} -> {s.candidate.estimate:.4f} ({s.shift / s.production.estimate:+.0%})"
        if s.production.estimate else f"{s.route} new at {s.candidate.estimate:.4f}" for s in moved_rare)
                 if moved_rare else "")
    name = "largest route-share shift" if bound == "point" else \
        f"largest {CONFIDENCE:.0%} bound of a route-share shift"
    check(caller, f"{name} on {result.n:,} messages ({worst.route}: {worst.production.estimate:.4f} -> "
                  f"{worst.candidate.estimate:.4f}, {CONFIDENCE:.0%} interval of the shift [{worst.low:+.4f}, "
                  f"{worst.high:+.4f}]{rare_note}; routing: {result.policy.source}; {result.stats.describe()})",
          worst.bound(bound), max_shift, "<=", interval=worst.size_interval,
          payload=result.payload(),
          evidence=lambda: (f"route shares, production vs candidate (in / out: messages that moved into / out of "
                            f"the route):\n{result.shares_table()}\n\nflip matrix:\n{result.flip_matrix_table()}"),
          hint="a route whose share moved changes the load on whatever serves it (a fallback often reaches people): "
               "check the flipped messages with traffic_replay(...).flips_table(...), then accept the shift in "
               "review or fix the candidate.")
    return result
