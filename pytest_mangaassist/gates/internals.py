"""Gates on the encoder's internals: attention redistribution (BertViz question) and token senses
across layers (Ecco question). Both read the shared activation sweeps (cached on disk).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..analysis.attention import attention_mass, key_positions, write_head_view
from ..analysis.attribution import normalize_word
from ..analysis.layers import layer_name
from ..analysis.trajectories import SenseSeparation, sense_separation
from ..cache import analyses as cached
from ..errors import MangaAssistInputError, format_table
from . import validation as valid
from .records import Curve, Family, check

WORST = 6


@Family.ATTRIBUTION.gate(page="attribution.md", checks="attention mass on `words` in `model` minus `against`")
def assert_attention_shift(model, examples, *, against, words: Sequence[str], layer: int, head: int | None = None,
                           min_shift: float = 0.0, query: str = "all", html_dir: str | Path | None = None) -> np.ndarray:
    """Attention mass on `words` at (layer, head) must be >= the mass of the model `against` + min_shift,
    averaged over the messages that contain the words (a mass lies in [0, 1], so min_shift in [-1, 1]).
    head=None gates the head whose mass grew most at that layer.

    examples: a GoldenSet or a list of messages. against: any IntentModel with the same architecture,
    typically pretrained_model (where fine-tuning started). With html_dir and bertviz installed, the
    messages whose shift is smallest are written there as bertviz head views. Returns the (layers,
    heads) table of shifts.
    """
    __tracebackhide__ = True
    caller = "assert_attention_shift"
    min_shift = valid.number(caller, "min_shift", min_shift, low=-1.0, high=1.0)
    head = valid.count(caller, "head", head, minimum=0, optional=True)
    query = valid.choice(caller, "query", query, ("all", "cls"))
    words = valid.words(caller, "words", words)
    texts = valid.texts(caller, examples)
    against = valid.against(caller, model, against, same_labels=False)  # attention compares any two encoders
    layer = valid.layer(caller, model, layer, encoder="attention")
    for m in (model, against):  # the sweeps attention_mass reads, from the disk cache when they are there
        wanted = {normalize_word(w) for w in words}
        kept = [t for t in texts if key_positions(m, t, wanted).any()]
        if kept:
            cached.attention_sweep(m, kept)
    mine, theirs = attention_mass(model, texts, words, query), attention_mass(against, texts, words, query)
    if mine.mass.shape != theirs.mass.shape:
        raise MangaAssistInputError(f"{caller}: {model.source} and {against.source} (against) have different "
                                    "layer/head counts.", "Compare checkpoints of the same architecture.")
    shift = mine.mean() - theirs.mean()
    if head is not None and not head < shift.shape[1]:
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
            ("head", "against mass", "model mass", "shift"),
            [(h, float(theirs.mean()[layer - 1, h]), float(mine.mean()[layer - 1, h]), float(shift[layer - 1, h]))
             for h in heads]) + f"\n\nmessages with the smallest shift at head {gated}:\n" + format_table(
            ("message", "against mass", "model mass"),
            [(mine.texts[i][:60], float(theirs.mass[i, layer - 1, gated]), float(mine.mass[i, layer - 1, gated]))
             for i in order]) + written)

    check(caller, f"attention mass shift on {sorted(set(words))[:6]} at {layer_name(layer)} head {gated} "
                  f"({len(mine.texts)} messages, {model.source} vs {against.source})",
          value, min_shift, ">=", evidence=evidence,
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


@Family.ATTRIBUTION.gate(page="attribution.md", chart=Curve,
                         checks="the word's hidden state separates the contexts of `examples` from those of "
                                "`contrast`")
def assert_token_senses_separate(model, examples, *, contrast, word: str, from_layer: int,
                                 min_separation: float = 0.05) -> SenseSeparation:
    """From from_layer up, word's hidden state must be farther apart between the two sets of contexts
    than within them: separation (between minus within mean cosine distance, so in [-2, 2]) >=
    min_separation at every layer >= from_layer.

    examples: the contexts of one sense of `word`; contrast: the contexts of the other sense (each a
    GoldenSet or a list of at least 2 messages). Returns the per-layer figures."""
    __tracebackhide__ = True
    caller = "assert_token_senses_separate"
    min_separation = valid.number(caller, "min_separation", min_separation, low=-2.0, high=2.0)
    from_layer = valid.layer(caller, model, from_layer, "from_layer")
    word = valid.word(caller, "word", word)
    senses_a = valid.texts(caller, examples, minimum=2)
    senses_b = valid.texts(caller, contrast, name="contrast", minimum=2)
    for contexts in (senses_a, senses_b):  # the sweeps sense_separation reads, from the disk cache when there
        cached.token_state_sweep(model, contexts)
    result = sense_separation(model, word, senses_a, senses_b)
    gated = result.separation[from_layer:]
    worst = int(np.argmin(gated)) + from_layer
    check(caller, f"separation of {word!r} between the two context sets at {layer_name(worst)} "
                  f"({len(senses_a)} vs {len(senses_b)} contexts)",
          float(result.separation[worst]), min_separation, ">=", 
          evidence=lambda: result.table(from_layer),
          payload=Curve(x=tuple(layer_name(l) for l in range(len(result.separation))),
                        series={f"separation of {word!r}": tuple(float(s) for s in result.separation)},
                        gated=layer_name(worst)),
          hint=f"the encoder gives {word!r} one meaning in both kinds of context: add training "
               "messages where the two senses lead to different intents.")
    return result
