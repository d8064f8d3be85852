"""The experiment's chart view in `mlflow ui`: train and val loss on one chart, and each test
metric as a bar with its value.

MLflow's UI draws one chart per metric by default, so comparing train with val loss means
building a chart by hand. Its "shared view" feature reads a whole page state (charts,
sections, filters) from an experiment tag `mlflow.sharedViewState.<key>`, opened by the URL
parameter `viewStateShareKey=<key>`. nnlab writes that tag once per experiment and prints the
URL. Metrics the view does not name are still added by the UI, in its usual sections.
The JSON field names are those of MLflow 3.17's ExperimentPageUIState and chart card
configs; the browser test checks that the UI applies them.
"""

from __future__ import annotations

import json

from nnlab.nn.tasks import METRICS, TRAIN_LOSS
from nnlab.tracking.store.names import CHART_VIEW_KEY, CHART_VIEW_TAG

LOSS_SECTION = "nnlab-loss"
TEST_SECTION = "nnlab-test"


def _card(uuid: str, section: str, chart_type: str, metric: str, **extra) -> dict:
    return {
        "uuid": uuid,
        "type": chart_type,
        "metricSectionId": section,
        "metricKey": metric,
        "runsCountToCompare": 10,
        "deleted": False,
        "isGenerated": False,
        **extra,
    }


def chart_view_state() -> dict:
    """The page state: the runs list beside the charts, newest runs first. A sweep's jobs sit
    folded under its parent here too (the UI does not share which rows are expanded): expanding
    the sweep draws its jobs."""
    loss_chart = _card(
        "nnlab-train-vs-val",
        LOSS_SECTION,
        "LINE",
        TRAIN_LOSS,
        selectedMetricKeys=[TRAIN_LOSS, "val/loss"],
        lineSmoothness=0,
        scaleType="linear",
        xAxisScaleType="linear",
        xAxisKey="step",
        selectedXAxisMetricKey="",
    )
    # One bar chart per test metric any task can log; the UI hides those a run lacks.
    test_charts = [
        _card(f"nnlab-test-{name}", TEST_SECTION, "BAR", f"test/{name}") for name in METRICS
    ]
    section = {"display": True, "isReordered": False, "deleted": False, "isGenerated": False}
    return {
        # Search facets: everything, newest first (the UI's defaults).
        "searchFilter": "",
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        # Page state.
        "selectedColumns": ["attributes.`Source`", "attributes.`Models`", "attributes.`Dataset`"],
        "runsHiddenMode": "FIRST_10_RUNS",
        "compareRunCharts": [loss_chart, *test_charts],
        "compareRunSections": [
            {"uuid": LOSS_SECTION, "name": "loss: train and val", **section},
            {"uuid": TEST_SECTION, "name": "test (one value per run)", **section},
        ],
        "viewMaximized": False,
        "runListHidden": False,
        "isAccordionReordered": True,  # keep these sections first; the UI appends the rest
        "groupBy": None,
        "groupsExpanded": {},
        "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True,
        "chartsSearchFilter": "",
    }


def ensure_chart_view(client, experiment) -> None:
    """Write the experiment's view unless it is there already (one store call, once)."""
    if CHART_VIEW_TAG in (experiment.tags or {}):
        return
    state = _dump(chart_view_state())
    try:
        client.set_experiment_tag(experiment.experiment_id, CHART_VIEW_TAG, state)
    except Exception:
        # Parallel jobs on a new experiment all see the tag missing; one insert wins and the
        # others fail on the store's unique key. Only a view that is still missing is an error.
        if CHART_VIEW_TAG not in client.get_experiment(experiment.experiment_id).tags:
            raise


def _dump(state: dict) -> str:
    return json.dumps(state, separators=(",", ":"))


def chart_view_query() -> str:
    """The URL query that opens the view in chart mode."""
    return f"viewStateShareKey={CHART_VIEW_KEY}&compareRunsMode=CHART"
