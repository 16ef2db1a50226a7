"""Hostile inputs at the loading boundary (issue #23, items 5, 6 and 10): over-long texts and lines, a config
that disagrees with its weights, weights that are a device or declare a huge header, and control characters in
names that reach the terminal and report.html.

Each start-up case runs pytest (or `python -m pytest_mangaassist slices discover`) in a fresh process, as a
user runs it, under a launcher that reports the process's peak memory: it asserts the exit code, the message,
no traceback, and a peak under 1 GiB (the hostile files are up to 50 MB; before these checks a 5 MB golden
text alone took a run to 1.5 GB).
"""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_pytest
from pytest_mangaassist.errors import MangaAssistInputError, display
from pytest_mangaassist.loading.checkpoint import inspect_checkpoint
from pytest_mangaassist.loading.files import bounded_lines, not_a_file
from pytest_mangaassist.loading.golden import MAX_LINE_BYTES, MAX_TEXT_CHARS, load_golden_set
from pytest_mangaassist.loading.traffic import load_traffic

HUGE = 50_000_000  # the 50 MB of the issue: a text, a line, a safetensors header
PEAK_LIMIT_MIB = 1024
USES_INPUTS = """
def test_uses_inputs(intent_model, golden_set):
    assert intent_model.predict(["where is my order?"])
"""
# Runs argv in a child process and reports the child's peak resident memory on stderr (Linux: kilobytes).
LAUNCHER = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
            "print(f'peak-rss-kb {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', file=sys.stderr); "
            "sys.exit(code)")


def run_measured(folder: Path, *argv: str) -> tuple[subprocess.CompletedProcess, float]:
    """(result, peak MiB) of `python argv...` in folder, without this run's PYTEST_ADDOPTS or colours."""
    env = {**os.environ, "PY_COLORS": "0"}
    env.pop("PYTEST_ADDOPTS", None)
    result = subprocess.run([sys.executable, "-c", LAUNCHER, sys.executable, *argv], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=300)
    peak = next(int(line.split()[1]) for line in result.stderr.splitlines() if line.startswith("peak-rss-kb"))
    return result, peak / 1024


def linked_model(small_model: Path, folder: Path, *replaced: str) -> Path:
    """A checkpoint folder whose files link to the small model's, except `replaced` (written by the caller)."""
    folder.mkdir()
    for file in small_model.iterdir():
        if file.name not in replaced:
            (folder / file.name).symlink_to(file)
    return folder


def jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# -- start-up cases: each builds its inputs in `folder` and returns the command line after `python` ------------

def golden_with_a_50_mb_text(folder, small_model, small_golden):
    golden = folder / "golden.jsonl"
    with open(golden, "w") as fh:
        fh.write(small_golden.read_text())
        fh.write(json.dumps({"text": "where is my order " * (HUGE // 18), "intent": "order_status"}) + "\n")
    return ["-m", "pytest", f"--model-path={small_model}", f"--golden-set={golden}"]


def golden_text_over_the_character_limit(folder, small_model, small_golden):
    golden = folder / "golden.jsonl"
    golden.write_text(small_golden.read_text() + json.dumps({"text": "a " * MAX_TEXT_CHARS, "intent": "chitchat"})
                      + "\n")
    return ["-m", "pytest", f"--model-path={small_model}", f"--golden-set={golden}"]


def validation_line_over_the_byte_limit(folder, small_model, small_golden):
    validation = jsonl(folder / "valid.jsonl", [{"text": "hi", "intent": "chitchat"},
                                                {"text": "\u3042" * (MAX_LINE_BYTES // 5), "intent": "chitchat"}])
    return ["-m", "pytest", f"--model-path={small_model}", f"--golden-set={small_golden}",
            f"--validation-set={validation}"]


def traffic_jsonl_text_over_the_limit(folder, small_model, small_golden):
    traffic = jsonl(folder / "t.jsonl", [{"text": "hi"}, {"text": "x" * (MAX_TEXT_CHARS + 1)}])
    return ["-m", "pytest", f"--model-path={small_model}", f"--traffic={traffic}"]


def traffic_parquet_with_a_50_mb_text(folder, small_model, small_golden):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["hi", "where is my order " * (HUGE // 18)]}), folder / "t.parquet")
    return ["-m", "pytest", f"--model-path={small_model}", f"--traffic={folder / 't.parquet'}"]


def weights_linked_to_dev_zero(folder, small_model, small_golden):
    model = linked_model(small_model, folder / "model", "model.safetensors")
    (model / "model.safetensors").symlink_to("/dev/zero")
    return ["-m", "pytest", f"--model-path={model}"]


def weights_with_a_50_mb_header(folder, small_model, small_golden):
    model = linked_model(small_model, folder / "model", "model.safetensors")
    header = json.dumps({"__metadata__": {"pad": "x" * HUGE},
                         "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (model / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
    return ["-m", "pytest", f"--model-path={model}"]


def config_with_500_layers(folder, small_model, small_golden):
    model = linked_model(small_model, folder / "model", "config.json")
    config = json.loads((small_model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "n_layers": 500}))
    return ["-m", "pytest", f"--model-path={model}"]


def slices_discover_with_a_50_mb_text(folder, small_model, small_golden):
    golden_with_a_50_mb_text(folder, small_model, small_golden)
    return ["-m", "pytest_mangaassist", "slices", "discover", f"--model={small_model}",
            f"--data={folder / 'golden.jsonl'}"]


USAGE_ERROR, INPUT_ERROR = 4, 2
CASES = [
    (golden_with_a_50_mb_text, USAGE_ERROR,
     ["golden.jsonl, line {line} is longer than 1,048,576 bytes", "refused without reading the rest",
      "at most 100,000 characters"]),
    (golden_text_over_the_character_limit, USAGE_ERROR,
     ['golden.jsonl, line {line}: "text" is 200,000 characters long; at most 100,000 are accepted', "shorten"]),
    (validation_line_over_the_byte_limit, USAGE_ERROR, ["valid.jsonl, line 2 is longer than 1,048,576 bytes"]),
    (traffic_jsonl_text_over_the_limit, USAGE_ERROR,
     ['t.jsonl, line 2: "text" is 100,001 characters long; at most 100,000']),
    (traffic_parquet_with_a_50_mb_text, USAGE_ERROR,
     ['t.parquet, row 2: "text" is 49,999,986 characters long; at most 100,000']),
    (weights_linked_to_dev_zero, USAGE_ERROR,
     ["model.safetensors is a character device (a link to /dev/zero), not a regular file"]),
    (weights_with_a_50_mb_header, USAGE_ERROR,
     ["declares a header of 50,000,090 bytes", "corrupt or not a model's weights"]),
    (config_with_500_layers, USAGE_ERROR,
     ["config.json has n_layers = 500, but model.safetensors holds 2 layer(s) (distilbert.transformer.layer.0-1)",
      "save_pretrained"]),
    (slices_discover_with_a_50_mb_text, INPUT_ERROR, ["--data:", "line {line} is longer than 1,048,576 bytes"]),
]


@pytest.mark.parametrize("setup, code, phrases", CASES, ids=[setup.__name__ for setup, _, _ in CASES])
def test_hostile_input_is_refused_in_bounded_memory(tmp_path, small_model, small_golden, setup, code, phrases):
    (tmp_path / "test_inputs.py").write_text(USES_INPUTS)
    result, peak = run_measured(tmp_path, *map(str, setup(tmp_path, small_model, small_golden)))
    out = result.stdout + result.stderr
    assert result.returncode == code, out
    assert "fix:" in out, out
    appended = len(small_golden.read_text().splitlines()) + 1  # the line a golden case appends
    for phrase in phrases:
        assert phrase.format(line=appended) in out, out
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    print(f"{setup.__name__}: peak {peak:.0f} MiB")  # the figures of docs/trust.md (pytest -s)
    assert peak < PEAK_LIMIT_MIB, f"peak {peak:.0f} MiB"


# -- control characters never reach the terminal or report.html raw -------------------------------------------

SLICE_FIGURES = """
from pytest_mangaassist import assert_no_regression


def figure(golden_set, i):
    name = golden_set.slice_names[i]
    assert_no_regression(f"share {name}", 0.5, max_regression=0.1, snapshot={f"share {name}": 0.9})


def test_first_slice(golden_set):
    figure(golden_set, 0)


def test_second_slice(golden_set):
    figure(golden_set, 1)
"""
HOSTILE_SLICES = ("\x1b[31mred\x1b[0m", "ctl\x01name\u202eevil")


def test_slice_names_are_escaped_in_the_terminal_and_report(tmp_path, small_golden):
    records = [json.loads(line) for line in small_golden.read_text().splitlines()]
    for i, record in enumerate(records):
        record.pop("slice", None)
        if i < 2:
            record["slice"] = HOSTILE_SLICES[i]
    golden = jsonl(tmp_path / "golden.jsonl", records)
    (tmp_path / "test_figures.py").write_text(SLICE_FIGURES)
    result = run_pytest(tmp_path, f"--golden-set={golden}", f"--mangaassist-report={tmp_path / 'report'}", "-p",
                        "no:randomly")
    out = result.stdout + result.stderr
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert result.returncode == 1, out  # both figures regressed: 0.5 against 0.9
    assert "Traceback" not in out
    for text in (out, page):
        assert not any(c in text for c in "\x1b\x01\u202e"), repr(text)
        assert "share \\x1b[31mred\\x1b[0m" in text and "ctl\\x01name\\u202eevil" in text


def test_display_escapes_what_a_terminal_acts_on_and_keeps_the_rest():
    assert display("\x1b[2J\x01\x9b\u202e\u2028\ud800") == "\\x1b[2J\\x01\\x9b\\u202e\\u2028\\ud800"
    assert display("a\nb\tc") == "a\\nb\\tc" and display("a\nb", keep_newlines=True) == "a\nb"
    kept = "日本\u3000語 👨\u200d👩 café"  # ideographic space, a zero-width joiner in an emoji: shown as they are
    assert display(kept) == kept
    assert display(display("\x1b")) == display("\x1b")
    assert str(MangaAssistInputError("slice \x1b[31m\nnext", "fix \x01")) == "slice \\x1b[31m\nnext\n  fix: fix \\x01"


# -- the readers' bounds, in-process --------------------------------------------------------------------------

def test_bounded_lines_refuses_a_long_line_without_reading_it(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_bytes(b"short\n" + b"x" * 5_000_000 + b"\nafter\n")
    with open(path, "rb") as fh:
        lines = bounded_lines(fh, path, max_bytes=1000, fix="Shorten it.")
        assert next(lines) == (1, b"short\n")
        with pytest.raises(MangaAssistInputError, match=r"g.jsonl, line 2 is longer than 1,000 bytes"):
            next(lines)
        assert fh.tell() <= 6 + 1001
    with open(path, "rb") as fh:  # a line of exactly the bound passes
        assert [n for n, _ in bounded_lines(fh, path, max_bytes=5_000_000, fix="")] == [1, 2, 3]


def test_not_a_file_names_what_the_path_is(tmp_path):
    (tmp_path / "regular").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "zero").symlink_to("/dev/zero")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    assert not_a_file(tmp_path / "regular") is None
    assert not_a_file(tmp_path / "fifo") == "is a FIFO (named pipe), not a regular file"
    assert not_a_file(tmp_path / "zero") == "is a character device (a link to /dev/zero), not a regular file"
    assert not_a_file(tmp_path / "dangling") == f"is a link to {tmp_path / 'gone'}, which does not exist"
    assert not_a_file(tmp_path) == "is a folder, not a file"
    assert not_a_file(tmp_path / "missing") == "does not exist"


def test_a_fifo_golden_set_or_traffic_shard_is_refused_without_opening_it(tmp_path):
    os.mkfifo(tmp_path / "golden.jsonl")  # opening it would wait for a writer forever
    with pytest.raises(MangaAssistInputError, match="golden.jsonl is a FIFO"):
        load_golden_set(tmp_path / "golden.jsonl")
    shards = tmp_path / "traffic"
    shards.mkdir()
    jsonl(shards / "a.jsonl", [{"text": "hi"}])
    os.mkfifo(shards / "b.jsonl")
    with pytest.raises(MangaAssistInputError, match=r"the shard .*b.jsonl is a FIFO"):
        load_traffic(shards)


def test_count_truncated_tokenizes_a_bounded_prefix(small_model):
    from pytest_mangaassist import IntentModel
    from pytest_mangaassist.loading.model import COUNT_CHARS_PER_TOKEN

    model = IntentModel.load(small_model)
    seen = []
    tokenizer = model.tokenizer

    def recording(texts, **kwargs):
        seen.extend(len(t) for t in texts)
        return tokenizer(texts, **kwargs)

    model._tokenizer = recording
    assert model.count_truncated(["hi there", "where is my order " * 1_000_000]) == 1
    assert max(seen) == COUNT_CHARS_PER_TOKEN * model.max_length


@pytest.mark.parametrize("key, value, phrase", [
    ("dim", 768, "dim = 768, but model.safetensors holds 384 (its tensor "
                 "distilbert.transformer.layer.0.output_layer_norm.weight is [384])"),
    ("hidden_dim", 1024, "hidden_dim = 1024, but model.safetensors holds 1536"),
    ("vocab_size", 10**9, "vocab_size = 1000000000, but model.safetensors holds 30522"),
    ("max_position_embeddings", 100_000, "max_position_embeddings = 100000, but model.safetensors holds 512"),
])
def test_config_sizes_are_checked_against_the_weights_header(tmp_path, small_model, key, value, phrase):
    model = linked_model(small_model, tmp_path / "model", "config.json")
    config = json.loads((small_model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, key: value}))
    with pytest.raises(MangaAssistInputError, match="save_pretrained") as info:
        inspect_checkpoint(model)
    assert phrase in str(info.value)


def sharded(small_model: Path, folder: Path) -> Path:
    """The small model saved as two safetensors shards and an index, as save_pretrained shards a large model."""
    from safetensors.torch import load_file, save_file

    model = linked_model(small_model, folder, "model.safetensors")
    state = load_file(small_model / "model.safetensors")
    names = sorted(state)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in halves.items():
        save_file({k: state[k] for k in keys}, model / file, metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {k: file for file, keys in halves.items() for k in keys}}
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    return model


def test_a_sharded_checkpoint_is_checked_from_every_shard_header(tmp_path, small_model):
    model = sharded(small_model, tmp_path / "model")
    assert inspect_checkpoint(model).num_layers == 2
    config = json.loads((small_model / "config.json").read_text())
    (model / "config.json").unlink()
    (model / "config.json").write_text(json.dumps({**config, "n_layers": 500}))
    with pytest.raises(MangaAssistInputError, match=r"n_layers = 500, but model.safetensors.index.json holds 2 layer"):
        inspect_checkpoint(model)
    (model / "config.json").write_text(json.dumps(config))
    index = json.loads((model / "model.safetensors.index.json").read_text())
    first = next(iter(index["weight_map"]))
    for hostile, phrase in (("../outside.safetensors", "which is not a safetensors file in the checkpoint folder"),
                            ("model-00003-of-00002.safetensors", "model-00003-of-00002.safetensors does not exist")):
        broken = {**index, "weight_map": {**index["weight_map"], first: hostile}}
        (model / "model.safetensors.index.json").write_text(json.dumps(broken))
        with pytest.raises(MangaAssistInputError, match=phrase):
            inspect_checkpoint(model)


def test_json_files_that_are_devices_fifos_or_too_large_are_refused_unread(tmp_path, small_model, monkeypatch):
    from pytest_mangaassist.loading import jsonfile

    model = linked_model(small_model, tmp_path / "model", "config.json")
    (model / "config.json").symlink_to("/dev/zero")  # read whole, it would never end
    with pytest.raises(MangaAssistInputError, match=r"config.json is a character device \(a link to /dev/zero\)"):
        inspect_checkpoint(model)
    os.mkfifo(tmp_path / "fifo.json")
    with pytest.raises(MangaAssistInputError, match="fifo.json is a FIFO"):
        jsonfile.read_json(tmp_path / "fifo.json")
    monkeypatch.setattr(jsonfile, "MAX_JSON_BYTES", 10)
    (tmp_path / "big.json").write_text('{"a": "0123456789"}')
    with pytest.raises(MangaAssistInputError, match="big.json is larger than 10 bytes"):
        jsonfile.read_json(tmp_path / "big.json")
