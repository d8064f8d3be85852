"""Repeats as one population (nnlab.training.population), and the fixed cost of one run.

    .venv/bin/python benchmarks/population.py [--sections 1,2,3] [--repeats 3]

1. throughput: 8 members trained as one population against the same 8 trained one by one
   through nnlab's Lightning module, for the torch and numpy backends, at batch 32 and full
   batch (moons, 2-10-5-1, Adam). The per-epoch cost is the difference of two run lengths, so
   imports and set-up cancel. Reported as member-epochs per second and their ratio.
2. end to end, start-up included: `nnlab-train repeats=8 trainer.max_epochs=1000` against
   `nnlab-train -m seed=0,...,7 trainer.max_epochs=1000` (each on a fresh sqlite store).
3. the fixed cost of one run: a 1-epoch `nnlab-train` against importing its stack
   (`python -c "import pytorch_lightning, mlflow, sklearn.datasets, matplotlib"`).

Variants run interleaved and each figure is a median, so that machine noise hits both alike.
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
MEMBERS = 8


def compose_cfg(*overrides: str):
    from hydra import compose, initialize_config_dir

    from nnlab.paths import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", ["trainer.progress=none", *overrides])


def fit_seconds(cfg, members, epochs: int) -> float:
    """`members` trained as one population by the engine (nnlab.training.engine), fit and test."""
    from nnlab.tracking.logger import BufferedMlflowLogger, PopulationLogger
    from nnlab.training.fit import fit_and_test, member_setups, population_module
    from nnlab.training.setup import run_setup

    cfg = cfg.copy()
    cfg.trainer.max_epochs = epochs
    module = population_module(cfg, members, member_setups(members, run_setup))
    logger = PopulationLogger([BufferedMlflowLogger(None, None) for _ in members])
    start = time.perf_counter()
    fit_and_test(cfg, module, logger, "bench")
    return time.perf_counter() - start


def population_seconds(cfg, epochs: int) -> float:
    from nnlab.config.seeds import member_config

    return fit_seconds(cfg, [member_config(cfg, k) for k in range(MEMBERS)], epochs)


def one_by_one_seconds(cfg, epochs: int) -> float:
    """The same members as plain runs (populations of one), one after another."""
    from nnlab.config.seeds import member_config

    total = 0.0
    for k in range(MEMBERS):
        member = member_config(cfg, k)
        total += fit_seconds(member, [member], epochs)
    return total


def throughput_section(repeats: int) -> list[str]:
    from nnlab.training.setup import quiet_lightning

    quiet_lightning()
    lines = [
        f"## Population throughput ({MEMBERS} members, median of {repeats})",
        "",
        "| backend | batch | one by one, member-epochs/s | population, member-epochs/s | ratio |",
        "|---|---|---|---|---|",
    ]
    for backend in ("torch", "numpy"):
        for batch in ("32", "null"):
            cfg = compose_cfg(
                f"repeats={MEMBERS}", f"backend={backend}", f"data.batch_size={batch}"
            )
            short, long = (10, 60) if batch == "32" else (50, 300)
            pop, alone = [], []
            for _ in range(repeats):
                pop.append(
                    (population_seconds(cfg, long) - population_seconds(cfg, short))
                    / (long - short)
                )
                alone.append(
                    (one_by_one_seconds(cfg, long) - one_by_one_seconds(cfg, short))
                    / (long - short)
                )
            pop_rate, alone_rate = (
                MEMBERS / statistics.median(pop),
                MEMBERS / statistics.median(alone),
            )
            shown = "full" if batch == "null" else batch
            lines.append(
                f"| {backend} | {shown} | {alone_rate:,.0f} | {pop_rate:,.0f} | "
                f"{pop_rate / alone_rate:.2f} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
    return lines


def timed_command(args: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def fresh_env(tmp: str, name: str) -> dict:
    uri = f"sqlite:///{tmp}/{name}/mlflow.db"
    Path(tmp, name).mkdir()
    return {**os.environ, "MLFLOW_TRACKING_URI": uri, "NNLAB_HYDRA_DIR": f"{tmp}/{name}/hydra"}


def end_to_end_section(epochs: int) -> list[str]:
    train = str(BIN / "nnlab-train")
    common = [f"trainer.max_epochs={epochs}", "trainer.progress=none"]
    seeds = ",".join(str(s) for s in range(MEMBERS))
    with tempfile.TemporaryDirectory() as tmp:
        together = timed_command([train, f"repeats={MEMBERS}", *common], fresh_env(tmp, "a"))
        alone = timed_command([train, "-m", f"seed={seeds}", *common], fresh_env(tmp, "b"))
    return [
        f"## End to end, {MEMBERS} seeds x {epochs} epochs, start-up included",
        "",
        "| command | wall, s |",
        "|---|---|",
        f"| `nnlab-train -m seed={seeds}` | {alone:.1f} |",
        f"| `nnlab-train repeats={MEMBERS}` (a population) | {together:.1f} |",
        f"| ratio | {together / alone:.2f} |",
    ]


def fixed_cost_section(repeats: int) -> list[str]:
    imports = [
        str(BIN / "python"),
        "-c",
        "import pytorch_lightning, mlflow, sklearn.datasets, matplotlib",
    ]
    run = [str(BIN / "nnlab-train"), "trainer.max_epochs=1", "trainer.progress=none"]
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        env = fresh_env(tmp, "store")
        timed_command(run, env)  # creates and migrates the store: not part of a run's cost
        for _ in range(repeats):
            pairs.append((timed_command(imports, env), timed_command(run, env)))
    lines = [
        "## Fixed cost of one run: a 1-epoch `nnlab-train` against importing its stack",
        "",
        "| | " + " | ".join(str(i + 1) for i in range(repeats)) + " | median |",
        "|---|" + "---|" * (repeats + 1),
    ]
    lines.append(
        "| import, s | "
        + " | ".join(f"{a:.2f}" for a, _ in pairs)
        + f" | {statistics.median(a for a, _ in pairs):.2f} |"
    )
    lines.append(
        "| 1-epoch run, s | "
        + " | ".join(f"{b:.2f}" for _, b in pairs)
        + f" | {statistics.median(b for _, b in pairs):.2f} |"
    )
    ratios = [b / a for a, b in pairs]
    lines.append(
        "| ratio | "
        + " | ".join(f"{r:.2f}" for r in ratios)
        + f" | {statistics.median(ratios):.2f} |"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sections", default="1,2,3")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1000, help="for section 2")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    out: list[str] = []
    if "1" in sections:
        out += throughput_section(args.repeats) + [""]
    if "2" in sections:
        out += end_to_end_section(args.epochs) + [""]
    if "3" in sections:
        out += fixed_cost_section(args.repeats) + [""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
