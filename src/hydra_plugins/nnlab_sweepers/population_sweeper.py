"""nnlab's population sweeper: Hydra's basic sweep, with the jobs that can share a population
grouped into one job each (nnlab.sweeps.population_jobs says which and how). Any launcher then
runs the groups: each population is one job of the basic, joblib, Ray or SLURM launcher.

    nnlab-train -m hydra/sweeper=nnlab_population optimizer.lr=0.001,0.01,0.1 seed=0,1,2
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from nnlab.config.member_keys import why_not_population
from nnlab.sweeps.population_jobs import group_jobs


class NnlabPopulationSweeper(BasicSweeper):
    def __init__(self, max_batch_size=None, params=None, max_members: int = 64) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.max_members = max_members
        self.jobs_launched = 0  # the original jobs so far: the next batch's first job number

    def get_job_batch(self) -> Sequence[Sequence[str]]:
        batch = super().get_job_batch()
        first = self.jobs_launched
        self.jobs_launched += len(batch)
        return group_jobs(batch, first, self._can_share, self.max_members)

    def _can_share(self, overrides: Sequence[str]) -> bool:
        """Whether that job's config lets it train as members (an elementwise optimizer on the
        cpu, populations not turned off, not a resumed run)."""
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        if cfg.resume is not None:
            return False
        if cfg.trainer.get("population", "auto") is False:
            return False
        return why_not_population(cfg, in_a_trial=False) is None  # trials have their sweeper
