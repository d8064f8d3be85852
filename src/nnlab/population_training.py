"""The training loop of a population: N repeats stepped together (nnlab.population_nets).

It computes, for every member, exactly what nnlab's module computes for a plain run with the
member's seeds (nnlab.modules.NetModule): the same batches in the same order, one optimizer
step per batch, train/loss as the epoch's sample-weighted mean of the batch losses, and the
validation split evaluated at each epoch's end with nnlab.metrics.evaluate. A member whose
train/loss is not finite stops there, alone, as its plain run would: its weights leave the
summed loss, and the others go on.

No MLflow and no Lightning here: `record(k, epoch, metrics)` is told each member's epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from nnlab.backends.torch import MEMBER_LOSSES
from nnlab.data import as_tensors, epoch_order
from nnlab.metrics import evaluate_members
from nnlab.nets import EngineMLP
from nnlab.tasks import TRAIN_LOSS, Task


@dataclass
class PopulationData:
    """The members' splits as tensors with a leading member axis. When the members share one
    dataset (`seeds.data` fixed), it is held once and indexed, not copied N times."""

    x_train: torch.Tensor  # (members, rows, features), or (rows, features) when shared
    y_train: torch.Tensor
    x_val: torch.Tensor  # (members, rows, features), a view when shared
    y_val: torch.Tensor
    order_seeds: Sequence[int]  # each member's batch-order seed
    shared: bool

    @property
    def members(self) -> int:
        return len(self.order_seeds)

    @property
    def rows(self) -> int:
        return self.x_train.shape[-2]

    def epoch(self, epoch: int, shuffle: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's training rows in its order for `epoch` (nnlab.data.epoch_order)."""
        if not shuffle:
            return self._stacked(self.x_train), self._stacked(self.y_train)
        orders = torch.stack([epoch_order(self.rows, s, epoch) for s in self.order_seeds])
        if self.shared:
            return self.x_train[orders], self.y_train[orders]
        members = torch.arange(self.members).unsqueeze(1)
        return self.x_train[members, orders], self.y_train[members, orders]

    def _stacked(self, t: torch.Tensor) -> torch.Tensor:
        return t.expand(self.members, *t.shape) if self.shared else t


def population_data(splits: Sequence, order_seeds: Sequence[int], dtype):
    """`splits`: each member's nnlab.data.Splits (the same object for members that share it)."""
    shared = all(s is splits[0] for s in splits)

    def tensors(x, y):
        return as_tensors(splits[0].task, x, y, dtype)

    def stack(pairs):
        if shared:
            return pairs[0]
        return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])

    train = stack([tensors(s.x_train, s.y_train) for s in splits])
    val = stack([tensors(s.x_val, s.y_val) for s in splits])
    n = len(order_seeds)
    if shared:
        val = (val[0].expand(n, *val[0].shape), val[1].expand(n, *val[1].shape))
    return PopulationData(*train, *val, order_seeds=list(order_seeds), shared=shared)


class PopulationTrainer:
    """Steps a stacked network (nnlab.population_nets) through its members' epochs."""

    def __init__(
        self,
        net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        data: PopulationData,
        task: Task,
        loss_name: str,
        batch_size: int | None,
        l1: float = 0.0,
    ):
        self.net, self.optimizer, self.data = net, optimizer, data
        self.task, self.loss_name, self.l1 = task, loss_name, l1
        self.batch_size = batch_size or data.rows
        self.shuffle = self.batch_size < data.rows
        self.alive = list(range(data.members))  # members still training
        self.failures: dict[int, str] = {}  # member -> why it stopped
        self.engine = isinstance(net, EngineMLP)  # numpy: gradients by hand

    def fit(self, max_epochs: int, record: Callable[[int, int, dict], None], on_epoch=None):
        for epoch in range(max_epochs):
            if not self.alive:
                break
            self.train_epoch(epoch, record)
            if on_epoch is not None:
                on_epoch(epoch)

    def train_epoch(self, epoch: int, record: Callable[[int, int, dict], None]) -> None:
        x, y = self.data.epoch(epoch, self.shuffle)
        totals = torch.zeros(self.data.members, dtype=torch.float64)
        try:
            for start in range(0, self.data.rows, self.batch_size):
                xb = x[:, start : start + self.batch_size]
                yb = y[:, start : start + self.batch_size]
                totals += self.train_on_batch(xb, yb) * xb.shape[1]
        except RuntimeError as err:
            # An lr so large that the step itself overflows (as in nnlab.modules): the lr is
            # every member's, so every member stops.
            if "overflow" not in str(err):
                raise
            for k in self.alive:
                self.failures[k] = f"the optimizer step overflowed at epoch {epoch} ({err})"
            self.alive.clear()
            return
        means = (totals / self.data.rows).tolist()
        for k in list(self.alive):
            record(k, epoch, {TRAIN_LOSS: means[k]})
            if not math.isfinite(means[k]):  # as nnlab.modules: a NaN loss never recovers
                self.alive.remove(k)
                self.failures[k] = f"train/loss is {means[k]} at epoch {epoch}"
        if self.alive:
            self.validate(epoch, record)

    def train_on_batch(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """One optimizer step for every member; returns each member's batch loss (float64)."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.engine:
            losses = self.net.compute_gradients(xb, yb, self.loss_name, self.l1)
            self.optimizer.step()
            return torch.from_numpy(losses)
        losses = MEMBER_LOSSES[self.loss_name](self.net(xb), yb)
        # The members still training, summed: d(sum)/d(member k) is member k's own gradient,
        # and a diverged member's NaN stays out of the others' step.
        alive = losses if len(self.alive) == self.data.members else losses[self.alive]
        total = alive.sum()
        if self.l1:
            total = total + self.l1 * sum(w.abs().sum() for w in self.net.weight_matrices())
        total.backward()
        self.optimizer.step()
        return losses.detach().double()

    @torch.no_grad()
    def validate(self, epoch: int, record: Callable[[int, int, dict], None]) -> None:
        out = self.net(self.data.x_val)
        every = evaluate_members(self.task, self.loss_name, out, self.data.y_val, "val")
        for k in self.alive:
            record(k, epoch, every[k])
