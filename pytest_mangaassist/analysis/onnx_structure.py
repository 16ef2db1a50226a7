"""Does an ONNX graph keep the serving contract of the model it claims to be?

Read with the onnx library (graph, initializers, metadata; no protobuf parsing by hand), each
property a named check with what was expected and what the graph holds:
  - input_ids and attention_mask are inputs, logits the output;
  - batch and sequence axes are symbolic, no constant reshape target pins a sequence length, and the
    graph runs at shapes the export never saw;
  - the number of attention blocks and the hidden size equal the model's;
  - the classifier maps hidden -> num_labels, with the rows of the model's head in id2label order;
  - attention_mask reaches every attention softmax (a mask the graph ignores is a dropped mask);
  - the label order the serving code will read equals the model's: id2label from the ONNX metadata
    when present, else from the Hugging Face config.json beside the file (as torch.onnx.export plus
    save_pretrained, or optimum, leave it); the table says which source it read, and the check fails
    only when there is neither, when a source disagrees with the model, or when the two disagree.
The graph walking (producers, consumers, reachability) is written here: onnx offers no graph
traversal API beyond the node list.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import format_table
from ..loading.export import LABELS_KEY

ATTENTION_OPS = {"Attention", "MultiHeadAttention", "GroupQueryAttention"}  # fused forms (onnxruntime)
SHAPE_OPS = {"Reshape", "Expand", "Tile", "ConstantOfShape"}
# shapes the structure probe runs: (batch, sequence), none of them the exporter's example shape
PROBE_SHAPES = ((1, 3), (3, 11), (2, 29))
PROBE_WORDS = ("hello", "there", "this", "is", "a", "short", "message")  # any words: the shapes are what count
LABEL_ORDER = "id2label (ONNX metadata, else config.json beside the file) equals the model's"


@dataclass(frozen=True)
class StructureCheck:
    name: str
    ok: bool
    expected: str
    found: str


@dataclass(frozen=True)
class OnnxStructure:
    checks: tuple[StructureCheck, ...]

    @property
    def failed(self) -> list[StructureCheck]:
        return [c for c in self.checks if not c.ok]

    def table(self) -> str:
        return format_table(("property", "", "expected", "found"),
                            [(c.name, "ok" if c.ok else "FAIL", c.expected, c.found) for c in self.checks])


class Graph:
    """Producers, consumers and constant values of one onnx GraphProto."""

    def __init__(self, proto):
        from onnx import numpy_helper

        self.graph = proto.graph
        self.inputs = {i.name: i for i in self.graph.input}
        self.outputs = {o.name: o for o in self.graph.output}
        self.constants = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        for node in self.graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.producer = {out: node for node in self.graph.node for out in node.output}
        self.consumers = defaultdict(list)
        for node in self.graph.node:
            for name in node.input:
                self.consumers[name].append(node)
        self.metadata = {p.key: p.value for p in proto.metadata_props}

    def constant(self, name: str) -> np.ndarray | None:
        """An initializer or Constant, looking through DequantizeLinear (int8 exports)."""
        if name in self.constants:
            return self.constants[name]
        node = self.producer.get(name)
        if node is not None and node.op_type == "DequantizeLinear" and node.input[0] in self.constants:
            return self.constants[node.input[0]]
        return None

    def reachable_from(self, name: str) -> set[int]:
        """ids of the nodes whose inputs depend on the tensor `name`."""
        seen, queue = set(), deque([name])
        while queue:
            for node in self.consumers.get(queue.popleft(), []):
                if id(node) not in seen:
                    seen.add(id(node))
                    queue.extend(node.output)
        return seen

    def attention_nodes(self) -> list:
        """Fused attention ops, or softmaxes whose output weights a MatMul (scores x values)."""
        found = [n for n in self.graph.node if n.op_type in ATTENTION_OPS]
        for node in self.graph.node:
            if node.op_type == "Softmax" and self._feeds_matmul(node.output[0]):
                found.append(node)
        return found

    def _feeds_matmul(self, name: str, depth: int = 3) -> bool:
        for node in self.consumers.get(name, []):
            if node.op_type == "MatMul":
                return True
            # Reshape: DeBERTa-v2 multiplies the probabilities with the values as a batched matmul of views
            if depth and node.op_type in ("Cast", "Dropout", "Identity", "Where", "Reshape"):
                if self._feeds_matmul(node.output[0], depth - 1):
                    return True
        return False


def _dims(value_info) -> list:
    return [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in value_info.type.tensor_type.shape.dim]


def inspect_onnx_structure(onnx_model, model, probe_words: Sequence[str] = PROBE_WORDS) -> OnnxStructure:
    """Every structural property of onnx_model (runtimes.OnnxModel) against model (IntentModel);
    probe_words fill the inputs of the shapes the export never saw."""
    graph = Graph(onnx_model.proto)
    path = getattr(onnx_model, "path", None)
    checks = [*_io_checks(graph), _symbolic_axes(graph), _pinned_constants(graph, model),
              _runs_at_new_shapes(onnx_model, model, probe_words), _attention_blocks(graph, model),
              _hidden_size(graph, model), *_head_checks(graph, model), _mask_reaches_attention(graph),
              _label_order(graph, model, Path(path).parent / "config.json" if path is not None else None)]
    return OnnxStructure(tuple(checks))


def _io_checks(graph: Graph) -> list[StructureCheck]:
    inputs, outputs = sorted(graph.inputs), sorted(graph.outputs)
    return [
        StructureCheck("input_ids is a graph input", "input_ids" in graph.inputs, "input_ids", ", ".join(inputs)),
        StructureCheck("attention_mask is a graph input", "attention_mask" in graph.inputs, "attention_mask",
                       ", ".join(inputs)),
        StructureCheck("logits is the graph output", "logits" in graph.outputs, "logits", ", ".join(outputs)),
    ]


def _symbolic_axes(graph: Graph) -> StructureCheck:
    shapes, fixed = [], []
    for name in ("input_ids", "attention_mask"):
        if name in graph.inputs:
            dims = _dims(graph.inputs[name])
            shapes.append(f"{name} {dims}")
            fixed += [f"{name} {axis} = {d}" for axis, d in zip(("batch", "sequence"), dims) if isinstance(d, int)]
    if "logits" in graph.outputs:
        dims = _dims(graph.outputs["logits"])
        shapes.append(f"logits {dims}")
        fixed += [f"logits batch = {dims[0]}"] if dims and isinstance(dims[0], int) else []
    return StructureCheck("batch and sequence axes are symbolic", not fixed, "symbolic names",
                          "; ".join(fixed) if fixed else "; ".join(shapes))


def _pinned_constants(graph: Graph, model) -> StructureCheck:
    """A reshape/expand target fully spelled out in constants, with a size that is none of the model's
    own dimensions, is a shape frozen at export time (the source analysis' optimisation-script bug)."""
    config = model.hf_model.config
    heads = config.num_attention_heads
    known = {0, -1, 1, heads, model.hidden_size // heads}
    known |= {d for array in graph.constants.values() if array.ndim >= 2 for d in array.shape}  # weight sizes
    pinned = []
    for node in graph.graph.node:
        if node.op_type not in SHAPE_OPS or (node.op_type != "ConstantOfShape" and node.input[0] in graph.constants):
            continue  # reshaping a weight at load time pins nothing
        target = graph.constant(node.input[0] if node.op_type == "ConstantOfShape" else node.input[1])
        if target is not None and target.ndim == 1 and len(target) >= 2:
            odd = [int(v) for v in target if int(v) not in known]
            if odd:
                pinned.append(f"{node.op_type} {node.name or node.output[0]} -> {target.tolist()}")
    return StructureCheck("no constant pins a sequence length", not pinned, "shape targets computed at run time",
                          "; ".join(pinned[:3]) if pinned else "none found")


def _runs_at_new_shapes(onnx_model, model, probe_words: Sequence[str]) -> StructureCheck:
    from ..loading.runtimes import tokenize

    words = [w for w in probe_words if w.strip()] or list(PROBE_WORDS)
    failures = []
    for rows, length in PROBE_SHAPES:
        texts = [" ".join(words[(i + j) % len(words)] for j in range(length)) for i in range(rows)]
        ids, mask = tokenize(model, texts)
        try:
            out = onnx_model.logits(ids, mask)
            if out.shape[0] != rows:
                failures.append(f"batch {rows}: got {out.shape[0]} rows")
        except Exception as exc:  # onnxruntime names the node whose shape broke
            failures.append(f"batch {rows} x {ids.shape[1]} tokens: {' '.join(str(exc).split())[:200]}")
    shapes = ", ".join(f"{r}x{n}" for r, n in PROBE_SHAPES)
    return StructureCheck("runs at unseen batch/sequence shapes", not failures, f"runs at {shapes} (+ special tokens)",
                          "; ".join(failures) if failures else "ran")


def _attention_blocks(graph: Graph, model) -> StructureCheck:
    count = len(graph.attention_nodes())
    return StructureCheck("encoder blocks (attention softmaxes)", count == model.num_layers, str(model.num_layers),
                          str(count))


def _word_embedding(graph: Graph) -> np.ndarray | None:
    for node in graph.consumers.get("input_ids", []):
        if node.op_type == "Gather":
            table = graph.constant(node.input[0])
            if table is not None and table.ndim == 2:
                return table
    return None


def _hidden_size(graph: Graph, model) -> StructureCheck:
    table = _word_embedding(graph)
    # the model's own table: ELECTRA and ALBERT embed into embedding_size and project up to the hidden size
    shape = list(model.hf_model.get_input_embeddings().weight.shape)
    expected = str(shape)
    if table is None:
        return StructureCheck("hidden size (word embedding table)", False, expected, "no Gather of input_ids")
    return StructureCheck("hidden size (word embedding table)", list(table.shape) == shape, expected,
                          str(list(table.shape)))


def _head_weight(graph: Graph) -> np.ndarray | None:
    """The weight of the last linear map before logits, as (labels, hidden)."""
    name, hops = "logits", 0
    while name in graph.producer and hops < 6:
        node = graph.producer[name]
        if node.op_type == "Gemm":
            weight = graph.constant(node.input[1])
            if weight is not None:
                trans_b = any(a.name == "transB" and a.i == 1 for a in node.attribute)
                return weight if trans_b else weight.T
        if node.op_type in ("MatMul", "MatMulInteger", "DynamicQuantizeMatMul"):
            weight = graph.constant(node.input[1])
            if weight is not None:
                return weight.T
        name = next((i for i in node.input if i not in graph.constants), None)
        if name is None:
            break
        hops += 1
    return None


def _head_checks(graph: Graph, model) -> list[StructureCheck]:
    labels = len(model.labels)
    weight = _head_weight(graph)
    shape_check = StructureCheck(
        "classifier head maps hidden -> num_labels",
        weight is not None and list(weight.shape) == [labels, model.hidden_size],
        f"{model.hidden_size} -> {labels}",
        "no linear map found before logits" if weight is None else f"{weight.shape[1]} -> {weight.shape[0]}")
    return [shape_check, _head_rows(weight, model)]


def _head_rows(weight: np.ndarray | None, model) -> StructureCheck:
    """Match each graph row to the model's head row it equals: finds swapped labels, or another model."""
    name = "classifier rows in id2label order"
    expected = "row i = the head's row for id2label[i]"
    if weight is None or not np.issubdtype(weight.dtype, np.floating):
        return StructureCheck(name, weight is not None, expected,
                              "quantised head: compared by parity only" if weight is not None else "no head found")
    reference = _model_head(model)
    if reference.shape != weight.shape:
        return StructureCheck(name, False, expected, f"head shape {list(weight.shape)} vs {list(reference.shape)}")
    distance = np.abs(weight[:, None, :].astype(np.float64) - reference[None, :, :]).max(axis=2)
    nearest = distance.argmin(axis=1)
    tolerance = 1e-3 * max(1.0, float(np.abs(reference).max()))
    if distance[np.arange(len(nearest)), nearest].max() > tolerance:
        return StructureCheck(name, False, expected, "the head's weights are not the model's: an export of another model")
    moved = [f"row {i} holds {model.labels[j]}" for i, j in enumerate(nearest) if i != j]
    return StructureCheck(name, not moved, expected, "; ".join(moved) if moved else "in order")


def _model_head(model) -> np.ndarray:
    state = model.hf_model.state_dict()
    key = next(k for k in ("classifier.out_proj.weight", "classifier.weight") if k in state)
    return state[key].detach().cpu().numpy().astype(np.float64)


def _mask_reaches_attention(graph: Graph) -> StructureCheck:
    attention = graph.attention_nodes()
    name = "attention_mask reaches every attention block"
    if "attention_mask" not in graph.inputs:
        return StructureCheck(name, False, f"{len(attention)} of {len(attention)}", "no attention_mask input")
    reached = graph.reachable_from("attention_mask")
    hit = sum(id(node) in reached for node in attention)
    return StructureCheck(name, bool(attention) and hit == len(attention), f"{len(attention)} of {len(attention)}",
                          f"{hit} of {len(attention)}")


def _metadata_labels(graph: Graph) -> tuple[list | None, str]:
    """(label order, "") from the metadata, (None, why) when it has none or it is unreadable."""
    raw = graph.metadata.get(LABELS_KEY)
    if raw is None:
        return None, "no id2label in the ONNX metadata"
    try:
        stored = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return None, f"ONNX metadata id2label is not JSON: {raw[:60]!r}"
    if isinstance(stored, dict):  # the Hugging Face form, {"0": label, ...}
        stored = _ordered(stored)
    if not isinstance(stored, list):
        return None, f"ONNX metadata id2label is not a list of labels: {raw[:60]!r}"
    return stored, ""


def _config_labels(config: Path | None) -> tuple[list | None, str]:
    """(label order, "") from a Hugging Face config.json beside the ONNX file, (None, why) otherwise."""
    if config is None or not config.is_file():
        return None, "no config.json beside the file"
    try:
        raw = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return None, f"{config} is unreadable ({type(exc).__name__})"
    id2label = raw.get("id2label") if isinstance(raw, dict) else None
    ordered = _ordered(id2label) if isinstance(id2label, dict) else None
    if ordered is None:
        return None, f"{config} has no usable id2label"
    return ordered, ""


def _ordered(id2label: dict) -> list | None:
    """{"0": a, "1": b} -> [a, b]; None unless the keys are exactly 0..n-1."""
    try:
        by_index = {int(k): str(label) for k, label in id2label.items()}
    except (TypeError, ValueError):
        return None
    if sorted(by_index) != list(range(len(by_index))) or not by_index:
        return None
    return [by_index[i] for i in range(len(by_index))]


def _differences(stored: list, labels) -> str:
    if len(stored) != len(labels):
        return f"{len(stored)} labels vs the model's {len(labels)}"
    differ = [f"{i}: {s} (model {m})" for i, (s, m) in enumerate(zip(stored, labels)) if s != m]
    return "; ".join(differ[:4])


def _label_order(graph: Graph, model, config: Path | None) -> StructureCheck:
    """The label order from the metadata when present, else from config.json beside the file; both are
    compared with the model's when both exist (serving code may read either)."""
    labels = list(model.labels)
    sources, unreadable = {}, {}
    metadata, why_not_metadata = _metadata_labels(graph)
    if metadata is not None:
        sources["ONNX metadata"] = metadata
    elif LABELS_KEY in graph.metadata:  # present but unusable: a server reading it would fail or misroute
        unreadable["ONNX metadata"] = why_not_metadata
    from_config, why_not_config = _config_labels(config)
    if from_config is not None:
        sources["config.json beside the file"] = from_config
    if not sources and not unreadable:
        return StructureCheck(LABEL_ORDER, False, "model id2label",
                              f"absent ({why_not_metadata}; {why_not_config}): serving code cannot know the label "
                              "order")
    wrong = {**unreadable, **{name: _differences(stored, labels) for name, stored in sources.items()
                              if stored != labels}}
    if not wrong:
        read = next(iter(sources))  # the metadata first: that is what the runtime loader reads
        also = f", and {' and '.join(list(sources)[1:])} agrees" if len(sources) > 1 else ""
        return StructureCheck(LABEL_ORDER, True, "model id2label", f"equal (from the {read}{also})")
    return StructureCheck(LABEL_ORDER, False, "model id2label",
                          "; ".join(f"{name}: {diff}" for name, diff in wrong.items()))
