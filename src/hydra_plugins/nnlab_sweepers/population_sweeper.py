"""nnlab's population sweeper: Hydra's basic sweep, with the jobs that can share a population
grouped into one job each (nnlab.sweeps.population_jobs says which and how). Any launcher then
runs the groups: each population is one job of the basic, joblib, Ray or SLURM launcher.

    nnlab-train -m hydra/sweeper=nnlab_population optimizer.lr=0.001,0.01,0.1 seed=0,1,2
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from nnlab.sweeps.population_jobs import group_jobs, shares_a_population


class NnlabPopulationSweeper(BasicSweeper):
    def __init__(self, max_batch_size=None, params=None, max_members: int = 64) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.max_members = max_members
        self.jobs_launched = 0  # the original jobs so far: the next batch's first job number

    def get_job_batch(self) -> Sequence[Sequence[str]]:
        batch = super().get_job_batch()
        first = self.jobs_launched
        self.jobs_launched += len(batch)
        numbers = range(first, first + len(batch))
        return group_jobs(batch, numbers, self._can_share, self.max_members)

    def _can_share(self, overrides: Sequence[str]) -> bool:
        return shares_a_population(self.hydra_context, self.config, overrides, in_a_trial=False)
