"""`repeats=N` trained as one population: the N members stepped together, one run each.

A small network leaves the CPU idle: a 2-10-5-1 step at batch 32 is almost all dispatch
overhead. Members that differ only in their seeds share their architecture, backend and
optimizer, so their weights can be stacked (nnlab.nn.population_nets) and trained by the one
engine every run trains with (nnlab.training.engine; a plain run is a population of one): N
members then cost about what one costs.

Each member keeps its own data split, initial weights and batch order, and its curves equal
its plain run's (tests/training/test_population.py holds them to 1e-9 in float64). Each member
is its own MLflow run, as the one-by-one path makes it (nnlab.training.repeats): params,
dataset, config, curves, test metrics, figures, checkpoint and model. A member that diverges
or stops early does so alone.

`trainer.population`: auto (a population when the config allows one, else one by one with a
line saying why), true (a population, or one line saying why not and exit 2), false.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from nnlab.config.member_keys import why_not_population
from nnlab.config.memory import parameter_count
from nnlab.config.rules import ConfigError
from nnlab.config.seeds import member_config
from nnlab.nn.export import one_export_per_shape
from nnlab.plots.background import FigureWriter, figure_workers
from nnlab.sweeps.study import job_is_a_trial
from nnlab.tracking.logger import BufferedMlflowLogger, PopulationLogger
from nnlab.tracking.store.client import get_client, set_tags, tracking_uri
from nnlab.tracking.store.names import (
    JOB_NUM_TAG,
    MEMBER_TAG,
    PARENT_TAG,
    POPULATION_RUNS_TAG,
    POPULATION_TAG,
    SEED_SUFFIX,
)
from nnlab.tracking.store.preflight import check_store, store_failure
from nnlab.tracking.store.runs import open_runs
from nnlab.tracking.store.sweep_protocol import note_skipped_job
from nnlab.training.fit import fit_and_test, member_network, member_setups, population_module
from nnlab.training.outputs import figure_recipes, finish_member, timing_tags
from nnlab.training.run import (
    PARAMETERS_METRIC,
    describer,
    early_stopper,
    finished_twin,
    log_run_inputs,
    parent_link,
    run_name_of,
    run_tags,
    skipped_result,
)
from nnlab.training.setup import quiet_lightning, run_setup
from nnlab.training.trial_pruning import TrialPruning


def wanted(cfg: DictConfig) -> bool:
    """Whether to train `cfg`'s repeats as a population; raises ConfigError when
    `trainer.population=true` asks for one the config does not allow."""

    mode = cfg.trainer.get("population", "auto")
    if mode is False or int(cfg.repeats) < 2:
        return False
    reason = why_not_population(cfg, job_is_a_trial())
    if reason is None:
        return True
    if mode is True:
        raise ConfigError(f"trainer.population=true: {reason}; allowed: trainer.population=false")
    print(f"nnlab: repeats trained one by one: {reason}", flush=True)
    return False


@dataclass
class Member:
    """One member of a population as its run records it."""

    config: DictConfig  # the plain run it equals
    overrides: list[str]  # logged as the run's overrides
    tags: dict
    name_suffix: str  # after the run's name: " · seed N" for a repeat
    line: str  # how messages name it: "repeat 2 (seed 43)", "job 3"
    job: str = ""  # a sweep's job whose repeat this is ("job 3"), for its group's summary line
    run_id: str | None = None  # its run, once train_population has opened it
    trial: object = None  # its Optuna trial, when the sweep's trials train as members


def repeat_members(cfg, overrides, member_tags) -> Callable[[int], Member]:
    """Member k of `cfg`'s group of repeats: seed + k."""

    def member(k: int) -> Member:
        config = member_config(cfg, k)
        seed = int(config.seed)
        return Member(
            config,
            [*overrides, f"seed={seed}"],
            member_tags(k, seed),
            f"{SEED_SUFFIX}{seed}",
            f"repeat {k + 1} (seed {seed})",
        )

    return member


def train_population(
    cfg: DictConfig,
    overrides: list[str],
    member_tags: Callable[[int, int], dict] | None,
    swept_keys: list[str] | None,
    logged: list[int] | None = None,
    resume=None,
    jobs: list[Member] | None = None,
) -> tuple[list, list[str]]:
    """Train the members of `cfg`'s group together. Returns (RunResult of each member that
    finished, one line per member that failed). `member_tags(k, seed)`: member k's tags.
    `logged`: the members that get a run (default all; nnlab-reproduce re-trains a whole
    population to reproduce one member of it). `resume` (nnlab.training.resume.PopulationResume):
    continue an interrupted population in its own runs, from its checkpoint. `jobs`: a sweep's
    jobs as the members, instead of `cfg`'s repeats (nnlab.sweeps.population_jobs)."""
    started = time.perf_counter()
    quiet_lightning()
    if jobs is not None:
        group, spec = list(range(len(jobs))), jobs.__getitem__
    else:
        group = list(range(int(cfg.repeats))) if resume is None else list(resume.group)
        spec = repeat_members(cfg, overrides, member_tags)
    specs = {k: spec(k) for k in group}
    logged = group if logged is None else logged  # member k of the group has seed + k
    uri = tracking_uri(cfg.tracking.uri)
    check_store(uri)
    client = get_client(uri)
    skipped = []
    if cfg.tracking.skip_finished and resume is None:  # per member: each has its config hash
        for k in list(logged):
            twin = finished_twin(client, specs[k].config)
            if twin is not None:
                skipped.append(skipped_result(twin, cfg, uri))
                group.remove(k)
                _note_skipped_job(client, specs[k].tags, twin)
        logged = [k for k in logged if k in group]
        if not logged:
            return skipped, []
    specs = [specs[k] for k in group]  # the population: position i is group[i]
    members = [m.config for m in specs]
    setups = member_setups(members, run_setup)
    names = [
        run_name_of(m.config, s, swept_keys, m.name_suffix)
        for m, s in zip(specs, setups, strict=True)
    ]
    n = len(members)
    logged = [group.index(k) for k in logged]  # positions from here on
    tags = [
        run_tags(
            members[i],
            setups[i],
            {**specs[i].tags, POPULATION_TAG: f"{n} members trained together"},
        )
        for i in logged
    ]
    histories = resume.histories if resume is not None else [None] * n
    # Unlogged members' loggers keep their curves in memory only. A resumed member's starts
    # from its stored curves, and skips the epochs it already has.
    loggers = [BufferedMlflowLogger(None, None, history=h) for h in histories]
    parent = parent_link(client, tags[0].get(PARENT_TAG))
    closers = [
        describer(members[k], setups[k], lambda lg=loggers[k]: lg.history, parent) for k in logged
    ]
    trials = {k: m.trial for k, m in enumerate(specs) if m.trial is not None}
    pruning = TrialPruning(trials, cfg.objective, cfg.trainer.max_epochs) if trials else None
    results, failures = [], []
    with open_runs(
        client,
        cfg.tracking.experiment,
        uri,
        [names[k] for k in logged],
        tags,
        closers,
        resume_run_ids=resume.run_ids if resume is not None else None,
    ) as runs:
        # Any member's id resumes the whole population.
        together = {POPULATION_RUNS_TAG: ",".join(runs.ids)} if len(runs.ids) > 1 else {}
        for i, k in enumerate(logged):
            member, setup = members[k], setups[k]
            if resume is None:
                log_run_inputs(client, runs.ids[i], member, specs[k].overrides, setup, together)
            loggers[k].client, loggers[k].run_id = client, runs.ids[i]
            specs[k].run_id = runs.ids[i]
            loggers[k].run_name = names[k]
            loggers[k].log_metrics({PARAMETERS_METRIC: float(parameter_count(setup.sizes))}, 0)
        what = "jobs" if jobs is not None else "seeds"
        label = f"{run_name_of(members[0], setups[0], swept_keys)} · {n} {what}"
        stopper = early_stopper(cfg)
        if pruning is not None:
            for i, k in enumerate(logged):
                pruning.note_run(k, runs.ids[i])
        workers = figure_workers(cfg.tracking.get("figure_workers", "auto"), len(logged))
        with (
            # The folder outlives the worker: figures the training process drew are still in
            # the worker's queue, to be passed over, when the training process is done.
            tempfile.TemporaryDirectory(prefix="nnlab-figures-") as folder,
            # Started now, the figure worker's start-up overlaps the training.
            FigureWriter(workers if cfg.tracking.log_plots else 0) as figures,
            one_export_per_shape(),  # the members share a graph: traced once
        ):
            fit_started = time.perf_counter()
            module = population_module(cfg, members, setups)
            checkpoint = resume.checkpoint if resume is not None else None
            module = fit_and_test(
                cfg, module, PopulationLogger(loggers), label, (stopper, pruning), checkpoint
            )
            fit_seconds = time.perf_counter() - fit_started
            if cfg.trainer.progress != "none":  # ~0.25 s a member: say what the wait is
                print(
                    f"[{label}] trained; writing the {len(logged)} members' outputs",
                    file=sys.stderr,
                )
            with one_torch_thread() if figures.active else contextlib.nullcontext():
                drawn = _draw_figures(
                    figures, Path(folder), logged, members, setups, module, loggers
                )
                finished = []
                for i, k in enumerate(logged):
                    result = _finish_member(
                        client, runs, i, k, specs[k].line, members[k], setups[k], module,
                        stopper, loggers[k], drawn.get(k),
                    )  # fmt: skip
                    finished.append((i, k, result))
            figures.draw_unstarted()  # rather than wait for the worker: both cores draw
            # The figures last: the worker drew them while the members' other outputs were
            # written, so the training process does not wait for it member by member.
            for i, k, result in finished:
                if not isinstance(result, str) and k in drawn:
                    result = _log_figures(client, runs, i, specs[k].line, drawn[k][1], result)
                if isinstance(result, str):
                    failures.append(result)
                    print(f"nnlab-train: {result}", file=sys.stderr)
                    continue
                if pruning is not None:
                    pruning.note_objective(k, result.objective)
                result.experiment_id = runs.experiment_id
                results.append(result)
                print(f"  {result.run_name}: {cfg.objective} {result.objective:.5g}", flush=True)
        overhead = (time.perf_counter() - started - fit_seconds) / len(logged)
        timings = timing_tags(cfg, fit_seconds / n, overhead)  # a member's share of each
        for result in results:
            runs.close(runs.ids.index(result.run_id), "FINISHED", tags=timings)  # one write
    return [*skipped, *results], failures


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """torch on one thread while the figure worker draws on the other core: the members'
    outputs run the network on a boundary's 40,000 grid points and trace the model, large
    enough for torch to split over two threads, and a second thread sharing a core with the
    worker only waits for it: a member's grid took 10-14 ms on two threads with the other
    core busy, 3 ms on one."""
    # lazy: torch is loaded by now (the population trained); this module's importers need not
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _note_skipped_job(client, tags: dict, twin) -> None:
    """A sweep's job that is skipped tells the sweep's parent which run stands in for it, as a
    job trained alone does (nnlab.tracking.store.sweep_protocol)."""
    if JOB_NUM_TAG in tags and PARENT_TAG in tags and MEMBER_TAG not in tags:
        note_skipped_job(client, tags[PARENT_TAG], int(tags[JOB_NUM_TAG]), twin.info.run_id)


def _draw_figures(figures, folder, logged, members, setups, module, loggers) -> dict:
    """Every trained member's figures handed to the figure worker at once, so that it draws
    while the members' other outputs are written: member -> (its network on its own, the
    Future of its figures' folder); empty when figures are drawn in this process."""
    drawn = {}
    if not figures.active:
        return drawn  # each member draws its own, in log_outputs
    for k in logged:
        if k in module.failures:
            continue
        cfg, setup = members[k], setups[k]
        net = member_network(cfg, module, k, setup)  # built once: finish_member reuses it
        recipes = figure_recipes(cfg, net, setup.splits, setup.task, loggers[k].history)
        drawn[k] = (net, figures.submit(recipes, folder / str(k)))
    return drawn


def _finish_member(client, runs, i, k, line, member, setup, module, stopper, logger, drawn):
    """Log the outputs of the population's member k (named `line` in messages) and close its run
    (`runs`' i-th). Returns its RunResult, or a line saying why it has none (its run then
    closed FAILED, or KILLED when the search pruned it)."""
    name = logger.run_name
    if k in module.failures:
        error = f"TrainingDiverged: {module.failures[k]}"
        runs.close(i, "FAILED", error)
        return f"{line}: training diverged ({module.failures[k]}); its run is marked FAILED"
    if k in module.pruned:
        pruned = module.pruned[k]
        set_tags(client, runs.ids[i], pruned.tags)
        runs.close(i, "KILLED", str(pruned))
        return f"{line}: {pruned}; its run is marked KILLED (tag nnlab.pruned)"
    net, figures = drawn or (None, None)
    try:
        return finish_member(
            client, runs.ids[i], member, setup, module, k, stopper, logger, name,
            figures is not None, net,
        )  # fmt: skip
    except Exception as err:
        return _failed(runs, i, line, err)


def _log_figures(client, runs, i, line, figures, result):
    """Member `line`'s figures, drawn by the worker (`figures`: the Future of their folder),
    into its run (`runs`' i-th): `result`, or the line saying why its run is now FAILED."""
    try:
        client.log_artifacts(runs.ids[i], figures.result(), "plots")  # raises what drawing raised
    except Exception as err:
        return _failed(runs, i, line, err)
    return result


def _failed(runs, i, line, err: Exception) -> str:
    """Close the i-th run FAILED for `err` (a store's failure is raised instead: every run
    closes on it) and say so in a line."""
    if store_failure(err) is not None:
        raise err
    error = f"{type(err).__name__}: {err}"
    runs.close(i, "FAILED", error)
    return f"{line}: {error}; its run is marked FAILED"
