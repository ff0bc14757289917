"""Reference-model attacks: attack power per model trained, cost of the experiment, RMIA memory.

Parts (``--part``, default all but cifar10):

location30
    The many-target protocol (``miaudit.experiments.many_targets``) on Location30 with the
    data set's default target (MLP 446-128-30 tanh, Adam 1e-3, 30 epochs, batches of 64):
    ``--models`` models on paired random halves of the 5010 records (2505 each), ``--targets``
    of them in turn as the target. Prints AUC, TPR@1%FPR and TPR@0.1%FPR (mean ± std over the
    targets) of the loss attack, Attack-R, LiRA offline/online and RMIA offline/online against
    the number of reference models per record, the wall time of the whole experiment (training
    in a fresh cache included) and, as a baseline in the same process, the time of training the
    same models one at a time with ``train_one`` (extrapolated from ``--baseline-models``).
memory
    Peak memory (tracemalloc) of RMIA scoring 50,000 records against a population of 50,000 with
    8 reference models, against the N x Z float64 matrix a naive pairwise comparison would hold.
cifar10
    A small CNN on a CIFAR-10 subset (``--cifar-subset`` records, each model on half), 18 models
    (16 reference models per record for online LiRA), LiRA online and offline with no query
    augmentation and with flips + one-pixel shifts (10 queries per record).

Example: ``python benchmarks/reference_attacks.py --threads 2`` (and ``--part cifar10``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from miaudit.experiments.many_targets import ManyTargetConfig, format_table, run_many_targets

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _data_dir() -> str:
    return os.environ.get("MIAUDIT_DATA_DIR") or str(SHARED_DATA)


def _row(result, attack: str, k: int) -> dict:
    return next(r for r in result.rows if r["attack"] == attack and r["reference_models"] == k)


def location30(args: argparse.Namespace) -> None:
    from miaudit.data import load_dataset
    from miaudit.experiments.defaults import defaults_for
    from miaudit.models import ArchConfig, TrainingRecipe, train_one

    counts = tuple(int(k) for k in args.reference_counts.split(","))
    if args.timing_only:
        counts, args.targets = (max(counts),), 1
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        result = run_many_targets(
            ManyTargetConfig(
                "location30", n_models=args.models, n_targets=args.targets, reference_counts=counts,
                data_dir=_data_dir(), cache_dir=cache,
            )
        )  # fmt: skip
        whole = time.perf_counter() - started
    acc = np.array(result.test_accuracy)
    print(f"\n## Location30, {args.models} models on paired halves of {result.n_records} records, {args.targets} targets")
    print(f"target test accuracy {acc.mean():.3f} ± {acc.std(ddof=1):.3f}; non-members per target: {result.n_records // 2}")
    print(format_table(result))
    print(f"\nwhole experiment (training {args.models} models + scoring): {whole:.1f} s "
          f"(training {result.train_seconds:.1f} s, scoring {result.score_seconds:.1f} s); goal < 120 s")
    # Baseline: the same models one at a time, in this process.
    ds = load_dataset("location30", _data_dir())
    d = defaults_for("location30")
    recipe, arch = TrainingRecipe(**d.recipe), ArchConfig(d.model, d.model_options)
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    for i in range(args.baseline_models):
        half = np.sort(rng.permutation(len(ds))[: len(ds) // 2])
        train_one(arch, recipe, ds.x[half], ds.y[half], num_classes=ds.num_classes, seed=i)
    per_model = (time.perf_counter() - t0) / args.baseline_models
    print(f"baseline train_one: {per_model:.2f} s/model x {args.models} = {per_model * args.models:.1f} s; "
          f"ModelBank {result.train_seconds / args.models:.2f} s/model; ratio {per_model * args.models / result.train_seconds:.1f}x")
    big = max(counts)
    online = _row(result, "lira", big)
    print(f"goal LiRA online, {big} refs asked ({online['refs_used']:.0f} used): AUC {online['auc']:.3f} (>= 0.95), "
          f"TPR@0.1%FPR {online['tpr@0.001']:.3f} (>= 0.30)")
    for k in (2, 4):
        if k in counts:
            for rmia in ("rmia", "rmia-offline"):
                r, l = _row(result, rmia, k), _row(result, "lira-offline", k)
                verdict = "above" if r["tpr@0.01"] > l["tpr@0.01"] else "NOT above"
                print(f"goal {rmia} k={k}: TPR@1%FPR {r['tpr@0.01']:.3f} {verdict} LiRA offline's {l['tpr@0.01']:.3f}")


def memory(args: argparse.Namespace) -> None:
    from miaudit.attacks.rmia import likelihood_ratio, marginal, population_fraction

    n = z = 50_000
    refs, classes = 8, 10
    rng = np.random.default_rng(0)

    def p_y(rows: int) -> np.ndarray:  # the true-class probabilities the models would give
        return rng.dirichlet(np.ones(classes), size=rows)[:, 0]

    p_target_x, p_target_z = p_y(n), p_y(z)
    p_refs_x = np.stack([p_y(n) for _ in range(refs)])
    p_refs_z = np.stack([p_y(z) for _ in range(refs)])
    tracemalloc.start()
    t0 = time.perf_counter()
    ratio_x = likelihood_ratio(p_target_x, marginal(p_refs_x, a=0.3))
    ratio_z = likelihood_ratio(p_target_z, marginal(p_refs_z, a=0.3))
    scores = population_fraction(ratio_x, ratio_z)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    inputs = sum(a.nbytes for a in (p_target_x, p_target_z, p_refs_x, p_refs_z))
    naive = n * z * 8
    sub = slice(0, 2000)  # brute force on a slice, as a check
    brute = (ratio_x[sub, None] / ratio_z[None, :] >= 1.0).mean(axis=1)
    assert np.allclose(brute, scores[sub])
    print(f"\n## RMIA memory: {n} records x {z} population, {refs} reference models")
    print(f"inputs (probabilities) {inputs / 2**20:.1f} MiB; scoring peak {peak / 2**20:.1f} MiB in {seconds:.2f} s; "
          f"a naive N x Z float64 matrix: {naive / 2**30:.1f} GiB ({naive / peak:.0f}x the peak); goal < 1 GiB")


def cifar10(args: argparse.Namespace) -> None:
    counts = (16,)
    options = {"channels": tuple(int(c) for c in args.cifar_channels.split(",")), "hidden": tuple(int(h) for h in args.cifar_hidden.split(","))}
    recipe = {"epochs": args.cifar_epochs, "augment": args.cifar_augment}
    with tempfile.TemporaryDirectory() as scratch:
        cache = args.cifar_cache_dir or scratch  # a kept cache lets a second run rescore without training
        print(f"\n## CIFAR-10, cnn {options}, {args.cifar_models} models on paired halves of {args.cifar_subset} records, "
              f"{args.cifar_epochs} epochs, training augmentation {args.cifar_augment}, {args.cifar_targets} targets")
        for augmentation in args.cifar_views.split(","):
            result = run_many_targets(
                ManyTargetConfig(
                    "cifar10", n_models=args.cifar_models, n_targets=args.cifar_targets, reference_counts=counts,
                    attacks=("loss", "lira-offline", "lira"), subset=args.cifar_subset, model="cnn", model_options=options,
                    recipe=recipe, augmentation=augmentation, data_dir=_data_dir(), cache_dir=cache,
                ), progress=args.progress,
            )  # fmt: skip
            acc = np.array(result.test_accuracy)
            print(f"\nquery views: {augmentation} ({result.query_views}); target test accuracy {acc.mean():.3f} ± {acc.std(ddof=1):.3f}; "
                  f"training {result.train_seconds:.0f} s (0 when cached), scoring {result.score_seconds:.0f} s", flush=True)
            print(format_table(result), flush=True)


PARTS = {"location30": location30, "memory": memory, "cifar10": cifar10}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", default="location30,memory", help="comma-separated: location30, memory, cifar10")
    p.add_argument("--models", type=int, default=66, help="Location30 models (66: 64 references per record online)")
    p.add_argument("--targets", type=int, default=8)
    p.add_argument("--reference-counts", default="1,2,4,8,16,64")
    p.add_argument("--baseline-models", type=int, default=4)
    p.add_argument("--timing-only", action="store_true", help="location30: one target, largest k only (for the timing)")
    p.add_argument("--cifar-models", type=int, default=18)
    p.add_argument("--cifar-targets", type=int, default=2)
    p.add_argument("--cifar-subset", type=int, default=6000)
    p.add_argument("--cifar-epochs", type=int, default=10)
    p.add_argument("--cifar-channels", default="16,32", help="the cnn's convolution widths (default 16,32)")
    p.add_argument("--cifar-hidden", default="64", help="the cnn's dense widths (default 64)")
    p.add_argument("--cifar-augment", default="none", help="training augmentation of every model: none or flip-crop")
    p.add_argument("--cifar-views", default="none,flip-shift", help="LiRA query views, one run each (auto: the training augmentation's)")
    p.add_argument("--cifar-cache-dir", default=None, help="keep the trained models here (default: a temporary folder)")
    p.add_argument("--progress", action="store_true", help="show training progress")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"), help="where the models train and answer (default cpu)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from miaudit.models.device import use_device

    with use_device(args.device):
        for part in args.part.split(","):
            PARTS[part.strip()](args)


if __name__ == "__main__":
    main()
