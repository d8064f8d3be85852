"""Runs grouped by configuration (everything except the seeds): the statistics a reader needs
before believing that one configuration beats another.

A group is every run with the same `nnlab.group` tag (nnlab.config.seeds.group_id), however it was
made: a sweep's repeats, a `repeats=N` run, or plain runs with different seeds. Per group:
n, mean, 95% t interval, min and max of the objective and of each final test metric. Groups
are ranked by mean objective; a group whose interval overlaps the best one's is marked as not
distinguishable from it, and each gets the bootstrap probability that its mean beats the
best's (nnlab.stats says which interval and why). No torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from nnlab.nn.tasks import higher_is_better
from nnlab.report.tables import RunRow, _fmt
from nnlab.stats import (
    Ranked,
    difference_interval,
    probability_better,
    rank_groups,
    summarize,
)
from nnlab.tracking.store.names import GROUP_TAG, SEED_SUFFIX

SEED_KEYS = ("seed", "seeds.data", "seeds.init", "seeds.order")
OK = ("FINISHED", "SKIPPED")
SMALL_N = 5  # below this, resampling a handful of values understates the spread (nnlab.stats)


@dataclass
class Group:
    id: str
    label: str  # what tells it apart: the swept values, or the run name without its seed
    rows: list[RunRow] = field(default_factory=list)

    @property
    def finished(self) -> list[RunRow]:
        return [r for r in self.rows if r.status in OK and math.isfinite(r.objective)]

    @property
    def failed(self) -> int:
        return sum(r.status == "FAILED" for r in self.rows)

    def values(self, key: str | None = None) -> list[float]:
        """The objective (or metric `key`) of every finished member."""
        if key is None:
            return [r.objective for r in self.finished]
        return [r.metrics[key] for r in self.finished if key in r.metrics]


def group_label(row: RunRow, keys: Sequence[str]) -> str:
    shown = [k for k in keys if k not in SEED_KEYS]
    if shown:
        return " ".join(f"{k.rsplit('.', 1)[-1]}={_value(row, k)}" for k in shown)
    return row.name.rsplit(SEED_SUFFIX, 1)[0]


def group_rows(rows: Sequence[RunRow], keys: Sequence[str] = ()) -> list[Group]:
    """Rows by group, in order of first appearance. A run without a group tag (made before
    groups existed) is a group of its own."""
    groups: dict[str, Group] = {}
    for row in rows:
        gid = row.tags.get(GROUP_TAG) or f"run-{row.run_id[:12]}"
        groups.setdefault(gid, Group(gid, group_label(row, keys))).rows.append(row)
    return list(groups.values())


def objective_key(groups: Sequence[Group]) -> str | None:
    return next((r.objective_key for g in groups for r in g.rows if r.objective_key), None)


def ranked(groups: Sequence[Group]) -> list[tuple[Group, Ranked]]:
    key = objective_key(groups)
    if key is None:
        return []
    by_id = {g.id: g for g in groups}
    order = rank_groups({g.id: g.values() for g in groups}, higher_is_better(key))
    return [(by_id[r.group], r) for r in order]


GROUP_COLUMNS = ["group", "label", "rank", "n", "failed", "mean", "ci95", "min", "max"]
RANK_COLUMNS = ["vs_best", "p_beats_best"]
DETAIL_PARTS = ("ci_low", "ci_high", "min", "max")


def group_table(
    groups: Sequence[Group], metrics: Sequence[str] = (), detail: bool = False
) -> list[dict[str, str]]:
    """One dict per group, best first (objective: mean, 95% CI, min, max; each metric as
    mean ± half the CI, and with `detail` (for CSV files) also its interval, min and max in
    columns of their own); groups with no finished member come last."""
    extra = [f"{m} {part}" for m in metrics for part in DETAIL_PARTS] if detail else []
    columns = [*GROUP_COLUMNS, *RANK_COLUMNS, *metrics, *extra]
    lines = []
    ranked_groups = ranked(groups)
    for g, r in ranked_groups:
        s = r.summary
        line = dict.fromkeys(columns, "")
        line.update(
            group=g.id,
            label=g.label,
            rank=str(r.rank),
            n=str(s.n),
            failed=str(g.failed) if g.failed else "",
            mean=_fmt(s.mean),
            ci95="n=1: no interval" if s.ci_low is None else f"[{s.ci_low:.4g}, {s.ci_high:.4g}]",
            min=_fmt(s.min),
            max=_fmt(s.max),
            vs_best="best" if r.is_best else ("not distinguishable" if r.tied_with_best else ""),
            p_beats_best="" if r.p_beats_best is None else f"{r.p_beats_best:.3f}",
        )
        for m in metrics:
            ms = summarize(g.values(m))
            line[m] = "" if ms is None else _mean_ci(ms)
            if detail and ms is not None:
                parts = (ms.ci_low, ms.ci_high, ms.min, ms.max)
                line.update({f"{m} {k}": _fmt(v) for k, v in zip(DETAIL_PARTS, parts, strict=True)})
        lines.append(line)
    done = {g.id for g, _ in ranked_groups}
    for g in groups:
        if g.id not in done:
            line = dict.fromkeys(columns, "")
            line.update(group=g.id, label=g.label, n="0", failed=str(g.failed))
            lines.append(line)
    return lines


def _mean_ci(s) -> str:
    if s.ci_low is None:
        return f"{s.mean:.4g}"
    return f"{s.mean:.4g} ± {(s.ci_high - s.ci_low) / 2:.2g}"


def find_group(groups: Sequence[Group], name: str) -> Group:
    """A group by id (or a unique prefix of it) or by its exact label."""
    matches = [g for g in groups if g.id.startswith(name) or g.label == name]
    if len(matches) != 1:
        known = "; ".join(f"{g.id} ({g.label})" for g in groups)
        why = "no group" if not matches else "several groups"
        raise LookupError(f"{why} matches {name!r} (groups: {known})")
    return matches[0]


def compare(a: Group, b: Group) -> str:
    """A against B on the objective: difference of means with its 95% Welch interval, and the
    bootstrap probability that A's mean is better."""
    key = objective_key([a, b]) or "objective"
    xa, xb = a.values(), b.values()
    sa, sb = summarize(xa), summarize(xb)
    if sa is None or sb is None:
        return f"cannot compare: {'A' if sa is None else 'B'} has no finished run"
    lines = [
        f"A  {a.label} ({a.id}): {key} mean {sa.mean:.5g} {sa.interval_text(5)}, n={sa.n}",
        f"B  {b.label} ({b.id}): {key} mean {sb.mean:.5g} {sb.interval_text(5)}, n={sb.n}",
    ]
    diff = difference_interval(xa, xb)
    if diff is None:
        lines.append(f"A - B = {sa.mean - sb.mean:.5g}: no interval (a group has n < 2)")
        return "\n".join(lines)
    d, low, high = diff
    p = probability_better(xa, xb, higher_is_better(key))
    direction = "higher" if higher_is_better(key) else "lower"
    verdict = (
        "the interval holds 0: not distinguishable at 95%"
        if low <= 0 <= high
        else f"A is {'better' if (d > 0) == higher_is_better(key) else 'worse'} at 95%"
    )
    lines.append(f"A - B = {d:.5g}, 95% CI [{low:.5g}, {high:.5g}] (Welch t): {verdict}")
    caveat = "" if min(sa.n, sb.n) >= SMALL_N else f"; overconfident with n < {SMALL_N}"
    lines.append(f"P(A's mean is better, {direction} is better) = {p:.3f} (bootstrap{caveat})")
    return "\n".join(lines)


def has_repeats(groups: Sequence[Group]) -> bool:
    return any(len(g.rows) > 1 for g in groups)


def group_figures(client, groups: Sequence[Group], keys: Sequence[str], title: str = "") -> dict:
    """The figures of a sweep with repeats, keyed by file name:

    group_curves.png             train and val loss per group: mean, band from min to max
    objective_vs_<key>.png       objective against each swept key: mean and 95% CI per group
    """
    # lazy: matplotlib loads only when group figures are drawn
    from nnlab.plots.group_figures import group_curves_figure, objective_errorbar_figure
    from nnlab.tracking.store.queries import metric_history

    key = objective_key(groups) or "objective"
    losses = ("train/loss", "val/loss")
    histories = {
        g.label: [
            {k: metric_history(client, r.run_id, k) for k in losses}
            for r in g.rows
            if r.status in ("FINISHED", "FAILED", "SKIPPED")
        ]
        for g in groups
    }
    failed = {g.label: g.failed for g in groups}
    figures = {"group_curves.png": group_curves_figure(histories, losses, failed, title)}
    swept = [k for k in keys if k not in SEED_KEYS]
    for k in swept:
        others = [o for o in swept if o != k]
        points = [
            (
                _value(g.rows[0], k),
                " ".join(f"{o.rsplit('.', 1)[-1]}={_value(g.rows[0], o)}" for o in others),
                g.values(),
                g.failed,
            )
            for g in groups
        ]
        figures[f"objective_vs_{k}.png"] = objective_errorbar_figure(
            points, k, key, log_x=k == "optimizer.lr", title=title
        )
    return figures


def _value(row: RunRow, key: str) -> str:
    """A swept value as people write it: 1e+09, not Hydra's 1000000000.0."""
    text = row.overrides.get(key, row.params.get(key, ""))
    try:
        return f"{float(text):g}"
    except ValueError:
        return text
