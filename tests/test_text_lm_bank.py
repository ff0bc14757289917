"""The LM bank (:mod:`miaudit.text.lm_bank`): K GPT-2s trained together are the models
``train_lm`` trains one at a time (weights and statistics to float32 rounding), the reference
sets it builds equal the one-at-a-time ones, and what it cannot reproduce falls back."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from miaudit.errors import ConfigError, InputError
from miaudit.text.lm import LMConfig, build_lm, token_statistics, train_lm, train_tokenizer
from miaudit.text.lm_bank import LMBank, bank_plan, bank_unsupported, train_lm_bank
from text_helpers import documents

SHAPE = LMConfig(n_layer=2, n_embd=32, n_head=2, n_positions=32)


@pytest.fixture(scope="module")
def setting():
    docs = documents(160, seed=3, chars=90)
    tokenizer = train_tokenizer(docs[:60], vocab_size=300)
    base = build_lm(SHAPE, len(tokenizer), seed=0)
    # unequal lists: the short one runs out of batches first (the active mask keeps it still)
    texts = [docs[60:100], docs[80:140], docs[100:110]]
    return tokenizer, base, texts, docs[60:160]


def test_the_bank_trains_the_models_train_lm_trains(setting):
    tokenizer, base, texts, scored = setting
    seeds = [5, 6, 7]
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    bank = train_lm_bank(base, tokenizer, texts, epochs=2, seeds=seeds, chunk=2)  # chunks of 2 and 1
    for n, p in base.named_parameters():  # the base is left as it was
        assert np.array_equal(p.detach().numpy(), before[n].numpy())
    banked = bank.token_statistics(tokenizer, scored)
    for j, (model, docs, seed) in enumerate(zip(bank.models(), texts, seeds)):
        alone = train_lm(copy.deepcopy(base), tokenizer, docs, epochs=2, seed=seed)
        for (name, p), q in zip(alone.named_parameters(), model.parameters()):
            np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), atol=1e-4, err_msg=name)
        for a, b in zip(token_statistics(alone, tokenizer, scored), banked[j]):
            assert a.n_tokens == b.n_tokens and np.array_equal(a.token_ids, b.token_ids)
            for field in ("logprob", "mean", "var"):
                np.testing.assert_allclose(getattr(b, field), getattr(a, field), atol=1e-4, err_msg=field)
    # and the models differ from each other and from the base: they did train
    means = [np.mean([s.logprob.mean() for s in per]) for per in banked]
    assert len({round(m, 3) for m in means}) == 3
    assert min(means) > np.mean([s.logprob.mean() for s in token_statistics(base, tokenizer, scored)]) + 0.05


def test_reference_sets_from_banks_equal_one_at_a_time(setting, monkeypatch):
    import miaudit.text.lm_bank as lm_bank
    from miaudit.text.reference_lms import train_reference_set

    tokenizer, base, _, docs = setting
    pool, evaluated = docs[:40], docs[40:80]
    built = {}
    for how, plan in (("bank", lambda *a, **k: (3, 2)), ("loop", lambda *a, **k: (1, 1))):  # 4 models: banks of 3 and 1
        monkeypatch.setattr(lm_bank, "bank_plan", plan)
        built[how] = train_reference_set(base, tokenizer, variant="online", k=4, pool=pool, evaluated=evaluated, epochs=2, lr=1e-3, seed=0)
    bank, loop = built["bank"], built["loop"]
    assert np.array_equal(bank.in_mask, loop.in_mask) and np.array_equal(bank.population_in, loop.population_in)
    for rows_b, rows_l in ((bank.evaluated, loop.evaluated), (bank.population, loop.population)):
        assert len(rows_b) == len(rows_l) == 4
        for row_b, row_l in zip(rows_b, rows_l):
            np.testing.assert_allclose([s.logprob.mean() for s in row_b], [s.logprob.mean() for s in row_l], atol=1e-4)


def test_what_the_bank_cannot_reproduce_is_named_and_falls_back(setting):
    tokenizer, base, texts, _ = setting
    assert bank_unsupported(base) is None
    dropout = build_lm(LMConfig(n_layer=1, n_embd=32, n_head=2, n_positions=32, dropout=0.1), len(tokenizer), seed=0)
    assert "dropout" in bank_unsupported(dropout)
    frozen = copy.deepcopy(base)
    frozen.transformer.wpe.weight.requires_grad_(False)
    assert "frozen" in bank_unsupported(frozen)
    assert "GPT2LMHeadModel" in bank_unsupported(base.transformer)
    with pytest.raises(ConfigError, match="cannot be trained in a bank: dropout"):
        LMBank(dropout, 2)
    # a model too big for the memory budget trains one at a time; a small one in one bank
    assert bank_plan(base, 16, budget_bytes=10_000) == (1, 1)
    assert bank_plan(build_lm("small", 512, seed=0), 16) == (1, 1)  # too large for a bank to pay
    per_bank, chunk = bank_plan(base, 16)
    assert per_bank == 16 and 1 <= chunk <= 16


def test_hostile_arguments_are_refused(setting):
    tokenizer, base, texts, _ = setting
    with pytest.raises(InputError, match="3 seeds"):
        train_lm_bank(base, tokenizer, texts, epochs=1, seeds=[1, 2])
    with pytest.raises(InputError, match="non-empty list"):
        train_lm_bank(base, tokenizer, [], epochs=1, seeds=[])
    with pytest.raises(ConfigError, match="chunk"):
        train_lm_bank(base, tokenizer, texts, epochs=1, seeds=[1, 2, 3], chunk=0)
    with pytest.raises(ConfigError, match="epochs"):
        train_lm_bank(base, tokenizer, texts, epochs=0, seeds=[1, 2, 3])
    with pytest.raises(InputError, match="2 or more tokens"):
        train_lm_bank(base, tokenizer, [["a"], ["b"]], epochs=1, seeds=[1, 2])


def test_reference_lms_are_cached_by_what_made_them(setting, tmp_path):
    from miaudit.errors import CacheError
    from miaudit.models.cache import ModelCache
    from miaudit.text.reference_lms import train_reference_set

    tokenizer, base, _, docs = setting
    common = {"variant": "offline", "k": 2, "pool": docs[:30], "evaluated": docs[30:50], "lr": 1e-3, "seed": 0}
    first_cache = ModelCache(tmp_path / "cache")
    first = train_reference_set(base, tokenizer, epochs=2, cache=first_cache, **common)
    assert (first_cache.saves, first_cache.loads) == (2, 0)
    again_cache = ModelCache(tmp_path / "cache")
    again = train_reference_set(base, tokenizer, epochs=2, cache=again_cache, **common)
    assert (again_cache.saves, again_cache.loads) == (0, 2)  # read back, not retrained
    for row_a, row_b in zip(first.evaluated + first.population, again.evaluated + again.population):
        np.testing.assert_allclose([s.logprob.mean() for s in row_a], [s.logprob.mean() for s in row_b], atol=1e-4)
    other = ModelCache(tmp_path / "cache")
    train_reference_set(base, tokenizer, epochs=3, cache=other, **common)  # another recipe: other keys
    assert (other.saves, other.loads) == (2, 0)
    files = sorted((tmp_path / "cache").rglob("*.safetensors"))
    assert len(files) == 4
    for f in files:
        f.write_bytes(b"not a safetensors file")
    with pytest.raises(CacheError, match="delete the file and rerun"):
        train_reference_set(base, tokenizer, epochs=2, cache=ModelCache(tmp_path / "cache"), **common)
