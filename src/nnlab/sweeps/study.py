"""The persistent Optuna study behind `sweep=optuna` (hydra_plugins/nnlab_sweepers).

Where it lives: an RDB storage, by default `optuna.db` beside a local MLflow store
(`mlruns/optuna.db`), else `hydra.sweeper.storage` (a URL every worker reaches).

Its name: `hydra.sweeper.study_name`, or `<experiment>-<hash>` of what defines the search (the
search space, the fixed command-line overrides, the objectives). So re-running the same
command resumes the same study, and a changed search space starts a new one. A study named
explicitly refuses a different search space, in one line.

What the sweeper, the sweep's parent run and the jobs share goes through the storage:
- study attrs: the search space, and the sweep's MLflow parent run (resume continues it);
- trial attrs: the MLflow run of the trial (set by the job), the driver (host:pid) that
  launched it, the epoch it was pruned at and, when trials trained as one population, its
  objective (both set by the job).
Jobs find their trials through environment variables set per job (`hydra.job.env_set`), so
they reach them on any launcher: one trial per job, or one per member when the sweeper
grouped trials into a population (nnlab.sweeps.population_jobs). Optuna is imported only
inside functions.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

STORAGE_ENV = "NNLAB_OPTUNA_STORAGE"
STUDY_ENV = "NNLAB_OPTUNA_STUDY"
TRIAL_ENV = "NNLAB_OPTUNA_TRIAL_ID"  # '<job num>:<trial id>,...': a population has several
PRUNER_ENV = "NNLAB_OPTUNA_PRUNER"  # the pruner's spec: the job decides whether it is pruned

SPACE_ATTR = "nnlab.search_space"
PARENT_ATTR = "nnlab.mlflow_parent_run_id"
RUN_ATTR = "nnlab.mlflow_run_id"
DRIVER_ATTR = "nnlab.driver"
PRUNED_ATTR = "nnlab.pruned_at_epoch"
OBJECTIVE_ATTR = "nnlab.objective"  # set by a population's job: one value per trial

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("none", "median", "successive_halving", "hyperband")
DIRECTIONS = ("minimize", "maximize")


class StudyError(ValueError):
    """A sweeper setting or a study that cannot be used; the message is one line."""


@dataclass(frozen=True)
class SearchDefinition:
    """What a search is: resolved from the sweeper's config and the command line."""

    storage: str
    study_name: str
    space: dict[str, str]  # key -> Hydra sweep expression, e.g. tag(log, interval(1e-4, 1))
    fixed: list[str]  # the command line's other overrides
    objectives: list[str]
    directions: list[str]


def is_sweep_override(item: str) -> bool:
    """Whether a command-line override sweeps (a,b; choice(...); interval(...)), as Hydra
    parses it: `model.hidden=[8,4]` is one value."""
    # lazy: Optuna (~1 s) loads only when a search runs
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_override(item).is_sweep_override()
    except Exception:  # Hydra reports its own parse errors
        return False


def search_definition(config: DictConfig, arguments: list[str]) -> SearchDefinition:
    """The search this multirun asks for; StudyError (one line) for a setting nnlab cannot
    use. `arguments` are the command line's task overrides."""
    # lazy: Optuna (~1 s) loads only when a search runs
    from nnlab.nn.tasks import higher_is_better
    from nnlab.tracking.store.client import local_store_dir, tracking_uri

    sweeper = config.hydra.sweeper
    for key, value, allowed in (
        ("sampler", sweeper.sampler, SAMPLERS),
        ("pruner", sweeper.pruner, PRUNERS),
    ):
        if value not in allowed:
            raise StudyError(f"hydra.sweeper.{key}={value}: allowed: {', '.join(allowed)}")
    if not (isinstance(sweeper.n_trials, int) and sweeper.n_trials >= 1):
        raise StudyError(f"hydra.sweeper.n_trials={sweeper.n_trials}: an integer >= 1")
    if not (isinstance(sweeper.n_jobs, int) and sweeper.n_jobs >= 1):
        raise StudyError(f"hydra.sweeper.n_jobs={sweeper.n_jobs}: an integer >= 1")

    space = {str(k): str(v) for k, v in (sweeper.params or {}).items()}
    fixed = []
    for item in arguments:
        key, _, value = item.partition("=")
        if is_sweep_override(item):
            space[key.lstrip("+~")] = value
        else:
            fixed.append(item)
    if not space:
        raise StudyError("hydra.sweeper.params={}: the search needs at least one parameter")

    objectives = list(sweeper.objectives or [config.objective])
    directions = list(sweeper.directions or [])
    if not directions:
        for key in objectives:
            try:
                directions.append("maximize" if higher_is_better(key) else "minimize")
            except KeyError:
                raise StudyError(
                    f"hydra.sweeper.directions=null: nnlab cannot tell whether {key} is "
                    "minimised or maximised: set hydra.sweeper.directions, one per objective"
                ) from None
    if len(directions) != len(objectives) or any(d not in DIRECTIONS for d in directions):
        raise StudyError(
            f"hydra.sweeper.directions={directions}: one of {', '.join(DIRECTIONS)} "
            f"per objective ({', '.join(objectives)})"
        )

    storage = sweeper.storage
    if not storage:
        folder = local_store_dir(tracking_uri(config.tracking.uri))
        if folder is None:
            raise StudyError(
                "hydra.sweeper.storage=null: the MLflow store is a server, so the study needs "
                "a database every worker reaches: set hydra.sweeper.storage=<RDB URL>"
            )
        storage = f"sqlite:///{folder / 'optuna.db'}"
    name = sweeper.study_name
    if not name:
        digest = json.dumps([space, sorted(fixed), objectives, directions], sort_keys=True)
        name = f"{config.tracking.experiment}-{hashlib.sha256(digest.encode()).hexdigest()[:8]}"
    return SearchDefinition(str(storage), str(name), space, fixed, objectives, directions)


def _storage(url: str):
    # lazy: Optuna (~1 s) loads only when a search runs
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # nnlab prints what matters

    # Parallel jobs write to a sqlite file at once: wait for the lock rather than fail.
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def existing_study(search: SearchDefinition):
    """The study of this search if it exists (checked against the search), else None."""
    # lazy: Optuna (~1 s) loads only when a search runs
    import optuna

    try:
        study = optuna.load_study(study_name=search.study_name, storage=_storage(search.storage))
    except KeyError:
        return None
    recorded = study.user_attrs.get(SPACE_ATTR)
    mine = _space_record(search)
    if recorded is not None and recorded != mine:
        raise StudyError(
            f"hydra.sweeper.study_name={search.study_name}: this study searched "
            f"{_render(recorded)}; this command searches {_render(mine)}: name a new study "
            "(or leave study_name unset: each search space then gets its own)"
        )
    return study


def _space_record(search: SearchDefinition) -> dict[str, Any]:
    return {"space": search.space, "objectives": search.objectives, "directions": search.directions}


def _render(record: dict[str, Any]) -> str:
    space = ", ".join(f"{k}={v}" for k, v in sorted(record["space"].items()))
    return f"{space} for {', '.join(record['objectives'])}"


def open_study(search: SearchDefinition, pruner, enqueue=()):
    """The study, created on the first run of the search and loaded on every later one.
    `enqueue`: parameters of trials to run first, queued when the study is created."""
    # lazy: Optuna (~1 s) loads only when a search runs
    import optuna

    study = existing_study(search)
    if study is None:
        study = optuna.create_study(
            storage=_storage(search.storage),
            study_name=search.study_name,
            directions=search.directions,
            load_if_exists=True,  # a parallel driver may have just created it
        )
        study.set_user_attr(SPACE_ATTR, _space_record(search))
        for params in enqueue:
            study.enqueue_trial(dict(params))
    study.pruner = pruner  # not stored with a study: this run's choice (as is the sampler)
    return study


def parent_run_of(search: SearchDefinition) -> str | None:
    """The MLflow parent run an earlier run of this search opened, to continue it."""
    study = existing_study(search)
    return study.user_attrs.get(PARENT_ATTR) if study is not None else None


def this_driver() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def driver_is_gone(driver: str | None) -> bool:
    """A trial's driver (host:pid) is known dead only on this host."""
    # lazy: Optuna (~1 s) loads only when a search runs
    from nnlab.tracking.store.runs import process_alive

    if not driver:
        return True
    host, _, pid = driver.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not process_alive(int(pid))


def is_bad(value: Any) -> bool:
    return not isinstance(value, int | float) or math.isnan(value) or math.isinf(value)


def pruner_spec(sweeper: DictConfig, max_epochs: int) -> str:
    """The configured pruner as one string, for the driver and the jobs alike."""
    return (
        f"{sweeper.pruner} {sweeper.pruner_startup_trials} {sweeper.pruner_warmup_epochs} "
        f"{max_epochs}"
    )


def make_pruner(spec: str):
    """`pruner_spec` back into an Optuna pruner (Optuna stores none with the study)."""
    # lazy: Optuna (~1 s) loads only when a search runs
    import optuna

    name, startup, warmup, max_epochs = spec.split()
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=int(startup), n_warmup_steps=int(warmup)
        )
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, int(warmup)))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, int(warmup)), max_resource=int(max_epochs)
        )
    return optuna.pruners.NopPruner()


def job_environment(search: SearchDefinition, trial_ids: dict[int, int], pruner: str) -> list[str]:
    """Overrides that set the trials' environment in their job's process, on any launcher.
    `trial_ids`: job number -> Optuna trial id, for each job the launched job trains."""

    def quoted(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    trials = ",".join(f"{num}:{trial_id}" for num, trial_id in trial_ids.items())
    return [
        f"+hydra.job.env_set.{STORAGE_ENV}={quoted(search.storage)}",
        f"+hydra.job.env_set.{STUDY_ENV}={quoted(search.study_name)}",
        f"+hydra.job.env_set.{TRIAL_ENV}={quoted(trials)}",
        f"+hydra.job.env_set.{PRUNER_ENV}={quoted(pruner)}",
    ]


# -- the job's side -------------------------------------------------------------------------
def job_is_a_trial() -> bool:
    """Whether this job is a trial of nnlab's Optuna sweeper (from the environment alone: no
    Optuna import, no study lookup)."""
    return bool(os.environ.get(TRIAL_ENV))


def trials_of_this_job() -> dict:
    """The Optuna trials this job trains, by job number ({} outside nnlab's Optuna sweeper):
    one, or one per member of a population of trials."""
    if not os.environ.get(TRIAL_ENV):
        return {}
    # lazy: Optuna (~1 s) loads only when a search runs
    import optuna

    study = optuna.load_study(
        study_name=os.environ[STUDY_ENV],
        storage=_storage(os.environ[STORAGE_ENV]),
        pruner=make_pruner(os.environ.get(PRUNER_ENV, "none 0 0 0")),
    )
    trials = {}
    for entry in os.environ[TRIAL_ENV].split(","):
        num, _, trial_id = entry.rpartition(":")
        trials[int(num) if num else 0] = optuna.trial.Trial(study, int(trial_id))
    return trials


def trial_of_this_job():
    """The one Optuna trial this job runs alone, or None outside nnlab's Optuna sweeper."""
    trials = trials_of_this_job()
    return next(iter(trials.values())) if len(trials) == 1 else None


def as_override(value: Any) -> str:
    """A trial's value as Hydra reads it on the command line (true, null, 0.01)."""
    return (
        "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )
