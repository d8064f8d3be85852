"""Launchers checked against their plugins, and submitit's own job machinery for real: its
local executor pickles the job, runs it in a job folder, requeues it when it is preempted,
and collects its result; the requeued job must continue its MLflow run (nnlab/scheduler.py)."""

import dataclasses
import os
import signal
import threading
import time

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from nnlab.paths import CONF_DIR
from tests.commands import spawn_cli


def launcher_config(name: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", [f"hydra/launcher={name}"], return_hydra_config=True)
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=False)


def qualified(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def test_slurm_config_has_only_fields_the_plugin_defines():
    from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    config = launcher_config("nnlab_slurm")
    fields = {f.name for f in dataclasses.fields(SlurmQueueConf)}
    assert set(config) <= fields, set(config) - fields
    # (Hydra's plugin scan loads plugin modules itself: compare classes by name.)
    assert qualified(get_class(config["_target_"])) == qualified(SlurmLauncher)
    assert config["max_num_timeout"] > 0  # a timed-out job is requeued, and continues its run


def test_ray_config_has_only_fields_the_plugin_defines():
    from hydra_plugins.hydra_ray_launcher._config import RayConf, RayLauncherConf
    from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher

    config = launcher_config("nnlab_ray")
    assert set(config) <= {f.name for f in dataclasses.fields(RayLauncherConf)}
    assert set(config["ray"]) <= {f.name for f in dataclasses.fields(RayConf)}
    assert qualified(RayLauncher) in map(qualified, get_class(config["_target_"]).__mro__)


def children(store):
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("nnlab")
    runs = client.search_runs([exp.experiment_id]) if exp else []
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def preempt_first_job_after_a_checkpoint(store, stop: threading.Event, preempted: list):
    """SIGUSR2 (submitit's preemption signal) to the first job that has a checkpoint."""
    while not stop.is_set() and not preempted:
        for run in children(store):
            if run.info.status != "RUNNING":
                continue
            files = {
                a.path for a in MlflowClient(store).list_artifacts(run.info.run_id, "checkpoints")
            }
            if "checkpoints/last.ckpt" in files:
                os.kill(int(run.data.tags["mlflow.nnlab.pid"]), signal.SIGUSR2)
                preempted.append(run.info.run_id)
                return
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.timeout(1000)  # a whole sweep; its command has 900 s
def test_a_preempted_and_requeued_job_continues_its_run(store, tmp_path):
    stop, preempted = threading.Event(), []
    watcher = threading.Thread(
        target=preempt_first_job_after_a_checkpoint, args=(store, stop, preempted)
    )
    watcher.start()
    try:
        spawn_cli(
            "nnlab-train",
            "-m",
            "hydra/launcher=submitit_local",
            "optimizer.lr=0.01",
            "trainer.max_epochs=1500",
            "trainer.checkpoint_every_s=0.3",
            "data.n_samples=200",
            "trainer.progress=none",
            "tracking.log_model=false",
            check=True,
            timeout=900,
        )
    finally:
        stop.set()
        watcher.join()
    assert len(preempted) == 1, "the job finished before it could be preempted"
    (job,) = children(store)  # the requeued attempt made no second run
    assert job.info.run_id == preempted[0] and job.info.status == "FINISHED"
    history = MlflowClient(store).get_metric_history(job.info.run_id, "train/loss")
    steps = sorted(m.step for m in history)
    assert steps == list(range(1500))  # continued from its checkpoint: no epoch twice or lost
    # It went through submitit's own machinery: its job id recorded on the run (the same for
    # both attempts), its job folder holding the pickled job and the result the launcher
    # collected.
    assert job.data.tags["mlflow.nnlab.scheduler_job"].startswith("local:")
    folder = next((tmp_path / "hydra").rglob(".submitit"))
    assert list(folder.rglob("*_submitted.pkl")) and list(folder.rglob("*_result.pkl"))
