"""DP-SGD's held-out accuracy on the defender's own members for several model sizes (README,
"DP-SGD with its own recipe").

The defender's records are the target members of the Location30 default split (seed 0, 1000
records); :func:`miaudit.defenses.dp_tuning.split_private` holds out a fifth of them (200) and
DP-SGD (``DP_RECIPE``, the default accountant) fits the rest; accuracy is on the held-out fifth,
never on evaluated records or the attacker's pool. Two noise seeds per setting.

    MIAUDIT_DATA_DIR=../shared/data .venv/bin/python tools/dp_model_size.py [--hidden "128;32;"]
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="128;32;", help="hidden layer widths per model, ';' between models, '' = linear")
    parser.add_argument("--epsilons", default="1,4")
    args = parser.parse_args()

    from miaudit.data import load_dataset
    from miaudit.data.split import SplitSizes, make_split
    from miaudit.defenses import TrainingTask, parse_defense
    from miaudit.defenses.dp_tuning import split_private
    from miaudit.models import TrainingRecipe

    ds = load_dataset("location30", os.environ.get("MIAUDIT_DATA_DIR"))
    split = make_split(len(ds.y), SplitSizes(target_in=1000, target_out=1000, attacker_pool=2000, population=1000), seed=0)
    print("| hidden | epsilon | held-out accuracy per noise seed | mean |\n|---|---|---|---|")
    for hidden in args.hidden.split(";"):
        options = {"hidden": tuple(int(v) for v in hidden.split(",") if v), "activation": "tanh"}

        def task(private: np.ndarray, seed: int) -> TrainingTask:
            return TrainingTask(x=ds.x, y=ds.y, private_idx=private, reference_idx=None, num_classes=ds.num_classes,
                                seed=seed, model="mlp", options=options, recipe=TrainingRecipe())  # fmt: skip

        fit, held = split_private(task(split.target_in, 0), 0.2)
        for eps in (float(e) for e in args.epsilons.split(",")):
            accs = []
            for seed in (0, 1):
                model = parse_defense(f"dpsgd:epsilon={eps}").build(task(fit, seed)).model
                accs.append(float((np.asarray(model.predict_proba(ds.x[held])).argmax(1) == ds.y[held]).mean()))
            print(f"| {hidden or 'linear'} | {eps:g} | {' / '.join(f'{a:.3f}' for a in accs)} | {np.mean(accs):.3f} |", flush=True)


if __name__ == "__main__":
    main()
