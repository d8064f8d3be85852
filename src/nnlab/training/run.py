"""One training run, from a checked config to a closed MLflow run, read top to bottom in
`run_training`: set up (nnlab.training.setup) -> open the run -> fit and test a population of
one (nnlab.training.fit) -> its outputs (nnlab.training.outputs) -> close.

Heavy imports (torch, Lightning, MLflow) live here, not in nnlab.cli.train, so that `--help` and
config errors answer before any of them load.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nnlab.config.choices import MAX_RUN_NAME
from nnlab.config.memory import parameter_count
from nnlab.config.seeds import group_id
from nnlab.nn.tasks import higher_is_better
from nnlab.sweeps.study import trial_of_this_job
from nnlab.tracking.dataset_inputs import log_dataset_inputs
from nnlab.tracking.describe import (
    experiment_params,
    run_description,
    run_link,
    run_name,
)
from nnlab.tracking.logger import BufferedMlflowLogger, PopulationLogger
from nnlab.tracking.store.client import (
    code_source_tags,
    get_client,
    log_params,
    set_tags,
    tracking_uri,
)
from nnlab.tracking.store.names import (
    CONFIG_HASH_TAG,
    CSV_COLUMNS_TAG,
    CSV_PATH_TAG,
    CSV_ROWS_TAG,
    CSV_SHA256_TAG,
    DESCRIPTION_TAG,
    GROUP_TAG,
    LOSS_TAG,
    PARENT_TAG,
    TASK_TAG,
)
from nnlab.tracking.store.preflight import check_store
from nnlab.tracking.store.redact import redact
from nnlab.tracking.store.runs import open_run
from nnlab.training.early_stopping import StopWhenStalled
from nnlab.training.engine import TrainingDiverged
from nnlab.training.fit import fit_and_test, population_module
from nnlab.training.outputs import finish_member, timing_tags
from nnlab.training.resume import ResumePoint
from nnlab.training.setup import (
    RunResult,
    RunSetup,
    config_hash,
    quiet_lightning,
    run_setup,
)
from nnlab.training.trial_pruning import TrialPruning


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
        twin.info.run_id,
        twin.info.run_name,
        objective,
        metrics,
        uri,
        None,
        skipped=True,
        experiment_id=twin.info.experiment_id,
    )


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


def log_run_inputs(
    client, run_id: str, cfg: DictConfig, overrides, setup: RunSetup, tags: dict | None = None
) -> None:
    """Params, dataset inputs and the config: logged when a run opens (resume reads them).
    `tags`: more of the run's tags, written with its params."""
    log_params(client, run_id, experiment_params(cfg), tags)
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
        TrialPruning({0: trial}, cfg.objective, cfg.trainer.max_epochs)
        if trial is not None
        else None
    )
    stopper = early_stopper(cfg)
    with open_run(client, cfg.tracking.experiment, uri, name, tags, resume_id, describe) as run_id:
        if pruning is not None:
            pruning.note_run(0, run_id)
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
        if module.pruned:
            raise module.pruned[0]  # TrialPruned: the run closes KILLED, tagged nnlab.pruned
        result = finish_member(client, run_id, cfg, setup, module, 0, stopper, logger, name)
        overhead = time.perf_counter() - started - fit_seconds
        set_tags(client, run_id, timing_tags(cfg, fit_seconds, overhead))
    return result


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
