"""The torch side of the tasks: loss functions on raw outputs (logits), and the evaluation of
a whole split: the loss here, every other metric from nnlab.tasks.METRICS in float64."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nnlab.console import warn
from nnlab.scratch import HUBER_DELTA
from nnlab.tasks import METRICS, Task

# Each mirrors the NumPy loss of the same name in nnlab.scratch.LOSSES.
LOSS_FUNCTIONS = {
    "mse": F.mse_loss,
    "half_mse": lambda out, y: 0.5 * F.mse_loss(out, y),
    "l1": F.l1_loss,
    "huber": lambda out, y: F.huber_loss(out, y, delta=HUBER_DELTA),
    "bce": F.binary_cross_entropy_with_logits,
    "cross_entropy": F.cross_entropy,
}


def evaluate(
    task: Task, loss_name: str, out: torch.Tensor, y: torch.Tensor, stage: str
) -> dict[str, float]:
    """The loss and the metrics `task` reports for `stage`, keyed '<stage>/<name>': every
    epoch's validation gets the headline metric only (it runs every epoch, so it stays
    cheap), the test gets them all. A metric undefined on this split is left out, with a
    warning: a logged 0.0 would read as a result."""
    out, y = out.detach(), y.detach()
    # The loss in float64 too: the outputs are exact in float64, and so is its mean then.
    target = y.double() if y.is_floating_point() else y  # class indices stay integers
    values = {"loss": float(LOSS_FUNCTIONS[loss_name](out.double(), target))}
    out64, y64 = out.double().numpy(), y.numpy()
    for name in task.metric_names(stage):
        metric = METRICS[name]
        value = metric.compute(out64, y64)
        if value is None:
            warn(f"{stage}/{name} is undefined ({metric.undefined_when}): not logged")
            continue
        values[name] = value
    return {f"{stage}/{name}": v for name, v in values.items()}
