"""DP-SGD's held-out accuracy on the defender's own members for several ``hidden=`` widths
(README, "DP-SGD with its own recipe"; the dpsgd ``hidden`` comment).

For each seed: the Location30 split (1000,1000,2000, population 1000) of that seed; its target
members are cut by :func:`miaudit.defenses.dp_tuning.split_private` into 800 fit / 200 held-out;
DP-SGD fits the 800 (the population is the defender's reference, read only by pretrain=reference)
and accuracy is on the 200 held-out members, never on evaluated records or the attacker's pool.
One JSON line per (epsilon, width).

    MIAUDIT_DATA_DIR=../shared/data .venv/bin/python tools/dp_width.py WIDTHS EPSILONS SEEDS [EXTRA]
    e.g. tools/dp_width.py default,256,64,32,16,8,linear 8,4,1 0,1,2,3 [pretrain=reference,lr=0.001]
"""
import sys, time, json
import numpy as np
from miaudit.data import load_dataset
from miaudit.data.split import make_split, SplitSizes
from miaudit.defenses import TrainingTask, parse_defense
from miaudit.defenses.dpsgd import train_dp
from miaudit.defenses.dp_tuning import split_private
from miaudit.defenses.training import torch_classifier
from miaudit.models import TrainingRecipe
import os
ds = load_dataset("location30", os.environ["MIAUDIT_DATA_DIR"])
widths = sys.argv[1].split(",")
epss = [float(e) for e in sys.argv[2].split(",")]
seeds = [int(s) for s in sys.argv[3].split(",")]
extra = sys.argv[4] if len(sys.argv) > 4 else ""
for eps in epss:
    for w in widths:
        accs = []
        t0 = time.time()
        for seed in seeds:
            split = make_split(len(ds.y), SplitSizes(target_in=1000, target_out=1000, attacker_pool=2000, population=1000), seed=seed)
            task = TrainingTask(x=ds.x, y=ds.y, private_idx=split.target_in, reference_idx=split.population, num_classes=ds.num_classes,
                                seed=seed, model="mlp", options={"hidden": [128], "activation": "tanh"}, recipe=TrainingRecipe())
            d = parse_defense(f"dpsgd:epsilon={eps},hidden={w}" + ("," + extra if extra else ""))
            fit, held = split_private(task, d.params["tune_fraction"])
            assert np.isin(held, split.target_in).all() and np.isin(fit, split.target_in).all()
            module, info = train_dp(task, d.params, indices=fit)
            m = torch_classifier(module, task)
            acc = float((np.asarray(m.predict_proba(ds.x[held])).argmax(1) == ds.y[held]).mean())
            accs.append(acc)
        print(json.dumps({"eps": eps, "hidden": w, "extra": extra, "seeds": seeds, "held": [round(a, 3) for a in accs],
                          "mean": round(float(np.mean(accs)), 4), "noise": round(info["noise_multiplier"], 3),
                          "params": info["model_parameters"], "s": round(time.time() - t0, 1)}), flush=True)
