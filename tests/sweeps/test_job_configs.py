"""A sweep composes each job's config once before it starts: the sweep's check and the
population sweeper's grouping share them (nnlab.sweeps.job_configs), and what the grouping
sees is what Hydra composes for that job."""

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import HydraContext
from omegaconf import OmegaConf, open_dict

from nnlab.paths import CONF_DIR


def test_the_check_and_the_grouping_compose_each_job_once(monkeypatch):
    from nnlab.sweeps.job_configs import composed_job
    from nnlab.sweeps.population_jobs import shares_a_population
    from nnlab.sweeps.sweep_check import grid_jobs, sweep_problems

    task = ["optimizer.lr=0.01,0.1", "model.activation=relu,tanh", "repeats=2"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        fixed = ["hydra/sweeper=nnlab_population", "repeats=2"]
        cfg = compose("train", fixed, return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.overrides.task = task
        loader = GlobalHydra.instance().config_loader()
        composed = []
        real = type(loader).load_sweep_config

        def counted(self, master_config, sweep_overrides):  # Hydra's own, counted
            composed.append(tuple(sweep_overrides))
            return real(self, master_config, sweep_overrides)

        monkeypatch.setattr(type(loader), "load_sweep_config", counted)
        assert sweep_problems(cfg) == []
        jobs = grid_jobs(cfg)
        context = HydraContext(config_loader=loader, callbacks=None)
        assert all(shares_a_population(context, cfg, job, in_a_trial=False) for job in jobs)
        assert sorted(composed) == sorted(tuple(job) for job in jobs)  # four jobs, once each

        job = composed_job(loader, cfg, jobs[3])
        assert (job.optimizer.lr, job.model.activation) == (0.1, "tanh")
        fresh = real(loader, cfg, list(jobs[3]))
        assert OmegaConf.to_yaml(job) == OmegaConf.to_yaml(fresh)
        job.optimizer.lr = 5.0  # a copy: the next caller gets the job's own config
        assert composed_job(loader, cfg, jobs[3]).optimizer.lr == 0.1
