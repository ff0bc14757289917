"""DC-PDD and ReCaLL: their formulas on hand-built statistics, the token-frequency table, the
conditional statistics (an empty prefix changes nothing; the context is shared as documented),
the audit's refusals, then end to end on a tiny GPT trained on fortunes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from miaudit.errors import ConfigError, InputError
from miaudit.metrics import auc
from miaudit.text.attacks import EXTRA_INPUTS, TEXT_ATTACKS, recall_prefix
from miaudit.text.lm import (
    LMConfig,
    build_lm,
    conditional_token_statistics,
    prefix_tokens_used,
    token_frequencies,
    token_statistics,
    train_lm,
    train_tokenizer,
)
from miaudit.text.stats import TokenStats
from text_helpers import documents

# 4 and 3 predicted tokens, with their ids (A repeats id 2; B repeats id 1).
A = TokenStats.of(np.log([0.5, 0.2, 0.5, 0.1]), [-1.0] * 4, [1.0] * 4, token_ids=[2, 3, 2, 0])
B = TokenStats.of(np.log([0.4, 0.4, 0.8]), [-1.0] * 3, [1.0] * 3, token_ids=[1, 1, 3])
FREQ = np.array([0.5, 0.25, 0.125, 0.125])
TEXTS = ["first document", "second one"]


def _dc_pdd(**options):
    return TEXT_ATTACKS.get("dc-pdd").score([A, B], TEXTS, frequencies=FREQ, **options)


def test_dc_pdd_known_answers():
    # first occurrences only: A's tokens #0 (id 2), #1 (id 3), #3 (id 0); B's #0 (id 1), #2 (id 3)
    ln2, ln4, ln8 = math.log(2), math.log(4), math.log(8)
    a_ce, b_ce = [0.5 * ln8, 0.2 * ln8, 0.1 * ln2], [0.4 * ln4, 0.8 * ln8]
    np.testing.assert_allclose(_dc_pdd(a=100.0), [np.mean(a_ce), np.mean(b_ce)])
    np.testing.assert_allclose(_dc_pdd(a=0.5), [(0.5 + 0.2 * ln8 + 0.1 * ln2) / 3, 0.5])  # B: both clipped
    np.testing.assert_allclose(_dc_pdd(), [0.01, 0.01])  # the authors' a = 0.01 clips every token here


def test_recall_known_answers():
    cond = [TokenStats.of([-3.0, -3.0, -3.0, -3.0], [0.0] * 4, [1.0] * 4), TokenStats.of([-0.5] * 3, [0.0] * 3, [1.0] * 3)]
    target = [TokenStats.of([-2.0, -1.0, -3.0, -2.0], [0.0] * 4, [1.0] * 4), TokenStats.of([-1.0] * 3, [0.0] * 3, [1.0] * 3)]
    np.testing.assert_allclose(TEXT_ATTACKS.get("recall").score(target, TEXTS, conditional=cond), [1.5, 0.5])
    zero = [TokenStats.of([0.0], [0.0], [0.0])] * 2
    np.testing.assert_allclose(TEXT_ATTACKS.get("recall").score(zero, TEXTS, conditional=zero), [1.0, 1.0])


def test_missing_or_mismatched_inputs_are_refused_in_one_line():
    for name, option in EXTRA_INPUTS.items():
        with pytest.raises(ConfigError) as exc:
            TEXT_ATTACKS.get(name).score([A, B], TEXTS)
        assert option + "=" in str(exc.value) and "\n" not in str(exc.value)
    no_ids = TokenStats.of([-1.0], [0.0], [1.0])
    with pytest.raises(InputError, match="token ids"):
        TEXT_ATTACKS.get("dc-pdd").score([no_ids, no_ids], TEXTS, frequencies=FREQ)
    with pytest.raises(InputError, match="outside"):
        TEXT_ATTACKS.get("dc-pdd").score([A, B], TEXTS, frequencies=FREQ[:3])
    with pytest.raises(InputError):
        TEXT_ATTACKS.get("dc-pdd").score([A, B], TEXTS, frequencies=np.array([1.0, 0.0, 0.0, 0.0]))
    with pytest.raises(ConfigError):
        _dc_pdd(a=0.0)
    with pytest.raises(InputError, match="same tokens"):
        TEXT_ATTACKS.get("recall").score([A, B], TEXTS, conditional=[B, A])
    with pytest.raises(InputError):
        TokenStats.of([-1.0, -2.0], [0.0, 0.0], [1.0, 1.0], token_ids=[3])
    with pytest.raises(InputError):
        TokenStats.of([-1.0], [0.0], [1.0], token_ids=[-1])


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(documents(200, seed=5), vocab_size=320)


def test_token_frequencies_are_laplace_smoothed_counts(tokenizer):
    texts = ["the cat sat on the mat", "a dog"]
    f = token_frequencies(tokenizer, texts)
    ids = [i for t in texts for i in tokenizer(t, add_special_tokens=False)["input_ids"]]
    counts = np.bincount(ids, minlength=len(tokenizer))
    assert f.shape == (len(tokenizer),) and f.dtype == np.float64 and math.isclose(f.sum(), 1.0)
    np.testing.assert_allclose(f, (counts + 1) / (len(ids) + len(tokenizer)))
    with pytest.raises(InputError):
        token_frequencies(tokenizer, "not a list")


def test_conditional_statistics_share_the_context_as_documented(tokenizer):
    cfg = LMConfig(n_layer=1, n_embd=32, n_head=2, n_positions=32)
    model = build_lm(cfg, len(tokenizer), seed=0)
    texts = ["a short one", "the quick brown fox jumps over the lazy dog " * 8, "another line of text here"]
    plain = token_statistics(model, tokenizer, texts, batch_size=2)
    # an empty prefix: the unconditional statistics, token ids included
    for c, u, t in zip(conditional_token_statistics(model, tokenizer, texts, "", batch_size=2), plain, texts):
        np.testing.assert_allclose(c.logprob, u.logprob, atol=1e-6)
        np.testing.assert_allclose(c.var, u.var, atol=1e-6)
        assert c.n_tokens == u.n_tokens and np.array_equal(c.token_ids, u.token_ids)
        assert list(u.token_ids) == tokenizer(t, add_special_tokens=False)["input_ids"][1:32]
    prefix = "known non-member text that is quite long, longer than the room left " * 3
    p_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    cond = conditional_token_statistics(model, tokenizer, texts, prefix, batch_size=2)
    used = prefix_tokens_used(model, tokenizer, texts, prefix)
    assert used[1] == 0 and 0 < used[0] < len(p_ids)  # the long document fills the context alone
    assert used == [32 - u.n_tokens for u in plain]
    for c, u, k, t in zip(cond, plain, used, texts):
        assert c.n_tokens == u.n_tokens and len(c.logprob) == len(u.logprob) and np.array_equal(c.token_ids, u.token_ids)
        # by hand: the prefix's last k tokens, then the document, in one forward pass
        doc = tokenizer(t, add_special_tokens=False)["input_ids"][:32]
        ids = torch.tensor([p_ids[len(p_ids) - k :] + doc if k else doc])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        want = logp.gather(-1, ids[0, 1:, None]).squeeze(-1)[k:].double().numpy()
        np.testing.assert_allclose(c.logprob, want, atol=1e-5)
    assert not np.allclose(cond[0].logprob, plain[0].logprob)
    np.testing.assert_allclose(cond[1].logprob, plain[1].logprob, atol=1e-6)
    assert recall_prefix(["x", "y", "z"], 2) == "x\ny\n"


def test_the_audit_skips_both_without_a_pool_and_refuses_an_evaluated_pool(tmp_path):
    from miaudit.text.audit import TextAuditConfig, _own_model, _selected

    (tmp_path / "x.txt").write_text("a document\n")
    own = {"model_dir": str(tmp_path), "train_file": str(tmp_path / "x.txt"), "test_file": str(tmp_path / "x.txt")}
    names, skipped = _selected(TextAuditConfig(**own, reference_dir=str(tmp_path)))  # a reference, but no pool file
    assert "recall" not in names and "dc-pdd" not in names and "--pool-file" in skipped["recall"] and "reference" in names
    with pytest.raises(ConfigError, match="--pool-file is for your own model"):
        TextAuditConfig(pool_file="pool.txt")
    for name, docs in (("m.txt", "member one\nmember two\n"), ("n.txt", "non-member one\n"), ("p.txt", "pool one\nmember two\n")):
        (tmp_path / name).write_text(docs)
    config = TextAuditConfig(model_dir=str(tmp_path / "absent"), train_file=str(tmp_path / "m.txt"),
                             test_file=str(tmp_path / "n.txt"), pool_file=str(tmp_path / "p.txt"))  # fmt: skip
    with pytest.raises(ConfigError, match="never an evaluated record"):
        _own_model(config, set())


@pytest.fixture(scope="module")
def end_to_end():
    """A 2-layer GPT with a 128-token context (room for ReCaLL's prefix beside a 120-character
    document) trained 8 epochs on 120 fortunes; 120 non-members; the pool: 120 more."""
    docs = documents(780, seed=0, chars=120)
    public, members, nonmembers, pool, unrelated = docs[:300], docs[300:420], docs[420:540], docs[540:660], docs[660:]
    tok = train_tokenizer(public, vocab_size=512)
    cfg = LMConfig(n_layer=2, n_embd=64, n_head=2, n_positions=128)
    scored = members + nonmembers
    out = {}
    # the target, and an independent model of the same recipe on other documents (the known-answer harness)
    for who, texts in (("target", members), ("independent", unrelated)):
        model = train_lm(build_lm(cfg, len(tok), seed=1), tok, texts, epochs=8, batch_size=16, seed=1)
        options = {
            "dc-pdd": {"frequencies": token_frequencies(tok, pool)},
            "recall": {"conditional": conditional_token_statistics(model, tok, scored, recall_prefix(pool, 4), batch_size=64)},
        }
        out[who] = (token_statistics(model, tok, scored, batch_size=64), options)
    return out, scored, np.r_[np.ones(120, bool), np.zeros(120, bool)]


# AUCs measured with this fixture on fortunes, split seeds 0, 1, 2: ReCaLL 0.960, 0.959, 0.945;
# DC-PDD 0.911, 0.849, 0.882 (loss 0.903, 0.842, 0.886). The floors sit 2.7 (DC-PDD) and 3.9
# (ReCaLL) null standard deviations (about 0.037 at 120 + 120) below the lowest of the three.
# The independent model (seed 0): ReCaLL 0.515, DC-PDD 0.491.
@pytest.mark.parametrize("name, floor", [("recall", 0.8), ("dc-pdd", 0.75)])
def test_both_attacks_find_the_members_and_not_in_an_independent_model(end_to_end, name, floor):
    models, scored, truth = end_to_end
    found = {who: auc(TEXT_ATTACKS.get(name).score(stats, scored, **options[name]), truth) for who, (stats, options) in models.items()}
    assert found["target"] > floor
    assert math.isclose(found["independent"], 0.5, abs_tol=0.12)
