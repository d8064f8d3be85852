"""Each job's composed config, composed once per sweep.

Before any job runs, the sweep's check (nnlab.sweeps.sweep_check) composes every job's config
to check it, and the population sweeper composes them again to see which can share a
population (nnlab.sweeps.population_jobs). Hydra takes ~0.15 s a job here, and both ask with
the same sweep config and overrides, so the second asks this cache. Only the latest sweep's
configs are kept; the sweep config is held, so that its identity means this sweep.
"""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig

_sweep: DictConfig | None = None
_composed: dict[tuple[str, ...], DictConfig] = {}


def composed_job(config_loader, sweep_config: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """The config (hydra node included) Hydra composes for the job with `overrides`: a copy,
    free to change."""
    global _sweep, _composed
    if sweep_config is not _sweep:
        _sweep, _composed = sweep_config, {}
    key = tuple(overrides)
    if key not in _composed:
        _composed[key] = config_loader.load_sweep_config(sweep_config, list(overrides))
    return _composed[key].copy()
