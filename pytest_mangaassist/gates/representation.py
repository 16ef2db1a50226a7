"""Representation gates: CKA between two models, layer probes, activation patching.

Each runs on the shared activation sweep of its examples (one forward pass per model and
dataset, cached on disk) and, when it fails, shows the whole per-layer table.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from ..analysis.cka import cka_per_layer
from ..analysis.layers import layer_name, resolve_layer
from ..analysis.patching import PatchingResult, patching_recovery
from ..analysis.probes import ProbeResult, probe_f1_per_layer
from ..analysis.sweep import activation_sweep
from ..cache import cached_on_model
from ..errors import GateFailure, MangaAssistInputError, format_table
from ..golden import GoldenSet

MIN_PROBE_EXAMPLES_PER_INTENT = 10
PROBE_FORMAT = "probes-1"  # bump when the probe recipe changes, so cached results are not reused
PATCHING_FORMAT = "patching-1"


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
    if cka[layer] < threshold:
        raise GateFailure(
            "assert_cka_above", f"{'debiased ' if debiased else ''}linear CKA at {layer_name(layer)} "
            f"({len(examples)} examples, {model.source} vs {other.source})",
            cka[layer], threshold, ">=", evidence=cka_table(cka, layer=layer),
            hint="the representation at this layer moved far from the reference model: check what changed in "
                 "data or recipe (learning rates of the top layers), or accept the drift by updating the reference.",
        )
    return cka


def probe_f1(model, examples: GoldenSet, seed: int = 0) -> ProbeResult:
    """probe_f1_per_layer on the sweep's [CLS] states, cached with the sweep (memory and disk)."""
    scarce = {i: n for i, n in Counter(examples.intents).items() if n < MIN_PROBE_EXAMPLES_PER_INTENT}
    if scarce:
        raise MangaAssistInputError(
            f"Layer probes need at least {MIN_PROBE_EXAMPLES_PER_INTENT} examples per intent to train and score; "
            f"{examples.source} has {scarce}.",
            "Probe on a larger labelled set (e.g. the validation set, --validation-set).",
        )

    def compute() -> dict:
        cls_states = activation_sweep(model, examples.texts).cls_states
        result = probe_f1_per_layer(cls_states, examples.intents, seed=seed)
        return {"f1": np.array(result.f1), "sizes": np.array([result.n_train, result.n_test])}

    arrays = cached_on_model(model, "probes", (PROBE_FORMAT, examples.content_hash, str(seed)), compute)
    return ProbeResult(tuple(map(float, arrays["f1"])), *map(int, arrays["sizes"]))


def assert_probe_f1_above(model, layer: int, threshold: float, examples: GoldenSet, seed: int = 0) -> ProbeResult:
    """The macro-F1 of a logistic-regression probe on `layer`'s [CLS] states must be >= threshold."""
    __tracebackhide__ = True
    layer = resolve_layer(layer, model.num_layers, "assert_probe_f1_above")
    result = probe_f1(model, examples, seed)
    if result.f1[layer] < threshold:
        jump_layer, gain = result.jump()
        raise GateFailure(
            "assert_probe_f1_above", f"probe macro-F1 at {layer_name(layer)} "
            f"(train {result.n_train} / test {result.n_test} examples)",
            result.f1[layer], threshold, ">=",
            evidence=result.table() + f"\n\nseparability jumps most at {layer_name(jump_layer)} ({gain:+.3f} "
                                      f"over {layer_name(jump_layer - 1)})",
            hint="intent information is not linearly readable at this layer: if it forms later than it used "
                 "to, compare the recipe (layer learning rates, frozen layers) with the previous run.",
        )
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
    rate = result.rate(layer)
    if rate < min_rate:
        raise GateFailure(
            "assert_patching_recovers", f"patching correction rate at {layer_name(layer)} "
            f"({result.n_errors} errors, seed {seed})",
            rate, min_rate, ">=", evidence=result.table(),
            hint="the layer no longer carries the intent decision it used to: the decision moved or is spread "
                 "over more layers; compare with the previous model's table.",
        )
    return result
