"""Layer probes: a logistic-regression probe per layer on the [CLS] states (scikit-learn),
trained on one fixed, seeded, stratified split and scored by macro-F1 on the held-out part.

A probe's F1 is a lower bound on the intent information linearly readable at that layer
(Alain & Bengio, 2016); a sharp rise between two layers marks where the separability forms.

A high F1 alone does not show that the layer encodes intent: a probe can also score by memorising
surface identities that recur between its train and test split. Hewitt & Liang (2019) measure that
with a control task: the same probe trained on labels that are a fixed random function of a word's
type, so only memorising the type solves it; selectivity = task F1 - control F1. Our probes read one
vector per message, not per word, so the adaptation here gives each message the control label of its
*first word* type (lowercased, punctuation stripped): a surface identity that recurs across the split
("where", "can", "hi", "isekai"...) but carries no intent by construction, each type's label drawn
once, seeded, from the intent label distribution (so both tasks have the same classes and balance).
A layer whose [CLS] state lets the probe recall that arbitrary type-to-label map scores high on the
control task too; a layer with intent structure beyond surface identity is selective.
"""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass

import numpy as np

from ..errors import format_table
from .intervals import CONFIDENCE, N_RESAMPLES, Rate, bootstrap_method, macro_f1_rate
from .layers import layer_name

STORED_SEED = 0  # the bootstrap seed of the intervals a ProbeResult carries (f1_rate's default)


@dataclass(frozen=True)
class ProbeResult:
    f1: tuple[float, ...]  # macro-F1 per layer, embeddings first
    n_train: int
    n_test: int
    control_f1: tuple[float, ...] = ()  # the same probe on the control task, per layer
    test_labels: tuple[str, ...] = ()  # held-out truth, and each layer's predictions on it (for intervals)
    predicted: tuple[tuple[str, ...], ...] = ()
    # each layer's macro-F1 (estimate, low, high) at CONFIDENCE, seed STORED_SEED: made with the probes, so a
    # cached probe result carries them (a warm run read 1.4 s of bootstrap otherwise)
    f1_intervals: tuple[tuple[float, float, float], ...] = ()

    @property
    def selectivity(self) -> tuple[float, ...]:
        return tuple(f - c for f, c in zip(self.f1, self.control_f1))

    def f1_rate(self, layer: int, confidence: float = CONFIDENCE, seed: int = STORED_SEED) -> Rate:
        """The layer's held-out macro-F1 with a seeded bootstrap interval over the test examples (the
        probe's own training is held fixed: this is the uncertainty of scoring on n_test examples)."""
        if self.f1_intervals and (confidence, seed) == (CONFIDENCE, STORED_SEED):
            estimate, low, high = self.f1_intervals[layer]
            return Rate(estimate, low, high, self.n_test, bootstrap_method(N_RESAMPLES, STORED_SEED), CONFIDENCE)
        return _f1_rate(self.test_labels, self.predicted[layer], confidence, seed)

    def jump(self) -> tuple[int, float]:
        """The layer whose probe gains most over the layer below it, and the gain."""
        gains = np.diff(self.f1)
        layer = int(np.argmax(gains)) + 1
        return layer, float(gains[layer - 1])

    def table(self, confidence: float = CONFIDENCE) -> str:
        rows = []
        for l, f in enumerate(self.f1):
            row = [layer_name(l), f]
            if self.predicted:
                row.append(self.f1_rate(l, confidence).interval())
            if self.control_f1:
                row += [self.control_f1[l], self.selectivity[l]]
            rows.append(row + ["" if l == 0 else f"{f - self.f1[l - 1]:+.3f}"])
        header = ["layer", "probe macro-F1"] + ([f"{confidence:.0%} interval"] if self.predicted else [])
        header += ["control F1", "selectivity"] if self.control_f1 else []
        return format_table(header + ["change"], rows)


@functools.lru_cache(maxsize=64)
def _f1_rate(test_labels: tuple[str, ...], predicted: tuple[str, ...], confidence: float, seed: int) -> Rate:
    """One bootstrap per (layer, confidence, seed): the per-layer table and the gate read the same intervals."""
    return macro_f1_rate(test_labels, predicted, confidence, seed=seed)


def first_word_type(text: str) -> str:
    words = text.lower().split()
    return words[0].strip(string.punctuation) if words else ""


def control_labels(texts, labels, seed: int = 0) -> np.ndarray:
    """Each first-word type gets one label, drawn (seeded) from the empirical distribution of `labels`."""
    labels = np.asarray(labels)
    types = sorted({first_word_type(t) for t in texts})
    rng = np.random.default_rng(seed)
    assigned = dict(zip(types, rng.choice(labels, size=len(types), replace=True)))
    return np.array([assigned[first_word_type(t)] for t in texts])


def probe_f1_per_layer(cls_states: np.ndarray, labels, test_size: float = 0.3, seed: int = 0,
                       texts=None) -> ProbeResult:
    """cls_states: (examples, layers + 1, hidden); labels: one intent per example; with texts, also the
    control task (first-word types, see the module docstring) on the same split."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    train, test = train_test_split(np.arange(len(labels)), test_size=test_size, random_state=seed, stratify=labels)
    tasks = [labels] + ([control_labels(texts, labels, seed)] if texts is not None else [])
    (f1, predicted), *control = _probe_layers(cls_states, tasks, train, test, seed)
    test_labels, predicted = tuple(map(str, labels[test])), tuple(tuple(map(str, p)) for p in predicted)
    rates = [_f1_rate(test_labels, p, CONFIDENCE, STORED_SEED) for p in predicted]
    return ProbeResult(tuple(f1), len(train), len(test), tuple(control[0][0]) if control else (), test_labels,
                       predicted, tuple((float(r), r.low, r.high) for r in rates))


def _probe_layers(cls_states, tasks, train, test, seed):
    """Per task (one label per example), per layer: the probe's held-out macro-F1 and its predictions. The
    fits are independent, so they run on every usable core, in threads (scikit-learn's lbfgs spends its time
    in numpy, which releases the GIL; processes would pay their start-up and copy the states)."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    from .contention import usable_cores

    def fit(task, layer):
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import f1_score
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
        probe.fit(cls_states[train, layer], task[train])
        predicted = probe.predict(cls_states[test, layer])
        return float(f1_score(task[test], predicted, average="macro")), predicted

    jobs = [(task, layer) for task in tasks for layer in range(cls_states.shape[1])]
    # One BLAS thread per fit: beside torch's OpenMP pool, threaded BLAS on these small matrices oversubscribes
    # the cores (measured 5x slower on 2 cores) and makes the lbfgs path depend on the thread count.
    with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=usable_cores()) as pool:
        done = list(pool.map(lambda job: fit(*job), jobs))
    layers = cls_states.shape[1]
    return [([f for f, _ in done[i:i + layers]], [p for _, p in done[i:i + layers]])
            for i in range(0, len(done), layers)]
