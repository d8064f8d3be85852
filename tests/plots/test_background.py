"""A population's figures drawn in a worker process (nnlab.plots.background): every member's
figures are in its run, pixel for pixel those drawn in the training process."""

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from nnlab.plots.run_figures import Tabulated
from nnlab.tracking.store.names import ERROR_TAG, MEMBER_TAG
from tests.conftest import compose_config

FIGURES = {"plots/curves.png", "plots/decision_boundary.png"}


def member_figures(store, tmp_path, workers: int, experiment: str) -> list[dict]:
    from nnlab.training.repeats import run_group

    cfg = compose_config(
        "repeats=4",
        f"tracking.figure_workers={workers}",
        f"tracking.experiment={experiment}",
        "tracking.log_plots=true",
    )
    group = run_group(cfg, [], {})
    client = MlflowClient(store)
    figures = []
    for member in group.members:
        listed = {a.path for a in client.list_artifacts(member.run_id, "plots")}
        assert listed == FIGURES
        folder = tmp_path / experiment / member.run_id
        folder.mkdir(parents=True)
        local = {path: client.download_artifacts(member.run_id, path, folder) for path in FIGURES}
        figures.append({path: matplotlib.image.imread(file) for path, file in local.items()})
    return figures


@pytest.mark.slow  # the worker is a process
def test_figures_drawn_by_the_worker_equal_those_drawn_in_process(store, tmp_path):
    in_worker = member_figures(store, tmp_path, 1, "worker")
    in_process = member_figures(store, tmp_path, 0, "inline")
    for a, b in zip(in_worker, in_process, strict=True):
        for path in FIGURES:
            assert np.array_equal(a[path], b[path]), path
    # Each member's own figure, not one member's four times.
    assert not np.array_equal(
        in_worker[0]["plots/decision_boundary.png"], in_worker[1]["plots/decision_boundary.png"]
    )


def test_tabulated_outputs_answer_only_their_own_inputs():
    grid = np.linspace(0, 1, 6).reshape(3, 2)
    table = Tabulated(grid, np.array([1.0, 2.0, 3.0]))
    assert table(grid.copy()).tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="not computed on"):
        table(grid + 1e-9)


@pytest.mark.slow  # the worker is a process
def test_a_member_whose_figures_fail_to_draw_fails_alone(store, monkeypatch):
    """The figures are logged after every member's model (the worker draws meanwhile): a
    member whose figures the worker cannot draw is FAILED with why, after its model, and the
    others finish with all of theirs."""
    from nnlab.training import population
    from nnlab.training.repeats import run_group

    real = population.figure_recipes
    calls = []

    def recipes(cfg, net, splits, task, history):
        calls.append(None)
        drawn = real(cfg, net, splits, task, history)
        if len(calls) == 2:  # the second member's: a figure function plots does not have
            drawn["curves.png"] = ("no_such_figure", {})
        return drawn

    monkeypatch.setattr(population, "figure_recipes", recipes)
    cfg = compose_config(
        "repeats=3",
        "tracking.figure_workers=1",
        "tracking.log_plots=true",
        "tracking.log_model=true",
    )
    group = run_group(cfg, [], {})
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("nnlab").experiment_id])
    members = sorted(
        (r for r in runs if MEMBER_TAG in r.data.tags), key=lambda r: int(r.data.tags[MEMBER_TAG])
    )
    assert [r.info.status for r in members] == ["FINISHED", "FAILED", "FINISHED"]
    assert "drawing the figures failed" in members[1].data.tags[ERROR_TAG]
    assert len(members[1].outputs.model_outputs) == 1  # its model was in before its figures
    for r in (members[0], members[2]):
        assert {a.path for a in client.list_artifacts(r.info.run_id, "plots")} == FIGURES
    assert len(group.members) == 2 and len(group.failures) == 1


@pytest.mark.slow  # the worker is a process
def test_the_training_process_draws_what_the_worker_has_not_begun(tmp_path):
    """draw_unstarted: the training process takes the figures from the end of the queue while
    the worker takes them from the front; each member's figures are drawn once, by one of
    them, and equal those drawn in process."""
    from nnlab.plots.background import RECIPES_FILE, FigureWriter, write_figures

    def recipes(k: int) -> dict:
        curve = [(e, 1.0 / (e + 1 + k)) for e in range(30)]
        history = {"train/loss": curve, "val/loss": curve, "val/acc": curve}
        return {"curves.png": ("curves_figure", {"history": history, "metric": "acc"})}

    with FigureWriter(1) as writer:
        futures = [writer.submit(recipes(k), tmp_path / str(k)) for k in range(6)]
        writer.draw_unstarted()  # the worker is still starting: this process takes the last
        folders = [f.result(timeout=60) for f in futures]
    assert 5 in writer.drawn_here
    # Leaving the block waited for the worker to answer every task, those it passed over too:
    # only then may the folders go (nnlab.training.population removes them next).
    assert writer.answered == set(range(6)) and writer.worker.returncode == 0
    for k, folder in enumerate(folders):
        assert sorted(p.name for p in Path(folder).iterdir()) == ["curves.png"], RECIPES_FILE
        inline = tmp_path / f"inline{k}"
        inline.mkdir()
        write_figures(recipes(k), inline)
        drawn = matplotlib.image.imread(Path(folder) / "curves.png")
        assert np.array_equal(drawn, matplotlib.image.imread(inline / "curves.png"))
