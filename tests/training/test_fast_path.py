"""nnlab's training loop (one Lightning step per epoch, validation inside the epoch, metrics
sent straight to the logger) must log exactly what a plain PyTorch loop computes."""

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from sklearn.metrics import accuracy_score, r2_score

from nnlab.data.splits import TensorBatches, make_splits
from nnlab.nn.nets import TorchMLP
from nnlab.training.run import run_training
from tests.conftest import compose_config

EPOCHS = 6


def plain_loop(cfg, loss_fn, make_optimizer, task):
    """The textbook loop: same initial weights, same batch order, nothing else shared."""
    s = make_splits(cfg.data, cfg.seed)
    sizes = [s.n_features, *cfg.model.hidden, s.n_outputs]
    net = TorchMLP(sizes, cfg.model.activation, cfg.model.init, cfg.seed, dtype=torch.float64)
    optimizer = make_optimizer(net.parameters())
    as_target = (
        (lambda y: torch.tensor(y))
        if task == "multiclass"
        else (lambda y: torch.tensor(y, dtype=torch.float64).reshape(-1, 1))
    )
    x, y = torch.tensor(s.x_train), as_target(s.y_train)
    xv, yv = torch.tensor(s.x_val), as_target(s.y_val)
    batches = TensorBatches(x, y, cfg.data.batch_size, True, cfg.seed)
    curves = {"train/loss": [], "val/loss": [], "val/metric": []}
    for _ in range(EPOCHS):
        total, count = 0.0, 0
        for bx, by in batches:
            optimizer.zero_grad()
            loss = loss_fn(net(bx), by)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(bx)
            count += len(bx)
        curves["train/loss"].append(total / count)
        with torch.no_grad():
            out = net(xv)
        curves["val/loss"].append(loss_fn(out, yv).item())
        if task == "binary":
            curves["val/metric"].append(accuracy_score(s.y_val, out.numpy().ravel() > 0))
        elif task == "multiclass":
            curves["val/metric"].append(accuracy_score(s.y_val, out.numpy().argmax(1)))
        else:
            curves["val/metric"].append(r2_score(s.y_val, out.numpy().ravel()))
    return curves


@pytest.mark.parametrize(
    "data, task, metric, loss_fn",
    [
        ("moons", "binary", "val/acc", torch.nn.functional.binary_cross_entropy_with_logits),
        ("spiral", "multiclass", "val/acc", torch.nn.functional.cross_entropy),
        ("sine", "regression", "val/r2", torch.nn.functional.mse_loss),
    ],
)
@pytest.mark.parametrize("batch", ["32", "null"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_logged_curves_equal_a_plain_pytorch_loop(
    store, data, task, metric, loss_fn, batch, optimizer
):
    cfg = compose_config(
        f"data={data}",
        f"data.batch_size={batch}",
        f"optimizer={optimizer}",
        "trainer.precision=64",
        f"trainer.max_epochs={EPOCHS}",
        "tracking.log_plots=false",
        "tracking.log_model=false",
    )
    result = run_training(cfg)
    client = MlflowClient(store)
    logged = {
        k: [m.value for m in client.get_metric_history(result.run_id, k)]
        for k in ("train/loss", "val/loss", metric)
    }
    from hydra.utils import instantiate

    expected = plain_loop(cfg, loss_fn, instantiate(cfg.optimizer), task)
    np.testing.assert_allclose(logged["train/loss"], expected["train/loss"], rtol=1e-12)
    np.testing.assert_allclose(logged["val/loss"], expected["val/loss"], rtol=1e-12)
    # Metrics are float64 from counts and sums: equal to scikit-learn's to the last bits.
    np.testing.assert_allclose(logged[metric], expected["val/metric"], rtol=1e-12)
