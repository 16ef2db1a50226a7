"""Golden-set parsing: every malformed line is named by number, with the fix."""

import pytest

from pytest_mangaassist.errors import MangaAssistInputError
from pytest_mangaassist.loading.golden import GoldenExample, check_labels_match, load_golden_set, write_golden_set
from pytest_mangaassist.domain import INTENTS


def load_lines(tmp_path, *lines):
    path = tmp_path / "g.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return load_golden_set(path)


def test_round_trip_keeps_slices_and_secondary_intents(tmp_path):
    examples = [GoldenExample("hi", "chitchat"),
                GoldenExample("where is it and any sale?", "order_status", "multi_intent", ("promotion",))]
    write_golden_set(examples, tmp_path / "g.jsonl")
    golden = load_golden_set(tmp_path / "g.jsonl")
    assert list(golden) == examples
    assert golden.labels == {"chitchat", "order_status", "promotion"}
    assert golden.only_slice("multi_intent").texts == ["where is it and any sale?"]


def test_blank_lines_are_ignored_and_hash_depends_on_content(tmp_path):
    a = load_lines(tmp_path, '{"text": "hi", "intent": "chitchat"}', "", "  ")
    assert len(a) == 1
    b = load_lines(tmp_path, '{"text": "hi!", "intent": "chitchat"}')
    assert a.content_hash != b.content_hash


@pytest.mark.parametrize("line, phrases", [
    ('{"text": "hi", "intent": "chitchat"', ["line 2", "not valid JSON"]),
    ('["hi", "chitchat"]', ["line 2", "JSON list"]),
    ('{"text": "", "intent": "chitchat"}', ["line 2", "empty"]),
    ('{"text": "hi"}', ["line 2", "no \"intent\""]),
    ('{"text": "hi", "label": "chitchat"}', ["line 2", "'label' (did you mean"]),
    ('{"text": "hi", "intent": "chitchat", "also": "promotion"}', ["line 2", "list of intent labels"]),
    ('{"text": "hi", "intent": "chitchat", "slice": 3}', ["line 2", "slice"]),
])
def test_malformed_lines(tmp_path, line, phrases):
    with pytest.raises(MangaAssistInputError) as info:
        load_lines(tmp_path, '{"text": "ok", "intent": "chitchat"}', line)
    for phrase in phrases:
        assert phrase in str(info.value)
    assert "fix:" in str(info.value)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(MangaAssistInputError, match="holds no examples"):
        load_lines(tmp_path, "")
    with pytest.raises(MangaAssistInputError, match="does not exist"):
        load_golden_set(tmp_path / "missing.jsonl")


def test_unknown_slice_is_an_error_not_an_empty_pass(tmp_path):
    golden = load_lines(tmp_path, '{"text": "hi", "intent": "chitchat", "slice": "jp_en"}')
    with pytest.raises(MangaAssistInputError, match="no slice 'jpen'"):
        golden.only_slice("jpen")


def test_label_checks(tmp_path):
    golden = load_lines(tmp_path, *[f'{{"text": "x{n}", "intent": "{i}"}}' for n, i in enumerate(INTENTS)])
    check_labels_match(golden, INTENTS, "m")
    with pytest.raises(MangaAssistInputError, match="none for: extra"):
        check_labels_match(golden, INTENTS + ("extra",), "m")
    with pytest.raises(MangaAssistInputError, match="'chitchat'"):
        check_labels_match(golden, INTENTS[:-1], "m")


def test_byte_order_mark_is_tolerated_and_bad_encoding_is_named(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "hi", "intent": "chitchat"}\n')
    assert load_golden_set(path).texts == ["hi"]
    path.write_bytes(b'{"text": "hi", "intent": "chitchat"}\n{"text": "caf\xe9", "intent": "chitchat"}\n')
    with pytest.raises(MangaAssistInputError, match="line 2 is not UTF-8"):
        load_golden_set(path)


def test_one_message_with_two_labels_is_a_contradiction(tmp_path):
    with pytest.raises(MangaAssistInputError, match="line 3 labels 'hi' as 'escalation', line 1 as 'chitchat'"):
        load_lines(tmp_path, '{"text": "hi", "intent": "chitchat"}', '{"text": "ok", "intent": "chitchat"}',
                   '{"text": "hi", "intent": "escalation"}')
