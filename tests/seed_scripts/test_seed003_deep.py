"""Seed 003's deep variant (scripts/seed003_deep.py): the derivative bound on the first layer's
gradient norm over the last's holds against gradients computed by the from-scratch network's
backpropagation, and is attained where it should be."""

import sys

import numpy as np
import pytest

from nnlab.nn.scratch import MLP, init_params
from nnlab.paths import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
from seed003_deep import ratio_bound  # noqa: E402


def backprop_ratio(params, activation: str, x, y) -> float:
    """|g_1| / |g_last| from nnlab.nn.scratch's chain rule, at the weights `params`."""
    mlp = MLP([params[0][0].shape[0], *(w.shape[1] for w, _ in params)], activation)
    mlp.weights = [w.copy() for w, _ in params]
    mlp.biases = [b.copy() for _, b in params]
    _, d_w, _ = mlp.loss_and_grads(x, y.reshape(-1, 1), "bce")
    return float(np.linalg.norm(d_w[0]) / np.linalg.norm(d_w[-1]))


def test_a_chain_of_single_units_at_the_steepest_point_attains_the_sigmoid_bound():
    # Width 1, every weight 1 and every pre-activation 0, where sigmoid' is its largest, 1/4:
    # each of the four layers passes back exactly 1/4 of the signal, and the bound is equal.
    x, y = np.array([[1.0]]), np.array([1.0])
    params, h = [], 1.0
    for _ in range(4):
        params.append((np.ones((1, 1)), np.array([-h])))  # pre-activation h - h = 0
        h = 0.5  # sigmoid(0)
    params.append((np.ones((1, 1)), np.zeros(1)))
    measured = backprop_ratio(params, "sigmoid", x, y)
    assert measured == pytest.approx(2 / 256, rel=1e-12)  # x (1/4)^4 / sigmoid(0)
    assert ratio_bound(params, "sigmoid", x, y) == pytest.approx(measured, rel=1e-12)


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_the_bound_holds_for_deep_nets_at_their_initial_weights(activation):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(np.float64)
    for seed in range(5):
        params = init_params([2, 20, 20, 20, 20, 1], "he", seed)
        measured = backprop_ratio(params, activation, x, y)
        assert 0 < measured <= ratio_bound(params, activation, x, y)
