"""Traffic replay figures: where two models route the same unlabelled messages, compared message by message.

Pure: arrays of predictions in (each model's top intent and its probability, in message order), figures
out. Routes follow the routing policy (analysis.counterfactuals.RoutingPolicy: per-intent thresholds and
fallback routes), vectorised here for millions of messages and checked against RoutingPolicy.route by
the tests.

- flip rate: the share of messages whose route changes, with its exact (Clopper-Pearson) interval;
  per route, the share of the production model's messages of that route that the candidate routes elsewhere;
- the flip matrix: production route x candidate route counts;
- route shares: each route's share of traffic under either model, and the shift (candidate - production)
  with an exact interval conditional on the messages that moved (b into the route, c out of it: the shift
  is (b - c) / n, and b given b + c is binomial; Clopper-Pearson on it, as McNemar's exact test does);
- the most confident flips (by the candidate's confidence) and a seeded sample of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .counterfactuals import RoutingPolicy
from .intervals import CONFIDENCE, Rate, binomial_rate

RARE_SHARE = 0.05  # a route with less of the production traffic than this is rare: named when it moves
SAMPLE_SEED = 0


def route_names(labels, policy: RoutingPolicy) -> tuple[str, ...]:
    """Every route a message can take: the labels, then the fallback routes that are not labels."""
    extra = sorted({*policy.fallbacks.values(), policy.default_fallback} - set(labels))
    return (*labels, *extra)


def route_codes(intents: np.ndarray, confidences: np.ndarray, labels, policy: RoutingPolicy) -> np.ndarray:
    """Each message's route (an index into route_names), as RoutingPolicy.route decides it."""
    policy.check_labels(labels)
    routes = route_names(labels, policy)
    code = {name: i for i, name in enumerate(routes)}
    threshold = np.array([policy.thresholds.get(label, policy.default_threshold) for label in labels])
    fallback = np.array([code[policy.fallbacks.get(label, policy.default_fallback)] for label in labels])
    intents = np.asarray(intents, dtype=np.int64)
    auto = np.asarray(confidences, dtype=np.float64) >= threshold[intents]
    return np.where(auto, intents, fallback[intents]).astype(np.int16)


@dataclass(frozen=True)
class RouteShift:
    route: str
    production: Rate  # the route's share of traffic under the production model
    candidate: Rate
    shift: float  # candidate - production
    low: float  # exact interval of the shift (see the module docstring)
    high: float
    moved_in: int
    moved_out: int
    rare: bool

    def bound(self, which: str) -> float:
        """|shift| ("point"), or the end of its interval farthest from zero ("upper")."""
        return abs(self.shift) if which == "point" else max(abs(self.low), abs(self.high))

    @property
    def size_interval(self) -> tuple[float, float]:
        """The interval of |shift|: what a limit on the size of the shift is compared with."""
        ends = sorted((abs(self.low), abs(self.high)))
        return (0.0 if self.low <= 0 <= self.high else ends[0]), ends[1]

    @property
    def moved(self) -> bool:
        """The interval excludes no change."""
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class TrafficComparison:
    """Two models' routes on the same messages, in message order (codes index `routes`)."""

    routes: tuple[str, ...]
    production: np.ndarray
    candidate: np.ndarray
    production_confidence: np.ndarray
    candidate_confidence: np.ndarray

    @property
    def n(self) -> int:
        return int(self.production.size)

    @property
    def flipped(self) -> np.ndarray:
        return self.production != self.candidate

    def flip_rate(self, confidence: float = CONFIDENCE) -> Rate:
        return binomial_rate(int(self.flipped.sum()), self.n, confidence)

    def route_flip_rates(self, confidence: float = CONFIDENCE) -> dict[str, Rate]:
        """Per production route with messages: the share of its messages the candidate routes elsewhere."""
        matrix = self.flip_matrix()
        totals = matrix.sum(axis=1)
        return {route: binomial_rate(int(totals[i] - matrix[i, i]), int(totals[i]), confidence)
                for i, route in enumerate(self.routes) if totals[i]}

    def flip_matrix(self) -> np.ndarray:
        """counts[production route, candidate route]."""
        k = len(self.routes)
        flat = self.production.astype(np.int64) * k + self.candidate.astype(np.int64)
        return np.bincount(flat, minlength=k * k).reshape(k, k)

    def route_shifts(self, confidence: float = CONFIDENCE) -> list[RouteShift]:
        """Every route either model uses: its shares and their shift, largest |shift| first."""
        from scipy.stats import binomtest

        matrix = self.flip_matrix()
        n = self.n
        out = []
        for i, route in enumerate(self.routes):
            before, after = int(matrix[i].sum()), int(matrix[:, i].sum())
            if not before and not after:
                continue
            moved_in, moved_out = after - int(matrix[i, i]), before - int(matrix[i, i])
            moved = moved_in + moved_out
            if moved:
                ci = binomtest(moved_in, moved).proportion_ci(confidence_level=confidence, method="exact")
                low, high = (2 * ci.low - 1) * moved / n, (2 * ci.high - 1) * moved / n
            else:
                low = high = 0.0
            out.append(RouteShift(route, binomial_rate(before, n, confidence), binomial_rate(after, n, confidence),
                                  (after - before) / n, low, high, moved_in, moved_out, before / n < RARE_SHARE))
        return sorted(out, key=lambda s: (-abs(s.shift), s.route))

    def most_confident_flips(self, k: int) -> np.ndarray:
        """Positions of the k flips the candidate is surest of (ties: earlier message first)."""
        flips = np.flatnonzero(self.flipped)
        order = np.lexsort((flips, -self.candidate_confidence[flips].astype(np.float64)))
        return flips[order[:k]]

    def sample_of_other_flips(self, k: int, exclude: np.ndarray, seed: int = SAMPLE_SEED) -> np.ndarray:
        """A seeded sample of k flips outside `exclude`, in message order: the same on every run."""
        rest = np.setdiff1d(np.flatnonzero(self.flipped), exclude)
        if rest.size <= k:
            return rest
        return np.sort(np.random.default_rng(seed).choice(rest, size=k, replace=False))


def compare_routes(labels, policy: RoutingPolicy, production: tuple[np.ndarray, np.ndarray],
                   candidate: tuple[np.ndarray, np.ndarray]) -> TrafficComparison:
    """production and candidate: (top intent index, top probability) per message, in the same order."""
    if production[0].shape != candidate[0].shape:
        raise ValueError(f"{production[0].size} production predictions against {candidate[0].size} candidate ones")
    return TrafficComparison(route_names(labels, policy), route_codes(*production, labels, policy),
                             route_codes(*candidate, labels, policy), np.asarray(production[1]),
                             np.asarray(candidate[1]))
