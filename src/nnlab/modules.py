"""LightningModules. One design serves all three tasks: the task decides the loss, the
predictions and the metrics (nnlab.tasks / nnlab.metrics); the module only trains.

Per-epoch bookkeeping is kept deliberately cheap: the training loss is summed as a tensor
(no .item() sync, no per-step self.log), and validation/test outputs are concatenated and
evaluated once at the end of the epoch.
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch

from nnlab.metrics import LOSS_FUNCTIONS, evaluate
from nnlab.tasks import TRAIN_LOSS, Task


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class NetModule(pl.LightningModule):
    """Trains any torch network (`nnlab.nets`) with the configured optimizer."""

    def __init__(
        self,
        net: torch.nn.Module,
        task: Task,
        loss_name: str,
        make_optimizer: Callable,
        l1: float = 0.0,
    ):
        super().__init__()
        self.net = net
        self.task = task
        self.loss_name = loss_name
        self.loss_fn = LOSS_FUNCTIONS[loss_name]
        self.make_optimizer = make_optimizer
        self.l1 = l1
        self._train_loss_sum = torch.zeros((), dtype=torch.float64)
        self._train_count = 0
        self._eval_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    # -- training ---------------------------------------------------------------------------
    def data_loss(self, batch) -> torch.Tensor:
        """The batch's mean loss, summed into this epoch's train/loss."""
        x, y = batch
        loss = self.loss_fn(self.net(x), y)
        self._count_train_loss(loss.detach(), len(x))
        return loss

    def _count_train_loss(self, batch_mean, n: int) -> None:
        self._train_loss_sum += batch_mean * n
        self._train_count += n

    def penalty(self) -> torch.Tensor | float:
        if not self.l1:
            return 0.0
        return self.l1 * sum(w.abs().sum() for w in self.net.weight_matrices())

    def training_step(self, batch, batch_idx):
        return self.data_loss(batch) + self.penalty()

    def on_train_epoch_start(self) -> None:
        self._train_loss_sum.zero_()
        self._train_count = 0

    def on_train_epoch_end(self) -> None:
        # train/loss is the data loss averaged over the epoch's samples (penalties excluded),
        # so that it is comparable with val/loss.
        mean = self._train_loss_sum / max(self._train_count, 1)
        self.log(TRAIN_LOSS, mean, prog_bar=True)
        if not torch.isfinite(mean):
            # A NaN/inf loss never recovers; stop now rather than log garbage as a result.
            # Lightning would drop this epoch's metrics on the exception: record the bad value
            # directly, so the curve in the store shows where it diverged.
            if self.logger is not None:
                self.logger.log_metrics({TRAIN_LOSS: float(mean), "epoch": self.current_epoch})
            raise TrainingDiverged(f"train/loss is {float(mean)} at epoch {self.current_epoch}")

    def configure_optimizers(self):
        return self.make_optimizer(self.parameters())

    # -- evaluation -------------------------------------------------------------------------
    def _collect(self, batch) -> None:
        x, y = batch
        self._eval_outputs.append((self.net(x), y))

    def _evaluate(self, stage: str) -> None:
        out = torch.cat([o for o, _ in self._eval_outputs])
        y = torch.cat([t for _, t in self._eval_outputs])
        self._eval_outputs.clear()
        values = evaluate(self.task, self.loss_name, out, y, stage)
        self.log_dict(values, prog_bar=stage == "val")

    def validation_step(self, batch, batch_idx):
        self._collect(batch)

    def on_validation_epoch_end(self) -> None:
        self._evaluate("val")

    def test_step(self, batch, batch_idx):
        self._collect(batch)

    def on_test_epoch_end(self) -> None:
        self._evaluate("test")


class NumpyNetModule(NetModule):
    """The NumPy MLP (`nnlab.nets.NumpyBackedMLP`) trained through the same module.

    NumPy computes the loss and every gradient; Lightning's manual optimization then lets the
    configured torch optimizer apply them. Data, metrics, logging, checkpoints and plots are
    the ones every backend uses.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        x, y = batch
        optimizer = self.optimizers()
        optimizer.zero_grad()
        loss = self.net.compute_gradients(x, y, self.loss_name, self.l1)
        optimizer.step()
        self._count_train_loss(loss, len(x))
