"""Query the store: runs and sweeps as tables, CSV files and comparison figures.

No torch, no Lightning: `nnlab-report` answers in about the time MLflow takes to import.
The sweep callback (nnlab.sweeps.callback) builds a sweep's summary with these same functions.
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from mlflow.entities import Run
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient

from nnlab.nn.tasks import higher_is_better
from nnlab.plots.sweep_figures import (
    heatmap_figure,
    image_grid_figure,
    objective_vs_figure,
    overlaid_curves_figure,
)
from nnlab.tracking.store.names import ERROR_TAG, OBJECTIVE_TAG, OVERRIDES_TAG
from nnlab.tracking.store.queries import metric_history


@dataclass
class RunRow:
    run_id: str
    name: str
    status: str
    overrides: dict[str, str]
    objective_key: str | None
    metrics: dict[str, float]
    params: dict[str, str] = field(repr=False)
    tags: dict[str, str] = field(repr=False)
    artifact_uri: str = field(default="", repr=False)

    @property
    def objective(self) -> float:
        if self.objective_key is None:
            return math.nan
        return self.metrics.get(self.objective_key, math.nan)


def parse_overrides(text: str | None) -> dict[str, str]:
    """'a=1 b=[1, 2]' as stored in the overrides tag (one override per line)."""
    pairs = (line.split("=", 1) for line in (text or "").splitlines() if "=" in line)
    return {k.lstrip("+~"): v for k, v in pairs}


def to_row(run: Run) -> RunRow:
    tags = run.data.tags
    return RunRow(
        run_id=run.info.run_id,
        name=run.info.run_name or "",
        status=run.info.status,
        overrides=parse_overrides(tags.get(OVERRIDES_TAG)),
        objective_key=tags.get(OBJECTIVE_TAG),
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
        tags=dict(tags),
        artifact_uri=run.info.artifact_uri,
    )


def swept_keys(rows: Sequence[RunRow]) -> list[str]:
    """Override keys whose values differ between the rows, in the order they were given."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row.overrides if k not in keys]
    return [k for k in keys if len({r.overrides.get(k) for r in rows}) > 1]


def best_row(rows: Sequence[RunRow]) -> RunRow | None:
    scored = [r for r in rows if r.status in ("FINISHED", "SKIPPED") and math.isfinite(r.objective)]
    if not scored:
        return None
    sign = -1 if higher_is_better(scored[0].objective_key or "") else 1
    return min(scored, key=lambda r: sign * r.objective)


def summary_columns(rows: Sequence[RunRow]) -> list[str]:
    """Final metrics worth a column: losses and the test metrics present in any row."""
    present = {k for r in rows for k in r.metrics}
    return [k for k in ("train/loss", "val/loss") if k in present] + test_columns(rows)


def test_columns(rows: Sequence[RunRow]) -> list[str]:
    """The final test metrics present in any row."""
    return sorted({k for r in rows for k in r.metrics if k.startswith("test/")})


def stack_tables(tables: dict[str, Sequence[dict[str, str]]]) -> list[dict[str, str]]:
    """Several tables as one, for one CSV file: a `level` column names each row's table, and
    every row has every table's columns (empty where it has no value)."""
    columns = ["level"]
    for lines in tables.values():
        for line in lines:
            columns += [c for c in line if c not in columns]
    return [
        {**dict.fromkeys(columns, ""), "level": level, **line}
        for level, lines in tables.items()
        for line in lines
    ]


def table(
    rows: Sequence[RunRow], params: Sequence[str] = (), metrics: Sequence[str] = ()
) -> list[dict[str, str]]:
    """One dict per run, in display order: id, name, status, chosen params, objective, metrics."""
    out = []
    for r in rows:
        line = {"run_id": r.run_id, "name": r.name, "status": r.status}
        for p in params:
            line[p] = r.overrides.get(p, r.params.get(p, ""))
        line["objective"] = _fmt(r.objective)
        for m in metrics:
            line[m] = _fmt(r.metrics.get(m, math.nan))
        error = r.tags.get(ERROR_TAG, "")
        line["error"] = error.splitlines()[0][:80] if error else ""
        out.append(line)
    return out


def _fmt(value: float) -> str:
    return (
        "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.5g}"
    )


def render(lines: Sequence[dict[str, str]], hide: Iterable[str] = ()) -> str:
    """A plain-text table; columns that are empty in every row are left out."""
    if not lines:
        return "(no runs)"
    hidden = set(hide)
    cols = [c for c in lines[0] if c not in hidden and any(line[c] for line in lines)]
    widths = {c: max(len(c), *(len(line[c]) for line in lines)) for c in cols}
    head = "  ".join(c.ljust(widths[c]) for c in cols)
    body = ["  ".join(line[c].ljust(widths[c]) for c in cols) for line in lines]
    return "\n".join([head, "-" * len(head), *body])


def to_csv(lines: Sequence[dict[str, str]]) -> str:
    buffer = io.StringIO()
    if lines:
        writer = csv.DictWriter(buffer, fieldnames=list(lines[0]))
        writer.writeheader()
        writer.writerows(lines)
    return buffer.getvalue()


def _best_point(rows: Sequence[RunRow], key: str) -> tuple[object, float] | None:
    best = best_row(rows)
    return (float(best.overrides[key]), best.objective) if best is not None else None


def sweep_figures(
    client: MlflowClient,
    rows: Sequence[RunRow],
    keys: Sequence[str],
    title: str = "",
    per_job_lines: bool = True,
) -> dict[str, Figure]:
    """The comparison figures a sweep calls for, keyed by file name:

    objective_vs_lr.png     objective against learning rate (log axis), one line per value of
                            the other swept key (e.g. per activation)
    objective_heatmap.png   objective over the first two swept keys
    curves.png              train and val loss of every job, overlaid
    decision_boundaries.png the jobs' decision-boundary plots side by side (2-D classifiers)

    `per_job_lines=False` leaves out the three with a line or point per job (objective_vs_*,
    curves): a sweep with repeats draws one per configuration instead (nnlab.report.groups),
    and reading every job's curves from the store only to drop them cost ~0.7 s for 20 jobs.
    """
    done = [r for r in rows if r.status in ("FINISHED", "FAILED", "SKIPPED")]
    if not done:
        return {}
    objective = done[0].objective_key or "objective"
    figures: dict[str, Figure] = {}
    if "optimizer.lr" in keys and per_job_lines:
        other = next((k for k in keys if k != "optimizer.lr"), None)
        figures["objective_vs_lr.png"] = objective_vs_figure(
            [
                (
                    float(r.overrides["optimizer.lr"]),
                    r.objective,
                    r.overrides.get(other, "") if other else "",
                )
                for r in done
            ],
            "optimizer.lr",
            objective,
            group_label=other,
            log_x=True,
            title=title,
            best=_best_point(done, "optimizer.lr"),
        )
    if len(keys) >= 2:
        a, b = keys[0], keys[1]
        figures["objective_heatmap.png"] = heatmap_figure(
            [(r.overrides.get(a, ""), r.overrides.get(b, ""), r.objective) for r in done],
            a,
            b,
            objective,
            title=title,
        )
    elif len(keys) == 1 and keys[0] != "optimizer.lr" and per_job_lines:
        figures["objective_vs_value.png"] = objective_vs_figure(
            [(r.overrides.get(keys[0], ""), r.objective, "") for r in done],
            keys[0],
            objective,
            title=title,
        )
    if per_job_lines:
        histories = {}
        for r in done:
            label = " ".join(f"{k}={r.overrides.get(k)}" for k in keys) or r.name
            if r.status == "FAILED":
                label += " (failed)"  # its curve stops where it failed
            histories[label] = {
                k: metric_history(client, r.run_id, k) for k in ("train/loss", "val/loss")
            }
        figures["curves.png"] = overlaid_curves_figure(
            histories, ["train/loss", "val/loss"], title=title
        )
    boundaries = _download_boundaries(client, done, keys)
    if boundaries:
        figures["decision_boundaries.png"] = image_grid_figure(boundaries, title=title)
    return figures


def _download_boundaries(
    client: MlflowClient, rows: Sequence[RunRow], keys: Sequence[str]
) -> list[tuple[str, np.ndarray]]:
    # lazy: matplotlib loads only to read a boundary image
    from matplotlib.image import imread

    images = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in rows:
            label = " ".join(f"{k}={r.overrides.get(k)}" for k in keys) or r.name
            if r.status == "FAILED":  # shown as a blank tile that says so, not left out
                reason = r.tags.get(ERROR_TAG, "")[:40]
                images.append((f"{label}\nFAILED: {reason}", np.full((10, 10, 3), 0.92)))
                continue
            # The run's own folder, not runs:/<id>: MLflow resolves a runs:/ path by first
            # searching the run's logged models (~25 ms a run here, twice).
            repo = get_artifact_repository(r.artifact_uri, tracking_uri=client.tracking_uri)
            names = {a.path for a in repo.list_artifacts("plots")}
            if "plots/decision_boundary.png" not in names:
                continue
            path = repo.download_artifacts("plots/decision_boundary.png", tmp)
            images.append((f"{label}\n{r.objective_key}={_fmt(r.objective)}", imread(path)))
            Path(path).unlink()
    return images
