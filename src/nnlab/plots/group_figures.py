"""The figures of a sweep with repeats: each configuration as a mean with its spread, never as
N loose lines; and an Optuna search as objective against trial number.

Like nnlab.plots.run_figures: plain inputs, a matplotlib Figure out, no pyplot. Failed and diverged
runs
are always shown (counted in the legend, or marked with a red x), never silently missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from nnlab.plots.run_figures import Curve, spans_decades
from nnlab.plots.sweep_figures import mark_failed, sort_key
from nnlab.stats import summarize


def group_curves_figure(
    groups: Mapping[str, Sequence[Mapping[str, Curve]]],
    keys: Sequence[str],
    failed: Mapping[str, int] | None = None,
    title: str = "",
) -> Figure:
    """One chart per metric key: per group (label -> its members' histories), the mean curve
    with a band from the lowest to the highest member at each epoch."""
    failed = failed or {}
    fig = Figure(figsize=(5.5 * len(keys) + 2, 4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(keys)))
    colours = [f"C{i % 10}" for i in range(len(groups))]
    for ax, key in zip(axes, keys, strict=True):
        everything = []
        for colour, (label, members) in zip(colours, groups.items(), strict=True):
            epochs, mean, low, high = _band([m.get(key, []) for m in members])
            n = sum(1 for m in members if m.get(key))
            shown = f"{label} (n={n}" + (f", {failed[label]} failed)" if failed.get(label) else ")")
            ax.plot(epochs, mean, color=colour, label=shown)
            ax.fill_between(epochs, low, high, color=colour, alpha=0.2, linewidth=0)
            everything += [(0, v) for v in (*low, *high)]
        ax.set(xlabel="epoch", ylabel=key, title=f"{key}: mean, band = min to max over seeds")
        if spans_decades(everything):
            ax.set_yscale("log")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fig.suptitle(title)
    return fig


def _band(curves: Sequence[Curve]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Mean, min and max at each epoch over the curves that reach it (finite values only)."""
    by_epoch: dict[int, list[float]] = {}
    for curve in curves:
        for epoch, value in curve:
            if math.isfinite(value):
                by_epoch.setdefault(epoch, []).append(value)
    epochs = sorted(by_epoch)
    values = [np.asarray(by_epoch[e]) for e in epochs]
    return (
        epochs,
        [float(v.mean()) for v in values],
        [float(v.min()) for v in values],
        [float(v.max()) for v in values],
    )


def objective_errorbar_figure(
    points: Sequence[tuple[object, str, Sequence[float], int]],
    x_label: str,
    objective: str,
    log_x: bool = False,
    title: str = "",
) -> Figure:
    """Objective against one swept value: per group (x, label of the other swept values, its
    members' objectives, how many failed) the mean with a 95% t-interval error bar. A group
    with one value has a point and no bar; a group whose members all failed is a red x."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    numeric = all(sort_key(x)[0] == 0 for x, _, _, _ in points)
    categories = sorted({str(x) for x, _, _, _ in points}, key=sort_key)

    def position(x):
        return float(x) if numeric else categories.index(str(x))

    lines: dict[str, list] = {}
    for x, label, values, _ in points:
        lines.setdefault(label, []).append((x, summarize(values)))
    means = [(0, s.mean) for pts in lines.values() for _, s in pts if s is not None]
    log_y = spans_decades(means) and all(m > 0 for _, m in means)
    floor = min((m for _, m in means), default=1.0) / 10  # where a bar reaching <= 0 stops
    for i, (label, pts) in enumerate(lines.items()):
        pts = sorted((p for p in pts if p[1] is not None), key=lambda p: sort_key(p[0]))
        if not pts:
            continue
        xs = [position(x) for x, _ in pts]
        means = [s.mean for _, s in pts]
        low = [
            s.mean - (max(s.ci_low, floor) if log_y else s.ci_low) if s.ci_low is not None else 0.0
            for _, s in pts
        ]
        high = [s.ci_high - s.mean if s.ci_high is not None else 0.0 for _, s in pts]
        ax.errorbar(
            xs,
            means,
            yerr=[low, high],
            marker="o",
            capsize=4,
            color=f"C{i % 10}",
            label=label or None,
        )
    lost = [(x, n) for x, _, values, n in points if n and not summarize(values)]
    partly = sum(n for _, _, values, n in points if n and summarize(values))
    if lost:
        mark_failed(ax, [position(x) for x, _ in lost], f"every seed failed ({len(lost)})")
    if partly:
        ax.plot([], [], " ", label=f"{partly} more failed seed(s) left out of the means")
    if log_x and numeric and all(float(x) > 0 for x, _, _, _ in points):
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")  # one diverging configuration would flatten all the others
    if not numeric:
        ax.set_xticks(range(len(categories)), categories, rotation=20)
    ax.set(xlabel=x_label, ylabel=objective, title=title or f"{objective} vs {x_label}")
    ax.text(
        0.0,
        -0.16,
        "mean over seeds, bar = 95% t interval (none when n = 1)"
        + ("; log scale: a bar reaching 0 is cut" if log_y else ""),
        transform=ax.transAxes,
        fontsize=8,
        color="0.35",
    )
    if ax.get_legend_handles_labels()[0]:  # one unlabelled series needs no legend (or warning)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return fig


def objective_vs_trial_figure(
    trials: Sequence[tuple[int, float]], objective: str, higher_is_better: bool, title: str = ""
) -> Figure:
    """A search's history: each trial's objective by trial number, the best so far as a step
    line, failed trials (NaN) as red x marks at the bottom."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    trials = sorted(trials)
    ok = [(t, v) for t, v in trials if math.isfinite(v)]
    if ok:
        ax.scatter(*zip(*ok, strict=True), color="C0", label="trial", zorder=3)
        best, running = [], None
        for t, v in ok:
            better = running is None or (v > running if higher_is_better else v < running)
            running = v if better else running
            best.append((t, running))
        ax.step(*zip(*best, strict=True), where="post", color="C1", label="best so far")
    bad = [t for t, v in trials if not math.isfinite(v)]
    if bad:
        mark_failed(ax, bad, f"failed ({len(bad)})")
    if spans_decades(ok):
        ax.set_yscale("log")
    ax.set(xlabel="trial", ylabel=objective, title=title or f"{objective} by trial")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return fig
