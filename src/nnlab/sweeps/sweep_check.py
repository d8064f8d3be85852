"""A multirun checked whole before its parent run exists (nnlab.sweeps.callback calls it).

Hydra knows every job's overrides before the first job runs, so nnlab checks them all up
front, with the checks a single run makes (nnlab.config.check):
- the sweep-wide keys (the store, the experiment) first: one line, as a single run says it;
- then every job's composed config, for the basic and population sweepers: one line per bad
  job, naming its number and its overrides.
Any problem ends the sweep with exit 2 before anything is written to the store.

An Optuna search samples its values as it goes: its fixed config is checked here (the keys
it searches are left to each trial, which checks its own values and fails alone).
"""

from __future__ import annotations

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from nnlab.config.check import check_config
from nnlab.config.rules import RULES, ConfigError, check_rules, overrides_as_written
from nnlab.data.datasets import DataError
from nnlab.sweeps.job_configs import composed_job
from nnlab.sweeps.study import is_sweep_override

SWEEP_WIDE_KEYS = ("tracking.uri", "tracking.experiment")
GRID_SWEEPERS = ("BasicSweeper", "NnlabPopulationSweeper")


def sweep_problems(config: DictConfig) -> list[str]:
    """What is wrong with this multirun's configs, one line each; [] when every job can run.
    `config`: the sweep's config, as Hydra gives it to callbacks."""
    written = overrides_as_written(config.hydra.overrides.task)
    try:
        check_rules(config, {k: RULES[k] for k in SWEEP_WIDE_KEYS}, written)
    except ConfigError as err:
        return [f"bad config: {err}"]
    sweeper = str(config.hydra.sweeper._target_).rsplit(".", 1)[-1]
    if sweeper not in GRID_SWEEPERS:
        return _fixed_config_problems(config, written)
    problems = []
    for num, overrides in enumerate(grid_jobs(config)):
        job = _job_config(config, overrides)
        try:
            check_config(job, overrides_as_written(overrides))
        except (ConfigError, DataError) as err:
            kind = "bad data" if isinstance(err, DataError) else "bad config"
            problems.append(f"job {num} ({' '.join(_swept(config, overrides))}): {kind}: {err}")
    return problems


def grid_jobs(config: DictConfig) -> list[list[str]]:
    """Every job's overrides, in the order and with the numbers Hydra's basic sweep gives them
    (nnlab's population sweeper numbers its jobs the same way)."""

    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()]
    arguments += list(config.hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(arguments)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def _job_config(config: DictConfig, overrides: list[str]) -> DictConfig:
    """The config the job with `overrides` gets, as its task function sees it."""

    job = composed_job(GlobalHydra.instance().config_loader(), config, overrides)
    with open_dict(job):
        del job["hydra"]
    return job


def _swept(config: DictConfig, overrides: list[str]) -> list[str]:
    """A job's overrides of the keys the sweep varies (the others every job shares)."""

    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    keys = {str(k) for k in params}
    keys |= {o.split("=", 1)[0] for o in config.hydra.overrides.task if is_sweep_override(o)}
    return [o for o in overrides if o.split("=", 1)[0] in keys] or list(overrides)


def _fixed_config_problems(config: DictConfig, written: dict[str, str]) -> list[str]:
    """An Optuna search's config with its fixed overrides only, checked; a problem with a
    key it searches is left to the trials."""

    searched = {str(k) for k in (OmegaConf.select(config, "hydra.sweeper.params") or {})}
    searched |= {k for k, v in written.items() if is_sweep_override(f"{k}={v}")}
    fixed = [o for o in config.hydra.overrides.task if not is_sweep_override(o)]
    try:
        check_config(_job_config(config, fixed), written)
    except (ConfigError, DataError) as err:
        if isinstance(err, ConfigError) and err.key in searched:
            return []  # a sampled value: each trial checks its own
        kind = "bad data" if isinstance(err, DataError) else "bad config"
        return [f"{kind}: {err}"]
    return []
