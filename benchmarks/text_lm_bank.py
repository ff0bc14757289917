"""K reference LMs one at a time (``train_lm`` + ``token_statistics``) against the bank (:mod:`miaudit.text.lm_bank`).

The setting of LiRA / RMIA on text: ``--k`` copies of one ``--size`` GPT-2, each fine-tuned on
its own random half of ``--docs`` fortunes (each document IN for k/2 models, as
:func:`miaudit.text.reference_lms.draw_memberships` draws them) for ``--epochs`` epochs with the
default recipe (AdamW 1e-3, batch 16), then each scored on all ``--docs`` documents. The
tokenizer (512 entries) is trained on ``--docs`` other fortunes. Both paths run in the same
process on ``torch.set_num_threads(--threads)``.

Prints seconds per model for training and for scoring on each path, the speed-up per model
(loop / bank) and the largest relative difference in per-document perplexity
(exp of minus the mean log-likelihood) between the two paths over all K models and documents.
Timings are wall-clock: on a machine shared with other jobs they are noisy; run twice.

Example::

    python benchmarks/text_lm_bank.py --k 16 --docs 500 --epochs 3 --size tiny
    python benchmarks/text_lm_bank.py --k 16 --docs 500 --epochs 3 --size tiny --chunks 1,2,4,8,16
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=16, help="models (even)")
    parser.add_argument("--docs", type=int, default=500, help="documents scored; each model trains on a half of them")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--corpus", default="fortunes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunks", default="", help="comma-separated models per batched product to time (default: the bank's default)")
    parser.add_argument("--loop-models", type=int, default=0, help="time the loop on only this many of the K models (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from miaudit.text.corpus import load_corpus_with_sources
    from miaudit.text.lm import build_lm, token_statistics, train_lm, train_tokenizer
    from miaudit.text.lm_bank import DEFAULT_CHUNK, train_lm_bank
    from miaudit.text.reference_lms import draw_memberships

    docs, _ = load_corpus_with_sources(args.corpus, None)
    rng = np.random.default_rng(args.seed)
    picked = rng.choice(len(docs), size=2 * args.docs, replace=False)
    public, scored = [docs[i] for i in picked[: args.docs]], [docs[i] for i in picked[args.docs :]]
    tokenizer = train_tokenizer(public, vocab_size=512)
    base = build_lm(args.size, len(tokenizer), args.seed, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    member = draw_memberships(len(scored), args.k, rng)
    texts = [[d for d, keep in zip(scored, row) if keep] for row in member]
    seeds = [int(s) for s in rng.integers(0, 2**32, size=args.k)]
    n_loop = args.loop_models or args.k
    print(f"K={args.k} size={args.size} docs={args.docs} (each model trains on {min(map(len, texts))}..{max(map(len, texts))}) "
          f"epochs={args.epochs} threads={args.threads}; loop timed on {n_loop} model(s)")  # fmt: skip

    loop_train = loop_score = 0.0
    loop_stats = []
    for j in range(n_loop):
        start = time.perf_counter()
        model = train_lm(copy.deepcopy(base), tokenizer, texts[j], epochs=args.epochs, seed=seeds[j])
        mid = time.perf_counter()
        loop_stats.append(token_statistics(model, tokenizer, scored))
        loop_train, loop_score = loop_train + mid - start, loop_score + time.perf_counter() - mid
    loop_train, loop_score = loop_train / n_loop, loop_score / n_loop
    print(f"loop: train {loop_train:.3f} s/model, score {loop_score:.3f} s/model, total {loop_train + loop_score:.3f} s/model")

    for chunk in [int(c) for c in args.chunks.split(",") if c] or [DEFAULT_CHUNK]:
        start = time.perf_counter()
        bank = train_lm_bank(base, tokenizer, texts, epochs=args.epochs, seeds=seeds, chunk=chunk)
        mid = time.perf_counter()
        stats = bank.token_statistics(tokenizer, scored)
        bank_train, bank_score = (mid - start) / args.k, (time.perf_counter() - mid) / args.k
        ppl_loop = np.array([[np.exp(-s.logprob.mean()) for s in per] for per in loop_stats])
        ppl_bank = np.array([[np.exp(-s.logprob.mean()) for s in per] for per in stats[:n_loop]])
        rel = float(np.max(np.abs(ppl_bank - ppl_loop) / ppl_loop))
        total = bank_train + bank_score
        print(f"bank chunk={chunk}: train {bank_train:.3f} s/model ({loop_train / bank_train:.2f}x), "
              f"score {bank_score:.3f} s/model ({loop_score / bank_score:.2f}x), total {total:.3f} s/model "
              f"({(loop_train + loop_score) / total:.2f}x); max relative perplexity difference {rel:.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
