"""`repeats=N` trained as one population: the N members stepped together, one run each.

A small network leaves the CPU idle: a 2-10-5-1 step at batch 32 is almost all dispatch
overhead. Members that differ only in their seeds share their architecture, backend and
optimizer, so their weights can be stacked (nnlab.population_nets) and trained by one loop
(nnlab.population_training): N members then cost about what one costs.

Each member keeps its own data split, initial weights and batch order, and its curves equal
its plain run's (tests/test_population.py holds them to 1e-9 in float64). Each member is its
own MLflow run, as the one-by-one path makes it (nnlab.repeats): params, dataset, config,
curves, test metrics, figures, checkpoint and model. A member that diverges fails alone.

Backends declare `population_network` (torch, torch_scratch, numpy, jax); tensorflow does not
yet, and its repeats train one by one.

`trainer.population`: auto (a population when the config allows one, else one by one with a
line saying why), true (a population, or one line saying why not and exit 2), false.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from omegaconf import DictConfig

from nnlab.seeds import effective_seeds, member_config

# Optimizers whose step acts on each element of a parameter alone (with scalars shared by
# every element: lr, betas, the step count), so that on stacked members they are N
# independent optimizers. Each is tested against plain runs (tests/test_population.py).
ELEMENTWISE_OPTIMIZERS = (
    "torch.optim.SGD",
    "torch.optim.Adam",
    "torch.optim.AdamW",
    "torch.optim.RMSprop",
    "torch.optim.Adagrad",
    "torch.optim.Adadelta",
    "torch.optim.ASGD",
)


def why_not_population(cfg: DictConfig) -> str | None:
    """Why `cfg`'s repeats cannot train as one population (one line), or None if they can."""
    from nnlab import backends
    from nnlab.study import job_is_a_trial

    backend = cfg.backend.name
    if not hasattr(backends.get(backend).module(), "population_network"):
        able = [
            n for n in backends.names() if hasattr(backends.get(n).module(), "population_network")
        ]
        return f"backend={backend}: has no population network (those that do: {', '.join(able)})"
    target = cfg.optimizer.get("_target_")
    if target not in ELEMENTWISE_OPTIMIZERS:
        names = ", ".join(t.rsplit(".", 1)[1] for t in ELEMENTWISE_OPTIMIZERS)
        return f"optimizer._target_={target}: not an elementwise optimizer known here ({names})"
    if cfg.trainer.accelerator != "cpu":  # "auto" may pick a GPU for a plain run
        return f"trainer.accelerator={cfg.trainer.accelerator}: populations train on the cpu"
    if (cfg.trainer.get("early_stopping") or {}).get("patience") is not None:
        return "trainer.early_stopping: each member would stop at its own epoch"
    if job_is_a_trial():
        # The trial follows one run: its pruning reports, its objectives, its recovery.
        return "an Optuna trial follows one run (its pruner, objectives and recovery)"
    if cfg.tracking.skip_finished:
        return "tracking.skip_finished=true: members may be skipped one by one"
    return None


def wanted(cfg: DictConfig) -> bool:
    """Whether to train `cfg`'s repeats as a population; raises ConfigError when
    `trainer.population=true` asks for one the config does not allow."""
    from nnlab.config_check import ConfigError

    mode = cfg.trainer.get("population", "auto")
    if mode is False or int(cfg.repeats) < 2:
        return False
    reason = why_not_population(cfg)
    if reason is None:
        return True
    if mode is True:
        raise ConfigError(f"trainer.population=true: {reason}; allowed: trainer.population=false")
    print(f"nnlab: repeats trained one by one: {reason}", flush=True)
    return False


def train_population(
    cfg: DictConfig,
    overrides: list[str],
    member_tags: Callable[[int, int], dict],
    swept_keys: list[str] | None,
    logged: list[int] | None = None,
) -> tuple[list, list[str]]:
    """Train the members of `cfg`'s group together. Returns (RunResult of each member that
    finished, one line per member that failed). `member_tags(k, seed)`: member k's tags.
    `logged`: the members that get a run (default all; nnlab-reproduce re-trains a whole
    population to reproduce one member of it)."""
    from nnlab.memory import parameter_count
    from nnlab.mlflow_logger import BufferedMlflowLogger
    from nnlab.run import (
        PARAMETERS_METRIC,
        describer,
        log_run_inputs,
        log_timings,
        parent_link,
        quiet_lightning,
        run_name_of,
        run_setup,
        run_tags,
    )
    from nnlab.store.names import PARENT_TAG, POPULATION_TAG
    from nnlab.store.preflight import check_store
    from nnlab.store.runs import get_client, open_runs, tracking_uri

    started = time.perf_counter()
    quiet_lightning()
    n = int(cfg.repeats)
    logged = list(range(n)) if logged is None else logged
    members = [member_config(cfg, k) for k in range(n)]
    setups = member_setups(members, run_setup)
    names = [
        run_name_of(m, s, swept_keys, f" · seed {m.seed}")
        for m, s in zip(members, setups, strict=True)
    ]
    uri = tracking_uri(cfg.tracking.uri)
    check_store(uri)
    client = get_client(uri)
    tags = [
        run_tags(
            members[k],
            setups[k],
            {
                **member_tags(k, int(members[k].seed)),
                POPULATION_TAG: f"{n} members trained together",
            },
        )
        for k in logged
    ]
    loggers = [BufferedMlflowLogger(None, None) for _ in members]  # unlogged members: memory
    parent = parent_link(client, tags[0].get(PARENT_TAG))
    closers = [
        describer(members[k], setups[k], lambda lg=loggers[k]: lg.history, parent) for k in logged
    ]
    results, failures = [], []
    with open_runs(
        client, cfg.tracking.experiment, uri, [names[k] for k in logged], tags, closers
    ) as runs:
        for i, k in enumerate(logged):
            member, setup = members[k], setups[k]
            log_run_inputs(client, runs.ids[i], member, [*overrides, f"seed={member.seed}"], setup)
            loggers[k].client, loggers[k].run_id = client, runs.ids[i]
            loggers[k].log_metrics({PARAMETERS_METRIC: float(parameter_count(setup.sizes))}, 0)
        trainer = population_trainer(cfg, members, setups)
        progress = PopulationProgress(cfg, names[0].rsplit(" · ", 1)[0], trainer)

        def record(k: int, epoch: int, metrics: dict) -> None:
            loggers[k].log_metrics({**metrics, "epoch": epoch})

        fit_started = time.perf_counter()
        try:
            trainer.fit(int(cfg.trainer.max_epochs), record, progress.epoch_done)
        finally:
            for logger in loggers:
                logger.flush()  # whatever was measured is kept, also when training fails
        fit_seconds = time.perf_counter() - fit_started
        for i, k in enumerate(logged):
            result = _finish_member(
                client, runs, i, k, members[k], setups[k], trainer, loggers[k], names[k]
            )
            if isinstance(result, str):
                failures.append(result)
                print(f"nnlab-train: {result}; its run is marked FAILED", file=sys.stderr)
                continue
            results.append(result)
            print(f"  {result.run_name}: {cfg.objective} {result.objective:.5g}", flush=True)
        overhead = (time.perf_counter() - started - fit_seconds) / len(logged)
        for result in results:  # each member's share of the fit and of the fixed cost
            log_timings(client, result.run_id, cfg, fit_seconds / n, overhead)
    return results, failures


def population_trainer(cfg: DictConfig, members: list[DictConfig], setups: list):
    """The stacked network, its optimizer and the members' data, ready to fit."""
    from hydra.utils import instantiate

    from nnlab import backends
    from nnlab.population_training import PopulationTrainer, population_data
    from nnlab.scratch import init_params

    setup = setups[0]  # the members differ in their seeds only: same sizes, task and loss
    options = {k: v for k, v in cfg.backend.items() if k != "name"}  # e.g. jit
    net = (
        backends.get(cfg.backend.name)
        .module()
        .population_network(
            [init_params(setup.sizes, cfg.model.init, effective_seeds(m).init) for m in members],
            cfg.model.activation,
            setup.dtype,
            **options,
        )
    )
    data = population_data(
        [s.splits for s in setups], [effective_seeds(m).order for m in members], setup.dtype
    )
    return PopulationTrainer(
        net,
        # foreach: one call per step for all tensors, not a Python loop (10% of a step here);
        # the same elementwise arithmetic, so members still equal their plain runs.
        instantiate(cfg.optimizer)(net.parameters(), foreach=True),
        data,
        setup.task,
        setup.loss_name,
        cfg.data.batch_size,
        l1=cfg.model.l1,
    )


def member_setups(members, run_setup) -> list:
    """Each member's RunSetup; members with the same data seed share one (and its arrays)."""
    by_data_seed: dict[int, object] = {}
    setups = []
    for member in members:
        seed = effective_seeds(member).data
        if seed not in by_data_seed:
            by_data_seed[seed] = run_setup(member)
        setups.append(by_data_seed[seed])
    return setups


def _finish_member(client, runs, i, k, member, setup, trainer, logger, name):
    """Test member k, log its outputs and close its run (`runs`' i-th). Returns its
    RunResult, or a line saying why it failed (its run then closed FAILED)."""
    import math

    import torch

    from nnlab.data import as_tensors
    from nnlab.metrics import evaluate
    from nnlab.modules import NetModule
    from nnlab.nets import TorchMLP
    from nnlab.population_nets import member_params
    from nnlab.run import RunResult, log_outputs
    from nnlab.store.preflight import store_failure

    seed = int(member.seed)
    if k in trainer.failures:
        error = f"TrainingDiverged: {trainer.failures[k]}"
        runs.close(i, "FAILED", error)
        return f"repeat {k + 1} (seed {seed}): {error}"
    try:
        member_net = TorchMLP.from_params(
            member_params(trainer.net, k), member.model.activation, setup.dtype
        )
        splits = setup.splits
        x_test, y_test = as_tensors(splits.task, splits.x_test, splits.y_test, setup.dtype)
        with torch.no_grad():
            tested = evaluate(setup.task, setup.loss_name, member_net(x_test), y_test, "test")
        logger.log_metrics({**tested, "epoch": 0})
        logger.flush()
        log_outputs(
            client,
            runs.ids[i],
            member,
            member_net,
            lambda path: torch.save({"state_dict": member_net.state_dict()}, path),
            setup,
            logger.history,
        )
    except Exception as err:
        if store_failure(err) is not None:
            raise
        error = f"{type(err).__name__}: {err}"
        runs.close(i, "FAILED", error)
        return f"repeat {k + 1} (seed {seed}): {error}"
    metrics = {key: points[-1][1] for key, points in logger.history.items()}
    module = NetModule(member_net, setup.task, setup.loss_name, None, l1=member.model.l1)
    return RunResult(
        runs.ids[i],
        name,
        metrics.get(str(member.objective), math.nan),
        metrics,
        client.tracking_uri,
        module,
        splits=setup.splits,
        task=setup.task,
    )


class PopulationProgress:
    """A line every 10% of the epochs, saying how many members are still training (or a bar
    on a terminal)."""

    def __init__(self, cfg: DictConfig, label: str, trainer):
        self.mode = cfg.trainer.progress
        if self.mode == "auto":
            self.mode = "bar" if sys.stderr.isatty() else "lines"
        self.total = int(cfg.trainer.max_epochs)
        self.label = f"{label} · {int(cfg.repeats)} seeds"
        self.trainer = trainer
        self.bar = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=self.label, unit="epoch", mininterval=0.25)

    def epoch_done(self, epoch: int) -> None:
        done = epoch + 1
        if self.bar is not None:
            self.bar.update(1)
            if done == self.total or not self.trainer.alive:
                self.bar.close()
        elif self.mode == "lines" and (done % max(1, self.total // 10) == 0 or done == self.total):
            alive = len(self.trainer.alive)
            print(
                f"[{self.label}] epoch {done}/{self.total}: {alive} of "
                f"{self.trainer.data.members} members training",
                file=sys.stderr,
                flush=True,
            )
