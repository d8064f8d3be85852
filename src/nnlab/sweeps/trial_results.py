"""What an Optuna search's trials tell its study: each job's result as COMPLETE, PRUNED or
FAIL, and, when a search starts, the trials a dead driver left RUNNING settled (told their run's
result, or failed and queued again). Used by nnlab's Optuna sweeper
(hydra_plugins.nnlab_sweepers.optuna_sweeper), which imports it when a search starts."""

from __future__ import annotations

import math
import sys
from typing import Any

from optuna.trial import TrialState

from nnlab.sweeps import study as nnlab_study
from nnlab.tracking.store import sweep_protocol
from nnlab.tracking.store.client import get_client, log_params, tracking_uri
from nnlab.tracking.store.names import JOB_NUM_TAG, OVERRIDES_TAG, PARENT_TAG
from nnlab.tracking.store.runs import close_run


def tell_study(study, trial, *args, **kwargs) -> None:
    """study.tell; Optuna's grid sampler calls study.stop() once the grid is covered, which
    only works inside study.optimize (the result is stored before it raises)."""
    try:
        study.tell(trial, *args, **kwargs)
    except RuntimeError as err:
        if "Study.stop" not in str(err):
            raise


def tell(study, search, trial, job, in_a_population: bool = False) -> None:
    """The study learns the trial's result from its job: COMPLETE, PRUNED or FAIL. A job that
    trained several trials as one population returns their mean: each trial's own value is
    in its attrs (a trial without one failed)."""
    try:
        value = job.return_value
    except BaseException as err:  # the job raised: its failure, not the sweep's
        print(f"nnlab-train: trial {trial.number} failed: {err}", file=sys.stderr)
        tell_study(study, trial, state=TrialState.FAIL)
        return
    attrs = study._storage.get_trial(trial._trial_id).user_attrs
    if in_a_population:
        value = attrs.get(nnlab_study.OBJECTIVE_ATTR, math.nan)
    if nnlab_study.PRUNED_ATTR in attrs:
        tell_study(study, trial, state=TrialState.PRUNED)
        return
    values = objective_values(search, attrs, value)
    if values is None:
        tell_study(study, trial, state=TrialState.FAIL)
    else:
        tell_study(study, trial, values if len(values) > 1 else values[0])


def objective_values(search, attrs: dict, returned: Any) -> list[float] | None:
    """The trial's objective(s): what the job returned for one objective, the MLflow run's
    metrics for several. None when any is missing or not finite."""
    if len(search.objectives) == 1:
        values = [returned]
    else:
        run_id = attrs.get(nnlab_study.RUN_ATTR)
        if run_id is None:
            return None
        metrics = run_metrics(run_id)
        values = [metrics.get(k, math.nan) for k in search.objectives]
    return None if any(nnlab_study.is_bad(v) for v in values) else [float(v) for v in values]


def run_metrics(run_id: str) -> dict[str, float]:
    return dict(get_client(tracking_uri()).get_run(run_id).data.metrics)


def settle_orphans(study, search) -> None:
    """Trials left RUNNING by a driver that died: told their run's result if it FINISHED,
    else FAILED (with their run) and queued again."""
    client = get_client(tracking_uri())
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not nnlab_study.driver_is_gone(trial.user_attrs.get(nnlab_study.DRIVER_ATTR)):
            continue  # another live driver's trial (or on another host: left alone)
        run_id = trial.user_attrs.get(nnlab_study.RUN_ATTR)
        # Without the attribute the job may still have created its run: killed between the
        # two writes (seen under load). Its run is then found by its job number.
        run = client.get_run(run_id) if run_id else run_of_trial(client, study, trial)
        if run is not None and run.info.status == "FINISHED":
            values = objective_values(search, trial.user_attrs, objective_of(run, search))
            if values is not None:
                tell_study(study, trial.number, values if len(values) > 1 else values[0])
                print(
                    f"nnlab: trial {trial.number} had finished before the interruption: "
                    "its result is kept",
                    flush=True,
                )
                continue
        why = "the search's driver died during this trial"
        if run is not None and run.info.status == "RUNNING":
            # Killed before it logged its params, perhaps: the sweep's table needs them.
            missing = {k: v for k, v in trial.params.items() if k not in run.data.params}
            log_params(client, run.info.run_id, missing)
            close_run(client, run.info.run_id, "FAILED", why)
        elif run is None:
            stand_in_run(client, study, trial, why)
        tell_study(study, trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params)
        print(
            f"nnlab: trial {trial.number} was interrupted: FAILED, and its parameters are "
            "queued to run again",
            flush=True,
        )


def run_of_trial(client, study, trial):
    """The run the trial's job created, found by its job number (the trial's number) under the
    search's parent; the trial is told its id. None when the job created none."""
    parent_id = study.user_attrs.get(nnlab_study.PARENT_ATTR)
    if not parent_id:
        return None
    experiment = client.get_run(parent_id).info.experiment_id
    found = client.search_runs(
        [experiment],
        f"tags.`{PARENT_TAG}` = '{parent_id}' and tags.`{JOB_NUM_TAG}` = '{trial.number}'",
        max_results=1,
    )
    if not found:
        return None
    study._storage.set_trial_user_attr(trial._trial_id, nnlab_study.RUN_ATTR, found[0].info.run_id)
    return found[0]


def objective_of(run, search) -> float:
    return run.data.metrics.get(search.objectives[0], math.nan)


def stand_in_run(client, study, trial, why: str) -> None:
    """A trial whose job never created its run still gets one (FAILED, saying why), so that
    every trial of the study is a run in the UI."""
    parent_id = study.user_attrs.get(nnlab_study.PARENT_ATTR) or sweep_protocol.parent_run_id()
    if not parent_id:
        return
    parent = client.get_run(parent_id)
    run = client.create_run(
        parent.info.experiment_id,
        run_name=f"trial {trial.number} (interrupted before it started)",
        tags={
            PARENT_TAG: parent_id,
            JOB_NUM_TAG: str(trial.number),
            OVERRIDES_TAG: "\n".join(
                f"{k}={nnlab_study.as_override(v)}" for k, v in trial.params.items()
            ),
        },
    )
    log_params(client, run.info.run_id, trial.params)
    close_run(client, run.info.run_id, "FAILED", why)
    trial_attr = study._storage.set_trial_user_attr
    trial_attr(trial._trial_id, nnlab_study.RUN_ATTR, run.info.run_id)
