"""JAX: the forward pass written with jnp.einsum, the gradients from jax.grad (jitted); the
configured torch optimizer applies them. Same data, metrics and tracking."""

from __future__ import annotations

from nnlab.lazy import LazyModule
from nnlab.nn.scratch import HUBER_DELTA, LEAKY_SLOPE

jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")
jnn = LazyModule("jax.nn")

EXTRA = "jax"
REQUIRES = "jax"
ACCELERATORS = ("cpu",)  # weights and gradients pass through NumPy every step
PRECISIONS = (32, 64)
WEIGHT_COPIES = 2  # the weights as jax arrays, and jax's gradients

# Each mirrors the NumPy function of the same name in nnlab.nn.scratch; jax.grad differentiates.
ACTIVATIONS = {
    "relu": lambda z: jnn.relu(z),  # derivative 0 at 0, as NumPy's and torch's
    "tanh": lambda z: jnp.tanh(z),
    "sigmoid": lambda z: jnn.sigmoid(z),
    "leaky_relu": lambda z: jnn.leaky_relu(z, LEAKY_SLOPE),
    "gelu": lambda z: jnn.gelu(z, approximate=False),
    "identity": lambda z: z,
}
LOSSES = {
    "mse": lambda o, y: jnp.mean((o - y) ** 2),
    "half_mse": lambda o, y: 0.5 * jnp.mean((o - y) ** 2),
    "l1": lambda o, y: jnp.mean(jnp.abs(o - y)),
    "huber": lambda o, y: jnp.mean(
        jnp.where(
            jnp.abs(o - y) < HUBER_DELTA,
            0.5 * (o - y) ** 2,
            HUBER_DELTA * (jnp.abs(o - y) - 0.5 * HUBER_DELTA),
        )
    ),
    "bce": lambda o, y: jnp.mean(jnn.softplus(o) - y * o),  # on logits, stable for any o
    "cross_entropy": lambda o, y: (
        -jnp.mean(jnp.take_along_axis(jnn.log_softmax(o, axis=1), y.reshape(-1, 1), axis=1))
    ),
}


class JaxEngine:
    """Pure functions of (params, x): `jax.value_and_grad` differentiates them and `jax.jit`
    compiles them once per batch shape (`jit=False` runs them op by op, for comparison)."""

    def __init__(self, activation: str, jit: bool = True):
        # float64 needs x64 mode; float32 arrays stay float32 with it on.
        jax.config.update("jax_enable_x64", True)
        act = ACTIVATIONS[activation]
        self.jit = jit

        def forward(params, x):
            *hidden, (w_out, b_out) = params
            for w, b in hidden:
                x = act(jnp.einsum("ni,io->no", x, w) + b)
            return jnp.einsum("ni,io->no", x, w_out) + b_out

        self._raw_forward = forward
        self._forward = jax.jit(forward) if jit else forward
        self._value_and_grad = {}  # loss name -> compiled (params, x, y) -> (loss, grads)

    def forward(self, weights, biases, x):
        return self._forward(list(zip(weights, biases, strict=True)), x)

    def loss_and_grads(self, weights, biases, x, y, loss):
        if loss not in self._value_and_grad:
            loss_fn = LOSSES[loss]
            fn = jax.value_and_grad(lambda p, x, y: loss_fn(self._raw_forward(p, x), y))
            self._value_and_grad[loss] = jax.jit(fn) if self.jit else fn
        value, grads = self._value_and_grad[loss](list(zip(weights, biases, strict=True)), x, y)
        return value, [g for g, _ in grads], [g for _, g in grads]


class JaxPopulationEngine(JaxEngine):
    """The same pure functions mapped over a population's member axis with `jax.vmap`: one
    compiled call computes every member's outputs, loss and gradients, each member's from its
    own weights and batch alone (nnlab.training.population)."""

    def __init__(self, activation: str, jit: bool = True):
        super().__init__(activation, jit)
        forward = jax.vmap(self._raw_forward)
        self._forward = jax.jit(forward) if jit else forward

    def loss_and_grads(self, weights, biases, x, y, loss):
        if loss not in self._value_and_grad:
            loss_fn = LOSSES[loss]
            one = jax.value_and_grad(lambda p, x, y: loss_fn(self._raw_forward(p, x), y))
            fn = jax.vmap(one)
            self._value_and_grad[loss] = jax.jit(fn) if self.jit else fn
        values, grads = self._value_and_grad[loss](list(zip(weights, biases, strict=True)), x, y)
        return values, [g for g, _ in grads], [g for _, g in grads]


def network(sizes, activation, init, seed, dtype, jit: bool = True):
    # lazy: nets imports torch; the config check reads this module first
    from nnlab.nn.nets import EngineMLP

    return EngineMLP(JaxEngine(activation, jit), sizes, init, seed, dtype=dtype)


def population_network(member_params, activation, dtype, jit: bool = True):
    """Repeats as one network (nnlab.training.population): `jax.vmap` over the member axis."""
    # lazy: nets imports torch; the config check reads this module first
    from nnlab.nn.nets import EngineMLP
    from nnlab.nn.population_nets import stacked_params

    engine = JaxPopulationEngine(activation, jit)
    return EngineMLP(engine, params=stacked_params(member_params), dtype=dtype)
