"""Torch networks. Both start from `nnlab.scratch.init_params`, so for the same seed and init
they hold exactly the weights the NumPy MLP holds.

- `TorchMLP`: the ordinary nn.Module way, nn.Linear layers in an nn.Sequential.
- `ScratchTorchMLP`: raw parameter tensors and a forward pass written with einsum; autograd
  supplies the gradients (seed 001's "PyTorch from scratch" rung).
"""

from __future__ import annotations

import torch
from torch import nn

from nnlab.scratch import LEAKY_SLOPE, init_params

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
