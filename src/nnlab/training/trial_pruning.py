"""A sweep job reports its objective to its Optuna trial every epoch, and stops when the
study's pruner says the trial is hopeless (nnlab's Optuna sweeper; nnlab.sweeps.study).

A trial's job is a population of one (nnlab.training.engine): it reads member 0's epoch metrics,
which
the module computed in its training step, before any callback's epoch-end hook runs.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl

from nnlab.sweeps.study import PRUNED_ATTR, RUN_ATTR
from nnlab.tracking.store.names import PRUNED_TAG
from nnlab.tracking.store.runs import RunStopped


class TrialPruned(RunStopped):
    """The study's pruner stopped this trial; its run closes KILLED, tagged nnlab.pruned."""


MAX_REPORTS = 100  # per trial: each report and each pruning check is a database round trip


class TrialPruning(pl.Callback):
    def __init__(self, trial, objective: str, max_epochs: int):
        import optuna  # only in a trial's job: every other run starts without it

        self.trial = trial
        self.objective = objective
        # Optuna prunes on one objective; with no pruner there is nothing to report for.
        self.reporting = len(trial.study.directions) == 1 and not isinstance(
            trial.study.pruner, optuna.pruners.NopPruner
        )
        # Every epoch would cost ~3 ms of sqlite writes each (6 s in a 2000-epoch trial):
        # report on a stride that every trial of the search shares, and at the last epoch.
        self.every = max(1, max_epochs // MAX_REPORTS)
        self.last_epoch = max_epochs - 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        value = pl_module.epoch_metrics[0].get(self.objective)
        if not self.reporting or value is None or math.isnan(value):
            return
        epoch = trainer.current_epoch
        if epoch % self.every and epoch != self.last_epoch:
            return
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            self.trial.set_user_attr(PRUNED_ATTR, epoch)
            raise TrialPruned(
                f"pruned at epoch {epoch} by the search's pruner: "
                f"{self.objective}={value:.4g} is worse than other trials' at that epoch",
                {PRUNED_TAG: f"epoch {epoch}"},
            )

    def note_run(self, run_id: str) -> None:
        """Which MLflow run is this trial's (the sweeper reads it back)."""
        self.trial.set_user_attr(RUN_ATTR, run_id)
