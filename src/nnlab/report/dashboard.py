"""A sweep's dashboard: every figure its parent run gets (and `nnlab-report --plots` draws).

Without repeats, one line or point per job (nnlab.report.tables.sweep_figures). With repeats, one
mean with its spread per configuration (nnlab.report.groups.group_figures) instead of N loose
lines; the heatmap and the decision boundaries stay. An Optuna search also gets its history,
objective against trial number with the best so far.
"""

from __future__ import annotations

from collections.abc import Sequence

from nnlab.nn.tasks import higher_is_better
from nnlab.report import groups as group_report
from nnlab.report import tables as report
from nnlab.report.tables import RunRow
from nnlab.tracking.store.names import JOB_NUM_TAG


def sweep_dashboard(
    client, rows: Sequence[RunRow], keys: Sequence[str], title: str = "", sweeper: str = ""
) -> dict:
    groups = group_report.group_rows(rows, keys)
    figures = report.sweep_figures(client, rows, keys, title)
    if group_report.has_repeats(groups):
        for loose in ("curves.png", "objective_vs_lr.png", "objective_vs_value.png"):
            figures.pop(loose, None)
        figures.update(group_report.group_figures(client, groups, keys, title))
    if "optuna" in sweeper.lower():
        figures["objective_vs_trial.png"] = trial_history(groups, title)
    return figures


def trial_history(groups: Sequence[group_report.Group], title: str):
    """One point per trial (a trial's repeats share its job number: their mean)."""
    from nnlab.plots.group_figures import objective_vs_trial_figure
    from nnlab.report.stats import summarize

    key = group_report.objective_key(groups) or "objective"
    trials = []
    for g in groups:
        summary = summarize(g.values())
        job = int(g.rows[0].tags.get(JOB_NUM_TAG, 0))
        trials.append((job, summary.mean if summary else float("nan")))
    return objective_vs_trial_figure(trials, key, higher_is_better(key), title)
