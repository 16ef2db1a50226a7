"""pytest-mangaassist: post-training gates for fine-tuned transformer intent classifiers.

Names are resolved lazily (PEP 562) so `import pytest_mangaassist` stays free of torch.
"""

from importlib import import_module

_EXPORTS = {
    "assert_accuracy_above": "gates.classification",
    "assert_recall_above": "gates.classification",
    "assert_cka_above": "gates.representation",
    "assert_probe_f1_above": "gates.representation",
    "assert_patching_recovers": "gates.representation",
    "cka_between": "gates.representation",
    "cka_table": "gates.representation",
    "patching": "gates.representation",
    "probe_f1": "gates.representation",
    "linear_cka": "analysis.cka",
    "cka_per_layer": "analysis.cka",
    "probe_f1_per_layer": "analysis.probes",
    "patching_recovery": "analysis.patching",
    "activation_sweep": "analysis.sweep",
    "GateFailure": "errors",
    "MangaAssistInputError": "errors",
    "GoldenExample": "golden",
    "GoldenSet": "golden",
    "load_golden_set": "golden",
    "IntentModel": "model",
    "evaluate": "analysis.classification",
    "INTENTS": "intents",
    "RARE_INTENTS": "intents",
    "SLICES": "intents",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
