import numpy as np
import pytest

from nnlab.data.datasets import BINARY, DATASETS, MULTICLASS, REGRESSION
from nnlab.data.splits import TensorBatches, make_splits
from tests.conftest import compose_config

ALL = sorted(DATASETS)


@pytest.mark.parametrize("name", ALL)
def test_splits_have_declared_shapes_and_targets(name):
    cfg = compose_config(f"data={name}", "data.n_samples=120")
    s = make_splits(cfg.data, seed=0)
    assert len(s.x_train) + len(s.x_val) + len(s.x_test) == 120
    for x, y in [(s.x_train, s.y_train), (s.x_val, s.y_val), (s.x_test, s.y_test)]:
        assert x.shape[1] == DATASETS[name].n_features
        assert len(x) == len(y) and np.isfinite(x).all()
    if s.task == REGRESSION:
        assert s.n_outputs == 1 and s.y_train.dtype == np.float64
    else:
        classes = np.unique(np.concatenate([s.y_train, s.y_val, s.y_test]))
        expected = 2 if s.task == BINARY else s.n_outputs
        assert set(classes) == set(range(expected))
        assert s.n_outputs == (1 if s.task == BINARY else expected)


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_data_other_seed_other_data(name):
    cfg = compose_config(f"data={name}", "data.noise=0.1")
    a, b, c = (make_splits(cfg.data, seed) for seed in (3, 3, 4))
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)


def test_standardisation_uses_training_split_only():
    s = make_splits(compose_config("data=sine").data, seed=1)
    np.testing.assert_allclose(s.x_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(s.x_train.std(axis=0), 1, atol=1e-12)
    assert abs(s.x_val.mean()) > 1e-6  # val statistics were not used


def test_tasks_are_declared_by_datasets():
    assert DATASETS["moons"].task == BINARY
    assert DATASETS["iris"].task == MULTICLASS and DATASETS["iris"].n_outputs(None) == 3
    assert DATASETS["blobs"].n_outputs(7) == 7
    assert DATASETS["nonlinear3d"].task == REGRESSION and DATASETS["nonlinear3d"].n_features == 3


def test_blobs_default_is_five_classes_for_the_seed_network():
    s = make_splits(compose_config("data=blobs").data, seed=0)
    assert s.n_outputs == 5


def test_batches_cover_every_sample_once_in_a_seeded_order():
    import torch

    x = torch.arange(10.0).reshape(-1, 1)
    batches = TensorBatches(x, x.clone(), batch_size=4, shuffle=True, seed=7)
    first = torch.cat([b for b, _ in batches]).ravel()
    second = torch.cat([b for b, _ in batches]).ravel()
    assert len(batches) == 3
    assert sorted(first.tolist()) == list(range(10))
    assert not torch.equal(first, second)  # a new order every epoch
    again = TensorBatches(x, x.clone(), batch_size=4, shuffle=True, seed=7)
    assert torch.equal(torch.cat([b for b, _ in again]).ravel(), first)  # same seed, same order
    for bx, by in TensorBatches(x, x + 1, batch_size=3, shuffle=True, seed=0):
        assert torch.equal(by, bx + 1)  # inputs and targets stay paired


def test_full_batch_is_one_unshuffled_batch():
    import torch

    x = torch.arange(6.0).reshape(-1, 1)
    (only,) = list(TensorBatches(x, x, batch_size=None, shuffle=True, seed=0))
    assert torch.equal(only[0], x)


@pytest.mark.parametrize("name", ALL)
def test_negative_zero_noise_is_zero_noise(name):
    cfg = compose_config(f"data={name}", "data.n_samples=120", "data.noise=-0.0")
    reference = compose_config(f"data={name}", "data.n_samples=120", "data.noise=0.0")
    np.testing.assert_array_equal(
        make_splits(cfg.data, 0).x_train, make_splits(reference.data, 0).x_train
    )
