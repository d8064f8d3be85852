"""A sweep job reports its objective to its Optuna trials every epoch, and stops a trial when
the study's pruner says it is hopeless (nnlab's Optuna sweeper; nnlab.sweeps.study).

A job trains one trial (a population of one) or, when the sweeper grouped trials, one trial
per member (nnlab.sweeps.population_jobs). A pruned member stops alone
(`PopulationModule.stop_member`) and is kept in `module.pruned`; its run then closes KILLED,
tagged nnlab.pruned, and has no test metrics. Each member's epoch metrics were computed in
the module's training step, before any callback's epoch-end hook runs.
"""

from __future__ import annotations

import math

from nnlab.sweeps.study import OBJECTIVE_ATTR, PRUNED_ATTR, RUN_ATTR
from nnlab.tracking.store.names import PRUNED_TAG
from nnlab.tracking.store.runs import RunStopped
from nnlab.training.engine import EpochWatcher


class TrialPruned(RunStopped):
    """The study's pruner stopped this trial; its run closes KILLED, tagged nnlab.pruned."""


MAX_REPORTS = 100  # per trial: each report and each pruning check is a database round trip


class TrialPruning(EpochWatcher):
    """`trials`: member -> its Optuna trial (members without one are not reported)."""

    def __init__(self, trials: dict, objective: str, max_epochs: int):
        import optuna  # only in a trial's job: every other run starts without it

        self.trials = trials
        self.objective = objective
        study = next(iter(trials.values())).study
        # Optuna prunes on one objective; with no pruner there is nothing to report for.
        self.reporting = len(study.directions) == 1 and not isinstance(
            study.pruner, optuna.pruners.NopPruner
        )
        # Every epoch would cost ~3 ms of sqlite writes each (6 s in a 2000-epoch trial):
        # report on a stride that every trial of the search shares, and at the last epoch.
        self.every = max(1, max_epochs // MAX_REPORTS)
        self.last_epoch = max_epochs - 1

    def on_epoch_trained(self, module, epoch: int) -> None:
        if not self.reporting or (epoch % self.every and epoch != self.last_epoch):
            return
        for k in list(module.alive):
            trial = self.trials.get(k)
            value = module.epoch_metrics[k].get(self.objective)
            if trial is None or value is None or math.isnan(value):
                continue
            trial.report(value, epoch)
            if trial.should_prune():
                trial.set_user_attr(PRUNED_ATTR, epoch)
                module.pruned[k] = TrialPruned(
                    f"pruned at epoch {epoch} by the search's pruner: "
                    f"{self.objective}={value:.4g} is worse than other trials' at that epoch",
                    {PRUNED_TAG: f"epoch {epoch}"},
                )
                module.stop_member(k)

    def note_run(self, k: int, run_id: str) -> None:
        """Which MLflow run is member k's trial's (the sweeper reads it back)."""
        if k in self.trials:
            self.trials[k].set_user_attr(RUN_ATTR, run_id)

    def note_objective(self, k: int, value: float) -> None:
        """Member k's result, for its trial: the job returns one value for all its members."""
        if k in self.trials:
            self.trials[k].set_user_attr(OBJECTIVE_ATTR, value)
