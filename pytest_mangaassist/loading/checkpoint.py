"""Validate a Hugging Face checkpoint folder without importing torch.

Runs at configure time, so a wrong --model-path fails in a second with the fix, not minutes
later inside a fixture. Reads config.json, the tokenizer's vocabulary and configuration, the
safetensors header (or the pickle opcodes of a pytorch_model.bin) only, never the weights.

What it refuses besides a malformed folder: custom code (auto_map or trust_remote_code in config.json or
tokenizer_config.json), a tokenizer without its vocabulary or whose vocabulary does not cover the model's
embedding table, and a pickle weights file that torch.load(weights_only=True) would not accept.
"""

from __future__ import annotations

import io
import os
import pickletools
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .adapters import ArchitectureAdapter, adapter_for
from ..errors import MangaAssistInputError
from .files import not_a_file
from .jsonfile import read_json

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer_config.json")
TOKENIZER_EXTRA_FILES = ("special_tokens_map.json", "added_tokens.json", "merges.txt")
HEAD_WEIGHTS = ("classifier.weight", "classifier.out_proj.weight")
EMBEDDING_TABLES = ("embeddings.word_embeddings.weight", "embeddings.tok_embeddings.weight")  # ModernBERT: tok_
SINGLE_LABEL = ("Fine-tune a single-label classifier (num_labels >= 2, problem_type single_label_classification, "
                "one softmax over the labels) of a supported encoder; pytest-mangaassist's gates read the argmax "
                "intent and its probability.")
VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json")
# A tokenizer must know at least this share of the embedding table's rows. Real checkpoints pad the table
# by a few hundred rows at most (to a multiple of 8, 64 or 128) or reserve a few percent for future tokens;
# a tokenizer with far fewer tokens is another model's, or a stub that maps most words to [UNK].
MIN_VOCAB_COVERAGE = 0.9
RESAVE = "Re-save the checkpoint with save_pretrained()."
NO_CUSTOM_CODE = ("Save the model and tokenizer with a stock transformers class (DistilBERT, BERT, RoBERTa, "
                  "XLM-RoBERTa, ELECTRA, DeBERTa-v2, ALBERT, MPNet, ModernBERT and their tokenizers) and delete "
                  "auto_map / trust_remote_code from the JSON file.")


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    model_type: str
    labels: tuple[str, ...]
    weights_file: Path
    num_layers: int
    hidden_size: int

    @property
    def content_files(self) -> list[Path]:
        """The files whose bytes decide the model's outputs (weights, config, tokenizer)."""
        names = {self.weights_file.name, "config.json", *TOKENIZER_FILES, *TOKENIZER_EXTRA_FILES}
        files = [self.path / name for name in names if (self.path / name).is_file()]
        files += [p for p in self.path.glob("*.model") if p.is_file()]  # SentencePiece vocabularies
        if self.weights_file.name.endswith(".index.json"):  # a sharded checkpoint: the shards hold the weights
            files += self.path.glob("model-*.safetensors")
        return sorted(files)


def inspect_checkpoint(path: str | Path, option: str = "--model-path") -> CheckpointInfo:
    """The checkpoint's labels, architecture and files, checked without loading weights; every problem is a
    MangaAssistInputError naming the folder (a hostile file's unexpected types included)."""
    try:
        return _inspect(Path(path), option)
    except MangaAssistInputError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError, RecursionError) as exc:
        raise MangaAssistInputError(
            f"{option} {path}: a file of the checkpoint has content of an unexpected type or value "
            f"({type(exc).__name__}: {exc}).", "Re-save the checkpoint with save_pretrained().") from None


def _inspect(path: Path, option: str) -> CheckpointInfo:
    if not path.exists():
        raise MangaAssistInputError(f"{option} {path} does not exist.",
                                    f"Pass {option} the folder written by save_pretrained() (it holds config.json).")
    if not path.is_dir():
        raise MangaAssistInputError(f"{option} {path} is a file, not a checkpoint folder.",
                                    f"Pass {option} the folder that holds config.json and the weights, not one file.")
    config = _read_config(path, option)
    model_type = config.get("model_type", "<missing>")
    adapter = adapter_for(model_type, str(path))
    _refuse_unsupported_head(config, path)
    labels = _labels(config, path)
    weights = _weights_file(path, option)
    embedding_rows = None
    if weights.name.startswith("model.safetensors"):
        shapes = _check_safetensors(weights, len(labels))
        _check_config_fits_weights(config, adapter, shapes, weights)
        embedding_rows = next((shape[0] for key, shape in shapes.items()
                               if key.endswith(EMBEDDING_TABLES) and shape), None)
    if weights.name == "pytorch_model.bin":
        _check_pickle(weights)
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise MangaAssistInputError(f"The checkpoint {path} has no tokenizer files ({', '.join(TOKENIZER_FILES)}).",
                                    "Save the tokenizer next to the model: tokenizer.save_pretrained(folder).")
    _check_tokenizer(path, config, embedding_rows)
    sizes = {key: config.get(key) for key in (adapter.layers_key, adapter.hidden_key)}
    if not all(isinstance(v, int) and v > 0 for v in sizes.values()):
        raise MangaAssistInputError(f"{path}/config.json lacks valid sizes {sizes}.",
                                    "Re-save the checkpoint with save_pretrained().")
    return CheckpointInfo(path, model_type, labels, weights, sizes[adapter.layers_key], sizes[adapter.hidden_key])


def _refuse_unsupported_head(config: dict, path: Path) -> None:
    """Heads the gates cannot read, refused before any weight loads: they test one softmax over the labels,
    read at the first token (ModernBERT's mean pooling would need its own readout per layer)."""
    architectures = config.get("architectures") or []
    if architectures and not any(str(a).endswith("ForSequenceClassification") for a in architectures):
        raise MangaAssistInputError(
            f"{path}/config.json names the architecture {', '.join(map(str, architectures))}, not a "
            "*ForSequenceClassification model.", "Save the sequence-classification model (e.g. "
            "AutoModelForSequenceClassification.from_pretrained(...).save_pretrained(folder)), not the bare encoder.")
    problem = config.get("problem_type")
    if problem == "multi_label_classification":
        raise MangaAssistInputError(
            f"{path}/config.json has problem_type multi_label_classification: a sigmoid per label, several labels "
            "per message; the gates compare one predicted intent per message.", SINGLE_LABEL)
    if problem == "regression" or config.get("num_labels") == 1 or len(config.get("id2label") or {0: 0, 1: 1}) == 1:
        raise MangaAssistInputError(
            f"{path}/config.json describes a regression head (one output, problem_type {problem!r}); the gates "
            "test classifiers with one output row per label.", SINGLE_LABEL)
    if config.get("classifier_pooling", "cls") != "cls":
        raise MangaAssistInputError(
            f"{path}/config.json has classifier_pooling {config['classifier_pooling']!r}: the head averages every "
            "token, and the layer analyses (logit lens, patching, probes) read the [CLS] position only.",
            "Use a ModernBERT classifier fine-tuned with classifier_pooling='cls' (the default).")


def _read_config(path: Path, option: str) -> dict:
    config_file = path / "config.json"
    if not os.path.lexists(config_file):
        raise MangaAssistInputError(f"The folder {path} has no config.json, so it is not a Hugging Face checkpoint.",
                                    f"Pass {option} the folder written by model.save_pretrained(folder).")
    config = read_json(config_file, fix=RESAVE)
    if not isinstance(config, dict):
        raise MangaAssistInputError(f"{config_file} holds a JSON {type(config).__name__}, not an object.", RESAVE)
    _refuse_custom_code(config, config_file, "model")
    return config


def _refuse_custom_code(config: dict, file: Path, what: str) -> None:
    for key in ("auto_map", "trust_remote_code"):
        if key in config and config[key] not in (None, False, {}, []):
            raise MangaAssistInputError(
                f"{file} asks for custom {what} code ({key}); pytest-mangaassist never runs remote or custom code.",
                NO_CUSTOM_CODE)


def _check_tokenizer(path: Path, config: dict, embedding_rows: int | None = None) -> None:
    """The tokenizer transformers would load must be a stock one with a vocabulary that fits the model.

    Without a vocabulary file transformers builds a tokenizer of only the special tokens named in
    tokenizer_config.json and maps every word to [UNK], silently. "Covers the embedding table" means: no
    token id at or past the table's last row, which would index past it, and at least MIN_VOCAB_COVERAGE
    of its rows known to the tokenizer. The table's rows: the word-embedding tensor's in model.safetensors,
    else config.json's vocab_size.
    """
    tokenizer_config: dict = {}
    config_file = path / "tokenizer_config.json"
    if config_file.is_file():
        tokenizer_config = read_json(config_file, fix="Save the tokenizer again with tokenizer.save_pretrained(folder).")
        if not isinstance(tokenizer_config, dict):
            raise MangaAssistInputError(
                f"{config_file} holds a JSON {type(tokenizer_config).__name__}, not an object.",
                "Save the tokenizer again with tokenizer.save_pretrained(folder).")
        _refuse_custom_code(tokenizer_config, config_file, "tokenizer")
    vocabulary = _vocabulary(path, tokenizer_config)
    if vocabulary is None:
        raise MangaAssistInputError(
            f"The tokenizer in {path} has no vocabulary ({', '.join(VOCABULARY_FILES)}): transformers would build "
            "one of only the special tokens in tokenizer_config.json and map every word to [UNK].",
            "Save the tokenizer the model was trained with next to it: tokenizer.save_pretrained(folder) "
            "writes tokenizer.json (or vocab.txt).")
    source, ids = vocabulary
    rows, table = embedding_rows, "the word-embedding tensor"
    if rows is None:
        rows, table = config.get("vocab_size"), "config.json vocab_size"
        if not isinstance(rows, int) or isinstance(rows, bool) or rows <= 0:
            raise MangaAssistInputError(
                f"{path}/config.json has no valid vocab_size (got {rows!r}), so the tokenizer cannot be checked "
                "against the embedding table.", RESAVE)
    beyond = sorted(i for i in ids if i >= rows)
    if beyond:
        raise MangaAssistInputError(
            f"The tokenizer ({source}) has token ids up to {beyond[-1]} but the model's embedding table has "
            f"{rows} rows ({table}): {len(beyond)} token(s) would index past it.",
            "Use the tokenizer the model was trained with; after adding tokens, call "
            "model.resize_token_embeddings(len(tokenizer)) and save both again.")
    if len(ids) < MIN_VOCAB_COVERAGE * rows:
        raise MangaAssistInputError(
            f"The tokenizer ({source}) knows {len(ids)} tokens but the model's embedding table has {rows} rows "
            f"({table}): it covers {len(ids) / rows:.0%} of them, so it is not the model's "
            "tokenizer and would map most words to [UNK] or to the wrong rows.",
            "Save the tokenizer the model was trained with next to it: tokenizer.save_pretrained(folder).")


def _vocabulary(path: Path, tokenizer_config: dict) -> tuple[str, set[int]] | None:
    """(file it came from, every token id the tokenizer can emit) of the vocabulary transformers loads:
    tokenizer.json when present (the fast tokenizer), else vocab.txt / vocab.json; None without one."""
    fix = "Save the tokenizer again with tokenizer.save_pretrained(folder)."
    ids: set[int] = set()
    if (path / "tokenizer.json").is_file():
        source = path / "tokenizer.json"
        data = read_json(source, fix=fix)
        model = data.get("model") if isinstance(data, dict) else None
        vocab = model.get("vocab") if isinstance(model, dict) else None
        if isinstance(vocab, dict):
            ids.update(vocab.values())
        elif isinstance(vocab, list):  # Unigram: [[piece, score], ...], the id is the position
            ids.update(range(len(vocab)))
        else:
            raise MangaAssistInputError(f"{source} has no model.vocab, so it is not a tokenizers file.", fix)
        added = data.get("added_tokens") or []
        ids.update(token.get("id") for token in added if isinstance(token, dict))
    elif (path / "vocab.txt").is_file():
        source = path / "vocab.txt"
        lines = source.read_bytes().split(b"\n")
        if lines and not lines[-1].strip():
            lines.pop()
        ids.update(range(len(lines)))
    elif (path / "vocab.json").is_file():
        source = path / "vocab.json"
        vocab = read_json(source, fix=fix)
        if not isinstance(vocab, dict):
            raise MangaAssistInputError(f"{source} is not a JSON object of token -> id.", fix)
        if not (path / "merges.txt").is_file():
            raise MangaAssistInputError(f"{source} has no merges.txt beside it, so the BPE tokenizer cannot be built.",
                                        fix)
        ids.update(vocab.values())
    else:
        return None
    extra = path / "added_tokens.json"
    if extra.is_file():
        added = read_json(extra, fix=fix)
        if isinstance(added, dict):
            ids.update(added.values())
    decoder = tokenizer_config.get("added_tokens_decoder")
    if isinstance(decoder, dict):
        ids.update(int(key) for key in decoder if str(key).isdigit())
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
        raise MangaAssistInputError(f"{source} (or the added tokens) has token ids that are not integers >= 0.", fix)
    return source.name, ids


def _labels(config: dict, path: Path) -> tuple[str, ...]:
    raw = config.get("id2label")
    if not isinstance(raw, dict) or not raw:
        raise MangaAssistInputError(f"The checkpoint {path} has no id2label in config.json.",
                                    "Set model.config.id2label = {0: 'first_label', 1: 'second_label', ...} and save again.")
    try:
        by_id = {int(k): v for k, v in raw.items()}
    except ValueError:
        raise MangaAssistInputError(f"id2label in {path}/config.json has non-integer ids: {sorted(raw)}.",
                                    "Use ids 0..n-1 as keys.") from None
    if sorted(by_id) != list(range(len(by_id))):
        raise MangaAssistInputError(f"id2label in {path}/config.json has ids {sorted(by_id)}, not 0..{len(by_id) - 1}.",
                                    "Number the labels 0..n-1 in the order of the classifier's output rows.")
    labels = tuple(by_id[i] for i in range(len(by_id)))
    if not all(isinstance(label, str) and label for label in labels):
        raise MangaAssistInputError(f"id2label in {path}/config.json has labels that are not names: {list(labels)}.",
                                    "Map every id to its intent name, e.g. {\"0\": \"first_label\"}.")
    if len(set(labels)) != len(labels):
        raise MangaAssistInputError(f"id2label in {path}/config.json repeats a label: {list(labels)}.",
                                    "Give every output row its own intent name.")
    if all(re.fullmatch(r"LABEL_\d+", label) for label in labels):
        raise MangaAssistInputError(
            f"The checkpoint {path} has only the default label names ({labels[0]}, ...), so its outputs cannot be "
            "matched to intents.",
            "Set model.config.id2label to the intent names before save_pretrained().",
        )
    return labels


def _weights_file(path: Path, option: str) -> Path:
    for name in WEIGHT_FILES:
        candidate = path / name
        if os.path.lexists(candidate):  # present, as a file, a link (even a dangling one), a device or a FIFO
            problem = not_a_file(candidate)
            if problem:
                raise MangaAssistInputError(f"The weights file {candidate} {problem}.",
                                            "Replace it with the weights file itself, as save_pretrained() writes it.")
            return candidate
    raise MangaAssistInputError(f"The checkpoint {path} has no weights file ({', '.join(WEIGHT_FILES)}).",
                                f"Save the weights with save_pretrained(), or fix {option}.")


# What torch.load(weights_only=True) accepts in a state dict, as (module, name) of pickle globals.
SAFE_PICKLE_GLOBALS = {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor"),
                       ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
                       ("torch._utils", "_rebuild_parameter_with_state"), ("torch", "Size"), ("torch", "device")}
SAFE_TORCH_NAME = re.compile(r"[A-Za-z0-9]*Storage|u?int\d+|float\d+(_\w+)?|bfloat16|complex\d+|bool|half|double|long")
PICKLE_FIX = ("Convert the weights to safetensors (load them yourself in a trusted environment and call "
              "model.save_pretrained(folder), which writes model.safetensors), then delete pytorch_model.bin.")


def _check_pickle(weights: Path) -> None:
    """A pytorch_model.bin is a pickle, and a pickle can run any code when loaded. It is accepted only when it
    references nothing but what torch.load(weights_only=True) allows (tensors, storages, OrderedDict);
    transformers then loads it with weights_only=True. Checked from the opcodes, without unpickling."""
    try:
        if zipfile.is_zipfile(weights):
            with zipfile.ZipFile(weights) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                if len(names) != 1:
                    raise ValueError("no data.pkl in the archive")
                streams = [io.BytesIO(archive.read(names[0]))]
        else:  # the legacy format: magic number, protocol, system info, then the state dict
            with open(weights, "rb") as fh:
                head = io.BytesIO(fh.read())
            streams = [head] * 4
        for stream in streams:
            for module, name in _pickle_globals(stream):
                if (module, name) not in SAFE_PICKLE_GLOBALS and not (module == "torch" and
                                                                      SAFE_TORCH_NAME.fullmatch(name)):
                    raise MangaAssistInputError(
                        f"The weights file {weights} is a pickle that imports {module}.{name}: loading it could run "
                        "arbitrary code, and torch.load(weights_only=True) refuses it.", PICKLE_FIX)
    except MangaAssistInputError:
        raise
    except Exception as exc:  # zipfile, pickletools and the reads raise many types for one cause
        raise MangaAssistInputError(f"The weights file {weights} is not a readable torch.save() file ({exc}).",
                                    PICKLE_FIX) from None


def _pickle_globals(stream: io.BytesIO):
    """(module, name) of every global the pickle at the stream's position references; the stream is left
    after its STOP opcode."""
    recent: list = []
    for opcode, arg, _ in pickletools.genops(stream):
        if opcode.name in ("GLOBAL", "INST"):
            module, _, name = arg.partition(" ")
            yield module, name
        elif opcode.name == "STACK_GLOBAL":
            if len(recent) < 2 or not all(isinstance(x, str) for x in recent[-2:]):
                yield "<unknown>", "<computed name>"
            else:
                yield recent[-2], recent[-1]
        elif opcode.name in ("EXT1", "EXT2", "EXT4"):
            yield "<extension registry>", str(arg)
        if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
                           "BINSTRING", "STRING"):
            recent.append(arg)
        elif opcode.name not in ("MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT"):
            recent.append(None)
        if opcode.name == "STOP":
            return


def _check_safetensors(weights: Path, n_labels: int) -> dict[str, list[int]]:
    """Read the header only (of every shard, for a sharded checkpoint): the classification head must match
    id2label; returns every tensor's shape."""
    shapes: dict[str, list[int]] = {}
    for file in _safetensors_files(weights):
        shapes.update(_header_shapes(file))
    head = next((shapes[k] for k in shapes if k.endswith(HEAD_WEIGHTS)), None)
    if head is None:
        raise MangaAssistInputError(f"The weights file {weights} has no classification head ({' / '.join(HEAD_WEIGHTS)}).",
                                    "Save the sequence-classification model, not the bare encoder.")
    if head[0] != n_labels:
        raise MangaAssistInputError(
            f"The classifier in {weights} has {head[0]} output rows but config.json's id2label names {n_labels} labels.",
            "Make id2label list exactly one intent per classifier row, then save again.",
        )
    return shapes


# A safetensors header lists each tensor's name, dtype, shape and offsets in about 120 bytes: this checkpoint
# kind's headers are kilobytes (a 2-layer DistilBERT's 4.6 KB, a 24-layer BERT-large's about 50 KB). 8 MiB is
# 70,000 tensors, so a longer header is not a checkpoint's: it is refused from its 8-byte length, unread.
MAX_HEADER_BYTES = 8 << 20
CORRUPT_FIX = "Copy the checkpoint again or re-export it with save_pretrained()."


def _check_header_size(weights: Path) -> None:
    """The header length a safetensors file declares (its first 8 bytes, little-endian), checked before the
    safetensors library reads that many bytes (it accepts up to 100 MB)."""
    with open(weights, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8:
        raise MangaAssistInputError(f"The weights file {weights} is corrupt or truncated ({len(head)} bytes, shorter "
                                    "than a safetensors header's length field).", CORRUPT_FIX)
    declared = int.from_bytes(head, "little")
    if declared > MAX_HEADER_BYTES:
        raise MangaAssistInputError(
            f"The weights file {weights} declares a header of {declared:,} bytes; a checkpoint's header is a few "
            f"kilobytes and at most {MAX_HEADER_BYTES:,} bytes are read, so the file is corrupt or not a model's "
            "weights (it was not read further).", CORRUPT_FIX)


# config.json keys that size a tensor: (the end of the tensor's name, the dimension). transformers builds the
# model from config.json before it reads a weight, so a value the weights do not hold first allocates that
# many layers, rows or columns (n_layers: 500 beside 6 layers took 3.9 GB before the error). Checked where the
# tensor is present; the layer count and the hidden size come from the architecture adapter.
SIZED_BY = {
    "vocab_size": ("embeddings.word_embeddings.weight", 0),
    "max_position_embeddings": ("embeddings.position_embeddings.weight", 0),
    "type_vocab_size": ("embeddings.token_type_embeddings.weight", 0),
    "embedding_size": ("embeddings.word_embeddings.weight", 1),  # ALBERT, ELECTRA: embeddings narrower than layers
    "hidden_size": ("layer.0.output.LayerNorm.weight", 0),  # BERT, RoBERTa
    "dim": ("layer.0.output_layer_norm.weight", 0),  # DistilBERT
    "intermediate_size": ("layer.0.intermediate.dense.weight", 0),  # BERT, RoBERTa
    "hidden_dim": ("layer.0.ffn.lin1.weight", 0),  # DistilBERT
}


def _check_config_fits_weights(config: dict, adapter: ArchitectureAdapter, shapes: dict[str, list[int]],
                               weights: Path) -> None:
    """Every size in config.json that a tensor of the weights shows must be that tensor's: checked from the
    safetensors header, before any model is built."""
    fix = ("Use the config.json saved with these weights (save_pretrained() writes both), or fix the value to what "
           "the weights hold.")
    layers, prefix = _layer_indices(shapes)
    expected = config.get(adapter.layers_key)
    # checked where the weights number their layers; ALBERT's one shared layer serves every depth
    if layers and not adapter.spec.shared_layers and isinstance(expected, int) and expected != len(layers):
        raise MangaAssistInputError(
            f"{weights.parent}/config.json has {adapter.layers_key} = {expected}, but {weights.name} holds "
            f"{len(layers)} layer(s) ({prefix}{min(layers)}-{max(layers)}).", fix)
    for key, (suffix, dim) in SIZED_BY.items():
        value = config.get(key)
        name = next((name for name in shapes if name == suffix or name.endswith("." + suffix)), None)
        if name is None or value is None or len(shapes[name]) <= dim or value == shapes[name][dim]:
            continue
        raise MangaAssistInputError(
            f"{weights.parent}/config.json has {key} = {value!r}, but {weights.name} holds {shapes[name][dim]} "
            f"(its tensor {name} is {list(shapes[name])}).", fix)


LAYER_NAME = re.compile(r"(?:^|\.)layers?\.(\d+)\.")  # encoder.layer.3., transformer.layer.3., model.layers.3.


def _layer_indices(shapes: dict[str, list[int]]) -> tuple[set[int], str]:
    """The encoder layer numbers the weights hold, and the name before the number (for the message)."""
    found = [(name, match) for name in shapes for match in [LAYER_NAME.search(name)] if match]
    prefix = found[0][0][:found[0][1].start(1)] if found else ""
    return {int(match.group(1)) for _, match in found}, prefix


def _header_shapes(weights: Path) -> dict[str, list[int]]:
    """Every tensor's shape, from the header of one safetensors file (its size checked first)."""
    from safetensors import SafetensorError, safe_open

    _check_header_size(weights)
    try:
        with safe_open(str(weights), framework="numpy") as handle:
            return {key: handle.get_slice(key).get_shape() for key in handle.keys()}
    except (SafetensorError, OSError) as exc:
        raise MangaAssistInputError(f"The weights file {weights} is corrupt or truncated ({exc}).", CORRUPT_FIX) from None


def _safetensors_files(weights: Path) -> list[Path]:
    """model.safetensors itself, or the shards a model.safetensors.index.json maps tensors to: plain file names
    in the checkpoint folder, each a regular file (never a path out of the folder)."""
    if not weights.name.endswith(".index.json"):
        return [weights]
    index = read_json(weights, fix=RESAVE)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map or not all(isinstance(v, str) for v in weight_map.values()):
        raise MangaAssistInputError(f"{weights} has no weight_map of tensor names to shard files.", RESAVE)
    files = []
    for name in sorted(set(weight_map.values())):
        if name != Path(name).name or name in (".", "..") or not name.endswith(".safetensors"):
            raise MangaAssistInputError(f"{weights} maps tensors to {name!r}, which is not a safetensors file in the "
                                        "checkpoint folder.", RESAVE)
        problem = not_a_file(weights.parent / name)
        if problem:
            raise MangaAssistInputError(f"The weights shard {weights.parent / name} {problem}.", RESAVE)
        files.append(weights.parent / name)
    return files
