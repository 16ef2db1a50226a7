"""pytest-mangaassist: post-training gates for fine-tuned transformer intent classifiers.

Names are resolved lazily (PEP 562) so `import pytest_mangaassist` stays free of torch. The gates are not
listed here: each is declared once beside its function, and gates.declared_names() reads those declarations
from the source (without importing the gate modules) the first time a name is looked up.
"""

from importlib import import_module

_EXPORTS = {  # the public names that are not gates
    "paired_comparison": "gates.comparison",
    "decision_lens": "cache.analyses",
    "batch_invariance": "cache.analyses",
    "binomial_rate": "analysis.intervals",
    "macro_f1_rate": "analysis.intervals",
    "rates_table": "analysis.intervals",
    "cka_between": "gates.representation",
    "cka_table": "gates.representation",
    "patching": "cache.analyses",
    "probe_f1": "cache.analyses",
    "linear_cka": "analysis.cka",
    "cka_per_layer": "analysis.cka",
    "probe_f1_per_layer": "analysis.probes",
    "patching_recovery": "analysis.patching",
    "activation_sweep": "cache.analyses",
    "inspect_onnx_structure": "analysis.onnx_structure",
    "runtime_parity": "analysis.parity",
    "parity_probe": "analysis.parity",
    "measure_latency": "analysis.latency",
    "export_onnx": "loading.export",
    "compile_serving_artifact": "loading.export",
    "OnnxModel": "loading.runtimes",
    "ServingArtifact": "loading.runtimes",
    "TorchRuntime": "loading.runtimes",
    "GateRecord": "gates.records",
    "GateFailure": "errors",
    "MangaAssistInputError": "errors",
    "GoldenExample": "loading.golden",
    "GoldenSet": "loading.golden",
    "load_golden_set": "loading.golden",
    "IntentModel": "loading.model",
    "evaluate": "cache.analyses",
    "INTENTS": "domain",
    "RARE_INTENTS": "domain",
    "COMMERCE_SUPPORT": "domain",
    "SLICES": "domain",
    "lexical_shortcut_audit": "gates.attribution",
    "integrated_gradients": "cache.analyses",
    "layer_conductance": "cache.analyses",
    "attention_mass": "analysis.attention",
    "sense_separation": "analysis.trajectories",
    "RoutingPolicy": "analysis.counterfactuals",
    "MANGAASSIST_ROUTING": "domain",
    "route": "analysis.counterfactuals",
    "discover_slices": "cache.analyses",
    "SliceFeatures": "analysis.slices",
    "near_duplicates": "analysis.leakage",
    "traffic_replay": "gates.traffic",
    "Traffic": "loading.traffic",
    "load_traffic": "loading.traffic",
}


def _exports() -> dict[str, str]:
    from .gates import declared_names

    return {**_EXPORTS, **declared_names()}


def __getattr__(name: str):
    if name == "__all__":
        return sorted(_exports())
    exports = _exports()
    if name in exports:
        return getattr(import_module(f"{__name__}.{exports[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(_exports())
