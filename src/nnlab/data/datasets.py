"""The built-in datasets: seeded generators, each declaring its task and its sizes.

A dataset declares its task and its input/output sizes here; configs and models never repeat
them. Generators return float64 NumPy arrays so that every backend sees the same numbers.
The user's own table is `nnlab.data.csv_table`; splits and batches are `nnlab.data.splits`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

REGRESSION, BINARY, MULTICLASS = "regression", "binary", "multiclass"
IRIS_SIZE = 150


class DataError(ValueError):
    """Data that cannot be trained on (a bad file, NaN or inf values, values beyond the
    chosen precision, a split too small for its task); the message is one line."""


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is: its task, its sizes, and how to draw it."""

    name: str
    task: str
    n_features: int
    # (n_samples, noise, n_classes, rng) -> (X, y); y is a class index or a real target.
    generate: Callable[[int | None, float, int, np.random.Generator], tuple[np.ndarray, np.ndarray]]
    fixed_classes: int | None = None  # None: the class count is the config's `n_classes`

    def n_classes(self, cfg_classes: int | None) -> int:
        if self.task == MULTICLASS:
            return self.fixed_classes or int(cfg_classes or 0)
        return 0

    def n_outputs(self, cfg_classes: int | None) -> int:
        return self.n_classes(cfg_classes) if self.task == MULTICLASS else 1


def _seed_int(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def _moons(n, noise, _k, rng):
    # scikit-learn (~1 s) loads for the dataset asked for, not for every config check.
    from sklearn.datasets import make_moons

    return make_moons(n_samples=n, noise=noise, random_state=_seed_int(rng))


def _circles(n, noise, _k, rng):
    # lazy: scikit-learn (~1 s) loads only for the datasets it makes
    from sklearn.datasets import make_circles

    return make_circles(n_samples=n, noise=noise, factor=0.5, random_state=_seed_int(rng))


def _xor(n, noise, _k, rng):
    x = rng.uniform(-1.0, 1.0, size=(n, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    return x + noise * rng.standard_normal(x.shape), y


def _spiral(n, noise, k, rng):
    # Arm c of k: radius grows 0 -> 1 while the angle turns; noise jitters the angle.
    per_class = np.array_split(np.arange(n), k)
    x, y = np.zeros((n, 2)), np.zeros(n, dtype=np.int64)
    for c, idx in enumerate(per_class):
        r = np.linspace(0.0, 1.0, len(idx))
        t = np.linspace(c * 4.0, (c + 1) * 4.0, len(idx)) + noise * rng.standard_normal(len(idx))
        x[idx] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[idx] = c
    return x, y


def _blobs(n, noise, k, rng):
    # lazy: scikit-learn (~1 s) loads only for the datasets it makes
    from sklearn.datasets import make_blobs

    return make_blobs(
        n_samples=n, centers=k, n_features=2, cluster_std=noise, random_state=_seed_int(rng)
    )


def _tabular10(n, noise, _k, rng):
    # lazy: scikit-learn (~1 s) loads only for the datasets it makes
    from sklearn.datasets import make_classification

    return make_classification(
        n_samples=n,
        n_features=10,
        n_informative=5,
        n_redundant=2,
        n_classes=3,
        flip_y=noise,
        random_state=_seed_int(rng),
    )


def subsample_with_noise(x, y, n, noise, rng):
    """A fixed table as a dataset: `n` rows drawn without replacement (None: all), and
    Gaussian noise in units of each feature's spread, so it means the same for every feature."""
    if n is not None and n < len(x):
        keep = rng.choice(len(x), size=n, replace=False)
        x, y = x[keep], y[keep]
    if noise:
        x = x + noise * x.std(axis=0) * rng.standard_normal(x.shape)
    return x, y


def _iris(n, noise, _k, rng):
    # lazy: scikit-learn (~1 s) loads only for the datasets it makes
    from sklearn.datasets import load_iris

    return subsample_with_noise(*load_iris(return_X_y=True), n, noise, rng)


def _sine(n, noise, _k, rng):
    x = rng.uniform(-np.pi, np.pi, size=(n, 1))
    return x, np.sin(x[:, 0]) + noise * rng.standard_normal(n)


def _linear(n, noise, _k, rng):
    x = rng.uniform(-1.0, 1.0, size=(n, 2))
    return x, 2.0 * x[:, 0] - 3.0 * x[:, 1] + 1.0 + noise * rng.standard_normal(n)


def _nonlinear3d(n, noise, _k, rng):
    x = rng.uniform(-1.0, 1.0, size=(n, 3))
    y = np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2 - x[:, 0] * x[:, 2]
    return x, y + noise * rng.standard_normal(n)


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec("moons", BINARY, 2, _moons),
        DatasetSpec("circles", BINARY, 2, _circles),
        DatasetSpec("xor", BINARY, 2, _xor),
        DatasetSpec("spiral", MULTICLASS, 2, _spiral),
        DatasetSpec("blobs", MULTICLASS, 2, _blobs),
        DatasetSpec("iris", MULTICLASS, 4, _iris, fixed_classes=3),
        DatasetSpec("tabular10", MULTICLASS, 10, _tabular10, fixed_classes=3),
        DatasetSpec("sine", REGRESSION, 1, _sine),
        DatasetSpec("linear", REGRESSION, 2, _linear),
        DatasetSpec("nonlinear3d", REGRESSION, 3, _nonlinear3d),
    ]
}
