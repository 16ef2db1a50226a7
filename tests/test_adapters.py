"""The architecture adapter finds the embeddings, the encoder layers and the head of each supported family."""

import numpy as np
import pytest

from pytest_mangaassist import IntentModel
from pytest_mangaassist.domain import INTENTS

from attribution_helpers import captum_word_scores

LABELS = dict(enumerate(INTENTS))


def save_tiny(folder, model_class, config):
    import torch
    from transformers import AutoTokenizer

    from mangaassist_reference.convert import minilm_dir

    torch.manual_seed(0)
    model_class(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_bert_and_roberta_checkpoints(tmp_path, family):
    from transformers import (BertConfig, BertForSequenceClassification, RobertaConfig,
                              RobertaForSequenceClassification)

    sizes = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                 intermediate_size=64, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    if family == "bert":
        folder = save_tiny(tmp_path, BertForSequenceClassification, BertConfig(**sizes))
    else:
        folder = save_tiny(tmp_path, RobertaForSequenceClassification,
                           RobertaConfig(max_position_embeddings=130, pad_token_id=0, **sizes))
    model = IntentModel.load(folder)
    assert (model.adapter.family, model.num_layers, model.hidden_size, model.labels) == (family, 3, 32, INTENTS)
    assert model.embeddings is getattr(model.hf_model, family).embeddings
    assert len(model.layers) == 3
    out = model.forward(["where is my order?", "hi"], cls_states=True)
    assert out.cls_states.shape == (2, 4, 32) and np.isfinite(out.logits).all()
    # IG through the family's head (tanh, no ReLU: the product rule is the plain trapezoid rule there) matches
    # captum at 2,048 Gauss-Legendre steps and is complete
    from pytest_mangaassist.analysis.attribution import integrated_gradients

    text, intent = "can I return the damaged box set", INTENTS[3]
    (found,) = integrated_gradients(model, [text], intent)
    exact = captum_word_scores(model, text, intent, 2048)
    assert found.converged
    assert np.abs(found.scores - exact).max() <= 0.02 * np.abs(exact).max()
