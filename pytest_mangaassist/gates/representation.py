"""Representation gates: CKA between two models, layer probes (with control tasks), activation
patching, and the logit lens (where each intent's decision forms).

Each runs on the shared activation sweep of its examples (one forward pass per model and
dataset, cached on disk) and, when it fails, shows the whole per-layer table. CKA and the logit lens
read no labels (a GoldenSet or a list of messages); probes and patching need labelled examples (a
GoldenSet) and refuse anything else.
"""

from __future__ import annotations

import math

from ..analysis.cka import MIN_BIASED_CKA_EXAMPLES, MIN_CKA_EXAMPLES
from ..analysis.intervals import CONFIDENCE, MIN_EXAMPLES, check_sample_size
from ..analysis.layers import layer_name
from ..analysis.logit_lens import LogitLensResult
from ..analysis.patching import PatchingResult
from ..analysis.probes import ProbeResult
from ..cache.analyses import cka_per_layer_between, decision_lens, patching, probe_f1
from ..errors import MangaAssistInputError, format_table, renamed_keywords
from ..loading.golden import GoldenSet
from . import validation as valid
from .records import Curve, Family, check

DEBIASED = True  # the CKA gate's default estimator: see analysis.cka and benchmarks/cka_sample_size.py
# A probe's F1 alone passes where any probe would score well on these states (Hewitt & Liang, 2019): by
# default the gate also asks the probe to beat its control task (labels keyed to the first word) by 0.1 F1;
# the reference model's top layer clears it by 0.47 (docs/figures.md), a re-initialised layer does not.
MIN_SELECTIVITY = 0.1


def _curve(series: dict, gated: int) -> Curve:
    """Per-layer series for the report's curves (nan, an undefined layer, becomes None: a gap)."""
    n_layers = len(next(iter(series.values())))
    clean = {name: tuple(None if v != v else float(v) for v in values) for name, values in series.items()}
    return Curve(x=tuple(layer_name(l) for l in range(n_layers)), series=clean, gated=layer_name(gated))


def _texts(examples) -> list[str]:
    return examples.texts if isinstance(examples, GoldenSet) else list(examples)


def _source(examples) -> str:
    return examples.source if isinstance(examples, GoldenSet) else f"the {len(examples)} messages given"


def cka_table(cka: list[float], layer: int | None = None, debiased: bool = False) -> str:
    """Every layer's CKA; with layer, the gated row is marked."""
    header = "debiased linear CKA" if debiased else "linear CKA"
    if layer is None:
        return format_table(("layer", header), [(layer_name(l), value) for l, value in enumerate(cka)])
    rows = [(layer_name(l), value, "<- gate" if l == layer else "") for l, value in enumerate(cka)]
    return format_table(("layer", header, ""), rows)


def cka_between(model, examples, *, against, debiased: bool = DEBIASED) -> list[float]:
    """Per-layer linear CKA of the [CLS] states of two models on the same examples (a GoldenSet or texts)."""
    if model.num_layers != against.num_layers:
        raise MangaAssistInputError(
            f"cka: {model.source} has {model.num_layers} encoder layers, {against.source} has {against.num_layers}.",
            "Compare checkpoints of the same architecture (the model under test against its pre-trained "
            "start or its previous release).",
        )
    return list(cka_per_layer_between(model, _texts(examples), against, debiased))


@Family.REPRESENTATION.gate(page="representation.md", chart=Curve,
                            checks="linear CKA of `layer`'s [CLS] states between the two models; at least 300 "
                                   "messages (1,000 with `debiased=False`), see representation.md")
def assert_cka_above(model, examples, *, against, layer: int, min_cka: float, debiased: bool = DEBIASED) -> list[float]:
    """Linear CKA of `layer`'s [CLS] states between model and against, on the same examples (a GoldenSet or a
    list of messages: no labels needed), must be >= min_cka; returns every layer's CKA.

    debiased=True (the default) uses the unbiased HSIC estimator: plain CKA rises as the number of
    examples falls (measured on the reference model, benchmarks/cka_sample_size.py), so a limit set on one
    set means nothing on another; the debiased figure does not depend on n. The gate refuses fewer than
    analysis.cka.MIN_CKA_EXAMPLES examples (debiased) or MIN_BIASED_CKA_EXAMPLES (debiased=False).
    """
    __tracebackhide__ = True
    caller = "assert_cka_above"
    texts = valid.texts(caller, examples)
    against = valid.loaded_model(caller, against, "against")
    min_cka = valid.share(caller, "min_cka", min_cka)
    debiased = valid.flag(caller, "debiased", debiased)
    layer = valid.layer(caller, model, layer)
    needed = MIN_CKA_EXAMPLES if debiased else MIN_BIASED_CKA_EXAMPLES
    if len(texts) < needed:
        why = ("the debiased figure does not depend on n, but between random samples of fewer examples it varies "
               "by more than a limit's margin" if debiased else
               "plain CKA rises as the number of examples falls, so a limit set on one set means nothing on another")
        raise MangaAssistInputError(
            f"{caller}: {'debiased' if debiased else 'plain (debiased=False)'} CKA on {len(texts)} examples is too "
            f"few to gate: the gate needs at least {needed} ({why}; measured on the reference model, "
            "benchmarks/cka_sample_size.py).",
            f"Pass at least {needed} messages (the validation_set fixture, --validation-set)"
            + ("." if debiased else f", or use the default debiased=True (needs {MIN_CKA_EXAMPLES})."))
    cka = cka_between(model, texts, against=against, debiased=debiased)
    estimator = "debiased linear CKA" if debiased else "linear CKA"
    if math.isnan(cka[layer]):
        raise MangaAssistInputError(
            f"{caller}: CKA is undefined at {layer_name(layer)}: the [CLS] state there is the same for "
            "every example.\n" + cka_table(cka, layer, debiased),
            "Gate a layer above the embeddings.",
        )
    check(caller, f"{estimator} at {layer_name(layer)} ({len(texts)} examples, {model.source} vs {against.source})",
          cka[layer], min_cka, ">=", evidence=cka_table(cka, layer, debiased),
          payload=_curve({estimator: cka}, layer),
          hint="the representation at this layer moved far from the model it is compared with: check what changed "
               "in data or recipe (learning rates of the top layers), or accept the drift as a reviewed decision.")
    return cka



@Family.REPRESENTATION.gate(page="representation.md", chart=Curve,
                            checks="held-out macro-F1 of a logistic-regression probe, and its selectivity (F1 minus "
                                   "the control task's F1; gated by default at 0.1, `None` to gate F1 alone)")
def assert_probe_f1_above(model, examples: GoldenSet, *, layer: int, min_f1: float, seed: int = 0,
                          bound: str = "point", confidence: float = CONFIDENCE,
                          min_selectivity: float | None = MIN_SELECTIVITY) -> ProbeResult:
    """The macro-F1 of a logistic-regression probe on `layer`'s [CLS] states must be >= min_f1 (with
    bound="lower": the lower end of its bootstrap interval over the held-out examples), and its selectivity,
    F1 minus the control task's F1 (Hewitt & Liang, 2019), must be >= min_selectivity (default
    MIN_SELECTIVITY = 0.1; None: F1 alone). The probe trains on labels: examples must be a GoldenSet."""
    __tracebackhide__ = True
    caller = "assert_probe_f1_above"
    golden = valid.golden(caller, examples, model)
    min_f1 = valid.share(caller, "min_f1", min_f1)
    seed = valid.count(caller, "seed", seed, minimum=0)
    valid.choice(caller, "bound", bound, ("point", "lower"))
    confidence = valid.confidence(caller, confidence)
    min_selectivity = valid.number(caller, "min_selectivity", min_selectivity, low=-1.0, high=1.0, optional=True)
    layer = valid.layer(caller, model, layer)
    result = probe_f1(model, golden, seed)
    rate = result.f1_rate(layer, confidence, seed)
    jump_layer, gain = result.jump()
    def evidence() -> str:  # every layer's bootstrap interval: built only for a failure message
        return result.table(confidence) + (f"\n\nseparability jumps most at {layer_name(jump_layer)} ({gain:+.3f} "
                                           f"over {layer_name(jump_layer - 1)})")
    sizes = f"train {result.n_train} / test {result.n_test} examples"
    what = "probe macro-F1" if bound == "point" else f"{confidence:.0%} lower bound of the probe macro-F1"
    curve = _curve({"probe F1": result.f1, "control F1": result.control_f1}, layer)
    control = (f"; selectivity {result.selectivity[layer]:.3f} over control F1 {result.control_f1[layer]:.3f}, "
               f"gated below" if min_selectivity is not None else "")
    check(caller, f"{what} at {layer_name(layer)} ({sizes}; F1 {rate.estimate:.3f}, "
          f"{confidence:.0%} interval {rate.interval()}, {rate.method}{control})",
          rate.bound(bound), min_f1, ">=", evidence=evidence, interval=(rate.low, rate.high),
          payload=curve,
          hint="intent information is not linearly readable at this layer: if it forms later than it used "
               "to, compare the recipe (layer learning rates, frozen layers) with the previous run.")
    if min_selectivity is not None:
        check(caller, f"probe selectivity (F1 {result.f1[layer]:.3f} - control F1 "
              f"{result.control_f1[layer]:.3f}) at {layer_name(layer)} ({sizes})",
              result.selectivity[layer], min_selectivity, ">=", evidence=evidence,
              hint="the probe scores nearly as well on the control task (labels keyed to the first word, no intent "
                   "in them): its F1 reflects what any probe memorises from these states, not intent structure.")
    return result



@Family.REPRESENTATION.gate(page="representation.md", chart=Curve,
                            checks="share of errors corrected by patching `layer`'s [CLS] state from a correct "
                                   "example")
def assert_patching_recovers(model, examples: GoldenSet, *, layer: int, min_rate: float,
                             seed: int = 0) -> PatchingResult:
    """Patching `layer`'s [CLS] state from a correct example of the true intent must correct >= min_rate of
    the model's errors. Errors are judged against labels: examples must be a GoldenSet."""
    __tracebackhide__ = True
    caller = "assert_patching_recovers"
    golden = valid.golden(caller, examples, model)
    min_rate = valid.share(caller, "min_rate", min_rate)
    seed = valid.count(caller, "seed", seed, minimum=0)
    layer = valid.layer(caller, model, layer)
    result = patching(model, golden, seed)
    if result.n_errors == 0:
        raise MangaAssistInputError(
            f"{caller}: the model makes no patchable error on {golden.source} "
            f"({result.unpatchable} errors without a correct example of their intent), so there is nothing to measure.",
            "Run patching on a larger or harder example set.",
        )
    rates = [result.rate(l) for l in range(model.num_layers + 1)]
    check(caller, f"patching correction rate at {layer_name(layer)} ({result.n_errors} errors, seed {seed})",
          result.rate(layer), min_rate, ">=", evidence=result.table,
          payload=_curve({"errors corrected": rates}, layer),
          hint="the layer no longer carries the intent decision it used to: the decision moved or is spread "
               "over more layers; compare with the previous model's table.")
    return result



@Family.REPRESENTATION.gate(page="representation.md", chart=Curve,
                            checks="logit lens: the model's own head gives its final decision from `layer` up (reads"
                                   " no labels: texts are enough)")
@renamed_keywords(min_examples="at_least_examples")  # the old names, for one release
def assert_decision_forms_by(model, examples, *, layer: int, intents=None, min_share: float = 0.9,
                             at_least_examples: int = MIN_EXAMPLES) -> LogitLensResult:
    """Logit lens: for each intent (default: every intent the model routes >= at_least_examples examples to), the
    model's own head must give its final decision from `layer` upwards for >= min_share of those examples.
    The lens reads the model's own decisions, not labels: examples may be a GoldenSet or a list of messages."""
    __tracebackhide__ = True
    caller = "assert_decision_forms_by"
    texts = valid.texts(caller, examples)
    min_share = valid.share(caller, "min_share", min_share)
    at_least_examples = valid.count(caller, "at_least_examples", at_least_examples, minimum=1)
    named = valid.intents(caller, model, intents)
    layer = valid.layer(caller, model, layer)
    result = decision_lens(model, texts)
    counts = result.counts()
    if named is None:
        wanted = [i for i in model.labels if counts.get(i, 0) >= at_least_examples]
    else:
        wanted = named
        for intent in wanted:
            check_sample_size(caller, f"the examples routed to {intent!r}", counts.get(intent, 0),
                              min_share, "point", at_least_examples)
    if not wanted:
        raise MangaAssistInputError(
            f"{caller}: no intent has {at_least_examples} examples routed to it in {_source(examples)}.",
            "Use a larger example set (--validation-set) or name the intents to check.")
    late = [i for i in wanted if result.forms_by(i, min_share) > layer]
    candidates = late or wanted
    worst = max(candidates, key=lambda i: (result.forms_by(i, min_share), -result.formed_share(i)[layer]))
    share, precision = float(result.formed_share(worst)[layer]), float(result.precision(worst)[layer])
    # a decision counts as formed only where the lens is also precise for the intent (LogitLensResult.forms_by):
    # the figure is the smaller of the two, and the verdict is whether every intent has formed by `layer`
    check(caller,
          f"share of {worst!r} decisions formed by {layer_name(layer)}, and the lens' precision for it there "
          f"(logit lens, {counts.get(worst, 0)} examples routed to it: formed {share:.3f}, precision {precision:.3f}; "
          f"forms by {layer_name(result.forms_by(worst, min_share))})",
          min(share, precision), min_share, ">=", passed=not late,
          payload=_curve({f"{worst}: formed": result.formed_share(worst),
                          f"{worst}: lens precision": result.precision(worst)}, layer),
          evidence=lambda: "share of decisions the model's own head already gives, stably to the top, at each "
                           "layer:\n" + result.table(wanted, min_share, {i: "LATE" for i in late}),
          hint="the decision for these intents now forms higher up than the gate expects: compare with the previous "
               "model's table (layer learning rates, frozen layers), or move the gate as a reviewed decision.")
    return result
