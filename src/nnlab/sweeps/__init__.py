"""Multiruns: the Hydra callback, the Optuna study, Ray and SLURM jobs."""
