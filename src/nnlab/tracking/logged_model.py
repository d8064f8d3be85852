"""A trained network's MLflow Model logged as its run's (the UI's Models column), with what
`mlflow.models.Model.log` records for a run. nnlab.nn.export makes the model's folder."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric, Run
from mlflow.models import Model
from mlflow.tracking import MlflowClient
from mlflow.tracking.context import registry as context_registry

from nnlab.nn.export import MODEL_NAME, StandardisedNet, save_model
from nnlab.tracking.store.client import code_source_tags, log_metrics, remember_artifact_folder


def log_model(
    client: MlflowClient,
    run: Run,
    model: StandardisedNet,
    x_example: np.ndarray,
    schema: dict,
    step_zero: list[Metric],
) -> str:
    """Log `model` as `run`'s MLflow Model (nnlab.nn.served_model); returns its URI.

    What `mlflow.models.Model.log` records for a run, from what nnlab already holds: the
    model in the run's experiment, with the run's params and its context tags, listed among
    the run's outputs at step 0, and the run's step-0 metrics (`step_zero`, timestamps as
    written) linked to it. Model.log reads those back (the run, then every metric's whole
    history: ~0.2 s a member here, most of a population member's outputs) and takes the store
    and experiment from MLflow's globals. tests/conftest.py
    (assert_model_records_what_mlflow_would) holds the two equal."""
    run_id = run.info.run_id
    logged = client.create_logged_model(
        run.info.experiment_id,
        name=MODEL_NAME,
        source_run_id=run_id,
        params=dict(run.data.params),
        tags=_context_tags(),
    )
    remember_artifact_folder(client, logged.model_id, logged.artifact_location)
    try:
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        linked = [
            Metric(m.key, m.value, m.timestamp, 0, model_id=logged.model_id) for m in step_zero
        ]
        log_metrics(client, run_id, linked)
        mlmodel = Model(
            artifact_path=logged.artifact_location,
            model_uuid=logged.model_id,
            run_id=run_id,
            model_id=logged.model_id,
        )
        with tempfile.TemporaryDirectory(prefix="nnlab-model-") as tmp:
            saved = Path(tmp) / MODEL_NAME
            save_model(saved, Path(tmp), mlmodel, model, x_example, schema)
            client.log_model_artifacts(logged.model_id, str(saved))
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return f"models:/{logged.model_id}"


@functools.cache  # the same for every run of this process
def _context_tags() -> dict[str, str]:
    """The tags MLflow gives a model it creates (who logged it), with the source its run
    names: the entry point and the commit."""
    source = {k: v for k, v in code_source_tags().items() if v is not None}
    return {**context_registry.resolve_tags(), **source}
