"""The training engine: N >= 1 networks of one shape (the members) trained as one
LightningModule by one Lightning Trainer. A plain run is a population of one; `repeats=N` is
N members, each with its own seeds.

The members' weights are stacked (nnlab.nn.population_nets): one batched forward computes every
member, nothing mixes members, so the gradient of the *sum* of their losses with respect to
member k's weights is member k's own gradient, and an elementwise optimizer stepping the
stacked tensors is N independent optimizers. Whatever happens to one member happens to it
alone: it diverges, stops early or is pruned while the others go on.

Why the loop looks the way it does. A small net's optimizer step costs ~0.2 ms on a CPU, and
Lightning's machinery around one step (hooks, closures, batch transfer, result collection)
costs ~0.4 ms more; one `self.log` call alone costs ~0.7 ms. So Lightning does what happens
once per epoch (the epoch loop, callbacks, checkpoints, test, the logger) and the module does
the per-batch work itself:
- one Lightning training step is one or more *epochs* (`epochs_per_step`): every mini-batch
  of each, one optimizer step each (manual optimization), the same updates as a step per
  batch. An epoch of one or a few batches is cheaper than Lightning's own work per epoch
  (~0.3 ms, and about as much again from running between the module's steps), so short
  epochs are taken several to a Lightning step; what acts on each epoch (progress, early
  stopping, pruning: an `EpochWatcher`) is called by the module after every one of them;
- the validation split is evaluated at the end of each epoch, one forward pass;
- epoch metrics go to `record(member, epoch, metrics)` (nnlab.member_logger), not through
  `self.log`, and are kept in `epoch_metrics[member]` for callbacks and the progress display.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytorch_lightning as pl
import torch

from nnlab.data.splits import EVAL_CHUNK
from nnlab.nn.metrics import evaluate_members
from nnlab.nn.nets import EngineMLP
from nnlab.nn.tasks import TRAIN_LOSS, Task
from nnlab.nn.torch_functions import MEMBER_LOSSES
from nnlab.training.population_data import PopulationData


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite, or an optimizer step overflowed."""


# How many optimizer steps one Lightning step takes at least, by taking several short epochs
# (BENCHMARKS.md section 10): a full-batch epoch is one step, so 16 of them are one Lightning
# step; an epoch of 16 batches or more is a Lightning step of its own.
STEPS_PER_LIGHTNING_STEP = 16


def epochs_per_step(rows: int, batch_size: int | None) -> int:
    """The epochs one Lightning step trains, for `rows` training rows in batches of
    `batch_size` (None: the full batch). A function of the config alone, so that a resumed run
    trains as the run it continues did."""
    batches = -(-rows // (batch_size or rows))
    return max(1, STEPS_PER_LIGHTNING_STEP // batches)


class EpochWatcher(pl.Callback):
    """A callback that acts on each epoch's metrics, called by the module after every epoch it
    trains (several may make one Lightning epoch; see `epochs_per_step`)."""

    def on_epoch_trained(self, module: PopulationModule, epoch: int) -> None:
        """Epoch `epoch` (0-based) is trained and its metrics are in module.epoch_metrics."""


class PopulationModule(pl.LightningModule):
    """Trains a stacked network of N >= 1 members with the configured optimizer."""

    def __init__(
        self,
        net: torch.nn.Module,
        task: Task,
        loss_name: str,
        make_optimizer: Callable,
        data: PopulationData,
        batch_size: int | None,
        l1: float | torch.Tensor = 0.0,
        record: Callable[[int, int, dict], None] | None = None,
        gradient_masks=None,
        watch=None,
        max_epochs: int = 1,
    ):
        super().__init__()
        self.automatic_optimization = False
        self.net = net
        # l1: one weight, or one per member (members,) when a sweep's jobs differ in it
        self.task, self.loss_name, self.l1 = task, loss_name, l1
        self.has_l1 = bool(torch.any(l1 != 0)) if isinstance(l1, torch.Tensor) else bool(l1)
        # Members of different widths: 0 where a stacked parameter is padding (nnlab.nn.padding)
        self.gradient_masks = (
            None
            if gradient_masks is None
            else [
                torch.as_tensor(m, dtype=p.dtype)
                for m, p in zip(gradient_masks, net.parameters(), strict=True)
            ]
        )
        self.make_optimizer = make_optimizer
        self.watch = watch  # tracking.watch: nnlab.training.layer_watch.LayerWatch, or None
        self.data = data
        self.batch_size = batch_size or data.rows
        self.shuffle = self.batch_size < data.rows
        self.max_epochs = max_epochs
        self.epochs_per_step = epochs_per_step(data.rows, batch_size)
        # The next epoch to train (Lightning counts its own epochs, which may be several of
        # these); a checkpoint holds it.
        self.next_epoch = 0
        self.watchers: list[EpochWatcher] = []  # the trainer's, found when the fit starts
        self.record_fn = record or (lambda k, epoch, metrics: None)
        self.engine = isinstance(net, EngineMLP)  # another framework computes the gradients
        self.alive = list(range(data.members))  # members still training
        self.failures: dict[int, str] = {}  # member -> why it diverged
        # member -> why the search pruned it (nnlab.training.trial_pruning: a RunStopped)
        self.pruned: dict[int, Exception] = {}
        self.epoch_metrics: list[dict[str, float]] = [{} for _ in range(data.members)]
        self.test_metrics: list[dict[str, float]] = [{} for _ in range(data.members)]

    @property
    def members(self) -> int:
        return self.data.members

    def __setattr__(self, name: str, value) -> None:
        # Lightning names the hook it is in on the module ~30 times an epoch; nn.Module's
        # __setattr__ (which looks for parameters and submodules) made that ~0.1 ms of a
        # 1.4 ms full-batch epoch. A string is never a parameter: store it directly.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def on_fit_start(self) -> None:
        if self.data.x_train.device != self.device:
            self.data = self.data.to(self.device)
        self.watchers = [c for c in self.trainer.callbacks if isinstance(c, EpochWatcher)]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["nnlab_next_epoch"] = self.next_epoch

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A checkpoint written before epochs were taken several to a step has none: its
        # Lightning epochs were epochs, and the epochs Lightning's loop had processed (where
        # Lightning itself resumes) are where it stopped.
        processed = checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"]
        self.next_epoch = checkpoint.get("nnlab_next_epoch", processed)

    def configure_optimizers(self):
        return self.make_optimizer(self.net.parameters())

    def record(self, k: int, epoch: int, metrics: dict[str, float]) -> None:
        self.epoch_metrics[k].update(metrics)
        self.record_fn(k, epoch, metrics)

    def stop_member(self, k: int) -> None:
        """Member k trains no more (it stopped early, diverged or was pruned); the others go
        on."""
        if k in self.alive:
            self.alive.remove(k)
        if not self.alive:
            self.trainer.should_stop = True

    # -- training ---------------------------------------------------------------------------
    def training_step(self, _item, batch_idx: int) -> None:
        """The next `epochs_per_step` epochs, each followed by the epoch watchers."""
        optimizer = self.optimizers().optimizer  # the torch optimizer itself
        first = self.next_epoch
        for epoch in range(first, min(first + self.epochs_per_step, self.max_epochs)):
            self.train_epoch(epoch, optimizer)
            self.next_epoch = epoch + 1
            for watcher in self.watchers:
                watcher.on_epoch_trained(self, epoch)
            if not self.alive:
                return
        if self.next_epoch >= self.max_epochs:
            self.trainer.should_stop = True  # the Trainer itself runs without an epoch limit

    def train_epoch(self, epoch: int, optimizer) -> None:
        """One epoch for every member still training: every mini-batch, one step each."""
        x, y = self.data.epoch(epoch, self.shuffle)
        batch_losses = []  # (each member's batch mean, rows): summed once per epoch, cheaper
        watching = self.watch is not None and self.watch.watching(epoch)
        last_start = (self.data.rows - 1) // self.batch_size * self.batch_size
        try:
            for start in range(0, self.data.rows, self.batch_size):
                # Contiguous: a slice of (members, rows, ...) is a strided view for N > 1 but not
                # for N = 1, and the matmul kernel picked by the layout rounds differently.
                xb = x[:, start : start + self.batch_size].contiguous()
                yb = y[:, start : start + self.batch_size].contiguous()
                watched_step = watching and start == last_start
                batch_losses.append(
                    (self.train_on_batch(xb, yb, optimizer, watched_step), xb.shape[1])
                )
        except RuntimeError as err:
            # An lr so large that the step itself overflows the precision (Adam's lr / (1 -
            # beta1) past float32's 3.4e38): a NaN loss one step early. One optimizer steps
            # every member, so every member stops.
            if "overflow" not in str(err):
                raise
            for k in list(self.alive):
                self.failures[k] = f"the optimizer step overflowed at epoch {epoch} ({err})"
                self.stop_member(k)
            return
        totals = sum(losses.double() * rows for losses, rows in batch_losses)
        # train/loss is the data loss averaged over the epoch's samples (penalties excluded),
        # so that it is comparable with val/loss.
        means = (totals / self.data.rows).tolist()
        trained = list(self.alive)
        for k in trained:
            if not math.isfinite(means[k]):  # a NaN/inf loss never recovers: stop it now
                self.failures[k] = f"train/loss is {means[k]} at epoch {epoch}"
                self.stop_member(k)
        validated = self.validate() if self.alive else {}
        watched = self.watch.epoch_metrics(self.net, self.data.x_val) if watching else {}
        for k in trained:  # one record per member and epoch: its train loss and validation
            self.record(
                k, epoch, {TRAIN_LOSS: means[k], **validated.get(k, {}), **watched.get(k, {})}
            )

    def train_on_batch(
        self, xb: torch.Tensor, yb: torch.Tensor, optimizer, watched: bool = False
    ) -> torch.Tensor:
        """One optimizer step for every member; returns each member's batch loss. `watched`:
        tracking.watch sees this step (the watched epoch's last)."""
        optimizer.zero_grad(set_to_none=True)
        if self.engine:
            losses = torch.from_numpy(self.net.compute_gradients(xb, yb, self.loss_name, self.l1))
        else:
            losses = MEMBER_LOSSES[self.loss_name](self.net(xb), yb)
            # The members still training, summed: a stopped member's NaN stays out of the
            # others' step (its own weights are what it kept, nnlab.training.early_stopping).
            every = len(self.alive) == self.members
            total = (losses if every else losses[self.alive]).sum()
            if self.has_l1:  # only a run with an L1 term pays for building it, every step
                total = total + self.l1_penalty()
            total.backward()
            losses = losses.detach()
        if self.gradient_masks is not None:  # padded entries get no step: they stay zero
            for p, mask in zip(self.net.parameters(), self.gradient_masks, strict=True):
                if p.grad is not None:
                    p.grad.mul_(mask)
        if watched:  # tracking.watch: the epoch's last step, seen from both sides
            self.watch.before_step(self.net)
            optimizer.step()
            self.watch.after_step(self.net)
        else:
            optimizer.step()
        return losses

    def l1_penalty(self) -> torch.Tensor:
        weights = self.net.weight_matrices()
        if isinstance(self.l1, torch.Tensor):  # member k's weights times member k's l1
            return sum((self.l1.view(-1, 1, 1) * w.abs()).sum() for w in weights)
        return self.l1 * sum(w.abs().sum() for w in weights)

    # -- evaluation -------------------------------------------------------------------------
    @torch.no_grad()
    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Every member's outputs for x (members, rows, features), in chunks of rows.
        No eval()/train() switch: nnlab's MLPs have no dropout or batch norm."""
        rows = x.shape[1]
        return torch.cat(
            [self.net(x[:, i : i + EVAL_CHUNK]) for i in range(0, rows, EVAL_CHUNK)], dim=1
        )

    def validate(self) -> dict[int, dict[str, float]]:
        """The validation metrics of each member still training."""
        out = self.outputs(self.data.x_val)
        every = evaluate_members(self.task, self.loss_name, out, self.data.y_val, "val")
        return {k: every[k] for k in self.alive}

    def test_step(self, _item, batch_idx: int) -> None:
        out = self.outputs(self.data.x_test)
        every = evaluate_members(self.task, self.loss_name, out, self.data.y_test, "test")
        for k in range(self.members):
            if k in self.failures or k in self.pruned:
                continue  # a diverged or pruned member has no result to test
            self.test_metrics[k] = every[k]
            # Test metrics are one evaluation, not a curve: logged at step 0, where MLflow's
            # charts draw a metric with a single step as a bar with its value.
            self.record_fn(k, 0, every[k])
