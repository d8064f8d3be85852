"""Losses and metrics against straightforward computations; networks built from the data."""

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from nnlab.backends.torch import ACTIVATIONS as TORCH_ACTIVATIONS
from nnlab.backends.torch import LOSSES as LOSS_FUNCTIONS
from nnlab.data.splits import make_splits
from nnlab.nn.metrics import evaluate
from nnlab.nn.nets import ScratchTorchMLP, TorchMLP
from nnlab.nn.scratch import ACTIVATIONS, LOSSES, init_params
from nnlab.nn.tasks import TASKS
from nnlab.training.setup import layer_sizes
from tests.conftest import compose_config


def test_regression_metrics_match_sklearn(rng):
    y = rng.normal(size=(50, 1))
    out = y + 0.3 * rng.normal(size=(50, 1))
    got = evaluate(TASKS["regression"], "mse", torch.tensor(out), torch.tensor(y), "test")
    assert got["test/mse"] == pytest.approx(skm.mean_squared_error(y, out))
    assert got["test/mae"] == pytest.approx(skm.mean_absolute_error(y, out))
    assert got["test/r2"] == pytest.approx(skm.r2_score(y, out))
    assert got["test/loss"] == pytest.approx(got["test/mse"])
    per_epoch = evaluate(TASKS["regression"], "mse", torch.tensor(out), torch.tensor(y), "val")
    assert per_epoch == {"val/loss": got["test/loss"], "val/r2": got["test/r2"]}


def test_binary_metrics_match_sklearn(rng):
    y = rng.integers(0, 2, size=(80, 1)).astype(float)
    logits = 2 * (y - 0.5) + rng.normal(size=(80, 1))
    got = evaluate(TASKS["binary"], "bce", torch.tensor(logits), torch.tensor(y), "test")
    prob = 1 / (1 + np.exp(-logits))
    assert got["test/acc"] == pytest.approx(skm.accuracy_score(y.ravel(), logits.ravel() > 0))
    assert got["test/auroc"] == pytest.approx(skm.roc_auc_score(y.ravel(), prob.ravel()))
    assert got["test/loss"] == pytest.approx(skm.log_loss(y.ravel(), prob.ravel()))


def test_multiclass_metrics_match_sklearn(rng):
    y = rng.integers(0, 4, size=100)
    logits = np.eye(4)[y] * 1.5 + rng.normal(size=(100, 4))
    got = evaluate(
        TASKS["multiclass"], "cross_entropy", torch.tensor(logits), torch.tensor(y), "test"
    )
    pred = logits.argmax(axis=1)
    assert got["test/acc"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["test/f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_torch_and_numpy_losses_agree(name, rng):
    if name == "cross_entropy":
        out, y = rng.normal(size=(20, 3)), rng.integers(0, 3, size=20)
        ty = torch.tensor(y)
    else:
        out = rng.normal(size=(20, 1)) * 3
        y = (
            rng.integers(0, 2, size=(20, 1)).astype(float)
            if name == "bce"
            else rng.normal(size=(20, 1))
        )
        ty = torch.tensor(y)
    t_out = torch.tensor(out, requires_grad=True)
    value = LOSS_FUNCTIONS[name](t_out, ty)
    value.backward()
    assert float(value.detach()) == pytest.approx(LOSSES[name].fn(out, y), rel=1e-12)
    np.testing.assert_allclose(t_out.grad.numpy(), LOSSES[name].grad(out, y), rtol=1e-10)


def test_activation_tables_name_the_same_functions():
    assert set(TORCH_ACTIVATIONS) == set(ACTIVATIONS)
    z = np.linspace(-4, 4, 101)
    for name, make in TORCH_ACTIVATIONS.items():
        np.testing.assert_allclose(
            make()(torch.tensor(z)).numpy(),
            ACTIVATIONS[name].fn(z),
            rtol=1e-12,
            atol=1e-15,
            err_msg=name,
        )


@pytest.mark.parametrize(
    "data, hidden, expected",
    [
        ("moons", "[10,5]", [2, 10, 5, 1]),
        ("iris", "[10,8]", [4, 10, 8, 3]),
        ("blobs", "[50,25]", [2, 50, 25, 5]),
        ("nonlinear3d", "[]", [3, 1]),
    ],
)
def test_layer_sizes_come_from_the_dataset(data, hidden, expected):
    cfg = compose_config(
        f"data={data}",
        f"model.hidden={hidden}",
        *(["data.n_samples=null"] if data == "iris" else []),
    )
    assert layer_sizes(cfg, make_splits(cfg.data, 0)) == expected


@pytest.mark.parametrize("init", ["default", "he", "xavier"])
def test_both_torch_nets_start_from_the_shared_initial_weights(init, rng):
    sizes = [3, 7, 4, 2]
    params = init_params(sizes, init, seed=5)
    module_net = TorchMLP(sizes, "tanh", init, 5, dtype=torch.float64)
    scratch_net = ScratchTorchMLP(sizes, "tanh", init, 5, dtype=torch.float64)
    for (w, b), tw, sw, sb in zip(
        params, module_net.weight_matrices(), scratch_net.weights, scratch_net.biases, strict=True
    ):
        np.testing.assert_array_equal(tw.detach().numpy(), w)
        np.testing.assert_array_equal(sw.detach().numpy(), w)
        np.testing.assert_array_equal(sb.detach().numpy(), b)
    x = torch.tensor(rng.normal(size=(5, 3)))
    torch.testing.assert_close(module_net(x), scratch_net(x), rtol=1e-12, atol=1e-12)


def test_init_schemes_have_their_documented_spread():
    fan_in, fan_out = 400, 300
    ((w_he, b_he),) = init_params([fan_in, fan_out], "he", 0)
    ((w_xa, _),) = init_params([fan_in, fan_out], "xavier", 0)
    ((w_def, b_def),) = init_params([fan_in, fan_out], "default", 0)
    assert w_he.std() == pytest.approx(np.sqrt(2 / fan_in), rel=0.02) and not b_he.any()
    assert w_xa.std() == pytest.approx(np.sqrt(2 / (fan_in + fan_out)), rel=0.02)
    assert np.abs(w_def).max() <= 1 / np.sqrt(fan_in) and np.abs(b_def).max() > 0
