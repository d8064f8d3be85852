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


def _plot_curve(ax, curve: Curve, label: str, **style) -> None:
    # Drawn even when empty (a job that failed at once): it keeps its colour and legend entry
    # in every chart, so the same job has the same colour side by side.
    epochs, values = zip(*curve, strict=True) if curve else ((), ())
    ax.plot(epochs, values, label=label, **style)


def curves_figure(history: Mapping[str, Curve], metric: str, title: str = "") -> Figure:
    """Loss (train and val on one chart) beside the validation `metric` curve."""
    # Fixed margins, not layout="constrained": every run draws this figure, and constrained
    # layout's solver was 0.15 s of its 0.25 s save; two charts of one shape need no solver.
    fig = Figure(figsize=(10, 4))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.84, wspace=0.22)
    loss_ax, metric_ax = fig.subplots(1, 2)
    _plot_curve(loss_ax, history.get("train/loss", []), "train")
    _plot_curve(loss_ax, history.get("val/loss", []), "val")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    if _spans_decades(history.get("train/loss", [])):
        loss_ax.set_yscale("log")
    loss_ax.legend()
    _plot_curve(metric_ax, history.get(f"val/{metric}", []), "val", color="tab:orange")
    metric_ax.set(xlabel="epoch", ylabel=metric, title=f"val/{metric}")
    fig.suptitle(title)
    return fig


def _spans_decades(curve: Curve) -> bool:
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
) -> Figure:
    """The model's decision regions over the plane, with the points `x`, `y` on top.

    `predict` maps (N, 2) inputs to class probabilities: (N,) for binary (probability of class
    1, shown as a shaded map with the 0.5 contour), (N, K) for K classes (shown as regions).
    """
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
    ax.set(xlabel="x1 (standardised)", ylabel="x2 (standardised)", title=title)
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


def overlaid_curves_figure(
    curves: Mapping[str, Mapping[str, Curve]], keys: Sequence[str], title: str = ""
) -> Figure:
    """One chart per metric key, with one line per run (label -> {key: curve}) laid over each
    other: backends that agree draw on top of each other."""
    fig = Figure(figsize=(5 * len(keys), 4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(keys)))
    styles = ["-", "--", ":", "-."]
    for ax, key in zip(axes, keys, strict=True):
        for i, (label, history) in enumerate(curves.items()):
            _plot_curve(
                ax,
                history.get(key, []),
                label,
                linestyle=styles[i % len(styles)],
                linewidth=2.5 - 0.5 * (i % 3),
            )
        ax.set(xlabel="epoch", ylabel=key, title=key)
        if _spans_decades([p for h in curves.values() for p in h.get(key, [])]):
            ax.set_yscale("log")
    # One legend, outside the axes: with many jobs it would hide the curves.
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fig.suptitle(title)
    return fig


def _sort_key(value):
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def mark_failed(ax, xs: Sequence[float], label: str) -> None:
    """Red x marks at the bottom of the axes for jobs that have no value to plot (failed or
    diverged): shown, never silently missing."""
    ax.scatter(
        xs,
        [0.02] * len(xs),
        transform=ax.get_xaxis_transform(),
        marker="x",
        color="tab:red",
        s=60,
        zorder=5,
        label=label,
    )


def objective_vs_figure(
    points: Sequence[tuple[object, float, str]],
    x_label: str,
    objective: str,
    group_label: str | None = None,
    log_x: bool = False,
    title: str = "",
    best: tuple[object, float] | None = None,
) -> Figure:
    """Objective against one swept value, one line per group (e.g. per activation).
    points: (x, objective, group). Failed or diverged jobs (NaN) leave a gap in their line and
    are marked with a red x at the bottom; `best` (x, objective) gets a star."""
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    groups: dict[str, list[tuple[object, float]]] = {}
    for x, y, g in points:
        groups.setdefault(g, []).append((x, y))
    numeric = all(_sort_key(x)[0] == 0 for x, _, _ in points)
    categories = sorted({str(x) for x, _, _ in points}, key=_sort_key)
    for g, pts in groups.items():
        pts.sort(key=lambda p: _sort_key(p[0]))
        xs = [float(x) if numeric else categories.index(str(x)) for x, _ in pts]
        ys = [y if np.isfinite(y) else np.nan for _, y in pts]
        ax.plot(xs, ys, marker="o", label=f"{group_label}={g}" if group_label else None)
    failed = [x for x, y, _ in points if not np.isfinite(y)]
    if failed:
        xs = [float(x) if numeric else categories.index(str(x)) for x in failed]
        mark_failed(ax, xs, f"failed or diverged ({len(xs)})")
    if best is not None:
        bx = float(best[0]) if numeric else categories.index(str(best[0]))
        ax.scatter(
            [bx], [best[1]], marker="*", s=250, color="gold", edgecolors="k", zorder=6, label="best"
        )
    positive = numeric and all(float(x) > 0 for x, _, _ in points)
    if log_x and positive:
        ax.set_xscale("log")
        # Limits from the x values themselves: when every job failed, no line has data to
        # set them, and a log axis over the default (0, 1) cannot be drawn.
        xs_all = [float(x) for x, _, _ in points]
        ax.set_xlim(min(xs_all) / 2, max(xs_all) * 2)
    if _spans_decades([(0, y) for _, y, _ in points]):
        ax.set_yscale("log")  # one diverging job would otherwise flatten all the others
    if not numeric:
        ax.set_xticks(range(len(categories)), categories, rotation=20)
    ax.set(xlabel=x_label, ylabel=objective, title=title or f"{objective} vs {x_label}")
    if group_label or failed or best is not None:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return fig


def heatmap_figure(
    cells: Sequence[tuple[str, str, float]],
    row_key: str,
    col_key: str,
    objective: str,
    title: str = "",
) -> Figure:
    """Objective over two swept keys (the mean where other keys vary too)."""
    rows = sorted({str(r) for r, _, _ in cells}, key=_sort_key)
    cols = sorted({str(c) for _, c, _ in cells}, key=_sort_key)
    total = np.zeros((len(rows), len(cols)))
    count = np.zeros_like(total)
    for r, c, v in cells:
        if np.isfinite(v):
            total[rows.index(str(r)), cols.index(str(c))] += v
            count[rows.index(str(r)), cols.index(str(c))] += 1
    grid = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    fig = Figure(figsize=(1.6 * len(cols) + 3, 0.6 * len(rows) + 2.5), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=20)
    ax.set_yticks(range(len(rows)), rows)
    for i in range(len(rows)):
        for j in range(len(cols)):
            text = "failed" if np.isnan(grid[i, j]) else f"{grid[i, j]:.3g}"
            # White reads on viridis' dark end, black on its yellow end.
            bright = not np.isnan(grid[i, j]) and image.norm(grid[i, j]) > 0.6
            ax.text(j, i, text, ha="center", va="center", color="k" if bright else "w", fontsize=9)
    ax.set(xlabel=col_key, ylabel=row_key, title=title or objective)
    fig.colorbar(image, ax=ax, label=objective)
    return fig


def image_grid_figure(
    images: Sequence[tuple[str, np.ndarray]], title: str = "", columns: int = 4
) -> Figure:
    """Images (e.g. each job's decision boundary) side by side, captioned."""
    columns = min(columns, len(images))
    n_rows = -(-len(images) // columns)
    fig = Figure(figsize=(3.6 * columns, 3.6 * n_rows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(n_rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (caption, image) in zip(axes, images, strict=False):
        ax.imshow(image)
        ax.set_title(caption, fontsize=8)
    fig.suptitle(title)
    return fig


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


def draw(recipe: tuple[str, dict]) -> Figure:
    """A figure from its recipe: (the name of a function here, or in layer_figures, and its
    keyword arguments)."""
    from nnlab.plots import layer_figures

    name, kwargs = recipe
    function = globals().get(name) or getattr(layer_figures, name)
    return function(**kwargs)
