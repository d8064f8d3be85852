"""torch's activations and losses, one table each, keyed by the names nnlab.nn.scratch uses.

They belong to the networks, not to a backend: torch's MLPs (nnlab.nn.nets), the population
engine (nnlab.training.engine) and the metrics all use them, whichever backend trains. The torch
backends (nnlab.backends.torch, torch_scratch) re-export them as their own.
"""

from __future__ import annotations

from nnlab.lazy import LazyModule
from nnlab.nn.scratch import HUBER_DELTA, LEAKY_SLOPE

nn = LazyModule("torch.nn")
F = LazyModule("torch.nn.functional")

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
