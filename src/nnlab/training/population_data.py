"""The members' data as the engine (nnlab.training.engine) trains on it: each split as tensors
with a leading member axis, each member's batch order per epoch, and the one-item loader that
makes one Lightning step train a whole epoch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from nnlab.data.splits import as_tensors, epoch_order


@dataclass
class PopulationData:
    """The members' splits as tensors with a leading member axis. When the members share one
    dataset (`seeds.data` fixed, or a population of one), it is held once and indexed, not
    copied N times."""

    x_train: torch.Tensor  # (members, rows, features), or (rows, features) when shared
    y_train: torch.Tensor
    x_val: torch.Tensor  # (members, rows, features), a view when shared
    y_val: torch.Tensor
    x_test: torch.Tensor  # as x_val
    y_test: torch.Tensor
    order_seeds: Sequence[int]  # each member's batch-order seed
    shared: bool

    @property
    def members(self) -> int:
        return len(self.order_seeds)

    @property
    def rows(self) -> int:
        return self.x_train.shape[-2]

    def epoch(self, epoch: int, shuffle: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's training rows in its order for `epoch` (nnlab.data.splits.epoch_order: a
        function of the seed and the epoch alone, so a resumed run sees the same batches)."""
        if not shuffle:
            return self._stacked(self.x_train), self._stacked(self.y_train)
        orders = torch.stack([epoch_order(self.rows, s, epoch) for s in self.order_seeds])
        orders = orders.to(self.x_train.device)
        if self.shared:
            return self.x_train[orders], self.y_train[orders]
        members = torch.arange(self.members).unsqueeze(1)
        return self.x_train[members, orders], self.y_train[members, orders]

    def to(self, device) -> PopulationData:
        """The same data on `device` (a plain run may train on a GPU)."""
        tensors = [self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test]
        moved = [t.to(device) for t in tensors]
        return PopulationData(*moved, order_seeds=self.order_seeds, shared=self.shared)

    def _stacked(self, t: torch.Tensor) -> torch.Tensor:
        return t.expand(self.members, *t.shape) if self.shared else t


def population_data(splits: Sequence, order_seeds: Sequence[int], dtype) -> PopulationData:
    """`splits`: each member's nnlab.data.splits.Splits (the same object for members that share
    it)."""
    shared = all(s is splits[0] for s in splits)
    n = len(order_seeds)

    def stage(x_of, y_of, expand: bool):
        pairs = [as_tensors(splits[0].task, x_of(s), y_of(s), dtype) for s in splits]
        if not shared:
            return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])
        x, y = pairs[0]
        return (x.expand(n, *x.shape), y.expand(n, *y.shape)) if expand else (x, y)

    train = stage(lambda s: s.x_train, lambda s: s.y_train, expand=False)
    val = stage(lambda s: s.x_val, lambda s: s.y_val, expand=True)
    test = stage(lambda s: s.x_test, lambda s: s.y_test, expand=True)
    return PopulationData(*train, *val, *test, order_seeds=list(order_seeds), shared=shared)


class OneItem:
    """A loader of one item, so that Lightning runs one step per Lightning epoch (training: the
    module trains one or more epochs in it) or one for the whole split (test). Not a list:
    Lightning would read a list as several loaders."""

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[int]:
        yield 0
