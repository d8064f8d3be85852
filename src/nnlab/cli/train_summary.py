"""What `nnlab-train` prints when it is done: each run's result and where to see it, and one
line per group of repeats.

Its imports wait inside each function: nnlab-train imports this module before the config is
checked, and a bad config is answered before MLflow and torch load."""

from __future__ import annotations

from nnlab.tracking.store.redact import redact


def print_summary(result, experiment: str, in_sweep: bool) -> None:
    """The run's result and where to see it. In a sweep only the result and the run's URL:
    the store and the UI command are printed once, by the sweep (nnlab.sweeps.callback)."""
    # lazy: MLflow loads for the summary, after the config check
    from nnlab.tracking.describe import charts_url, ui_command, ui_url
    from nnlab.tracking.store.client import get_client

    shown = "   ".join(
        f"{k} {v:.4f}" for k, v in sorted(result.metrics.items()) if k.startswith("test/")
    )
    verb = "skipped: an identical config already FINISHED as" if result.skipped else "finished"
    experiment_id = result.experiment_id or (
        get_client(result.tracking_uri).get_run(result.run_id).info.experiment_id
    )
    print(f"nnlab: {result.run_name} {verb}", flush=True)
    print(f"  {shown}")
    print(f"  view    {ui_url(result.tracking_uri, experiment_id, result.run_id)}")
    if in_sweep:
        return
    print(f"  charts  {charts_url(result.tracking_uri, experiment_id)}   (train vs val loss)")
    print(f"  store   {redact(result.tracking_uri)} (experiment '{experiment}')")
    if not result.tracking_uri.startswith("http"):
        print(f"  browse  {ui_command(result.tracking_uri)}   (then open the view link)")


def print_group_lines(jobs, results, failures: list[str]) -> None:
    """One summary line per job with repeats, as `repeats=N` prints for its group."""
    # lazy: MLflow loads for the summary, after the config check
    from nnlab.config.seeds import group_id
    from nnlab.training.repeats import GroupResult

    by_run = {r.run_id: r for r in results}
    groups: dict[str, list] = {}
    for member in jobs:
        if member.job:
            groups.setdefault(member.job, []).append(member)
    for job, members in groups.items():
        config = members[0].config
        group = GroupResult(group_id(config), str(config.objective))
        group.members = [by_run[m.run_id] for m in members if m.run_id in by_run]
        group.failures = [f for f in failures if f.startswith(f"{job}, ")]
        print(f"nnlab: {group.summary_line()}", flush=True)


def print_group_where(group, experiment: str) -> None:
    # lazy: MLflow loads for the summary, after the config check
    from nnlab.tracking.describe import ui_command, ui_url
    from nnlab.tracking.store.client import get_client

    uri = group.members[0].tracking_uri
    experiment_id = get_client(uri).get_run(group.parent_run_id).info.experiment_id
    print(f"  group   {ui_url(uri, experiment_id, group.parent_run_id)}   (its runs nest under it)")
    print(f"  store   {redact(uri)} (experiment '{experiment}')")
    if not uri.startswith("http"):
        print(f"  browse  {ui_command(uri)}")
