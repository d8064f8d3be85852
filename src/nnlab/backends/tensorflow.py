"""TensorFlow: the forward pass written with tf.einsum, the gradients from tf.GradientTape
(in a tf.function graph); the configured torch optimizer applies them. Same data, metrics and
tracking."""

from __future__ import annotations

import os

from nnlab.lazy import LazyModule
from nnlab.nn.scratch import HUBER_DELTA, LEAKY_SLOPE

SQRT2 = 2.0**0.5

tf = LazyModule("tensorflow")

# Set before TensorFlow's first import, so here rather than where it is used. oneDNN's fused
# kernels reorder float sums ("slightly different numerical results", as its start-up notice
# says on stderr); without them float64 results match NumPy's and the notice is gone.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ info and warnings off the console

EXTRA = "tensorflow"
REQUIRES = "tensorflow"
ACCELERATORS = ("cpu",)  # weights and gradients pass through NumPy every step
PRECISIONS = (32, 64)
WEIGHT_COPIES = 2  # the weights as tensors, and the tape's gradients

# Each mirrors the NumPy function of the same name in nnlab.nn.scratch; the tape differentiates.
ACTIVATIONS = {
    "relu": lambda z: tf.nn.relu(z),
    "tanh": lambda z: tf.tanh(z),
    "sigmoid": lambda z: tf.sigmoid(z),
    # Spelled out: tf.nn.leaky_relu holds its slope as a float32 (0.009999999776).
    "leaky_relu": lambda z: tf.where(z > 0, z, LEAKY_SLOPE * z),
    # Exact GELU spelled out: tf.nn.gelu's own gradient is off by ~1e-6 relative in float64.
    "gelu": lambda z: 0.5 * z * (1.0 + tf.math.erf(z / SQRT2)),
    "identity": lambda z: z,
}
LOSSES = {
    "mse": lambda o, y: tf.reduce_mean(tf.square(o - y)),
    "half_mse": lambda o, y: 0.5 * tf.reduce_mean(tf.square(o - y)),
    "l1": lambda o, y: tf.reduce_mean(tf.abs(o - y)),
    "huber": lambda o, y: tf.reduce_mean(
        tf.where(
            tf.abs(o - y) < HUBER_DELTA,
            0.5 * tf.square(o - y),
            HUBER_DELTA * (tf.abs(o - y) - 0.5 * HUBER_DELTA),
        )
    ),
    "bce": lambda o, y: tf.reduce_mean(tf.nn.softplus(o) - y * o),  # on logits, stable
    "cross_entropy": lambda o, y: tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.reshape(y, [-1]), logits=o)
    ),
}


def member_mean(values):
    """One mean per member over a population's (members, rows[, outputs]) values: each member's
    loss from its own rows alone, as the single-network loss would compute it."""
    return tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


# The same losses for a population's stacked outputs (members, rows, outputs).
MEMBER_LOSSES = {
    "mse": lambda o, y: member_mean(tf.square(o - y)),
    "half_mse": lambda o, y: 0.5 * member_mean(tf.square(o - y)),
    "l1": lambda o, y: member_mean(tf.abs(o - y)),
    "huber": lambda o, y: member_mean(
        tf.where(
            tf.abs(o - y) < HUBER_DELTA,
            0.5 * tf.square(o - y),
            HUBER_DELTA * (tf.abs(o - y) - 0.5 * HUBER_DELTA),
        )
    ),
    "bce": lambda o, y: member_mean(tf.nn.softplus(o) - y * o),
    "cross_entropy": lambda o, y: member_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.reshape(y, tf.shape(o)[:-1]), logits=o
        )
    ),
}


class TensorFlowEngine:
    """The forward pass and the tape, traced once per batch shape into a graph by
    tf.function (`jit=False` runs them eagerly, for comparison).

    A population (nnlab.training.engine) has a leading member axis on every weight, input and
    output:
    the einsum carries a member index, the loss is one mean per member, and the tape
    differentiates their sum, so each member gets its own gradient."""

    def __init__(self, activation: str, jit: bool = True, population: bool = False):
        tf.get_logger().setLevel("ERROR")  # e.g. retracing notes
        act = ACTIVATIONS[activation]
        self.jit = jit
        self.population = population
        layer = "pni,pio->pno" if population else "ni,io->no"

        def forward(weights, biases, x):
            last = len(weights) - 1
            for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
                x = tf.einsum(layer, x, w) + (b[:, None, :] if population else b)
                if i < last:
                    x = act(x)
            return x

        self._raw_forward = forward
        self._forward = self._compile(forward)
        self._value_and_grad = {}  # loss name -> (weights, biases, x, y) -> (loss, dW, db)

    def _compile(self, fn):
        return tf.function(fn, reduce_retracing=True) if self.jit else fn

    def forward(self, weights, biases, x):
        return self._forward(weights, biases, x).numpy()

    def loss_and_grads(self, weights, biases, x, y, loss):
        if loss not in self._value_and_grad:
            loss_fn = (MEMBER_LOSSES if self.population else LOSSES)[loss]

            def value_and_grad(weights, biases, x, y):
                weights = [tf.convert_to_tensor(w) for w in weights]
                biases = [tf.convert_to_tensor(b) for b in biases]
                with tf.GradientTape() as tape:
                    tape.watch([*weights, *biases])
                    value = loss_fn(self._raw_forward(weights, biases, x), y)
                    total = tf.reduce_sum(value)  # d(sum)/d(member k) is member k's own
                d_w, d_b = tape.gradient(total, [weights, biases])
                return value, d_w, d_b

            self._value_and_grad[loss] = self._compile(value_and_grad)
        value, d_w, d_b = self._value_and_grad[loss](weights, biases, x, y)
        return value.numpy(), [g.numpy() for g in d_w], [g.numpy() for g in d_b]


def network(sizes, activation, init, seed, dtype, jit: bool = True):
    # lazy: nets imports torch; the config check reads this module first
    from nnlab.nn.nets import EngineMLP

    return EngineMLP(TensorFlowEngine(activation, jit), sizes, init, seed, dtype=dtype)


def population_network(member_params, activation, dtype, jit: bool = True):
    """N networks as one (nnlab.training.engine): einsum with a member index, one tape for all."""
    # lazy: nets imports torch; the config check reads this module first
    from nnlab.nn.nets import EngineMLP
    from nnlab.nn.population_nets import stacked_params

    engine = TensorFlowEngine(activation, jit, population=True)
    return EngineMLP(engine, params=stacked_params(member_params), dtype=dtype)
