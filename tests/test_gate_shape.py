"""One call shape for every gate (issue #13.1), checked on every exported `assert_*`, and every limit
validated at the boundary (issue #12.3).

The shape: `assert_<what>(model, examples, *, <limits and options>)`. The model under test first; the
examples second wherever the gate reads examples; everything after that keyword-only; the other model
(where there is one) always `against=`; limits named min_* / max_* by what they bound.

Exemption: assert_no_regression is the one figure gate. It compares a number the test measured
(`metric`, `value`) with the committed snapshot, so it has no model and no examples: its first two
parameters are the figure's name and value, and everything after them is keyword-only like every gate.
assert_no_leakage compares two data sets (golden, train) and reads no model: those are its first two.

The gates are the declared ones (gates/records.py: `@Family.X.gate`), so a gate is checked as soon as it is
declared; every verdict limit (min_*/max_* that is not a run setting) gets a NaN case derived from the signature,
its other required arguments filled by their name (one value per kind of argument, ARGUMENTS). Verdict limits
are min_* / max_*; run settings (how much work the gate does, how few examples it decides on) are at_least_* /
at_most_*.
"""

from __future__ import annotations

import inspect
import math

import pytest

import pytest_mangaassist
from pytest_mangaassist import MangaAssistInputError
from pytest_mangaassist.gates.records import declared_gates

GATES = sorted(declared_gates())
FIGURE_GATES = {"assert_no_regression": ("metric", "value")}  # the exemption in the module docstring
DATA_GATES = {"assert_no_leakage": ("golden", "train")}  # compares two data sets, reads no model
NO_EXAMPLES = {"assert_onnx_structure", "assert_latency_p95"}  # read an artifact or time a fixed input
TWO_MODELS = {"assert_no_negative_flips", "assert_not_worse", "assert_cka_above", "assert_attention_shift",
              "assert_traffic_agreement", "assert_route_shares_stable"}
OTHER_MODEL_NAMES = {"other", "reference", "baseline", "baseline_model", "production", "production_model",
                     "reference_model", "other_model",
                     "candidate", "previous", "pretrained"}
LIMIT_WORDS = ("threshold", "tolerance", "atol", "rtol", "alpha", "budget", "limit", "cutoff", "floor", "ceiling")
# float-valued parameters that are settings, not limits (what a limit is compared with is min_*/max_*)
FLOAT_OPTIONS = {"confidence", "fdr"}  # fdr: the false discovery rate a weak-slice search is held to


def signature(gate: str) -> inspect.Signature:
    return inspect.signature(getattr(pytest_mangaassist, gate))


def test_there_are_gates_to_check():
    assert len(GATES) > len(FIGURE_GATES) + len(NO_EXAMPLES)
    assert set(FIGURE_GATES) | NO_EXAMPLES | TWO_MODELS <= set(GATES)  # the sets above name real gates


@pytest.mark.parametrize("gate", GATES)
def test_model_first_examples_second_everything_else_keyword_only(gate):
    params = list(signature(gate).parameters.values())
    kinds = {p.name: p.kind for p in params}
    assert inspect.Parameter.VAR_POSITIONAL not in kinds.values(), f"{gate} takes *args"
    assert inspect.Parameter.VAR_KEYWORD not in kinds.values(), f"{gate} takes **kwargs: they escape validation"
    if gate in FIGURE_GATES or gate in DATA_GATES:
        leading = list({**FIGURE_GATES, **DATA_GATES}[gate])
    else:
        leading = ["model"] if gate in NO_EXAMPLES else ["model", "examples"]
    positional = [p.name for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert positional == leading, f"{gate}: positional parameters {positional}, expected {leading}"
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params[:len(leading)])


@pytest.mark.parametrize("gate", GATES)
def test_limits_are_named_min_or_max(gate):
    for p in signature(gate).parameters.values():
        assert not any(word in p.name for word in LIMIT_WORDS), f"{gate}({p.name}=...): name a limit min_*/max_*"
        default = p.default
        if isinstance(default, float) and p.name not in FLOAT_OPTIONS:
            assert p.name.startswith(("min_", "max_", "at_least_", "at_most_")), \
                f"{gate}({p.name}={default}): a limit is min_*/max_*, a run setting at_least_*/at_most_*"


@pytest.mark.parametrize("gate", GATES)
def test_the_other_model_is_called_against(gate):
    params = signature(gate).parameters
    assert not OTHER_MODEL_NAMES & set(params), f"{gate}: the other model is `against`, not {OTHER_MODEL_NAMES & set(params)}"
    models = [name for name in params if "model" in name]
    assert models in ([], ["model"]), f"{gate}: model parameters {models}"
    if gate in TWO_MODELS:
        against = params.get("against")
        assert against is not None and against.kind is inspect.Parameter.KEYWORD_ONLY, gate
        assert against.default is inspect.Parameter.empty, f"{gate}: against= is required"
    else:
        assert "against" not in params, f"{gate} has no second model"


# -- every limit is validated at the boundary ----------------------------------------------------------
# (gate, the arguments that make a valid call apart from the bad limit, the limit, a meaningless value)
PAIRS = [("where is my order", "where is my order, it was a sale item")]
CONTEXTS_A = ["I want to return my order", "how do I return this damaged book"]
CONTEXTS_B = ["I want to return to this series", "I return to Berserk every year"]


MODEL, GOLDEN = object(), object()  # stand for the small model and its golden set (filled in by the test)
# the arguments a valid call needs, by parameter name: a new gate whose parameters have these names needs no case
ARGUMENTS = {"against": MODEL, "layer": 1, "intent": "promotion", "words": ["order"], "contrast": CONTEXTS_B,
             "word": "return", "from_layer": 1, "artifact": None}
EXAMPLES = {"assert_prediction_invariant": PAIRS, "assert_confidence_shift": PAIRS,  # the examples other than golden
            "assert_token_senses_separate": CONTEXTS_A}
REQUIRED_LIMIT = 0.5  # what a required limit not under test is given (in range for every limit)


def limits_of(gate: str) -> list[str]:
    return [p.name for p in signature(gate).parameters.values() if p.kind is p.KEYWORD_ONLY
            and p.name.startswith(("min_", "max_"))]


def leading(gate: str) -> tuple:
    if gate in FIGURE_GATES:
        return ("accuracy", 0.9)
    if gate in DATA_GATES:
        return (GOLDEN, GOLDEN)
    return (MODEL,) if gate in NO_EXAMPLES else (MODEL, EXAMPLES.get(gate, GOLDEN))


def derived_cases():
    """(gate, positional arguments, the other keyword arguments, the limit, NaN) for every limit of every gate."""
    out = []
    for gate in GATES:
        required = [p for p in signature(gate).parameters.values()
                    if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
        for limit in limits_of(gate):
            kwargs = {p.name: ARGUMENTS.get(p.name, REQUIRED_LIMIT) for p in required if p.name != limit}
            out.append((gate, leading(gate), kwargs, limit, math.nan))
    return out


def cases():
    """The derived NaN cases, then meaningless values of other kinds (out of range, a string, a bad setting)."""
    model, golden = MODEL, GOLDEN
    return derived_cases() + [
        ("assert_accuracy_above", (model, golden), {}, "min_accuracy", -0.5),
        ("assert_accuracy_above", (model, golden), {}, "min_accuracy", "0.9"),
        ("assert_accuracy_above", (model, golden), {"min_accuracy": 0.5}, "confidence", 1.5),
        ("assert_accuracy_above", (model, golden), {"min_accuracy": 0.5}, "at_least_examples", -5),
        ("assert_recall_above", (model, golden), {}, "min_recall", -1.0),
        ("assert_batch_invariant", (model, golden), {}, "max_logit_diff", -1e-4),
        ("assert_no_negative_flips", (model, golden), {"against": model}, "max_negative_flip_rate", 1.5),
        ("assert_not_worse", (model, golden), {"against": model}, "min_p_value", -0.05),
        ("assert_probe_f1_above", (model, golden), {"layer": 1}, "min_f1", 2.0),
        ("assert_patching_recovers", (model, golden), {"layer": 1}, "min_rate", -1.0),
        ("assert_decision_forms_by", (model, golden), {"layer": 1}, "min_share", 1.5),
        ("assert_no_lexical_shortcut", (model, golden), {"intent": "promotion"}, "max_share", 1.5),
        ("assert_no_lexical_shortcut", (model, golden), {"intent": "promotion"}, "min_effect", "0.1"),
        ("assert_layer_conductance_share", (model, golden), {"intent": "promotion", "layer": 1}, "min_share", -0.1),
        ("assert_attention_shift", (model, golden), {"against": model, "words": ["order"], "layer": 1},
         "min_shift", "0.1"),
        ("assert_prediction_invariant", (model, PAIRS), {}, "max_flip_rate", 1.5),
        ("assert_onnx_parity", (model, golden), {"artifact": None}, "max_logit_diff", -1.0),
        ("assert_serving_parity", (model, golden), {"artifact": None}, "max_logit_diff", math.inf),
        ("assert_latency_p95", (model,), {}, "max_p95_ms", math.inf),
        ("assert_no_regression", ("accuracy", 0.9), {}, "max_regression", -0.1),
        ("assert_no_weak_slice", (model, golden), {}, "max_lift", 0.5),
        ("assert_no_weak_slice", (model, golden), {}, "max_error_rate", 1.5),
        ("assert_no_weak_slice", (model, golden), {"max_lift": 2.0}, "fdr", 1.0),
        ("assert_no_weak_slice", (model, golden), {"max_lift": 2.0}, "at_least_size", 0),
        ("assert_no_leakage", (golden, golden), {}, "max_similarity", 1.0),
        ("assert_traffic_agreement", (model, golden), {"against": model}, "max_flip_rate", 1.5),
        ("assert_route_shares_stable", (model, golden), {"against": model}, "max_shift", -0.01),
    ]


# gates with no numeric limit to get wrong: their verdict is all-or-nothing
NO_LIMIT = {"assert_routes": "every message must reach the expected route",
            "assert_onnx_structure": "every structural property must hold"}


def test_every_gate_has_a_limit_or_says_why_not():
    assert {gate for gate in GATES if not limits_of(gate)} == set(NO_LIMIT)


@pytest.fixture(scope="module")
def loaded(small_model, small_golden):
    from pytest_mangaassist import IntentModel, load_golden_set

    return IntentModel.load(small_model), load_golden_set(small_golden)


@pytest.mark.parametrize("gate, args, kwargs, limit, bad", cases(),
                         ids=[f"{c[0]}-{c[3]}={c[4]!r}" for c in cases()])
def test_a_meaningless_limit_is_refused_naming_the_parameter(loaded, gate, args, kwargs, limit, bad):
    model, golden = loaded
    fill = {id(MODEL): model, id(GOLDEN): golden}
    args = [fill.get(id(a), a) for a in args]
    kwargs = {k: fill.get(id(v), v) for k, v in kwargs.items()}
    required = {p.name: REQUIRED_LIMIT for p in signature(gate).parameters.values()
                if p.kind is p.KEYWORD_ONLY and p.default is p.empty and p.name.startswith(("min_", "max_"))}
    call = {**required, **kwargs, limit: bad}
    with pytest.raises(MangaAssistInputError) as info:
        getattr(pytest_mangaassist, gate)(*args, **call)
    message = str(info.value)
    assert gate in message and limit in message, message
    assert "Traceback" not in message


LABELLED = [gate for gate in GATES if "examples" in signature(gate).parameters
            and signature(gate).parameters["examples"].annotation == "GoldenSet"]  # annotated: the gate reads labels


def test_the_label_reading_gates_are_found():
    assert {"assert_accuracy_above", "assert_recall_above", "assert_macro_f1_above"} <= set(LABELLED)


@pytest.mark.parametrize("gate", LABELLED)
def test_label_reading_gates_refuse_texts_naming_what_they_need(loaded, gate):
    model, golden = loaded
    required = {p.name: ARGUMENTS.get(p.name, REQUIRED_LIMIT) for p in signature(gate).parameters.values()
                if p.kind is p.KEYWORD_ONLY and p.default is p.empty}
    call = {k: model if v is MODEL else v for k, v in required.items()}
    with pytest.raises(MangaAssistInputError, match=f"{gate}: examples must be a GoldenSet .* got list"):
        getattr(pytest_mangaassist, gate)(model, golden.texts, **call)


def test_an_old_keyword_name_still_works_for_one_release_and_names_the_new_one(loaded):
    model, golden = loaded
    gate = pytest_mangaassist.assert_accuracy_above
    new = gate(model, golden, min_accuracy=0.0, at_least_examples=10)
    with pytest.warns(DeprecationWarning, match="assert_accuracy_above: min_examples= is deprecated .* pass "
                                                "at_least_examples= instead"):
        old = gate(model, golden, min_accuracy=0.0, min_examples=10)
    assert old == new and (old.low, old.high) == (new.low, new.high)
    with pytest.raises(MangaAssistInputError, match="min_examples= is the old name of at_least_examples=; got both"):
        gate(model, golden, min_accuracy=0.0, min_examples=10, at_least_examples=10)
