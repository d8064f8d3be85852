"""Checkpoints during training, so that an interrupted run can be resumed.

Every `trainer.checkpoint_every_s` seconds the runs' buffered metrics are flushed and *then*
one checkpoint of the whole population (nnlab.training.engine) is written to each member's run as
`checkpoints/last.ckpt`, so that any member's run id resumes it. In that order the store never
holds a checkpoint newer than its metrics: after a crash, a resume recomputes the epochs after
the checkpoint and drops the ones the store already has (nnlab.tracking.logger), so the curve
has no repeated and no missing epoch.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from pytorch_lightning.callbacks import Checkpoint

ARTIFACT_DIR = "checkpoints"
LAST = "last.ckpt"


class UnsafeCheckpoint(ValueError):
    """A checkpoint that cannot be loaded as plain tensors and containers."""


def check_weights_only(path: Path) -> None:
    """Refuse a checkpoint unless `torch.load(weights_only=True)` reads it: a pickle that
    would import or call anything (code execution) is rejected before Lightning sees it."""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UnsafeCheckpoint(
            f"{path.name} is not a plain-weights checkpoint and was refused "
            f"(torch.load weights_only=True: {type(err).__name__})"
        ) from err


class PeriodicCheckpoint(Checkpoint):
    def __init__(self, every_s: float):
        self.every_s = every_s
        self._last = time.monotonic()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # Time-based only: a finished run stores its final model as checkpoints/model.ckpt, so
        # a save after the last epoch would only repeat it.
        if time.monotonic() - self._last < self.every_s:
            return
        logger = trainer.logger
        if logger is None or logger.client is None or not logger.run_ids:
            return
        logger.flush()  # metrics first: see the module docstring
        with tempfile.TemporaryDirectory(prefix="nnlab-ckpt-") as tmp:
            path = Path(tmp) / LAST
            trainer.save_checkpoint(path)
            for run_id in logger.run_ids:
                logger.client.log_artifact(run_id, str(path), ARTIFACT_DIR)
        self._last = time.monotonic()
