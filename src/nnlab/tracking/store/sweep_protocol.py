"""How a sweep's jobs find their parent run, and how the parent finds its jobs.

The protocol, in one place:
- The launching process opens the parent run (nnlab.sweeps.callback) and publishes two environment
  variables: PARENT_ENV (the parent's run id) and SWEPT_KEYS_ENV (the keys the sweep varies).
  Every job reads them: local jobs and joblib workers inherit them; launchers whose workers
  do not inherit the driver's environment must carry `sweep_environment()` themselves.
- A job's run carries `mlflow.parentRunId` (MLflow's UI nests it under the parent) and its
  job number.
- A job skipped by `tracking.skip_finished` tags the parent with SKIPPED_JOB_TAG<job num> =
  the earlier run that stands in for it.
- The parent lists its jobs by searching for runs whose parent tag names it.

MLflow is imported only inside the functions that talk to the store, so the entry point can
import this before the config is checked.
"""

from __future__ import annotations

import os

from nnlab.tracking.store.names import JOB_NUM_TAG, OVERRIDES_TAG, PARENT_TAG, SKIPPED_JOB_TAG

PARENT_ENV = "NNLAB_SWEEP_PARENT_RUN_ID"
SWEPT_KEYS_ENV = "NNLAB_SWEPT_KEYS"  # comma-separated: every job leads its name with them


def publish(parent_run_id: str, swept_keys: list[str]) -> None:
    """Tell every job started from now on which parent it belongs to."""
    os.environ[PARENT_ENV] = parent_run_id
    os.environ[SWEPT_KEYS_ENV] = ",".join(swept_keys)


def withdraw() -> None:
    os.environ.pop(PARENT_ENV, None)
    os.environ.pop(SWEPT_KEYS_ENV, None)


def sweep_environment() -> dict[str, str]:
    """The variables a job needs, for launchers that must pass them explicitly."""
    return {k: os.environ[k] for k in (PARENT_ENV, SWEPT_KEYS_ENV) if k in os.environ}


def parent_run_id() -> str | None:
    """The parent of the sweep this job belongs to (None outside a sweep)."""
    return os.environ.get(PARENT_ENV) or None


def swept_keys_of_this_sweep() -> list[str]:
    """What the sweep's parent says it varies."""
    return [k for k in os.environ.get(SWEPT_KEYS_ENV, "").split(",") if k]


def job_tags(overrides: list[str], job_num: int | None) -> dict[str, str]:
    """Tags that place a run: its overrides, and in a sweep (job_num given) its parent and
    job number."""
    tags = {OVERRIDES_TAG: "\n".join(overrides)}
    parent = parent_run_id()
    if job_num is not None and parent:
        tags.update({PARENT_TAG: parent, JOB_NUM_TAG: str(job_num)})
    return tags


def note_skipped_job(client, parent_id: str, job_num: int, stand_in_run_id: str) -> None:
    """Tell the parent which earlier run stands in for a job that was skipped."""
    client.set_tag(parent_id, f"{SKIPPED_JOB_TAG}{job_num}", stand_in_run_id)


def sweep_children(client, parent) -> list:
    """The parent's job runs, in job order."""
    # lazy: the queries load only to read a sweep's jobs
    from nnlab.tracking.store.queries import search_all

    children = search_all(
        client,
        [parent.info.experiment_id],
        f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'",
        order_by=["attributes.start_time ASC"],
    )
    return sorted(children, key=lambda r: int(r.data.tags.get(JOB_NUM_TAG, 0)))


def skipped_job_stand_ins(client, parent) -> list:
    """The earlier runs that stand in for this sweep's skipped jobs, in job order."""
    found = [
        (int(key.removeprefix(SKIPPED_JOB_TAG)), run_id)
        for key, run_id in parent.data.tags.items()
        if key.startswith(SKIPPED_JOB_TAG)
    ]
    return [client.get_run(run_id) for _, run_id in sorted(found)]
