"""A multi-layer perceptron in NumPy alone: forward, backward, activations, losses, init.

No torch here. Like micrograd, each activation and each loss keeps its value and its
derivative side by side, in tables keyed by the names the configs use. The initial weights of
*every* backend come from `init_params`, so that the NumPy, scratch-torch and nn.Module
networks start from the same numbers for the same seed.

Weights are stored as (fan_in, fan_out) so a layer is `x @ W + b`, as in the seeds' notebooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.special import erf


class Activation(NamedTuple):
    fn: object  # z -> a
    grad: object  # z -> da/dz


def _sigmoid(z):
    # Split by sign so that exp never overflows.
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


LEAKY_SLOPE = 0.01  # PyTorch's default negative slope
_SQRT2 = np.sqrt(2.0)

ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(z.dtype)),
    "tanh": Activation(np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "sigmoid": Activation(_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))),
    "leaky_relu": Activation(
        lambda z: np.where(z > 0, z, LEAKY_SLOPE * z),
        lambda z: np.where(z > 0, 1.0, LEAKY_SLOPE).astype(z.dtype),
    ),
    # Exact GELU (as torch.nn.GELU()): z * Phi(z); derivative Phi(z) + z * phi(z).
    "gelu": Activation(
        lambda z: 0.5 * z * (1.0 + erf(z / _SQRT2)),
        lambda z: 0.5 * (1.0 + erf(z / _SQRT2)) + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi),
    ),
    "identity": Activation(lambda z: z, lambda z: np.ones_like(z)),
}


class Loss(NamedTuple):
    fn: object  # (output, target) -> mean loss
    grad: object  # (output, target) -> dLoss/doutput
    proba: object  # output -> what `predict_proba` returns


def _softplus(z):
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _onehot(y, o):
    """Class indices y as one-hot rows shaped like the logits o."""
    return np.eye(o.shape[-1], dtype=o.dtype)[y.astype(np.int64).reshape(o.shape[:-1])]


def _mean(values):
    """The mean over one network's outputs: the last two axes (rows, outputs). A population's
    outputs carry a leading member axis (nnlab.training.population), which gets one mean per
    member."""
    return np.mean(values, axis=(-2, -1))


def _size(o):
    """How many output elements one network's mean loss averages over."""
    return o.shape[-2] * o.shape[-1]


HUBER_DELTA = 1.0  # PyTorch's default

# Every loss averages over all of a network's output elements, as PyTorch's reduction="mean"
# does (one value per member for a population's stacked outputs).
LOSSES: dict[str, Loss] = {
    "mse": Loss(
        lambda o, y: _mean((o - y) ** 2), lambda o, y: 2.0 * (o - y) / _size(o), lambda o: o
    ),
    # Seed 000's L = 1/2 (y - y_pred)^2: its gradient is just (y_pred - y).
    "half_mse": Loss(
        lambda o, y: 0.5 * _mean((o - y) ** 2), lambda o, y: (o - y) / _size(o), lambda o: o
    ),
    "l1": Loss(
        lambda o, y: _mean(np.abs(o - y)), lambda o, y: np.sign(o - y) / _size(o), lambda o: o
    ),
    "huber": Loss(
        lambda o, y: _mean(
            np.where(
                np.abs(o - y) < HUBER_DELTA,
                0.5 * (o - y) ** 2,
                HUBER_DELTA * (np.abs(o - y) - 0.5 * HUBER_DELTA),
            )
        ),
        lambda o, y: np.clip(o - y, -HUBER_DELTA, HUBER_DELTA) / _size(o),
        lambda o: o,
    ),
    # Binary cross-entropy on logits: softplus(z) - y z, stable for any z.
    "bce": Loss(
        lambda o, y: _mean(_softplus(o) - y * o),
        lambda o, y: (_sigmoid(o) - y) / _size(o),
        _sigmoid,
    ),
    # Softmax cross-entropy on logits; y holds class indices.
    "cross_entropy": Loss(
        lambda o, y: -np.mean(np.sum(_onehot(y, o) * _log_softmax(o), axis=-1), axis=-1),
        lambda o, y: (_softmax(o) - _onehot(y, o)) / o.shape[-2],
        _softmax,
    ),
}

INITS = ("default", "he", "xavier")


def init_params(sizes: list[int], init: str, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Initial (W, b) for each layer, in float64, from `seed` alone.

    default: PyTorch's nn.Linear scheme, W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    he:      W ~ N(0, 2/fan_in), b = 0 (suits ReLU).
    xavier:  W ~ N(0, 2/(fan_in + fan_out)), b = 0 (suits tanh and sigmoid).
    """
    if init not in INITS:
        raise ValueError(f"model.init={init!r}: allowed {', '.join(INITS)}")
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        if init == "default":
            bound = 1.0 / np.sqrt(fan_in)
            w = rng.uniform(-bound, bound, size=(fan_in, fan_out))
            b = rng.uniform(-bound, bound, size=fan_out)
        else:
            var = 2.0 / fan_in if init == "he" else 2.0 / (fan_in + fan_out)
            w = rng.normal(0.0, np.sqrt(var), size=(fan_in, fan_out))
            b = np.zeros(fan_out)
        params.append((w, b))
    return params


@dataclass
class MLP:
    """A fully connected network: hidden layers use `activation`, the output layer is linear.

    `forward` caches the pre-activations and activations that `backward` needs; `backward`
    applies the chain rule layer by layer and returns a gradient for every weight and bias.
    """

    sizes: list[int]
    activation: str = "relu"
    init: str = "default"
    seed: int = 0
    dtype: type = np.float64
    weights: list[np.ndarray] = field(init=False)
    biases: list[np.ndarray] = field(init=False)

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r}: allowed {', '.join(ACTIVATIONS)}")
        params = init_params(self.sizes, self.init, self.seed)
        self.weights = [w.astype(self.dtype) for w, _ in params]
        self.biases = [b.astype(self.dtype) for _, b in params]
        self._cache: tuple[list[np.ndarray], list[np.ndarray]] | None = None
        self.history: dict[str, list[float]] = {"loss": [], "accuracy": []}

    def forward(self, x: np.ndarray) -> np.ndarray:
        act = ACTIVATIONS[self.activation].fn
        inputs, pre = [x], []  # inputs[i] enters layer i; pre[i] = its pre-activation
        a = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = a @ w + b[..., None, :]  # b[None, :] for one network, (members, 1, out) stacked
            pre.append(z)
            a = z if i == last else act(z)
            if i != last:
                inputs.append(a)
        self._cache = (inputs, pre)
        return a

    def backward(self, d_out: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Gradients of the loss w.r.t. every W and b, given dLoss/d(output) of the last
        `forward`."""
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() first")
        inputs, pre = self._cache
        dact = ACTIVATIONS[self.activation].grad
        d_w, d_b = [None] * len(self.weights), [None] * len(self.weights)
        delta = d_out  # dLoss/dz of the current layer; the output layer is linear
        # Written for stacked arrays too (a population: a leading member axis): the matrix
        # transposes swap the last two axes, the bias gradient sums over the rows.
        for i in reversed(range(len(self.weights))):
            d_w[i] = np.swapaxes(inputs[i], -1, -2) @ delta
            d_b[i] = delta.sum(axis=-2)
            if i > 0:
                delta = (delta @ np.swapaxes(self.weights[i], -1, -2)) * dact(pre[i - 1])
        return d_w, d_b

    def loss_and_grads(self, x, y, loss: str, l1: float = 0.0, l2: float = 0.0):
        """Mean data loss, and the gradients of data loss + L1/L2 penalties on the weights.

        The returned value leaves the penalties out, so that it compares with a validation loss.
        """
        out = self.forward(x)
        value = LOSSES[loss].fn(out, y)
        d_w, d_b = self.backward(LOSSES[loss].grad(out, y))
        if l1 or l2:
            d_w = [g + l1 * np.sign(w) + l2 * w for g, w in zip(d_w, self.weights, strict=True)]
        return value, d_w, d_b

    def penalty(self, l1: float = 0.0, l2: float = 0.0) -> float:
        """l1 * sum|W| + l2/2 * sum W^2 over the weights (not the biases)."""
        return sum(l1 * np.abs(w).sum() + 0.5 * l2 * (w * w).sum() for w in self.weights)

    def fit(self, x, y, epochs: int, lr: float, loss: str, l1: float = 0.0, l2: float = 0.0):
        """Full-batch gradient descent, recording loss (and accuracy for classifiers)."""
        for _ in range(epochs):
            value, d_w, d_b = self.loss_and_grads(x, y, loss, l1, l2)
            for i in range(len(self.weights)):
                self.weights[i] -= lr * d_w[i]
                self.biases[i] -= lr * d_b[i]
            self.history["loss"].append(float(value))
            if loss in ("bce", "cross_entropy"):
                self.history["accuracy"].append(self.accuracy(x, y, loss))
        return self

    def predict_proba(self, x, loss: str) -> np.ndarray:
        return LOSSES[loss].proba(self.forward(x))

    def predict(self, x, loss: str) -> np.ndarray:
        out = self.forward(x)
        if loss == "bce":
            return (out > 0).astype(np.int64)
        if loss == "cross_entropy":
            return out.argmax(axis=1)
        return out

    def accuracy(self, x, y, loss: str) -> float:
        return float(np.mean(self.predict(x, loss).ravel() == y.ravel()))


@dataclass
class TinyNet:
    """Seed 000's 2-1-1 network, written with its own scalar formulas:

        z1 = w1 x1 + w2 x2 + b        a1 = relu(z1)        y_pred = w3 a1 + b2
        L  = 1/2 (y_true - y_pred)^2  (averaged over the batch)

    and the gradients derived by hand with the chain rule, dL/dy_pred = (y_pred - y_true):

        dL/dw3 = dL/dy_pred * a1                dL/db2 = dL/dy_pred
        dL/dw1 = dL/dy_pred * w3 * relu'(z1) * x1
        dL/dw2 = dL/dy_pred * w3 * relu'(z1) * x2
        dL/db  = dL/dy_pred * w3 * relu'(z1)

    It is `MLP([2, 1, 1], "relu")` spelled out; the tests hold the two (and autograd) equal.
    """

    w1: float
    w2: float
    b: float
    w3: float
    b2: float

    @classmethod
    def from_mlp(cls, mlp: MLP) -> TinyNet:
        (w_in, w_out), (b_in, b_out) = mlp.weights, mlp.biases
        return cls(w_in[0, 0], w_in[1, 0], b_in[0], w_out[0, 0], b_out[0])

    def forward(self, x1, x2):
        z1 = self.w1 * x1 + self.w2 * x2 + self.b
        a1 = np.maximum(0.0, z1)
        return z1, a1, self.w3 * a1 + self.b2

    def loss(self, x1, x2, y_true) -> float:
        return float(np.mean(0.5 * (y_true - self.forward(x1, x2)[2]) ** 2))

    def gradients(self, x1, x2, y_true) -> dict[str, float]:
        z1, a1, y_pred = self.forward(x1, x2)
        d_y = (y_pred - y_true) / np.size(y_true)  # mean over the batch
        d_z1 = d_y * self.w3 * (z1 > 0)
        return {
            "w1": float(np.sum(d_z1 * x1)),
            "w2": float(np.sum(d_z1 * x2)),
            "b": float(np.sum(d_z1)),
            "w3": float(np.sum(d_y * a1)),
            "b2": float(np.sum(d_y)),
        }
