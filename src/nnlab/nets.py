"""Torch networks. Both start from `nnlab.scratch.init_params`, so for the same seed and init
they hold exactly the weights the NumPy MLP holds.

- `TorchMLP`: the ordinary nn.Module way, nn.Linear layers in an nn.Sequential.
- `ScratchTorchMLP`: raw parameter tensors and a forward pass written with einsum; autograd
  supplies the gradients (seed 001's "PyTorch from scratch" rung).
- `NumpyBackedMLP`: the NumPy MLP, forward and backward in NumPy, its weights exposed to torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nnlab.scratch import LEAKY_SLOPE, init_params
from nnlab.scratch import MLP as ScratchMLP

# Same names, same functions as nnlab.scratch.ACTIVATIONS.
TORCH_ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE),
    "gelu": nn.GELU,
    "identity": nn.Identity,
}


class TorchMLP(nn.Module):
    def __init__(
        self,
        sizes: list[int],
        activation: str,
        init: str,
        seed: int,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (w, b) in enumerate(init_params(sizes, init, seed)):
            linear = nn.Linear(w.shape[0], w.shape[1], dtype=dtype)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(w.T))  # nn.Linear stores (out, in)
                linear.bias.copy_(torch.from_numpy(b))
            layers.append(linear)
            if i < len(sizes) - 2:
                layers.append(TORCH_ACTIVATIONS[activation]())
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def weight_matrices(self) -> list[torch.Tensor]:
        """Weights (not biases) as (fan_in, fan_out), for penalties and weight plots."""
        return [m.weight.T for m in self.layers if isinstance(m, nn.Linear)]


class ScratchTorchMLP(nn.Module):
    def __init__(
        self,
        sizes: list[int],
        activation: str,
        init: str,
        seed: int,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        params = init_params(sizes, init, seed)
        as_param = lambda a: nn.Parameter(torch.tensor(a, dtype=dtype))  # noqa: E731
        self.weights = nn.ParameterList(as_param(w) for w, _ in params)
        self.biases = nn.ParameterList(as_param(b) for _, b in params)
        self.activation = TORCH_ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.einsum("ni,io->no", x, w) + b
            if i < last:
                x = self.activation(x)
        return x

    def weight_matrices(self) -> list[torch.Tensor]:
        return list(self.weights)


class NumpyBackedMLP(nn.Module):
    """The NumPy MLP (`nnlab.scratch.MLP`) seen from torch.

    Its weights are torch Parameters that share memory with the NumPy arrays, so a torch
    optimizer's in-place update is the NumPy network's update, and checkpoints, weight decay
    and every `optimizer=` choice work unchanged. NumPy does the forward and the backward;
    `compute_gradients` writes NumPy's gradients into the Parameters' `.grad`.
    """

    def __init__(
        self,
        sizes: list[int],
        activation: str,
        init: str,
        seed: int,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        np_dtype = {torch.float32: "float32", torch.float64: "float64"}[dtype]
        self.mlp = ScratchMLP(sizes, activation, init, seed, dtype=np_dtype)
        as_param = lambda a: nn.Parameter(torch.from_numpy(a))  # noqa: E731
        self.weights = nn.ParameterList(as_param(w) for w in self.mlp.weights)
        self.biases = nn.ParameterList(as_param(b) for b in self.mlp.biases)

    def _share(self) -> None:
        # Views, not copies: re-taken each call in case torch moved a Parameter's storage
        # (e.g. when a checkpoint is loaded into it).
        self.mlp.weights = [p.detach().numpy() for p in self.weights]
        self.mlp.biases = [p.detach().numpy() for p in self.biases]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._share()
        return torch.from_numpy(self.mlp.forward(x.detach().numpy()))

    def compute_gradients(self, x: torch.Tensor, y: torch.Tensor, loss: str, l1: float) -> float:
        """Set every Parameter's .grad from NumPy's backward; return the batch's data loss."""
        self._share()
        value, d_w, d_b = self.mlp.loss_and_grads(x.numpy(), y.numpy(), loss, l1=l1)
        for param, grad in zip([*self.weights, *self.biases], [*d_w, *d_b], strict=True):
            param.grad = torch.from_numpy(np.asarray(grad, dtype=self.mlp.dtype))
        return float(value)

    def weight_matrices(self) -> list[torch.Tensor]:
        return list(self.weights)
