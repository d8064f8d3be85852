"""A job that a scheduler preempts and requeues continues its own MLflow run.

SLURM (through submitit, `hydra/launcher=nnlab_slurm`) keeps a job's id when it requeues it:
SLURM_JOB_ID, or SLURM_ARRAY_JOB_ID_SLURM_ARRAY_TASK_ID for a job array's task, which is what
hydra-submitit-launcher submits; submitit's local executor keeps SUBMITIT_LOCAL_JOB_ID. Each
job's run records that id (tag mlflow.nnlab.scheduler_job). When a job starts, nnlab looks in
its sweep for a run of the same scheduler job that did not finish: if there is one, the job
is a requeued one and continues that run from its last checkpoint, exactly as `resume=<run
id>` would. A preempted run is closed KILLED as its process exits (submitit's requeue exits
the process), so resuming it is allowed; one preempted before its first checkpoint (every
trainer.checkpoint_every_s) has nothing to continue from, and the job starts a new run.

Light: environment variables only, and the store (lazily).
"""

from __future__ import annotations

import os

from nnlab.tracking.store.names import PARENT_TAG, SCHEDULER_JOB_TAG


def scheduler_job_id() -> str | None:
    """The scheduler's id for this job, kept across requeues; None outside a scheduler."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"slurm:{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    if env.get("SLURM_JOB_ID"):
        return f"slurm:{env['SLURM_JOB_ID']}"
    if env.get("SUBMITIT_LOCAL_JOB_ID"):
        return f"local:{env['SUBMITIT_LOCAL_JOB_ID']}"
    return None


def scheduler_tags() -> dict[str, str]:
    job = scheduler_job_id()
    return {SCHEDULER_JOB_TAG: job} if job else {}


def unfinished_run_of_this_job(client, experiment: str, parent_id: str | None) -> str | None:
    """The run an earlier attempt of this scheduler job left unfinished, if any."""
    job = scheduler_job_id()
    exp = client.get_experiment_by_name(experiment) if job else None
    if exp is None:
        return None
    query = f"tags.`{SCHEDULER_JOB_TAG}` = '{job}' and attributes.status != 'FINISHED'"
    if parent_id:
        query += f" and tags.`{PARENT_TAG}` = '{parent_id}'"
    found = client.search_runs(
        [exp.experiment_id], query, max_results=1, order_by=["attributes.start_time DESC"]
    )
    return found[0].info.run_id if found else None
