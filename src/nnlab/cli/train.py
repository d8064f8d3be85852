"""`nnlab-train`: the Hydra entry point. compose -> check -> build -> fit -> test -> log.

Only Hydra and the config checks load before the config is known to be good: a typo is
answered in about a second, and the training stack (torch, Lightning, MLflow) loads after.

In a multirun (`-m`), one job's failure must not end the sweep: a job that fails or diverges
is recorded FAILED, reported in one line, and returns NaN to the sweeper. Ctrl-C and SIGTERM
end the sweep, with the running job and the sweep's parent run marked KILLED.
"""

from __future__ import annotations

import math
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from nnlab.cli.overrides import check_overrides
from nnlab.cli.train_summary import print_group_lines, print_group_where, print_summary
from nnlab.config.check import check_config
from nnlab.config.rules import ConfigError
from nnlab.console import quiet_startup
from nnlab.data.datasets import DataError
from nnlab.paths import CONF_DIR
from nnlab.quick_exit import run_then_exit
from nnlab.sweeps.callback import abort_active_sweep
from nnlab.sweeps.population_jobs import MEMBERS_KEY, decode
from nnlab.sweeps.scheduler import scheduler_job_id, scheduler_tags
from nnlab.tracking.store import sweep_protocol
from nnlab.tracking.store.redact import redact


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def train(cfg: DictConfig) -> float:
    quiet_startup()
    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    job_num = hydra_cfg.job.num if in_sweep else None
    members = decode(cfg.sweep_members) if cfg.get("sweep_members") else None
    if members is not None and len(members) == 1 and not members[0][1]:
        job_num, members = members[0][0], None  # one job, numbered as the sweep numbered it
        cfg.sweep_members = None
    where = f"job {job_num}: " if in_sweep else ""

    def give_up(message: str, exit_code: int) -> float:
        print(f"nnlab-train: {where}{message}", file=sys.stderr, flush=True)
        if in_sweep:
            return math.nan  # this job fails alone; the sweep goes on
        sys.exit(exit_code)

    try:
        check_config(cfg)
    except ConfigError as err:
        return give_up(f"bad config: {err}", 2)
    except DataError as err:  # the user's CSV file, read by the check
        return give_up(f"bad data: {err}", 2)

    # lazy: torch, Lightning, MLflow load once the config passed
    from nnlab.tracking.store.client import tracking_uri
    from nnlab.tracking.store.preflight import store_failure
    from nnlab.training.engine import TrainingDiverged
    from nnlab.training.resume import continue_requeued_job, prepare_resume, resumed_population
    from nnlab.training.run import run_training
    from nnlab.training.trial_pruning import TrialPruned

    overrides = [o for o in hydra_cfg.overrides.task if not o.startswith(f"{MEMBERS_KEY}=")]
    tags = {
        **sweep_protocol.job_tags(overrides, job_num if in_sweep else None),
        **scheduler_tags(),
    }
    swept = sweep_protocol.swept_keys_of_this_sweep() if in_sweep else None
    if members is not None:
        return train_jobs(cfg, overrides, members, swept, give_up)
    if cfg.repeats > 1:
        return train_group(cfg, overrides, tags, swept, give_up)
    with tempfile.TemporaryDirectory(prefix="nnlab-resume-") as workdir:
        try:
            if cfg.resume:
                resume = prepare_resume(cfg, overrides, Path(workdir))
                population = resumed_population(cfg, resume)
                if population is not None:  # continued as a whole, in its members' runs
                    return train_group(
                        population.config, population.overrides, tags, swept, give_up, population
                    )
            else:
                resume = continue_requeued_job(cfg, Path(workdir)) if scheduler_job_id() else None
            result = run_training(
                resume.config if resume else cfg,
                resume.overrides if resume else overrides,
                tags,
                resume,
                swept_keys=swept,
            )
        except KeyboardInterrupt as err:
            print(f"nnlab-train: {err or 'interrupted'}; the run is marked KILLED", file=sys.stderr)
            sys.exit(130)
        except ConfigError as err:  # includes a run that cannot be resumed
            return give_up(f"bad config: {err}", 2)
        except Exception as err:
            broken_store = store_failure(err)
            if broken_store is not None:
                uri = redact(tracking_uri(cfg.tracking.uri))
                return give_up(f"tracking store {uri}: {broken_store}", 3)
            if isinstance(err, DataError):
                return give_up(f"bad data: {err}", 2)
            if isinstance(err, TrialPruned):
                return give_up(f"{err}; the run is marked KILLED (tag nnlab.pruned)", 1)
            if isinstance(err, TrainingDiverged):
                return give_up(f"training diverged ({err}); the run is marked FAILED", 1)
            if in_sweep:
                return give_up(f"failed ({type(err).__name__}: {err}); the run is marked FAILED", 1)
            raise  # an unexpected error: the traceback is what a developer needs
    parent_id = sweep_protocol.parent_run_id()
    if result.skipped and parent_id and in_sweep:
        # lazy: torch, Lightning, MLflow load once the config passed
        from nnlab.tracking.store.client import get_client

        sweep_protocol.note_skipped_job(
            get_client(result.tracking_uri), parent_id, hydra_cfg.job.num, result.run_id
        )
    print_summary(result, (resume.config if resume else cfg).tracking.experiment, in_sweep)
    return result.objective


def train_group(
    cfg: DictConfig, overrides: list[str], tags: dict, swept, give_up, resume=None
) -> float:
    """`repeats=N`: the group's members (nnlab.training.repeats), or the interrupted population
    `resume` continued; returns the mean objective over the members that finished."""
    # lazy: torch, Lightning, MLflow load once the config passed
    from nnlab.training.repeats import run_group

    try:
        trained, group = guarded(
            cfg, give_up, lambda: run_group(cfg, overrides, tags, swept, resume)
        )
    except ConfigError as err:  # trainer.population=true where no population can train
        return give_up(f"bad config: {err}", 2)
    if not trained:
        return group  # the store failed: give_up's value
    print(f"nnlab: {group.summary_line()}", flush=True)
    if not group.members:
        return give_up(f"every one of the {cfg.repeats} repeats failed", 1)
    if group.parent_run_id:
        print_group_where(group, cfg.tracking.experiment)
    return group.objective


def guarded(cfg: DictConfig, give_up, train):
    """Run `train()` for several runs at once: (True, what it returned), or (False, give_up's
    value) when the store failed. Ctrl-C and SIGTERM exit 130, the runs marked KILLED; any
    other error is raised."""
    # lazy: torch, Lightning, MLflow load once the config passed
    from nnlab.tracking.store.client import tracking_uri
    from nnlab.tracking.store.preflight import store_failure

    try:
        return True, train()
    except KeyboardInterrupt as err:
        print(f"nnlab-train: {err or 'interrupted'}; the runs are marked KILLED", file=sys.stderr)
        sys.exit(130)
    except Exception as err:
        broken_store = store_failure(err)
        if broken_store is None:
            raise
        uri = redact(tracking_uri(cfg.tracking.uri))
        return False, give_up(f"tracking store {uri}: {broken_store}", 3)


def train_jobs(cfg: DictConfig, overrides: list[str], members, swept, give_up) -> float:
    """A sweep's jobs trained as one population (nnlab.sweeps.population_jobs), each its own
    run under the sweep's parent; an Optuna search's trials, each its own member. A job whose
    config is bad fails alone, before training; returns the mean objective of the jobs that
    finished (each trial's own goes to its trial)."""
    # lazy: torch, Lightning, MLflow load once the config passed
    from nnlab.sweeps.population_jobs import job_config
    from nnlab.sweeps.study import trials_of_this_job
    from nnlab.training.population import Member, repeat_members, train_population
    from nnlab.training.repeats import repeat_tags

    trials = trials_of_this_job()  # job number -> Optuna trial, when the jobs are trials
    jobs, nums = [], []
    for num, member_overrides in members:
        config = job_config(cfg, member_overrides)
        try:
            check_config(config)
        except ConfigError as err:
            print(f"nnlab-train: job {num}: bad config: {err}", file=sys.stderr, flush=True)
            continue
        job_overrides = [*overrides, *member_overrides]
        tags = {**sweep_protocol.job_tags(job_overrides, num), **scheduler_tags()}
        nums.append(str(num))
        if int(config.repeats) == 1:
            jobs.append(
                Member(config, job_overrides, tags, "", f"job {num}", trial=trials.get(num))
            )
            continue
        # A job's repeats are members too, tagged as its group's (nnlab.training.repeats).
        repeat = repeat_members(config, job_overrides, lambda k, s, t=tags: repeat_tags(t, k, s))
        jobs += [
            replace(m, line=f"job {num}, {m.line}", job=f"job {num}")
            for m in map(repeat, range(config.repeats))
        ]
    if not jobs:
        return give_up("every job of this population has a bad config", 2)
    print(f"nnlab: jobs {', '.join(nums)} trained as one population of {len(jobs)}", flush=True)
    trained, outcome = guarded(
        cfg, give_up, lambda: train_population(jobs[0].config, overrides, None, swept, jobs=jobs)
    )
    if not trained:
        return outcome  # the store failed: give_up's value
    results, failures = outcome
    for result in results:
        print_summary(result, cfg.tracking.experiment, in_sweep=True)
    print_group_lines(jobs, results, failures)
    objectives = [r.objective for r in results if math.isfinite(r.objective)]
    if not objectives:
        return give_up(f"every one of the {len(jobs)} jobs failed", 1)
    return sum(objectives) / len(objectives)


def main() -> None:
    """Console entry: the Hydra app, plus closing a sweep's parent run if it ends early."""
    problem = check_overrides(sys.argv[1:])
    if problem is not None:
        print(f"nnlab-train: bad override: {problem}", file=sys.stderr)
        sys.exit(2)
    try:
        train()
    except KeyboardInterrupt:
        abort_active_sweep("KILLED", "interrupted")
        print("nnlab-train: interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit as done:
        if done.code not in (0, None):
            abort_active_sweep("KILLED" if done.code == 130 else "FAILED", f"exit {done.code}")
        raise
    except BaseException as err:
        abort_active_sweep("FAILED", f"{type(err).__name__}: {err}")
        raise


def entry() -> None:
    """The `nnlab-train` command: main, then the process ends without the interpreter's
    teardown (nnlab.quick_exit)."""
    run_then_exit(main)


if __name__ == "__main__":
    entry()
