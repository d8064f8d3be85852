"""nn.Module network (nn.Linear layers) trained by Lightning with autograd."""

from __future__ import annotations

from nnlab.nn.torch_functions import ACTIVATIONS, LOSSES, MEMBER_LOSSES

EXTRA = None
REQUIRES = None
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")  # Lightning's names
PRECISIONS = (32, 64)
WEIGHT_COPIES = 0  # autograd writes into the Parameters' own .grad

# The tables live with the networks (nnlab.nn.torch_functions); this backend offers them.
__all__ = ["ACTIVATIONS", "LOSSES", "MEMBER_LOSSES", "network", "population_network"]


def network(sizes, activation, init, seed, dtype):
    # lazy: nets imports torch; the config check reads this module first
    from nnlab.nn.nets import TorchMLP

    return TorchMLP(sizes, activation, init, seed, dtype=dtype)


def population_network(member_params, activation, dtype):
    """N >= 1 networks as one (nnlab.training.engine): each layer is one batched matmul."""
    # lazy: nets imports torch; the config check reads this module first
    from nnlab.nn.population_nets import PopulationMLP

    return PopulationMLP(member_params, activation, dtype, layer="baddbmm")
