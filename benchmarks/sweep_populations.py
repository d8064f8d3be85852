"""A sweep's jobs trained as populations (issue 24; nnlab.sweeps.population_jobs).

    .venv/bin/python benchmarks/sweep_populations.py [--sections 1,2,3,4] [--epochs 500]

1. end to end: `-m optimizer.lr=0.001,0.01,0.1,1.0 repeats=5` (4 configurations x 5 seeds)
   three ways, each one `nnlab-train -m` process on a fresh sqlite store:
   - one by one: `hydra/sweeper=basic trainer.population=false` (20 runs one after another);
   - per configuration: `hydra/sweeper=basic` (4 populations of 5, one after another: what a
     sweep did before the population sweeper);
   - the population sweeper (the default): one population of 20.
   Also each member's cost outside training (the runs' `overhead_seconds` tag, median), and
   the wall time split by the runs' tags into the fit, the outputs and the rest (what every
   way pays once).
2. member-epochs per second of one population at N = 1, 8, 20, 64 (moons 2-10-5-1, Adam,
   batch 32 and full batch, the difference of two run lengths), against the compute floor:
   the network's FLOPs per member-epoch over this machine's measured float32 GEMM rate.
3. the cost of per-member hyperparameters: 8 members with 8 learning rates stepped as one
   stacked optimizer (nnlab.training.stacked_optimizers), against torch's Adam with a parameter
   group per lr, against 8 with one lr (one group) and against the same 8 trained one by one,
   member-epochs per second, batch 32 and full batch.
4. seed 003's four exercise sweeps (`sweep=architectures|activations|learning_rates|l2`,
   `repeats=5`), with the basic sweeper (each job's repeats a population of its own) and with
   the population sweeper, end to end.

Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
SWEEP = ["optimizer.lr=0.001,0.01,0.1,1.0", "repeats=5", "trainer.progress=none"]
WAYS = {
    "one by one (`hydra/sweeper=basic trainer.population=false`)": [
        "hydra/sweeper=basic",
        "trainer.population=false",
    ],
    "per configuration (`hydra/sweeper=basic`: 4 populations of 5)": ["hydra/sweeper=basic"],
    "the population sweeper (one population of 20)": [],
}


def timings(uri: str) -> tuple[list[float], list[float]]:
    """Each run's share of its fit and of its outputs (the `fit_seconds` and
    `overhead_seconds` tags; a population's members split both evenly)."""
    from nnlab.tracking.store.client import get_client
    from nnlab.tracking.store.names import FIT_SECONDS_TAG, OVERHEAD_SECONDS_TAG

    client = get_client(uri)
    exp = client.get_experiment_by_name("nnlab")
    tagged = [r.data.tags for r in client.search_runs([exp.experiment_id])]
    tagged = [t for t in tagged if OVERHEAD_SECONDS_TAG in t]
    return [float(t[FIT_SECONDS_TAG]) for t in tagged], [
        float(t[OVERHEAD_SECONDS_TAG]) for t in tagged
    ]


def timed_sweep(args: list[str], with_timings: bool = False):
    """One `nnlab-train -m` on a fresh sqlite store (benchmarks/population.py's fresh_env and
    timed_command): its wall time, and with_timings its runs' (fit, output) seconds."""
    sys.path.insert(0, str(Path(__file__).parent))
    from population import fresh_env, timed_command

    with tempfile.TemporaryDirectory() as tmp:
        env = fresh_env(tmp, "sweep")
        wall = timed_command(args, env)
        if not with_timings:
            return wall, None
        return wall, timings(env["MLFLOW_TRACKING_URI"])


def end_to_end_section(epochs: int) -> list[str]:
    """Each way's wall time, split by its runs' tags into the training (fit), the runs'
    outputs, and the rest: what the command pays once whatever the way (imports, a fresh
    store, composing and checking the jobs, the parent run, the summary)."""
    lines = [
        f"## A 4-lr x 5-seed sweep, {epochs} epochs, start-up included",
        "",
        "| way | wall, s | vs one by one | output cost per member, s (median) "
        "| fit, s | outputs, s | the rest, s |",
        "|---|---|---|---|---|---|---|",
    ]
    walls = {}
    for way, extra in WAYS.items():
        args = [str(BIN / "nnlab-train"), "-m", *SWEEP, f"trainer.max_epochs={epochs}", *extra]
        walls[way], (fits, costs) = timed_sweep(args, with_timings=True)
        first = next(iter(walls.values()))
        rest = walls[way] - sum(fits) - sum(costs)
        lines.append(
            f"| {way} | {walls[way]:.1f} | {walls[way] / first:.2f} "
            f"| {statistics.median(costs):.3f} | {sum(fits):.1f} | {sum(costs):.1f} | {rest:.1f} |"
        )
        print(lines[-1], file=sys.stderr, flush=True)
    per_config, together = list(walls.values())[1:]
    lines += [
        "",
        f"The population sweeper is {per_config / together:.2f}x faster than per configuration.",
    ]
    return lines


def gemm_flops_per_second() -> float:
    import torch

    a, b = torch.randn(512, 512), torch.randn(512, 512)
    for _ in range(5):
        a @ b
    start, reps = time.perf_counter(), 50
    for _ in range(reps):
        a @ b
    return 2 * 512**3 * reps / (time.perf_counter() - start)


def flops_per_member_epoch(sizes: list[int], train_rows: int, val_rows: int) -> float:
    """Multiply-adds x 2 of the forward pass; training is forward + backward (~3x forward)."""
    forward = 2 * sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))
    return train_rows * 3 * forward + val_rows * forward


def throughput_section() -> list[str]:
    sys.path.insert(0, str(Path(__file__).parent))
    from population import compose_cfg, fit_seconds

    from nnlab.config.seeds import member_config
    from nnlab.training.setup import quiet_lightning, run_setup

    quiet_lightning()
    rate = gemm_flops_per_second()
    lines = [
        "## Member-epochs per second against the compute floor",
        "",
        f"float32 GEMM (512x512) on this machine: {rate / 1e9:.1f} GFLOP/s.",
        "",
        "| batch | N | member-epochs/s | floor, member-epochs/s | share of the floor |",
        "|---|---|---|---|---|",
    ]
    for batch in ("32", "null"):
        cfg = compose_cfg(f"data.batch_size={batch}")
        setup = run_setup(cfg)
        flops = flops_per_member_epoch(
            setup.sizes, len(setup.splits.x_train), len(setup.splits.x_val)
        )
        floor = rate / flops
        short, long = (10, 40) if batch == "32" else (50, 250)
        for n in (1, 8, 20, 64):
            members = [member_config(cfg, k) for k in range(n)]
            per_epoch = (fit_seconds(cfg, members, long) - fit_seconds(cfg, members, short)) / (
                long - short
            )
            shown = "full" if batch == "null" else batch
            achieved = n / per_epoch
            lines.append(
                f"| {shown} | {n} | {achieved:,.0f} | {floor:,.0f} | {achieved / floor:.2%} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
    return lines


def member_epochs_per_second(cfg, members, short: int, long: int, alone=False) -> float:
    """Per-epoch cost as the difference of two run lengths (imports and set-up cancel)."""
    from population import fit_seconds

    def seconds(epochs: int) -> float:
        if alone:
            return sum(fit_seconds(m, [m], epochs) for m in members)
        return fit_seconds(cfg, members, epochs)

    return len(members) * (long - short) / (seconds(long) - seconds(short))


def hyperparameter_section() -> list[str]:
    sys.path.insert(0, str(Path(__file__).parent))
    from omegaconf import OmegaConf
    from population import compose_cfg

    from nnlab.config.seeds import member_config
    from nnlab.training import member_optimizer
    from nnlab.training.setup import quiet_lightning

    quiet_lightning()
    stackable = member_optimizer.can_stack

    def grouped(*args):  # torch's own Adam, one parameter group per learning rate
        member_optimizer.can_stack = lambda *_: False
        try:
            return member_epochs_per_second(*args)
        finally:
            member_optimizer.can_stack = stackable

    lines = [
        "## Per-member learning rates: stacked hyperparameters against a group per member",
        "",
        "8 members with 8 learning rates, Adam (fused kernel), member-epochs per second:",
        "",
        "| batch | stacked (1 call) | 8 groups | 1 lr, 1 group | one by one | stacked / groups "
        "| stacked / one by one |",
        "|---|---|---|---|---|---|---|",
    ]
    for batch in ("32", "null"):
        cfg = compose_cfg(f"data.batch_size={batch}")
        same = [member_config(cfg, k) for k in range(8)]
        varied = []
        for k, member in enumerate(same):
            member = member.copy()
            OmegaConf.update(member, "optimizer.lr", 0.001 * 2**k)
            varied.append(member)
        short, long = (10, 40) if batch == "32" else (50, 250)
        stacked = member_epochs_per_second(cfg, varied, short, long)
        groups = grouped(cfg, varied, short, long)
        one = member_epochs_per_second(cfg, same, short, long)
        by_one = member_epochs_per_second(cfg, varied, short, long, alone=True)
        shown = "full" if batch == "null" else batch
        lines.append(
            f"| {shown} | {stacked:,.0f} | {groups:,.0f} | {one:,.0f} | {by_one:,.0f} "
            f"| {stacked / groups:.2f} | {stacked / by_one:.2f} |"
        )
        print(lines[-1], file=sys.stderr, flush=True)
    return lines


def seed003_section(epochs: int) -> list[str]:
    lines = [
        f"## Seed 003's exercise sweeps, repeats=5, {epochs} epochs, start-up included",
        "",
        "| sweep | basic sweeper, s | population sweeper, s | ratio |",
        "|---|---|---|---|",
    ]
    for preset in ("architectures", "activations", "learning_rates", "l2"):
        walls = []
        for sweeper in ("basic", "nnlab_population"):
            args = [
                str(BIN / "nnlab-train"),
                "-m",
                f"sweep={preset}",
                f"hydra/sweeper={sweeper}",
                "repeats=5",
                f"trainer.max_epochs={epochs}",
                "trainer.progress=none",
            ]
            walls.append(timed_sweep(args)[0])
        lines.append(f"| {preset} | {walls[0]:.1f} | {walls[1]:.1f} | {walls[1] / walls[0]:.2f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sections", default="1,2,3,4")
    parser.add_argument("--epochs", type=int, default=500)
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    out: list[str] = []
    if "1" in sections:
        out += end_to_end_section(args.epochs) + [""]
    if "2" in sections:
        out += throughput_section() + [""]
    if "3" in sections:
        out += hyperparameter_section() + [""]
    if "4" in sections:
        out += seed003_section(args.epochs) + [""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
