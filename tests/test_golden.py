"""Golden-set parsing: every malformed line is named by number, with the fix."""

import json

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


# -- duplicates, invisible and unencodable texts, hostile JSON (issue #12) ---------------------------------


def test_duplicates_are_refused_with_their_line_numbers(tmp_path):
    with pytest.raises(MangaAssistInputError) as info:
        load_lines(tmp_path, '{"text": "where is my order", "intent": "order_status"}',
                   '{"text": "hi", "intent": "chitchat"}', '{"text": "where is my order", "intent": "order_status"}',
                   '{"text": "hi", "intent": "chitchat"}', '{"text": "hi", "intent": "chitchat"}')
    message = str(info.value)
    assert "repeats 2 message(s) (3 extra line(s))" in message
    assert "'where is my order' on lines 1, 3" in message and "'hi' on lines 2, 4, 5" in message
    assert "--mangaassist-allow-duplicates" in message.split("fix:")[1]


def test_allow_duplicates_keeps_and_counts_them(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text('{"text": "hi", "intent": "chitchat"}\n{"text": "hi", "intent": "chitchat"}\n'
                    '{"text": "ok", "intent": "chitchat"}\n')
    golden = load_golden_set(path, allow_duplicates=True)
    assert golden.texts == ["hi", "hi", "ok"] and golden.duplicate_count == 1
    assert load_lines(tmp_path, '{"text": "ok", "intent": "chitchat"}').duplicate_count == 0


@pytest.mark.parametrize("first, second", [
    ("caf\u00e9 manga", "cafe\u0301 manga"),          # NFC: composed and decomposed e-acute
    ("where is my order", "  where   is my\torder "),  # whitespace runs and ends
    ("where is my order", "where is\u200b my order"),  # a zero-width space
    ("\ufeffhi there", "hi there"),                    # a byte-order mark inside the text
])
def test_texts_equal_after_normalisation_are_duplicates(tmp_path, first, second):
    lines = [json.dumps({"text": t, "intent": "chitchat"}) for t in (first, second)]
    with pytest.raises(MangaAssistInputError, match="on lines 1, 2"):
        load_lines(tmp_path, *lines)


def test_case_variants_are_not_duplicates(tmp_path):
    golden = load_lines(tmp_path, '{"text": "Where is my order", "intent": "order_status"}',
                        '{"text": "where is my order", "intent": "order_status"}')
    assert len(golden) == 2 and golden.duplicate_count == 0


def test_normalised_duplicate_with_another_label_is_a_contradiction(tmp_path):
    with pytest.raises(MangaAssistInputError, match="line 2 labels 'hi ' as 'escalation', line 1 as 'chitchat'"):
        load_lines(tmp_path, '{"text": "hi", "intent": "chitchat"}', '{"text": "hi ", "intent": "escalation"}')


@pytest.mark.parametrize("text", ["\\u200b", "\\u200c\\u200d", "\\u2060 \\u200b", "\\ufeff", " \\u200b\\t\\u00a0"])
def test_text_of_only_invisible_characters_is_an_empty_message(tmp_path, text):
    with pytest.raises(MangaAssistInputError) as info:
        load_lines(tmp_path, '{"text": "ok", "intent": "chitchat"}', f'{{"text": "{text}", "intent": "chitchat"}}')
    message = str(info.value)
    assert "line 2" in message and "empty" in message and "invisible characters" in message and "fix:" in message


def test_visible_text_with_invisible_characters_is_kept(tmp_path):
    assert load_lines(tmp_path, '{"text": "hi\\u200b", "intent": "chitchat"}').texts == ["hi\u200b"]


@pytest.mark.parametrize("record, key", [
    ('{"text": "hi \\ud800", "intent": "chitchat"}', "text"),
    ('{"text": "\\udfff", "intent": "chitchat"}', "text"),
    ('{"text": "hi", "intent": "chit\\ud800chat"}', "intent"),
    ('{"text": "hi", "intent": "chitchat", "also": ["x\\udc00"]}', "also"),
])
def test_lone_surrogate_is_refused_with_its_line(tmp_path, record, key):
    with pytest.raises(MangaAssistInputError) as info:
        load_lines(tmp_path, '{"text": "ok", "intent": "chitchat"}', record)
    message = str(info.value)
    assert "line 2" in message and f'"{key}" holds a lone surrogate' in message and "fix:" in message
    message.encode("utf-8")  # the message itself is printable


def test_surrogate_pair_is_one_character_and_accepted(tmp_path):
    assert load_lines(tmp_path, '{"text": "nice \\ud83d\\ude00", "intent": "chitchat"}').texts == ["nice \U0001f600"]


@pytest.mark.parametrize("line, phrase", [
    ("[" * 100_000 + "]" * 100_000, "nested too deep"),
    ('{"text": "hi", "intent": "chitchat", "also": ' + "[" * 100 + "]" * 100 + "}", "101 levels deep"),
    ('{"text": "hi", "intent": "chitchat", "text": "bye"}', "repeats the key 'text'"),
    ('{"text": "hi", "intent": ' + "1" * 5000 + "}", "cannot read"),
])
def test_hostile_json_line_is_a_clear_error_with_its_line(tmp_path, line, phrase):
    with pytest.raises(MangaAssistInputError) as info:
        load_lines(tmp_path, '{"text": "ok", "intent": "chitchat"}', line)
    message = str(info.value)
    assert "g.jsonl, line 2" in message and phrase in message and "fix:" in message


def test_golden_sets_built_directly_get_distinct_content_hashes():
    """Results are memoised by content hash: two sets built in memory must not share one."""
    from pytest_mangaassist.loading.golden import GoldenExample, GoldenSet

    first = GoldenSet((GoldenExample("where is my order", "order_status"),))
    second = GoldenSet([GoldenExample("any deals this week", "promotion")])
    assert first.content_hash and second.content_hash and first.content_hash != second.content_hash
    assert GoldenSet.from_examples(first.examples).content_hash == first.content_hash
