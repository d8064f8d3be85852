"""nn.Module network (nn.Linear layers) trained by Lightning with autograd."""

from __future__ import annotations

from nnlab.backends.lazy import LazyModule
from nnlab.scratch import HUBER_DELTA, LEAKY_SLOPE

nn = LazyModule("torch.nn")
F = LazyModule("torch.nn.functional")

EXTRA = None
REQUIRES = None
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")  # Lightning's names
PRECISIONS = (32, 64)
WEIGHT_COPIES = 0  # autograd writes into the Parameters' own .grad

# Each builds the nn.Module for the activation of the same name in nnlab.scratch.ACTIVATIONS.
ACTIVATIONS = {
    "relu": lambda: nn.ReLU(),
    "tanh": lambda: nn.Tanh(),
    "sigmoid": lambda: nn.Sigmoid(),
    "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE),
    "gelu": lambda: nn.GELU(),  # exact, erf-based
    "identity": lambda: nn.Identity(),
}
# (outputs, targets) -> mean loss; each mirrors nnlab.scratch.LOSSES. Metrics use these too.
LOSSES = {
    "mse": lambda out, y: F.mse_loss(out, y),
    "half_mse": lambda out, y: 0.5 * F.mse_loss(out, y),
    "l1": lambda out, y: F.l1_loss(out, y),
    "huber": lambda out, y: F.huber_loss(out, y, delta=HUBER_DELTA),
    "bce": lambda out, y: F.binary_cross_entropy_with_logits(out, y),
    "cross_entropy": lambda out, y: F.cross_entropy(out, y),
}


def network(sizes, activation, init, seed, dtype):
    from nnlab.nets import TorchMLP

    return TorchMLP(sizes, activation, init, seed, dtype=dtype)
