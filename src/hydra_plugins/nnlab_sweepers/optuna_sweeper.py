"""`hydra/sweeper=nnlab_optuna` (used by `sweep=optuna`): nnlab's Optuna sweeper, for current
Optuna, with a persistent and resumable study (nnlab.sweeps.study), pruning and failures that stay
the failing trial's.

The loop: ask the study for up to `n_jobs` trials, turn each into Hydra overrides, launch them
with the configured launcher (basic, joblib, Ray), and tell the study each result. Trials that
differ only in what members may (lr, weight decay, seeds, widths: nnlab.config.member_keys)
train as one population, one job of the launcher, each trial still its own run and its own
member: a pruned trial stops alone (`hydra.sweeper.populations=false`: one job per trial).
The results:
- a number: COMPLETE (several objectives are read from the trial's MLflow run);
- NaN from a job that was pruned (it says so in the trial's attrs): PRUNED;
- NaN or an exception otherwise (a bad config, a diverged run): FAIL; the study goes on.
`n_trials` counts the study's finished trials over every run of the search, so re-running
the same command after an interruption continues where it stopped.

Trials left RUNNING by a driver that died (SIGKILL, a lost machine) are settled first: if the
trial's MLflow run FINISHED, its result is told to the study; otherwise the trial is FAILED
(its run too, with the reason) and its parameters are queued again, so that the next trial
re-runs that configuration, even when the failed trial brought the count to `n_trials`
(queued trials always run). Nothing finished is re-run; nothing is lost.

(Hydra loads sweepers given by `_target_`; this package sits in `hydra_plugins` like nnlab's
launchers. Optuna is imported only when a sweep starts.)
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from nnlab.sweeps import study as nnlab_study
from nnlab.sweeps.population_jobs import group_jobs, members_of, shares_a_population

log = logging.getLogger(__name__)


class NnlabOptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings  # checked in sweep(), with the whole config at hand

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # -- the loop ---------------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> Any:
        sweeper = self.config.hydra.sweeper
        try:
            search = nnlab_study.search_definition(self.config, arguments)
            distributions = search_space(search.space)
            pruner = nnlab_study.pruner_spec(sweeper, self.config.trainer.max_epochs)
            enqueue = OmegaConf.to_container(sweeper.enqueue) if sweeper.get("enqueue") else []
            study = nnlab_study.open_study(search, nnlab_study.make_pruner(pruner), enqueue)
            # Seeded by the seed and the trials so far: a resumed search draws new points
            # rather than repeating the first run's, and the same history gives the same ones.
            study.sampler = self._sampler(distributions, sweeper.seed + len(study.trials))
        except nnlab_study.StudyError as err:
            raise SystemExit(f"nnlab-train: {err}") from None
        self._remember_parent(study)
        settle_orphans(study, search)
        n_trials = sweeper.n_trials
        if sweeper.sampler == "grid":  # a grid is done when every point ran
            n_trials = min(n_trials, math.prod(len(d.choices) for d in distributions.values()))
        print(
            f"nnlab: Optuna study '{search.study_name}' in {_shown(search.storage)}: "
            f"{finished(study)}/{n_trials} trials done",
            flush=True,
        )
        while True:
            done, queued = finished(study), waiting(study)
            if done >= n_trials and not queued:
                break
            batch = min(sweeper.n_jobs, max(n_trials - done, queued))
            trials = [study.ask(distributions) for _ in range(batch)]
            for trial in trials:
                trial.set_user_attr(nnlab_study.DRIVER_ATTR, nnlab_study.this_driver())
            jobs = self._jobs(search, trials, pruner)
            returns = self.launcher.launch(
                [job for job, _ in jobs], initial_job_idx=trials[0].number
            )
            for (_, members), job in zip(jobs, returns, strict=True):
                for trial in members:
                    tell(study, search, trial, job, in_a_population=len(members) > 1)
        self._log_study(study, search)
        return study

    def _jobs(self, search, trials, pruner: str) -> list[tuple[list[str], list]]:
        """The jobs that run `trials`, each with the trials it trains: trials that can share a
        population are one job (hydra.sweeper.populations; nnlab.sweeps.population_jobs), the
        others one job each. A trial's job number is its number."""
        sweeper = self.config.hydra.sweeper
        by_number = {t.number: t for t in trials}
        batch = [
            [*search.fixed, *(f"{k}={_as_override(v)}" for k, v in t.params.items())]
            for t in trials
        ]

        def can_share(overrides) -> bool:
            if not sweeper.get("populations", True):
                return False
            return shares_a_population(self.hydra_context, self.config, overrides, in_a_trial=True)

        jobs = []
        for job in group_jobs(batch, list(by_number), can_share, sweeper.get("max_members", 64)):
            members = [by_number[num] for num in members_of(job)]
            trial_ids = {t.number: t._trial_id for t in members}
            jobs.append((job + nnlab_study.job_environment(search, trial_ids, pruner), members))
        return jobs

    # -- settings ---------------------------------------------------------------------------
    def _sampler(self, distributions, seed: int):
        import optuna

        name = self.config.hydra.sweeper.sampler
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        grid = {}
        for key, dist in distributions.items():
            if not isinstance(dist, optuna.distributions.CategoricalDistribution):
                raise SystemExit(
                    f"nnlab-train: hydra.sweeper.sampler=grid: {key} is not a choice(...) "
                    "or range(...): a grid needs a list of values for every parameter"
                )
            grid[key] = list(dist.choices)
        return optuna.samplers.GridSampler(grid, seed=seed)

    def _remember_parent(self, study) -> None:
        from nnlab.tracking.store import sweep_protocol

        parent = sweep_protocol.parent_run_id()
        if parent and study.user_attrs.get(nnlab_study.PARENT_ATTR) is None:
            study.set_user_attr(nnlab_study.PARENT_ATTR, parent)

    def _log_study(self, study, search) -> None:
        """The study's figures and identity on the sweep's parent run."""
        from nnlab.plots.study_figures import log_study_figures
        from nnlab.tracking.store import sweep_protocol

        parent = sweep_protocol.parent_run_id()
        if parent:
            log_study_figures(study, search, parent, self.config.tracking.uri)


# -- pieces, testable alone ---------------------------------------------------------------
def search_space(space: dict[str, str]) -> dict[str, Any]:
    """Hydra sweep expressions as Optuna distributions: interval -> float (tag(log, ...) on a
    log scale; int(interval(...)) for integers: Hydra makes a bare interval's ends floats),
    choice and range -> categorical."""
    import optuna.distributions as d
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    parser = OverridesParser.create()
    result = {}
    for key, expression in space.items():
        override = parser.parse_overrides([f"{key}={expression}"])[0]
        value = override.value()
        if isinstance(value, ChoiceSweep | RangeSweep):
            result[key] = d.CategoricalDistribution(list(override.sweep_iterator()))
        elif isinstance(value, IntervalSweep):
            log_scale = "log" in value.tags
            if isinstance(value.start, int) and isinstance(value.end, int):
                result[key] = d.IntDistribution(value.start, value.end, log=log_scale)
            else:
                result[key] = d.FloatDistribution(value.start, value.end, log=log_scale)
        else:
            raise SystemExit(
                f"nnlab-train: {key}={expression}: Optuna searches interval(...), "
                "tag(log, interval(...)), choice(...) or range(...)"
            )
    return result


def _as_override(value: Any) -> str:
    return (
        "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )


def _shown(storage: str) -> str:
    from nnlab.tracking.store.redact import redact

    return redact(storage)


def _tell(study, trial, *args, **kwargs) -> None:
    """study.tell; Optuna's grid sampler calls study.stop() once the grid is covered, which
    only works inside study.optimize (the result is stored before it raises)."""
    try:
        study.tell(trial, *args, **kwargs)
    except RuntimeError as err:
        if "Study.stop" not in str(err):
            raise


def finished(study) -> int:
    return sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))


def waiting(study) -> int:
    """Trials queued and not yet run: `enqueue`, or an interrupted trial's retry."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def tell(study, search, trial, job, in_a_population: bool = False) -> None:
    """The study learns the trial's result from its job: COMPLETE, PRUNED or FAIL. A job that
    trained several trials as one population returns their mean: each trial's own value is
    in its attrs (a trial without one failed)."""
    from optuna.trial import TrialState

    try:
        value = job.return_value
    except BaseException as err:  # the job raised: its failure, not the sweep's
        print(f"nnlab-train: trial {trial.number} failed: {err}", file=sys.stderr)
        _tell(study, trial, state=TrialState.FAIL)
        return
    attrs = study._storage.get_trial(trial._trial_id).user_attrs
    if in_a_population:
        value = attrs.get(nnlab_study.OBJECTIVE_ATTR, math.nan)
    if nnlab_study.PRUNED_ATTR in attrs:
        _tell(study, trial, state=TrialState.PRUNED)
        return
    values = objective_values(search, attrs, value)
    if values is None:
        _tell(study, trial, state=TrialState.FAIL)
    else:
        _tell(study, trial, values if len(values) > 1 else values[0])


def objective_values(search, attrs: dict, returned: Any) -> list[float] | None:
    """The trial's objective(s): what the job returned for one objective, the MLflow run's
    metrics for several. None when any is missing or not finite."""
    if len(search.objectives) == 1:
        values = [returned]
    else:
        run_id = attrs.get(nnlab_study.RUN_ATTR)
        if run_id is None:
            return None
        metrics = _run_metrics(run_id)
        values = [metrics.get(k, math.nan) for k in search.objectives]
    return None if any(nnlab_study.is_bad(v) for v in values) else [float(v) for v in values]


def _run_metrics(run_id: str) -> dict[str, float]:
    from nnlab.tracking.store.client import get_client, tracking_uri

    return dict(get_client(tracking_uri()).get_run(run_id).data.metrics)


def settle_orphans(study, search) -> None:
    """Trials left RUNNING by a driver that died: told their run's result if it FINISHED,
    else FAILED (with their run) and queued again."""
    from optuna.trial import TrialState

    from nnlab.tracking.store.client import get_client, log_params, tracking_uri
    from nnlab.tracking.store.runs import close_run

    client = get_client(tracking_uri())
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not nnlab_study.driver_is_gone(trial.user_attrs.get(nnlab_study.DRIVER_ATTR)):
            continue  # another live driver's trial (or on another host: left alone)
        run_id = trial.user_attrs.get(nnlab_study.RUN_ATTR)
        # Without the attribute the job may still have created its run: killed between the
        # two writes (seen under load). Its run is then found by its job number.
        run = client.get_run(run_id) if run_id else _run_of_trial(client, study, trial)
        if run is not None and run.info.status == "FINISHED":
            values = objective_values(search, trial.user_attrs, _objective_of(run, search))
            if values is not None:
                _tell(study, trial.number, values if len(values) > 1 else values[0])
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
            _stand_in_run(client, study, trial, why)
        _tell(study, trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params)
        print(
            f"nnlab: trial {trial.number} was interrupted: FAILED, and its parameters are "
            "queued to run again",
            flush=True,
        )


def _run_of_trial(client, study, trial):
    """The run the trial's job created, found by its job number (the trial's number) under the
    search's parent; the trial is told its id. None when the job created none."""
    from nnlab.tracking.store.names import JOB_NUM_TAG, PARENT_TAG

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


def _objective_of(run, search) -> float:
    return run.data.metrics.get(search.objectives[0], math.nan)


def _stand_in_run(client, study, trial, why: str) -> None:
    """A trial whose job never created its run still gets one (FAILED, saying why), so that
    every trial of the study is a run in the UI."""
    from nnlab.tracking.store import sweep_protocol
    from nnlab.tracking.store.client import log_params
    from nnlab.tracking.store.names import JOB_NUM_TAG, OVERRIDES_TAG, PARENT_TAG
    from nnlab.tracking.store.runs import close_run

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
            OVERRIDES_TAG: "\n".join(f"{k}={_as_override(v)}" for k, v in trial.params.items()),
        },
    )
    log_params(client, run.info.run_id, trial.params)
    close_run(client, run.info.run_id, "FAILED", why)
    trial_attr = study._storage.set_trial_user_attr
    trial_attr(trial._trial_id, nnlab_study.RUN_ATTR, run.info.run_id)
