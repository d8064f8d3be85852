"""Which config keys may differ between the members of one population.

Members are stacked into one network (nnlab.nn.population_nets), so they must share its
shape, backend, data pipeline and optimizer class (any torch.optim one: an optimizer that
looks across a tensor's elements steps each member alone, nnlab.training.member_optimizer).
What may differ, member by member:
- the seeds (a group's repeats);
- the optimizer's hyperparameters (lr, weight decay, momentum, betas, ...): stacked one per
  member, or a parameter group per setting (nnlab.training.member_optimizer);
- `model.l1` (a penalty weighted per member) and `model.init` (weights drawn per member);
- the widths of the hidden layers, when the depth is the same (nnlab.nn.padding).

A sweep's jobs that differ only in these train as one population (hydra_plugins'
nnlab_population sweeper). No torch here: the sweeper and the config check read it.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

SEED_KEYS = ("seed", "seeds.data", "seeds.init", "seeds.order")
MODEL_MEMBER_KEYS = ("model.l1", "model.init")
# optimizer.<anything> but these, which choose the optimizer rather than set it
OPTIMIZER_CHOICE_KEYS = ("optimizer._target_", "optimizer._partial_")
# Widths may differ too, between members of one depth: each layer is padded to the widest.
WIDTH_KEY = "model.hidden"


def is_member_key(key: str) -> bool:
    """Whether `key` (dotted, as in an override) may differ between members."""
    key = key.lstrip("+~")
    if key in SEED_KEYS or key in MODEL_MEMBER_KEYS:
        return True
    return key.startswith("optimizer.") and key not in OPTIMIZER_CHOICE_KEYS


def optimizer_settings(cfg: DictConfig) -> dict:
    """The optimizer's hyperparameters as a parameter group takes them (lists as tuples)."""
    plain = OmegaConf.to_container(cfg.optimizer, resolve=True)
    return {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in plain.items()
        if f"optimizer.{k}" not in OPTIMIZER_CHOICE_KEYS
    }


def members_differ_in_optimizer(members: list[DictConfig]) -> bool:
    first = optimizer_settings(members[0])
    return any(optimizer_settings(m) != first for m in members[1:])


def why_not_population(cfg: DictConfig, in_a_trial: bool = False) -> str | None:
    """Why `cfg`'s repeats cannot train as one population (one line), or None if they can.
    `in_a_trial`: the job is an Optuna trial (nnlab.sweeps.study.job_is_a_trial)."""
    if cfg.trainer.accelerator != "cpu":  # "auto" may pick a GPU for a plain run
        return f"trainer.accelerator={cfg.trainer.accelerator}: populations train on the cpu"
    if in_a_trial:
        # The trial follows one run: its pruning reports, its objectives, its recovery.
        return "an Optuna trial follows one run (its pruner, objectives and recovery)"
    return None
