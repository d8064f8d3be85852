"""`trainer.early_stopping`: stop a run whose objective has stopped improving, and keep the
weights of its best epoch.

The rule, per epoch e with objective value v (minimised; mirrored when maximised): the first
epoch sets best = v. Later, v improves when v < best - min_delta: best = v, best epoch = e and
the count of epochs without improvement restarts at 0; otherwise the count grows by 1. Training
stops after the epoch where the count reaches `patience`.

When it stops (or ends with its best epoch earlier than its last), the network gets back the
best epoch's weights, so the test metrics and the logged model are the best epoch's; the run
records `best/<metric>` (the best epoch's epoch metrics), tags `nnlab.best_epoch` and, when it
stopped early, `nnlab.stopped_early` saying when and why.

It is a Lightning "monitoring" callback (an EarlyStopping subclass) so that it runs after the
module recorded the epoch's metrics (nnlab's fast path does not go through `self.log`).
"""

from __future__ import annotations

import math

import torch
from pytorch_lightning.callbacks import EarlyStopping


class StopWhenStalled(EarlyStopping):
    def __init__(self, objective: str, patience: int, min_delta: float, maximize: bool):
        super().__init__(monitor=objective, patience=patience)
        self.delta = float(min_delta)  # (Lightning keeps min_delta signed, as a tensor)
        self.objective = objective
        self.maximize = maximize
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, float] = {}
        self.stalled = 0
        self.stopped_at: int | None = None
        self._best_state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer, pl_module) -> None:
        pass  # nnlab's modules validate inside the training epoch

    def improves(self, value: float) -> bool:
        if self.best_value is None:
            return True
        if self.maximize:
            return value > self.best_value + self.delta
        return value < self.best_value - self.delta

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        value = pl_module.epoch_metrics.get(self.objective)
        if value is None or math.isnan(value):
            return
        epoch = trainer.current_epoch
        if self.improves(value):
            self.best_value, self.best_epoch, self.stalled = value, epoch, 0
            self.best_metrics = dict(pl_module.epoch_metrics)
            self._best_state = {
                k: v.detach().clone() for k, v in pl_module.net.state_dict().items()
            }
            return
        self.stalled += 1
        if self.stalled >= self.patience:
            self.stopped_at = epoch
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module) -> None:
        if self._best_state is not None:
            pl_module.net.load_state_dict(self._best_state)

    def summary(self) -> str | None:
        """Why it stopped, for the run's tag; None if it ran to max_epochs."""
        if self.stopped_at is None:
            return None
        better = "rise" if self.maximize else "fall"
        return (
            f"stopped after epoch {self.stopped_at}: {self.objective} did not {better} by more "
            f"than {self.delta:g} for {self.patience} epochs; kept epoch {self.best_epoch} "
            f"({self.objective}={self.best_value:.6g})"
        )
