"""nnlab's benchmark suite: everything side by side with a baseline measured in the same run.

    make bench                      # or: .venv/bin/python benchmarks/suite.py [--quick]

1. per-epoch time (train + validation): bare torch loop (the floor), bare NumPy loop, nnlab's
   torch / torch_scratch / numpy backends through Lightning, tracking off and on (sqlite in a
   temp dir); at batch 32 and full batch. Ratios to the bare torch loop.
2. scaling: n_samples 1e3 ... 1e6 (MLP 2-50-25-5, batch 4096): samples/s, nnlab vs bare loop.
3. per-run fixed cost outside training, piece by piece; wall time of `nnlab-train --help` and
   `nnlab-report`.
4. sweep throughput: 24 jobs sequential and with 2 joblib workers (skipped by --quick).
6. backends: per-epoch time of every backend (nnlab.backends), JIT on and off where it
   applies, at batch 32 and full batch, as ratios to the bare torch loop. Each per-epoch figure
   is the difference of two run lengths, so compilation and set-up cancel.

Variants run interleaved (a, b, c, a, b, c, ...) and each figure is the median of the
repeats, so that machine noise hits every variant alike. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from nnlab import backends
from nnlab.backends.torch import LOSSES as LOSS_FUNCTIONS
from nnlab.config.check import check_config
from nnlab.data.splits import TensorBatches, make_splits
from nnlab.nn.scratch import MLP
from nnlab.nn.tasks import TASKS
from nnlab.paths import CONF_DIR
from nnlab.tracking.logger import BufferedMlflowLogger, PopulationLogger
from nnlab.training.fit import build_trainer, fit_and_test, member_network, population_module
from nnlab.training.population_data import OneItem
from nnlab.training.setup import layer_sizes, quiet_lightning, run_setup

BIN = Path(sys.executable).parent


def config(*overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(
            "train", ["optimizer=sgd", "optimizer.lr=0.1", "trainer.progress=none", *overrides]
        )


def median_of(variants: dict, repeats: int) -> dict[str, float]:
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, measure in variants.items():
            times[name].append(measure())
    return {name: statistics.median(v) for name, v in times.items()}


# -- 1. per-epoch time ----------------------------------------------------------------------
def bare_torch_epochs(cfg, splits, epochs: int) -> float:
    """The floor: the loop anyone would write, with validation loss and accuracy per epoch."""
    sizes = layer_sizes(cfg, splits)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers += [torch.nn.Linear(a, b)] + ([torch.nn.ReLU()] if i < len(sizes) - 2 else [])
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.optimizer.lr)
    task = TASKS[splits.task]
    loss_fn = LOSS_FUNCTIONS[task.default_loss]
    multi = splits.task == "multiclass"

    def as_y(y):
        return torch.tensor(y) if multi else torch.tensor(y, dtype=torch.float32).reshape(-1, 1)

    x, y = torch.tensor(splits.x_train, dtype=torch.float32), as_y(splits.y_train)
    xv, yv = torch.tensor(splits.x_val, dtype=torch.float32), as_y(splits.y_val)
    batches = TensorBatches(x, y, cfg.data.batch_size, True, 0)
    start = time.perf_counter()
    for _ in range(epochs):
        for bx, by in batches:
            opt.zero_grad()
            loss_fn(net(bx), by).backward()
            opt.step()
        with torch.no_grad():
            out = net(xv)
            loss_fn(out, yv).item()
            pred = out.argmax(1) if multi else (out > 0).float()
            (pred == yv).float().mean().item()
    return (time.perf_counter() - start) / epochs


def bare_numpy_epochs(cfg, splits, epochs: int) -> float:
    mlp = MLP(layer_sizes(cfg, splits), "relu", seed=0, dtype=np.float32)
    loss = TASKS[splits.task].default_loss
    multi = splits.task == "multiclass"
    x = splits.x_train.astype(np.float32)
    y = splits.y_train if multi else splits.y_train.reshape(-1, 1).astype(np.float32)
    xv = splits.x_val.astype(np.float32)
    yv = splits.y_val if multi else splits.y_val.reshape(-1, 1).astype(np.float32)
    bs = cfg.data.batch_size or len(x)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), bs):
            idx = order[i : i + bs]
            _, d_w, d_b = mlp.loss_and_grads(x[idx], y[idx], loss)
            for k in range(len(mlp.weights)):
                mlp.weights[k] -= cfg.optimizer.lr * d_w[k]
                mlp.biases[k] -= cfg.optimizer.lr * d_b[k]
        from nnlab.nn.scratch import LOSSES

        LOSSES[loss].fn(mlp.forward(xv), yv)
        mlp.accuracy(xv, yv, loss)
    return (time.perf_counter() - start) / epochs


def nnlab_epochs(
    overrides: list[str], splits, epochs: int, backend: str, tracking_uri: str | None
) -> float:
    """nnlab's own module, data and trainer; only fit is timed (test and artifacts are per-run
    costs, measured in section 3). `backend` may carry options: 'jax backend.jit=false'."""
    from nnlab.tracking.store.client import get_client

    name, *options = backend.split()
    cfg = config(*overrides, f"backend={name}", *options, f"trainer.max_epochs={epochs}")
    module = population_module(cfg, [cfg], [run_setup(cfg, splits)])
    logger = BufferedMlflowLogger(None, None)
    if tracking_uri:
        client = get_client(tracking_uri)
        exp = client.get_experiment_by_name("bench") or client.get_experiment(
            client.create_experiment(
                "bench", artifact_location=Path(tracking_uri[10:]).parent.joinpath("a").as_uri()
            )
        )
        logger = BufferedMlflowLogger(client, client.create_run(exp.experiment_id).info.run_id)
    population_logger = PopulationLogger([logger])
    module.record_fn = population_logger.record
    with tempfile.TemporaryDirectory() as scratch:
        trainer = build_trainer(cfg, module, population_logger, [], scratch)
        start = time.perf_counter()
        trainer.fit(module, train_dataloaders=OneItem())
        population_logger.flush()
        return (time.perf_counter() - start) / epochs


def per_epoch_section(repeats: int, store: str) -> list[str]:
    lines = [
        "## 1. Per-epoch time (train + validation), MLP 2-10-5-1, moons 1,000 points, SGD",
        "",
        "| variant | batch 32: ms/epoch | ratio | full batch: ms/epoch | ratio |",
        "|---|---|---|---|---|",
    ]
    results = {}
    # Long enough that a run's end (final metric flush) is amortised as in real runs.
    for batch, epochs in (("32", 100), ("null", 1000)):
        overrides = ["data=moons", f"data.batch_size={batch}"]
        cfg = config(*overrides)
        splits = make_splits(cfg.data, 0)
        variants = {
            "bare torch loop": lambda c=cfg, s=splits, e=epochs: bare_torch_epochs(c, s, e),
            "bare NumPy loop": lambda c=cfg, s=splits, e=epochs: bare_numpy_epochs(c, s, e),
        }
        for backend in ("torch", "torch_scratch", "numpy"):  # all backends: section 6
            for uri, label in ((None, "tracking off"), (store, "tracking on")):
                variants[f"nnlab {backend}, {label}"] = (
                    lambda o=overrides, s=splits, e=epochs, b=backend, u=uri: nnlab_epochs(
                        o, s, e, b, u
                    )
                )
        results[batch] = median_of(variants, repeats)
    for name in results["32"]:
        a, b = results["32"][name], results["null"][name]
        lines.append(
            f"| {name} | {a * 1e3:.3f} | {a / results['32']['bare torch loop']:.2f} | "
            f"{b * 1e3:.3f} | {b / results['null']['bare torch loop']:.2f} |"
        )
    for batch in ("32", "null"):
        r = results[batch]
        lines.append("")
        lines.append(
            f"batch {batch}: tracking on / off (torch backend) = "
            f"{r['nnlab torch, tracking on'] / r['nnlab torch, tracking off']:.3f}"
        )
    return lines


# -- 6. backends ----------------------------------------------------------------------------
def backends_section(repeats: int) -> list[str]:
    lines = [
        "## 6. Backends: per-epoch time (train + validation), MLP 2-10-5-1, moons 1,000 points,"
        " SGD, float32",
        "",
        "| backend | batch 32: ms/epoch | ratio | full batch: ms/epoch | ratio |",
        "|---|---|---|---|---|",
    ]
    variants_of = ["bare torch loop"]
    for name in backends.names():
        if backends.get(name).missing_extra():
            continue
        jit = "jit" in config(f"backend={name}").backend
        variants_of += [f"{name} backend.jit=true", f"{name} backend.jit=false"] if jit else [name]
    results = {}
    for batch, long in (("32", 100), ("null", 1000)):
        overrides = ["data=moons", f"data.batch_size={batch}"]
        cfg = config(*overrides)
        splits = make_splits(cfg.data, 0)

        def per_epoch(variant, epochs, cfg=cfg, splits=splits, overrides=overrides):
            if variant == "bare torch loop":
                return bare_torch_epochs(cfg, splits, epochs) * epochs
            return nnlab_epochs(overrides, splits, epochs, variant, None) * epochs

        short = long // 5
        results[batch] = median_of(
            {
                v: lambda v=v, a=long, b=short: (per_epoch(v, a) - per_epoch(v, b)) / (a - b)
                for v in variants_of
            },
            repeats,
        )
    for name in variants_of:
        a, b = results["32"][name], results["null"][name]
        lines.append(
            f"| {name.replace(' backend.', ', ')} | {a * 1e3:.3f} | "
            f"{a / results['32']['bare torch loop']:.2f} | {b * 1e3:.3f} | "
            f"{b / results['null']['bare torch loop']:.2f} |"
        )
    return lines


# -- 2. scaling -----------------------------------------------------------------------------
def scaling_section(repeats: int, sizes: list[int]) -> list[str]:
    lines = [
        "## 2. Scaling: MLP 2-50-25-5 on 5 blobs, batch 4096, SGD",
        "",
        "| n_samples | bare loop: samples/s | nnlab torch: samples/s | nnlab / bare |",
        "|---|---|---|---|",
    ]
    for n in sizes:
        overrides = [
            "data=blobs",
            f"data.n_samples={n}",
            "data.batch_size=4096",
            "model.hidden=[50,25]",
        ]
        cfg = config(*overrides)
        splits = make_splits(cfg.data, 0)
        epochs = max(2, min(200, 2_000_000 // n))
        r = median_of(
            {
                "bare": lambda c=cfg, s=splits, e=epochs: bare_torch_epochs(c, s, e),
                "nnlab": lambda o=overrides, s=splits, e=epochs: nnlab_epochs(
                    o, s, e, "torch", None
                ),
            },
            repeats,
        )
        n_train = len(splits.x_train)
        lines.append(
            f"| {n:,} | {n_train / r['bare']:,.0f} | {n_train / r['nnlab']:,.0f} | "
            f"{r['bare'] / r['nnlab']:.2f} |"
        )
    return lines


# -- 3. per-run fixed cost ------------------------------------------------------------------
def fixed_cost_section(repeats: int, store: str) -> list[str]:
    from nnlab.tracking.describe import experiment_params
    from nnlab.tracking.store.client import get_client, log_params
    from nnlab.training.outputs import log_outputs
    from nnlab.training.setup import run_setup

    cfg = config("trainer.max_epochs=5")
    splits = make_splits(cfg.data, cfg.seed)
    client = get_client(store)
    exp = client.create_experiment(
        "fixed-cost", artifact_location=Path(store[10:]).parent.joinpath("fixed-cost").as_uri()
    )
    state = {}

    def timed(fn):
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def train_once():
        setup = run_setup(cfg, splits)
        module = population_module(cfg, [cfg], [setup])
        fit_and_test(cfg, module, PopulationLogger([BufferedMlflowLogger(None, None)]), "bench")
        state.update(net=member_network(cfg, module, 0, setup))

    train_once()

    history = BufferedMlflowLogger(None, None)  # only its curves are read, for the figures
    history.history["train/loss"] = [(0, 0.7), (1, 0.5)]

    pieces = {
        "compose + check the config": lambda: timed(lambda: check_config(config())),
        "make the data splits": lambda: timed(lambda: make_splits(cfg.data, cfg.seed)),
        "build module + trainer": lambda: timed(
            lambda: build_trainer(
                cfg,
                population_module(cfg, [cfg], [run_setup(cfg, splits)]),
                None,
                [],
                tempfile.gettempdir(),
            )
        ),
        "create the run + log params": lambda: timed(
            lambda: log_params(
                client,
                client.create_run(exp).info.run_id,
                experiment_params(cfg),
            )
        ),
        "figures + checkpoint + artifacts": lambda: timed(
            lambda: log_outputs(
                client,
                client.create_run(exp).info.run_id,
                cfg,
                state["net"],
                run_setup(cfg, splits),
                history.history,
            )
        ),
    }
    r = median_of(pieces, repeats)
    lines = [
        f"## 3. Per-run fixed cost outside training (median of {repeats})",
        "",
        "| piece | ms |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v * 1e3:.0f} |" for k, v in r.items()]
    lines.append(f"| **total** | **{sum(r.values()) * 1e3:.0f}** |")

    def wall(*cmd):
        return lambda: timed(
            lambda: subprocess.run(
                cmd,
                capture_output=True,
                check=True,
                env={**os.environ, "MLFLOW_TRACKING_URI": store},
            )
        )

    commands = median_of(
        {
            "python -c pass (interpreter floor)": wall(sys.executable, "-c", "pass"),
            "nnlab-train --help": wall(str(BIN / "nnlab-train"), "--help"),
            "nnlab-report": wall(str(BIN / "nnlab-report"), "--runs", "--limit", "5"),
        },
        3,
    )
    lines += ["", "| command | wall s |", "|---|---|"]
    lines += [f"| `{k}` | {v:.2f} |" for k, v in commands.items()]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no 1e6, no sweeps")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--sections", default="1,2,3,4,6", help="which sections to run, e.g. 3,4")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    quiet_lightning()
    print(
        f"# nnlab benchmarks\n\nmachine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} "
        f"threads), python {platform.python_version()}\n",
        flush=True,
    )
    sections = set(args.sections.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{tmp}/mlflow.db"
        if "1" in sections:
            print("\n".join(per_epoch_section(repeats, store)) + "\n", flush=True)
        if "2" in sections:
            sizes = [1_000, 10_000, 100_000] + ([] if args.quick else [1_000_000])
            print("\n".join(scaling_section(max(1, repeats - 2), sizes)) + "\n", flush=True)
        if "3" in sections:
            print("\n".join(fixed_cost_section(repeats, store)), flush=True)
        if "6" in sections:
            print("\n".join(backends_section(repeats)) + "\n", flush=True)
    if not args.quick and "4" in sections:
        sys.path.insert(0, str(Path(__file__).parent))
        from sweep_throughput import sweep

        seq, par = sweep(24, 200, 1), sweep(24, 200, 2)
        print("\n## 4. Sweep throughput: 24 jobs, moons 2-10-5-1, 200 epochs, batch 32\n")
        print("| variant | wall s | jobs/min | fit s/job | overhead s/job |\n|---|---|---|---|---|")
        for name, r in (("sequential", seq), ("joblib, 2 workers", par)):
            print(
                f"| {name} | {r['wall']:.1f} | {60 * 24 / r['wall']:.1f} | {r['fit']:.2f} | "
                f"{r['overhead']:.3f} |"
            )
        print(f"\nparallel efficiency: {seq['wall'] / (2 * par['wall']):.2f}")


if __name__ == "__main__":
    main()
