"""Gates on the encoder's internals: attention redistribution (BertViz question) and token senses
across layers (Ecco question). Both read the shared activation sweeps (cached on disk).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..analysis.attention import attention_mass, write_head_view
from ..analysis.layers import layer_name, resolve_layer
from ..analysis.trajectories import SenseSeparation, sense_separation
from ..errors import MangaAssistInputError, format_table
from .records import check
from .attribution import example_texts

WORST = 6
FAMILY = "attribution"


def _encoder_layer(layer: int, model, caller: str) -> int:
    layer = resolve_layer(layer, model.num_layers, caller)
    if layer == 0:
        raise MangaAssistInputError(f"{caller}: attention exists in encoder layers 1..{model.num_layers} only.",
                                    "Pass an encoder layer (1.., or -1 for the last).")
    return layer


def assert_attention_shift(model, reference, examples, words: Sequence[str], layer: int, head: int | None = None,
                           min_shift: float = 0.0, query: str = "all", html_dir: str | Path | None = None) -> np.ndarray:
    """Attention mass on `words` at (layer, head) must be >= reference's mass + min_shift, averaged over
    the messages that contain the words. head=None gates the head whose mass grew most at that layer.

    reference is any IntentModel with the same architecture, typically pretrained_model (where
    fine-tuning started). With html_dir and bertviz installed, the messages whose shift is smallest
    are written there as bertviz head views. Returns the (layers, heads) table of shifts.
    """
    __tracebackhide__ = True
    caller = "assert_attention_shift"
    texts = example_texts(examples, caller)
    layer = _encoder_layer(layer, model, caller)
    mine, theirs = attention_mass(model, texts, words, query), attention_mass(reference, texts, words, query)
    if mine.mass.shape != theirs.mass.shape:
        raise MangaAssistInputError(f"{caller}: {model.source} and {reference.source} have different layer/head "
                                    "counts.", "Compare checkpoints of the same architecture.")
    shift = mine.mean() - theirs.mean()
    if head is not None and not 0 <= head < shift.shape[1]:
        raise MangaAssistInputError(f"{caller}: head {head} does not exist (heads 0..{shift.shape[1] - 1}).",
                                    "Pass a head index, or head=None for the head that moved most.")
    gated = int(np.argmax(shift[layer - 1])) if head is None else head
    value = float(shift[layer - 1, gated])

    def evidence() -> str:
        per_text = mine.mass[:, layer - 1, gated] - theirs.mass[:, layer - 1, gated]
        order = np.argsort(per_text, kind="stable")[:WORST]
        heads = np.argsort(-shift[layer - 1], kind="stable")[:WORST]
        written = _write_views(model, [mine.texts[i] for i in order], html_dir)
        return ("heads of " + layer_name(layer) + ", by shift:\n" + format_table(
            ("head", "reference mass", "model mass", "shift"),
            [(h, float(theirs.mean()[layer - 1, h]), float(mine.mean()[layer - 1, h]), float(shift[layer - 1, h]))
             for h in heads]) + f"\n\nmessages with the smallest shift at head {gated}:\n" + format_table(
            ("message", "reference mass", "model mass"),
            [(mine.texts[i][:60], float(theirs.mass[i, layer - 1, gated]), float(mine.mass[i, layer - 1, gated]))
             for i in order]) + written)

    check(caller, f"attention mass shift on {sorted(set(words))[:6]} at {layer_name(layer)} head {gated} "
                  f"({len(mine.texts)} messages, {model.source} vs {reference.source})",
          value, min_shift, ">=", family=FAMILY, evidence=evidence,
          hint="fine-tuning did not move this head's attention onto the domain words; attention is a "
               "diagnostic, so confirm with assert_no_lexical_shortcut / attributions before acting.")
    return shift


def _write_views(model, texts: list[str], html_dir) -> str:
    if html_dir is None:
        return ""
    html_dir = Path(html_dir)
    html_dir.mkdir(parents=True, exist_ok=True)
    paths = [html_dir / f"head-view-{i}.html" for i in range(len(texts))]
    if not all(write_head_view(model, t, p) for t, p in zip(texts, paths)):
        return "\n\n(bertviz is not installed: no head views written)"
    return f"\n\nbertviz head views: {html_dir}"


def assert_token_senses_separate(model, word: str, contexts_a: Sequence[str], contexts_b: Sequence[str],
                                 from_layer: int, min_separation: float = 0.05) -> SenseSeparation:
    """From from_layer up, word's hidden state must be farther apart between the two sets of contexts
    than within them: separation (between minus within mean cosine distance) >= min_separation at
    every layer >= from_layer. Returns the per-layer figures."""
    __tracebackhide__ = True
    caller = "assert_token_senses_separate"
    from_layer = resolve_layer(from_layer, model.num_layers, caller)
    result = sense_separation(model, word, example_texts(list(contexts_a), caller), example_texts(list(contexts_b), caller))
    gated = result.separation[from_layer:]
    worst = int(np.argmin(gated)) + from_layer
    check(caller, f"separation of {word!r} between the two context sets at {layer_name(worst)} "
                  f"({len(contexts_a)} vs {len(contexts_b)} contexts)",
          float(result.separation[worst]), min_separation, ">=", family=FAMILY,
          evidence=lambda: result.table(from_layer),
          data={"curve": {"x": [layer_name(l) for l in range(len(result.separation))],
                          "series": {f"separation of {word!r}": [float(v) for v in result.separation]}}},
          hint=f"the encoder gives {word!r} one meaning in both kinds of context: add training "
               "messages where the two senses lead to different intents.")
    return result
