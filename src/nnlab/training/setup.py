"""What a run trains on, known before any run exists: its data, task, loss, layer sizes
and precision (RunSetup), and what it reports when done (RunResult)."""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig

from nnlab.config.seeds import effective_seeds, what_it_computes
from nnlab.data.splits import (
    CSV,
    Splits,
    check_fits_precision,
    csv_table,
    make_splits,
)
from nnlab.nn.tasks import TASKS, Task

DTYPES = {32: torch.float32, 64: torch.float64}


def quiet_lightning() -> None:
    """Lightning's banner lines (GPU/TPU available, seed set, ...) say nothing about a CPU run
    of a small net; its warnings about DataLoader workers do not apply to in-memory batches."""
    for name in (
        "pytorch_lightning",
        "lightning.pytorch",
        "lightning.fabric",
        "lightning",
        "matplotlib",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (
        ".*does not have many workers.*",
        ".*`DataLoader`.*",
        ".*LeafSpec.*",
        ".*treespec.*",
        ".*GPU available but not used.*",
        ".*smaller than the logging interval.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)


def layer_sizes(cfg: DictConfig, splits: Splits) -> list[int]:
    """The dataset gives the ends, the config the middle."""
    return [splits.n_features, *cfg.model.hidden, splits.n_outputs]


@dataclass
class RunResult:
    run_id: str
    run_name: str
    objective: float
    metrics: dict[str, float]
    tracking_uri: str
    module: Any  # the trained member (nnlab.nn.population_nets.TrainedMember), or None
    skipped: bool = False  # True: an identical FINISHED run was found (tracking.skip_finished)
    splits: Splits | None = None  # the data it trained and was tested on
    task: Task | None = None
    experiment_id: str | None = None  # where the run is, when known without asking the store


@dataclass
class RunSetup:
    """What a run trains on and with, known before any run exists."""

    splits: Splits
    task: Task
    loss_name: str
    dtype: torch.dtype
    sizes: list[int]
    table: Any  # the user's CSV (nnlab.data.csv_table), or None for a built-in dataset


def run_setup(cfg: DictConfig, splits: Splits | None = None) -> RunSetup:
    """The run's data (or `splits`, already made), task, loss and layer sizes, checked."""
    splits = splits or make_splits(cfg.data, effective_seeds(cfg).data)
    task = TASKS[splits.task]
    loss_name = task.resolve_loss(cfg.model.loss)
    check_fits_precision(splits, cfg.trainer.precision, loss_name)
    table = csv_table(cfg.data) if cfg.data.name == CSV else None
    sizes = layer_sizes(cfg, splits)
    return RunSetup(splits, task, loss_name, DTYPES[cfg.trainer.precision], sizes, table)


def config_hash(cfg: DictConfig) -> str:
    """Identifies what a run computes: the resolved config minus where it is recorded."""
    plain = what_it_computes(cfg)
    plain.pop("tracking", None)
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:16]
