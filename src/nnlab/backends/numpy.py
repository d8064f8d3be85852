"""The NumPy MLP of nnlab.nn.scratch: NumPy does forward and backward by hand; the configured
torch optimizer applies the gradients. Same data, metrics and tracking."""

from __future__ import annotations

from nnlab.nn.scratch import ACTIVATIONS, LOSSES, MLP

EXTRA = None
REQUIRES = None
ACCELERATORS = ("cpu",)
PRECISIONS = (32, 64)
WEIGHT_COPIES = 1  # NumPy's gradient arrays, copied into .grad
# ACTIVATIONS and LOSSES are nnlab.nn.scratch's tables: each function beside its derivative.
__all__ = ["ACTIVATIONS", "LOSSES", "network", "population_network"]


class NumpyEngine:
    """nnlab.nn.scratch.MLP's hand-written forward and backward, on the weights it is given."""

    def __init__(self, sizes: list[int], activation: str):
        self.mlp = MLP(sizes, activation)

    def _use(self, weights, biases) -> MLP:
        self.mlp.weights, self.mlp.biases = weights, biases
        return self.mlp

    def forward(self, weights, biases, x):
        return self._use(weights, biases).forward(x)

    def loss_and_grads(self, weights, biases, x, y, loss):
        return self._use(weights, biases).loss_and_grads(x, y, loss)


def network(sizes, activation, init, seed, dtype):
    # lazy: nets imports torch; the config check reads this module first
    from nnlab.nn.nets import EngineMLP

    return EngineMLP(NumpyEngine(sizes, activation), sizes, init, seed, dtype=dtype)


def population_network(member_params, activation, dtype):
    """Repeats as one network (nnlab.training.population): the same hand-written forward and
    backward
    on stacked arrays, NumPy's matmul broadcasting over the member axis."""
    # lazy: nets imports torch; the config check reads this module first
    from nnlab.nn.nets import EngineMLP
    from nnlab.nn.population_nets import stacked_params

    sizes = [member_params[0][0][0].shape[0], *(w.shape[1] for w, _ in member_params[0])]
    return EngineMLP(
        NumpyEngine(sizes, activation), params=stacked_params(member_params), dtype=dtype
    )
