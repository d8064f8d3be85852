"""Torch networks. All start from `nnlab.nn.scratch.init_params`, so for the same seed and init
they hold exactly the weights the NumPy MLP holds.

- `TorchMLP`: the ordinary nn.Module way, nn.Linear layers in an nn.Sequential.
- `ScratchTorchMLP`: raw parameter tensors and a forward pass written with einsum; autograd
  supplies the gradients (seed 001's "PyTorch from scratch" rung).
- `EngineMLP`: torch Parameters whose forward pass and gradients another framework computes
  (the numpy, jax and tensorflow backends).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nnlab.nn.scratch import init_params
from nnlab.nn.torch_functions import ACTIVATIONS


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
                layers.append(ACTIVATIONS[activation]())
        self.layers = nn.Sequential(*layers)

    @classmethod
    def from_params(cls, params, activation: str, dtype: torch.dtype = torch.float32):
        """The network holding these [(W as (fan_in, fan_out), b), ...], e.g. trained
        elsewhere: another backend, or seed 001's TensorFlow and JAX variants."""
        sizes = [params[0][0].shape[0], *(w.shape[1] for w, _ in params)]
        net = cls(sizes, activation, "default", 0, dtype=dtype)
        linears = [m for m in net.layers if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for linear, (w, b) in zip(linears, params, strict=True):
                linear.weight.copy_(torch.as_tensor(np.array(w)).T)
                linear.bias.copy_(torch.as_tensor(np.array(b)))
        return net

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
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.einsum("ni,io->no", x, w) + b
            if i < last:
                x = self.activation(x)
        return x

    def weight_matrices(self) -> list[torch.Tensor]:
        return list(self.weights)


class EngineMLP(nn.Module):
    """A network whose forward pass and gradients another framework computes (NumPy, JAX,
    TensorFlow: a backend's "engine"), seen from torch.

    Its weights are torch Parameters, so the configured torch optimizer applies the engine's
    gradients, and checkpoints, weight decay and every `optimizer=` choice work unchanged. Each
    call hands the engine NumPy views of the current weights (re-taken every time, in case
    torch moved a Parameter's storage, e.g. when a checkpoint is loaded), and
    `compute_gradients` writes what it returns into the Parameters' `.grad`.

    An engine has two methods, on NumPy arrays in and out:
    - `forward(weights, biases, x) -> outputs`;
    - `loss_and_grads(weights, biases, x, y, loss) -> (mean data loss, d_weights, d_biases)`.
    """

    def __init__(
        self, engine, sizes=None, init="default", seed=0, dtype=torch.float32, params=None
    ):
        """Starts from `init_params(sizes, init, seed)`, or from `params`, [(W, b), ...]:
        e.g. a population's stacked weights (nnlab.nn.population_nets)."""
        super().__init__()
        params = init_params(sizes, init, seed) if params is None else params
        as_param = lambda a: nn.Parameter(torch.tensor(a, dtype=dtype))  # noqa: E731
        self.weights = nn.ParameterList(as_param(w) for w, _ in params)
        self.biases = nn.ParameterList(as_param(b) for _, b in params)
        self.engine = engine

    def _arrays(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return [p.detach().numpy() for p in self.weights], [p.detach().numpy() for p in self.biases]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.array(self.engine.forward(*self._arrays(), x.detach().numpy())))

    def compute_gradients(self, x: torch.Tensor, y: torch.Tensor, loss: str, l1):
        """Set every Parameter's .grad from the engine; return the batch's data loss (a float;
        for a population, an array of one loss per member). `l1`: a number, or one per member
        (a tensor of shape (members,))."""
        weights, biases = self._arrays()
        value, d_w, d_b = self.engine.loss_and_grads(weights, biases, x.numpy(), y.numpy(), loss)
        if isinstance(l1, torch.Tensor):  # per member: broadcast over each member's matrix
            l1 = l1.numpy().reshape(-1, 1, 1)
        if np.any(l1):  # the L1 penalty's subgradient, the same for every engine
            d_w = [np.asarray(g) + l1 * np.sign(w) for g, w in zip(d_w, weights, strict=True)]
        for param, grad in zip([*self.weights, *self.biases], [*d_w, *d_b], strict=True):
            param.grad = torch.from_numpy(np.array(grad, dtype=weights[0].dtype))
        return float(value) if np.ndim(value) == 0 else np.array(value, dtype=np.float64)

    def weight_matrices(self) -> list[torch.Tensor]:
        return list(self.weights)
