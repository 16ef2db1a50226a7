"""A label set that is not MangaAssist's: a tiny 4-label IT-helpdesk classifier never meets a MangaAssist intent,
route, slice, vocabulary or example, and the gate pack runs on it with no test file of its own.

One pack run (module-scoped: routing policy declared, production model, training data, traffic) covers the
pack's ids, -k, the ini overrides of the limits table, the routes comparison, the traffic gates and the
reports; the error paths are checked in process."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from pytest_mangaassist import MangaAssistInputError, RoutingPolicy, assert_routes
from pytest_mangaassist import domain
from pytest_mangaassist.config.pack import PACK_LIMITS, table
from pytest_mangaassist.gates.records import collecting

from conftest import outcomes, run_pytest

HELPDESK = ("password_reset", "hardware_fault", "software_install", "billing_question")
PHRASES = {
    "password_reset": ["I forgot my password for {x}", "please reset my login for {x}", "locked out of {x} again",
                       "my {x} password expired"],
    "hardware_fault": ["my {x} will not turn on", "the {x} makes a clicking noise", "{x} screen is flickering",
                       "broken {x} after the update"],
    "software_install": ["how do I install {x}", "need {x} set up on my laptop", "can you add {x} to my machine",
                         "{x} installer fails halfway"],
    "billing_question": ["why was I charged twice for {x}", "invoice for {x} looks wrong", "refund the {x} licence",
                         "who pays for the {x} subscription"],
}
THINGS = ["the VPN", "email", "the printer", "Teams"]

# every MangaAssist word a helpdesk user must never see: its intents, routes, slices, jargon, titles, romanized words
MANGA_WORDS = sorted({*domain.INTENTS, domain.COMMERCE_SUPPORT, *domain.SLICES, "manga", "escalations",
                      *(t for terms in domain.JARGON_KINDS.values() for t in terms), *domain.PRODUCT_TITLES,
                      *(jp for _, jp in domain.CODE_SWITCHES)} - {"hon", "kan", "kono", "doko", "Monster", "Nana"})
MANGA = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, MANGA_WORDS)) + r")(?![\w-])", re.IGNORECASE)


def manga_words(text: str) -> list[str]:
    return sorted({m.group(0) for m in MANGA.finditer(text)})


def examples() -> list[dict]:
    return [{"text": phrase.format(x=thing), "intent": label}
            for label, phrases in PHRASES.items() for phrase in phrases for thing in THINGS]


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def helpdesk(tmp_path_factory) -> Path:
    """A random-initialised 2-layer BERT with the helpdesk labels (no download), its data and a routing policy."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from mangaassist_reference.convert import minilm_dir

    folder = tmp_path_factory.mktemp("helpdesk")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, id2label=dict(enumerate(HELPDESK)),
                        label2id={label: i for i, label in enumerate(HELPDESK)})
    BertForSequenceClassification(config).save_pretrained(folder / "model")
    AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True).save_pretrained(folder / "model")
    write_jsonl(folder / "golden.jsonl", examples())
    write_jsonl(folder / "train.jsonl", [{"text": f"{r['text']} at the office", "intent": r["intent"]}
                                         for r in examples()[::3]])
    write_jsonl(folder / "traffic.jsonl", [{"text": r["text"] + "?"} for r in examples()])
    (folder / "policy.json").write_text(json.dumps({"thresholds": {"hardware_fault": 0.3},
                                                    "fallbacks": {"hardware_fault": "onsite_technician"},
                                                    "default_fallback": "service_desk"}))
    return folder


@pytest.fixture(scope="module")
def pack_run(helpdesk, tmp_path_factory):
    """The pack on the helpdesk model: accuracy's limit lowered in the ini file, latency deselected with -k."""
    folder = tmp_path_factory.mktemp("pack")
    (folder / "pytest.ini").write_text("[pytest]\nmangaassist_pack_min_accuracy = 0.0\n"
                                       f"mangaassist_routing_policy = {helpdesk / 'policy.json'}\n")
    shutil.copytree(helpdesk / "model", folder / "production")  # the same weights: no flips by construction
    done = run_pytest(folder, "-rA", "-p", "no:randomly", f"--model-path={helpdesk / 'model'}",
                      f"--golden-set={helpdesk / 'golden.jsonl'}", f"--production-path={folder / 'production'}",
                      f"--training-set={helpdesk / 'train.jsonl'}", f"--traffic={helpdesk / 'traffic.jsonl'}",
                      "--mangaassist-pack", "-k", "not latency", f"--mangaassist-report={folder / 'report'}")
    return done, folder / "report"


def test_the_pack_runs_ordinary_test_ids_on_a_helpdesk_model(pack_run):
    done, _ = pack_run
    out = done.stdout + done.stderr
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    for test_id in ("test_accuracy", "test_recall_per_label", "test_batch_invariance", "test_no_weak_slice",
                    "test_onnx_structure", "test_onnx_parity", "test_no_leakage", "test_traffic_agreement",
                    *(f"test_no_shortcut[{label}]" for label in HELPDESK),
                    "test_no_negative_flips[intents]", "test_no_negative_flips[routes]", "test_not_worse[routes]"):
        assert f"test_pack.py::{test_id}" in out, (test_id, out)
    assert "PASSED" in out and "test_pack.py::test_accuracy" in out
    assert re.search(r"PASSED \S*test_pack.py::test_accuracy\b", out), out  # the ini key lowered its limit to 0
    assert "test_latency_p95" not in out and "1 deselected" in out  # -k deselects a check like any test
    # not given: --pretrained-path and --validation-set; the skip reason names the option
    assert re.search(r"SKIPPED \[1\] \S*test_pack.py:\d+: no pre-trained checkpoint: pass --pretrained-path", out), out
    # the production model is the same weights: routes and intents compared, no flip either way
    assert re.search(r"PASSED \S*test_pack.py::test_no_negative_flips\[routes\]", out), out
    assert re.search(r"PASSED \S*test_pack.py::test_traffic_agreement", out), out
    counts = outcomes(done.stdout)
    assert counts.get("passed", 0) >= 8 and done.returncode == (1 if counts.get("failed") else 0), out


def test_no_mangaassist_word_reaches_a_helpdesk_user(pack_run):
    done, report = pack_run
    results = (report / "results.json").read_text(encoding="utf-8")
    for where, text in (("terminal", done.stdout + done.stderr), ("results.json", results),
                        ("report.html", (report / "report.html").read_text(encoding="utf-8"))):
        assert manga_words(text) == [], (where, manga_words(text))
    data = json.loads(results)
    assert data["inputs"]["traffic hash"] and data["inputs"]["training set hash"]  # every input hashed
    assert data["inputs"]["production model hash"] == data["inputs"]["model hash"]
    rows = [g["metric"] for t in data["tests"] for g in t["gates"]]
    routing = [m for m in rows if "routing: policy" in m]
    assert routing and all("policy.json" in m for m in routing)  # the row names the declared policy
    assert any(m.startswith("negative-flip rate of routes") for m in rows)
    assert any(m.startswith("negative-flip rate of intents") for m in rows)


def test_a_helpdesk_model_routes_by_argmax_when_no_policy_is_declared(helpdesk):
    from pytest_mangaassist import GateFailure, IntentModel

    model = IntentModel.load(helpdesk / "model")
    assert domain.profile_for(model.labels) is domain.GENERIC and domain.profile_for(domain.INTENTS).name == "MangaAssist"
    texts = [r["text"] for r in examples()[:8]]
    with collecting() as records, pytest.raises(GateFailure) as info:
        assert_routes(model, texts, expected="password_reset")
    message = str(info.value)
    assert "routing: argmax (no routing policy declared" in message and "--routing-policy" in message
    assert manga_words(message) == [] and manga_words(records[0].metric) == []
    # the suite's policy (the plugin sets it per test) replaces argmax, and the row names it
    policy = RoutingPolicy(default_threshold=0.99, default_fallback="service_desk", source="the suite's policy x")
    with domain.using_routing_policy(policy), collecting() as records:
        assert domain.routing_policy(model.labels) is policy
        assert_routes(model, texts, expected="service_desk")  # a random model is never 0.99 sure
    assert "routing: the suite's policy x" in records[0].metric
    assert domain.routing_policy(model.labels) is domain.ARGMAX
    # generic probe texts and slice features: nothing of MangaAssist's
    generic = domain.GENERIC
    assert manga_words(" ".join(generic.parity_texts + generic.structure_words)) == []
    assert generic.slice_features.titles == () and not generic.slice_features.triggers


def test_a_policy_with_an_unknown_label_is_refused_with_a_did_you_mean(helpdesk, tmp_path):
    typo = tmp_path / "policy.json"
    typo.write_text(json.dumps({"thresholds": {"hardware_falt": 0.5}}))
    policy = domain.load_routing_policy(typo)
    with pytest.raises(MangaAssistInputError) as info:
        domain.check_policy_labels(policy, HELPDESK)
    assert "did you mean 'hardware_falt' -> 'hardware_fault'" in str(info.value)
    assert "Name only the model's labels (password_reset, " in str(info.value) and manga_words(str(info.value)) == []
    for bad, problem in (([1], "not a JSON object"), ({"thresholds": {"a": 2}}, "threshold of 'a'"),
                         ({"threshold": {}}, "unknown key 'threshold'")):
        typo.write_text(json.dumps(bad))
        with pytest.raises(MangaAssistInputError, match=re.escape(problem)) as info:
            domain.load_routing_policy(typo)
        assert "LABEL" in info.value.fix and manga_words(str(info.value)) == []


def test_slices_add_refuses_a_label_the_helpdesk_golden_set_does_not_know(helpdesk, tmp_path, capsys):
    from pytest_mangaassist.cli.slices import main

    golden = shutil.copy(helpdesk / "golden.jsonl", tmp_path / "golden.jsonl")
    before = Path(golden).read_bytes()
    new = write_jsonl(tmp_path / "new.jsonl", [{"text": "any discount on the printer toner", "intent": "promotion"}])
    assert main(["slices", "add", "--golden", str(golden), "--slice", "toner", str(new)]) == 2
    err = capsys.readouterr().err
    assert "intent 'promotion' is not a label of" in err and "fix: Use one of the labels billing_question, " in err
    new = write_jsonl(tmp_path / "new.jsonl", [{"text": "the toner light keeps blinking", "intent": "hardware_falt"}])
    assert main(["slices", "add", "--golden", str(golden), "--slice", "toner", str(new), "--model",
                 str(helpdesk / "model")]) == 2
    err = capsys.readouterr().err
    assert "is not a label of the model" in err and "(did you mean 'hardware_fault'?)" in err
    assert Path(golden).read_bytes() == before and "Traceback" not in err


def test_the_limits_table_is_documented():
    gates_doc = (Path(__file__).resolve().parents[1] / "docs" / "gates.md").read_text(encoding="utf-8")
    assert table() in gates_doc, "docs/gates.md must hold config.pack.table() verbatim"
    assert len({limit.name for limit in PACK_LIMITS}) == len(PACK_LIMITS)


def test_check_names_what_it_needs(capsys):
    from pytest_mangaassist.cli.check import main

    assert main([]) == 4 and main(["--golden-set=g.jsonl"]) == 4
    err = capsys.readouterr().err
    assert "name the checkpoint folder to check" in err and "python -m pytest_mangaassist check DIR" in err
