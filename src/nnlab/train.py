"""`nnlab-train`: the Hydra entry point. compose -> check -> build -> fit -> test -> log.

Only Hydra and the config checks load before the config is known to be good: a typo is
answered in about a second, and the training stack (torch, Lightning, MLflow) loads after.

In a multirun (`-m`), one job's failure must not end the sweep: a job that fails or diverges
is recorded FAILED, reported in one line, and returns NaN to the sweeper. Ctrl-C and SIGTERM
end the sweep, with the running job and the sweep's parent run marked KILLED.
"""

from __future__ import annotations

import math
import os
import shlex
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from nnlab.config_check import ConfigError, check_config
from nnlab.paths import CONF_DIR
from nnlab.redact import redact
from nnlab.sweeps import PARENT_ENV, SKIPPED_TAG, abort_active_sweep


def ui_command(uri: str) -> str:
    """The command that browses `uri` in the MLflow UI, bound to this machine only."""
    return (
        f"{shlex.quote(sys.prefix)}/bin/mlflow ui --backend-store-uri {shlex.quote(uri)} "
        "--host 127.0.0.1 --port 5000"
    )


def print_summary(result, experiment: str) -> None:
    shown = "   ".join(
        f"{k} {v:.4f}" for k, v in sorted(result.metrics.items()) if k.startswith("test/")
    )
    verb = "skipped: an identical config already FINISHED as" if result.skipped else "finished"
    print(f"nnlab: {result.run_name} {verb}", flush=True)
    print(f"  {shown}")
    print(f"  run id  {result.run_id}")
    print(f"  store   {redact(result.tracking_uri)} (experiment '{experiment}')")
    if not result.tracking_uri.startswith("http"):
        print(f"  browse  {ui_command(result.tracking_uri)}")


def job_tags(hydra_cfg) -> dict[str, str]:
    """Tags that place a run: its overrides, and in a sweep its parent and job number."""
    tags = {"nnlab.overrides": "\n".join(hydra_cfg.overrides.task)}
    parent = os.environ.get(PARENT_ENV)
    if hydra_cfg.mode == RunMode.MULTIRUN and parent:
        tags.update(
            {
                "mlflow.parentRunId": parent,
                "nnlab.sweep_id": parent,
                "nnlab.job_num": str(hydra_cfg.job.num),
            }
        )
    return tags


def note_skipped_job(result, parent_run_id: str, job_num: int) -> None:
    """Tell the sweep's parent which earlier run stands in for this skipped job."""
    from nnlab.tracking import get_client

    get_client(result.tracking_uri).set_tag(parent_run_id, f"{SKIPPED_TAG}{job_num}", result.run_id)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def train(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    where = f"job {hydra_cfg.job.num}: " if in_sweep else ""
    try:
        check_config(cfg)
    except ConfigError as err:
        print(f"nnlab-train: {where}bad config: {err}", file=sys.stderr, flush=True)
        if in_sweep:
            return math.nan  # this job is refused; the others still run
        sys.exit(2)

    from nnlab.data import DataError
    from nnlab.modules import TrainingDiverged
    from nnlab.pipeline import run_training

    try:
        result = run_training(cfg, list(hydra_cfg.overrides.task), job_tags(hydra_cfg))
    except KeyboardInterrupt as err:
        print(f"nnlab-train: {err or 'interrupted'}; the run is marked KILLED", file=sys.stderr)
        sys.exit(130)
    except Exception as err:
        from nnlab.store_check import store_failure
        from nnlab.tracking import tracking_uri

        broken_store = store_failure(err)
        if broken_store is not None:
            print(
                f"nnlab-train: {where}tracking store {redact(tracking_uri(cfg.tracking.uri))}: "
                f"{broken_store}",
                file=sys.stderr,
                flush=True,
            )
            if in_sweep:
                return math.nan
            sys.exit(3)
        if isinstance(err, DataError):
            print(f"nnlab-train: {where}bad data: {err}", file=sys.stderr, flush=True)
            if in_sweep:
                return math.nan
            sys.exit(2)
        reason = "training diverged" if isinstance(err, TrainingDiverged) else "failed"
        print(
            f"nnlab-train: {where}{reason} ({type(err).__name__}: {err}); the run is marked FAILED",
            file=sys.stderr,
            flush=True,
        )
        if in_sweep:
            return math.nan
        if isinstance(err, TrainingDiverged):
            sys.exit(1)
        raise
    if result.skipped and os.environ.get(PARENT_ENV) and in_sweep:
        note_skipped_job(result, os.environ[PARENT_ENV], hydra_cfg.job.num)
    print_summary(result, cfg.tracking.experiment)
    return result.objective


def main() -> None:
    """Console entry: the Hydra app, plus closing a sweep's parent run if it ends early."""
    try:
        train()
    except KeyboardInterrupt:
        abort_active_sweep("KILLED", "interrupted")
        print("nnlab-train: interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit as done:
        if done.code not in (0, None):
            abort_active_sweep("KILLED" if done.code == 130 else "FAILED", f"exit {done.code}")
        raise
    except BaseException as err:
        abort_active_sweep("FAILED", f"{type(err).__name__}: {err}")
        raise


if __name__ == "__main__":
    main()
