"""The study's own figures on the sweep's parent run, from Optuna's matplotlib visualisation:
optimisation history (or the Pareto front with several objectives), parameter importances,
parallel coordinates and slices. PNG images, not Plotly HTML that needs the network."""

from __future__ import annotations

import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import optuna
import optuna.visualization.matplotlib as vis
from optuna.trial import TrialState

from nnlab.tracking.store.client import get_client, set_tags, tracking_uri
from nnlab.tracking.store.names import STUDY_STORAGE_TAG, STUDY_TAG
from nnlab.tracking.store.redact import redact


def _figure(axes):
    return np.ravel(axes)[0].figure


def study_figures(study, objectives: list[str]) -> dict[str, object]:
    """file name -> Figure; a figure Optuna cannot draw yet (too few finished trials) is left
    out rather than drawn empty."""
    matplotlib.use("Agg")

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return {}
    first = (
        {}
        if len(objectives) == 1
        else {
            "target": lambda t: t.values[0],
            "target_name": objectives[0],
        }
    )
    plots = {
        "optimization_history.png": lambda: vis.plot_optimization_history(study, **first),
        "parallel_coordinate.png": lambda: vis.plot_parallel_coordinate(study, **first),
        "slice.png": lambda: vis.plot_slice(study, **first),
    }
    if len(complete) >= 2:
        plots["param_importances.png"] = lambda: vis.plot_param_importances(study, **first)
    if len(objectives) > 1:
        plots["pareto_front.png"] = lambda: vis.plot_pareto_front(study, target_names=objectives)
    figures = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name, draw in plots.items():
            try:
                figures[name] = _figure(draw())
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue  # e.g. importances of a parameter that never varied
    return figures


def log_study_figures(study, search, parent_run_id: str, configured_uri: str | None) -> None:

    client = get_client(tracking_uri(configured_uri))
    set_tags(
        client,
        parent_run_id,
        {STUDY_TAG: search.study_name, STUDY_STORAGE_TAG: redact(search.storage)},
    )
    # Optuna's plots switch the whole process to matplotlib's ggplot style (plt.style.use): in
    # this context it ends with them, and the sweep's own figures drawn later keep nnlab's.
    with plt.rc_context():
        for name, fig in study_figures(study, search.objectives).items():
            client.log_figure(parent_run_id, fig, f"optuna/{name}")
            plt.close(fig)
