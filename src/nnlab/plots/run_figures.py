"""Every figure nnlab draws, each a function returning a matplotlib Figure.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot): no global state, no
display needed, safe in parallel sweep workers. Inputs are plain NumPy arrays and dicts so
that runs, sweeps and reports can all draw with the same functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

Curve = Sequence[tuple[int, float]]  # [(epoch, value), ...]
FIGURE_DPI = 90  # a run's figures: sharp in the UI's artifact view, ~60 KB each

CLASS_COLOURS = "tab10"


class Tabulated:
    """A model's outputs computed beforehand, standing in for its predict function: a figure
    drawn in another process (nnlab.plots.background) gets the outputs, not the network. It
    answers only the inputs it was computed on (the figure's own grid: boundary_grid,
    regression_line), so a figure cannot silently draw other values."""

    def __init__(self, inputs: np.ndarray, outputs: np.ndarray):
        self.inputs, self.outputs = inputs, outputs

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.shape != self.inputs.shape or not np.array_equal(x, self.inputs):
            raise ValueError("Tabulated: asked for inputs it was not computed on")
        return self.outputs


def boundary_grid(x: np.ndarray, resolution: int = 200):
    """The plane under a decision-boundary figure of the points x: (gx, gy, grid as (n, 2))."""
    pad = 0.5
    (x0, y0), (x1, y1) = x.min(axis=0) - pad, x.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    return gx, gy, np.c_[gx.ravel(), gy.ravel()]


def regression_line(x: np.ndarray) -> np.ndarray:
    """Where a 1-input regression figure draws the model's line."""
    return np.linspace(x.min(), x.max(), 300).reshape(-1, 1)


def plot_curve(ax, curve: Curve, label: str, **style) -> None:
    # Drawn even when empty (a job that failed at once): it keeps its colour and legend entry
    # in every chart, so the same job has the same colour side by side.
    epochs, values = zip(*curve, strict=True) if curve else ((), ())
    ax.plot(epochs, values, label=label, **style)


def curves_figure(
    history: Mapping[str, Curve], metric: str, title: str = "", into: Figure | None = None
) -> Figure:
    """Loss (train and val on one chart) beside the validation `metric` curve. `into`: a
    figure this function drew before, already saved, to draw over (see `drawn_over`)."""
    if into is None:
        # Fixed margins, not layout="constrained": every run draws this figure, and constrained
        # layout's solver was 0.15 s of its 0.25 s save; two charts of one shape need no solver.
        fig = Figure(figsize=(10, 4))
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.84, wspace=0.22)
        fig.subplots(1, 2)
    else:
        fig = drawn_over(into)
    loss_ax, metric_ax = fig.axes
    plot_curve(loss_ax, history.get("train/loss", []), "train")
    plot_curve(loss_ax, history.get("val/loss", []), "val")
    # A title at a fixed height: placing it automatically measures every tick label (a tenth of
    # the figure's drawing), and these axes have nothing above them to avoid.
    loss_ax.set(xlabel="epoch", ylabel="loss")
    loss_ax.set_title("loss", y=1.0)
    if spans_decades(history.get("train/loss", [])):
        loss_ax.set_yscale("log")
    loss_ax.legend()
    plot_curve(metric_ax, history.get(f"val/{metric}", []), "val", color="tab:orange")
    metric_ax.set(xlabel="epoch", ylabel=metric)
    metric_ax.set_title(f"val/{metric}", y=1.0)
    fig.suptitle(title)
    return fig


def drawn_over(fig: Figure) -> Figure:
    """`fig`, drawn and saved already, cleared for the next figure of its kind: its axes keep
    their ticks, everything drawn on them goes (artists, legends, log scales, the colour cycle,
    the data limits). Most of a small figure's drawing is its axes' ticks, made anew for every
    new figure: a population's figures drawn over one figure of each kind cost ~35% less, and
    come out the same, pixel for pixel (tests/plots/test_figures.py)."""
    for ax in fig.axes:
        for artist in [*ax.lines, *ax.collections, *ax.patches, *ax.images, *ax.texts]:
            artist.remove()
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
        ax.set_xscale("linear")
        ax.set_yscale("linear")
        ax.set_prop_cycle(None)  # the next line takes the first colour again
        ax.relim()  # no artists left: the next ones set the limits alone
        ax.set_autoscale_on(True)
    return fig


def spans_decades(curve: Curve) -> bool:
    values = np.array([v for _, v in curve], dtype=float)
    values = values[np.isfinite(values)]
    return len(values) > 1 and values.min() > 0 and values.max() / values.min() > 100


def decision_boundary_figure(
    predict: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    title: str = "",
    ax=None,
    resolution: int = 200,
    into: Figure | None = None,
) -> Figure:
    """The model's decision regions over the plane, with the points `x`, `y` on top.

    `predict` maps (N, 2) inputs to class probabilities: (N,) for binary (probability of class
    1, shown as a shaded map with the 0.5 contour), (N, K) for K classes (shown as regions).
    `ax`: draw on these axes; `into`: a figure this function drew before, already saved, to
    draw over (`drawn_over`).
    """
    if into is not None:
        ax = drawn_over(into).axes[0]
    if ax is None:
        # Fixed margins, as curves_figure: every run draws this figure, and constrained
        # layout's solver was a third of its 0.1 s.
        fig = Figure(figsize=(5.5, 5))
        fig.subplots_adjust(left=0.12, right=0.97, bottom=0.1, top=0.93)
        ax = fig.subplots()
    fig = ax.figure
    gx, gy, grid = boundary_grid(x, resolution)
    prob = predict(grid)
    if n_classes <= 2:
        ax.contourf(
            gx, gy, prob.reshape(gx.shape), levels=20, cmap="RdBu_r", alpha=0.6, vmin=0, vmax=1
        )
        ax.contour(gx, gy, prob.reshape(gx.shape), levels=[0.5], colors="k", linewidths=1.5)
        ax.scatter(
            x[:, 0],
            x[:, 1],
            c=y,
            cmap="RdBu_r",
            edgecolors="k",
            linewidths=0.3,
            s=18,
            vmin=0,
            vmax=1,
        )
        colours = colormaps["RdBu_r"]
        handles = [
            Patch(facecolor=colours(0.0), edgecolor="k", label="class 0 (points, region)"),
            Patch(facecolor=colours(1.0), edgecolor="k", label="class 1 (points, region)"),
            Line2D([], [], color="k", lw=1.5, label="P(class 1) = 0.5"),
        ]
    else:
        regions = prob.argmax(axis=1).reshape(gx.shape)
        ax.contourf(
            gx,
            gy,
            regions,
            levels=np.arange(n_classes + 1) - 0.5,
            cmap=CLASS_COLOURS,
            alpha=0.35,
            vmin=0,
            vmax=9,
        )
        ax.scatter(
            x[:, 0],
            x[:, 1],
            c=y,
            cmap=CLASS_COLOURS,
            edgecolors="k",
            linewidths=0.3,
            s=18,
            vmin=0,
            vmax=9,
        )
        handles = [
            Patch(facecolor=colormaps[CLASS_COLOURS](k / 9), edgecolor="k", label=f"class {k}")
            for k in range(n_classes)
        ]
    ax.legend(handles=handles, loc="upper left", fontsize=7, framealpha=0.8)
    ax.set(xlabel="x1 (standardised)", ylabel="x2 (standardised)")
    ax.set_title(title, y=1.0)  # at a fixed height, as curves_figure's: nothing above to avoid
    return fig


def regression_figure(
    x: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray] | None = None,
    title: str = "",
) -> Figure:
    """Predictions against ground truth, in the view the input dimension allows:

    1 input: the data as points and the model as a line over the input range;
    3 inputs: a 4-D plot (three input axes, colour for the value), truth beside prediction;
    otherwise: predicted vs true with the identity line.
    """
    y_true, y_pred = np.ravel(y_true), np.ravel(y_pred)
    r2 = _r2_text(y_true, y_pred)
    if x.shape[1] == 1:
        fig = Figure(figsize=(6, 4.5), layout="constrained")
        ax = fig.subplots()
        ax.scatter(x[:, 0], y_true, s=10, alpha=0.6, label="ground truth")
        line_x = regression_line(x)
        line_y = predict(line_x) if predict is not None else None
        if line_y is not None:
            ax.plot(line_x[:, 0], np.ravel(line_y), color="tab:red", lw=2, label="model")
        else:
            order = np.argsort(x[:, 0])
            ax.plot(x[order, 0], y_pred[order], color="tab:red", lw=2, label="model")
        ax.set(xlabel="x (standardised)", ylabel="y", title=f"{title}  ({r2})")
        ax.legend()
        return fig
    if x.shape[1] == 3:
        fig = Figure(figsize=(17, 5), layout="constrained")
        lo, hi = min(y_true.min(), y_pred.min()), max(y_true.max(), y_pred.max())
        for i, (values, name) in enumerate([(y_true, "ground truth"), (y_pred, "prediction")]):
            ax = fig.add_subplot(1, 3, i + 1, projection="3d")
            points = ax.scatter(
                x[:, 0], x[:, 1], x[:, 2], c=values, cmap="viridis", vmin=lo, vmax=hi, s=12
            )
            ax.set(xlabel="x1", ylabel="x2", zlabel="x3", title=name)
        fig.colorbar(points, ax=fig.axes[:2], label="y", shrink=0.7)
        _predicted_vs_true(fig.add_subplot(1, 3, 3), y_true, y_pred, f"predicted vs true ({r2})")
        fig.suptitle(title)
        return fig
    fig = Figure(figsize=(5, 5), layout="constrained")
    _predicted_vs_true(fig.subplots(), y_true, y_pred, f"{title}  ({r2})")
    return fig


def _predicted_vs_true(ax, y_true, y_pred, title: str) -> None:
    ax.scatter(y_true, y_pred, s=10, alpha=0.6)
    lo, hi = min(y_true.min(), y_pred.min()), max(y_true.max(), y_pred.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="perfect: prediction = truth")
    ax.set(xlabel="ground truth", ylabel="prediction", title=title)
    ax.legend(fontsize=8)


def _r2_text(y_true: np.ndarray, y_pred: np.ndarray) -> str:
    total = float(((y_true - y_true.mean()) ** 2).sum())
    if total == 0:
        return "R² undefined"
    return f"R² = {1 - float(((y_true - y_pred) ** 2).sum()) / total:.3f}"


def activation_functions_figure(
    activations: Mapping[str, object], z: np.ndarray | None = None
) -> Figure:
    """Each activation (top) and its derivative (bottom), from a table of objects with `fn`
    and `grad` (nnlab.nn.scratch.ACTIVATIONS)."""
    z = np.linspace(-4, 4, 401) if z is None else z
    fig = Figure(figsize=(3 * len(activations), 5.5), layout="constrained")
    axes = fig.subplots(2, len(activations), sharex=True)
    for col, (name, act) in enumerate(activations.items()):
        axes[0, col].plot(z, act.fn(z), color="tab:blue")
        axes[0, col].set_title(name)
        axes[1, col].plot(z, act.grad(z), color="tab:red")
        axes[1, col].set_xlabel("z")
        for ax in axes[:, col]:
            ax.axhline(0, color="k", lw=0.5)
            ax.axvline(0, color="k", lw=0.5)
    axes[0, 0].set_ylabel("f(z)")
    axes[1, 0].set_ylabel("f'(z)")
    return fig


def weights_figure(
    before: Sequence[np.ndarray], after: Sequence[np.ndarray], title: str = ""
) -> Figure:
    """Every layer's weight matrix before (top) and after (bottom) training, on one colour
    scale per layer, so growth, sign flips and dead units show."""
    n = len(before)
    fig = Figure(figsize=(3.2 * n + 1, 6), layout="constrained")
    axes = np.array(fig.subplots(2, n)).reshape(2, n)
    for i, (w0, w1) in enumerate(zip(before, after, strict=True)):
        scale = max(np.abs(w0).max(), np.abs(w1).max(), 1e-12)
        for row, (w, when) in enumerate([(w0, "before"), (w1, "after")]):
            image = axes[row, i].imshow(w, cmap="RdBu_r", vmin=-scale, vmax=scale, aspect="auto")
            axes[row, i].set_title(f"layer {i + 1} {when} {w.shape[0]}x{w.shape[1]}", fontsize=9)
            axes[row, i].set(xlabel="to unit", ylabel="from unit")
        fig.colorbar(image, ax=axes[:, i], shrink=0.6)
    fig.suptitle(title)
    return fig
