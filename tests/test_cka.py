"""linear_cka against its definition (Kornblith et al., 2019) and an independent Gram-matrix computation."""

import numpy as np
import pytest

from pytest_mangaassist import MangaAssistInputError, linear_cka


def gram_cka(x, y):
    """CKA from centred n x n Gram matrices: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
    return np.sum(k * l) / (np.linalg.norm(k) * np.linalg.norm(l))


def gram_unbiased_cka(x, y):
    def hsic(k, l):
        n = len(k)
        k, l = k.copy(), l.copy()
        np.fill_diagonal(k, 0)
        np.fill_diagonal(l, 0)
        one = np.ones(n)
        return (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * one @ k @ l @ one) / (n * (n - 3))

    k, l = x @ x.T, y @ y.T
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 24))
    y = x @ rng.normal(size=(24, 32)) + 0.7 * rng.normal(size=(60, 32))
    return rng, x, y


def test_identical_inputs_give_one(data):
    _, x, _ = data
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x, debiased=True) == pytest.approx(1.0, abs=1e-12)


def test_invariant_to_orthogonal_transforms_and_isotropic_scaling(data):
    rng, x, y = data
    q, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    base = linear_cka(x, y)
    assert linear_cka(x, y @ q) == pytest.approx(base, abs=1e-10)
    assert linear_cka(3.7 * x, 0.01 * y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(x + 5.0, y - 2.0) == pytest.approx(base, abs=1e-10)  # centring removes offsets
    debiased = linear_cka(x, y, debiased=True)
    q24, _ = np.linalg.qr(rng.normal(size=(24, 24)))
    assert linear_cka(x @ q24 * 2 + 500.0, y, debiased=True) == pytest.approx(debiased, abs=1e-9)


def test_not_invariant_to_an_arbitrary_invertible_linear_map(data):
    rng, x, _ = data
    a = rng.normal(size=(24, 24)) @ np.diag(np.logspace(0, 2, 24))  # invertible, far from orthogonal
    assert abs(np.linalg.det(a)) > 0
    assert linear_cka(x, x @ a) < 0.9  # the source analysis claimed 1.0 here; the paper says otherwise


def test_symmetric_and_bounded(data):
    rng, x, y = data
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-12)
    for _ in range(20):
        a, b = rng.normal(size=(30, 8)), rng.normal(size=(30, 50))
        assert 0.0 <= linear_cka(a, b) <= 1.0


def test_equals_the_gram_matrix_computation(data):
    rng, x, y = data
    assert linear_cka(x, y) == pytest.approx(gram_cka(x, y), abs=1e-10)
    a, b = rng.normal(size=(40, 300)), rng.normal(size=(40, 7))  # more features than examples
    assert linear_cka(a, b) == pytest.approx(gram_cka(a, b), abs=1e-10)


def test_debiased_equals_the_unbiased_hsic_computation(data):
    _, x, y = data
    assert linear_cka(x, y, debiased=True) == pytest.approx(gram_unbiased_cka(x, y), abs=1e-10)


def test_debiased_removes_the_small_sample_bias():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(25, 400)), rng.normal(size=(25, 400))  # independent: true CKA is 0
    assert linear_cka(x, y) > 0.5
    assert abs(linear_cka(x, y, debiased=True)) < 0.1


def test_float64_even_for_float32_input(data):
    _, x, y = data
    assert linear_cka(x.astype(np.float32), y.astype(np.float32)) == pytest.approx(linear_cka(x, y), abs=1e-6)


def test_bad_shapes_are_input_errors():
    with pytest.raises(MangaAssistInputError, match="same examples"):
        linear_cka(np.ones((5, 3)), np.ones((6, 3)))
    with pytest.raises(MangaAssistInputError, match="2-D"):
        linear_cka(np.ones(5), np.ones(5))


def test_constant_representation_is_undefined_not_zero():
    rng = np.random.default_rng(2)
    assert np.isnan(linear_cka(np.ones((10, 4)), rng.normal(size=(10, 4))))
