"""`hydra/launcher=nnlab_ray`: hydra-ray-launcher's RayLauncher, with two changes. (Hydra
loads launchers only from the `hydra_plugins` namespace, hence this package's place.)

1. What a job needs travels with the job. A Ray worker on another node does not inherit the
   driver's environment (ray#2260, #38891), so the sweep's parent run id, its swept keys and
   the tracking URI go in each task's `runtime_env.env_vars`, read when the sweep launches
   (after nnlab.sweeps.callback opened the parent).
2. One job's failure is that job's. Upstream, `ray.get` on a task whose worker died raises and
   ends the whole sweep. Here such a job returns NaN, like any failed nnlab job, and the sweep
   goes on; its run, left RUNNING by the killed process, is closed FAILED by the sweep's end
   (nnlab.sweeps.callback closes every child still RUNNING once all jobs have returned).

The Ray head must be reachable before anything is created: nnlab checks it first and fails
in one line naming the address (nnlab.sweeps.ray_jobs.check_head).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, setup_globals
from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher
from omegaconf import OmegaConf, open_dict

from nnlab.sweeps.ray_jobs import job_environment

log = logging.getLogger(__name__)


class NnlabRayLauncher(RayLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int):
        # Hydra imports every plugin module at start-up: Ray loads only when this launches.
        import ray
        from hydra_plugins.hydra_ray_launcher._launcher_util import launch_job_on_ray, start_ray

        setup_globals()
        config = self.config
        Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        start_ray(self.ray_cfg.init)
        env = job_environment(OmegaConf.select(config, "tracking.uri"))
        remote = OmegaConf.to_container(self.ray_cfg.remote, resolve=True) or {}
        runtime_env = dict(remote.get("runtime_env") or {})
        runtime_env["env_vars"] = {**(runtime_env.get("env_vars") or {}), **env}
        remote["runtime_env"] = runtime_env
        pending = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            sweep_config = self.hydra_context.config_loader.load_sweep_config(
                config, list(overrides)
            )
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = f"ray_{idx}"
                sweep_config.hydra.job.num = idx
            task = launch_job_on_ray(
                self.hydra_context,
                OmegaConf.create(remote),
                sweep_config,
                self.task_function,
                Singleton.get_state(),
            )
            pending.append((overrides, task))
        results = []
        for overrides, task in pending:
            try:
                results.append(ray.get(task))
            except ray.exceptions.RayError as err:  # the worker died, or Ray lost the task
                reason = str(err).splitlines()[0]
                print(f"nnlab-train: job {' '.join(overrides)}: lost in Ray ({reason})", flush=True)
                results.append(
                    JobReturn(
                        overrides=list(overrides),
                        status=JobStatus.COMPLETED,
                        _return_value=math.nan,
                    )
                )
        return results
