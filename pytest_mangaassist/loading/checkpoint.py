"""Validate a Hugging Face checkpoint folder without importing torch.

Runs at configure time, so a wrong --model-path fails in a second with the fix, not minutes
later inside a fixture. Reads config.json and the safetensors header only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .adapters import adapter_for
from ..errors import MangaAssistInputError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer_config.json")
HEAD_WEIGHTS = ("classifier.weight", "classifier.out_proj.weight")


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
        names = {self.weights_file.name, "config.json", *TOKENIZER_FILES, "special_tokens_map.json"}
        files = [self.path / name for name in names if (self.path / name).is_file()]
        if self.weights_file.name.endswith(".index.json"):  # a sharded checkpoint: the shards hold the weights
            files += self.path.glob("model-*.safetensors")
        return sorted(files)


def inspect_checkpoint(path: str | Path, option: str = "--model-path") -> CheckpointInfo:
    path = Path(path)
    if not path.exists():
        raise MangaAssistInputError(f"{option} {path} does not exist.",
                                    f"Pass {option} the folder written by save_pretrained() (it holds config.json).")
    if not path.is_dir():
        raise MangaAssistInputError(f"{option} {path} is a file, not a checkpoint folder.",
                                    f"Pass {option} the folder that holds config.json and the weights, not one file.")
    config = _read_config(path, option)
    model_type = config.get("model_type", "<missing>")
    adapter = adapter_for(model_type, str(path))
    labels = _labels(config, path)
    weights = _weights_file(path, option)
    if weights.suffix == ".safetensors":
        _check_safetensors(weights, len(labels))
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise MangaAssistInputError(f"The checkpoint {path} has no tokenizer files ({', '.join(TOKENIZER_FILES)}).",
                                    "Save the tokenizer next to the model: tokenizer.save_pretrained(folder).")
    sizes = {key: config.get(key) for key in (adapter.layers_key, adapter.hidden_key)}
    if not all(isinstance(v, int) and v > 0 for v in sizes.values()):
        raise MangaAssistInputError(f"{path}/config.json lacks valid sizes {sizes}.",
                                    "Re-save the checkpoint with save_pretrained().")
    return CheckpointInfo(path, model_type, labels, weights, sizes[adapter.layers_key], sizes[adapter.hidden_key])


def _read_config(path: Path, option: str) -> dict:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise MangaAssistInputError(f"The folder {path} has no config.json, so it is not a Hugging Face checkpoint.",
                                    f"Pass {option} the folder written by model.save_pretrained(folder).")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MangaAssistInputError(f"{config_file} is not valid JSON ({exc}).",
                                    "Re-save the checkpoint with save_pretrained().") from None
    if not isinstance(config, dict):
        raise MangaAssistInputError(f"{config_file} holds a JSON {type(config).__name__}, not an object.",
                                    "Re-save the checkpoint with save_pretrained().")
    if "auto_map" in config:
        raise MangaAssistInputError(
            f"{config_file} asks for custom model code (auto_map); pytest-mangaassist never runs remote or custom code.",
            "Save the model with a stock transformers architecture (DistilBERT, BERT, RoBERTa).",
        )
    return config


def _labels(config: dict, path: Path) -> tuple[str, ...]:
    raw = config.get("id2label")
    if not isinstance(raw, dict) or not raw:
        raise MangaAssistInputError(f"The checkpoint {path} has no id2label in config.json.",
                                    "Set model.config.id2label = {0: 'product_discovery', ...} and save again.")
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
                                    "Map every id to its intent name, e.g. {\"0\": \"product_discovery\"}.")
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
        if (path / name).is_file():
            return path / name
    raise MangaAssistInputError(f"The checkpoint {path} has no weights file ({', '.join(WEIGHT_FILES)}).",
                                f"Save the weights with save_pretrained(), or fix {option}.")


def _check_safetensors(weights: Path, n_labels: int) -> None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="numpy") as handle:
            shapes = {key: handle.get_slice(key).get_shape() for key in handle.keys()}
    except (SafetensorError, OSError) as exc:
        raise MangaAssistInputError(
            f"The weights file {weights} is corrupt or truncated ({exc}).",
            "Copy the checkpoint again or re-export it with save_pretrained().",
        ) from None
    head = next((shapes[k] for k in shapes if k.endswith(HEAD_WEIGHTS)), None)
    if head is None:
        raise MangaAssistInputError(f"The weights file {weights} has no classification head ({' / '.join(HEAD_WEIGHTS)}).",
                                    "Save the sequence-classification model, not the bare encoder.")
    if head[0] != n_labels:
        raise MangaAssistInputError(
            f"The classifier in {weights} has {head[0]} output rows but config.json's id2label names {n_labels} labels.",
            "Make id2label list exactly one intent per classifier row, then save again.",
        )
