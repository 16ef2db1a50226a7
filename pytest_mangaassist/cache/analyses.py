"""The one cache owner of the analyses: cached forms of the pure analyses, same names and signatures.

Each function here is the pure analysis (pytest_mangaassist.analysis.*) wrapped by `cached`: its
result is kept on the model object for the session and, when model.cache_dir is set, in the disk
cache (store.py: authenticated entries, untrusted input), written and read by the one generic codec
(codec.py, driven by the pure function's return annotation). The key is the analysis' name and
format version, the result's stored layout, the library versions, the model's content hash and
tokenizer length, and a fingerprint of every other argument (defaults included).

    from pytest_mangaassist.cache.analyses import activation_sweep, integrated_gradients

The pure function is looked up on its module at call time, so a test that patches the analysis
module's attribute is honoured. Sweeps share their memo with analysis.sweep, so the analyses that read
sweeps internally (classification, patching, attention, trajectories) see a sweep loaded from disk.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import hashlib
import inspect
import typing
from collections import Counter

import numpy as np

from ..analysis import attribution as _attribution
from ..analysis import classification as _classification
from ..analysis import conductance as _conductance
from ..analysis import invariance as _invariance
from ..analysis import sweep as _sweep
from ..analysis.cka import cka_per_layer
from ..analysis.logit_lens import LogitLensResult, logit_lens
from ..analysis.patching import PatchingResult, patching_recovery
from ..analysis.probes import ProbeResult, probe_f1_per_layer
from ..errors import MangaAssistInputError, renamed_keywords
from ..loading.golden import GoldenSet
from . import codec, store

MIN_PROBE_EXAMPLES_PER_INTENT = 10
PROBE_FORMAT = "probes-3"  # bump when the probe recipe changes
PATCHING_FORMAT = "patching-2"  # resumed from recorded layer states (same figures, cached anew once)
CKA_FORMAT = "cka-1"
LENS_FORMAT = "lens-1"

__all__ = ["activation_sweep", "attention_sweep", "token_state_sweep", "integrated_gradients",
           "attribution_batch_invariance", "layer_conductance", "batch_invariance", "probe_f1", "patching",
           "decision_lens", "cka_per_layer_between", "evaluate", "cached", "fingerprint"]


# -- argument fingerprints ----------------------------------------------------------------------------
def fingerprint(value) -> str:
    """A text that identifies an argument's value for a cache key; TypeError for values it cannot identify
    (then the analysis must not be cached on that argument)."""
    if isinstance(value, np.generic) and not value.dtype.hasobject:  # numpy scalars: by their Python value
        return fingerprint(value.item())
    if value is None or isinstance(value, (bool, int, float, str)):
        return f"{type(value).__name__}:{value!r}"
    content_hash = getattr(value, "content_hash", "")
    if isinstance(content_hash, str) and content_hash:  # IntentModel, a loaded GoldenSet
        return f"{type(value).__name__}:{content_hash}:{getattr(value, 'max_length', '')}"
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError("object arrays cannot be fingerprinted")
        digest = hashlib.sha256(f"{value.dtype.str}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
        return f"ndarray:{digest.hexdigest()[:24]}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__}:{store.content_key(*map(fingerprint, value))}"
    if isinstance(value, (set, frozenset)):
        return f"set:{store.content_key(*sorted(map(fingerprint, value)))}"
    if isinstance(value, dict):
        return f"dict:{store.content_key(*(fingerprint(k) + '=' + fingerprint(v) for k, v in value.items()))}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        parts = [f"{f.name}={fingerprint(getattr(value, f.name))}" for f in dataclasses.fields(value) if f.compare]
        return f"{type(value).__qualname__}:{store.content_key(*parts)}"
    raise TypeError(f"cannot fingerprint a {type(value).__name__} for the cache key")


# -- the wrapper ----------------------------------------------------------------------------------------
def cached(module, name: str, version: str, memo_key=None, pure=None):
    """The cached form of module.<name>(model, ...): same name, signature and result.

    version: the analysis' format version (bump it when the computation changes). memo_key(model, arguments)
    -> the key the pure function memoises under itself, to share one memo entry with it.
    """
    pure = pure if pure is not None else getattr(module, name)
    signature = inspect.signature(pure)
    result_type = typing.get_type_hints(pure)["return"]
    layout = codec.schema(result_type)
    first = next(iter(signature.parameters))

    def encode(value):
        return codec.encode(value, result_type)

    def decode(arrays):
        return codec.decode(arrays, result_type)

    @functools.wraps(pure)
    def wrapper(*args, **kwargs):
        function = getattr(module, name) if module is not None else pure  # late: patches are honoured
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        for param, value in bound.arguments.items():  # a generator is read once, for the key and the call
            if isinstance(value, collections.abc.Iterator):
                bound.arguments[param] = list(value)
        model = bound.arguments[first]
        if not isinstance(getattr(model, "content_hash", None), str) or not hasattr(model, "memo"):
            return function(*bound.args, **bound.kwargs)  # not an IntentModel (a wrapper): nothing to key it by
        parts = [f"{param}={fingerprint(value)}" for param, value in bound.arguments.items() if param != first]
        key = store.model_key(model, name, version, layout, *parts)

        def compute():
            return store.load_or_compute(model.cache_dir, f"{name}-{key}", lambda: function(*bound.args, **bound.kwargs),
                                         encode, decode)

        shared = memo_key(model, bound.arguments) if memo_key is not None else ("cached", name, key)
        return model.memo(shared, compute)

    old_keywords = getattr(pure, "old_keywords", None)  # the analysis' renamed keywords still bind here
    return renamed_keywords(**old_keywords)(wrapper) if old_keywords else wrapper


def _sweep_memo(kind: str):
    return lambda model, arguments: _sweep.memo_key(kind, list(arguments["texts"]))


# -- the cached analyses --------------------------------------------------------------------------------
activation_sweep = cached(_sweep, "activation_sweep", _sweep.SWEEP_FORMAT, _sweep_memo("activations"))
attention_sweep = cached(_sweep, "attention_sweep", _sweep.SWEEP_FORMAT, _sweep_memo("attentions"))
token_state_sweep = cached(_sweep, "token_state_sweep", _sweep.SWEEP_FORMAT, _sweep_memo("token-states"))
integrated_gradients = cached(_attribution, "integrated_gradients", _attribution.ATTRIBUTION_FORMAT)
attribution_batch_invariance = cached(_attribution, "attribution_batch_invariance", _attribution.ATTRIBUTION_FORMAT)
layer_conductance = cached(_conductance, "layer_conductance", _conductance.CONDUCTANCE_FORMAT)
batch_invariance = cached(_invariance, "batch_invariance", "invariance-3")


def evaluate(model, golden: GoldenSet) -> _classification.Evaluation:
    """analysis.classification.evaluate, with its sweep read from (and written to) the disk cache."""
    activation_sweep(model, golden.texts)  # evaluate reads the sweep from the model's memo
    return _classification.evaluate(model, golden)


# Analyses composed of a sweep and a pure analysis (formerly cached by hand in gates/representation.py).
def _probe_f1(model, examples, seed: int = 0) -> ProbeResult:
    cls_states = activation_sweep(model, examples.texts).cls_states
    return probe_f1_per_layer(cls_states, examples.intents, seed=seed, texts=examples.texts)


def _patching(model, examples, seed: int = 0) -> PatchingResult:
    activation_sweep(model, examples.texts)  # from disk when it is there: patching_recovery reads it from the memo
    return patching_recovery(model, examples, seed)


def _decision_lens(model, texts: list[str]) -> LogitLensResult:
    return logit_lens(model, activation_sweep(model, texts).cls_states)


def _cka_per_layer_between(model, texts: list[str], against, debiased: bool) -> list[float]:
    return cka_per_layer(activation_sweep(model, texts).cls_states, activation_sweep(against, texts).cls_states,
                         debiased)


_cached_probe_f1 = cached(None, "probe_f1", PROBE_FORMAT, pure=_probe_f1)
_cached_patching = cached(None, "patching", PATCHING_FORMAT, pure=_patching)
_cached_decision_lens = cached(None, "decision_lens", LENS_FORMAT, pure=_decision_lens)
_cached_cka = cached(None, "cka_per_layer_between", CKA_FORMAT, pure=_cka_per_layer_between)


def _labelled(examples, what: str) -> GoldenSet:
    if not isinstance(examples, GoldenSet):
        raise MangaAssistInputError(f"{what} reads labels: examples must be a GoldenSet, got {type(examples).__name__}.",
                                    "Pass the golden_set or validation_set fixture, or load_golden_set(path).")
    return examples


def probe_f1(model, examples, seed: int = 0) -> ProbeResult:
    """probe_f1_per_layer (with its control task) on the sweep's [CLS] states of examples (a GoldenSet)."""
    examples = _labelled(examples, "probe_f1")
    scarce = {i: n for i, n in Counter(examples.intents).items() if n < MIN_PROBE_EXAMPLES_PER_INTENT}
    if scarce:
        raise MangaAssistInputError(
            f"Layer probes need at least {MIN_PROBE_EXAMPLES_PER_INTENT} examples per intent to train and score; "
            f"{examples.source} has {scarce}.",
            "Probe on a larger labelled set (e.g. the validation set, --validation-set).")
    return _cached_probe_f1(model, examples, seed)


def patching(model, examples, seed: int = 0) -> PatchingResult:
    """patching_recovery of examples (a GoldenSet): how often a donor's [CLS] state corrects an error, per layer."""
    return _cached_patching(model, _labelled(examples, "patching"), seed)


def decision_lens(model, examples) -> LogitLensResult:
    """logit_lens on the sweep's [CLS] states of examples (a GoldenSet or a list of messages: it reads the
    model's own decisions, not labels)."""
    return _cached_decision_lens(model, examples.texts if isinstance(examples, GoldenSet) else list(examples))


@renamed_keywords(min_size="at_least_size")  # the old name, for one release
def discover_slices(model, examples, *, at_least_size: int = 10, features=None, layer: int = -1, seed: int = 0):
    """analysis.slices.discover_slices on the model's predictions and the sweep's [CLS] states at `layer`
    (default the top layer) of examples (a GoldenSet); features default to the profile of the model's label
    set (domain.profile_for: MangaAssist's for its labels, none but length and tags for a label set no profile
    knows)."""
    from ..analysis.slices import discover_slices as discover
    from ..domain import profile_for

    examples = _labelled(examples, "discover_slices")
    evaluation = evaluate(model, examples)
    states = activation_sweep(model, examples.texts).cls_states[:, layer]
    return discover(states, examples, evaluation.predicted, evaluation.confidence(),
                    profile_for(model.labels).slice_features if features is None else features,
                    at_least_size=at_least_size, seed=seed)


def cka_per_layer_between(model, texts: list[str], against, debiased: bool) -> list[float]:
    """cka_per_layer of the sweeps' [CLS] states of two models on the same texts: computed once per session and
    cached on disk (a gate file reads it once per gated layer; a warm run then reads no sweep at all)."""
    if not isinstance(getattr(against, "content_hash", None), str):  # a wrapper: nothing identifies it in a key
        return _cka_per_layer_between(model, list(texts), against, bool(debiased))
    return _cached_cka(model, list(texts), against, bool(debiased))
