"""What a sweep's parent run holds when the sweep ends: the summary table (sweep_summary.csv,
and sweep_groups.csv for repeats), the sweep's figures, the best job and group as tags and
metrics, and a description; printed too, with where to see the sweep."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from mlflow.entities import Metric

from nnlab.report import groups as group_report
from nnlab.report import tables as report
from nnlab.report.dashboard import sweep_dashboard
from nnlab.tracking.describe import charts_url, groups_markdown, ui_command, ui_url
from nnlab.tracking.describe import sweep_description as describe_sweep
from nnlab.tracking.store import sweep_protocol
from nnlab.tracking.store.client import set_tags
from nnlab.tracking.store.names import (
    BEST_GROUP_TAG,
    BEST_RUN_ID_TAG,
    BEST_RUN_NAME_TAG,
    DESCRIPTION_TAG,
    JOBS_FAILED_TAG,
    JOBS_TAG,
    OBJECTIVE_TAG,
    SWEEPER_TAG,
)
from nnlab.tracking.store.redact import redact


def summarise_sweep(client, run_id: str) -> int:
    """Write the summary table, figures and best job to the parent; return how many jobs
    finished."""
    now_ms = int(time.time() * 1000)
    parent = client.get_run(run_id)
    rows = [report.to_row(r) for r in sweep_protocol.sweep_children(client, parent)]
    for stand_in in sweep_protocol.skipped_job_stand_ins(client, parent):
        rows.append(report.to_row(stand_in))
        rows[-1].status = "SKIPPED"
    keys = report.swept_keys(rows)
    lines = report.table(rows, keys, report.summary_columns(rows))
    best = report.best_row(rows)
    groups = group_report.group_rows(rows, keys)
    repeated = group_report.has_repeats(groups)
    group_lines = group_report.group_table(groups, report.test_columns(rows)) if repeated else []
    with tempfile.TemporaryDirectory(prefix="nnlab-sweep-") as tmp:
        out = Path(tmp)
        (out / "sweep_summary.csv").write_text(report.to_csv(lines))
        if repeated:
            detailed = group_report.group_table(groups, report.test_columns(rows), detail=True)
            (out / "sweep_groups.csv").write_text(report.to_csv(detailed))
        (out / "plots").mkdir()
        shown = [k for k in keys if k not in group_report.SEED_KEYS]
        title = f"sweep over {', '.join(shown)}" if shown else "sweep"
        sweeper = parent.data.tags.get(SWEEPER_TAG, "")
        for file_name, fig in sweep_dashboard(client, rows, keys, title, sweeper).items():
            fig.savefig(out / "plots" / file_name, dpi=90)
        client.log_artifacts(run_id, str(out))
    tags = {
        JOBS_TAG: str(len(rows)),
        JOBS_FAILED_TAG: str(sum(r.status == "FAILED" for r in rows)),
    }
    if best is not None:
        tags.update({BEST_RUN_ID_TAG: best.run_id, BEST_RUN_NAME_TAG: best.name})
    measured = parent_metrics(rows, best)
    if repeated and group_lines[0]["rank"] == "1":  # the best group, by mean over seeds
        tags[BEST_GROUP_TAG] = group_lines[0]["label"]
        best_group = group_report.ranked(groups)[0][1].summary
        measured.append(("best_group/mean", best_group.mean))
        if best_group.ci_low is not None:
            measured += [("best_group/ci_low", best_group.ci_low)]
            measured += [("best_group/ci_high", best_group.ci_high)]
    metrics = [Metric(k, v, now_ms, 0) for k, v in measured]
    client.log_batch(run_id, metrics=metrics)
    tags[DESCRIPTION_TAG] = describe_sweep(
        rows,
        keys,
        best.run_id if best is not None else None,
        parent.info.experiment_id,
        parent.data.tags.get(OBJECTIVE_TAG),
    )
    if repeated:
        tags[DESCRIPTION_TAG] = groups_markdown(group_lines) + "\n\n" + tags[DESCRIPTION_TAG]
    set_tags(client, run_id, tags)
    print(report.render(lines, hide=("run_id",)))
    if repeated:
        print(report.render(group_lines, hide=("group",)))
    if repeated and BEST_GROUP_TAG in tags:
        top = group_lines[0]
        print(f"best configuration: {top['label']} (mean {top['mean']}, 95% CI {top['ci95']})")
    elif best is not None:
        print(f"best: {best.name} ({best.objective_key}={best.objective:.5g}, run {best.run_id})")
    print_where(client, parent)
    return sum(r.status in ("FINISHED", "SKIPPED") for r in rows)


def parent_metrics(rows, best) -> list[tuple[str, float]]:
    """What the parent's metrics columns show: job counts, and the best job's objective and
    final test metrics (`best/test/accuracy`), so sweeps can be compared in the runs table."""
    metrics = [
        ("jobs/finished", float(sum(r.status in ("FINISHED", "SKIPPED") for r in rows))),
        ("jobs/failed", float(sum(r.status == "FAILED" for r in rows))),
    ]
    if best is not None:
        metrics.append(("best/objective", best.objective))
        tests = sorted((k, v) for k, v in best.metrics.items() if k.startswith("test/"))
        metrics += [(f"best/{k}", v) for k, v in tests]
    return metrics


def print_where(client, parent) -> None:
    """Where the sweep is, once for the whole sweep: its page, and how to open the UI."""
    uri = client.tracking_uri
    print(f"  sweep   {ui_url(uri, parent.info.experiment_id, parent.info.run_id)}")
    print(f"  runs    {ui_url(uri, parent.info.experiment_id)}   (the sweep's jobs nest under it)")
    charts = charts_url(uri, parent.info.experiment_id)
    print(f"  charts  {charts}   (train vs val loss; expand the sweep to chart its jobs)")
    print(f"  store   {redact(uri)}")
    if not uri.startswith("http"):
        print(f"  browse  {ui_command(uri)}")
