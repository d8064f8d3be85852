"""N networks of one shape as one: every weight gets a leading member axis.

Layer i's weights are one tensor (members, fan_in, fan_out) and its biases (members, fan_out);
inputs are (members, rows, features). One batched matmul computes every member's layer, and
nothing mixes members: member k's outputs depend on member k's weights and inputs alone. So
the gradient of the *sum* of the members' losses with respect to member k's weights is member
k's own gradient, and an optimizer that acts elementwise (SGD, Adam, ...) stepping the stacked
tensors is N independent optimizers (nnlab.training.population says which are allowed).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nnlab.nn.metrics import evaluate
from nnlab.nn.torch_functions import ACTIVATIONS


def stacked_params(member_params) -> list[tuple[np.ndarray, np.ndarray]]:
    """[[(W, b) per layer] per member] -> [(W stacked, b stacked) per layer]."""
    layers = zip(*member_params, strict=True)
    return [(np.stack([w for w, _ in layer]), np.stack([b for _, b in layer])) for layer in layers]


class PopulationMLP(nn.Module):
    """The torch backends' MLPs, stacked. `layer` is how a layer is computed: "baddbmm" (the
    batched form of nn.Linear's addmm) or "einsum" (torch_scratch's einsum, with a member index).
    """

    def __init__(self, member_params, activation: str, dtype, layer: str = "baddbmm"):
        super().__init__()
        as_param = lambda a: nn.Parameter(torch.tensor(a, dtype=dtype))  # noqa: E731
        stacked = stacked_params(member_params)
        self.weights = nn.ParameterList(as_param(w) for w, _ in stacked)
        self.biases = nn.ParameterList(as_param(b) for _, b in stacked)
        self.activation = ACTIVATIONS[activation]()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        # The lists' registered parameters, in order: the same tensors as iterating the
        # ParameterLists, whose __getitem__ (index checks, getattr) cost ~15 us of an ~86 us
        # forward of a 3-layer net, once per training step.
        weights, biases = self.weights._parameters.values(), self.biases._parameters.values()
        layers = zip(weights, biases, strict=True)
        for i, (w, b) in enumerate(layers):
            if self.layer == "einsum":
                x = torch.einsum("pni,pio->pno", x, w) + b.unsqueeze(1)
            else:
                x = torch.baddbmm(b.unsqueeze(1), x, w)
            if i < last:
                x = self.activation(x)
        return x

    def weight_matrices(self) -> list[torch.Tensor]:
        return list(self.weights)


def member_params(net: nn.Module, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Member k's [(W as (fan_in, fan_out), b), ...] of a stacked network (either kind)."""
    return [
        (w.detach()[k].numpy().copy(), b.detach()[k].numpy().copy())
        for w, b in zip(net.weights, net.biases, strict=True)
    ]


class MemberNet(nn.Module):
    """Member k of a trained population on its own, as a network of (rows, features): a
    population of one holding member k's weights, built by the same backend, so it computes
    exactly what member k computed in training (a batched matmul over N members equals, per
    member, the same call with N = 1). Figures, the exported model and scripts use it."""

    def __init__(self, population_of_one: nn.Module):
        super().__init__()
        self.population = population_of_one

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.population(x.unsqueeze(0))[0]

    def weight_matrices(self) -> list[torch.Tensor]:
        return [w[0] for w in self.population.weights]

    @property
    def biases(self) -> list[torch.Tensor]:
        return [b[0] for b in self.population.biases]


class TrainedMember(nn.Module):
    """A trained member as scripts and tests look at it: `net` (a MemberNet), its outputs,
    and its metrics on a split as training computed them."""

    def __init__(self, net: MemberNet, task, loss_name: str):
        super().__init__()
        self.net, self.task, self.loss_name = net, task, loss_name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def evaluate_split(self, x: torch.Tensor, y: torch.Tensor, stage: str) -> dict[str, float]:

        return evaluate(self.task, self.loss_name, self.net(x), y, stage)
