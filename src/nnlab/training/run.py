"""One training run, from a checked config to a closed MLflow run:
data -> network -> Lightning fit and test -> figures, config and checkpoint as artifacts.

Heavy imports (torch, Lightning, MLflow) live here, not in nnlab.cli.train, so that `--help` and
config errors answer before any of them load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from nnlab.config.check import MAX_RUN_NAME
from nnlab.config.memory import parameter_count
from nnlab.config.seeds import effective_seeds, group_id, what_it_computes
from nnlab.data.datasets import MULTICLASS, REGRESSION
from nnlab.data.splits import (
    CSV,
    Splits,
    check_fits_precision,
    csv_table,
    dataset_label,
    make_splits,
)
from nnlab.nn.export import as_torch_mlp, exportable_model, log_model
from nnlab.nn.population_nets import TrainedMember
from nnlab.nn.tasks import TASKS, Task, higher_is_better
from nnlab.plots import run_figures as plots
from nnlab.sweeps.study import trial_of_this_job
from nnlab.tracking.dataset_inputs import log_dataset_inputs
from nnlab.tracking.describe import (
    experiment_params,
    optimizer_name,
    run_description,
    run_link,
    run_name,
)
from nnlab.tracking.logger import BufferedMlflowLogger, PopulationLogger
from nnlab.tracking.store.names import (
    BEST_EPOCH_TAG,
    CONFIG_HASH_TAG,
    CSV_COLUMNS_TAG,
    CSV_PATH_TAG,
    CSV_ROWS_TAG,
    CSV_SHA256_TAG,
    DESCRIPTION_TAG,
    FIT_SECONDS_TAG,
    GROUP_TAG,
    LOSS_TAG,
    OBJECTIVE_TAG,
    OVERHEAD_SECONDS_TAG,
    PARENT_TAG,
    STOPPED_EARLY_TAG,
    TASK_TAG,
)
from nnlab.tracking.store.preflight import check_store
from nnlab.tracking.store.redact import redact
from nnlab.tracking.store.runs import (
    code_source_tags,
    get_client,
    log_params,
    open_run,
    set_tags,
    tracking_uri,
)
from nnlab.training.checkpoints import ARTIFACT_DIR, LAST
from nnlab.training.early_stopping import StopWhenStalled
from nnlab.training.engine import TrainingDiverged
from nnlab.training.fit import fit_and_test, member_network, population_module
from nnlab.training.resume import ResumePoint
from nnlab.training.trial_pruning import TrialPruning

log = logging.getLogger("nnlab")

DTYPES = {32: torch.float32, 64: torch.float64}


def quiet_lightning() -> None:
    """Lightning's banner lines (GPU/TPU available, seed set, ...) say nothing about a CPU run
    of a small net; its warnings about DataLoader workers do not apply to in-memory batches."""
    for name in (
        "pytorch_lightning",
        "lightning.pytorch",
        "lightning.fabric",
        "lightning",
        "matplotlib",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (
        ".*does not have many workers.*",
        ".*`DataLoader`.*",
        ".*LeafSpec.*",
        ".*treespec.*",
        ".*GPU available but not used.*",
        ".*smaller than the logging interval.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)


def layer_sizes(cfg: DictConfig, splits: Splits) -> list[int]:
    """The dataset gives the ends, the config the middle."""
    return [splits.n_features, *cfg.model.hidden, splits.n_outputs]


@dataclass
class RunResult:
    run_id: str
    run_name: str
    objective: float
    metrics: dict[str, float]
    tracking_uri: str
    module: Any  # the trained member (nnlab.nn.population_nets.TrainedMember), or None
    skipped: bool = False  # True: an identical FINISHED run was found (tracking.skip_finished)
    splits: Splits | None = None  # the data it trained and was tested on
    task: Task | None = None


def config_hash(cfg: DictConfig) -> str:
    """Identifies what a run computes: the resolved config minus where it is recorded."""
    plain = what_it_computes(cfg)
    plain.pop("tracking", None)
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:16]


def finished_twin(client, cfg: DictConfig):
    """A FINISHED run of the same experiment with the same config hash, if any
    (`tracking.skip_finished`)."""
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    if exp is None:
        return None
    found = client.search_runs(
        [exp.experiment_id],
        f"tags.`{CONFIG_HASH_TAG}` = '{config_hash(cfg)}' and attributes.status = 'FINISHED'",
        max_results=1,
    )
    return found[0] if found else None


def skipped_result(twin, cfg: DictConfig, uri: str) -> RunResult:
    """What a run skipped for its FINISHED twin reports: the twin's results."""
    metrics = dict(twin.data.metrics)
    objective = metrics.get(str(cfg.objective), math.nan)
    return RunResult(
        twin.info.run_id, twin.info.run_name, objective, metrics, uri, None, skipped=True
    )


@dataclass
class RunSetup:
    """What a run trains on and with, known before any run exists."""

    splits: Splits
    task: Task
    loss_name: str
    dtype: torch.dtype
    sizes: list[int]
    table: Any  # the user's CSV (nnlab.data.csv_table), or None for a built-in dataset


def run_setup(cfg: DictConfig, splits: Splits | None = None) -> RunSetup:
    """The run's data (or `splits`, already made), task, loss and layer sizes, checked."""
    splits = splits or make_splits(cfg.data, effective_seeds(cfg).data)
    task = TASKS[splits.task]
    loss_name = task.resolve_loss(cfg.model.loss)
    check_fits_precision(splits, cfg.trainer.precision, loss_name)
    table = csv_table(cfg.data) if cfg.data.name == CSV else None
    sizes = layer_sizes(cfg, splits)
    return RunSetup(splits, task, loss_name, DTYPES[cfg.trainer.precision], sizes, table)


def run_tags(cfg: DictConfig, setup: RunSetup, extra_tags: dict | None) -> dict[str, Any]:
    """The tags a run opens with."""
    return {
        **(extra_tags or {}),
        CONFIG_HASH_TAG: config_hash(cfg),
        GROUP_TAG: group_id(cfg),
        TASK_TAG: setup.task.name,
        LOSS_TAG: setup.loss_name,
        **code_source_tags(),
        DESCRIPTION_TAG: run_description(cfg, setup.sizes, setup.task.name),
        **(csv_tags(setup.table) if setup.table is not None else {}),
    }


def describer(cfg: DictConfig, setup: RunSetup, history_of, parent):
    """The run's closing description, from its curves so far (`history_of()`) and its error."""

    def describe(error: str | None) -> dict[str, str]:
        history = history_of() or {}
        last_epoch = max((points[-1][0] for points in history.values() if points), default=None)
        final = {k: v[-1][1] for k, v in history.items() if v}
        text = run_description(cfg, setup.sizes, setup.task.name, final, error, last_epoch, parent)
        return {DESCRIPTION_TAG: text}

    return describe


def log_run_inputs(client, run_id: str, cfg: DictConfig, overrides, setup: RunSetup) -> None:
    """Params, dataset inputs and the config: logged when a run opens (resume reads them)."""
    log_params(client, run_id, experiment_params(cfg))
    log_dataset_inputs(client, run_id, cfg.data, setup.splits)
    _log_config(client, run_id, cfg, overrides, setup.table)


def run_name_of(cfg: DictConfig, setup: RunSetup, swept_keys, name_suffix: str = "") -> str:
    name = run_name(cfg, setup.sizes, swept_keys or ())
    return name[: MAX_RUN_NAME - len(name_suffix)] + name_suffix


def run_training(
    cfg: DictConfig,
    overrides: list[str] | None = None,
    extra_tags: dict[str, str] | None = None,
    resume: ResumePoint | None = None,
    swept_keys: list[str] | None = None,
    name_suffix: str = "",
) -> RunResult:
    """Train `cfg` into a new MLflow run, or continue the interrupted run of `resume`. In a
    sweep, `swept_keys` are what the sweep varies: the run's name leads with their values."""
    started = time.perf_counter()
    quiet_lightning()
    setup = run_setup(cfg)
    name = run_name_of(cfg, setup, swept_keys, name_suffix)

    uri = tracking_uri(cfg.tracking.uri)
    check_store(uri)  # a broken store fails here, before any run exists
    client = get_client(uri)
    if cfg.tracking.skip_finished and resume is None:
        twin = finished_twin(client, cfg)
        if twin is not None:
            return skipped_result(twin, cfg, uri)
    tags = run_tags(cfg, setup, extra_tags)
    resume_id = resume.run_id if resume else None
    parent = parent_link(client, (extra_tags or {}).get(PARENT_TAG))
    measured: dict[str, Any] = {}  # filled as training goes: read when the run closes
    describe = describer(cfg, setup, lambda: measured.get("history"), parent)

    trial = trial_of_this_job()  # a trial of nnlab's Optuna sweeper, or None
    pruning = (
        TrialPruning(trial, cfg.objective, cfg.trainer.max_epochs) if trial is not None else None
    )
    stopper = early_stopper(cfg)
    with open_run(client, cfg.tracking.experiment, uri, name, tags, resume_id, describe) as run_id:
        if pruning is not None:
            pruning.note_run(run_id)
        if resume is None:
            log_run_inputs(client, run_id, cfg, overrides, setup)
        logger = BufferedMlflowLogger(client, run_id, history=resume.history if resume else None)
        measured["history"] = logger.history
        # A number to search on beside the loss (multi-objective sweeps), and to sort by.
        logger.log_metrics({PARAMETERS_METRIC: float(parameter_count(setup.sizes))}, step=0)
        fit_started = time.perf_counter()
        module = fit_and_test(
            cfg,
            population_module(cfg, [cfg], [setup]),
            PopulationLogger([logger]),
            name,
            watchers=(stopper, pruning),
            checkpoint=resume.checkpoint if resume else None,
        )
        fit_seconds = time.perf_counter() - fit_started
        if module.failures:
            raise TrainingDiverged(module.failures[0])
        result = finish_member(client, run_id, cfg, setup, module, 0, stopper, logger, name)
        log_timings(client, run_id, cfg, fit_seconds, time.perf_counter() - started - fit_seconds)
    return result


def finish_member(client, run_id, cfg, setup: RunSetup, module, k: int, stopper, logger, name):
    """Member k's outputs (best epoch, figures, checkpoint, model) into its run, whichever
    population it trained in (a plain run is member 0 of one). Returns its RunResult."""
    net = member_network(cfg, module, k, setup.dtype)
    metrics = {key: points[-1][1] for key, points in logger.history.items()}
    objective = metrics.get(str(cfg.objective), math.nan)
    if stopper is not None and stopper.best_epoch[k] is not None:
        metrics.update(record_best_epoch(client, run_id, stopper, k))
        objective = stopper.best_value[k]  # what the run reports: its best epoch's
    log_outputs(client, run_id, cfg, net, setup, logger.history)
    trained = TrainedMember(net, setup.task, setup.loss_name)
    return RunResult(
        run_id,
        name,
        objective,
        metrics,
        client.tracking_uri,
        trained,
        splits=setup.splits,
        task=setup.task,
    )


def log_timings(client, run_id: str, cfg: DictConfig, fit_seconds: float, overhead: float):
    # Timings are tags, not metrics: they describe the machine, not the model, and must not
    # enter metric comparisons (reproductions compare metrics exactly).
    set_tags(
        client,
        run_id,
        {
            OBJECTIVE_TAG: cfg.objective,
            FIT_SECONDS_TAG: f"{fit_seconds:.3f}",
            OVERHEAD_SECONDS_TAG: f"{overhead:.3f}",
        },
    )


def record_best_epoch(client, run_id: str, stopper: StopWhenStalled, k: int) -> dict[str, float]:
    """Member k's best epoch's metrics as `best/<key>` (step = that epoch), and the tags saying
    which epoch was kept and why training stopped."""
    from mlflow.entities import Metric

    best = {f"best/{key}": v for key, v in stopper.best_metrics[k].items()}
    now = int(time.time() * 1000)
    epoch = stopper.best_epoch[k]
    client.log_batch(run_id, metrics=[Metric(key, v, now, epoch) for key, v in best.items()])
    set_tags(client, run_id, {BEST_EPOCH_TAG: str(epoch), STOPPED_EARLY_TAG: stopper.summary(k)})
    return best


def parent_link(client, parent_id: str | None) -> tuple[str, str] | None:
    """(name, link) of the sweep's parent run, for a child's description."""
    if not parent_id:
        return None
    parent = client.get_run(parent_id)
    return parent.info.run_name, run_link(parent.info.experiment_id, parent_id)


PARAMETERS_METRIC = "model/parameters"


def early_stopper(cfg: DictConfig) -> StopWhenStalled | None:
    """`trainer.early_stopping` on the objective, or None when off (patience: null)."""
    settings = cfg.trainer.get("early_stopping") or {}
    if settings.get("patience") is None:
        return None
    return StopWhenStalled(
        cfg.objective, settings.patience, settings.min_delta, higher_is_better(cfg.objective)
    )


def _predict_numpy(net: torch.nn.Module, dtype: torch.dtype):
    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.as_tensor(x, dtype=dtype)).double().numpy()

    return predict


def probabilities(task: Task, outputs: np.ndarray) -> np.ndarray:
    if task.name == MULTICLASS:
        e = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-outputs.ravel()))


def run_figures(cfg, net, splits: Splits, task: Task, history) -> dict[str, Any]:
    """Figures for one run's trained network, keyed by their file name under plots/."""
    net.eval()
    predict = _predict_numpy(net, DTYPES[cfg.trainer.precision])
    figures = {"curves.png": plots.curves_figure(history, task.headline, module_title(cfg))}
    if task.name == REGRESSION:
        figures["predictions.png"] = plots.regression_figure(
            splits.x_test,
            splits.y_test,
            predict(splits.x_test),
            predict,
            title=f"{dataset_label(cfg.data)}: test set",
        )
    elif splits.n_features == 2:
        figures["decision_boundary.png"] = plots.decision_boundary_figure(
            lambda x: probabilities(task, predict(x)),
            splits.x_test,
            splits.y_test,
            max(splits.n_outputs, 2),
            title=f"{module_title(cfg)}: test points",
        )
    return figures


def module_title(cfg) -> str:
    """What tells two runs of a sweep apart: data, layers, activation, optimizer and lr."""
    return (
        f"{dataset_label(cfg.data)} {list(cfg.model.hidden)} {cfg.model.activation} · "
        f"{optimizer_name(cfg)} lr={cfg.optimizer.lr:g}"
    )


def csv_tags(table) -> dict[str, str]:
    """What identifies the user's file: nnlab-reproduce refuses a file whose hash changed."""
    return {
        CSV_SHA256_TAG: table.sha256,
        CSV_PATH_TAG: str(table.path),
        CSV_ROWS_TAG: str(table.rows_in_file),
        CSV_COLUMNS_TAG: ",".join([*table.features, table.target]),
    }


def _log_config(client, run_id: str, cfg: DictConfig, overrides, table=None) -> None:
    """The resolved config and the command line's overrides, credentials masked; for a CSV
    dataset, what the file was (path, SHA-256, sizes, columns, the class of each label)."""
    with tempfile.TemporaryDirectory(prefix="nnlab-config-") as tmp:
        out = Path(tmp)
        (out / "config.yaml").write_text(redact(OmegaConf.to_yaml(cfg, resolve=True)))
        (out / "overrides.yaml").write_text(redact(OmegaConf.to_yaml(list(overrides or []))))
        if table is not None:
            (out / "data").mkdir()
            (out / "data" / "csv.json").write_text(redact(json.dumps(table.record(), indent=2)))
        client.log_artifacts(run_id, str(out))


def log_outputs(client, run_id, cfg, net, setup: RunSetup, history) -> None:
    """The trained network's figures, its weights as `checkpoints/model.ckpt` (nn.Linear
    layers' state_dict) and its MLflow Model."""
    with tempfile.TemporaryDirectory(prefix="nnlab-artifacts-") as tmp:
        out = Path(tmp)
        if cfg.tracking.log_plots:
            (out / "plots").mkdir()
            for file_name, fig in run_figures(cfg, net, setup.splits, setup.task, history).items():
                fig.savefig(out / "plots" / file_name, dpi=90)
        if cfg.tracking.log_model:
            (out / "checkpoints").mkdir()
            plain = as_torch_mlp(net, cfg.model.activation, setup.dtype)
            torch.save({"state_dict": plain.state_dict()}, out / "checkpoints" / "model.ckpt")
        client.log_artifacts(run_id, str(out))
    if cfg.tracking.log_model:
        splits = setup.splits
        model = exportable_model(net, cfg.model.activation, splits, setup.dtype)
        raw_test = splits.x_test * splits.scale + splits.mean  # the model takes raw features
        log_model(run_id, client.tracking_uri, model, raw_test)
    drop_resume_checkpoint(client, run_id)


def drop_resume_checkpoint(client, run_id: str) -> None:
    """A finished run needs no resume point: its periodic checkpoints/last.ckpt would only sit
    beside the final model as a stale copy."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(client.get_run(run_id).info.artifact_uri)
    if any(f.path == f"{ARTIFACT_DIR}/{LAST}" for f in repo.list_artifacts(ARTIFACT_DIR)):
        repo.delete_artifacts(f"{ARTIFACT_DIR}/{LAST}")
