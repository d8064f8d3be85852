"""Seed 001's other TensorFlow notebooks and its JAX notebook, each written the way that API
is used, for scripts/reproduce_seed001.py.

They are other ways of *building* the seed's network, not new gradient engines (those are the
backends, `backend=tensorflow` and `backend=jax`), so they live here rather than in nnlab:

- `tf_low_level`: tf.Variable weights, tf.matmul, GradientTape, `assign_sub` (PartE1);
- `keras_layers`: keras.layers.Dense called in a GradientTape loop with keras' SGD (PartE3);
- `keras_functional`: keras.Input -> Dense -> keras.Model, compile and fit (PartE4);
- `keras_sequential`: keras.Sequential, compile and fit (PartE5);
- `jax_notebook`: pure functions of a parameter list, `jax.value_and_grad`, `jax.jit`, and the
  SGD update written as a function that returns new parameters (PartH).

Each starts from nnlab's initial weights (`Problem.params`) and steps through nnlab's
mini-batches in nnlab's order (`Problem.batches`), so each must follow the numpy backend's
curve. Each returns its per-epoch `{"train/loss": [...], "val/loss": [...]}` (sample-weighted
mean of the batch losses, as nnlab logs it) and its final [(W, b), ...].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Imported for its settings: TensorFlow without oneDNN's reordered float sums and without its
# start-up notices, set before TensorFlow's own import, as the tensorflow backend runs it.
import nnlab.backends.tensorflow  # noqa: F401
from nnlab.data.splits import epoch_order

KERAS_ACTIVATIONS = ("relu", "tanh", "sigmoid")  # same name, same function as nnlab's


@dataclass
class Problem:
    """The seed's regression problem as nnlab trains it: standardised splits, the initial
    weights, plain SGD with `lr`, `epochs` epochs of mini-batches in nnlab's order."""

    x_train: np.ndarray
    y_train: np.ndarray  # (n, 1)
    x_val: np.ndarray
    y_val: np.ndarray
    params: list[tuple[np.ndarray, np.ndarray]]  # (W as (fan_in, fan_out), b) per layer
    activation: str
    lr: float
    epochs: int
    batch_size: int | None
    order_seed: int

    def __post_init__(self):
        if self.activation not in KERAS_ACTIVATIONS:
            raise ValueError(f"activation={self.activation}: allowed {KERAS_ACTIVATIONS}")

    def batches(self, epoch: int):
        n = len(self.x_train)
        bs = self.batch_size or n
        order = epoch_order(n, self.order_seed, epoch).numpy() if bs < n else np.arange(n)
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            yield self.x_train[idx], self.y_train[idx]


def _epoch_mean(losses: list[tuple[float, int]]) -> float:
    return sum(v * n for v, n in losses) / sum(n for _, n in losses)


# -- TensorFlow, low-level ops (PartE1) ------------------------------------------------------
def tf_low_level(p: Problem):
    import tensorflow as tf

    act = {"relu": tf.nn.relu, "tanh": tf.tanh, "sigmoid": tf.sigmoid}[p.activation]
    weights = [tf.Variable(w) for w, _ in p.params]
    biases = [tf.Variable(b) for _, b in p.params]
    variables = [*weights, *biases]

    def forward(x):
        for w, b in zip(weights[:-1], biases[:-1], strict=True):
            x = act(tf.add(tf.matmul(x, w), b))
        return tf.add(tf.matmul(x, weights[-1]), biases[-1])

    def mse(x, y):
        return tf.reduce_mean(tf.square(tf.subtract(forward(x), y)))

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = mse(x, y)
        for var, grad in zip(variables, tape.gradient(loss, variables), strict=True):
            var.assign_sub(p.lr * grad)
        return loss

    history = {"train/loss": [], "val/loss": []}
    for epoch in range(p.epochs):
        losses = [(float(step(x, y)), len(x)) for x, y in p.batches(epoch)]
        history["train/loss"].append(_epoch_mean(losses))
        history["val/loss"].append(float(mse(p.x_val, p.y_val)))
    return history, [(w.numpy(), b.numpy()) for w, b in zip(weights, biases, strict=True)]


# -- Keras ----------------------------------------------------------------------------------
class _Float64Keras:
    """Keras computes losses and optimizer state in `floatx` (float32 by default): float64
    for the duration, so the variants compare with the float64 backends."""

    def __enter__(self):
        import keras

        self.before = keras.config.floatx()
        keras.config.set_floatx("float64")
        return keras

    def __exit__(self, *exc):
        import keras

        keras.config.set_floatx(self.before)


def _dense_layers(keras, p: Problem):
    """One Dense layer per (W, b), holding nnlab's initial weights; linear output."""
    layers = []
    for i, (w, b) in enumerate(p.params):
        last = i == len(p.params) - 1
        layer = keras.layers.Dense(w.shape[1], activation=None if last else p.activation)
        layer.build((None, w.shape[0]))
        layer.set_weights([w, b])
        layers.append(layer)
    return layers


def _weights_of(layers) -> list[tuple[np.ndarray, np.ndarray]]:
    return [tuple(np.asarray(v) for v in layer.get_weights()) for layer in layers]


def keras_layers(p: Problem):
    """Built-in layers, custom training loop (PartE3)."""
    import tensorflow as tf

    with _Float64Keras() as keras:
        layers = _dense_layers(keras, p)
        variables = [v for layer in layers for v in layer.trainable_variables]
        optimizer = keras.optimizers.SGD(learning_rate=p.lr)
        mse = keras.losses.MeanSquaredError()

        def forward(x):
            for layer in layers:
                x = layer(x)
            return x

        @tf.function(reduce_retracing=True)
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = mse(y, forward(x))
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables, strict=True))
            return loss

        history = {"train/loss": [], "val/loss": []}
        for epoch in range(p.epochs):
            losses = [(float(step(x, y)), len(x)) for x, y in p.batches(epoch)]
            history["train/loss"].append(_epoch_mean(losses))
            history["val/loss"].append(float(mse(p.y_val, forward(p.x_val))))
        return history, _weights_of(layers)


def _compile_and_fit(keras, model, layers, p: Problem):
    """`fit` one epoch at a time on that epoch's rows in nnlab's order, unshuffled, so that
    its batches are nnlab's. (One `fit` over a keras PyDataset that re-orders itself at each
    epoch's end does not work: the input pipeline reads ahead into the next epoch.)"""
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=p.lr), loss="mse")
    history = {"train/loss": [], "val/loss": []}
    for epoch in range(p.epochs):
        x, y = (np.concatenate(parts) for parts in zip(*p.batches(epoch), strict=True))
        fitted = model.fit(
            x,
            y,
            batch_size=p.batch_size or len(x),
            shuffle=False,
            validation_data=(p.x_val, p.y_val),
            validation_batch_size=len(p.x_val),
            epochs=1,
            verbose=0,
        )
        history["train/loss"].append(fitted.history["loss"][0])
        history["val/loss"].append(fitted.history["val_loss"][0])
    return history, _weights_of(layers)


def keras_functional(p: Problem):
    """The functional API: keras.Input through the layers to a keras.Model (PartE4)."""
    with _Float64Keras() as keras:
        layers = _dense_layers(keras, p)
        inputs = keras.Input(shape=(p.x_train.shape[1],))
        x = inputs
        for layer in layers:
            x = layer(x)
        return _compile_and_fit(keras, keras.Model(inputs, x), layers, p)


def keras_sequential(p: Problem):
    """The high-level API: keras.Sequential, compile and fit (PartE5)."""
    with _Float64Keras() as keras:
        layers = _dense_layers(keras, p)
        model = keras.Sequential([keras.Input(shape=(p.x_train.shape[1],)), *layers])
        return _compile_and_fit(keras, model, layers, p)


# -- JAX (PartH) ----------------------------------------------------------------------------
def jax_notebook(p: Problem):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    act = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}[p.activation]

    def predict(params, x):
        for w, b in params[:-1]:
            x = act(x @ w + b)
        w, b = params[-1]
        return x @ w + b

    def mse(params, x, y):
        return jnp.mean((predict(params, x) - y) ** 2)

    @jax.jit
    def update(params, x, y):
        loss, grads = jax.value_and_grad(mse)(params, x, y)
        pairs = zip(params, grads, strict=True)
        return [(w - p.lr * dw, b - p.lr * db) for (w, b), (dw, db) in pairs], loss

    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in p.params]
    val_loss = jax.jit(mse)
    history = {"train/loss": [], "val/loss": []}
    for epoch in range(p.epochs):
        losses = []
        for x, y in p.batches(epoch):
            params, loss = update(params, x, y)
            losses.append((float(loss), len(x)))
        history["train/loss"].append(_epoch_mean(losses))
        history["val/loss"].append(float(val_loss(params, p.x_val, p.y_val)))
    return history, [(np.asarray(w), np.asarray(b)) for w, b in params]


VARIANTS = {
    "tensorflow low-level ops": tf_low_level,
    "keras layers, own loop": keras_layers,
    "keras functional API + fit": keras_functional,
    "keras Sequential + fit": keras_sequential,
    "jax notebook (jit, grad)": jax_notebook,
}
