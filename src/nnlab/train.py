"""`nnlab-train`: the Hydra entry point. compose -> check -> build -> fit -> test -> log.

Only Hydra and the config checks load before the config is known to be good: a typo is
answered in about a second, and the training stack (torch, Lightning, MLflow) loads after.
"""

from __future__ import annotations

import shlex
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from nnlab.config_check import ConfigError, check_config
from nnlab.paths import CONF_DIR


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
    print(f"nnlab: {result.run_name} finished", flush=True)
    print(f"  {shown}")
    print(f"  run id  {result.run_id}")
    print(f"  store   {result.tracking_uri} (experiment '{experiment}')")
    if not result.tracking_uri.startswith("http"):
        print(f"  browse  {ui_command(result.tracking_uri)}")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float:
    try:
        check_config(cfg)
    except ConfigError as err:
        print(f"nnlab-train: bad config: {err}", file=sys.stderr)
        sys.exit(2)

    from nnlab.modules import TrainingDiverged
    from nnlab.pipeline import run_training

    try:
        result = run_training(cfg, list(HydraConfig.get().overrides.task))
    except TrainingDiverged as err:
        print(f"nnlab-train: training diverged ({err}); the run is marked FAILED", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as err:
        print(f"nnlab-train: {err or 'interrupted'}; the run is marked KILLED", file=sys.stderr)
        sys.exit(130)
    print_summary(result, cfg.tracking.experiment)
    return result.objective


if __name__ == "__main__":
    main()
