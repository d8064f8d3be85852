"""`nnlab-train resume=<run_id>`: continue an interrupted run from its last checkpoint, into
the same MLflow run, with the config it was started with."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nnlab.config.check import check_config
from nnlab.config.rules import ConfigError
from nnlab.sweeps.scheduler import unfinished_run_of_this_job
from nnlab.tracking.store import sweep_protocol
from nnlab.tracking.store.client import get_client, tracking_uri
from nnlab.tracking.store.names import (
    HOST_TAG,
    MEMBER_TAG,
    PARENT_TAG,
    PID_TAG,
    POPULATION_RUNS_TAG,
    REPEATS_TAG,
)
from nnlab.tracking.store.queries import metric_history
from nnlab.tracking.store.runs import process_alive
from nnlab.training.checkpoints import ARTIFACT_DIR, LAST, check_weights_only


class ResumeError(ConfigError):
    """The run cannot be resumed; the message is the one line the user sees."""


@dataclass
class ResumePoint:
    run_id: str
    config: DictConfig
    overrides: list[str]
    checkpoint: Path
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


def load_resume_point(client, run_id: str, cli_overrides: list[str], workdir: Path) -> ResumePoint:
    try:
        run = client.get_run(run_id)
    except Exception as err:
        raise ResumeError(f"resume={run_id}: no such run in the store") from err
    status = run.info.status
    if status == "FINISHED":
        raise ResumeError(f"resume={run_id}: the run already FINISHED; nothing to resume")
    tags = run.data.tags
    pid = tags.get(PID_TAG, "")
    if (
        status == "RUNNING"
        and tags.get(HOST_TAG) == socket.gethostname()
        and pid.isdigit()
        and process_alive(int(pid))
    ):
        raise ResumeError(f"resume={run_id}: the run is still RUNNING in process {pid}")
    try:
        stored = OmegaConf.load(client.download_artifacts(run_id, "config.yaml", str(workdir)))
        overrides = list(
            OmegaConf.load(client.download_artifacts(run_id, "overrides.yaml", str(workdir)))
        )
    except Exception as err:
        raise ResumeError(
            f"resume={run_id}: the run has no stored config.yaml (not started by nnlab-train)"
        ) from err
    extra = [o for o in cli_overrides if not o.startswith(("resume=", "+resume="))]
    for item in extra:
        key = item.split("=", 1)[0]
        if "=" not in item or "." not in key or key.startswith(("+", "~")):
            raise ResumeError(
                f"{item}: with resume= only key.path=value overrides are allowed "
                "(e.g. trainer.max_epochs=500)"
            )
    config = OmegaConf.merge(stored, OmegaConf.from_dotlist(extra))
    try:
        checkpoint = Path(client.download_artifacts(run_id, f"{ARTIFACT_DIR}/{LAST}", str(workdir)))
    except Exception as err:
        raise ResumeError(
            f"resume={run_id}: the run has no checkpoint yet (one is written "
            "every trainer.checkpoint_every_s seconds)"
        ) from err
    try:
        check_weights_only(checkpoint)
    except ValueError as err:
        raise ResumeError(f"resume={run_id}: {err}") from err
    history = {key: metric_history(client, run_id, key) for key in run.data.metrics}
    return ResumePoint(run_id, config, [*overrides, *extra], checkpoint, history)


@dataclass
class PopulationResume:
    """An interrupted population (nnlab.training.population), to continue as a whole: every member's
    run is reopened and the one checkpoint (each member's run holds a copy) restores all."""

    config: DictConfig  # the group's: repeats = the group's size, seed = member 0's
    overrides: list[str]
    group: list[int]  # the population's members, as indices in the group
    run_ids: list[str]  # the same members' runs
    histories: list[dict[str, list[tuple[int, float]]]]
    checkpoint: Path
    parent_run_id: str | None  # the group's own parent run (repeats outside a sweep)


def population_of(client, point: ResumePoint) -> PopulationResume | None:
    """The population run `point` belongs to, or None for a plain run."""
    tags = client.get_run(point.run_id).data.tags
    run_ids = [r for r in tags.get(POPULATION_RUNS_TAG, "").split(",") if r]
    if len(run_ids) < 2:
        return None
    runs = [client.get_run(r) for r in run_ids]
    finished = [r.info.run_id for r in runs if r.info.status == "FINISHED"]
    if finished:
        raise ResumeError(
            f"resume={point.run_id}: its population's run {finished[0]} already FINISHED; "
            "a population resumes as a whole"
        )
    group = [int(r.data.tags.get(MEMBER_TAG, i)) for i, r in enumerate(runs)]
    me = run_ids.index(point.run_id)
    config = OmegaConf.merge(
        point.config,
        {"seed": int(point.config.seed) - group[me], "repeats": max(group) + 1},
    )
    histories = [
        {key: metric_history(client, r.info.run_id, key) for key in r.data.metrics} for r in runs
    ]
    parent_id = tags.get(PARENT_TAG)
    own_parent = parent_id and REPEATS_TAG in client.get_run(parent_id).data.tags
    overrides = [o for o in point.overrides if not o.startswith("seed=")]
    return PopulationResume(
        config,
        overrides,
        group,
        run_ids,
        histories,
        point.checkpoint,
        parent_id if own_parent else None,
    )


# -- what nnlab-train continues: a run named by resume=, or a requeued job's own ----------
def continue_requeued_job(cfg: DictConfig, workdir: Path):
    """A job requeued by its scheduler continues the run its earlier attempt left unfinished
    (nnlab.sweeps.scheduler); None when there is none, or it has no checkpoint to continue from."""

    client = get_client(tracking_uri(cfg.tracking.uri))
    parent = sweep_protocol.parent_run_id()
    run_id = unfinished_run_of_this_job(client, cfg.tracking.experiment, parent)
    if run_id is None:
        return None
    try:
        point = load_resume_point(client, run_id, [], workdir)
    except ResumeError as err:
        print(f"nnlab: requeued job: a new run ({err})", flush=True)
        return None
    check_config(point.config)
    print(f"nnlab: requeued job: continuing run {run_id} from its last checkpoint", flush=True)
    return point


def prepare_resume(cfg: DictConfig, overrides: list[str], workdir: Path):
    """The stored config and last checkpoint of run `cfg.resume`, checked like any config."""

    point = load_resume_point(
        get_client(tracking_uri(cfg.tracking.uri)), cfg.resume, overrides, workdir
    )
    check_config(point.config)
    print(f"nnlab: resuming run {point.run_id} from its last checkpoint", flush=True)
    return point


def resumed_population(cfg: DictConfig, point):
    """The population that run `point` belongs to (PopulationResume), or None."""

    population = population_of(get_client(tracking_uri(cfg.tracking.uri)), point)
    if population is not None:
        print(f"nnlab: resuming its population of {len(population.run_ids)} members", flush=True)
    return population
