"""pytest-mangaassist: post-training gates for fine-tuned transformer intent classifiers.

Names are resolved lazily (PEP 562) so `import pytest_mangaassist` stays free of torch.
"""

from importlib import import_module

_EXPORTS = {
    "assert_accuracy_above": "gates.classification",
    "assert_recall_above": "gates.classification",
    "assert_macro_f1_above": "gates.classification",
    "assert_batch_invariant": "gates.classification",
    "assert_no_negative_flips": "gates.comparison",
    "assert_not_worse": "gates.comparison",
    "paired_comparison": "gates.comparison",
    "assert_decision_forms_by": "gates.representation",
    "decision_lens": "cache.analyses",
    "batch_invariance": "cache.analyses",
    "binomial_rate": "analysis.intervals",
    "macro_f1_rate": "analysis.intervals",
    "rates_table": "analysis.intervals",
    "assert_cka_above": "gates.representation",
    "assert_probe_f1_above": "gates.representation",
    "assert_patching_recovers": "gates.representation",
    "cka_between": "gates.representation",
    "cka_table": "gates.representation",
    "patching": "cache.analyses",
    "probe_f1": "cache.analyses",
    "linear_cka": "analysis.cka",
    "cka_per_layer": "analysis.cka",
    "probe_f1_per_layer": "analysis.probes",
    "patching_recovery": "analysis.patching",
    "activation_sweep": "cache.analyses",
    "assert_onnx_structure": "gates.export",
    "assert_onnx_parity": "gates.export",
    "assert_serving_parity": "gates.export",
    "assert_latency_p95": "gates.export",
    "inspect_onnx_structure": "analysis.onnx_structure",
    "runtime_parity": "analysis.parity",
    "parity_probe": "analysis.parity",
    "measure_latency": "analysis.latency",
    "export_onnx": "loading.export",
    "compile_serving_artifact": "loading.export",
    "OnnxModel": "loading.runtimes",
    "ServingArtifact": "loading.runtimes",
    "TorchRuntime": "loading.runtimes",
    "assert_no_regression": "gates.snapshot",
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
    "assert_no_lexical_shortcut": "gates.attribution",
    "assert_attribution_batch_invariant": "gates.attribution",
    "assert_layer_conductance_share": "gates.attribution",
    "lexical_shortcut_audit": "gates.attribution",
    "assert_attention_shift": "gates.internals",
    "assert_token_senses_separate": "gates.internals",
    "assert_prediction_invariant": "gates.behaviour",
    "assert_confidence_shift": "gates.behaviour",
    "assert_routes": "gates.behaviour",
    "integrated_gradients": "cache.analyses",
    "layer_conductance": "cache.analyses",
    "attention_mass": "analysis.attention",
    "sense_separation": "analysis.trajectories",
    "RoutingPolicy": "analysis.counterfactuals",
    "MANGAASSIST_ROUTING": "domain",
    "route": "analysis.counterfactuals",
    "assert_no_weak_slice": "gates.slices",
    "assert_no_leakage": "gates.leakage",
    "discover_slices": "cache.analyses",
    "SliceFeatures": "analysis.slices",
    "near_duplicates": "analysis.leakage",
    "assert_traffic_agreement": "gates.traffic",
    "assert_route_shares_stable": "gates.traffic",
    "traffic_replay": "gates.traffic",
    "Traffic": "loading.traffic",
    "load_traffic": "loading.traffic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
