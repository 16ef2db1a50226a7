"""Release-candidate gate (source analysis, Netron section): the exported graph must keep the serving
contract, every runtime must route like the trained model, and ONNX Runtime must answer within budget.

Without --onnx-path / --serving-artifact the plugin exports the model under test itself (ONNX,
dynamic axes, label map in the metadata) and compiles it with torch.jit.trace (torch_neuronx where
installed); both are cached by weight hash, so the suite exports once.
"""

import pytest

from pytest_mangaassist import (assert_latency_p95, assert_onnx_parity, assert_onnx_structure,
                                assert_serving_parity)

pytestmark = pytest.mark.gate("release")  # tier: every release candidate

MAX_P95_MS = 15.0  # the chatbot's routing budget at batch 1
# Timed at 32 tokens: longer than every message of the golden set (median 13, P95 19, longest 26 with
# [CLS]/[SEP]), so the budget holds for real traffic; longer prompts cost proportionally more.
SERVING_SEQ_LEN = 32
PARITY_MAX_LENGTH = 128  # the longest input the router accepts (the tokenizer truncates beyond it)


def test_onnx_graph_keeps_the_serving_contract(onnx_model, intent_model, mangaassist_record):
    structure = assert_onnx_structure(intent_model, artifact=onnx_model)
    mangaassist_record(f"ONNX structure ({onnx_model.source})", structure.table())


def test_onnx_runtime_routes_like_pytorch(onnx_model, intent_model, golden_set, mangaassist_record):
    parity = assert_onnx_parity(intent_model, golden_set, artifact=onnx_model, max_logit_diff=1e-3,
                                at_most_length=PARITY_MAX_LENGTH)
    mangaassist_record("parity PyTorch vs ONNX Runtime", parity.summary())


def test_serving_artifact_routes_like_pytorch(serving_artifact, intent_model, golden_set, mangaassist_record):
    parity = assert_serving_parity(intent_model, golden_set, artifact=serving_artifact, max_logit_diff=1e-3,
                                   at_most_length=PARITY_MAX_LENGTH)
    mangaassist_record(f"parity PyTorch vs serving artifact ({serving_artifact.compiler})", parity.summary())


def test_p95_latency_on_onnx_runtime_at_batch_1(onnx_model, mangaassist_record):
    latency = assert_latency_p95(onnx_model, max_p95_ms=MAX_P95_MS, batch_size=1, seq_len=SERVING_SEQ_LEN, threads=1)
    mangaassist_record("latency on ONNX Runtime", latency.table())
