"""Raw parameter tensors, forward pass written with einsum, autograd for the gradients: no
nn.Linear (seed 001's "PyTorch from scratch")."""

from __future__ import annotations

# Same framework, same functions as the torch backend.
from nnlab.backends.torch import (
    ACCELERATORS,
    ACTIVATIONS,
    EXTRA,
    LOSSES,
    PRECISIONS,
    REQUIRES,
    WEIGHT_COPIES,
)

__all__ = [
    "ACCELERATORS",
    "ACTIVATIONS",
    "EXTRA",
    "LOSSES",
    "PRECISIONS",
    "REQUIRES",
    "WEIGHT_COPIES",
    "network",
    "population_network",
]


def network(sizes, activation, init, seed, dtype):
    # lazy: nets imports torch; the config check reads this module first
    from nnlab.nn.nets import ScratchTorchMLP

    return ScratchTorchMLP(sizes, activation, init, seed, dtype=dtype)


def population_network(member_params, activation, dtype):
    """Repeats as one network (nnlab.training.population): einsum with a member index."""
    # lazy: nets imports torch; the config check reads this module first
    from nnlab.nn.population_nets import PopulationMLP

    return PopulationMLP(member_params, activation, dtype, layer="einsum")
