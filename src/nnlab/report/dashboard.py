"""A sweep's dashboard: every figure its parent run gets (and `nnlab-report --plots` draws).

Without repeats, one line or point per job (nnlab.report.tables.sweep_figures). With repeats, one
mean with its spread per configuration (nnlab.report.groups.group_figures) instead of N loose
lines; the heatmap and the decision boundaries stay. An Optuna search also gets its history,
objective against trial number with the best so far.
"""

from __future__ import annotations

import math
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
    repeated = group_report.has_repeats(groups)
    # With repeats, one mean and spread per configuration replaces the line per job.
    figures = report.sweep_figures(client, rows, keys, title, per_job_lines=not repeated)
    if repeated:
        figures.update(group_report.group_figures(client, groups, keys, title))
    if "optuna" in sweeper.lower():
        figures["objective_vs_trial.png"] = trial_history(groups, title)
    flow = gradient_flow(client, rows, keys, title)
    if flow is not None:  # the jobs ran with tracking.watch
        figures["gradient_flow.png"] = flow
    return figures


def gradient_flow(client, rows: Sequence[RunRow], keys: Sequence[str], title: str):
    """Each configuration's `layers/<i>/grad_norm` at its first and last watched epoch
    (tracking.watch), one line per configuration: the geometric mean over its seeds when it
    has several (norms spread over decades). None when no job watched its layers."""
    # matplotlib loads with the figures, not with the tables (`nnlab-report --stale` draws none).
    from nnlab.plots.layer_figures import gradient_flow_figure

    seen: dict[str, dict[str, list[list[float]]]] = {}  # label -> first/last -> per seed
    epochs = set()
    shown = [k for k in keys if k not in group_report.SEED_KEYS] or list(keys)
    for row in rows:
        layers = sorted(
            int(k.split("/")[1])
            for k in row.metrics
            if k.startswith("layers/") and k.endswith("/grad_norm")
        )
        if not layers:
            continue
        histories = [client.get_metric_history(row.run_id, f"layers/{i}/grad_norm") for i in layers]
        first = min(m.step for m in histories[0])
        last = max(m.step for m in histories[0])
        epochs |= {first, last}
        at = lambda h, e: next(m.value for m in h if m.step == e)  # noqa: E731
        values = [row.overrides.get(k, row.params.get(k, "?")) for k in shown]
        label = (
            values[0]
            if len(values) == 1
            else " ".join(f"{k}={v}" for k, v in zip(shown, values, strict=True))
        )
        flow = seen.setdefault((label or row.name)[:60], {"first": [], "last": []})
        flow["first"].append([at(h, first) for h in histories])
        flow["last"].append([at(h, last) for h in histories])
    if not seen:
        return None
    flows = {}
    for label, flow in seen.items():
        seeds = len(flow["first"])
        shown_label = f"{label} ({seeds} seeds)" if seeds > 1 else label
        flows[shown_label] = {when: _geometric_mean(flow[when]) for when in ("first", "last")}
    repeated = any(len(flow["first"]) > 1 for flow in seen.values())
    heading = f"{title}: gradient flow" + (", geometric mean over seeds" if repeated else "")
    return gradient_flow_figure(flows, (min(epochs), max(epochs)), heading)


def _geometric_mean(per_seed: list[list[float]]) -> list[float]:
    """Layer by layer, over seeds; a zero norm (a dead layer) keeps the mean at zero."""
    layers = min(len(values) for values in per_seed)
    return [
        0.0
        if any(v[i] <= 0 for v in per_seed)
        else math.exp(sum(math.log(v[i]) for v in per_seed) / len(per_seed))
        for i in range(layers)
    ]


def trial_history(groups: Sequence[group_report.Group], title: str):
    """One point per trial (a trial's repeats share its job number: their mean)."""
    # lazy: only a search's history figure needs these
    from nnlab.plots.group_figures import objective_vs_trial_figure
    from nnlab.stats import summarize

    key = group_report.objective_key(groups) or "objective"
    trials = []
    for g in groups:
        summary = summarize(g.values())
        job = int(g.rows[0].tags.get(JOB_NUM_TAG, 0))
        trials.append((job, summary.mean if summary else float("nan")))
    return objective_vs_trial_figure(trials, key, higher_is_better(key), title)
