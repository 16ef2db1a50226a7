"""An xfail mark on a gate test expects the model to fail a gate: the plugin counts a GateFailure as that
expected failure and nothing else (issue #23: a TypeError from a plugin bug read "xfailed")."""

import pytest

XFAIL_FILE = """
import pytest
from pytest_mangaassist import GateFailure

@pytest.mark.gate("monthly")
@pytest.mark.xfail(strict=True, reason="the model misses the bar")
def test_a_gate_failure_is_the_expected_failure():
    raise GateFailure("assert_accuracy_above", "accuracy", 0.5, 0.9)

@pytest.mark.gate("monthly")
@pytest.mark.xfail(strict=True, reason="the model misses the bar")
def test_a_bug_in_a_gate_test_is_not():
    raise TypeError("unsupported operand type(s)")

@pytest.mark.xfail(strict=True, reason="the model misses the bar")
def test_a_plain_assert_on_the_plugin_inputs_is_not(golden_set):
    assert len(golden_set) < 0

@pytest.mark.gate("monthly")
@pytest.mark.xfail(strict=True, raises=TypeError, reason="the mark names it")
def test_an_exception_the_mark_names_is():
    raise TypeError("expected by the mark")

@pytest.mark.xfail(strict=True, reason="not a gate test")
def test_other_tests_are_left_to_pytest():
    raise TypeError("not the plugin's business")

@pytest.mark.gate("monthly")
def test_pytest_xfail_called_in_the_test_is_its_own_decision():
    pytest.xfail("decided here")
"""


def test_only_a_gate_failure_counts_as_the_expected_failure_of_a_gate_test(pytester, small_golden):
    pytester.makepyfile(test_xfails=XFAIL_FILE)
    result = pytester.runpytest_subprocess(f"--golden-set={small_golden}", "-rxf")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    result.assert_outcomes(xfailed=4, failed=2)
    for test in ("test_a_bug_in_a_gate_test_is_not", "test_a_plain_assert_on_the_plugin_inputs_is_not"):
        assert f"FAILED test_xfails.py::{test}" in out
    assert out.count("this gate test is marked xfail, which expects a gate to fail (GateFailure), but it raised") == 2
    assert "raised TypeError instead" in out and "raised AssertionError instead" in out
    assert "fix: fix the error" in out and "@pytest.mark.xfail(raises=TypeError, strict=True" in out
    for test in ("test_a_gate_failure_is_the_expected_failure", "test_an_exception_the_mark_names_is",
                 "test_other_tests_are_left_to_pytest", "test_pytest_xfail_called_in_the_test_is_its_own_decision"):
        assert f"XFAIL test_xfails.py::{test}" in out
