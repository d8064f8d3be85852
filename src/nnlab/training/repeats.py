"""`repeats=N`: one configuration trained with N seeds, one MLflow run per seed.

Member k is the plain run with `seed + k` (nnlab.config.seeds.member_config), trained one after the
other in this process. Every member carries the group tag (the config without its seeds).
- In a sweep, the members are children of the sweep's parent run: MLflow's UI nests one level
  only, so a job's group is a set of siblings with the same job number and group tag.
- Outside a sweep, a small parent run holds the group: its members nest under it, and it gets
  the group's summary (mean, 95% interval, min, max) as metrics and description.
A member that fails (diverges, or any error) fails alone, as a sweep's job does; the group's
result is the mean over the members that finished, and it says how many did.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities import Metric
from omegaconf import DictConfig

from nnlab.config.seeds import effective_seeds, group_id, member_config, varied_sources
from nnlab.data.splits import make_splits
from nnlab.nn.tasks import TRAIN_LOSS, VAL_LOSS
from nnlab.plots.group_figures import group_curves_figure
from nnlab.stats import summarize
from nnlab.tracking.describe import group_description, run_name
from nnlab.tracking.store.client import experiment_id, get_client, set_tags, tracking_uri
from nnlab.tracking.store.names import (
    DESCRIPTION_TAG,
    GROUP_TAG,
    HOST_TAG,
    MEMBER_TAG,
    OBJECTIVE_TAG,
    OVERRIDES_TAG,
    PARENT_TAG,
    PID_TAG,
    REPEATS_TAG,
    SEED_SUFFIX,
    SOURCE_NAME_TAG,
    SOURCE_TYPE_TAG,
)
from nnlab.tracking.store.preflight import store_failure
from nnlab.tracking.store.queries import metric_history
from nnlab.tracking.store.runs import close_run
from nnlab.training.population import train_population, wanted
from nnlab.training.run import run_training
from nnlab.training.setup import layer_sizes


@dataclass
class GroupResult:
    """What a group of repeats produced: its members, and the summary of their objectives."""

    group: str
    objective_key: str
    members: list = field(default_factory=list)  # RunResult of each member that finished
    failures: list[str] = field(default_factory=list)  # one line per member that failed
    parent_run_id: str | None = None  # the group's own parent (outside a sweep)

    @property
    def objective(self) -> float:
        values = [m.objective for m in self.members if math.isfinite(m.objective)]
        return sum(values) / len(values) if values else math.nan

    def summary_line(self) -> str:
        n = len(self.members) + len(self.failures)
        s = summarize([m.objective for m in self.members])
        if s is None:
            return f"group {self.group}: every one of {n} repeats failed"
        failed = f", {len(self.failures)} failed" if self.failures else ""
        return (
            f"group {self.group}: {self.objective_key} mean {s.mean:.5g} "
            f"95% CI {s.interval_text(5)} (t, n={s.n}{failed}), min {s.min:.5g}, max {s.max:.5g}"
        )


def run_group(
    cfg: DictConfig,
    overrides: list[str],
    tags: dict[str, str],
    swept_keys: list[str] | None = None,
    resume=None,
) -> GroupResult:
    """Train the `cfg.repeats` members of `cfg`'s group, each into its own run: together as a
    population (nnlab.training.population) when `trainer.population` allows, else one after another.
    `resume` (nnlab.training.resume.PopulationResume): continue an interrupted population."""

    together = resume is not None or wanted(cfg)  # trainer.population=true may be refused
    result = GroupResult(group_id(cfg), str(cfg.objective))
    n = int(cfg.repeats)
    in_sweep = PARENT_TAG in tags
    varied = "+".join(varied_sources(cfg)) or "nothing"
    if resume is not None and resume.parent_run_id is not None:
        result.parent_run_id = _reopen_group_parent(cfg, resume.parent_run_id)
        tags = {**tags, PARENT_TAG: result.parent_run_id}
    elif resume is None and not in_sweep:
        result.parent_run_id = _open_group_parent(cfg, result.group, n, varied)
        tags = {**tags, PARENT_TAG: result.parent_run_id}

    def member_tags(k: int, seed: int) -> dict[str, str]:
        return repeat_tags(tags, k, seed)

    try:
        if together:
            print(
                f"nnlab: {n} repeats as one population (seeds {cfg.seed}..{cfg.seed + n - 1}, "
                f"varies {varied})",
                flush=True,
            )
            result.members, result.failures = train_population(
                cfg, overrides, member_tags, swept_keys, resume=resume
            )
        else:
            _train_one_by_one(cfg, overrides, member_tags, swept_keys, varied, result)
    except BaseException as err:
        if result.parent_run_id:
            # Ctrl-C and SIGTERM end the group KILLED, as they end its members.
            status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
            _close_group_parent(cfg, result, f"{type(err).__name__}: {err}", status)
        raise
    if result.parent_run_id:
        _close_group_parent(cfg, result, None)
    return result


def _train_one_by_one(cfg, overrides, member_tags, swept_keys, varied, result) -> None:

    n = int(cfg.repeats)
    for k in range(n):
        member = member_config(cfg, k)
        print(f"nnlab: repeat {k + 1}/{n} (seed {member.seed}, varies {varied})", flush=True)
        try:
            result.members.append(
                done := run_training(
                    member,
                    [*overrides, f"seed={member.seed}"],
                    member_tags(k, member.seed),
                    swept_keys=swept_keys,
                    name_suffix=f"{SEED_SUFFIX}{member.seed}",
                )
            )
            print(f"  {done.run_name}: {cfg.objective} {done.objective:.5g}", flush=True)
        except Exception as err:  # this member fails alone; KeyboardInterrupt ends all
            if _is_store_failure(err):
                raise
            line = f"repeat {k + 1} (seed {member.seed}): {type(err).__name__}: {err}"
            result.failures.append(line)
            print(f"nnlab-train: {line}; its run is marked FAILED", file=sys.stderr)


def repeat_tags(tags: dict[str, str], k: int, seed: int) -> dict[str, str]:
    """Member k's tags in a group whose runs carry `tags`: its index, and its overrides with
    its seed."""
    return {**tags, MEMBER_TAG: str(k), OVERRIDES_TAG: _with_seed(tags, seed)}


def _with_seed(tags: dict[str, str], seed: int) -> str:
    """The member's overrides: the job's, plus its seed (tables and figures show it)."""
    return "\n".join(filter(None, [tags.get(OVERRIDES_TAG, ""), f"seed={seed}"]))


def _is_store_failure(err: Exception) -> bool:

    return store_failure(err) is not None


def _open_group_parent(cfg: DictConfig, group: str, n: int, varied: str) -> str:

    uri = tracking_uri(cfg.tracking.uri)
    client = get_client(uri)
    name = f"{_base_name(cfg)} · {n} seeds"
    run = client.create_run(
        experiment_id(client, cfg.tracking.experiment, uri),
        run_name=name,
        tags={
            GROUP_TAG: group,
            REPEATS_TAG: str(n),
            OBJECTIVE_TAG: str(cfg.objective),
            SOURCE_NAME_TAG: "nnlab-train",
            SOURCE_TYPE_TAG: "LOCAL",
            **process_tags(),
            DESCRIPTION_TAG: f"*Running {n} repeats (seeds {cfg.seed}..{cfg.seed + n - 1}, "
            f"varying {varied})…*",
        },
    )
    return run.info.run_id


def _reopen_group_parent(cfg: DictConfig, run_id: str) -> str:
    """The group's parent, RUNNING again in this process while its population resumes."""

    client = get_client(tracking_uri(cfg.tracking.uri))
    client.update_run(run_id, status="RUNNING")
    set_tags(client, run_id, process_tags())
    return run_id


def process_tags() -> dict[str, str]:
    """Which process holds a run: `nnlab-report --stale` lists it if that process died."""

    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _base_name(cfg: DictConfig) -> str:
    """The group's name: what its members are called, without the seed."""

    splits = make_splits(cfg.data, effective_seeds(cfg).data)
    return run_name(cfg, layer_sizes(cfg, splits))


def _close_group_parent(
    cfg: DictConfig, result: GroupResult, error: str | None, status: str = "FAILED"
) -> None:
    """Close the group's parent FINISHED (some member finished, no error) or `status`."""

    client = get_client(tracking_uri(cfg.tracking.uri))
    run_id = result.parent_run_id
    values = {m.run_id: m.objective for m in result.members}
    status = "FINISHED" if result.members and error is None else status
    if error is None and not result.members:
        error = "every repeat failed"
    summary = summarize(list(values.values()))
    if summary is not None:
        now = int(time.time() * 1000)
        metrics = {"group/mean": summary.mean, "group/min": summary.min, "group/max": summary.max}
        if summary.ci_low is not None:
            metrics.update({"group/ci_low": summary.ci_low, "group/ci_high": summary.ci_high})
        metrics["group/n"] = float(summary.n)
        # The members' final test metrics, averaged: comparable with a plain run's columns.
        tests = sorted({k for m in result.members for k in m.metrics if k.startswith("test/")})
        for key in tests:
            mean = summarize([m.metrics.get(key) for m in result.members])
            if mean is not None:
                metrics[f"group/{key}"] = mean.mean
        client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
        if cfg.tracking.log_plots:
            _log_group_curves(client, run_id, cfg, result)
    description = group_description(result, client.get_run(run_id).info.experiment_id)
    close_run(client, run_id, status, error, {DESCRIPTION_TAG: description})


def _log_group_curves(client, run_id: str, cfg: DictConfig, result: GroupResult) -> None:
    """`plots/group_curves.png` on the group's parent: the members' mean curves with a band
    from the lowest to the highest seed, so the group reads as one result at a glance."""

    task = result.members[0].task
    keys = [TRAIN_LOSS, VAL_LOSS] + ([f"val/{task.headline}"] if task is not None else [])
    histories = [{k: metric_history(client, m.run_id, k) for k in keys} for m in result.members]
    label = f"seeds {cfg.seed}..{cfg.seed + int(cfg.repeats) - 1}"  # as the group's description
    fig = group_curves_figure(
        {label: histories},
        keys,
        failed={label: len(result.failures)},
        title=client.get_run(run_id).info.run_name,
    )
    with tempfile.TemporaryDirectory(prefix="nnlab-group-") as tmp:
        fig.savefig(Path(tmp) / "group_curves.png", dpi=90)
        client.log_artifact(run_id, str(Path(tmp) / "group_curves.png"), "plots")
