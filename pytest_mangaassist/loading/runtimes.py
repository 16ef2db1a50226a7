"""Runtimes that serve a model's logits: PyTorch eager, ONNX Runtime, a compiled TorchScript artifact.

All three answer the serving contract `logits(input_ids, attention_mask) -> (batch, labels)` on
numpy int64 arrays, and name their label order, so parity and latency treat them alike.
Loading an artifact validates it at the boundary: unreadable files and artifacts of a different
model raise MangaAssistInputError with the fix.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MangaAssistInputError
from .jsonfile import parse_json
from .export import HASH_KEY, LABELS_KEY, SERVING_META, torch_neuronx


MAX_CAUSE = 4000  # characters of a library's error message shown (they are rarely longer)


def cause(exc: BaseException) -> str:
    """'Type: the whole message' of a library's exception (torch and onnx put the cause after a line
    break, or spread it over several lines; the first line alone can be empty)."""
    message = "\n".join(line.rstrip() for line in str(exc).strip().splitlines() if line.strip())
    if len(message) > MAX_CAUSE:
        message = message[:MAX_CAUSE] + f" ... ({len(message) - MAX_CAUSE} more characters)"
    return f"{type(exc).__name__}: {message or repr(exc)}"


class TorchRuntime:
    """The model under test in PyTorch eager mode: the reference the other runtimes must match."""

    kind = "pytorch"

    def __init__(self, model, threads: int | None = None):
        self.model = model
        self.threads = threads
        self.labels = model.labels
        self.source = model.source

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        previous = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                out = self.model.hf_model(input_ids=torch.from_numpy(input_ids).to(self.model.device),
                                          attention_mask=torch.from_numpy(attention_mask).to(self.model.device))
            return out.logits.float().cpu().numpy()
        finally:
            torch.set_num_threads(previous)

    def with_threads(self, threads: int) -> TorchRuntime:
        return TorchRuntime(self.model, threads)


@dataclass
class OnnxModel:
    """An ONNX graph and its onnxruntime session (CPU). `proto` is the onnx ModelProto."""

    path: Path
    proto: object
    labels: tuple[str, ...] | None  # from the metadata; None when the export did not store them
    content_hash: str | None
    exported_here: bool = False  # True when the plugin exported it (no --onnx-path)
    threads: int | None = None
    optimization: str = "all"  # onnxruntime graph optimisation level: off, basic, extended, all (its default)
    kind: str = "onnxruntime"
    _session: object = field(default=None, repr=False)
    _data: bytes | None = field(default=None, repr=False)  # the verified bytes the session is built from, if given

    @classmethod
    def load(cls, path: str | Path, exported_here: bool = False, data: bytes | None = None) -> OnnxModel:
        """The ONNX model at path; with data (the file's bytes, as the cache verified them), from those bytes."""
        import onnx

        path = Path(path)
        try:
            proto = onnx.load_model_from_string(data) if data is not None else onnx.load(str(path))
            onnx.checker.check_model(proto)
        except Exception as exc:  # onnx raises DecodeError, ValidationError, OSError... for one cause
            raise MangaAssistInputError(
                f"The ONNX file {path} could not be read as a valid ONNX model: {cause(exc)}",
                "Re-export the model (torch.onnx.export, or pytest_mangaassist.loading.export.export_onnx), or leave "
                "--onnx-path out and the plugin exports the model under test itself.") from None
        meta = {p.key: p.value for p in proto.metadata_props}
        labels = _labels_from(meta.get(LABELS_KEY), f"the metadata of {path}")
        return cls(path, proto, labels, meta.get(HASH_KEY), exported_here, _data=data)

    @property
    def source(self) -> str:
        return str(self.path)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    @property
    def session(self):
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.graph_optimization_level = {
                "off": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[self.optimization]
            if self.threads:
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
            try:
                source = self._data if self._data is not None else str(self.path)
                self._session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime wraps every load failure in its own exception types
                raise MangaAssistInputError(
                    f"onnxruntime cannot load {self.path}: {cause(exc)}",
                    "Export with an opset onnxruntime supports (the plugin exports opset 18), or leave "
                    "--onnx-path out.") from None
        return self._session

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        # feed only the inputs the graph declares: an export that dropped its mask must still run,
        # so that parity shows what dropping it does
        feeds = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
        names = self.input_names
        unknown = [n for n in names if n not in feeds]
        if unknown:
            raise MangaAssistInputError(
                f"The ONNX graph {self.path} expects inputs {names}; the serving contract supplies input_ids and "
                f"attention_mask only (unknown: {unknown}).",
                "Export with exactly the inputs input_ids and attention_mask (token_type_ids folded in).")
        return np.asarray(self.session.run(["logits"] if self._has_logits() else None,
                                           {n: feeds[n] for n in names})[0], dtype=np.float32)

    def _has_logits(self) -> bool:
        return any(o.name == "logits" for o in self.session.get_outputs())

    def output_width(self, model) -> int | None:
        """Logits per example, as the graph declares them (None: not declared)."""
        for output in self.proto.graph.output:
            if output.name == "logits":
                dims = output.type.tensor_type.shape.dim
                return dims[-1].dim_value if dims and dims[-1].HasField("dim_value") else None
        return None

    def with_threads(self, threads: int) -> OnnxModel:
        return OnnxModel(self.path, self.proto, self.labels, self.content_hash, self.exported_here, threads,
                         self.optimization, _data=self._data)

    def with_optimization(self, level: str) -> OnnxModel:
        return OnnxModel(self.path, self.proto, self.labels, self.content_hash, self.exported_here, self.threads,
                         level, _data=self._data)


@dataclass
class ServingArtifact:
    """A compiled TorchScript module (torch.jit or torch_neuronx) with its stored metadata."""

    path: Path
    module: object
    labels: tuple[str, ...] | None
    content_hash: str | None
    compiler: str | None
    static_shape: tuple[int, int] | None  # (batch, sequence) the artifact was compiled for, if fixed
    compiled_here: bool = False
    threads: int | None = None
    kind: str = "serving"

    @classmethod
    def load(cls, path: str | Path, compiled_here: bool = False, data: bytes | None = None) -> ServingArtifact:
        """The TorchScript module at path; with data (the file's bytes, as the cache verified them), from
        those bytes, so what runs is exactly what was verified."""
        import torch

        torch_neuronx()  # registers the Neuron ops a neuron-compiled module refers to
        path = Path(path)
        extra = {SERVING_META: ""}
        try:
            with warnings.catch_warnings():  # deprecated in favour of torch.export; still what Neuron emits
                warnings.simplefilter("ignore", DeprecationWarning)
                source = io.BytesIO(data) if data is not None else str(path)
                module = torch.jit.load(source, map_location="cpu", _extra_files=extra)
        except Exception as exc:  # torch raises RuntimeError / zip errors for one cause: not TorchScript
            raise MangaAssistInputError(
                f"The serving artifact {path} could not be loaded as a TorchScript module: {cause(exc)}",
                "Pass --serving-artifact the file written by torch.jit.save (torch_neuronx.trace output is saved "
                "that way), or leave it out and the plugin compiles the model under test with torch.jit.trace.") from None
        meta = _serving_metadata(extra[SERVING_META], path)
        labels = _labels_from(json.dumps(meta["labels"]) if "labels" in meta else None, f"the metadata of {path}")
        shape = tuple(meta["static_shape"]) if meta.get("static_shape") else None
        return cls(path, module.eval(), labels, meta.get("content_hash"), meta.get("compiler"), shape, compiled_here)

    @property
    def source(self) -> str:
        return str(self.path)

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        rows = input_ids.shape[0]
        if self.static_shape is not None:  # a fixed-shape artifact gets padded inputs, as a server would send
            input_ids, attention_mask = _pad_to(input_ids, attention_mask, self.static_shape)
        previous = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                out = self.module(torch.from_numpy(input_ids), torch.from_numpy(attention_mask))
        finally:
            torch.set_num_threads(previous)
        out = out[0] if isinstance(out, (tuple, list)) else out
        return out.float().numpy()[:rows]

    def output_width(self, model) -> int | None:
        """Logits per example of a one-message call (None: the artifact cannot run it; parity will say why)."""
        try:
            return self.logits(*tokenize(model, ["hello"])).shape[-1]
        except Exception:  # a broken artifact is the parity gate's finding, not a loading error
            return None

    def with_threads(self, threads: int) -> ServingArtifact:
        return ServingArtifact(self.path, self.module, self.labels, self.content_hash, self.compiler,
                               self.static_shape, self.compiled_here, threads)


def _pad_to(input_ids: np.ndarray, attention_mask: np.ndarray, shape: tuple[int, int]):
    rows, length = input_ids.shape
    if rows > shape[0] or length > shape[1]:
        raise MangaAssistInputError(
            f"The serving artifact was compiled for inputs of shape {shape}; got {input_ids.shape}.",
            "Call it with at most that batch size and sequence length, or compile it for the shape you serve.")
    ids = np.zeros(shape, dtype=np.int64)
    mask = np.zeros(shape, dtype=np.int64)
    ids[:rows, :length], mask[:rows, :length] = input_ids, attention_mask
    return ids, mask


def _serving_metadata(raw, path) -> dict:
    """The JSON the plugin stores beside a compiled module: an object whose static_shape, when present, is a
    list of whole numbers. Anything else is refused with the file named."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else (raw or "")
    meta = parse_json(text or "{}", f"the metadata of {path}",
                      fix="Re-compile the artifact, or leave --serving-artifact out and the plugin compiles one.")
    shape = meta.get("static_shape") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or (shape is not None and not (
            isinstance(shape, list) and all(isinstance(n, int) and not isinstance(n, bool) for n in shape))):
        raise MangaAssistInputError(f"The metadata of {path} is not a JSON object with a list of whole numbers as "
                                    f"static_shape: {text[:80]!r}.",
                                    "Re-compile the artifact, or leave --serving-artifact out and the plugin "
                                    "compiles one.")
    return meta


def _labels_from(raw: str | None, where: str) -> tuple[str, ...] | None:
    if raw is None:
        return None
    try:
        labels = parse_json(raw, where)
    except MangaAssistInputError:
        labels = None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise MangaAssistInputError(f"The label map in {where} is not a JSON list of label names: {raw[:80]!r}.",
                                    "Store the labels as a JSON list in id order, e.g. '[\"label_0\", \"label_1\", ...]'.")
    return tuple(labels)


def tokenize(model, texts: list[str], pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The model's tokenizer as a server runs it: int64 input_ids and attention_mask, padded to the
    longest text, or to pad_to tokens (extra padding is how a server batches short with long)."""
    padding = "max_length" if pad_to else True
    batch = model.tokenizer(list(texts), padding=padding, max_length=pad_to or model.max_length, truncation=True,
                            return_tensors="np")
    return batch["input_ids"].astype(np.int64), batch["attention_mask"].astype(np.int64)


def as_runtime(runtime):
    """An IntentModel is served by PyTorch eager; every other runtime is used as it is."""
    from .model import IntentModel

    return TorchRuntime(runtime) if isinstance(runtime, IntentModel) else runtime


def check_artifact_matches(artifact, model, option: str) -> None:
    """Refuse an artifact that is evidently of another model: different label set or output width."""
    if artifact.labels is not None and sorted(artifact.labels) != sorted(model.labels):
        raise MangaAssistInputError(
            f"{artifact.source} was exported from a model with labels {list(artifact.labels)}; the model under "
            f"test ({model.source}) has {list(model.labels)}. It is an artifact of a different model.",
            f"Pass {option} the artifact exported from {model.source}, or leave {option} out and the plugin "
            f"builds it from the model under test.")
    width = artifact.output_width(model)
    if width is not None and width != len(model.labels):
        raise MangaAssistInputError(
            f"{artifact.source} outputs {width} logits; the model under test has {len(model.labels)} labels. "
            f"It is an artifact of a different model.",
            f"Pass {option} the artifact exported from {model.source}, or leave {option} out.")
