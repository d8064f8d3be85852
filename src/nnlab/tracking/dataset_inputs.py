"""A run's training, validation and test data as MLflow dataset inputs: what the UI's Dataset
column and a run page's *Datasets* show, each with a digest of its content.

The digest is nnlab's own: SHA-256 over the split's exact float64 features and targets (the
standardised arrays the network saw), so two runs share a digest exactly when they trained on
identical numbers. `nnlab-reproduce` compares the digests of the original and the re-run.
"""

from __future__ import annotations

import hashlib

import mlflow.data
import numpy as np
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.entities import DatasetInput, InputTag

from nnlab.data.splits import Splits, dataset_label
from nnlab.tracking.store.client import code_source_tags

CONTEXT_TAG = "mlflow.data.context"  # MLflow's name for a dataset's role in a run
SPLITS = (("train", "training"), ("val", "validation"), ("test", "test"))
DIGEST_LENGTH = 16


def content_digest(x: np.ndarray, y: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in (x, y):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:DIGEST_LENGTH]


def split_digests(splits: Splits) -> dict[str, str]:
    """{'training': digest, 'validation': ..., 'test': ...}"""
    return {
        context: content_digest(getattr(splits, f"x_{part}"), getattr(splits, f"y_{part}"))
        for part, context in SPLITS
    }


def log_dataset_inputs(client, run_id: str, data_cfg, splits: Splits) -> None:

    name = dataset_label(data_cfg)
    # The source the run itself names. Left to MLflow, each dataset would resolve it from the
    # process's context: GitPython spawning `git` several times per run for the same commit.
    source = CodeDatasetSource(code_source_tags())
    inputs = []
    for part, context in SPLITS:
        x, y = getattr(splits, f"x_{part}"), getattr(splits, f"y_{part}")
        dataset = mlflow.data.from_numpy(
            x, source=source, targets=y, name=f"{name}-{part}", digest=content_digest(x, y)
        )
        inputs.append(DatasetInput(dataset._to_mlflow_entity(), [InputTag(CONTEXT_TAG, context)]))
    try:
        client.log_inputs(run_id, datasets=inputs)
    except Exception as err:
        # Two jobs of a parallel sweep logging the same data at once: the store inserts each
        # dataset once per experiment, and the second insert loses the race. The dataset now
        # exists, so the retry only links it to this run.
        if "unique constraint" not in str(err).lower():
            raise
        client.log_inputs(run_id, datasets=inputs)


def logged_digests(run) -> dict[str, str]:
    """{context: digest} of a run's logged dataset inputs."""
    found = {}
    for item in run.inputs.dataset_inputs if run.inputs else []:
        tags = {t.key: t.value for t in item.tags}
        if CONTEXT_TAG in tags:
            found[tags[CONTEXT_TAG]] = item.dataset.digest
    return found
