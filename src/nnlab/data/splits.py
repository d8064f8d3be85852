"""Data for a run: the dataset (built-in or the user's CSV), its splits, standardisation,
and batches sliced from memory.

Torch is imported only by the DataModule at the bottom, so config checks stay light.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnlab.data.datasets import (
    DATASETS,
    IRIS_SIZE,
    MULTICLASS,
    REGRESSION,
    DataError,
    DatasetSpec,
    subsample_with_noise,
)

EVAL_CHUNK = 65_536  # rows per evaluation batch: no gradients to hold, so big is cheapest
CSV = "csv"


@dataclass
class Splits:
    """Standardised train/val/test arrays plus what the model needs to know about them."""

    spec: DatasetSpec
    n_outputs: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def n_features(self) -> int:
        return self.spec.n_features


def csv_table(data_cfg: Any):
    """The user's CSV named by a `data=csv` config, read and checked (cached per file state)."""
    # lazy: pandas (~0.5 s) loads only for a CSV dataset
    from nnlab.data.csv_table import read_csv_table

    features = data_cfg.get("features")
    return read_csv_table(
        data_cfg.get("path"),
        data_cfg.get("target"),
        data_cfg.get("task", "auto"),
        bool(data_cfg.get("dropna", False)),
        list(features) if features else None,
        data_cfg.get("categorical", "auto"),
        str(data_cfg.get("delimiter", "auto")),
        str(data_cfg.get("decimal", "auto")),
        str(data_cfg.get("encoding", "auto")),
    )


def dataset_spec(data_cfg: Any) -> DatasetSpec:
    """What `data_cfg` names: a built-in dataset, or the spec of the user's CSV file."""
    if data_cfg.name != CSV:
        return DATASETS[data_cfg.name]
    table = csv_table(data_cfg)
    return DatasetSpec(
        CSV,
        table.task,
        len(table.features),
        lambda n, noise, _k, rng: subsample_with_noise(table.x, table.y, n, noise, rng),
        fixed_classes=table.n_classes if table.task == MULTICLASS else None,
    )


def dataset_label(data_cfg: Any) -> str:
    """How run names and titles call the dataset: its name, or the CSV file's stem."""
    if data_cfg.name == CSV and data_cfg.get("path"):
        return Path(str(data_cfg.path)).stem
    return str(data_cfg.name)


def n_rows(data_cfg: Any) -> int:
    """How many rows the dataset will have (a fixed table's size when n_samples is null)."""
    if data_cfg.get("n_samples") is not None:
        return int(data_cfg.n_samples)
    return len(csv_table(data_cfg).y) if data_cfg.name == CSV else IRIS_SIZE


def make_splits(data_cfg: Any, seed: int) -> Splits:
    """Draw the dataset from `seed`, split it, and standardise with train statistics only."""
    spec = dataset_spec(data_cfg)
    n_classes = data_cfg.get("n_classes")
    rng = np.random.default_rng(seed)
    # + 0.0 turns -0.0 (which passes the >= 0 check) into 0.0: NumPy's samplers refuse a
    # negative zero scale (found by the property test).
    noise = float(data_cfg.noise) + 0.0
    x, y = spec.generate(data_cfg.n_samples, noise, n_classes, rng)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64 if spec.task != REGRESSION else np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        bad = int((~np.isfinite(x)).sum() + (~np.isfinite(y)).sum())
    if bad:
        raise DataError(
            f"data.name={spec.name}: the data has {bad} value(s) that are not finite "
            "(NaN or inf, or beyond float64's range); nothing was trained"
        )

    order = rng.permutation(len(x))
    _, n_val, n_test = split_sizes(len(x), data_cfg.val_fraction, data_cfg.test_fraction)
    test, val, train = np.split(order, [n_test, n_test + n_val])

    mean, scale = _standardisation(x[train], spec.name)
    z = (x - mean) / scale
    splits = Splits(
        spec,
        spec.n_outputs(n_classes),
        z[train],
        y[train],
        z[val],
        y[val],
        z[test],
        y[test],
        mean,
        scale,
    )
    check_split_classes(splits, data_cfg.get("n_samples"))
    return splits


def _standardisation(x_train: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread of the training features. Values so large that their squares overflow
    float64 (about 1.3e154) cannot be standardised: said as a data problem, not trained on."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean = x_train.mean(axis=0)
        scale = x_train.std(axis=0)
    if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
        raise DataError(
            f"data.name={name}: feature values reach {np.abs(x_train).max():.3g}, too large "
            "to standardise in float64 (their squares overflow); rescale the data "
            "(or lower data.noise)"
        )
    scale = scale.copy()
    scale[scale == 0] = 1.0  # a constant feature stays constant instead of becoming NaN
    return mean, scale


SQUARED_LOSSES = ("mse", "half_mse")
SMALL_SPLIT = 20  # below this many samples a split's metrics move in coarse steps


def check_split_classes(splits: Splits, n_samples: int | None = None) -> None:
    """A class missing from the training split cannot be learnt: refused. A class missing from
    the validation or test split leaves some metrics undefined, and a tiny split measures
    coarsely: both are said once, as warnings."""
    # lazy: needed only when a split lacks a class
    from nnlab.console import warn

    name = splits.spec.name
    if splits.task != REGRESSION:
        k = max(splits.n_outputs, 2)
        missing = sorted(set(range(k)) - set(np.unique(splits.y_train).tolist()))
        if missing:
            shown = "null" if n_samples is None else n_samples
            raise DataError(
                f"data.n_samples={shown}: the training split of {name} "
                f"({len(splits.y_train)} samples) "
                f"has no sample of class {', '.join(map(str, missing))}: use more samples "
                "(or a smaller data.val_fraction / data.test_fraction)"
            )
        for stage, y in (("val", splits.y_val), ("test", splits.y_test)):
            absent = sorted(set(range(k)) - set(np.unique(y).tolist()))
            if absent:
                effect = (
                    f" ({stage}/f1_macro averages over the classes present)"
                    if splits.task == MULTICLASS
                    else ""
                )
                warn(
                    f"the {stage} split of {name} ({len(y)} samples) has no sample of class "
                    f"{', '.join(map(str, absent))}{effect}"
                )
    for stage, y in (("val", splits.y_val), ("test", splits.y_test)):
        if len(y) < SMALL_SPLIT:
            warn(
                f"the {stage} split of {name} has only {len(y)} samples: its metrics move "
                f"in steps of {1 / len(y):.2g}; use more data.n_samples to measure anything"
            )


def check_fits_precision(splits: Splits, precision: int, loss: str) -> None:
    """Refuse data that overflows the chosen float precision, naming the precision.

    Features are standardised, so only the regression target can be out of range: as a value
    (beyond the dtype's max), or once a squared loss squares and sums it over a batch."""
    if splits.task != REGRESSION:
        return
    dtype = np.float32 if precision == 32 else np.float64
    largest = float(np.abs(splits.y_train).max(initial=0.0))
    limit = float(np.finfo(dtype).max)
    reason = f"beyond what float{precision} holds (max {limit:.3g})"
    if loss in SQUARED_LOSSES:
        limit = float(np.sqrt(limit / max(len(splits.y_train), 1)))
        reason = f"too large for the {loss} loss in float{precision}: its squares overflow"
    if largest > limit:
        raise DataError(
            f"trainer.precision={precision}: target values reach {largest:.3g}, {reason} "
            "(this is the data, not training diverging); rescale the target"
            + (" or use trainer.precision=64" if precision == 32 else "")
        )


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """(train, val, test) sizes, as make_splits computes them; used by the config checks."""
    n_test = max(1, round(n * test_fraction))
    n_val = max(1, round(n * val_fraction))
    return n - n_test - n_val, n_val, n_test


class TensorBatches:
    """Mini-batches sliced from in-memory tensors: no per-sample __getitem__ and collate.

    A default DataLoader over a TensorDataset collates sample by sample (4.6 ms a step at batch
    1000 on a 2-core machine, against 0.34 ms for slicing). Shuffling is seeded per epoch, so
    the same seed gives the same order in every backend and every process.
    """

    def __init__(self, x, y, batch_size: int | None, shuffle: bool, seed: int):
        self.x, self.y = x, y
        self.batch_size = batch_size or len(x)
        self.shuffle = shuffle and self.batch_size < len(x)
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self) -> Iterator:
        n, bs = len(self.x), self.batch_size
        if self.shuffle:
            order = epoch_order(n, self.seed, self.epoch)
            x, y = self.x[order], self.y[order]
        else:
            x, y = self.x, self.y
        self.epoch += 1
        for start in range(0, n, bs):
            yield x[start : start + bs], y[start : start + bs]


def epoch_order(n: int, seed: int, epoch: int):
    """The training split's order in `epoch` (a torch permutation): a function of the seed and
    the epoch alone, so every backend, a resumed run and code outside nnlab (seed 001's
    TensorFlow and JAX variants) see the same batches."""
    # lazy: torch; the config check reads this module first
    import torch

    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def as_tensors(task: str, x: np.ndarray, y: np.ndarray, dtype):
    """A split as the tensors a network trains on: features in `dtype`; targets as class
    indices (multiclass) or as a column of `dtype` values."""
    # lazy: torch; the config check reads this module first
    import torch

    if task == MULTICLASS:
        return torch.as_tensor(x, dtype=dtype), torch.as_tensor(y, dtype=torch.long)
    return torch.as_tensor(x, dtype=dtype), torch.as_tensor(y, dtype=dtype).reshape(-1, 1)
