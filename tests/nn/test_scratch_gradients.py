"""The NumPy MLP's hand-written backward against torch autograd and finite differences."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnlab.backends.torch import LOSSES as LOSS_FUNCTIONS
from nnlab.nn.nets import ScratchTorchMLP
from nnlab.nn.scratch import ACTIVATIONS, LOSSES, MLP, TinyNet

SMOOTH_ACTIVATIONS = ["tanh", "sigmoid", "gelu", "identity"]  # no kink for finite differences


def _problem(draw_widths, n_in, n_out, batch, loss, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, n_in))
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, size=batch)
    elif loss == "bce":
        y = rng.integers(0, 2, size=(batch, 1)).astype(float)
    else:
        y = rng.normal(size=(batch, 1))
    return [n_in, *draw_widths, n_out if loss == "cross_entropy" else 1], x, y


problems = st.fixed_dictionaries(
    {
        "widths": st.lists(st.integers(1, 8), min_size=0, max_size=3),
        "n_in": st.integers(1, 4),
        "n_out": st.integers(2, 4),
        "batch": st.integers(1, 17),
        "loss": st.sampled_from(sorted(LOSSES)),
        "activation": st.sampled_from(sorted(ACTIVATIONS)),
        "init": st.sampled_from(["default", "he", "xavier"]),
        "seed": st.integers(0, 10_000),
    }
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(problems)
def test_backward_matches_autograd(p):
    sizes, x, y = _problem(p["widths"], p["n_in"], p["n_out"], p["batch"], p["loss"], p["seed"])
    mlp = MLP(sizes, p["activation"], p["init"], seed=p["seed"])
    value, d_w, d_b = mlp.loss_and_grads(x, y, p["loss"])

    twin = ScratchTorchMLP(sizes, p["activation"], p["init"], p["seed"], dtype=torch.float64)
    t_value = LOSS_FUNCTIONS[p["loss"]](twin(torch.tensor(x)), torch.tensor(y))
    t_value.backward()
    assert value == pytest.approx(t_value.item(), rel=1e-10, abs=1e-12)
    for mine, theirs in zip([*d_w, *d_b], [*twin.weights, *twin.biases], strict=True):
        np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    problems.filter(lambda p: p["loss"] not in ("l1", "huber")), st.sampled_from(SMOOTH_ACTIVATIONS)
)
def test_backward_matches_central_finite_differences(p, activation):
    sizes, x, y = _problem(p["widths"], p["n_in"], p["n_out"], p["batch"], p["loss"], p["seed"])
    mlp = MLP(sizes, activation, p["init"], seed=p["seed"])
    _, d_w, d_b = mlp.loss_and_grads(x, y, p["loss"], l1=0.0, l2=0.01)
    eps = 1e-6
    for params, grads in [(mlp.weights, d_w), (mlp.biases, d_b)]:
        for array, grad in zip(params, grads, strict=True):
            for idx in np.ndindex(array.shape):
                keep = array[idx]
                array[idx] = keep + eps
                up = mlp.loss_and_grads(x, y, p["loss"])[0] + mlp.penalty(l2=0.01)
                array[idx] = keep - eps
                down = mlp.loss_and_grads(x, y, p["loss"])[0] + mlp.penalty(l2=0.01)
                array[idx] = keep
                assert grad[idx] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-7)


def test_l1_gradient_is_the_sign_of_each_weight():
    mlp = MLP([2, 3, 1], "relu", seed=0)
    x, y = np.ones((4, 2)), np.zeros((4, 1))
    _, plain, _ = mlp.loss_and_grads(x, y, "mse")
    _, with_l1, _ = mlp.loss_and_grads(x, y, "mse", l1=0.5)
    for a, b, w in zip(plain, with_l1, mlp.weights, strict=True):
        np.testing.assert_allclose(b - a, 0.5 * np.sign(w))


def test_seed000_tiny_net_formulas_match_the_mlp_and_autograd():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 2)), rng.normal(size=(16, 1))
    mlp = MLP([2, 1, 1], "relu", "he", seed=3)
    mlp.biases[0][:] = 0.3  # make the hidden ReLU active for some points, not all
    tiny = TinyNet.from_mlp(mlp)
    value, d_w, d_b = mlp.loss_and_grads(x, y, "half_mse")
    assert tiny.loss(x[:, 0], x[:, 1], y[:, 0]) == pytest.approx(value, rel=1e-12)
    g = tiny.gradients(x[:, 0], x[:, 1], y[:, 0])
    assert [g["w1"], g["w2"], g["b"], g["w3"], g["b2"]] == pytest.approx(
        [d_w[0][0, 0], d_w[0][1, 0], d_b[0][0], d_w[1][0, 0], d_b[1][0]], rel=1e-12
    )

    params = {
        k: torch.tensor(float(v), dtype=torch.float64, requires_grad=True)
        for k, v in vars(tiny).items()
    }
    tx, ty = torch.tensor(x), torch.tensor(y[:, 0])
    a1 = torch.relu(params["w1"] * tx[:, 0] + params["w2"] * tx[:, 1] + params["b"])
    loss = (0.5 * (ty - (params["w3"] * a1 + params["b2"])) ** 2).mean()
    loss.backward()
    for name, param in params.items():
        assert g[name] == pytest.approx(param.grad.item(), rel=1e-12, abs=1e-15), name


def test_fit_reduces_loss_and_tracks_accuracy():
    from sklearn.datasets import make_moons

    x, y = make_moons(200, noise=0.1, random_state=0)
    mlp = MLP([2, 10, 5, 1], "relu", "he", seed=0).fit(
        x, y.reshape(-1, 1), epochs=300, lr=0.5, loss="bce"
    )
    assert mlp.history["loss"][-1] < 0.5 * mlp.history["loss"][0]
    assert mlp.history["accuracy"][-1] > 0.85
    assert mlp.predict_proba(x, "bce").min() >= 0 and mlp.predict_proba(x, "bce").max() <= 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mlp_keeps_its_dtype(dtype):
    mlp = MLP([3, 4, 2], "tanh", seed=0, dtype=dtype)
    out = mlp.forward(np.ones((2, 3), dtype=dtype))
    _, d_w, _ = mlp.loss_and_grads(np.ones((2, 3), dtype=dtype), np.array([0, 1]), "cross_entropy")
    assert out.dtype == dtype and all(w.dtype == dtype for w in mlp.weights)
    assert all(g.dtype == dtype for g in d_w)
