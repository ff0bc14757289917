"""Small causal language models: a byte-level BPE tokenizer, GPT-2 shaped models, training, scoring.

The models are built to be audited: sizes that train in seconds to a minute on two CPU cores,
every random draw (initial weights, dropout, batch order) from a stream derived from one seed,
so the same seed gives the same weights on CPU. Pre-training then fine-tuning is
:func:`train_lm` called twice (public text, then the members). Folders on disk are Hugging
Face folders with safetensors weights only (:mod:`miaudit.text.lm_folder`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedModel, PreTrainedTokenizerFast

from miaudit.errors import ConfigError, InputError
from miaudit.models.device import CPU, current_device
from miaudit.models.seeding import derive_seed
from miaudit.seeds import check_user_seed
from miaudit.text.lm_folder import load_lm, save_lm
from miaudit.text.stats import TokenStats

__all__ = [
    "EOS_TOKEN",
    "LM_SIZES",
    "PAD_TOKEN",
    "LMConfig",
    "TokenStats",
    "build_lm",
    "conditional_token_statistics",
    "load_lm",
    "lm_config",
    "prefix_tokens_used",
    "save_lm",
    "token_frequencies",
    "token_statistics",
    "train_lm",
    "train_tokenizer",
]

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


def train_tokenizer(texts: Sequence[str], *, vocab_size: int = 512, seed: int = 0) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (GPT-2's scheme: any text encodes, nothing is unknown) with
    ``vocab_size`` entries including the end-of-text and padding tokens.

    Train it on public text only: a tokenizer fitted on the members would leak them through its
    merges. ``seed`` is checked but draws nothing: BPE training is deterministic in its input.
    """
    check_user_seed(seed)
    texts = _documents(texts, "tokenizer texts")
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < len(alphabet) + 2:
        raise ConfigError(f"vocab_size must be a whole number >= {len(alphabet) + 2} (256 bytes + 2 special tokens), got {vocab_size!r}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS_TOKEN, bos_token=EOS_TOKEN, pad_token=PAD_TOKEN)


@dataclass(frozen=True)
class LMConfig:
    """The shape of a GPT-2 style model: layers, width, attention heads, context (tokens), dropout."""

    n_layer: int
    n_embd: int
    n_head: int
    n_positions: int
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_embd", "n_head", "n_positions"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"LMConfig.{name} must be a positive whole number, got {value!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"LMConfig.n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"LMConfig.dropout must lie in [0, 1), got {self.dropout!r}")


# Sizes for audits on a laptop. No dropout: these stand in for models trained to memorise,
# and an audit of the leakiest plausible recipe is the conservative one.
LM_SIZES: dict[str, LMConfig] = {
    "tiny": LMConfig(n_layer=2, n_embd=64, n_head=2, n_positions=64),  # ~0.1M parameters + embeddings
    "small": LMConfig(n_layer=4, n_embd=128, n_head=4, n_positions=128),  # ~0.8M + embeddings
}


def lm_config(size: str) -> LMConfig:
    """The named size ``size`` ("tiny", "small")."""
    try:
        return LM_SIZES[size]
    except KeyError:
        raise ConfigError(f"unknown language-model size {size!r}; choose one of: {', '.join(LM_SIZES)}") from None


def build_lm(
    config: LMConfig | str, vocab_size: int, seed: int, *, eos_token_id: int = 0, pad_token_id: int = 1
) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2 model of ``config`` (or a named size), weights drawn from ``seed``.

    The token ids default to those of :func:`train_tokenizer` (end-of-text 0, padding 1).
    """
    cfg = lm_config(config) if isinstance(config, str) else config
    seed = check_user_seed(seed)
    gpt = GPT2Config(
        vocab_size=int(vocab_size),
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    with _seeded(seed, "lm/init"):
        model = GPT2LMHeadModel(gpt)
    model.config.miaudit_lm_config = asdict(cfg)  # kept in config.json: which named shape it was
    return model.eval()


def train_lm(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    texts: Sequence[str],
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 16,
    seed: int,
) -> PreTrainedModel:
    """Train ``model`` in place on ``texts`` with AdamW (next-token loss); returns it in eval mode.

    Documents are truncated to the model's context and padded per batch; padding is masked in
    attention and in the loss (label -100). Batch order and dropout come from ``seed``, so a
    seed gives the same weights on CPU. Fine-tuning a pre-trained model is the same call. It
    trains on the run's device (``--device``) and the model comes back on the CPU.
    """
    seed = check_user_seed(seed)
    _check_recipe(epochs, lr, batch_size)
    encoded = _training_documents(tokenizer, texts, _context(model))
    order = torch.Generator().manual_seed(derive_seed(seed, "lm/order"))
    with _on_run_device(model) as device, _seeded(seed, "lm/dropout"):
        optimizer = torch.optim.AdamW(model.parameters(), lr=float(lr))
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(encoded), generator=order).tolist()
            for ids, mask in _batches([encoded[i] for i in perm], batch_size, _pad_id(tokenizer), device):
                labels = ids.masked_fill(mask == 0, -100)
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    return model.eval()


def token_statistics(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, texts: Sequence[str], *, batch_size: int = 16
) -> list[TokenStats]:
    """Per document, the :class:`TokenStats` of its predicted tokens (each truncated to the
    context), with their ``token_ids``.

    The full-vocabulary reductions run in float32 (a float64 copy of the logits of a large
    vocabulary would not fit); the results are returned as float64.
    """
    _check_batch_size(batch_size)
    encoded = _scored_documents(tokenizer, texts, _context(model))
    return _statistics(model, tokenizer, encoded, [0] * len(encoded), batch_size)


def conditional_token_statistics(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, texts: Sequence[str], prefix: str, *, batch_size: int = 16
) -> list[TokenStats]:
    """Per document, the :class:`TokenStats` of its own predicted tokens with ``prefix``'s
    tokens placed before it (ReCaLL's conditional log-likelihood).

    The statistics cover exactly the tokens :func:`token_statistics` covers (the document's
    tokens 2..n, each now also conditioned on the prefix), so the two compare token for token;
    an empty prefix gives the unconditional statistics. The document's first token, which
    ReCaLL's reference code also scores given the prefix, is left out for that reason.

    Context: the document keeps the place :func:`token_statistics` gives it (its first
    ``context`` tokens); the prefix gets what room is left, its *last* tokens (the ones next to
    the document) kept, the rest dropped; a document that fills the context alone is scored
    with no prefix at all. :func:`prefix_tokens_used` says how many prefix tokens each got.
    Prefix and document are tokenized separately and their ids joined, as in ReCaLL's code.
    """
    _check_batch_size(batch_size)
    if not isinstance(prefix, str):
        raise InputError("prefix must be a string (the known non-member text placed before each document)")
    context = _context(model)
    encoded = _scored_documents(tokenizer, texts, context)
    prefix_ids = list(tokenizer(prefix, add_special_tokens=False)["input_ids"]) if prefix else []
    used = _prefix_room(len(prefix_ids), encoded, context)
    rows = [prefix_ids[len(prefix_ids) - k :] + ids if k else ids for k, ids in zip(used, encoded)]
    return _statistics(model, tokenizer, rows, used, batch_size)


def prefix_tokens_used(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, texts: Sequence[str], prefix: str) -> list[int]:
    """How many of ``prefix``'s tokens :func:`conditional_token_statistics` places before each document."""
    context = _context(model)
    n_prefix = len(tokenizer(prefix, add_special_tokens=False)["input_ids"]) if prefix else 0
    return _prefix_room(n_prefix, _scored_documents(tokenizer, texts, context), context)


def token_frequencies(tokenizer: PreTrainedTokenizerFast, texts: Sequence[str]) -> np.ndarray:
    """Each vocabulary entry's frequency in ``texts`` (all their tokens, no special tokens added),
    Laplace-smoothed: ``(count + 1) / (total + V)``, V = ``len(tokenizer)``; float64, sums to 1.

    DC-PDD's reference frequencies: give text the attacker holds, never the evaluated documents.
    """
    docs = _documents(texts, "reference texts")
    vocab = len(tokenizer)
    ids = [i for x in tokenizer(docs, add_special_tokens=False)["input_ids"] for i in x]
    counts = np.bincount(np.asarray(ids, dtype=np.int64), minlength=vocab).astype(np.float64)
    if len(counts) > vocab:
        raise InputError(f"the tokenizer produced ids up to {len(counts) - 1} but has {vocab} entries")
    return (counts + 1.0) / (counts.sum() + vocab)


def _scored_documents(tokenizer: PreTrainedTokenizerFast, texts: Sequence[str], context: int) -> list[list[int]]:
    encoded = _encode(tokenizer, _documents(texts, "scored texts"), context)
    short = [i for i, ids in enumerate(encoded) if len(ids) < 2]
    if short:
        raise InputError(f"{len(short)} document(s) have fewer than 2 tokens (first: #{short[0]}); drop them before scoring")
    return encoded


def _prefix_room(n_prefix: int, encoded: list[list[int]], context: int) -> list[int]:
    return [min(n_prefix, context - len(ids)) for ids in encoded]


def _statistics(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, rows: list[list[int]], starts: list[int], batch_size: int
) -> list[TokenStats]:
    """Statistics of each row's tokens after ``starts[i]`` (the document's first token there):
    the predictions of positions start+1 .. len-1."""
    out: list[TokenStats] = []
    was_training = model.training
    model.eval()
    with torch.no_grad(), _on_run_device(model) as device:
        for first, (ids, mask) in zip(range(0, len(rows), batch_size), _batches(rows, batch_size, _pad_id(tokenizer), device)):
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            logp = torch.log_softmax(logits, dim=-1)
            p = logp.exp()
            mean = (p * logp).sum(-1)
            # Centred form: never negative, unlike E[(log p)^2] - mean^2 in floating point.
            var = (p * (logp - mean.unsqueeze(-1)).square()).sum(-1)
            targets = ids[:, 1:]
            actual = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            for row, n in enumerate(mask.sum(1).tolist()):
                s = starts[first + row]
                lp, mu, v = (t[row, s : n - 1].double().cpu().numpy() for t in (actual, mean, var))
                out.append(TokenStats(lp, mu, v, n_tokens=n - s, token_ids=targets[row, s : n - 1].cpu().numpy().copy()))
    model.train(was_training)
    return out


# --------------------------------------------------------------------------- helpers


def _documents(texts: Sequence[str], what: str) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise InputError(f"{what} must be a list of strings, one per document")
    if not texts:
        raise InputError(f"{what} are empty; give at least one document")
    return list(texts)


def _check_recipe(epochs: object, lr: object, batch_size: object) -> None:
    """The training recipe's checks, shared by :func:`train_lm` and :mod:`miaudit.text.lm_bank`."""
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ConfigError(f"epochs must be a positive whole number, got {epochs!r}")
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr must be a positive number, got {lr!r}")
    _check_batch_size(batch_size)


def _training_documents(tokenizer: PreTrainedTokenizerFast, texts: Sequence[str], context: int) -> list[list[int]]:
    """The training documents' token ids, truncated to ``context``; those of fewer than 2 tokens
    (nothing to predict) dropped. Raises if none is left."""
    encoded = [x for x in _encode(tokenizer, _documents(texts, "training texts"), context) if len(x) >= 2]
    if not encoded:
        raise InputError("no training text has 2 or more tokens; give longer documents")
    return encoded


def _check_batch_size(batch_size: object) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive whole number, got {batch_size!r}")


def _context(model: PreTrainedModel) -> int:
    n = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    if not isinstance(n, int) or n < 2:
        raise ConfigError("the model's config names no context length (n_positions / max_position_embeddings)")
    return n


def _encode(tokenizer: PreTrainedTokenizerFast, texts: list[str], context: int) -> list[list[int]]:
    # No special tokens: a document's score is about its own tokens, whatever the tokenizer's habits.
    ids = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=context)["input_ids"]
    return [list(x) for x in ids]


def _pad_id(tokenizer: PreTrainedTokenizerFast) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ConfigError("the tokenizer has neither a padding nor an end-of-text token; add one")
    return int(pad)


def _batches(
    encoded: list[list[int]], batch_size: int, pad_id: int, device: torch.device = CPU
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Right-padded (input_ids, attention_mask) batches of consecutive documents, on ``device``."""
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        width = max(len(x) for x in chunk)
        ids = np.full((len(chunk), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        for row, x in enumerate(chunk):
            ids[row, : len(x)] = x
            mask[row, : len(x)] = 1
        ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
        yield (ids_t, mask_t) if device.type == "cpu" else (ids_t.to(device), mask_t.to(device))


@contextlib.contextmanager
def _on_run_device(model: PreTrainedModel) -> Iterator[torch.device]:
    """``model`` on the run's device (:func:`miaudit.models.device.current_device`) inside the
    block and back on the CPU after it; nothing moves on the CPU."""
    device = current_device()
    if device.type == "cpu":
        yield device
        return
    model.to(device)
    try:
        yield device
    finally:
        model.to(CPU)


@contextlib.contextmanager
def _seeded(seed: int, stream: str) -> Iterator[None]:
    """Run a block on torch's global generator seeded for ``stream`` (transformers' init and
    dropout draw from it), restoring the caller's generator state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, stream))
        yield
