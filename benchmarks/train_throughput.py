"""Training throughput of shadow models on Location30: DataLoader loop vs. train_one vs. ModelBank.

Trains ``--models`` MLPs (446-128-30, tanh; Adam lr 1e-3, 30 epochs, batches of 64, as in
Shokri et al., S&P 2017), each on a random half of the 5010 Location30 records and tested on
the other half, three ways in one process:

  (a) one model at a time with a ``torch.utils.data.DataLoader`` (the usual loop),
  (b) one model at a time with ``miaudit.models.train_one`` (direct tensor indexing),
  (c) all models with ``miaudit.models.ModelBank`` (stacked parameters, cache disabled).

Prints seconds per model, the speed-ups (a)/(c) and (b)/(c), and mean test accuracy (± std).
The three ways run interleaved in ``--rounds`` rounds, so that a slow spell of a shared machine
does not fall on one of them only. Example: ``python benchmarks/train_throughput.py --baseline-models 8``.

``--part cnn``: the image path instead. ``--models`` (default 16) default ``cnn``s on CIFAR-10,
each on a random half of ``--cnn-records`` images (tested on the other half), ``--epochs``
(default 3 here), trained (b) one at a time with ``train_one`` and (c) in the ModelBank with its
image engine (``looped``: channels-last, one stacked optimizer step) and (d) with the older
``torch.func.vmap`` engine (``functional``); prints seconds per model, the speed-ups, test
accuracies, and the achieved GFLOP/s (a training step's FLOPs counted by
``torch.utils.flop_counter``) beside a 2048 x 2048 float32 matmul's, measured in the same run.
Example: ``python benchmarks/train_throughput.py --part cnn --threads 2``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from miaudit.data import load_dataset
from miaudit.models import ArchConfig, ModelBank, TorchClassifier, TrainingRecipe, new_model, train_one

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_location30() -> tuple[np.ndarray, np.ndarray]:
    """Features (5010, 446) float32 and labels 0..29 from $MIAUDIT_DATA_DIR (default ../shared/data)."""
    ds = load_dataset("location30", os.environ.get("MIAUDIT_DATA_DIR") or SHARED_DATA, download=False)
    return ds.x.reshape(len(ds.x), -1), ds.y


def train_dataloader(arch: ArchConfig, recipe: TrainingRecipe, x: np.ndarray, y: np.ndarray, num_classes: int, seed: int) -> torch.nn.Module:
    """(a): the common textbook loop with a shuffling DataLoader."""
    model = new_model(arch, tuple(x.shape[1:]), num_classes, seed).train()
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        batch_size=recipe.batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    for _ in range(recipe.epochs):
        for xb, yb in loader:
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    return model.eval()


def accuracy(module: torch.nn.Module, x: np.ndarray, y: np.ndarray, num_classes: int) -> float:
    return float((TorchClassifier(module, num_classes).predict(x) == y).mean())


@dataclass
class Way:
    """One way of training: its models' indices per round, total seconds, test accuracies."""

    label: str
    train: Callable[[list[int]], list[torch.nn.Module]]
    rounds: list[list[int]]
    seconds: float = 0.0
    accuracies: list[float] = field(default_factory=list)
    count: int = 0


def _positions(rounds: list[list[int]], below: int) -> list[int]:
    """Where models 0..below-1 sit in the order the rounds trained them."""
    order = [i for part in rounds for i in part]
    return [order.index(i) for i in range(below)]


def split_rounds(count: int, rounds: int) -> list[list[int]]:
    return [[int(i) for i in part] for part in np.array_split(np.arange(count), rounds)]


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matmul rate at ``size`` (best of ``repeats``), in GFLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step_flops(arch: ArchConfig, shape: tuple[int, ...], num_classes: int, batch: int) -> int:
    """FLOPs of one training step (forward and backward) of one model on ``batch`` records."""
    from torch.utils.flop_counter import FlopCounterMode

    model = new_model(arch, shape, num_classes, 0).train()
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(torch.randn(batch, *shape)), torch.zeros(batch, dtype=torch.int64)).backward()
    return int(counter.get_total_flops())


def run_cnn(args: argparse.Namespace) -> None:
    """The image part (see the module docstring)."""
    from miaudit.models.architectures import ARCHITECTURES

    ds = load_dataset("cifar10", os.environ.get("MIAUDIT_DATA_DIR") or SHARED_DATA, download=False)
    rng = np.random.default_rng(0)
    picked = rng.choice(len(ds.y), args.cnn_records, replace=False)
    x, y = np.asarray(ds.x[picked], dtype=np.float32), ds.y[picked]
    n, num_classes, shape = len(x), 10, tuple(x.shape[1:])
    arch = ArchConfig.of("cnn")
    recipe = TrainingRecipe(optimizer="adam", lr=1e-3, epochs=args.epochs or 3, batch_size=64, augment=args.augment)
    splits = [rng.permutation(n) for _ in range(args.models)]
    train_sets, test_sets = [np.sort(p[: n // 2]) for p in splits], [np.sort(p[n // 2 :]) for p in splits]
    n_base = min(args.baseline_models or 4, args.models)
    rounds = max(1, args.rounds)
    print(f"CIFAR-10: {n} images, each model on {n // 2}; default cnn; Adam 1e-3, {recipe.epochs} epochs, batch 64, "
          f"augment {recipe.augment}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"bank: {args.models} models, train_one: {n_base}; {rounds} interleaved rounds")  # fmt: skip
    spec = ARCHITECTURES.get("cnn")

    def bank_with(engine: str) -> Callable[[list[int]], list[torch.nn.Module]]:
        def train(ids: list[int]) -> list[torch.nn.Module]:
            ARCHITECTURES.remove("cnn")
            ARCHITECTURES.add("cnn", replace(spec, engine=engine))
            try:
                return ModelBank(arch, recipe, num_classes=num_classes, cache=None, progress=False).train(
                    x, y, [train_sets[i] for i in ids], ids)  # fmt: skip
            finally:
                ARCHITECTURES.remove("cnn")
                ARCHITECTURES.add("cnn", spec)

        return train

    ways = {
        "b": Way("(b) train_one", lambda ids: [train_one(arch, recipe, x[train_sets[i]], y[train_sets[i]], num_classes=num_classes, seed=i)
                                                for i in ids], [list(range(n_base))]),
        "c": Way("(c) ModelBank, looped engine", bank_with("looped"), [list(range(args.models))]),
        "d": Way("(d) ModelBank, vmap engine", bank_with("functional"), [list(range(args.models))]),
    }  # fmt: skip
    train_one(arch, replace(recipe, epochs=1), x[:128], y[:128], num_classes=num_classes, seed=0)  # warm-up
    for r in range(rounds):  # every round trains every way's models again, so a busy spell hits all ways
        for way in ways.values():
            if way.label[1] in args.skip:
                continue
            ids, trained = way.rounds[0], []
            way.seconds += _timed(lambda: trained.extend(way.train(ids)))  # training only; testing is the same for every way
            way.count += len(ids)
            if r == 0:
                way.accuracies = [accuracy(m, x[test_sets[i]], y[test_sets[i]], num_classes) for i, m in zip(ids, trained)]
    flops = step_flops(arch, shape, num_classes, recipe.batch_size) * (n // 2 / recipe.batch_size) * recipe.epochs
    peak = matmul_gflops()
    base = ways["b"].seconds / max(ways["b"].count, 1)
    for way in ways.values():
        if way.count:
            per = way.seconds / way.count
            print(f"{way.label:<32s} {per:7.3f} s/model  {base / per:5.2f}x (b)  test acc {np.mean(way.accuracies):.4f} ± "
                  f"{np.std(way.accuracies):.4f}  {flops / per / 1e9:6.1f} GFLOP/s")  # fmt: skip
    print(f"2048 x 2048 float32 matmul on this machine: {peak:.1f} GFLOP/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["mlp", "cnn"], default="mlp", help="mlp: Location30 (default); cnn: CIFAR-10 images")
    parser.add_argument("--cnn-records", type=int, default=2000, help="--part cnn: CIFAR-10 images drawn (each model trains on half)")
    parser.add_argument("--models", type=int, default=None, help="models trained by the bank (c) (default 64; --part cnn: 16)")
    parser.add_argument("--baseline-models", type=int, default=None, help="models for (a) and (b) (default: --models)")
    parser.add_argument("--epochs", type=int, default=None, help="default 30 (--part cnn: 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--models-per-pass", type=int, default=None, help="ModelBank max_models_per_pass")
    parser.add_argument(
        "--rounds", type=int, default=4,
        help="interleave the three ways in this many rounds, so that a busy spell of a shared machine "
        "slows all of them alike (default 4)",
    )  # fmt: skip
    parser.add_argument("--augment", default="none", help="--part cnn: the recipe's training augmentation (none, flip-crop)")
    parser.add_argument("--skip", default="", help="comma-separated ways to skip, e.g. 'a' or 'a,b'")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"),
                        help="--part cnn: where train_one and the bank train (default cpu; the MLP part stays on the CPU)")  # fmt: skip
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.part == "cnn":
        from miaudit.models.device import use_device

        args.models = args.models or 16
        with use_device(args.device):
            run_cnn(args)
        return
    args.models = args.models or 64
    args.epochs = args.epochs or 30
    skip = set(filter(None, args.skip.split(",")))

    x, y = load_location30()
    n, num_classes = len(x), int(y.max()) + 1
    arch = ArchConfig.of("mlp", hidden=(128,), activation="tanh")
    recipe = TrainingRecipe(optimizer="adam", lr=1e-3, epochs=args.epochs, batch_size=64)
    rng = np.random.default_rng(0)
    splits = [rng.permutation(n) for _ in range(args.models)]
    train_sets = [np.sort(p[: n // 2]) for p in splits]
    test_sets = [np.sort(p[n // 2 :]) for p in splits]
    n_base = min(args.baseline_models or args.models, args.models)
    rounds = max(1, min(args.rounds, n_base))
    print(
        f"Location30: {n} records, {x.shape[1]} features, {num_classes} classes; MLP {x.shape[1]}-128-{num_classes} tanh, "
        f"Adam lr {recipe.lr}, {recipe.epochs} epochs, batch {recipe.batch_size}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    subset_note = " (a subset, to save time; per-model seconds are still comparable)" if n_base < args.models else ""
    print(f"bank: {args.models} models; (a) and (b): {n_base} models{subset_note}; {rounds} interleaved rounds")

    kwargs = {"max_models_per_pass": args.models_per_pass} if args.models_per_pass else {}
    bank = ModelBank(arch, recipe, num_classes=num_classes, cache=None, progress=False, **kwargs)
    ways = {
        "a": Way("(a) DataLoader loop", lambda ids: [
            train_dataloader(arch, recipe, x[train_sets[i]], y[train_sets[i]], num_classes, seed=i) for i in ids
        ], split_rounds(n_base, rounds)),
        "b": Way("(b) train_one (direct indexing)", lambda ids: [
            train_one(arch, recipe, x[train_sets[i]], y[train_sets[i]], num_classes=num_classes, seed=i) for i in ids
        ], split_rounds(n_base, rounds)),
        "c": Way(f"(c) ModelBank ({bank.max_models_per_pass}/pass)", lambda ids: bank.train(
            x, y, [train_sets[i] for i in ids], ids
        ), split_rounds(args.models, rounds)),
    }  # fmt: skip
    active = [way for key, way in ways.items() if key not in skip]
    # Untimed warm-up: the first torch calls of a process pay one-off initialisation.
    brief = replace(recipe, epochs=1)
    few = np.arange(256)
    train_dataloader(arch, brief, x[few], y[few], num_classes, seed=0)
    train_one(arch, brief, x[few], y[few], num_classes=num_classes, seed=0)
    ModelBank(arch, brief, num_classes=num_classes).train(x, y, [few, few[:100]], [0, 1])
    for r in range(rounds):
        for way in active:
            ids = way.rounds[r]
            start = time.perf_counter()
            modules = way.train(ids)
            way.seconds += time.perf_counter() - start
            way.count += len(ids)
            way.accuracies += [accuracy(m, x[test_sets[i]], y[test_sets[i]], num_classes) for i, m in zip(ids, modules)]
    for way in active:
        accs = way.accuracies
        print(
            f"{way.label:<34s} {way.seconds / way.count:8.3f} s/model   "
            f"test acc {np.mean(accs):.4f} ± {np.std(accs):.4f}  ({way.count} models)"
        )
    if "c" not in skip:
        c = ways["c"]
        for key in ("a", "b"):
            if key in skip:
                continue
            other = ways[key]
            speedup = (other.seconds / other.count) / (c.seconds / c.count)
            gap = 100 * (np.mean(c.accuracies) - np.mean(other.accuracies))
            print(f"speed-up ({key})/(c): {speedup:6.1f}x   accuracy (c) - ({key}): {gap:+.2f} points")
        if n_base < args.models and "b" not in skip:
            # (c)'s models 0..n_base-1 have (b)'s seeds and records: the same models up to rounding.
            same = np.mean([c.accuracies[i] for i in _positions(c.rounds, n_base)])
            print(f"(c) on the {n_base} models (b) trained: test acc {same:.4f} (b: {np.mean(ways['b'].accuracies):.4f})")


if __name__ == "__main__":
    main()
