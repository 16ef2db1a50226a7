"""Linear centered kernel alignment (Kornblith et al., 2019).

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)      (X, Y column-centred)

computed in float64 from the feature-space form, so the cost is O(n p q) and memory O(p q):
it scales to many examples without an n x n Gram matrix. No maintained library ships linear CKA
for numpy arrays, hence this module.

What CKA is invariant to (Kornblith et al., Sec. 3): orthogonal transforms and isotropic
scaling of either representation. It is NOT invariant to an arbitrary invertible linear map:
invariance to every invertible map would make any two representations with n <= p identical
(the paper's argument against CCA-style similarity). The source analysis' claim that CKA is 1
"when the representations are related by an invertible linear transformation" is wrong.
"""

from __future__ import annotations

import numpy as np

from ..errors import MangaAssistInputError

# The fewest examples a CKA gate decides on, per estimator (#12.6; benchmarks/cka_sample_size.py on the reference
# model, fine-tuned vs pre-trained, 10 random subsamples of the 5,500-message validation set per n):
#   top layer, plain (biased):  0.686 at n=50, 0.614 at 100, 0.587 at 154, 0.544 at 300, 0.511 at 1000, 0.495 at 5500
#   top layer, debiased:        0.482,         0.476,        0.494,        0.488,        0.493,         0.492
#   debiased, sd between samples: 0.048 at 50, 0.044 at 100, 0.034 at 154, 0.021 at 300, 0.010 at 1000
# The debiased estimator removes the dependence on n (every mean within 0.016 of the full-set figure); what is left
# is sampling noise, so it needs n >= 300 (sd <= 0.021: a limit 0.05 below a measured figure is > 2 sd away).
# Plain CKA still drifts by +0.016 at n=1000 and +0.049 at n=300, so it needs n >= 1000.
MIN_CKA_EXAMPLES = 300
MIN_BIASED_CKA_EXAMPLES = 1000


def _as_matrix(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise MangaAssistInputError(f"linear_cka: {name} must be a 2-D (examples x features) array; got shape {x.shape}.",
                                    "Pass one row per example, e.g. the [CLS] states of one layer.")
    return x


def linear_cka(x, y, debiased: bool = False) -> float:
    """Linear CKA between two representations of the same n examples (rows).

    A representation that is constant over the examples (the [CLS] state at the embedding layer is
    the same vector for every message) has no geometry to compare: the result is nan, not 0 or 1.
    debiased=True uses the unbiased HSIC estimator (Song et al., 2012; Nguyen et al., 2021), which
    removes the upward bias of plain CKA when n is small relative to the feature count.
    """
    x, y = _as_matrix(x, "x"), _as_matrix(y, "y")
    if x.shape[0] != y.shape[0]:
        raise MangaAssistInputError(f"linear_cka: x has {x.shape[0]} examples, y has {y.shape[0]}.",
                                    "Compute both representations on the same examples, in the same order.")
    # Centring is part of plain CKA's definition; the unbiased HSIC is offset-invariant in exact
    # arithmetic, and centring first keeps it so in floating point.
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    if debiased:
        return _debiased_cka(x, y)
    cross = np.linalg.norm(y.T @ x) ** 2
    denominator = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / denominator) if denominator > 0 else float("nan")


def _debiased_cka(x: np.ndarray, y: np.ndarray) -> float:
    n = x.shape[0]
    if n < 4:
        raise MangaAssistInputError(f"debiased linear_cka needs at least 4 examples; got {n}.",
                                    "Use more examples, or debiased=False.")
    hxy, hxx, hyy = _unbiased_hsic(x, y), _unbiased_hsic(x, x), _unbiased_hsic(y, y)
    denominator = np.sqrt(hxx * hyy)
    return float(hxy / denominator) if denominator > 0 else float("nan")


def _unbiased_hsic(x: np.ndarray, y: np.ndarray) -> float:
    """U-statistic HSIC of linear kernels in feature space (no n x n matrices).

    With K = X X^T, L = Y Y^T and zero diagonals K~, L~ (Song et al., 2012, eq. 5):
    HSIC_u * n(n-3) = tr(K~ L~) + (1^T K~ 1)(1^T L~ 1)/((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1
    """
    n = x.shape[0]
    kx = np.einsum("ij,ij->i", x, x)  # diag(K)
    ly = np.einsum("ij,ij->i", y, y)  # diag(L)
    trace_kl = np.linalg.norm(y.T @ x) ** 2 - kx @ ly
    sum_k = np.linalg.norm(x.sum(axis=0)) ** 2 - kx.sum()
    sum_l = np.linalg.norm(y.sum(axis=0)) ** 2 - ly.sum()
    k_rows = x @ x.sum(axis=0) - kx  # K~ 1
    l_rows = y @ y.sum(axis=0) - ly  # L~ 1
    return float((trace_kl + sum_k * sum_l / ((n - 1) * (n - 2)) - 2 * (k_rows @ l_rows) / (n - 2)) / (n * (n - 3)))


def cka_per_layer(states_a: np.ndarray, states_b: np.ndarray, debiased: bool = False) -> list[float]:
    """CKA of each layer: states are (examples, layers, features) arrays of the same examples."""
    if states_a.shape[:2] != states_b.shape[:2]:
        raise MangaAssistInputError(
            f"cka_per_layer: the two models give states of shape {states_a.shape[:2]} and {states_b.shape[:2]} "
            "(examples, layers).",
            "Compare models with the same number of layers on the same examples.",
        )
    return [linear_cka(states_a[:, l], states_b[:, l], debiased) for l in range(states_a.shape[1])]
