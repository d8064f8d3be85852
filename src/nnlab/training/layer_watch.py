"""`tracking.watch`: a look inside the network while it trains, every `tracking.watch_every`
epochs, for each member and each layer i (1 = the first):

- `layers/<i>/grad_norm`: the norm of the weight matrix's gradient in the epoch's last step;
- `layers/<i>/weight_norm`: the weight matrix's norm after that step;
- `layers/<i>/update_ratio`: the norm of that step's change of the weights over their norm
  before it (the classic health check: about 1e-3);
- for a hidden layer, on the validation split: `layers/<i>/dead_fraction` (ReLU and leaky
  ReLU: units never active, pre-activation <= 0 on every row) or
  `layers/<i>/saturated_fraction` (tanh: |a| > 0.99; sigmoid: a within 0.01 of 0 or 1; the
  share of the layer's activations, units x rows, that are saturated). In a population of
  different widths a member's padded units are not counted.

Norms are Frobenius norms of the weight matrix (biases left out), computed in float64 from the
stacked tensors every backend trains (nnlab.nn.population_nets: the same tensors whichever
framework computed the gradient), member k from slice k. The hidden activations are
recomputed in torch from those weights, so every backend reports the same numbers.
"""

from __future__ import annotations

import torch

from nnlab.nn.torch_functions import ACTIVATIONS

DEAD_ACTIVATIONS = ("relu", "leaky_relu")
SATURATING = {"tanh": "tanh", "sigmoid": "sigmoid"}
SATURATION = 0.01  # within this of a bound: tanh |a| > 0.99, sigmoid a < 0.01 or a > 0.99


class LayerWatch:
    """Held by the engine (nnlab.training.engine): `watching(epoch)` says whether this epoch
    is watched; around the epoch's last optimizer step the engine calls `before_step` and
    `after_step`; `epoch_metrics` gives each member's values."""

    def __init__(self, every: int, activation: str, member_sizes=None):
        self.every = int(every)
        self.activation = activation
        # Members of different widths (nnlab.nn.padding): each one's layer sizes, so that its
        # padded units (zero weights, always 0 before the activation) are not counted.
        self.member_sizes = member_sizes
        self._before: list[torch.Tensor] | None = None
        self._grads: list[torch.Tensor] | None = None
        self._after: list[torch.Tensor] | None = None

    def watching(self, epoch: int) -> bool:
        return epoch % self.every == 0

    def before_step(self, net) -> None:
        weights = net.weight_matrices()
        self._before = [w.detach().double().clone() for w in weights]
        self._grads = [
            torch.zeros_like(b) if w.grad is None else w.grad.detach().double().clone()
            for w, b in zip(weights, self._before, strict=True)
        ]

    def after_step(self, net) -> None:
        self._after = [w.detach().double().clone() for w in net.weight_matrices()]

    def epoch_metrics(self, net, x_val: torch.Tensor) -> dict[int, dict[str, float]]:
        """member -> its layer metrics for the watched epoch (after before/after_step)."""
        if self._before is None or self._after is None:
            return {}
        grad = [_norms(g) for g in self._grads]
        weight = [_norms(w) for w in self._after]
        before = [_norms(w) for w in self._before]
        step = [_norms(a - b) for a, b in zip(self._after, self._before, strict=True)]
        hidden = self.hidden_shares(net, x_val)
        members = len(grad[0])
        out: dict[int, dict[str, float]] = {}
        for k in range(members):
            values = {}
            for i in range(len(grad)):
                layer = f"layers/{i + 1}"
                values[f"{layer}/grad_norm"] = float(grad[i][k])
                values[f"{layer}/weight_norm"] = float(weight[i][k])
                values[f"{layer}/update_ratio"] = (
                    float(step[i][k] / before[i][k]) if before[i][k] else 0.0
                )
            for i, (name, share) in enumerate(hidden):
                values[f"layers/{i + 1}/{name}"] = float(share[k])
            out[k] = values
        self._before = self._grads = self._after = None
        return out

    @torch.no_grad()
    def hidden_shares(self, net, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """Per hidden layer: (metric name, each member's dead or saturated share), from the
        network's weights on `x` (members, rows, features); [] for other activations."""
        if self.activation in DEAD_ACTIVATIONS:
            name = "dead_fraction"
        elif self.activation in SATURATING:
            name = "saturated_fraction"
        else:
            return []
        act = ACTIVATIONS[self.activation]()
        weights = [w.detach().double() for w in net.weight_matrices()]
        biases = [b.detach().double() for b in _biases(net)]
        h = x.double()
        shares = []
        for layer, (w, b) in enumerate(list(zip(weights, biases, strict=True))[:-1]):
            pre = torch.baddbmm(b.unsqueeze(1), h, w)  # the hidden layers
            h = act(pre)
            real = self._real_units(layer, w)  # (members, units): not padding
            if name == "dead_fraction":  # a unit never active on any row
                flagged = (pre <= 0).all(dim=1) & real
                share = flagged.sum(dim=1).double() / real.sum(dim=1)
            else:
                if self.activation == "tanh":
                    saturated = h.abs() > 1 - SATURATION
                else:
                    saturated = (h < SATURATION) | (h > 1 - SATURATION)
                flagged = saturated & real.unsqueeze(1)
                share = flagged.sum(dim=(1, 2)).double() / (real.sum(dim=1) * h.shape[1])
            shares.append((name, share))
        return shares

    def _real_units(self, layer: int, w: torch.Tensor) -> torch.Tensor:
        """(members, units) True for each member's own units of hidden layer `layer`."""
        members, _, units = w.shape
        if self.member_sizes is None:
            return torch.ones(members, units, dtype=torch.bool)
        widths = torch.tensor([sizes[layer + 1] for sizes in self.member_sizes])
        return torch.arange(units).unsqueeze(0) < widths.unsqueeze(1)


def _norms(t: torch.Tensor) -> torch.Tensor:
    """Each member's Frobenius norm of a stacked (members, ...) tensor."""
    return t.flatten(1).norm(dim=1)


def _biases(net) -> list[torch.Tensor]:
    return list(net.biases)
