"""Per-step training time of the from-scratch ladder, side by side, in one process.

    .venv/bin/python benchmarks/step_time.py [--steps 2000] [--repeats 5] [--batch 32]

Same data (moons, 1,000 points, 600 for training), same net (MLP 2-10-5-1 relu, SGD), same
batch size, for: a bare NumPy loop, a bare torch loop (the baseline), and nnlab's numpy,
torch_scratch and torch backends through Lightning (validation off, tracking off, so the
numbers are the training step itself). Variants run interleaved, median of the repeats;
ratios are to the bare torch loop.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

from nnlab.data import TensorBatches, data_module, make_splits
from nnlab.paths import CONF_DIR
from nnlab.pipeline import build_module, quiet_lightning
from nnlab.scratch import MLP
from nnlab.tasks import TASKS

SIZES = [2, 10, 5, 1]


def bare_numpy(splits, steps, batch, lr) -> float:
    mlp = MLP(SIZES, "relu", seed=0)
    x, y = splits.x_train, splits.y_train.reshape(-1, 1).astype(float)
    start, done = time.perf_counter(), 0
    while done < steps:
        for i in range(0, len(x), batch):
            _, d_w, d_b = mlp.loss_and_grads(x[i : i + batch], y[i : i + batch], "bce")
            for k in range(len(mlp.weights)):
                mlp.weights[k] -= lr * d_w[k]
                mlp.biases[k] -= lr * d_b[k]
            done += 1
    return (time.perf_counter() - start) / done


def bare_torch(splits, steps, batch, lr) -> float:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(2, 10),
        torch.nn.ReLU(),
        torch.nn.Linear(10, 5),
        torch.nn.ReLU(),
        torch.nn.Linear(5, 1),
    )
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    x = torch.tensor(splits.x_train, dtype=torch.float32)
    y = torch.tensor(splits.y_train, dtype=torch.float32).reshape(-1, 1)
    loss_fn = torch.nn.functional.binary_cross_entropy_with_logits
    start, done = time.perf_counter(), 0
    while done < steps:
        for bx, by in TensorBatches(x, y, batch, shuffle=True, seed=0):
            opt.zero_grad()
            loss_fn(net(bx), by).backward()
            opt.step()
            done += 1
    return (time.perf_counter() - start) / done


def lightning(backend: str):
    def measure(splits, steps, batch, lr) -> float:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", [f"backend={backend}", "optimizer=sgd", f"optimizer.lr={lr}"])
        module = build_module(cfg, TASKS["binary"], "bce", SIZES, torch.float32)
        dm = data_module(splits, batch, 0, torch.float32)
        trainer = pl.Trainer(
            max_steps=steps,
            logger=False,
            enable_progress_bar=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            accelerator="cpu",
        )
        start = time.perf_counter()
        trainer.fit(module, datamodule=dm)
        return (time.perf_counter() - start) / trainer.global_step

    return measure


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    quiet_lightning()
    torch.set_num_threads(1)  # small nets: threads cost more than they give, for every variant
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        splits = make_splits(compose("train", ["data=moons"]).data, 0)
    variants = {
        "bare numpy loop": bare_numpy,
        "bare torch loop": bare_torch,
        "nnlab numpy": lightning("numpy"),
        "nnlab torch_scratch": lightning("torch_scratch"),
        "nnlab torch": lightning("torch"),
    }
    times = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, measure in variants.items():
            times[name].append(measure(splits, args.steps, args.batch, 0.1))
    base = statistics.median(times["bare torch loop"])
    print(
        f"MLP 2-10-5-1 relu, moons, batch {args.batch}, {args.steps} steps, "
        f"median of {args.repeats}"
    )
    print(f"{'variant':<22} {'us/step':>9} {'x bare torch':>13}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:<22} {med * 1e6:9.1f} {med / base:13.2f}")


if __name__ == "__main__":
    main()
