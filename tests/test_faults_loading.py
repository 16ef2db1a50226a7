"""Fault injection at the loading boundary (issue #12): broken tokenizers, custom code, hostile JSON,
unencodable or invisible golden texts, duplicate messages and pickle weights.

Cases reachable through pytest options run through pytester as a user runs pytest: each asserts exit code 4
(usage error), the message naming the problem and the fix, and no traceback. The rest are unit tests.
"""

import json
import os
from pathlib import Path

import pytest

from conftest import assert_usage_error, edit_config
from pytest_mangaassist.errors import MangaAssistInputError
from pytest_mangaassist.loading.checkpoint import inspect_checkpoint
from pytest_mangaassist.loading.jsonfile import parse_json, read_json

USES_MODEL = """
def test_uses_model(intent_model):
    assert intent_model.predict(["where is my order?"])
"""
GOOD = '{"text": "where is my order", "intent": "order_status"}'
DEEP = "[" * 100_000 + "]" * 100_000


def run(pytester, *args):
    """pytest with the options as `--option=value` (the space form is refused on its own, see #12.0)."""
    pytester.makepyfile(USES_MODEL)
    options = [f"{flag}={value}" for flag, value in zip(args[::2], args[1::2])]
    return pytester.runpytest_subprocess(*options)


def vocab_tokens(folder: Path) -> list[str]:
    vocab = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    return sorted(vocab, key=vocab.get)


def edit_json(file: Path, **changes) -> None:
    data = json.loads(file.read_text())
    data.update(changes)
    file.write_text(json.dumps(data))


# -- broken checkpoints: each setup breaks a copy of the small model, returns the pytest arguments ---------

def only_tokenizer_config(model_copy, tmp_path):
    folder = model_copy()
    (folder / "tokenizer.json").unlink()  # tokenizer_config.json stays: transformers would build 5 tokens
    return ["--model-path", folder]


def tiny_vocab_txt(model_copy, tmp_path):
    folder = model_copy()
    tokens = vocab_tokens(folder)[:500]
    (folder / "tokenizer.json").unlink()
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n")
    return ["--model-path", folder]


def embedding_table_smaller_than_vocab(model_copy, tmp_path):
    folder = model_copy()
    from safetensors.torch import load_file, save_file

    state = load_file(folder / "model.safetensors")
    key = "distilbert.embeddings.word_embeddings.weight"
    state[key] = state[key][:20_000].clone()
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    edit_config(folder, vocab_size=20_000)
    return ["--model-path", folder]


def tokenizer_auto_map(model_copy, tmp_path):
    folder = model_copy()
    edit_json(folder / "tokenizer_config.json", auto_map={"AutoTokenizer": ["evil.EvilTokenizer", None]})
    return ["--model-path", folder]


def tokenizer_trust_remote_code(model_copy, tmp_path):
    folder = model_copy()
    edit_json(folder / "tokenizer_config.json", trust_remote_code=True)
    return ["--model-path", folder]


def config_trust_remote_code(model_copy, tmp_path):
    folder = model_copy()
    edit_config(folder, trust_remote_code=True)
    return ["--model-path", folder]


def deep_config_json(model_copy, tmp_path):
    folder = model_copy()
    (folder / "config.json").write_text(DEEP)
    return ["--model-path", folder]


def deep_tokenizer_config(model_copy, tmp_path):
    folder = model_copy()
    text = (folder / "tokenizer_config.json").read_text().rstrip().rstrip("}")
    (folder / "tokenizer_config.json").write_text(text + ', "x": ' + DEEP + "}")
    return ["--model-path", folder]


def golden_file(tmp_path, *lines):
    path = tmp_path / "g.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def golden_deep_line(model_copy, tmp_path):
    return ["--golden-set", golden_file(tmp_path, GOOD, GOOD.replace("where", "wh"), DEEP)]


def golden_lone_surrogate(model_copy, tmp_path):
    return ["--golden-set", golden_file(tmp_path, GOOD, '{"text": "hi \\ud800", "intent": "chitchat"}')]


def golden_zero_width_text(model_copy, tmp_path):
    return ["--golden-set", golden_file(tmp_path, GOOD, '{"text": "\\u200b\\u200c\\u2060\\ufeff ", "intent": "chitchat"}')]


def golden_duplicates(model_copy, tmp_path):
    return ["--golden-set", golden_file(tmp_path, GOOD, '{"text": "hi", "intent": "chitchat"}',
                                        '{"text": "where is  my order ", "intent": "order_status"}')]


def model_type_is_a_list(model_copy, tmp_path):
    folder = model_copy()
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": [config["model_type"]]}))
    return ["--model-path", folder]


def tokenizer_added_tokens_not_a_list(model_copy, tmp_path):
    folder = model_copy()
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    (folder / "tokenizer.json").write_text(json.dumps({**tokenizer, "added_tokens": 5}))
    return ["--model-path", folder]


CASES = [
    (model_type_is_a_list, ["--model-path", "save_pretrained"]),
    (tokenizer_added_tokens_not_a_list, ["--model-path", "save_pretrained"]),
    (only_tokenizer_config, ["has no vocabulary", "every word to [UNK]", "tokenizer.save_pretrained"]),
    (tiny_vocab_txt, ["(vocab.txt) knows 500 tokens", "30522 rows", "covers 2%", "tokenizer.save_pretrained"]),
    (embedding_table_smaller_than_vocab, ["token ids up to 30521", "20000 rows", "index past it",
                                          "resize_token_embeddings"]),
    (tokenizer_auto_map, ["tokenizer_config.json asks for custom tokenizer code (auto_map)", "never runs remote"]),
    (tokenizer_trust_remote_code, ["tokenizer_config.json asks for custom tokenizer code (trust_remote_code)"]),
    (config_trust_remote_code, ["config.json asks for custom model code (trust_remote_code)"]),
    (deep_config_json, ["config.json is JSON nested too deep", "save_pretrained"]),
    (deep_tokenizer_config, ["tokenizer_config.json is JSON nested too deep"]),
    (golden_deep_line, ["g.jsonl, line 3 is JSON nested too deep", "one JSON object"]),
    (golden_lone_surrogate, ["g.jsonl, line 2", "lone surrogate (U+D800"]),
    (golden_zero_width_text, ["g.jsonl, line 2", "empty", "only invisible characters (U+200B, U+200C, U+2060, U+FEFF)"]),
    (golden_duplicates, ["repeats 1 message(s)", "'where is my order' on lines 1, 3", "--mangaassist-allow-duplicates"]),
]


@pytest.mark.parametrize("setup, phrases", CASES, ids=[setup.__name__ for setup, _ in CASES])
def test_loading_fault_is_a_usage_error(pytester, model_copy, tmp_path, setup, phrases):
    assert_usage_error(run(pytester, *setup(model_copy, tmp_path)), *phrases)


# -- weights: safetensors, or a pickle only when torch.load(weights_only=True) would accept it ----------

class Payload:
    """Creates a folder when unpickled: stands for any code a hostile pickle would run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def pickle_checkpoint(folder: Path, extra=None, legacy=False) -> Path:
    import torch
    from safetensors.torch import load_file

    state = load_file(folder / "model.safetensors")
    if extra is not None:
        state["extra"] = extra
    torch.save(state, folder / "pytorch_model.bin", _use_new_zipfile_serialization=not legacy)
    (folder / "model.safetensors").unlink()
    return folder


def test_pickle_weights_load_with_weights_only(pytester, model_copy):
    folder = pickle_checkpoint(model_copy())
    assert inspect_checkpoint(folder).weights_file.name == "pytorch_model.bin"
    result = run(pytester, "--model-path", folder)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()


def test_pickle_that_runs_code_is_refused_before_loading(pytester, model_copy, tmp_path):
    marker = tmp_path / "pwned"
    folder = pickle_checkpoint(model_copy(), Payload(str(marker)))
    assert_usage_error(run(pytester, "--model-path", folder), "pytorch_model.bin is a pickle that imports os.makedirs",
                       "weights_only=True", "safetensors")
    assert not marker.exists()


@pytest.mark.parametrize("payload, accepted", [(None, True), ("payload", False)])
def test_legacy_pickle_format_is_checked_too(model_copy, tmp_path, payload, accepted):
    marker = tmp_path / "pwned"
    folder = pickle_checkpoint(model_copy(), Payload(str(marker)) if payload else None, legacy=True)
    if accepted:
        assert inspect_checkpoint(folder).weights_file.name == "pytorch_model.bin"
    else:
        with pytest.raises(MangaAssistInputError, match="imports os.makedirs"):
            inspect_checkpoint(folder)
    assert not marker.exists()


def test_weights_file_that_is_not_a_torch_save_file(model_copy):
    folder = model_copy()
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not a pickle at all")
    with pytest.raises(MangaAssistInputError, match="not a readable torch.save"):
        inspect_checkpoint(folder)


def test_model_loading_never_trusts_remote_code_and_uses_weights_only():
    import inspect

    from pytest_mangaassist.loading import model

    source = inspect.getsource(model)
    assert source.count("trust_remote_code=False") == 2 and "trust_remote_code=True" not in source
    assert "weights_only=True" in source and "torch.load" not in source


# -- tokenizer: what passes -------------------------------------------------------------------------------

def test_full_vocab_txt_without_tokenizer_json_is_accepted(model_copy):
    folder = model_copy()
    tokens = vocab_tokens(folder)
    (folder / "tokenizer.json").unlink()
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n")
    assert inspect_checkpoint(folder).model_type == "distilbert"


def test_embedding_table_padded_beyond_the_vocabulary_is_accepted(model_copy):
    folder = model_copy()
    from safetensors.torch import load_file, save_file
    import torch

    state = load_file(folder / "model.safetensors")
    key = "distilbert.embeddings.word_embeddings.weight"
    state[key] = torch.cat([state[key], torch.zeros(30_592 - 30_522, state[key].shape[1])])  # to a multiple of 64
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    edit_config(folder, vocab_size=30_592)
    inspect_checkpoint(folder)


def test_count_truncated_tokenizes_without_loading_weights(small_model):
    from pytest_mangaassist import IntentModel
    from pytest_mangaassist.loading.model import count_truncated

    model = IntentModel.load(small_model)
    model.max_length = 8  # [CLS] + 6 words + [SEP] fits; 7 words do not
    texts = ["hi", "one two three four five six", "one two three four five six seven", "a b c d e f g h i j"]
    assert model.count_truncated(texts) == 2
    assert model._hf_model is None
    assert count_truncated(model.tokenizer, [], 8) == 0


# -- the JSON reader ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, phrase", [
    (DEEP, "nested too deep"),
    ('{"a": ' * 70 + "1" + "}" * 70, "70 levels deep; at most 64"),
    ('{"a": 1, "a": 2}', "repeats the key 'a'"),
    ("1" * 5000, "cannot read"),
    ('{"a": 1,}', "not valid JSON (Expecting property name enclosed in double quotes at column 9)"),
    ('{\n"a": 1,\n}', "at line 3, column 1"),
])
def test_parse_json_refuses_with_the_source_named(text, phrase):
    with pytest.raises(MangaAssistInputError) as info:
        parse_json(text, "snapshot.json", fix="Restore the file.")
    assert str(info.value).startswith("snapshot.json ")
    assert phrase in str(info.value) and info.value.fix == "Restore the file."


def test_parse_json_returns_plain_values():
    assert parse_json('{"a": [1, 2.5, null, "x"], "b": NaN}', "x")["a"] == [1, 2.5, None, "x"]
    assert parse_json("[[1]]", "x", max_depth=2) == [[1]]


def test_read_json_names_unreadable_and_non_utf8_files(tmp_path):
    with pytest.raises(MangaAssistInputError, match="cannot be read"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "latin.json").write_bytes(b'{"a": "caf\xe9"}')
    with pytest.raises(MangaAssistInputError, match="latin.json is not UTF-8"):
        read_json(tmp_path / "latin.json")
    (tmp_path / "bom.json").write_bytes(b'\xef\xbb\xbf{"a": 1}')
    assert read_json(tmp_path / "bom.json") == {"a": 1}
