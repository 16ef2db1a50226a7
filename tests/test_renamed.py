"""The names this release changed (docs/gates.md, 'Names'): every former keyword, attribute and flag of the
analyses a notebook calls still works, gives what the new name gives, and warns naming the new one; a former
and a current name together is an input error. (The gates' keywords: tests/test_gate_shape.py; the
production model's option and fixture: tests/test_fixtures.py.)"""

import sys

import numpy as np
import pytest

import pytest_mangaassist as ma
from pytest_mangaassist import IntentModel, MangaAssistInputError
from pytest_mangaassist.analysis.attribution import integrated_gradients as pure_integrated_gradients
from pytest_mangaassist.loading.golden import load_golden_set

TEXTS = ["is this on sale", "any discount on volume 3", "where is my order", "sale price for Berserk deluxe"]


@pytest.fixture(scope="module")
def model(small_model):
    return IntentModel.load(small_model)


@pytest.fixture(scope="module")
def golden(small_golden):
    return load_golden_set(small_golden)


def old_and_new(function, old: dict, new: dict, message: str, *args):
    """function(*args, **old) under the warning `message`, and function(*args, **new)."""
    with pytest.warns(DeprecationWarning, match=message):
        before = function(*args, **old)
    return before, function(*args, **new)


def test_integrated_gradients_max_steps(model):
    for integrated_gradients in (ma.integrated_gradients, pure_integrated_gradients):  # cached and pure
        old, new = old_and_new(integrated_gradients, {"max_steps": 16}, {"at_most_steps": 16},
                               "integrated_gradients: max_steps= is deprecated .* pass at_most_steps= instead",
                               model, TEXTS, "promotion")
        assert [a.scores.tolist() for a in old] == [a.scores.tolist() for a in new]
        assert max(a.n_steps for a in new) <= 16


def test_parity_probe_max_length_and_batch_invariance_max_texts(model):
    old, new = old_and_new(ma.parity_probe, {"max_length": 16}, {"at_most_length": 16},
                           "parity_probe: max_length= is deprecated .* pass at_most_length=", model, TEXTS)
    assert old == new and any(b.pad_to == 16 for b in new)
    old, new = old_and_new(ma.batch_invariance, {"max_texts": 2}, {"at_most_texts": 2},
                           "batch_invariance: max_texts= is deprecated .* pass at_most_texts=", model, TEXTS)
    assert old.n_texts == new.n_texts == 2 and old.max_abs_diff == new.max_abs_diff


def test_measure_latency_call_counts(model):
    with pytest.warns(DeprecationWarning, match="measure_latency: min_calls= is deprecated .* pass at_least_calls="):
        result = ma.measure_latency(model, warmup=1, min_calls=5, at_most_calls=5, at_most_seconds=5.0)
    assert len(result.samples_ms) >= 5
    with pytest.raises(MangaAssistInputError, match="max_calls= is the old name of at_most_calls=; got both"):
        ma.measure_latency(model, warmup=1, max_calls=5, at_most_calls=5)


def test_slice_discovery_min_size_and_the_shortcut_audit_family(model, golden):
    old, new = old_and_new(ma.discover_slices, {"min_size": 10}, {"at_least_size": 10},
                           "discover_slices: min_size= is deprecated .* pass at_least_size=", model, golden)
    assert old.table() == new.table()
    with pytest.warns(DeprecationWarning, match="SliceDiscovery.min_size is deprecated .* read .at_least_size"):
        assert new.min_size == new.at_least_size == 10
    audit = ma.lexical_shortcut_audit(model, TEXTS, intent="promotion", words=["sale"], at_most_steps=16)
    with pytest.warns(DeprecationWarning, match="ShortcutAudit.family is deprecated .* read .words"):
        assert audit.family == audit.words == ("sale",)
    assert np.isfinite(audit.share)


def test_slices_discover_min_size_flag(pytester, small_model, small_golden):
    def discover(*flags):
        return pytester.run(sys.executable, "-m", "pytest_mangaassist", "slices", "discover", "--model", small_model,
                            "--data", small_golden, "--top", "3", *flags)

    old, new = discover("--min-size", "12"), discover("--at-least-size", "12")
    assert old.ret == new.ret == 0, old.stderr.str()
    assert old.outlines == new.outlines and "(min size 12)" in new.stdout.str()
    assert ("warning: --min-size is deprecated and goes in the next release; pass --at-least-size instead."
            in old.stderr.str())
    both = discover("--min-size", "12", "--at-least-size", "12")
    assert both.ret == 2 and "error: --min-size is the old name of --at-least-size; got both." in both.stderr.str()
    assert "Traceback" not in both.stderr.str()
