"""nn.Module network (nn.Linear layers) trained by Lightning with autograd."""

from __future__ import annotations

from nnlab.backends.lazy import LazyModule
from nnlab.nn.scratch import HUBER_DELTA, LEAKY_SLOPE

nn = LazyModule("torch.nn")
F = LazyModule("torch.nn.functional")

EXTRA = None
REQUIRES = None
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")  # Lightning's names
PRECISIONS = (32, 64)
WEIGHT_COPIES = 0  # autograd writes into the Parameters' own .grad

# Each builds the nn.Module for the activation of the same name in nnlab.nn.scratch.ACTIVATIONS.
ACTIVATIONS = {
    "relu": lambda: nn.ReLU(),
    "tanh": lambda: nn.Tanh(),
    "sigmoid": lambda: nn.Sigmoid(),
    "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE),
    "gelu": lambda: nn.GELU(),  # exact, erf-based
    "identity": lambda: nn.Identity(),
}
# (outputs, targets) -> mean loss; each mirrors nnlab.nn.scratch.LOSSES. Metrics use these too.
LOSSES = {
    "mse": lambda out, y: F.mse_loss(out, y),
    "half_mse": lambda out, y: 0.5 * F.mse_loss(out, y),
    "l1": lambda out, y: F.l1_loss(out, y),
    "huber": lambda out, y: F.huber_loss(out, y, delta=HUBER_DELTA),
    "bce": lambda out, y: F.binary_cross_entropy_with_logits(out, y),
    "cross_entropy": lambda out, y: F.cross_entropy(out, y),
}
# The same losses for a population's stacked outputs (members, rows, outputs): one mean per
# member, each over that member's elements alone (nnlab.training.population).
MEMBER_LOSSES = {
    "mse": lambda out, y: F.mse_loss(out, y, reduction="none").mean(dim=(1, 2)),
    "half_mse": lambda out, y: 0.5 * F.mse_loss(out, y, reduction="none").mean(dim=(1, 2)),
    "l1": lambda out, y: F.l1_loss(out, y, reduction="none").mean(dim=(1, 2)),
    "huber": lambda out, y: F.huber_loss(out, y, reduction="none", delta=HUBER_DELTA).mean(
        dim=(1, 2)
    ),
    "bce": lambda out, y: F.binary_cross_entropy_with_logits(out, y, reduction="none").mean(
        dim=(1, 2)
    ),
    # Class indices (members, rows); cross_entropy wants the classes in dimension 1.
    "cross_entropy": lambda out, y: F.cross_entropy(out.transpose(1, 2), y, reduction="none").mean(
        dim=1
    ),
}


def network(sizes, activation, init, seed, dtype):
    from nnlab.nn.nets import TorchMLP

    return TorchMLP(sizes, activation, init, seed, dtype=dtype)


def population_network(member_params, activation, dtype):
    """Repeats as one network (nnlab.training.population): each layer is one batched matmul."""
    from nnlab.nn.population_nets import PopulationMLP

    return PopulationMLP(member_params, activation, dtype, layer="baddbmm")
