"""Where a run's randomness comes from, and the seeds of a group of repeats.

Three sources, each with its own seed:
- data:  which samples are drawn and how they are split (nnlab.data.splits.make_splits);
- init:  the initial weights (nnlab.nn.scratch.init_params, shared by every backend);
- order: the order of the mini-batches in each epoch (nnlab.data.splits.TensorBatches).
`seed` is the default for all three; `seeds.data`, `seeds.init` and `seeds.order` set one
alone. With `repeats=N`, member k of the group runs with `seed + k`, and a source whose seed is
set explicitly stays fixed: `seeds.data=0 repeats=5` repeats over initialisations and batch
orders on one fixed dataset. Member k is exactly the plain run `seed=<seed + k>` with the same
`seeds.*`, so it can be reproduced, resumed and compared on its own.

No torch here: the config check and the reports use it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

SOURCES = ("data", "init", "order")
# What does not change what a group computes: the seeds, the number of repeats, where the
# runs are recorded, and which run to resume.
NOT_PART_OF_GROUP = ("seed", "seeds", "repeats", "tracking", "resume", "hydra")
# Trainer settings that change how a run is computed but not its numbers: a population's
# members equal their plain runs (nnlab.training.population).
NOT_PART_OF_RESULT = ("population",)


def what_it_computes(cfg: DictConfig) -> dict:
    """The resolved config without the trainer settings of NOT_PART_OF_RESULT."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("sweep_members", None)  # which jobs trained together, not what each computed
    for key in NOT_PART_OF_RESULT:
        (plain.get("trainer") or {}).pop(key, None)
    return plain


@dataclass(frozen=True)
class Seeds:
    data: int
    init: int
    order: int


def effective_seeds(cfg: DictConfig) -> Seeds:
    """The seed each source uses: its own if set, else `seed`."""
    own = cfg.get("seeds") or {}
    return Seeds(*(int(own.get(s)) if own.get(s) is not None else int(cfg.seed) for s in SOURCES))


def varied_sources(cfg: DictConfig) -> list[str]:
    """The sources a group of repeats varies: those without their own seed."""
    own = cfg.get("seeds") or {}
    return [s for s in SOURCES if own.get(s) is None]


def member_config(cfg: DictConfig, k: int) -> DictConfig:
    """Member k of the group of `cfg`: the plain run (repeats=1) with seed + k."""
    member = OmegaConf.to_container(cfg, resolve=True)
    member["seed"] = int(cfg.seed) + k
    member["repeats"] = 1
    return OmegaConf.create(member)


def group_id(cfg: DictConfig) -> str:
    """Identifies a configuration without its seeds: every run with the same id is a sample of
    the same experiment ("group by everything except seed"), whichever command made it."""
    plain = what_it_computes(cfg)
    for key in NOT_PART_OF_GROUP:
        plain.pop(key, None)
    digest = hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()
    # The sources that vary belong to the group: repeats over init on fixed data are a
    # different experiment from repeats over everything.
    fixed = {s: v for s, v in (cfg.get("seeds") or {}).items() if v is not None}
    return hashlib.sha256(f"{digest}{sorted(fixed.items())}".encode()).hexdigest()[:12]
