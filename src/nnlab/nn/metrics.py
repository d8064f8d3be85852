"""The evaluation of a whole split, whatever the backend: the loss with the torch backend's
loss functions (on raw outputs, logits), every other metric from nnlab.nn.tasks.METRICS, all in
float64."""

from __future__ import annotations

import torch

from nnlab.console import warn
from nnlab.nn.tasks import METRICS, Task
from nnlab.nn.torch_functions import LOSSES, MEMBER_LOSSES


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
    loss = float(LOSSES[loss_name](out.double(), target))
    return _with_metrics(task, stage, loss, out.double().numpy(), y.numpy())


def evaluate_members(
    task: Task, loss_name: str, out: torch.Tensor, y: torch.Tensor, stage: str
) -> list[dict[str, float]]:
    """`evaluate` for each member of a population (nnlab.training.population): `out` and `y` carry a
    leading member axis. The losses are computed in one call, the metrics member by member."""
    out, y = out.detach().double().cpu(), y.detach().cpu()
    target = y.double() if y.is_floating_point() else y
    losses = MEMBER_LOSSES[loss_name](out, target).tolist()
    out64, y64 = out.numpy(), y.numpy()
    return [_with_metrics(task, stage, loss, out64[k], y64[k]) for k, loss in enumerate(losses)]


def _with_metrics(task: Task, stage: str, loss: float, out64, y64) -> dict[str, float]:
    values = {"loss": loss}
    for name in task.metric_names(stage):
        metric = METRICS[name]
        value = metric.compute(out64, y64)
        if value is None:
            warn(f"{stage}/{name} is undefined ({metric.undefined_when}): not logged")
            continue
        values[name] = value
    return {f"{stage}/{name}": v for name, v in values.items()}
