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

In a population (nnlab.training.engine) the rule runs for each member alone: a member that stalls
stops training while the others go on, and gets its own best epoch's weights back at the end.
"""

from __future__ import annotations

import math

import torch

from nnlab.training.engine import EpochWatcher


class StopWhenStalled(EpochWatcher):
    def __init__(self, objective: str, patience: int, min_delta: float, maximize: bool):
        self.objective = objective
        self.patience = int(patience)
        self.delta = float(min_delta)
        self.maximize = maximize
        # Per member, filled at the start of training (the population's size is known then).
        self.best_value: list[float | None] = []
        self.best_epoch: list[int | None] = []
        self.best_metrics: list[dict[str, float]] = []
        self.stalled: list[int] = []
        self.stopped_at: list[int | None] = []
        self._best_state: list[list[torch.Tensor] | None] = []

    def on_train_start(self, trainer, module) -> None:
        n = module.members
        if len(self.best_value) != n:
            self.best_value, self.best_epoch = [None] * n, [None] * n
            self.best_metrics, self.stalled = [{} for _ in range(n)], [0] * n
            self.stopped_at, self._best_state = [None] * n, [None] * n
        for k, stopped in enumerate(self.stopped_at):
            if stopped is not None:  # resumed: it had stopped before the interruption
                module.stop_member(k)

    # Saved in the population's checkpoint, so that a resumed run goes on counting where it
    # was and keeps each member's best weights (plain tensors and numbers: weights-only).
    def state_dict(self) -> dict:
        return {
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "best_metrics": self.best_metrics,
            "stalled": self.stalled,
            "stopped_at": self.stopped_at,
            "best_state": self._best_state,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best_value, self.best_epoch = state["best_value"], state["best_epoch"]
        self.best_metrics, self.stalled = state["best_metrics"], state["stalled"]
        self.stopped_at, self._best_state = state["stopped_at"], state["best_state"]

    def improves(self, k: int, value: float) -> bool:
        best = self.best_value[k]
        if best is None:
            return True
        return value > best + self.delta if self.maximize else value < best - self.delta

    def on_epoch_trained(self, module, epoch: int) -> None:
        for k in list(module.alive):
            value = module.epoch_metrics[k].get(self.objective)
            if value is None or math.isnan(value):
                continue
            if self.improves(k, value):
                self.best_value[k], self.best_epoch[k], self.stalled[k] = value, epoch, 0
                self.best_metrics[k] = dict(module.epoch_metrics[k])
                self._best_state[k] = [p.detach()[k].clone() for p in module.net.parameters()]
                continue
            self.stalled[k] += 1
            if self.stalled[k] >= self.patience:
                self.stopped_at[k] = epoch
                module.stop_member(k)

    def on_train_end(self, trainer, module) -> None:
        with torch.no_grad():
            for k, state in enumerate(self._best_state):
                if state is not None and k not in module.failures:
                    for param, best in zip(module.net.parameters(), state, strict=True):
                        param[k] = best

    def summary(self, k: int = 0) -> str | None:
        """Why member k stopped, for its run's tag; None if it ran to max_epochs."""
        if self.stopped_at[k] is None:
            return None
        better = "rise" if self.maximize else "fall"
        return (
            f"stopped after epoch {self.stopped_at[k]}: {self.objective} did not {better} by "
            f"more than {self.delta:g} for {self.patience} epochs; kept epoch "
            f"{self.best_epoch[k]} ({self.objective}={self.best_value[k]:.6g})"
        )
