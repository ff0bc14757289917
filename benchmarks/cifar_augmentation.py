"""CIFAR-10 test accuracy of an image model (``cnn`` or ``resnet``) trained with and without training augmentation.

One seeded subset of ``--records`` CIFAR-10 images, split in halves: ``train_one`` trains on the
first (Adam 1e-3, batch 64, each ``--epochs`` value) with ``augment="none"`` and with
``augment="flip-crop"`` (random crop with 4-pixel zero padding and horizontal flip; see
:mod:`miaudit.models.augmentation`); prints train and test accuracy and seconds per model.

Example (about 4 min on one thread)::

    MIAUDIT_DATA_DIR=../shared/data python benchmarks/cifar_augmentation.py --records 5000 --epochs 8,20,40,80
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=5000, help="images drawn; half train, half test")
    p.add_argument("--epochs", default="8,20,40,80", help="comma-separated epoch counts")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--channels", default="", help="the cnn's convolution widths, e.g. 32,64,128 (default: the cnn's own)")
    p.add_argument("--hidden", default="", help="the cnn's dense widths, e.g. 128 (default: the cnn's own)")
    p.add_argument("--augments", default="none,flip-crop", help="comma-separated recipes' augment values")
    p.add_argument("--arch", default="cnn", choices=("cnn", "resnet"), help="the architecture (default cnn)")
    p.add_argument("--widths", default="", help="resnet: the stages' widths, e.g. 16,32,64 (default: the resnet's own)")
    p.add_argument("--blocks", type=int, default=None, help="resnet: basic blocks per stage (default: the resnet's own)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from miaudit.data import load_dataset
    from miaudit.models import ArchConfig, TrainingRecipe, train_one

    ds = load_dataset("cifar10")
    idx = np.random.default_rng(args.seed).choice(len(ds.y), args.records, replace=False)
    train, test = idx[: args.records // 2], idx[args.records // 2 :]
    x = np.asarray(ds.x, dtype=np.float32)
    wanted = (("channels", args.channels), ("hidden", args.hidden)) if args.arch == "cnn" else (("widths", args.widths),)
    options: dict = {name: tuple(int(v) for v in value.split(",")) for name, value in wanted if value}
    if args.arch == "resnet" and args.blocks is not None:
        options["blocks"] = args.blocks
    arch = ArchConfig.of(args.arch, **options)
    print(f"cifar10, {args.arch} {options or '(default)'}, {len(train)} train / {len(test)} test images, seed {args.seed}, {args.threads} thread(s)")
    print("| augment | epochs | train accuracy | test accuracy | seconds |\n|---|---:|---:|---:|---:|")
    for augment in args.augments.split(","):
        for epochs in (int(e) for e in args.epochs.split(",")):
            start = time.perf_counter()
            model = train_one(arch, TrainingRecipe(epochs=epochs, augment=augment), x[train], ds.y[train],
                              num_classes=10, seed=args.seed)  # fmt: skip
            with torch.no_grad():  # in batches: a resnet's activations on 10,000 images at once take gigabytes
                acc = [float(np.mean(np.concatenate([model(torch.from_numpy(x[s[i : i + 1000]])).argmax(1).numpy()
                                                     for i in range(0, len(s), 1000)]) == ds.y[s])) for s in (train, test)]  # fmt: skip
            print(f"| {augment} | {epochs} | {acc[0]:.3f} | {acc[1]:.3f} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
