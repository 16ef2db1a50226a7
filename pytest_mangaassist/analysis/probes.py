"""Layer probes: a logistic-regression probe per layer on the [CLS] states (scikit-learn),
trained on one fixed, seeded, stratified split and scored by macro-F1 on the held-out part.

A probe's F1 is a lower bound on the intent information linearly readable at that layer
(Alain & Bengio, 2016); a sharp rise between two layers marks where the separability forms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import format_table
from .layers import layer_name


@dataclass(frozen=True)
class ProbeResult:
    f1: tuple[float, ...]  # macro-F1 per layer, embeddings first
    n_train: int
    n_test: int

    def jump(self) -> tuple[int, float]:
        """The layer whose probe gains most over the layer below it, and the gain."""
        gains = np.diff(self.f1)
        layer = int(np.argmax(gains)) + 1
        return layer, float(gains[layer - 1])

    def table(self) -> str:
        rows = [(layer_name(l), f, "" if l == 0 else f"{f - self.f1[l - 1]:+.3f}") for l, f in enumerate(self.f1)]
        return format_table(("layer", "probe macro-F1", "change"), rows)


def probe_f1_per_layer(cls_states: np.ndarray, labels, test_size: float = 0.3, seed: int = 0) -> ProbeResult:
    """cls_states: (examples, layers + 1, hidden); labels: one intent per example."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    labels = np.asarray(labels)
    train, test = train_test_split(np.arange(len(labels)), test_size=test_size, random_state=seed, stratify=labels)
    scores = []
    # One BLAS thread: beside torch's OpenMP pool, threaded BLAS on these small matrices oversubscribes
    # the cores (measured 5x slower on 2 cores) and makes the lbfgs path depend on the thread count.
    with threadpool_limits(limits=1):
        for layer in range(cls_states.shape[1]):
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
            probe.fit(cls_states[train, layer], labels[train])
            scores.append(float(f1_score(labels[test], probe.predict(cls_states[test, layer]), average="macro")))
    return ProbeResult(tuple(scores), len(train), len(test))
