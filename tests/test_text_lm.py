"""Small causal LMs: deterministic tokenizer and training, safe folders, token statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from miaudit.errors import ConfigError, InputError
from miaudit.limits import use_limits
from miaudit.text.lm import build_lm, load_lm, save_lm, token_statistics, train_lm, train_tokenizer
from miaudit.text.lm_folder import LMFolderError
from text_helpers import documents

DOCS = documents(140, seed=3)
PUBLIC, TRAIN, SCORED = DOCS[:80], DOCS[80:120], DOCS[120:]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(PUBLIC, vocab_size=400)


@pytest.fixture(scope="module")
def model(tokenizer):
    return train_lm(build_lm("tiny", len(tokenizer), seed=0), tokenizer, TRAIN, epochs=2, batch_size=8, seed=0)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, model, tokenizer):
    return save_lm(model, tokenizer, tmp_path_factory.mktemp("lm") / "target")


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message
    return message


def test_tokenizer_is_deterministic_and_has_special_tokens(tokenizer):
    again = train_tokenizer(PUBLIC, vocab_size=400)
    assert again.get_vocab() == tokenizer.get_vocab()
    assert len(tokenizer) == 400
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id) == (0, 1)
    # Byte level: text the tokenizer never saw still round-trips.
    assert tokenizer.decode(tokenizer("Zürich ☃ 42")["input_ids"]) == "Zürich ☃ 42"


def test_same_seed_same_weights_other_seed_other_weights(tokenizer, model):
    def trained(seed: int):
        return train_lm(build_lm("tiny", len(tokenizer), seed=seed), tokenizer, TRAIN, epochs=2, batch_size=8, seed=seed)

    same, other = trained(0).state_dict(), trained(1).state_dict()
    reference = model.state_dict()
    assert all(torch.equal(reference[k], same[k]) for k in reference)
    assert not torch.equal(reference["transformer.wte.weight"], other["transformer.wte.weight"])


def test_training_leaves_the_global_generator_alone(tokenizer):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_lm(build_lm("tiny", len(tokenizer), seed=0), tokenizer, TRAIN[:8], epochs=1, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_save_load_round_trip_gives_identical_logprobs(folder, model, tokenizer):
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    loaded, loaded_tokenizer = load_lm(folder)
    before = token_statistics(model, tokenizer, SCORED)
    after = token_statistics(loaded, loaded_tokenizer, SCORED)
    assert all(np.array_equal(a.logprob, b.logprob) and a.n_tokens == b.n_tokens for a, b in zip(before, after))


def _copy(folder, tmp_path, *, drop=(), config=None):
    out = tmp_path / "copy"
    out.mkdir()
    for f in folder.iterdir():
        if f.name not in drop:
            (out / f.name).write_bytes(f.read_bytes())
    if config is not None:
        (out / "config.json").write_text(config)
    return out


def test_refuses_pickle_weights_without_opening_them(folder, tmp_path):
    out = _copy(folder, tmp_path, drop=("model.safetensors",))
    (out / "pytorch_model.bin").write_bytes(b"not a pickle: loading this would fail loudly")
    with pytest.raises(LMFolderError) as exc:
        load_lm(out)
    assert "pytorch_model.bin" in _one_line(exc) and "never opened" in str(exc.value)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"auto_map": {"AutoModelForCausalLM": "modeling_evil.Evil"}}, "custom code"),
        ({"model_type": "not-a-model"}, "not a causal language model"),
    ],
)
def test_refuses_custom_code_and_unknown_model_types(folder, tmp_path, change, words):
    config = json.loads((folder / "config.json").read_text())
    out = _copy(folder, tmp_path, config=json.dumps({**config, **change}))
    with pytest.raises(ConfigError) as exc:
        load_lm(out)
    assert words in _one_line(exc)


def test_refuses_python_files_missing_tokenizer_missing_folder_and_oversize_config(folder, tmp_path):
    out = _copy(folder, tmp_path, drop=("tokenizer.json",))
    with pytest.raises(LMFolderError) as exc:
        load_lm(out)
    assert "tokenizer.json is missing" in _one_line(exc)
    (out / "tokenizer.json").write_bytes((folder / "tokenizer.json").read_bytes())
    (out / "modeling_evil.py").write_text("raise SystemExit('ran')\n")
    with pytest.raises(LMFolderError) as exc:
        load_lm(out)
    assert "modeling_evil.py" in _one_line(exc)
    with pytest.raises(LMFolderError) as exc:
        load_lm(tmp_path / "nowhere")
    assert "does not exist" in _one_line(exc)
    with use_limits(json_bytes=64), pytest.raises(LMFolderError) as exc:
        load_lm(folder)
    assert "json_bytes" in _one_line(exc)


def test_token_statistics_shapes_ranges_and_the_models_own_loss(model, tokenizer):
    stats = token_statistics(model, tokenizer, SCORED, batch_size=7)  # batches of mixed lengths, padded
    assert len(stats) == len(SCORED)
    for text, s in zip(SCORED, stats):
        ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=64)["input_ids"]
        assert s.n_tokens == len(ids) and s.logprob.shape == s.mean.shape == s.var.shape == (len(ids) - 1,)
        assert s.logprob.dtype == np.float64
        assert np.all(s.logprob <= 0) and np.all(s.mean <= 0) and np.all(s.var >= 0)
        with torch.no_grad():
            t = torch.tensor([ids])
            loss = model(input_ids=t, labels=t).loss.item()  # mean over the n-1 predicted tokens
        assert s.logprob.sum() == pytest.approx(-loss * (len(ids) - 1), rel=1e-4)


def test_bad_inputs_are_one_line(model, tokenizer):
    with pytest.raises(InputError) as exc:
        token_statistics(model, tokenizer, ["fine text here", "x"])
    assert "fewer than 2 tokens" in _one_line(exc)
    with pytest.raises(InputError):
        token_statistics(model, tokenizer, "a string, not a list")
    with pytest.raises(ConfigError) as exc:
        build_lm("huge", 400, seed=0)
    assert "tiny" in _one_line(exc)
    with pytest.raises(ConfigError):
        train_tokenizer(PUBLIC, vocab_size=100)


def test_pre_training_then_fine_tuning_is_two_calls(tokenizer):
    pre = train_lm(build_lm("tiny", len(tokenizer), seed=5), tokenizer, PUBLIC, epochs=1, batch_size=16, seed=5)
    before = np.mean([s.logprob.mean() for s in token_statistics(pre, tokenizer, TRAIN)])
    fine = train_lm(pre, tokenizer, TRAIN, epochs=2, batch_size=8, seed=6)
    after = np.mean([s.logprob.mean() for s in token_statistics(fine, tokenizer, TRAIN)])
    assert fine is pre and after > before  # fine-tuning trains the same model further, on the members
