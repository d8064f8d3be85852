"""Tracking overhead: nnlab's buffered MLflow logger vs no logger, same run, interleaved.

    .venv/bin/python benchmarks/tracking_overhead.py [--epochs 100] [--repeats 5]

Prints per-epoch time of Lightning training (moons, MLP 2-10-5-1, batch 32) with tracking off,
with nnlab's buffered logger on a temporary sqlite store, and with Lightning's stock
MLFlowLogger, as ratios to tracking off.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient
from pytorch_lightning.loggers import MLFlowLogger

from nnlab.data import data_module, make_splits
from nnlab.mlflow_logger import BufferedMlflowLogger
from nnlab.modules import NetModule
from nnlab.nets import TorchMLP
from nnlab.paths import CONF_DIR
from nnlab.pipeline import quiet_lightning
from nnlab.tasks import TASKS


def fit_seconds(cfg, splits, logger) -> float:
    pl.seed_everything(0, verbose=False)
    net = TorchMLP([2, 10, 5, 1], "relu", "default", 0)
    module = NetModule(net, TASKS["binary"], "bce", instantiate(cfg.optimizer))
    dm = data_module(splits, 32, 0, torch.float32)
    trainer = pl.Trainer(
        max_epochs=cfg.trainer.max_epochs,
        logger=logger or False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    return (time.perf_counter() - start) / cfg.trainer.max_epochs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    quiet_lightning()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", [f"trainer.max_epochs={args.epochs}"])
    splits = make_splits(cfg.data, 0)
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        client = MlflowClient(uri)
        exp = client.create_experiment("bench", artifact_location=f"file://{tmp}/a")

        def buffered():
            return BufferedMlflowLogger(client, client.create_run(exp).info.run_id)

        def stock():
            return MLFlowLogger(experiment_name="bench", tracking_uri=uri)

        variants = {
            "tracking off": lambda: None,
            "nnlab buffered": buffered,
            "stock MLFlowLogger": stock,
        }
        times = {name: [] for name in variants}
        for _ in range(args.repeats):  # interleaved, so drift hits every variant alike
            for name, make in variants.items():
                times[name].append(fit_seconds(cfg, splits, make()))
    base = statistics.median(times["tracking off"])
    print(f"{'variant':<20} {'ms/epoch':>9} {'ratio':>6}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:<20} {med * 1e3:9.2f} {med / base:6.3f}")


if __name__ == "__main__":
    main()
