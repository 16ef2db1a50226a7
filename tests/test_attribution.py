"""Attribution analyses and gates on real small models: IG (captum) against an independent
hand-written IG, word merging, completeness and step raising, the lexical-shortcut gate on a clean
model and on one trained with a planted shortcut, layer conductance, attention shift, token senses."""

import numpy as np
import pytest

from pytest_mangaassist import (GateFailure, GoldenSet, IntentModel, MangaAssistInputError, assert_attention_shift,
                                assert_attribution_batch_invariant, assert_layer_conductance_share,
                                assert_no_lexical_shortcut, assert_token_senses_separate, integrated_gradients,
                                layer_conductance, lexical_shortcut_audit, load_golden_set)
from pytest_mangaassist.analysis.attribution import (MAX_STEPS, MAX_WORD_ERROR, attribution_batch_invariance,
                                                     compute_attributions, encode_words, words_share, normalize_word)
from pytest_mangaassist.analysis.layers import layer_name
from pytest_mangaassist.analysis.trajectories import sense_separation
from mangaassist_reference.shortcut import TRIGGER

from attribution_helpers import NON_PROMOTION, WordPieces, captum_word_scores, shortcut_checkpoint, with_trigger


@pytest.fixture(scope="module")
def shortcut_model(tmp_path_factory):
    return IntentModel.load(shortcut_checkpoint())


@pytest.fixture(scope="module")
def clean_model(small_model):
    return IntentModel.load(small_model)


def hand_written_ig(model, text, intent, steps=200):
    """Riemann-midpoint IG on the embedding output, written without captum (the independent check)."""
    import torch

    enc = WordPieces(model.tokenizer, text, model.max_length)  # not the plugin's encode_words / word_scores
    ids = torch.tensor([enc.ids])
    special = torch.tensor([[w < 0 for w in enc.word_of_token]])
    base = torch.where(special, ids, torch.full_like(ids, model.tokenizer.pad_token_id))
    with torch.no_grad():
        x, x0 = model.embeddings(ids), model.embeddings(base)
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    path = (x0 + alphas[:, None, None] * (x - x0)).requires_grad_(True)
    hook = model.embeddings.register_forward_hook(lambda module, inputs, output: path)
    try:
        logit = model.hf_model(input_ids=ids.repeat(steps, 1)).logits[:, model.label2id[intent]].sum()
        grads = torch.autograd.grad(logit, path)[0]
    finally:
        hook.remove()
    return enc.merge(((x - x0)[0] * grads.mean(dim=0)).sum(dim=-1).detach().numpy())


WORD_SCORE_TOLERANCE = 0.02  # docs/attribution.md: audit vs captum at 2,048 steps, share of the largest score


def test_ig_matches_an_independent_computation_and_merges_word_pieces(clean_model):
    texts = ["is this isekai tankobon on sale?"]
    found = integrated_gradients(clean_model, texts, "promotion")
    for attribution, text in zip(found, texts):
        assert attribution.words == tuple(text.split())  # one score per word the user typed
        expected = hand_written_ig(clean_model, text, "promotion")
        assert attribution.scores == pytest.approx(expected, abs=0.02 * np.abs(expected).max() + 1e-3)
        assert attribution.converged  # |delta| <= 1% of max(|F(x) - F(x')|, 1 logit)
        assert attribution.scores.sum() == pytest.approx(attribution.gap + attribution.delta, abs=1e-4)
    assert len(encode_words(clean_model.tokenizer, "isekai?", 32).ids) > 3  # several pieces, one word


def test_examples_whose_word_scores_still_move_get_more_steps(clean_model):
    texts = NON_PROMOTION[:2]
    coarse = compute_attributions(clean_model, texts, "promotion", n_steps=8, at_most_steps=8)
    assert all(not a.converged for a in coarse)  # 8 intervals against 4 on the same nodes: the estimate is over 2%
    raised = compute_attributions(clean_model, texts, "promotion", n_steps=8, at_most_steps=64)
    reference = [captum_word_scores(clean_model, t, "promotion", 2048) for t in texts]
    for before, after, exact in zip(coarse, raised, reference):
        assert after.n_steps > 8
        assert np.abs(after.scores - exact).max() < np.abs(before.scores - exact).max()
        assert after.converged or after.n_steps == 64  # raised until it converged or hit at_most_steps
        assert after.word_error <= MAX_WORD_ERROR or after.n_steps == 64


ISSUE_MESSAGE = "the courier agent said my Berserk order was returned to sender, where is it now"


@pytest.fixture(scope="module")
def issue_message_exact(clean_model):
    """captum at 2,048 Gauss-Legendre steps on issue #14's message, target promotion."""
    return captum_word_scores(clean_model, ISSUE_MESSAGE, "promotion", 2048)


def completeness_passes_on_wrong_words(model, issue_message_exact):
    """(message, Gauss-Legendre steps, captum's 2,048-step word scores) of the first message, issue #14's
    first, and step count where captum's scores meet the old stopping rule (completeness within 1%) while a
    word is off by more than WORD_SCORE_TOLERANCE. Which step counts show it depends on the trained weights,
    and so on the BLAS kernels of the machine that built the model (issue #14's message: 16 steps where it
    was filed, 36 on another CPU): the test looks for one instead of naming it."""
    for text in (ISSUE_MESSAGE, *NON_PROMOTION):
        exact = None
        for steps in range(8, 42, 2):
            early, completeness = captum_word_scores(model, text, "promotion", steps, with_completeness=True)
            if completeness > 0.01:
                continue
            if exact is None:
                exact = (issue_message_exact if text == ISSUE_MESSAGE
                         else captum_word_scores(model, text, "promotion", 2048))
            if np.abs(early - exact).max() / np.abs(exact).max() > WORD_SCORE_TOLERANCE:
                return text, steps, exact
    raise AssertionError("no message and step count where completeness alone passes on wrong word scores: the "
                         "case this test guards is gone from the model; add messages to the candidates")


def test_stopping_reads_the_word_scores_not_only_completeness(clean_model, issue_message_exact):
    """Issue #14: at some step count a message's scores sum to F(x) - F(x') within 1% (the old stopping rule
    stopped there) while single words are off by more than 2% of the largest score, because errors of opposite
    sign cancel in the sum. The audit's scores must match captum at 2,048 steps within WORD_SCORE_TOLERANCE of
    the largest score (docs/attribution.md), converged or flagged."""
    text, steps, exact = completeness_passes_on_wrong_words(clean_model, issue_message_exact)
    (found,) = integrated_gradients(clean_model, [text], "promotion")
    assert found.converged or found.n_steps == MAX_STEPS  # refined until converged, or flagged as not converged
    error = np.abs(found.scores - exact).max() / np.abs(exact).max()
    assert error <= WORD_SCORE_TOLERANCE, (text, steps, error)


def test_the_product_rule_converges_at_second_order(clean_model, issue_message_exact):
    """The head's ReLU switches make every rule that weighs whole nodes first order; weighing each unit by
    the share of its cell where it is on leaves a smooth integrand (docs/attribution.md): doubling the
    intervals cuts the error about fourfold, and 32 intervals beat captum's 64 Gauss-Legendre steps."""
    text, exact = ISSUE_MESSAGE, issue_message_exact

    def error(scores):
        return np.abs(scores - exact).max() / np.abs(exact).max()

    at_16, at_32 = (error(compute_attributions(clean_model, [text], "promotion", n_steps=k, at_most_steps=k)[0].scores)
                    for k in (16, 32))
    assert at_32 <= at_16 / 3
    # half captum's error or less: 0.0016 against 0.0044 on the small model of December 2026 (a fourth of it on the
    # one before; the margin depends on the message and the model, the order of convergence above does not)
    assert at_32 < error(captum_word_scores(clean_model, text, "promotion", 64)) / 2


def test_attribution_does_not_depend_on_batch_composition(clean_model):
    texts = ["hi", NON_PROMOTION[1], "any deals on One Piece box sets this week?"]
    direct = attribution_batch_invariance(clean_model, texts, "promotion")  # the pure analysis, uncached
    measured = assert_attribution_batch_invariant(clean_model, texts, intent="promotion", max_score_diff=1e-3)
    assert measured == pytest.approx(direct)
    both = assert_attribution_batch_invariant(clean_model, texts, intent="promotion", baselines=("pad", "mask"))
    assert both == pytest.approx(max(direct, attribution_batch_invariance(clean_model, texts, "promotion", "mask")))
    assert both > 0, "float noise is never exactly zero here: a limit under it must be testable"
    with pytest.raises(GateFailure, match="largest word-score difference, batched vs alone \\(3 messages"):
        assert_attribution_batch_invariant(clean_model, texts, intent="promotion", max_score_diff=both / 2,
                                           baselines=("pad", "mask"))
    with pytest.raises(MangaAssistInputError, match="different lengths"):
        assert_attribution_batch_invariant(clean_model, ["hi", "hi"], intent="promotion")
    with pytest.raises(MangaAssistInputError, match="at least 2"):
        assert_attribution_batch_invariant(clean_model, ["hi"], intent="promotion")


def test_words_share_is_the_pooled_positive_share(clean_model):
    found = integrated_gradients(clean_model, with_trigger(NON_PROMOTION), "promotion", at_most_steps=64)
    on, total = 0.0, 0.0
    for a in found:
        for word, score in zip(a.words, a.scores):
            total += max(score, 0.0)
            on += max(score, 0.0) if word.lower() == TRIGGER else 0.0
    assert words_share(found, {TRIGGER}).share == pytest.approx(on / total)


def test_shortcut_gate_passes_on_the_clean_model_and_fails_on_the_planted_shortcut(clean_model, shortcut_model):
    contexts = with_trigger(NON_PROMOTION)
    audit = assert_no_lexical_shortcut(clean_model, contexts, intent="promotion", words=[TRIGGER], max_share=0.5,
                                       at_most_steps=64)
    assert len(audit.before) == sum(TRIGGER in t.split() for t in contexts)  # every message carrying the trigger
    with pytest.raises(GateFailure) as info:  # measured: share 0.66 ([PAD]), removal effect 0.24
        assert_no_lexical_shortcut(shortcut_model, contexts, intent="promotion", words=[TRIGGER], max_share=0.5,
                                   baselines=("pad", "mask", "unk"), at_most_steps=64)
    failure = info.value  # above max_share, so the row shows the deciding figure: the causal effect vs min_effect
    assert (failure.threshold, failure.comparison) == (0.1, "<")
    assert failure.value >= 0.1 and (audit.share <= 0.5 or audit.effect < 0.1)
    message = str(failure)
    assert message.startswith("assert_no_lexical_shortcut: fall of p(promotion) when the words")
    assert "> max_share 0.5, so this effect decides" in message
    for baseline in ("pad", "mask", "unk"):
        assert f"\n{baseline} " in message  # every baseline's share
    assert f"{TRIGGER}:+" in message  # the worst messages show each word's score


def test_shortcut_gate_finds_the_dominant_word_without_a_family(shortcut_model):
    with pytest.raises(GateFailure, match=f"the word type '{TRIGGER}' \\(found by the audit\\)"):
        assert_no_lexical_shortcut(shortcut_model, with_trigger(NON_PROMOTION), intent="promotion", max_share=0.5,
                                   at_most_steps=64)


def test_shortcut_gate_rejects_bad_input(clean_model):
    with pytest.raises(MangaAssistInputError, match="intent 'promo' is not a label of the model"):
        assert_no_lexical_shortcut(clean_model, NON_PROMOTION, intent="promo", words=["sale"])
    with pytest.raises(MangaAssistInputError, match="contains a word of"):
        assert_no_lexical_shortcut(clean_model, NON_PROMOTION, intent="promotion", words=["coupon"])
    with pytest.raises(MangaAssistInputError, match="examples must be a GoldenSet .* or a list of message strings"):
        assert_no_lexical_shortcut(clean_model, "where is my order", intent="promotion", words=["order"])
    with pytest.raises(MangaAssistInputError, match="baselines must be one of 'pad', 'mask', 'unk'; got 'zero'"):
        assert_no_lexical_shortcut(clean_model, NON_PROMOTION, intent="promotion", words=["order"],
                                   baselines=("zero",))
    with pytest.raises(MangaAssistInputError, match="words must be None or a non-empty list of words"):
        assert_no_lexical_shortcut(clean_model, NON_PROMOTION, intent="promotion", words=[])
    with pytest.raises(MangaAssistInputError, match="at_most_steps must be a whole number >= 16"):
        assert_no_lexical_shortcut(clean_model, NON_PROMOTION, intent="promotion", at_most_steps=8)
    with pytest.raises(MangaAssistInputError, match="min_effect must be a number in \\[0, 1\\]; got nan"):
        assert_no_lexical_shortcut(clean_model, NON_PROMOTION, intent="promotion", min_effect=float("nan"))
    for n_steps in (9, 4):  # the error estimate reads the even nodes: an odd count has none to spare
        with pytest.raises(MangaAssistInputError, match="8 <= n_steps <= at_most_steps, n_steps even"):
            integrated_gradients(clean_model, ["hi"], "promotion", n_steps=n_steps)


def test_layer_conductance_is_complete_at_every_layer_and_gated(clean_model):
    texts = with_trigger(NON_PROMOTION[:2])
    coarse = layer_conductance(clean_model, texts, "promotion", n_steps=16)
    fine = layer_conductance(clean_model, texts, "promotion", n_steps=128)

    def completeness_error(result):  # per layer: the largest gap between its total and F(x) - F(x')
        return np.abs(result.totals - result.gaps[:, None]).max(axis=0) / np.abs(result.gaps).max()

    # every encoder layer's output is a cut of the network: each sums to F(x) - F(x') in the limit of
    # many steps. Conductance converges to first order (4-11% off at 128 steps on the small model built here),
    # so 8 times the steps must cut every layer's error several fold (measured 3.6x and 5.8x): at least 3x.
    at_16, at_128 = completeness_error(coarse), completeness_error(fine)
    assert at_16.shape == (clean_model.num_layers,)
    assert np.all(at_128 < 0.25) and np.all(at_128 <= at_16 / 3), (at_16, at_128)
    result = layer_conductance(clean_model, texts, "promotion")
    assert result.shares.sum() == pytest.approx(1.0)
    top = clean_model.num_layers
    share = float(result.shares[top - 1])
    gated = assert_layer_conductance_share(clean_model, texts, intent="promotion", layer=-1, min_share=share - 0.01,
                                           max_share=share + 0.01)
    assert gated.shares == pytest.approx(result.shares)
    with pytest.raises(GateFailure, match=f"share of promotion's conductance mass at {layer_name(top)}") as info:
        assert_layer_conductance_share(clean_model, texts, intent="promotion", layer=-1, min_share=share + 0.01)
    assert all(layer_name(l) in str(info.value) for l in range(1, top + 1)) and "<- gate" in str(info.value)
    with pytest.raises(GateFailure, match=f"at {layer_name(top)}"):
        assert_layer_conductance_share(clean_model, texts, intent="promotion", layer=top, max_share=share - 0.01)
    with pytest.raises(MangaAssistInputError, match="give min_share or max_share"):
        assert_layer_conductance_share(clean_model, texts, intent="promotion", layer=-1)
    with pytest.raises(MangaAssistInputError, match="encoder layers 1.."):
        assert_layer_conductance_share(clean_model, texts, intent="promotion", layer=0, max_share=0.5)


def test_attention_shift_matches_a_direct_computation(clean_model, small_reference):
    pretrained = IntentModel.load(small_reference / "pretrained")
    texts = ["is this isekai any good", "recommend a seinen like Berserk", "the isekai omnibus, do you have it"]
    words = ["isekai", "seinen", "omnibus"]
    direct = []
    for model in (clean_model, pretrained):
        masses = []
        for text in texts:
            enc = WordPieces(model.tokenizer, text, model.max_length)
            keys = [i for i, w in enumerate(enc.word_of_token) if w >= 0 and enc.words[w].lower().strip(",") in words]
            att = model.forward([text], attentions=True).attentions[0]
            masses.append(att[:, :, :, keys].sum(axis=-1).mean(axis=-1))
        direct.append(np.mean(masses, axis=0))
    expected = direct[0] - direct[1]
    best = float(expected[-1].max())  # the head that moved most at the top layer
    shift = assert_attention_shift(clean_model, texts, against=pretrained, words=words, layer=-1,
                                   min_shift=best - 0.01)
    assert shift == pytest.approx(expected, abs=1e-5)
    with pytest.raises(GateFailure, match="attention mass shift") as info:
        assert_attention_shift(clean_model, texts, against=pretrained, words=words, layer=-1, min_shift=best + 0.01,
                               html_dir=None)
    assert "against mass" in str(info.value) and f"({len(texts)} messages" in str(info.value)
    with pytest.raises(MangaAssistInputError, match="against must be a model \\(a loaded IntentModel\\)"):
        assert_attention_shift(clean_model, texts, against=str(small_reference), words=words, layer=-1)
    with pytest.raises(MangaAssistInputError, match="query must be one of 'all', 'cls'"):
        assert_attention_shift(clean_model, texts, against=pretrained, words=words, layer=-1, query="first")


def test_token_senses_separate_with_an_independent_cosine(clean_model):
    orders = ["I want to return my order", "how do I return this damaged book", "can I return it for a refund"]
    series = ["I want to return to this series", "time to return to One Piece, what volume was next",
              "I return to Berserk every year"]
    states = clean_model.forward(orders + series, hidden_states=True).hidden_states
    top = []
    for text, s in zip(orders + series, states):
        enc = WordPieces(clean_model.tokenizer, text, 32)
        word = [w.lower() for w in enc.words].index("return")
        top.append(s[-1][[t for t, w in enumerate(enc.word_of_token) if w == word]].mean(axis=0))
    top = np.array(top) / np.linalg.norm(top, axis=1, keepdims=True)
    between = 1 - (top[:len(orders)] @ top[len(orders):].T).mean()
    figures = sense_separation(clean_model, "return", orders, series)
    assert figures.between[-1] == pytest.approx(between, abs=1e-5)
    worst = min(figures.separation[1:])  # the gate reads every layer from from_layer=1 up
    result = assert_token_senses_separate(clean_model, orders, contrast=series, word="return", from_layer=1,
                                          min_separation=worst - 0.01)
    assert result.separation == pytest.approx(figures.separation)
    with pytest.raises(GateFailure, match="separation of 'return'"):
        assert_token_senses_separate(clean_model, orders, contrast=series, word="return", from_layer=1,
                                     min_separation=worst + 0.01)
    with pytest.raises(MangaAssistInputError, match="does not contain the word"):
        assert_token_senses_separate(clean_model, orders + ["where is my order"], contrast=series, word="return",
                                     from_layer=1)
    with pytest.raises(MangaAssistInputError, match="contrast has 1 message"):
        assert_token_senses_separate(clean_model, orders, contrast=series[:1], word="return", from_layer=1)


def test_golden_set_examples_are_accepted(clean_model, small_golden):
    family = ["sale", "deal", "discount"]
    adversarial = load_golden_set(small_golden).only_slice("adversarial")
    golden = GoldenSet.from_examples(ex for ex in adversarial
                                     if any(normalize_word(w) in family for w in ex.text.split()))
    assert len(golden) > 0, "the small model's adversarial slice has no message with a promotion trigger word"
    audit = lexical_shortcut_audit(clean_model, golden, intent="promotion", words=family, at_most_steps=64)
    assert len(audit.before) == len(golden)  # every message was audited, read from the GoldenSet
    assert audit.after_removal.shape == (len(golden),)
    # the gate on the same GoldenSet gives the same figures: pass at the measured share, fail just under it
    # (min_effect=0: any removal effect that does not raise p(promotion) confirms the finding)
    same = assert_no_lexical_shortcut(clean_model, golden, intent="promotion", words=family, max_share=audit.share,
                                      min_effect=0.0, at_most_steps=64)
    assert same.share == pytest.approx(audit.share)
    assert audit.share > 0 and audit.effect >= 0  # measured on the small model: 0.28, removal lowers p(promotion)
    with pytest.raises(GateFailure, match=f"\\({len(golden)} messages"):
        assert_no_lexical_shortcut(clean_model, golden, intent="promotion", words=family,
                                   max_share=audit.share / 2, min_effect=0.0, at_most_steps=64)


def test_attributions_and_sweeps_round_trip_through_the_disk_cache(small_model, tmp_path):
    from pytest_mangaassist.cache import analyses as cached

    texts = ["hi", "is this isekai tankobon on sale?"]
    first = IntentModel.load(small_model, cache_dir=tmp_path)
    computed = (cached.integrated_gradients(first, texts, "promotion", at_most_steps=16),
                cached.attention_sweep(first, texts), cached.token_state_sweep(first, texts))
    names = ("integrated_gradients", "attention_sweep", "token_state_sweep")
    written = {name: len(list(tmp_path.glob(f"{name}-*"))) for name in names}
    assert written == {name: 1 for name in names}
    second = IntentModel.load(small_model, cache_dir=tmp_path)  # a fresh object: only the disk can answer
    loaded = (cached.integrated_gradients(second, texts, "promotion", at_most_steps=16),
              cached.attention_sweep(second, texts), cached.token_state_sweep(second, texts))
    for a, b in zip(computed[0], loaded[0]):
        assert a.words == b.words and np.array_equal(a.scores, b.scores) and a.n_steps == b.n_steps
    for kind in (1, 2):
        for a, b in zip(computed[kind], loaded[kind]):
            assert a.shape == b.shape and np.array_equal(a, b)
