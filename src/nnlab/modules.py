"""LightningModules. One design serves all three tasks: the task decides the loss, the
predictions and the metrics (nnlab.tasks / nnlab.metrics); the module only trains.

Why the loop looks the way it does. A small net's optimizer step costs ~0.2 ms on a CPU, and
Lightning's machinery around one step (hooks, closures, batch transfer, result collection)
costs ~0.4 ms more; one `self.log` call alone costs ~0.7 ms (it walks its result collection
to move it to the device). So nnlab keeps Lightning for what it does once per epoch (the
epoch loop, callbacks, checkpoints, test, the logger) and does the per-batch work itself:

- one Lightning training step is one *epoch*: the step receives the epoch's mini-batches and
  runs zero_grad / backward / optimizer.step over them (manual optimization), in the same
  order and with the same updates as a step per batch;
- validation runs at the end of each training epoch, one forward pass over the split, not
  through Lightning's evaluation loop;
- epoch metrics go straight to the logger (`record`), not through `self.log`; they are also
  kept in `epoch_metrics` for the progress display.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytorch_lightning as pl
import torch

from nnlab.backends.torch import LOSSES
from nnlab.data import EVAL_CHUNK
from nnlab.metrics import evaluate
from nnlab.tasks import TRAIN_LOSS, Task


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite, or an optimizer step overflowed."""


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
        self.automatic_optimization = False
        self.net = net
        self.task = task
        self.loss_name = loss_name
        self.loss_fn = LOSSES[loss_name]
        self.make_optimizer = make_optimizer
        self.l1 = l1
        self.epoch_metrics: dict[str, float] = {}
        self._train_losses: list[tuple[torch.Tensor | float, int]] = []  # (batch mean, size)
        self._test_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def configure_optimizers(self):
        return self.make_optimizer(self.parameters())

    # -- training ---------------------------------------------------------------------------
    def training_step(self, epoch_batches: Iterable, batch_idx: int) -> None:
        """One epoch: every mini-batch, one optimizer step each."""
        optimizer = self.optimizers().optimizer  # the torch optimizer itself
        self._train_losses.clear()
        # The shuffle order is a function of (seed, epoch), so a resumed run sees the batches
        # the uninterrupted run would have seen.
        epoch_batches.epoch = self.current_epoch
        for batch in epoch_batches:
            self.train_on_batch(batch, optimizer)

    def train_on_batch(self, batch, optimizer: torch.optim.Optimizer) -> None:
        x, y = batch
        optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.net(x), y)
        self._count_train_loss(loss.detach(), len(x))
        # Only a run with an L1 term pays for building it, every step.
        (loss + self.penalty() if self.l1 else loss).backward()
        self.step(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        try:
            optimizer.step()
        except RuntimeError as err:
            # An lr so large that the step itself overflows the precision (Adam's lr / (1 -
            # beta1) past float32's 3.4e38): the same outcome as a NaN loss, one step early.
            if "overflow" not in str(err):
                raise
            raise TrainingDiverged(
                f"the optimizer step overflowed at epoch {self.current_epoch} ({err})"
            ) from err

    def penalty(self) -> torch.Tensor:
        return self.l1 * sum(w.abs().sum() for w in self.net.weight_matrices())

    def _count_train_loss(self, batch_mean, n: int) -> None:
        # Kept as a list and summed once per epoch: cheaper than tensor arithmetic per step.
        self._train_losses.append((batch_mean, n))

    def on_train_epoch_end(self) -> None:
        # train/loss is the data loss averaged over the epoch's samples (penalties excluded),
        # so that it is comparable with val/loss.
        total = sum(float(loss) * n for loss, n in self._train_losses)
        mean = total / max(sum(n for _, n in self._train_losses), 1)
        self.record({TRAIN_LOSS: mean})
        if mean != mean or mean in (float("inf"), float("-inf")):
            # A NaN/inf loss never recovers: stop now rather than log garbage as a result.
            raise TrainingDiverged(f"train/loss is {mean} at epoch {self.current_epoch}")
        val = getattr(self.trainer.datamodule, "val", None)
        if val is not None:
            self.record(self.evaluate_split(*val, "val"))

    # -- evaluation -------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate_split(self, x: torch.Tensor, y: torch.Tensor, stage: str) -> dict[str, float]:
        # No eval()/train() switch: nnlab's MLPs have no dropout or batch norm, so both modes
        # compute the same thing, and switching walks every submodule each epoch.
        out = torch.cat([self.net(x[i : i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)])
        return evaluate(self.task, self.loss_name, out, y, stage)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self._test_outputs.append((self.net(x), y))

    def on_test_epoch_end(self) -> None:
        out = torch.cat([o for o, _ in self._test_outputs])
        y = torch.cat([t for _, t in self._test_outputs])
        self._test_outputs.clear()
        # Test metrics are one evaluation, not a curve: logged at step 0, where MLflow's charts
        # draw a metric with a single step as a bar with its value (at step = the last epoch
        # they were a lone dot on an axis of epochs).
        self.record(evaluate(self.task, self.loss_name, out, y, "test"), step=0)

    def record(self, values: dict[str, float], step: int | None = None) -> None:
        """Epoch-level metrics: to the logger (MLflow step = epoch) and to `epoch_metrics`."""
        self.epoch_metrics.update(values)
        if self.logger is not None:
            self.logger.log_metrics(
                {**values, "epoch": self.current_epoch if step is None else step}
            )


class EngineNetModule(NetModule):
    """A network another framework differentiates (`nnlab.nets.EngineMLP`: the numpy, jax and
    tensorflow backends) trained through the same module.

    The engine computes the loss and every gradient; the configured torch optimizer applies
    them. Data, metrics, logging, checkpoints and plots are the ones every backend uses.
    """

    def train_on_batch(self, batch, optimizer: torch.optim.Optimizer) -> None:
        x, y = batch
        optimizer.zero_grad(set_to_none=True)
        loss = self.net.compute_gradients(x, y, self.loss_name, self.l1)
        self.step(optimizer)
        self._count_train_loss(loss, len(x))
