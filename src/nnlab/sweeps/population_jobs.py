"""A sweep's jobs trained as populations: which jobs share one, and how a job carries them.

The nnlab_population sweeper (hydra_plugins.nnlab_sweepers.population_sweeper) expands the
sweep as Hydra's basic sweeper does, then groups the jobs whose overrides differ only in
member keys (nnlab.config.member_keys: seeds, optimizer settings, l1, init) or in the widths
of as many hidden layers (padded, nnlab.nn.padding), and whose configs allow a population.
Each group becomes one job of whatever launcher runs the sweep (basic, joblib, Ray, SLURM):
the group's shared overrides plus `sweep_members=[...]`, one entry per original job,
'<job num>|<override>|<override>...'. That job trains the members together, and each member
is still its own run under the sweep's parent, with its own job number and overrides,
exactly as if it had run alone (tests/sweeps/test_population_sweeper.py).

No torch here: the sweeper runs in the launching process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from omegaconf import DictConfig, OmegaConf

from nnlab.config.member_keys import WIDTH_KEY, is_member_key

MEMBERS_KEY = "sweep_members"
SEPARATOR = "|"


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def group_jobs(
    batch: Sequence[Sequence[str]],
    numbers: Sequence[int],
    can_share: Callable[[Sequence[str]], bool],
    max_members: int,
) -> list[list[str]]:
    """`batch`: each job's overrides, with its job number in `numbers` (an Optuna trial's job
    has its trial's number). Returns the jobs to launch, in
    the order of their first member; each carries MEMBERS_KEY, so that its runs keep their
    original job numbers: ['<num>'] for a job that runs alone, one entry per member for a
    group. `can_share(overrides)`: whether that job's config allows a population."""
    # (the overrides to launch with, [(job num, its member overrides, all its overrides)])
    launched: list[tuple[list[str], list[tuple[int, list[str], list[str]]]]] = []
    open_groups: dict[tuple[str, ...], list[tuple[int, list[str], list[str]]]] = {}
    for num, overrides in zip(numbers, batch, strict=True):
        overrides = list(overrides)
        members = [o for o in overrides if _varies_per_member(o)]
        shared = tuple(o for o in overrides if not _varies_per_member(o))
        # Widths are padded within a population (nnlab.nn.padding); depths are not.
        together = (*shared, *(f"depth {_depth(o)}" for o in members if _key(o) == WIDTH_KEY))
        quoted = any(c in o for o in members for c in "'\"" + SEPARATOR)
        if quoted or not can_share(overrides):
            launched.append((overrides, [(num, [], overrides)]))
            continue
        group = open_groups.get(together)
        if group is None or len(group) >= max_members:
            group = open_groups[together] = []
            launched.append((list(shared), group))
        group.append((num, members, overrides))
    jobs = []
    for shared, group in launched:
        if len(group) == 1:  # a job alone: launched as it was
            num, _, shared = group[0]
            group = [(num, [], shared)]
        entries = ",".join(f"'{SEPARATOR.join([str(n), *m])}'" for n, m, _ in group)
        jobs.append([*shared, f"{MEMBERS_KEY}=[{entries}]"])
    return jobs


def _varies_per_member(override: str) -> bool:
    key = _key(override)
    return is_member_key(key) or (key == WIDTH_KEY and _depth(override) is not None)


def _depth(override: str) -> int | None:
    """How many hidden layers `model.hidden=[...]` asks for (None: not a plain list)."""
    # lazy: the override parser loads when a sweep groups jobs
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        value = OverridesParser.create().parse_override(override).value()
    except Exception:  # Hydra's own error comes when the job composes
        return None
    return len(value) if isinstance(value, list) else None


def shares_a_population(hydra_context, sweep_config, overrides, in_a_trial: bool) -> bool:
    """Whether that job's config lets it train as a member: an elementwise optimizer on the
    cpu, populations not turned off, not a resumed run, and for an Optuna trial, no repeats
    (a trial follows one run: nnlab.config.member_keys.why_not_population)."""
    # lazy: the override parser loads when a sweep groups jobs
    from nnlab.config.member_keys import why_not_population
    from nnlab.sweeps.job_configs import composed_job

    cfg = composed_job(hydra_context.config_loader, sweep_config, overrides)
    if cfg.resume is not None or cfg.trainer.get("population", "auto") is False:
        return False
    if in_a_trial and int(cfg.repeats) > 1:
        return False
    return why_not_population(cfg) is None


def members_of(job: Sequence[str]) -> list[int]:
    """The job numbers a launched job (from group_jobs) trains."""
    # lazy: the override parser loads when a sweep groups jobs
    from hydra.core.override_parser.overrides_parser import OverridesParser

    override = next(o for o in job if o.startswith(f"{MEMBERS_KEY}="))
    entries = OverridesParser.create().parse_override(override).value()
    return [num for num, _ in decode(entries)]


def decode(entries: Sequence[str]) -> list[tuple[int, list[str]]]:
    """MEMBERS_KEY's value -> [(job num, the job's member overrides)]."""
    decoded = []
    for entry in entries:
        num, *overrides = str(entry).split(SEPARATOR)
        decoded.append((int(num), overrides))
    return decoded


def job_config(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The group job's config with one member's overrides applied: that job's own config."""
    # lazy: the override parser loads when a sweep groups jobs
    from hydra.core.override_parser.overrides_parser import OverridesParser

    member = OmegaConf.to_container(cfg, resolve=True)
    member.pop(MEMBERS_KEY, None)
    member = OmegaConf.create(member)
    for override in OverridesParser.create().parse_overrides(overrides):
        OmegaConf.update(member, override.key_or_group, override.value(), force_add=True)
    return member
