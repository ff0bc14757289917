"""A bank of K small GPT-2 language models trained, and scored, together in one pass.

Why: LiRA and RMIA on text (Carlini et al. 2022, "Membership Inference Attacks From First
Principles"; Zarifzadeh et al. 2024 for RMIA) need K reference LMs trained with the target's
recipe — the attacker knows the training procedure and repeats it on its own halves of a pool
(:mod:`miaudit.text.reference_lms`). The references of this toolkit are tiny (0.1M to 1M
parameters besides the embeddings): one Hugging Face training step of one of them is mostly
framework overhead (module calls, autograd bookkeeping, a 16 x 64 token batch) as well as
arithmetic, so K of them trained one after another pay that overhead K times. Measured
(benchmarks/text_lm_bank.py, K = 16, 2 threads): 1.6x per model at ``tiny``, 0.9x at
``small``, where the arithmetic dominates; :func:`bank_plan` keeps larger models out.

What: the K models' parameters are stacked into tensors with a leading K dimension, the GPT-2
forward pass is written by hand with batched matrix products (``torch.baddbmm`` / ``bmm``) over
that dimension, and AdamW is applied by hand to the stacked tensors. Each model keeps its own
documents, its own seed and therefore its own batch order, exactly the sequence of batches
:func:`miaudit.text.lm.train_lm` would give it; a per-model *active* mask stops a model whose
batches are exhausted (its document list is shorter) from stepping: its weights, AdamW moments
and step count stay as they are. The result is the K models ``train_lm`` gives one at a time,
to float32 rounding (the matrix products are summed in another order; the tests hold the
parameters to 1e-4 and the per-document mean log-likelihood to 1e-4 nats).

Exactness with Hugging Face's GPT-2 (transformers 5): token + position embeddings; per layer
pre-LayerNorm (eps from the config), fused ``c_attn`` (Conv1D: ``x @ W + b``), causal
attention scaled by ``head_dim ** -0.5``, ``c_proj``, residual; LayerNorm, MLP with
``gelu_new`` (the tanh approximation), residual; final LayerNorm and the head tied to the token
embeddings. The padding mask is not needed: documents are right-padded, so a real token only
attends to real tokens before it under the causal mask, and padded positions never reach the
loss. The loss is, per model, the mean next-token cross-entropy over the positions that predict
a real token (HF's ``labels = -100`` on padding), and the head is computed only there.

:func:`bank_unsupported` names what the bank cannot reproduce (dropout, another architecture,
untied head, frozen parameters, ...); callers then train one model at a time.

Units: log-likelihoods in nats; ``chunk`` is a number of models per batched product.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from miaudit.errors import ConfigError, InputError
from miaudit.models.seeding import derive_seed
from miaudit.seeds import check_user_seed
from miaudit.text.stats import TokenStats

__all__ = ["BANK_MAX_PARAMS", "BANK_MEMORY_BYTES", "LMBank", "bank_plan", "bank_unsupported", "train_lm_bank"]

# Per-layer parameter names of HF's GPT2Block, in the order the forward pass reads them.
_LAYER_PARAMS = (
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
    "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
)  # fmt: skip
_TOP_PARAMS = ("transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight", "transformer.ln_f.bias")
_ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh", "gelu")

# torch.optim.AdamW's defaults (train_lm uses them).
_BETA1, _BETA2, _EPS, _WEIGHT_DECAY = 0.9, 0.999, 1e-8, 0.01


def _param_names(n_layer: int) -> list[str]:
    return list(_TOP_PARAMS) + [f"transformer.h.{i}.{p}" for i in range(n_layer) for p in _LAYER_PARAMS]


def bank_unsupported(base: Any) -> str | None:
    """Why the bank cannot train copies of ``base`` as :func:`~miaudit.text.lm.train_lm` would,
    or ``None`` when it can (a float32 GPT-2 LM on CPU, no dropout, tied head, all parameters
    trainable, no cross-attention)."""
    try:
        from transformers import GPT2LMHeadModel
    except ImportError:  # pragma: no cover - transformers is a dependency of the text extra
        return "transformers is not installed"
    if type(base) is not GPT2LMHeadModel:
        return f"the bank reproduces GPT2LMHeadModel only, not {type(base).__name__}"
    cfg = base.config
    for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
        if float(getattr(cfg, name, 0.0) or 0.0) > 0.0:
            return f"dropout ({name}={getattr(cfg, name)}) draws random masks the bank does not reproduce"
    if getattr(cfg, "activation_function", None) not in _ACTIVATIONS:
        return f"activation {getattr(cfg, 'activation_function', None)!r} is not one of {', '.join(_ACTIVATIONS)}"
    if getattr(cfg, "add_cross_attention", False):
        return "cross-attention is not supported"
    if getattr(cfg, "reorder_and_upcast_attn", False):
        return "reorder_and_upcast_attn is not supported"
    if base.lm_head.weight is not base.transformer.wte.weight:
        return "the head is not tied to the token embeddings"
    if getattr(base.lm_head, "bias", None) is not None:
        return "the head has a bias"
    names = _param_names(int(cfg.n_layer))
    have = dict(base.named_parameters())
    if sorted(have) != sorted(names):
        return "the model has parameters other than GPT-2's (adapters, extra heads)"
    if any(not p.requires_grad for p in have.values()):
        return "some parameters are frozen"
    if any(p.dtype != torch.float32 or p.device.type != "cpu" for p in have.values()):
        return "the bank trains float32 models on CPU only"
    return None


class LMBank:
    """K GPT-2 models of one config, their parameters stacked along a leading K dimension.

    Build it with :func:`train_lm_bank`; read it with :meth:`token_statistics` (all K models on
    the same documents) or :meth:`models` (K ordinary ``GPT2LMHeadModel``)."""

    def __init__(self, base: Any, k: int, *, chunk: int | None = None) -> None:
        reason = bank_unsupported(base)
        if reason:
            raise ConfigError(f"this model cannot be trained in a bank: {reason}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"a bank needs a positive whole number of models, got {k!r}")
        self.base = base
        self.k = k
        self.chunk = _check_chunk(chunk, k)
        cfg = base.config
        self.n_layer, self.n_head = int(cfg.n_layer), int(cfg.n_head)
        self.n_embd, self.context = int(cfg.n_embd), int(cfg.n_positions)
        self.eps = float(cfg.layer_norm_epsilon)
        self.activation = cfg.activation_function
        scaling = (self.n_embd // self.n_head) ** -0.5 if getattr(cfg, "scale_attn_weights", True) else 1.0
        by_layer = bool(getattr(cfg, "scale_attn_by_inverse_layer_idx", False))
        self.scaling = [scaling / (i + 1) if by_layer else scaling for i in range(self.n_layer)]
        self.names = _param_names(self.n_layer)
        with torch.no_grad():
            self.params = {n: base.get_parameter(n).detach().unsqueeze(0).repeat(k, *[1] * base.get_parameter(n).dim()).contiguous()
                           for n in self.names}  # fmt: skip

    # ------------------------------------------------------------------ forward

    def _hidden(self, p: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
        """Final hidden states (k, B, T, D) of models ``p`` (stacked, k of them) on ``ids`` (k, B, T)."""
        k, b, t = ids.shape
        d, h = self.n_embd, self.n_head
        wte = p["transformer.wte.weight"]
        vocab = wte.shape[1]
        offsets = (torch.arange(k) * vocab).view(k, 1, 1)
        x = F.embedding(ids + offsets, wte.reshape(k * vocab, d)) + p["transformer.wpe.weight"][:, :t].unsqueeze(1)
        x = x.reshape(k, b * t, d)
        for i in range(self.n_layer):
            q = f"transformer.h.{i}."
            a = self._norm(x, p[q + "ln_1.weight"], p[q + "ln_1.bias"])
            qkv = torch.baddbmm(p[q + "attn.c_attn.bias"].unsqueeze(1), a, p[q + "attn.c_attn.weight"])
            qkv = qkv.view(k * b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
            att = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True, scale=self.scaling[i])
            att = att.transpose(1, 2).reshape(k, b * t, d)
            x = x + torch.baddbmm(p[q + "attn.c_proj.bias"].unsqueeze(1), att, p[q + "attn.c_proj.weight"])
            m = self._norm(x, p[q + "ln_2.weight"], p[q + "ln_2.bias"])
            m = self._act(torch.baddbmm(p[q + "mlp.c_fc.bias"].unsqueeze(1), m, p[q + "mlp.c_fc.weight"]))
            x = x + torch.baddbmm(p[q + "mlp.c_proj.bias"].unsqueeze(1), m, p[q + "mlp.c_proj.weight"])
        x = self._norm(x, p["transformer.ln_f.weight"], p["transformer.ln_f.bias"])
        return x.view(k, b, t, d)

    def _norm(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(b.unsqueeze(1), F.layer_norm(x, (self.n_embd,), eps=self.eps), w.unsqueeze(1))

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation == "gelu":
            return F.gelu(x)
        if self.activation == "gelu_pytorch_tanh":
            return F.gelu(x, approximate="tanh")
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))

    def _slice(self, lo: int, hi: int) -> dict[str, torch.Tensor]:
        return {n: t[lo:hi] for n, t in self.params.items()}

    # ------------------------------------------------------------------ training

    def train(
        self, tokenizer: Any, texts: Sequence[Sequence[str]], *, epochs: int, lr: float = 1e-3, batch_size: int = 16,
        seeds: Sequence[int],
    ) -> "LMBank":  # fmt: skip
        """Train the K models in place, model j on ``texts[j]`` with seed ``seeds[j]``, as
        :func:`~miaudit.text.lm.train_lm` would train each alone (AdamW, ``lr``, ``batch_size``,
        ``epochs``; the same batch order). Returns the bank."""
        from miaudit.text.lm import _batches, _check_recipe, _pad_id, _training_documents

        _check_recipe(epochs, lr, batch_size)
        if isinstance(texts, str) or len(texts) != self.k:
            raise InputError(f"a bank of {self.k} models needs {self.k} document lists, one per model")
        if len(seeds) != self.k:
            raise InputError(f"a bank of {self.k} models needs {self.k} seeds, one per model")
        seeds = [check_user_seed(int(s)) for s in seeds]
        pad = _pad_id(tokenizer)
        # Each model's whole sequence of batches, epoch after epoch, drawn as train_lm draws it.
        schedules: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        for docs, seed in zip(texts, seeds):
            encoded = _training_documents(tokenizer, docs, self.context)
            order = torch.Generator().manual_seed(derive_seed(seed, "lm/order"))
            batches = []
            for _ in range(epochs):
                perm = torch.randperm(len(encoded), generator=order).tolist()
                batches.extend(_batches([encoded[i] for i in perm], batch_size, pad))
            schedules.append(batches)
        steps = max(len(s) for s in schedules)
        leaves = {n: t.detach().clone().requires_grad_(True) for n, t in self.params.items()}
        moments = {n: (torch.zeros_like(t), torch.zeros_like(t)) for n, t in leaves.items()}
        step_count = np.zeros(self.k, dtype=np.int64)
        for s in range(steps):
            active = np.array([s < len(sched) for sched in schedules])
            for lo in range(0, self.k, self.chunk):
                hi = min(lo + self.chunk, self.k)
                if not active[lo:hi].any():
                    continue
                loss = self._chunk_loss({n: t[lo:hi] for n, t in leaves.items()}, [sched[s] if s < len(sched) else None for sched in schedules[lo:hi]], pad)
                loss.backward()
            step_count += active
            self._adamw(leaves, moments, active, step_count, float(lr))
        self.params = {n: t.detach() for n, t in leaves.items()}
        return self

    def _chunk_loss(self, p: dict[str, torch.Tensor], batches: list[tuple[torch.Tensor, torch.Tensor] | None], pad: int) -> torch.Tensor:
        """Sum over the chunk's models of each one's mean next-token loss on its batch (0 for a
        model with no batch this step)."""
        k = len(batches)
        real = [x for x in batches if x is not None]
        b = max(x[0].shape[0] for x in real)
        t = max(x[0].shape[1] for x in real)
        ids = torch.full((k, b, t), pad, dtype=torch.int64)
        mask = torch.zeros((k, b, t), dtype=torch.bool)
        for j, x in enumerate(batches):
            if x is not None:
                ids[j, : x[0].shape[0], : x[0].shape[1]] = x[0]
                mask[j, : x[1].shape[0], : x[1].shape[1]] = x[1].bool()
        hidden = self._hidden(p, ids)
        # Positions that predict a real token (HF: labels[..., 1:] != -100).
        predicts = mask[:, :, 1:].reshape(k, -1)
        counts = predicts.sum(1)
        n = int(counts.max())
        flat = hidden[:, :, :-1].reshape(k, -1, self.n_embd)
        targets_all = ids[:, :, 1:].reshape(k, -1)
        # Per model the indices of its predicting positions, padded with position 0 (weight 0).
        order = torch.argsort((~predicts).to(torch.int8), dim=1, stable=True)[:, :n]
        valid = torch.arange(n).unsqueeze(0) < counts.unsqueeze(1)
        h = torch.gather(flat, 1, order.unsqueeze(-1).expand(k, n, self.n_embd))
        targets = torch.gather(targets_all, 1, order)
        logits = torch.bmm(h, p["transformer.wte.weight"].transpose(1, 2))
        ce = torch.logsumexp(logits, -1) - logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        weight = valid.float() / counts.clamp(min=1).unsqueeze(1).float()
        return (ce * weight).sum()

    def _adamw(self, leaves: dict[str, torch.Tensor], moments: dict, active: np.ndarray, step_count: np.ndarray, lr: float) -> None:
        """torch.optim.AdamW's update (defaults, ``lr``) on the active models only; the others'
        weights, moments and step counts are left as they are."""
        idx = np.flatnonzero(active)
        if not len(idx):
            return
        steps = step_count[idx].astype(np.float64)
        step_size = torch.tensor(lr / (1.0 - _BETA1**steps), dtype=torch.float32)
        bc2_sqrt = torch.tensor(np.sqrt(1.0 - _BETA2**steps), dtype=torch.float32)
        every = len(idx) == self.k
        sel = torch.from_numpy(idx)
        with torch.no_grad():
            for n, w in leaves.items():
                g = w.grad
                m, v = moments[n]
                shape = (-1,) + (1,) * (w.dim() - 1)
                if every:
                    pw, pm, pv, pg = w, m, v, g
                else:
                    pw, pm, pv, pg = w[sel], m[sel], v[sel], g[sel]
                pw.mul_(1.0 - lr * _WEIGHT_DECAY)
                pm.lerp_(pg, 1.0 - _BETA1)
                pv.mul_(_BETA2).addcmul_(pg, pg, value=1.0 - _BETA2)
                denom = (pv.sqrt() / bc2_sqrt.view(shape)).add_(_EPS)
                pw.sub_(step_size.view(shape) * pm / denom)
                if not every:
                    w.index_copy_(0, sel, pw)
                    m.index_copy_(0, sel, pm)
                    v.index_copy_(0, sel, pv)
                w.grad = None

    # ------------------------------------------------------------------ reading

    def token_statistics(self, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 16) -> list[list[TokenStats]]:
        """Per model, per document, the :class:`TokenStats` of
        :func:`~miaudit.text.lm.token_statistics` (same truncation, float32 reductions,
        float64 results), all K models in one batched forward pass per batch of documents."""
        from miaudit.text.lm import _batches, _check_batch_size, _pad_id, _scored_documents

        _check_batch_size(batch_size)
        encoded = _scored_documents(tokenizer, texts, self.context)
        out: list[list[TokenStats]] = [[] for _ in range(self.k)]
        with torch.no_grad():
            for ids, mask in _batches(encoded, batch_size, _pad_id(tokenizer)):
                predicts = mask[:, 1:].bool()
                lengths = mask.sum(1).tolist()
                targets = ids[:, 1:][predicts]
                cuts = np.cumsum([n - 1 for n in lengths])[:-1]
                target_parts = np.split(targets.numpy(), cuts)
                for lo in range(0, self.k, self.chunk):
                    hi = min(lo + self.chunk, self.k)
                    p = self._slice(lo, hi)
                    hidden = self._hidden(p, ids.unsqueeze(0).expand(hi - lo, -1, -1))
                    h = hidden[:, :, :-1][:, predicts]  # (k, N, D), the predicting positions only
                    logp = torch.log_softmax(torch.bmm(h, p["transformer.wte.weight"].transpose(1, 2)), dim=-1)
                    prob = logp.exp()
                    mean = (prob * logp).sum(-1)
                    var = (prob * (logp - mean.unsqueeze(-1)).square()).sum(-1)
                    actual = logp.gather(-1, targets.view(1, -1, 1).expand(hi - lo, -1, 1)).squeeze(-1)
                    arrays = [np.split(a.double().numpy(), cuts, axis=1) for a in (actual, mean, var)]
                    for j in range(hi - lo):
                        for d, n in enumerate(lengths):
                            out[lo + j].append(TokenStats(arrays[0][d][j], arrays[1][d][j], arrays[2][d][j], n_tokens=n,
                                                          token_ids=target_parts[d].copy()))  # fmt: skip
        return out

    def models(self) -> list[Any]:
        """The K models as ordinary ``GPT2LMHeadModel`` (deep copies of the base, in eval mode)."""
        out = []
        for j in range(self.k):
            model = copy.deepcopy(self.base)
            with torch.no_grad():
                for n, t in self.params.items():
                    model.get_parameter(n).copy_(t[j])
            out.append(model.eval())
        return out


def _check_chunk(chunk: object, k: int) -> int:
    if chunk is None:
        return min(k, DEFAULT_CHUNK)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ConfigError(f"chunk must be a positive whole number of models, got {chunk!r}")
    return min(chunk, k)


# Models per batched product: on 2 CPU threads chunks of 1-8 train within 10% of each other and
# chunks of 16 slower (more padding: every model of a chunk pads to the longest batch among them)
# (benchmarks/text_lm_bank.py, tiny, K = 16).
DEFAULT_CHUNK = 2

# What a bank may hold at once: the stacked training state of its models (weights, gradients,
# the leaves' copies and AdamW's two moments: 5 float32 copies) and one chunk's activations.
BANK_MEMORY_BYTES = 2 * 1024**3

# Above this many parameters a step is bound by arithmetic, not by per-call overhead, and the
# bank no longer pays (benchmarks/text_lm_bank.py, K = 16, 2 CPU threads: the ``tiny`` size,
# 0.14M parameters, 1.6x per model; ``small``, 0.87M, 0.9x): such models train one at a time.
BANK_MAX_PARAMS = 400_000


def bank_plan(base: Any, k: int, *, batch_size: int = 16, budget_bytes: int = BANK_MEMORY_BYTES) -> tuple[int, int]:
    """(models per bank, models per batched product) for ``k`` copies of ``base`` within
    ``budget_bytes``: half of it for the banks' stacked training state, half for one chunk's
    activations (per model a batch of ``batch_size`` full-context documents: the hidden states
    each layer keeps for the backward pass, the attention scores and the head's logits, three
    times over for the log-softmax and its gradient). ``(1, 1)`` means a bank buys nothing or
    does not fit, or the model is too large for a bank to pay (:data:`BANK_MAX_PARAMS`): train
    one model at a time (:func:`bank_unsupported` says whether it can at all).
    """
    cfg = base.config
    n_params = sum(p.numel() for p in base.parameters())
    if n_params > BANK_MAX_PARAMS:
        return 1, 1
    tokens = batch_size * int(cfg.n_positions)
    per_layer = tokens * (16 * int(cfg.n_embd)) + batch_size * int(cfg.n_head) * int(cfg.n_positions) ** 2
    activations = 4 * (int(cfg.n_layer) * per_layer + 3 * tokens * int(cfg.vocab_size))
    per_bank = max(1, min(k, (budget_bytes // 2) // (5 * 4 * n_params)))
    chunk = max(1, min(per_bank, DEFAULT_CHUNK, (budget_bytes // 2) // activations))
    return per_bank, chunk


def train_lm_bank(
    base: Any,
    tokenizer: Any,
    texts: Sequence[Sequence[str]],
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 16,
    seeds: Sequence[int],
    chunk: int | None = None,
) -> LMBank:
    """K = ``len(texts)`` copies of ``base`` (left untouched) trained together, model j on
    ``texts[j]`` with seed ``seeds[j]``: the models :func:`~miaudit.text.lm.train_lm` gives one
    at a time, to float32 rounding. Raises :class:`ConfigError` where :func:`bank_unsupported`
    gives a reason."""
    if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts:
        raise InputError("texts must be a non-empty list of document lists, one per model")
    return LMBank(base, len(texts), chunk=chunk).train(tokenizer, texts, epochs=epochs, lr=lr, batch_size=batch_size, seeds=seeds)
