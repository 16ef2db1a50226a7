"""Representation gates: CKA between two models, layer probes (with control tasks), activation
patching, and the logit lens (where each intent's decision forms).

Each runs on the shared activation sweep of its examples (one forward pass per model and
dataset, cached on disk) and, when it fails, shows the whole per-layer table.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from ..analysis.cka import cka_per_layer
from ..analysis.intervals import CONFIDENCE, MIN_EXAMPLES, check_bound, check_sample_size
from ..analysis.layers import layer_name, resolve_layer
from ..analysis.logit_lens import LogitLensResult, logit_lens
from ..analysis.patching import PatchingResult, patching_recovery
from ..analysis.probes import ProbeResult, probe_f1_per_layer
from ..analysis.sweep import activation_sweep
from ..cache.store import cached_on_model, texts_hash
from ..errors import MangaAssistInputError, format_table
from ..loading.golden import GoldenSet
from .records import check

MIN_PROBE_EXAMPLES_PER_INTENT = 10
PROBE_FORMAT = "probes-2"  # bump when the probe recipe changes, so cached results are not reused
PATCHING_FORMAT = "patching-1"
LENS_FORMAT = "lens-1"
FAMILY = "representation"


def _curve(n_layers: int, series: dict) -> dict:
    """Per-layer series for the HTML report's curves (nan, an undefined layer, becomes a gap)."""
    clean = {name: [None if v != v else float(v) for v in values] for name, values in series.items()}
    return {"curve": {"x": [layer_name(l) for l in range(n_layers)], "series": clean}}


def cka_table(cka: list[float], layer: int | None = None) -> str:
    """Every layer's CKA; with layer, the gated row is marked."""
    if layer is None:
        return format_table(("layer", "linear CKA"), [(layer_name(l), value) for l, value in enumerate(cka)])
    rows = [(layer_name(l), value, "<- gate" if l == layer else "") for l, value in enumerate(cka)]
    return format_table(("layer", "linear CKA", ""), rows)


def cka_between(model, other, examples: GoldenSet, debiased: bool = False) -> list[float]:
    """Per-layer linear CKA of the [CLS] states of two models on the same examples."""
    if model.num_layers != other.num_layers:
        raise MangaAssistInputError(
            f"cka: {model.source} has {model.num_layers} encoder layers, {other.source} has {other.num_layers}.",
            "Compare checkpoints of the same architecture (the model under test against its pre-trained "
            "start or its previous release).",
        )
    states = activation_sweep(model, examples.texts).cls_states
    other_states = activation_sweep(other, examples.texts).cls_states
    return cka_per_layer(states, other_states, debiased)


def assert_cka_above(model, other, layer: int, threshold: float, examples: GoldenSet,
                     debiased: bool = False) -> list[float]:
    """CKA between model and other at `layer` must be >= threshold; returns every layer's CKA.

    The source analysis' drift gate: last layer (-1) >= 0.65 against the previous production model.
    """
    __tracebackhide__ = True
    layer = resolve_layer(layer, model.num_layers, "assert_cka_above")
    cka = cka_between(model, other, examples, debiased)
    if math.isnan(cka[layer]):
        raise MangaAssistInputError(
            f"assert_cka_above: CKA is undefined at {layer_name(layer)}: the [CLS] state there is the same for "
            "every example.\n" + cka_table(cka, layer),
            "Gate a layer above the embeddings.",
        )
    check("assert_cka_above", f"{'debiased ' if debiased else ''}linear CKA at {layer_name(layer)} "
          f"({len(examples)} examples, {model.source} vs {other.source})",
          cka[layer], threshold, ">=", family=FAMILY, evidence=cka_table(cka, layer=layer),
          data=_curve(len(cka), {"linear CKA": cka}),
          hint="the representation at this layer moved far from the reference model: check what changed in "
               "data or recipe (learning rates of the top layers), or accept the drift by updating the reference.")
    return cka


def probe_f1(model, examples: GoldenSet, seed: int = 0) -> ProbeResult:
    """probe_f1_per_layer (with its control task) on the sweep's [CLS] states, cached with the sweep."""
    scarce = {i: n for i, n in Counter(examples.intents).items() if n < MIN_PROBE_EXAMPLES_PER_INTENT}
    if scarce:
        raise MangaAssistInputError(
            f"Layer probes need at least {MIN_PROBE_EXAMPLES_PER_INTENT} examples per intent to train and score; "
            f"{examples.source} has {scarce}.",
            "Probe on a larger labelled set (e.g. the validation set, --validation-set).",
        )

    def compute() -> dict:
        cls_states = activation_sweep(model, examples.texts).cls_states
        result = probe_f1_per_layer(cls_states, examples.intents, seed=seed, texts=examples.texts)
        return {"f1": np.array(result.f1), "control_f1": np.array(result.control_f1),
                "sizes": np.array([result.n_train, result.n_test]), "test_labels": np.array(result.test_labels),
                "predicted": np.array(result.predicted)}

    arrays = cached_on_model(model, "probes", (PROBE_FORMAT, examples.content_hash, str(seed)), compute)
    return ProbeResult(tuple(map(float, arrays["f1"])), *map(int, arrays["sizes"]),
                       control_f1=tuple(map(float, arrays["control_f1"])),
                       test_labels=tuple(map(str, arrays["test_labels"])),
                       predicted=tuple(tuple(map(str, row)) for row in arrays["predicted"]))


def assert_probe_f1_above(model, layer: int, threshold: float, examples: GoldenSet, seed: int = 0, *,
                          bound: str = "point", confidence: float = CONFIDENCE,
                          min_selectivity: float | None = None) -> ProbeResult:
    """The macro-F1 of a logistic-regression probe on `layer`'s [CLS] states must be >= threshold (with
    bound="lower": the lower end of its bootstrap interval over the held-out examples); with
    min_selectivity, F1 minus the control task's F1 (Hewitt & Liang, 2019) must also be >= min_selectivity."""
    __tracebackhide__ = True
    check_bound(bound, ("point", "lower"), "assert_probe_f1_above")
    layer = resolve_layer(layer, model.num_layers, "assert_probe_f1_above")
    result = probe_f1(model, examples, seed)
    rate = result.f1_rate(layer, confidence, seed)
    jump_layer, gain = result.jump()
    evidence = result.table(confidence) + (f"\n\nseparability jumps most at {layer_name(jump_layer)} ({gain:+.3f} "
                                           f"over {layer_name(jump_layer - 1)})")
    sizes = f"train {result.n_train} / test {result.n_test} examples"
    what = "probe macro-F1" if bound == "point" else f"{confidence:.0%} lower bound of the probe macro-F1"
    curve = _curve(len(result.f1), {"probe F1": result.f1, "control F1": result.control_f1})
    check("assert_probe_f1_above", f"{what} at {layer_name(layer)} ({sizes}; F1 {rate.estimate:.3f}, "
          f"{confidence:.0%} interval {rate.interval()}, {rate.method})",
          rate.bound(bound), threshold, ">=", family=FAMILY, evidence=evidence, interval=(rate.low, rate.high),
          data=curve,
          hint="intent information is not linearly readable at this layer: if it forms later than it used "
               "to, compare the recipe (layer learning rates, frozen layers) with the previous run.")
    if min_selectivity is not None:
        check("assert_probe_f1_above", f"probe selectivity (F1 {result.f1[layer]:.3f} - control F1 "
              f"{result.control_f1[layer]:.3f}) at {layer_name(layer)} ({sizes})",
              result.selectivity[layer], min_selectivity, ">=", family=FAMILY, evidence=evidence,
              hint="the probe scores nearly as well on the control task (labels keyed to the first word, no intent "
                   "in them): its F1 reflects what any probe memorises from these states, not intent structure.")
    return result


def patching(model, examples: GoldenSet, seed: int = 0) -> PatchingResult:
    """patching_recovery, cached with the sweep (memory and disk)."""

    def compute() -> dict:
        result = patching_recovery(model, examples, seed)
        return {"recovered": np.array(result.recovered), "pairs": np.array(result.pairs, dtype=np.int64).reshape(-1, 2),
                "counts": np.array([result.n_errors, result.unpatchable])}

    arrays = cached_on_model(model, "patching", (PATCHING_FORMAT, examples.content_hash, str(seed)), compute)
    n_errors, unpatchable = map(int, arrays["counts"])
    return PatchingResult(tuple(map(int, arrays["recovered"])), n_errors, unpatchable,
                          tuple((int(e), int(d)) for e, d in arrays["pairs"]))


def assert_patching_recovers(model, layer: int, min_rate: float, examples: GoldenSet,
                             seed: int = 0) -> PatchingResult:
    """Patching `layer`'s [CLS] state from a correct example must correct >= min_rate of the errors."""
    __tracebackhide__ = True
    layer = resolve_layer(layer, model.num_layers, "assert_patching_recovers")
    result = patching(model, examples, seed)
    if result.n_errors == 0:
        raise MangaAssistInputError(
            f"assert_patching_recovers: the model makes no patchable error on {examples.source} "
            f"({result.unpatchable} errors without a correct example of their intent), so there is nothing to measure.",
            "Run patching on a larger or harder example set.",
        )
    check("assert_patching_recovers", f"patching correction rate at {layer_name(layer)} "
          f"({result.n_errors} errors, seed {seed})",
          result.rate(layer), min_rate, ">=", family=FAMILY, evidence=result.table,
          data=_curve(model.num_layers + 1, {"errors corrected": [result.rate(l) for l in range(model.num_layers + 1)]}),
          hint="the layer no longer carries the intent decision it used to: the decision moved or is spread "
               "over more layers; compare with the previous model's table.")
    return result


def decision_lens(model, examples: GoldenSet) -> LogitLensResult:
    """logit_lens on the sweep's [CLS] states, cached with the sweep (memory and disk)."""

    def compute() -> dict:
        return {"lens_predicted": logit_lens(model, activation_sweep(model, examples.texts).cls_states).lens_predicted}

    arrays = cached_on_model(model, "lens", (LENS_FORMAT, texts_hash(examples.texts)), compute)
    return LogitLensResult(tuple(model.labels), arrays["lens_predicted"])


def assert_decision_forms_by(model, layer: int, examples: GoldenSet, intents=None, min_share: float = 0.9, *,
                             min_examples: int = MIN_EXAMPLES) -> LogitLensResult:
    """Logit lens: for each intent (default: every intent the model routes >= min_examples examples to), the
    model's own head must give its final decision from `layer` upwards for >= min_share of those examples."""
    __tracebackhide__ = True
    layer = resolve_layer(layer, model.num_layers, "assert_decision_forms_by")
    result = decision_lens(model, examples)
    counts = result.counts()
    if intents is None:
        wanted = [i for i in model.labels if counts.get(i, 0) >= min_examples]
    else:
        wanted = list(intents)
        for intent in wanted:
            if intent not in model.labels:
                raise MangaAssistInputError(f"assert_decision_forms_by: {intent!r} is not a label of {model.source}.",
                                            f"Name intents of the model's id2label: {', '.join(model.labels)}.")
            check_sample_size("assert_decision_forms_by", f"the examples routed to {intent!r}", counts.get(intent, 0),
                              min_share, "point", min_examples)
    if not wanted:
        raise MangaAssistInputError(
            f"assert_decision_forms_by: no intent has {min_examples} examples routed to it in {examples.source}.",
            "Use a larger example set (--validation-set) or name the intents to check.")
    late = [i for i in wanted if result.forms_by(i, min_share) > layer]
    candidates = late or wanted
    worst = max(candidates, key=lambda i: (result.forms_by(i, min_share), -result.formed_share(i)[layer]))
    check("assert_decision_forms_by",
          f"share of {worst!r} decisions formed by {layer_name(layer)} (logit lens, {counts.get(worst, 0)} examples "
          f"routed to it; forms by {layer_name(result.forms_by(worst, min_share))})",
          float(result.formed_share(worst)[layer]), min_share, ">=", family=FAMILY,
          evidence=lambda: "share of decisions the model's own head already gives, stably to the top, at each "
                           "layer:\n" + result.table(wanted, min_share, {i: "LATE" for i in late}),
          hint="the decision for these intents now forms higher up than the gate expects: compare with the previous "
               "model's table (layer learning rates, frozen layers), or move the gate as a reviewed decision.")
    return result
