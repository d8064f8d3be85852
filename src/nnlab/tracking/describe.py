"""How a run reads in `mlflow ui`: its name, its params, and its description.

- A name leads with what tells the run apart: in a sweep, the swept values
  (`lr=0.1 tanh · moons 2-10-5-1`); outside one, the data and network first
  (`moons 2-10-5-1 relu · adam lr=0.01`). A sweep's parent says what was swept.
- Params are the experiment only: data, model, the optimizer by name with its
  hyperparameters, backend, epochs, precision and seed. Everything else stays in config.yaml.
- The description (MLflow's `mlflow.note.content`, Markdown) says what was trained, on what,
  with which optimizer, and its result, or where and why it failed.

No torch and no MLflow here: plain functions of the config and the numbers.
"""

from __future__ import annotations

import math
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nnlab.config.choices import MAX_RUN_NAME, OPTIMIZERS
from nnlab.data.splits import dataset_label
from nnlab.tracking.store.chart_view import chart_view_query
from nnlab.tracking.store.names import ERROR_TAG

SWEEP_SYNTAX = ("range(", "choice(", "interval(", "glob(", "tag(")


def architecture(sizes: Sequence[int]) -> str:
    return "-".join(map(str, sizes))


def optimizer_name(cfg: DictConfig) -> str:
    return OPTIMIZERS[cfg.optimizer._target_]


def short_value(key: str, value: Any) -> str:
    """`optimizer.lr`, 0.1 -> 'lr=0.1'; a name stands alone ('tanh'); a list as '10-5'; a
    config group (`backend`, `optimizer`) by its option's name."""
    short = key.rsplit(".", 1)[-1]
    if isinstance(value, dict) and "name" in value:
        value = value["name"]
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return f"{short}={'-'.join(map(str, value)) or 'linear'}"
    if isinstance(value, float):
        return f"{short}={value:g}"
    if value is None:
        return f"{short}=null"
    return f"{short}={str(value).lower() if isinstance(value, bool) else value}"


def run_name(cfg: DictConfig, sizes: Sequence[int], swept_keys: Sequence[str] = ()) -> str:
    if cfg.tracking.run_name:
        return str(cfg.tracking.run_name)
    backend = "" if cfg.backend.name == "torch" else f" · {cfg.backend.name}"
    what = f"{dataset_label(cfg.data)} {architecture(sizes)}"
    if swept_keys:
        values = [
            short_value(k, _plain(OmegaConf.select(cfg, k, default=None))) for k in swept_keys
        ]
        if "backend" in swept_keys:
            backend = ""  # already leading the name
        return f"{' '.join(values)} · {what}{backend}"[:MAX_RUN_NAME]
    opt = f"{optimizer_name(cfg)} lr={cfg.optimizer.lr:g}"
    return f"{what} {cfg.model.activation} · {opt}{backend}"[:MAX_RUN_NAME]


def swept_keys(overrides: Mapping[str, str], sweeper_params: Mapping[str, Any] | None) -> list:
    """The keys a multirun varies: overrides with several values, and the sweeper's params."""
    keys = [k for k, v in overrides.items() if "," in str(v) or str(v).startswith(SWEEP_SYNTAX)]
    keys += [str(k) for k in (sweeper_params or {}) if str(k) not in keys]
    return keys


def sweep_name(keys: Sequence[str], overrides: Mapping[str, str]) -> str:
    """'sweep: lr × activation', plus the fixed choices that matter most (data=...)."""
    shown = " × ".join(k.rsplit(".", 1)[-1] for k in keys) or "one configuration"
    fixed = [f"{k}={v}" for k, v in overrides.items() if k not in keys and k in ("data",)]
    return f"sweep: {shown}{' · ' + ' '.join(fixed) if fixed else ''}"[:MAX_RUN_NAME]


def experiment_params(cfg: DictConfig) -> dict[str, Any]:
    """The params a run logs: what the experiment is, nothing about where it is recorded."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    params: dict[str, Any] = {}
    for group in ("data", "model"):
        params.update({f"{group}.{k}": v for k, v in plain[group].items()})
    params["optimizer.name"] = optimizer_name(cfg)
    params.update(
        {f"optimizer.{k}": v for k, v in plain["optimizer"].items() if not k.startswith("_")}
    )
    params["backend"] = plain["backend"]["name"]
    params["trainer.max_epochs"] = plain["trainer"]["max_epochs"]
    params["trainer.precision"] = plain["trainer"]["precision"]
    params["seed"] = plain["seed"]
    # A source's own seed is part of the experiment only when it was set (nnlab.config.seeds).
    params.update({f"seeds.{k}": v for k, v in (plain.get("seeds") or {}).items() if v is not None})
    return params


def _plain(value: Any) -> Any:
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


def run_description(
    cfg: DictConfig,
    sizes: Sequence[int],
    task: str,
    metrics: Mapping[str, float] | None = None,
    error: str | None = None,
    last_epoch: int | None = None,
    parent: tuple[str, str] | None = None,
) -> str:
    """Markdown for the run's page. `parent` is (name, link) of the sweep it belongs to."""
    data = cfg.data
    batch = "full batch" if data.batch_size is None else f"batch {data.batch_size}"
    optimizer = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in OmegaConf.to_container(cfg.optimizer).items()
        if not k.startswith("_")
    )
    lines = [
        f"**{dataset_label(data)}** ({task}) · MLP **{architecture(sizes)}**, "
        f"{cfg.model.activation}, {cfg.model.init} init · "
        f"**{optimizer_name(cfg)}** ({optimizer}) · {cfg.trainer.max_epochs} epochs, {batch}, "
        f"float{cfg.trainer.precision} · backend {cfg.backend.name} · seed {cfg.seed}",
        "",
    ]
    if error is not None:
        where = f"at epoch {last_epoch}" if last_epoch is not None else "before training"
        lines.append(f"**Failed {where}:** {error}")
    elif metrics:
        shown = " · ".join(
            f"{k} **{v:.4g}**"
            for k, v in sorted(metrics.items())
            if k.startswith("test/") and math.isfinite(v)
        )
        lines.append(f"**Result:** {shown}" if shown else "**Result:** no test metrics")
    else:
        lines.append("*Running…*")
    if parent is not None:
        lines += ["", f"Part of [{parent[0]}]({parent[1]})."]
    return "\n".join(lines)


# MLflow 3.17's UI opens an experiment in its GenAI mode (traces, no runs table) unless the
# URL asks for the model-training mode; checked in headless Chromium
# (tests/tracking/test_mlflow_ui.py).
RUNS_MODE = "?workflowType=machine_learning"
LOCAL_UI = "http://127.0.0.1:5000"  # where `make ui` and the printed `mlflow ui` command serve


def run_link(experiment_id: str, run_id: str | None = None) -> str:
    """A link inside the MLflow UI (relative, so it works wherever the UI is served), to a
    run's page, or to the experiment's runs table when run_id is None."""
    run = f"/runs/{run_id}" if run_id else ""
    return f"#/experiments/{experiment_id}{run}{RUNS_MODE}"


def charts_url(tracking_uri: str, experiment_id: str) -> str:
    """The experiment's chart view (nnlab.tracking.store.chart_view): train and val loss on one
    chart,
    test metrics as bars."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith("http") else LOCAL_UI
    # The runs tab's own path: the UI applies a shared view there, not on the experiment's root.
    return f"{base}/#/experiments/{experiment_id}/runs?{chart_view_query()}&{RUNS_MODE[1:]}"


def ui_command(uri: str) -> str:
    """The command that browses a local store in the MLflow UI, bound to this machine only."""
    return (
        f"{shlex.quote(sys.prefix)}/bin/mlflow ui --backend-store-uri {shlex.quote(uri)} "
        "--host 127.0.0.1 --port 5000"
    )


def ui_url(tracking_uri: str, experiment_id: str, run_id: str | None = None) -> str:
    """The address of a run (or of an experiment's runs table) in the UI that shows this store:
    the tracking server itself, or `mlflow ui` on 127.0.0.1:5000 for a local store."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith("http") else LOCAL_UI
    return f"{base}/{run_link(experiment_id, run_id)}"


def sweep_description(
    rows: Sequence[Any],
    keys: Sequence[str],
    best_id: str | None,
    experiment_id: str,
    objective_key: str | None,
) -> str:
    """The parent's description: one line per job with a link to it, the best marked, and
    failed jobs with their reason. `rows` are nnlab.report.tables.RunRow."""
    objective = objective_key or "objective"
    header = ["job", *[k.rsplit(".", 1)[-1] for k in keys], "status", objective]
    lines = [
        f"**Sweep over {', '.join(keys) or 'one configuration'}**: {len(rows)} jobs, "
        f"{sum(r.status == 'FAILED' for r in rows)} failed. ★ marks the best by {objective}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows:
        mark = " ★" if row.run_id == best_id else ""
        status = row.status
        if status == "FAILED":
            reason = row.tags.get(ERROR_TAG, "").replace("|", "/").replace("\n", " ")
            status = f"FAILED: {reason[:120]}"
        value = row.objective
        shown = f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else "–"
        cells = [
            f"[{row.name}]({run_link(experiment_id, row.run_id)}){mark}",
            *[str(row.overrides.get(k, "")) for k in keys],
            status,
            shown,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def group_description(result, experiment_id: str) -> str:
    """A group's parent: its summary, then one linked line per member."""
    # lazy: scipy (via stats) loads only for an interval
    from nnlab.stats import summarize

    s = summarize([m.objective for m in result.members])
    key = result.objective_key
    if s is None:
        head = f"**Every repeat failed.** Group `{result.group}`."
    elif s.ci_low is None:
        head = f"**{key}: {s.mean:.4g}** from one repeat: no interval (no spread measured)."
    else:
        head = (
            f"**{key}: mean {s.mean:.4g}, 95% CI [{s.ci_low:.4g}, {s.ci_high:.4g}]** "
            f"(t interval, n={s.n}), min {s.min:.4g}, max {s.max:.4g}. Group `{result.group}`."
        )
    lines = [head, ""]
    for m in result.members:
        lines.append(
            f"- [{m.run_name}]({run_link(experiment_id, m.run_id)}): {key} {m.objective:.4g}"
        )
    lines += [f"- FAILED {line}" for line in result.failures]
    return "\n".join(lines)


def groups_markdown(group_lines: Sequence[Mapping[str, str]]) -> str:
    """A sweep with repeats, per configuration (nnlab.report.groups.group_table's rows)."""
    lines = [
        "**Per configuration, over seeds** (mean and 95% t interval; *not distinguishable*: "
        "its interval overlaps the best's; P: bootstrap probability its mean beats the best's)",
        "",
        "| rank | configuration | n | failed | mean | 95% CI | vs best | P(beats best) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in group_lines:
        best = " ★" if g["vs_best"] == "best" else ""
        cells = [g["rank"], g["label"] + best, g["n"], g["failed"], g["mean"], g["ci95"]]
        cells += [g["vs_best"] if g["vs_best"] != "best" else "", g["p_beats_best"]]
        lines.append("| " + " | ".join(c or "–" for c in cells) + " |")
    return "\n".join(lines)
