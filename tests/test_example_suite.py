"""End to end, as the main job runs it: the reference model built by the project's code, the example
gate suite on it (all pass), and the deep dive on the same model with its top layer re-initialised
(fails). Builds the full reference model once (about 4.5 minutes on 2 cores) into artifacts/reference,
or reuses it when that build is up to date."""

from pathlib import Path

import pytest

from mangaassist_reference.build import FULL, build_reference
from mangaassist_reference.defects import reinitialise_top_layer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reference():
    import torch

    out = ROOT / "artifacts" / "reference"
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # as scripts/gate.sh builds it on 2 cores, whatever OMP_NUM_THREADS the tests run with
    try:
        build_reference(out, FULL)
    finally:
        torch.set_num_threads(threads)
    return out


def suite_args(model: Path, reference: Path) -> list[str]:
    return [str(ROOT / "example_suite"), f"--model-path={model}", f"--pretrained-path={reference / 'pretrained'}",
            f"--baseline-path={reference / 'previous'}",
            f"--validation-set={reference / 'data' / 'valid.jsonl'}", "-p", "no:cacheprovider"]


def test_example_suite_passes_on_the_reference_model_and_prints_the_deep_dive_tables(pytester, reference):
    result = pytester.runpytest_subprocess(*suite_args(reference / "finetuned", reference))
    result.assert_outcomes(passed=36, xfailed=3)
    out = result.stdout.str()
    assert "mangaassist figures" in out
    for title in ("CKA pre-trained vs fine-tuned", "probe macro-F1 per layer", "activation patching at [CLS]"):
        assert title in out
    assert "layer 6" in out


def test_deep_dive_fails_on_a_reinitialised_top_layer(pytester, reference, tmp_path):
    broken = reinitialise_top_layer(reference / "finetuned", tmp_path / "reinit")
    args = suite_args(broken, reference)
    args[0] = str(ROOT / "example_suite" / "test_deep_dive.py")
    result = pytester.runpytest_subprocess(*args)
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "assert_cka_above: linear CKA at layer 6" in out  # measured 0.357 against the floor 0.42
    # the top-layer probe (0.945 against 0.95) fails too on this build, by a margin too thin to pin here
