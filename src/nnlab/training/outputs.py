"""What a trained member leaves in its run: its best epoch, figures, weights
(`checkpoints/model.ckpt`), MLflow Model and timings. Written by one piece of code for every
member, whichever population it trained in (a plain run is member 0 of one)."""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.entities import Metric
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from omegaconf import DictConfig

from nnlab.data.datasets import MULTICLASS, REGRESSION
from nnlab.data.splits import (
    Splits,
    dataset_label,
)
from nnlab.nn.export import as_torch_mlp, exportable_model, model_schema
from nnlab.nn.population_nets import TrainedMember
from nnlab.nn.tasks import Task
from nnlab.plots import run_figures as plots
from nnlab.plots.background import write_figures
from nnlab.plots.recipes import draw
from nnlab.tracking.describe import (
    optimizer_name,
)
from nnlab.tracking.logged_model import log_model
from nnlab.tracking.store.client import set_tags
from nnlab.tracking.store.names import (
    BEST_EPOCH_TAG,
    FIT_SECONDS_TAG,
    OBJECTIVE_TAG,
    OVERHEAD_SECONDS_TAG,
    STOPPED_EARLY_TAG,
)
from nnlab.training.checkpoints import ARTIFACT_DIR, LAST
from nnlab.training.early_stopping import StopWhenStalled
from nnlab.training.fit import member_network
from nnlab.training.setup import DTYPES, RunResult, RunSetup


def finish_member(
    client, run_id, cfg, setup: RunSetup, module, k: int, stopper, logger, name,
    figures_elsewhere: bool = False, net=None,
):  # fmt: skip
    """Member k's outputs (best epoch, figures, checkpoint, model) into its run, whichever
    population it trained in (a plain run is member 0 of one). Returns its RunResult.
    `figures_elsewhere`: its figures are drawn in a worker and logged by the caller
    (nnlab.training.population); `net`: member k on its own, when already built."""
    net = net if net is not None else member_network(cfg, module, k, setup)
    metrics = {key: points[-1][1] for key, points in logger.history.items()}
    objective = metrics.get(str(cfg.objective), math.nan)
    best: list[Metric] = []
    if stopper is not None and stopper.best_epoch[k] is not None:
        best = record_best_epoch(client, run_id, stopper, k)
        metrics.update({m.key: m.value for m in best})
        objective = stopper.best_value[k]  # what the run reports: its best epoch's
    step_zero = step_zero_metrics(client, run_id, logger, best) if cfg.tracking.log_model else []
    log_outputs(client, run_id, cfg, net, setup, logger.history, step_zero, figures_elsewhere)
    trained = TrainedMember(net, setup.task, setup.loss_name)
    return RunResult(
        run_id,
        name,
        objective,
        metrics,
        client.tracking_uri,
        trained,
        splits=setup.splits,
        task=setup.task,
    )


def timing_tags(cfg: DictConfig, fit_seconds: float, overhead: float) -> dict[str, str]:
    """A run's training time and the rest of its time, with the objective they were spent on.
    Timings are tags, not metrics: they describe the machine, not the model, and must not
    enter metric comparisons (reproductions compare metrics exactly)."""
    return {
        OBJECTIVE_TAG: cfg.objective,
        FIT_SECONDS_TAG: f"{fit_seconds:.3f}",
        OVERHEAD_SECONDS_TAG: f"{overhead:.3f}",
    }


def record_best_epoch(client, run_id: str, stopper: StopWhenStalled, k: int) -> list[Metric]:
    """Member k's best epoch's metrics as `best/<key>` (step = that epoch), and the tags saying
    which epoch was kept and why training stopped. Returns the metrics as written."""
    now = int(time.time() * 1000)
    epoch = stopper.best_epoch[k]
    best = [Metric(f"best/{key}", v, now, epoch) for key, v in stopper.best_metrics[k].items()]
    tags = {BEST_EPOCH_TAG: str(epoch), STOPPED_EARLY_TAG: stopper.summary(k)}
    set_tags(client, run_id, tags, metrics=best)  # one write: a population has many members
    return best


def _predict_numpy(net: torch.nn.Module, dtype: torch.dtype):
    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.as_tensor(x, dtype=dtype)).double().numpy()

    return predict


def probabilities(task: Task, outputs: np.ndarray) -> np.ndarray:
    if task.name == MULTICLASS:
        e = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-outputs.ravel()))


def figure_recipes(cfg, net, splits: Splits, task: Task, history) -> dict[str, tuple[str, dict]]:
    """What to draw for one run's trained network, keyed by file name under plots/: each a
    (plots function, its arguments) with the network's outputs computed here, so that the
    figure can be drawn in another process (nnlab.plots.background)."""
    net.eval()
    predict = _predict_numpy(net, DTYPES[cfg.trainer.precision])
    recipes = {
        "curves.png": (
            "curves_figure",
            {"history": dict(history), "metric": task.headline, "title": module_title(cfg)},
        )
    }
    if cfg.tracking.get("watch", False):  # tracking.watch: inside the network, per layer
        recipes["layers.png"] = (
            "layers_figure",
            {"history": dict(history), "title": f"{module_title(cfg)}: inside, per layer"},
        )
    if task.name == REGRESSION:
        line = plots.regression_line(splits.x_test) if splits.n_features == 1 else None
        recipes["predictions.png"] = (
            "regression_figure",
            {
                "x": splits.x_test,
                "y_true": splits.y_test,
                "y_pred": predict(splits.x_test),
                # The model as a line over a single input's range; otherwise points only.
                "predict": plots.Tabulated(line, predict(line)) if line is not None else None,
                "title": f"{dataset_label(cfg.data)}: test set",
            },
        )
    elif splits.n_features == 2:
        _, _, grid = plots.boundary_grid(splits.x_test)
        recipes["decision_boundary.png"] = (
            "decision_boundary_figure",
            {
                "predict": plots.Tabulated(grid, probabilities(task, predict(grid))),
                "x": splits.x_test,
                "y": splits.y_test,
                "n_classes": max(splits.n_outputs, 2),
                "title": f"{module_title(cfg)}: test points",
            },
        )
    return recipes


def run_figures(cfg, net, splits: Splits, task: Task, history) -> dict[str, Any]:
    """Figures for one run's trained network, keyed by their file name under plots/."""
    return {name: draw(r) for name, r in figure_recipes(cfg, net, splits, task, history).items()}


def module_title(cfg) -> str:
    """What tells two runs of a sweep apart: data, layers, activation, optimizer and lr."""
    return (
        f"{dataset_label(cfg.data)} {list(cfg.model.hidden)} {cfg.model.activation} · "
        f"{optimizer_name(cfg)} lr={cfg.optimizer.lr:g}"
    )


def log_outputs(
    client, run_id, cfg, net, setup: RunSetup, history, step_zero, figures_elsewhere=False
) -> None:
    """The trained network's figures (unless `figures_elsewhere`: drawn in a worker,
    nnlab.plots.background, and logged by the caller), its weights as `checkpoints/model.ckpt`
    (nn.Linear layers' state_dict) and its MLflow Model, which links the run's step-0 metrics
    `step_zero` (nnlab.tracking.logged_model.log_model)."""
    with tempfile.TemporaryDirectory(prefix="nnlab-artifacts-") as tmp:
        out = Path(tmp)
        if cfg.tracking.log_plots and not figures_elsewhere:
            (out / "plots").mkdir()
            recipes = figure_recipes(cfg, net, setup.splits, setup.task, history)
            write_figures(recipes, out / "plots")
        if cfg.tracking.log_model:
            (out / "checkpoints").mkdir()
            plain = as_torch_mlp(net, cfg.model.activation, setup.dtype)
            torch.save({"state_dict": plain.state_dict()}, out / "checkpoints" / "model.ckpt")
        client.log_artifacts(run_id, str(out))
    run = client.get_run(run_id)  # its experiment, params and artifact folder, read once
    if cfg.tracking.log_model:
        splits = setup.splits
        model = exportable_model(net, cfg.model.activation, splits, setup.dtype)
        raw_test = splits.x_test * splits.scale + splits.mean  # the model takes raw features
        log_model(client, run, model, raw_test, model_schema(setup, setup.dtype), step_zero)
    drop_resume_checkpoint(run.info.artifact_uri, client.tracking_uri)


def step_zero_metrics(client, run_id: str, logger, best: list[Metric]) -> list[Metric]:
    """The run's step-0 metrics as written, which its MLflow Model links: what `logger` wrote
    at epoch 0, the best epoch's when that was epoch 0, and the step-0 points this process did
    not write (a resumed run's, from the process that began it: read back, as MLflow would)."""
    written = [*logger.step_zero, *(m for m in best if m.step == 0)]
    missing = {k for k, points in logger.history.items() if points and points[0][0] == 0}
    missing -= {m.key for m in written}
    stored = [m for key in sorted(missing) for m in client.get_metric_history(run_id, key)]
    return [*written, *(m for m in stored if m.step == 0)]


def drop_resume_checkpoint(artifact_uri: str, tracking_uri: str) -> None:
    """A finished run needs no resume point: its periodic checkpoints/last.ckpt would only sit
    beside the final model as a stale copy. `artifact_uri`: the run's artifact folder, which
    a tracking server names relative to itself (mlflow-artifacts:/...)."""
    repo = get_artifact_repository(artifact_uri, tracking_uri=tracking_uri)
    if any(f.path == f"{ARTIFACT_DIR}/{LAST}" for f in repo.list_artifacts(ARTIFACT_DIR)):
        repo.delete_artifacts(f"{ARTIFACT_DIR}/{LAST}")
