"""Reading a large CSV: nnlab's reader (nnlab.data.csv_table, pandas underneath, every check,
the SHA-256) against `pandas.read_csv` alone, on the same file in the same run.

    .venv/bin/python benchmarks/csv_read.py [--rows 1000000] [--repeats 3]

The file: `--rows` rows of 10 float features and an integer label (the issue's 1,000,000 x 11,
~200 MB). Each variant runs in a fresh process, so that its peak memory (ru_maxrss) is its
own; the memory reported is the peak minus the process's size after its imports. Prints a
Markdown table of medians.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

VARIANTS = {
    "pandas.read_csv": "import pandas as pd; f = lambda p: pd.read_csv(p)",
    "SHA-256 of the file": (
        "from nnlab.data.csv_table import file_sha256; f = lambda p: file_sha256(Path(p))"
    ),
    "nnlab (read_csv_table)": (
        "from nnlab.data.csv_table import read_csv_table; f = lambda p: read_csv_table(p, 'y')"
    ),
}

RUNNER = """
import resource, sys, time
from pathlib import Path
import pandas, numpy
{setup}
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
f(sys.argv[1])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(seconds, (peak - base) / 1024)
"""


def write_file(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    header = ",".join([f"x{i}" for i in range(10)] + ["y"])
    with open(path, "w") as f:
        f.write(header + "\n")
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            x = rng.normal(size=(n, 10))
            y = rng.integers(0, 3, size=(n, 1))
            np.savetxt(f, np.hstack([x, y]), fmt=["%.15f"] * 10 + ["%d"], delimiter=",")


def measure(code: str, path: Path) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", RUNNER.format(setup=code), str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        write_file(path, args.rows)
        size_mb = path.stat().st_size / 2**20
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
        for _ in range(args.repeats):  # interleaved: noise hits every variant alike
            for name, code in VARIANTS.items():
                results[name].append(measure(code, path))
    pandas_s = statistics.median(s for s, _ in results["pandas.read_csv"])
    print(f"## Reading a {args.rows:,} x 11 CSV ({size_mb:.0f} MiB), median of {args.repeats}\n")
    print("| reader | seconds | vs pandas | peak memory, MiB | vs file size |")
    print("|---|---|---|---|---|")
    for name, values in results.items():
        seconds = statistics.median(s for s, _ in values)
        memory = statistics.median(m for _, m in values)
        print(
            f"| {name} | {seconds:.2f} | {seconds / pandas_s:.2f} | {memory:.0f} | "
            f"{memory / size_mb:.2f} |"
        )


if __name__ == "__main__":
    main()
