"""Peak memory of reading a large numeric CSV, against the size of the table it holds.

Writes a CSV of ``--rows`` records x 10 features + a label (random floats, 1.5M rows is about
132 MB), then reads it in a fresh subprocess with each reader and reports the growth of the
subprocess's peak resident memory (``ru_maxrss``) over its state after imports, beside the
float32 table the file holds (the baseline: what the data needs at the least).

- ``load_csv``: the single-file reader (``miaudit audit --dataset FILE.csv``);
- ``load_tabular``: the train/test reader with encoding (``--train A.csv --test B.csv``).

    .venv/bin/python benchmarks/csv_memory.py [--rows 1500000]   # prints a table and the ratios
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

READERS = {
    "load_csv": "from miaudit.data.user import load_csv as read; read(PATH)",
    "load_tabular": "from miaudit.data.tabular import load_tabular as read; read(PATH)",
}

CHILD = """
import json, resource, sys
import miaudit.data.user, miaudit.data.tabular  # imports before the baseline
PATH = sys.argv[1]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
{code}
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"growth_mib": (after - before) / 1024}}))
"""


def write_csv(path: Path, rows: int, features: int = 10) -> None:
    """``rows`` records of ``features`` random floats and an integer label in [0, 30)."""
    rng = np.random.default_rng(0)
    with path.open("w") as f:
        f.write(",".join(f"f{j}" for j in range(features)) + ",label\n")
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            block = np.column_stack([rng.normal(size=(n, features)), rng.integers(0, 30, n)])
            np.savetxt(f, block, delimiter=",", fmt=["%.6f"] * features + ["%d"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_500_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        write_csv(path, args.rows)
        table_mib = args.rows * 11 * 4 / 2**20
        print(f"{path.stat().st_size / 2**20:.0f} MiB CSV, {args.rows} rows; float32 table {table_mib:.0f} MiB")
        print("| reader | peak growth (MiB) | x the float32 table |\n|---|---|---|")
        for name, code in READERS.items():
            out = subprocess.run([sys.executable, "-c", CHILD.format(code=code), str(path)], capture_output=True, text=True, check=True)
            growth = json.loads(out.stdout.strip().splitlines()[-1])["growth_mib"]
            print(f"| {name} | {growth:.0f} | {growth / table_mib:.1f} |")


if __name__ == "__main__":
    main()
