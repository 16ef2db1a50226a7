"""IntentModel: a sequence-classification checkpoint, its tokenizer, labels and architecture adapter.

Loads only local files (never the hub), only safetensors or weights-only pickles, never remote
code. Forward passes are batched over length-sorted buckets, so short messages are not padded
to the longest message of the whole set.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .adapters import ArchitectureAdapter, adapter_for
from .checkpoint import CheckpointInfo, inspect_checkpoint
from ..errors import MangaAssistInputError
from .progress import progress
from .recording import record

DEFAULT_MAX_LENGTH = 128
# Counting the texts a model cuts needs no more of a text than this many characters per token of max_length:
# natural language averages 1 (Japanese, Chinese) to 5 (English) characters a token, so a text's first
# 32 x max_length characters hold more than max_length tokens unless its tokens average more than 32
# characters (whitespace runs, or words longer than 100 characters, each of which WordPiece reads as one [UNK]:
# such a prefix stays [UNK]s). A count never tokenizes more than the model can read, however long the text.
COUNT_CHARS_PER_TOKEN = 32


def counting_prefix(text: str, max_length: int) -> str:
    """The part of text that decides whether it has more than max_length tokens (see COUNT_CHARS_PER_TOKEN)."""
    return text[:COUNT_CHARS_PER_TOKEN * max_length]


def quiet_transformers() -> None:
    """No per-file progress bars: a test run's output is for gate results."""
    from transformers.utils import logging

    logging.disable_progress_bar()


@dataclass(frozen=True)
class ForwardResult:
    """Outputs in the order of the input texts.

    hidden_states[i] is (layers + 1, tokens_i, hidden) for text i (embeddings first);
    attentions[i] is (layers, heads, tokens_i, tokens_i); both only when requested.
    """

    logits: np.ndarray
    cls_states: np.ndarray | None = None
    hidden_states: list[np.ndarray] | None = None
    attentions: list[np.ndarray] | None = None

    @property
    def probabilities(self) -> np.ndarray:
        shifted = self.logits - self.logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted.astype(np.float64))
        return exp / exp.sum(axis=1, keepdims=True)


def count_truncated(tokenizer, texts, max_length: int) -> int:
    """How many texts the tokenizer turns into more than max_length tokens (special tokens included):
    the model sees only their first max_length tokens. Tokenizes each text's counting_prefix only."""
    texts = [counting_prefix(text, max_length) for text in texts]
    if not texts:
        return 0
    ids = tokenizer(texts, truncation=False, add_special_tokens=True, verbose=False)["input_ids"]
    return sum(len(row) > max_length for row in ids)


class IntentModel:
    """A classifier with its tokenizer and labels.

    Built from memory (IntentModel(hf_model, tokenizer)) or from a checkpoint folder
    (IntentModel.load): then torch and the weights load on first use, so a run whose analyses all
    come from the disk cache never imports torch. Labels, layer count and the content hash come
    from the validated files.
    """

    def __init__(self, hf_model, tokenizer, source: str = "<memory>", device: str = "cpu",
                 max_length: int = DEFAULT_MAX_LENGTH, cache_dir: Path | None = None,
                 checkpoint: CheckpointInfo | None = None):
        self._hf_model = None if hf_model is None else hf_model.to(device).eval()
        self._tokenizer = tokenizer
        self._checkpoint = checkpoint  # set when the weights load lazily from this folder
        self.source = source
        self.device = device
        self.max_length = max_length
        self.cache_dir = cache_dir  # where activation sweeps persist between runs (None: memory only)
        if checkpoint is not None:
            model_type, labels = checkpoint.model_type, checkpoint.labels
        else:
            config = hf_model.config
            model_type, labels = config.model_type, tuple(config.id2label[i] for i in range(config.num_labels))
        self.adapter: ArchitectureAdapter = adapter_for(model_type, source)
        self.labels: tuple[str, ...] = tuple(labels)
        self.label2id = {label: i for i, label in enumerate(self.labels)}
        self._content_hash: str | None = None
        self._memo: dict = {}

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", option: str = "--model-path",
             cache_dir: Path | None = None) -> IntentModel:
        """Validate the folder now; load the weights when first needed."""
        return cls.from_checkpoint(inspect_checkpoint(path, option), device, cache_dir)

    @classmethod
    def from_checkpoint(cls, info: CheckpointInfo, device: str = "cpu", cache_dir: Path | None = None) -> IntentModel:
        """A model of a folder that inspect_checkpoint has already validated (the plugin did, at configure)."""
        return cls(None, None, source=str(info.path), device=device, cache_dir=cache_dir, checkpoint=info)

    def _load_weights(self) -> None:
        info = self._checkpoint
        quiet_transformers()
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        fix = ("Check that the weights match config.json (same architecture and sizes) and that the files are "
               "complete; re-save with save_pretrained() if in doubt.")
        try:
            # safetensors when the folder has them; a pytorch_model.bin only with transformers' weights_only=True load
            # (inspect_checkpoint has already refused a pickle that imports anything but tensors)
            hf_model, loading = AutoModelForSequenceClassification.from_pretrained(
                info.path, local_files_only=True, trust_remote_code=False,
                use_safetensors=info.weights_file.name.startswith("model.safetensors"), weights_only=True,
                attn_implementation="eager", output_loading_info=True,
            )
            tokenizer = self._load_tokenizer() if self._tokenizer is None else self._tokenizer
        except MangaAssistInputError:
            raise
        except Exception as exc:  # transformers raises many types for one cause: an unloadable folder
            raise MangaAssistInputError(
                f"The checkpoint {info.path} could not be loaded: {type(exc).__name__}: {exc}", fix) from None
        # transformers fills weights missing from the file with random values and only logs it:
        # a model that is partly random must not be tested as if it were the trained one
        missing = sorted(loading["missing_keys"]) + sorted(str(k) for k in loading["mismatched_keys"])
        if missing:
            raise MangaAssistInputError(
                f"The weights in {info.weights_file} lack {len(missing)} tensor(s) the {info.model_type} model "
                f"needs, e.g. {', '.join(missing[:4])}; loading would leave them random.", fix)
        self._hf_model, self._tokenizer = hf_model.to(self.device).eval(), tokenizer

    @property
    def hf_model(self):
        if self._hf_model is None:
            import torch

            # the first use may come inside torch.inference_mode() (a forward sweep): weights and buffers made
            # there would be inference tensors, which a later gradient pass (IG, conductance) cannot use
            with torch.inference_mode(False):
                self._load_weights()
        return self._hf_model

    def _load_tokenizer(self):
        """The checkpoint's tokenizer alone (no weights): local files only, never custom code."""
        quiet_transformers()
        from transformers import AutoTokenizer

        info = self._checkpoint
        try:
            return AutoTokenizer.from_pretrained(info.path, local_files_only=True, trust_remote_code=False)
        except Exception as exc:  # transformers raises many types for one cause: an unloadable tokenizer
            raise MangaAssistInputError(
                f"The tokenizer of {info.path} could not be loaded: {type(exc).__name__}: {exc}",
                "Save the tokenizer the model was trained with next to it: tokenizer.save_pretrained(folder).",
            ) from None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = self._load_tokenizer()  # the weights load only when a forward pass needs them
        return self._tokenizer

    def count_truncated(self, texts) -> int:
        """How many of texts have more tokens (special tokens included) than max_length, so that every
        forward pass cuts them. Tokenizes only: loads the tokenizer, never the weights."""
        return count_truncated(self.tokenizer, texts, self.max_length)

    # -- structure -------------------------------------------------------------------------
    @property
    def embeddings(self):
        return self.adapter.embeddings(self.hf_model)

    @property
    def layers(self) -> list:
        return self.adapter.layers(self.hf_model)

    @property
    def num_layers(self) -> int:
        if self._checkpoint is not None:
            return self._checkpoint.num_layers
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        if self._checkpoint is not None:
            return self._checkpoint.hidden_size
        return self.hf_model.config.hidden_size

    @property
    def content_hash(self) -> str:
        """The key of on-disk caches: hash of the checkpoint's files, or of an in-memory model's
        parameters, buffers and vocabulary."""
        if self._content_hash is None:
            digest = hashlib.sha256()
            if self._checkpoint is not None:
                for file in self._checkpoint.content_files:
                    digest.update(file.name.encode())
                    with open(file, "rb") as fh:
                        for block in iter(lambda: fh.read(1 << 22), b""):
                            digest.update(block)
            else:
                for name, tensor in sorted(self.hf_model.state_dict().items()):
                    digest.update(name.encode())
                    digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
                digest.update(json.dumps(self.tokenizer.get_vocab(), sort_keys=True).encode())
            self._content_hash = digest.hexdigest()[:16]
        return self._content_hash

    # -- computation -----------------------------------------------------------------------
    def encode(self, texts: list[str]) -> dict:
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt").to(self.device)

    def forward(self, texts: list[str], batch_size: int = 64, cls_states: bool = False,
                hidden_states: bool = False, attentions: bool = False) -> ForwardResult:
        """One no-grad sweep over texts, batched by similar length; results in input order."""
        import torch

        texts = list(texts)
        lengths = [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]]
        order = np.argsort(lengths, kind="stable")
        logits = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        cls = np.empty((len(texts), self.num_layers + 1, self.hidden_size), dtype=np.float32) if cls_states else None
        tokens: list = [None] * len(texts) if hidden_states else None
        attn: list = [None] * len(texts) if attentions else None
        want_states = cls_states or hidden_states
        with torch.inference_mode(), progress(f"forward pass, {Path(self.source).name}", len(texts)) as shown:
            for start in range(0, len(texts), batch_size):
                idx = order[start:start + batch_size]
                batch = self.encode([texts[i] for i in idx])
                out = record(self, batch, hidden_states=want_states, attentions=attentions)
                logits[idx] = out.logits.float().cpu().numpy()
                shown.tick(len(idx))
                if cls_states:  # copy out position 0 only, not every token's state
                    cls[idx] = torch.stack([h[:, 0] for h in out.hidden_states], dim=1).float().cpu().numpy()
                if hidden_states:
                    stacked = torch.stack(out.hidden_states, dim=1).float().cpu().numpy()  # (b, L+1, t, d)
                if hidden_states or attentions:
                    mask_lengths = batch["attention_mask"].sum(dim=1).tolist()
                    att = torch.stack(out.attentions, dim=1).float().cpu().numpy() if attentions else None
                    for row, i in enumerate(idx):
                        n = mask_lengths[row]
                        if hidden_states:
                            tokens[i] = stacked[row, :, :n, :]
                        if attentions:
                            attn[i] = att[row, :, :, :n, :n]
        return ForwardResult(logits, cls, tokens, attn)

    def memo(self, key: tuple, compute):
        """Compute once per model instance (session-scoped fixtures make that once per session)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def predict(self, texts: list[str]) -> list[str]:
        return [self.labels[i] for i in self.forward(texts).logits.argmax(axis=1)]

    def __repr__(self) -> str:
        return f"IntentModel({self.source!r}, {self.adapter.family}, {self.num_layers} layers, {len(self.labels)} labels)"
