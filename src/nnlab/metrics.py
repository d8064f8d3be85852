"""The torch side of the tasks: loss functions on raw outputs (logits) and evaluation metrics
(torchmetrics), computed once per epoch on the whole validation or test split."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional import (
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_auroc,
    multiclass_accuracy,
    multiclass_f1_score,
)

from nnlab.console import warn
from nnlab.datasets import BINARY, REGRESSION
from nnlab.scratch import HUBER_DELTA
from nnlab.tasks import Task

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
    cheap), the test gets them all."""
    out, y = out.detach(), y.detach()
    wanted = set(task.metric_names(stage))
    values = {"loss": LOSS_FUNCTIONS[loss_name](out, y)}
    # validate_args=False: nnlab builds these tensors itself, so torchmetrics' input checks
    # (a good part of its cost on small splits) can never fire.
    # A metric that is undefined on this split (AUROC with one class present, R^2 of a
    # constant target) is left out, with a warning: a logged 0.0 would read as a result.
    if task.name == REGRESSION:
        calculators = {
            "mse": lambda: mean_squared_error(out, y),
            "mae": lambda: mean_absolute_error(out, y),
            "r2": lambda: r2_score(out, y),
        }
        if len(y) < 2 or bool((y == y[0]).all()):
            undefined = {"r2": f"the {stage} targets are all equal (or fewer than 2)"}
        else:
            undefined = {}
    elif task.name == BINARY:
        prob, target = torch.sigmoid(out).ravel(), y.ravel().long()
        calculators = {
            "acc": lambda: binary_accuracy(prob, target, validate_args=False),
            "auroc": lambda: binary_auroc(prob, target, validate_args=False),
        }
        present = int(target.max()) - int(target.min()) + 1 if len(target) else 0
        undefined = {"auroc": f"the {stage} split holds one class only"} if present < 2 else {}
    else:
        k = out.shape[1]
        calculators = {
            "acc": lambda: multiclass_accuracy(
                out, y, num_classes=k, average="micro", validate_args=False
            ),
            "f1_macro": lambda: multiclass_f1_score(
                out, y, num_classes=k, average="macro", validate_args=False
            ),
        }
        undefined = {}
    for name, why in undefined.items():
        if name in wanted:
            warn(f"{stage}/{name} is undefined ({why}): not logged")
            wanted.discard(name)
    values.update({name: calc() for name, calc in calculators.items() if name in wanted})
    return {f"{stage}/{name}": float(v) for name, v in values.items()}
