"""Peak memory of the NSH white-box attack's gradient features, streamed versus materialised.

Target: the Location30 preset's MLP 446-1024-512-256-128-30 (1.15 M parameters, seeded
initialisation; memory does not depend on training) on random binary records. Each measurement
runs in a fresh subprocess and reports the growth of its peak resident memory (``ru_maxrss``)
over the process after setup, so measurements do not see each other's peaks.

- ``nsh``: the whole attack (features of 1000 known records, network training, streamed scoring
  of N records) with its defaults (gradients of the last layer, activations of the last hidden);
- ``stream-all``: per-record gradients of *all* layers for N records, streamed in batches of 64
  and consumed batch by batch (the pattern NSH scores with);
- ``materialise-all``: ``TargetAccess.gradients`` of all layers for N records at once (the
  baseline: records x parameters floats held together).

    .venv/bin/python benchmarks/nsh_memory.py          # prints a table and the ratios
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

ARCH = {"hidden": (1024, 512, 256, 128), "activation": "relu"}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(mode: str, n: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from miaudit.attacks import AttackerKnowledge, ModelSpec
    from miaudit.attacks.nsh_whitebox import NSHWhiteBoxAttack
    from miaudit.attacks.white_box_features import FeatureLayout, stream_features
    from miaudit.models import ArchConfig
    from miaudit.models.classifier import TorchClassifier
    from miaudit.models.train import new_model
    from miaudit.targets.access import TargetAccess
    from miaudit.threat import derive

    rng = np.random.default_rng(0)
    module = new_model(ArchConfig("mlp", ARCH), (446,), 30, 0)
    params = sum(p.numel() for p in module.parameters())
    x = (rng.random((n, 446)) < 0.1).astype(np.float32)
    y = rng.integers(0, 30, n)
    threat = derive("white-box-partial")
    access = TargetAccess(TorchClassifier(module, 30, (446,)), threat, input_shape=(446,))
    access.gradients(x[:2], y[:2])  # warm up torch.func before the baseline
    base = _peak_mib()
    start = time.time()
    if mode == "nsh":
        known = (rng.random((1000, 446)) < 0.1).astype(np.float32)
        knowledge = AttackerKnowledge.under(
            threat, num_classes=30, input_shape=(446,), seed=1, pool_x=known[500:], pool_y=rng.integers(0, 30, 500),
            pool_fingerprint=None, target_model=ModelSpec("mlp", ARCH), known_members_x=known[:500],
            known_members_y=rng.integers(0, 30, 500),
        )  # fmt: skip
        NSHWhiteBoxAttack(max_epochs=5).fit(knowledge).score(access, x, y)
    elif mode == "stream-all":
        layout = FeatureLayout.last_layers(access, 30, n_gradient=len(access.parameter_layers()), n_activation=0)
        total = 0.0
        for batch in stream_features(access, x, y, layout, batch_size=64):
            total += sum(float(v.sum()) for v in batch.values())
    elif mode == "materialise-all":
        grads = access.gradients(x, y)
        assert sum(g.shape[1] for g in grads.values()) == params
    return {"mode": mode, "n": n, "params": params, "peak_growth_mib": _peak_mib() - base, "seconds": time.time() - start}


def measure(mode: str, n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(n)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    runs = [
        measure("nsh", 500),
        measure("nsh", 2000),
        measure("stream-all", 500),
        measure("stream-all", 2000),
        measure("materialise-all", 100),
        measure("materialise-all", 200),
    ]
    params = runs[0]["params"]
    print(f"MLP 446-1024-512-256-128-30, {params} parameters; peak RSS growth per run (MiB)")
    print(f"{'mode':<18}{'records':>8}{'peak MiB':>10}{'seconds':>9}")
    for r in runs:
        print(f"{r['mode']:<18}{r['n']:>8}{r['peak_growth_mib']:>10.0f}{r['seconds']:>9.1f}")
    by = {(r["mode"], r["n"]): r["peak_growth_mib"] for r in runs}
    gib_all = 2000 * params * 4 / 2**30
    print(f"all-layer gradients of 2000 records held at once would take {gib_all:.1f} GiB (float32)")
    print(f"nsh 2000 / nsh 500 records: x{by[('nsh', 2000)] / max(by[('nsh', 500)], 1):.2f} peak memory")
    print(f"stream-all 2000 / 500 records: x{by[('stream-all', 2000)] / max(by[('stream-all', 500)], 1):.2f}")
    print(f"materialise-all 200 / 100 records: x{by[('materialise-all', 200)] / max(by[('materialise-all', 100)], 1):.2f}")
    print(f"materialise-all (200) / nsh (2000): x{by[('materialise-all', 200)] / max(by[('nsh', 2000)], 1):.1f}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]))))
    else:
        main()
