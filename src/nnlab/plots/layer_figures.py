"""`plots/layers.png` (tracking.watch, nnlab.training.layer_watch): inside the network over
epochs, one line per layer. Gradient norms, weight norms and update ratios on log axes (they
span decades; the update ratio's "about 1e-3" is marked), and the dead or saturated share of
each hidden layer's units on a panel of its own (0 to 1)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from matplotlib.figure import Figure

from nnlab.plots.run_figures import Curve

LAYER_KEY = re.compile(r"^layers/(\d+)/(\w+)$")
PANELS = (
    ("grad_norm", "gradient norm", True),
    ("weight_norm", "weight norm", True),
    ("update_ratio", "update / weight norm", True),
)
SHARES = {"dead_fraction": "dead units (never active)", "saturated_fraction": "saturated share"}


def layer_curves(history: Mapping[str, Curve]) -> dict[str, dict[int, Curve]]:
    """quantity -> layer -> its curve, from a run's history."""
    found: dict[str, dict[int, Curve]] = {}
    for key, curve in history.items():
        match = LAYER_KEY.match(key)
        if match:
            found.setdefault(match.group(2), {})[int(match.group(1))] = list(curve)
    return found


def layers_figure(history: Mapping[str, Curve], title: str = "") -> Figure:
    curves = layer_curves(history)
    share = next((name for name in SHARES if name in curves), None)
    fig = Figure(figsize=(15, 4))
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.13, top=0.83, wspace=0.38)
    axes = fig.subplots(1, 4)
    for ax, (name, label, log) in zip(axes, PANELS, strict=False):
        for layer, curve in sorted(curves.get(name, {}).items()):
            epochs, values = zip(*curve, strict=True) if curve else ((), ())
            ax.plot(epochs, values, marker=".", label=f"layer {layer}")
        if log and any(v > 0 for c in curves.get(name, {}).values() for _, v in c):
            ax.set_yscale("log")
        ax.set(xlabel="epoch", ylabel=label, title=label)
        if name == "update_ratio":
            ax.axhline(1e-3, color="grey", linestyle=":", linewidth=1)
            # Labelled at the right end, clear of the first epochs where the ratios start high.
            ax.annotate(
                "1e-3",
                (0.99, 1e-3),
                xycoords=("axes fraction", "data"),
                xytext=(0, 2),
                textcoords="offset points",
                ha="right",
                va="bottom",
                color="grey",
                fontsize=8,
            )
        ax.legend(fontsize=8)
    share_ax = axes[3]
    if share is None:
        share_ax.text(0.5, 0.5, "no dead/saturated share\nfor this activation", ha="center",
                      va="center", transform=share_ax.transAxes, color="grey")  # fmt: skip
        share_ax.set_axis_off()
    else:
        for layer, curve in sorted(curves[share].items()):
            epochs, values = zip(*curve, strict=True) if curve else ((), ())
            share_ax.plot(epochs, values, marker=".", label=f"layer {layer}")
        share_ax.set(
            xlabel="epoch", ylabel="share of units", title=SHARES[share], ylim=(-0.03, 1.03)
        )
        share_ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def gradient_flow_figure(flows: Mapping[str, Mapping[str, list[float]]], epochs, title=""):
    """A sweep's `plots/gradient_flow.png`: each configuration's gradient norm per layer, at
    the first watched epoch (dashed) and the last (solid). Vanishing gradients show as a slope
    down towards the first layer. `flows`: label -> {"first": [...], "last": [...]}, one value
    per layer; `epochs`: (first, last)."""
    fig = Figure(figsize=(8, 4.5))
    fig.subplots_adjust(left=0.11, right=0.70, bottom=0.13, top=0.84)
    ax = fig.subplots()
    colours = [f"C{i % 10}" for i in range(len(flows))]
    for colour, (label, flow) in zip(colours, sorted(flows.items()), strict=True):
        for when, style in (("first", "--"), ("last", "-")):
            values = flow.get(when) or []
            shown = label if when == "last" else None  # one legend entry per configuration
            ax.plot(range(1, len(values) + 1), values, style, color=colour, marker="o", label=shown)
    ax.set_yscale("log")
    ax.set(xlabel="layer (1 = next to the inputs)", ylabel="gradient norm", title=title)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(
        fontsize=8,
        title=f"dashed: epoch {epochs[0]}\nsolid: epoch {epochs[1]}",
        title_fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    return fig
