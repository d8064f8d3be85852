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
        # Here, not at the top: Hydra imports every module of hydra_plugins at start-up, and
        # this one brings Optuna and MLflow.
        from nnlab.sweeps.trial_results import settle_orphans, tell

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
            [*search.fixed, *(f"{k}={nnlab_study.as_override(v)}" for k, v in t.params.items())]
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
        # lazy: Hydra imports plugins at start-up; Optuna loads when a search runs
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
        # lazy: Hydra imports plugins at start-up; Optuna loads when a search runs
        from nnlab.tracking.store import sweep_protocol

        parent = sweep_protocol.parent_run_id()
        if parent and study.user_attrs.get(nnlab_study.PARENT_ATTR) is None:
            study.set_user_attr(nnlab_study.PARENT_ATTR, parent)

    def _log_study(self, study, search) -> None:
        """The study's figures and identity on the sweep's parent run."""
        # lazy: Hydra imports plugins at start-up; Optuna loads when a search runs
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
    # lazy: Hydra imports plugins at start-up; Optuna loads when a search runs
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


def _shown(storage: str) -> str:
    # lazy: Hydra imports plugins at start-up; Optuna loads when a search runs
    from nnlab.tracking.store.redact import redact

    return redact(storage)


def finished(study) -> int:
    return sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))


def waiting(study) -> int:
    """Trials queued and not yet run: `enqueue`, or an interrupted trial's retry."""
    # lazy: Hydra imports plugins at start-up; Optuna loads when a search runs
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
