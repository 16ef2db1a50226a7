"""Encoder logit lens: the model's own classification head applied to every layer's [CLS] state.

nostalgebraist's logit lens (2020) reads a decoder's intermediate states through its unembedding; for
an encoder classifier the readout is the classification head (adapters.ArchitectureAdapter.head). At
the top layer the lens is the model's decision itself; below it, the layer from which the lens already
gives that decision, and keeps giving it at every layer above, is where the decision has formed.
Unlike a probe, nothing is trained: it shows what the model's own head can read at each depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import format_table
from .layers import layer_name


def lens_logits(model, cls_states: np.ndarray) -> np.ndarray:
    """(examples, layers + 1, hidden) [CLS] states -> (examples, layers + 1, labels) head logits."""
    import torch

    n, layers, hidden = cls_states.shape
    with torch.inference_mode():
        flat = torch.as_tensor(cls_states.reshape(n * layers, hidden), device=model.device)
        logits = model.adapter.head(model.hf_model, flat.to(model.hf_model.dtype)).float().cpu().numpy()
    return logits.reshape(n, layers, -1)


@dataclass(frozen=True)
class LogitLensResult:
    labels: tuple[str, ...]
    lens_predicted: np.ndarray  # (examples, layers + 1) label ids the head reads at each layer

    @property
    def decision(self) -> np.ndarray:
        """The model's routing decision: the lens at the top layer."""
        return self.lens_predicted[:, -1]

    @property
    def formed_at(self) -> np.ndarray:
        """Per example, the lowest layer from which the lens gives the final decision at every layer above."""
        agrees = self.lens_predicted == self.decision[:, None]
        # count the agreeing layers from the top down until the first disagreement
        run = np.cumprod(agrees[:, ::-1], axis=1).sum(axis=1)
        return self.lens_predicted.shape[1] - run

    def counts(self) -> dict[str, int]:
        """How many examples the model routes to each intent."""
        return {label: int((self.decision == i).sum()) for i, label in enumerate(self.labels)
                if (self.decision == i).any()}

    def formed_share(self, intent: str) -> np.ndarray:
        """Per layer, the share of the examples routed to `intent` whose decision has formed by that layer."""
        mine = self.formed_at[self.decision == self.labels.index(intent)]
        return np.array([(mine <= layer).mean() for layer in range(self.lens_predicted.shape[1])])

    def precision(self, intent: str) -> np.ndarray:
        """Per layer, the share of the examples the lens reads as `intent` that the model routes to it.

        A head applied off its layer often reads one label for nearly everything (measured: escalation at
        every layer below the top); such a readout agrees with that intent's decisions trivially, so a
        decision counts as formed only where the lens is also precise for the intent.
        """
        label = self.labels.index(intent)
        read = self.lens_predicted == label
        hits = (read & (self.decision == label)[:, None]).sum(axis=0)
        return hits / np.maximum(read.sum(axis=0), 1)

    def forms_by(self, intent: str, min_share: float) -> int:
        """The first layer by which at least min_share of the intent's decisions have formed, with the lens at
        least min_share precise there (the top layer always qualifies: the lens is the decision)."""
        ok = (self.formed_share(intent) >= min_share) & (self.precision(intent) >= min_share)
        return int(np.argmax(ok))

    def table(self, intents, min_share: float, marks: dict[str, str] | None = None) -> str:
        """Rows: intents; columns: share of decisions formed by each layer (* where the lens there is less than
        min_share precise for the intent), and the layer where both reach min_share."""
        marks = marks or {}
        counts = self.counts()
        n_layers = self.lens_predicted.shape[1]
        rows = []
        for intent in intents:
            shares, precise = self.formed_share(intent), self.precision(intent) >= min_share
            cells = [f"{share:.3f}" + ("" if ok else "*") for share, ok in zip(shares, precise)]
            rows.append((intent, counts[intent], *cells, layer_name(self.forms_by(intent, min_share)),
                         marks.get(intent, "")))
        header = ("routed to", "n", *(("emb" if l == 0 else f"L{l}") for l in range(n_layers)),
                  f"forms by (>= {min_share:.0%})", "")
        return format_table(header, rows) + f"\n* the lens at that layer is < {min_share:.0%} precise for the intent"


def logit_lens(model, cls_states: np.ndarray) -> LogitLensResult:
    return LogitLensResult(tuple(model.labels), lens_logits(model, cls_states).argmax(axis=2))
