"""The figures of a sweep or a comparison of runs: curves laid over each other, the objective
against a swept value, a heatmap over two swept keys, and a grid of each job's images.
Drawn like a run's own figures (nnlab.plots.run_figures): matplotlib Figures, no pyplot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.artist import Artist
from matplotlib.figure import Figure

from nnlab.plots.run_figures import FIGURE_DPI, Curve, plot_curve, spans_decades


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
            plot_curve(
                ax,
                history.get(key, []),
                label,
                linestyle=styles[i % len(styles)],
                linewidth=2.5 - 0.5 * (i % 3),
            )
        ax.set(xlabel="epoch", ylabel=key, title=key)
        if spans_decades([p for h in curves.values() for p in h.get(key, [])]):
            ax.set_yscale("log")
    # One legend, outside the axes: with many jobs it would hide the curves.
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fig.suptitle(title)
    return fig


def sort_key(value):
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
    numeric = all(sort_key(x)[0] == 0 for x, _, _ in points)
    categories = sorted({str(x) for x, _, _ in points}, key=sort_key)
    for g, pts in groups.items():
        pts.sort(key=lambda p: sort_key(p[0]))
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
    if spans_decades([(0, y) for _, y, _ in points]):
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
    rows = sorted({str(r) for r, _, _ in cells}, key=sort_key)
    cols = sorted({str(c) for _, c, _ in cells}, key=sort_key)
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
    """Images (e.g. each job's decision boundary) side by side, captioned.

    One picture: each image shrunk to its cell by Pillow and laid into one canvas, drawn on
    the figure pixel for pixel (`_Pixels`), and the captions written over it. An axes per image,
    each image resampled by matplotlib, made the 20-job grid the slowest figure of a sweep's
    summary (~1 s to draw and save, most of it the axes' hidden ticks and the resampling).
    Saved at its own dpi (FIGURE_DPI) the canvas is not resampled at all.
    """
    dpi = FIGURE_DPI
    cell, caption, top, gap = 324, 44, 54, 6  # pixels: an image's width, caption, title, gap
    tiles = [_rgb8(image) for _, image in images]
    row = round(cell * max(tile.shape[0] / tile.shape[1] for tile in tiles))  # image height
    columns = min(columns, len(images))
    n_rows = -(-len(images) // columns)
    width = columns * cell + (columns + 1) * gap
    height = top + n_rows * (caption + row) + gap
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    for i, ((label, _), tile) in enumerate(zip(images, tiles, strict=True)):
        shrunk = _fit(tile, cell, row)
        left = gap + (i % columns) * (cell + gap) + (cell - shrunk.shape[1]) // 2
        image_top = top + (i // columns) * (caption + row) + caption
        canvas[image_top : image_top + shrunk.shape[0], left : left + shrunk.shape[1]] = shrunk
        centre = gap + (i % columns) * (cell + gap) + cell / 2
        fig.text(centre / width, 1 - (image_top - gap) / height, label, ha="center",
                 va="bottom", fontsize=8)  # fmt: skip
    fig.add_artist(_Pixels(canvas, dpi))
    fig.suptitle(title, y=1 - 9 / height, va="top")
    return fig


class _Pixels(Artist):
    """An 8-bit RGB canvas as large as its figure, drawn as it is: matplotlib's own image
    artists resample and mask even an image that needs neither (~0.7 s for a 20-job grid)."""

    def __init__(self, rgb: np.ndarray, dpi: float):
        super().__init__()
        self.dpi = dpi  # its pixels per inch (a figure's own dpi changes while it is saved)
        self.rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, dtype=np.uint8)])
        self.set_zorder(-1)  # under the captions

    def draw(self, renderer) -> None:
        rgba = self.rgba
        scale = renderer.dpi / self.dpi
        if scale != 1:  # saved at another dpi than the figure's: the canvas follows
            size = (round(rgba.shape[1] * scale), round(rgba.shape[0] * scale))
            rgba = _resized(rgba, size)
        gc = renderer.new_gc()
        renderer.draw_image(gc, 0, 0, rgba[::-1])
        gc.restore()


def _rgb8(image: np.ndarray) -> np.ndarray:
    """8-bit RGB: imread's float RGBA in [0, 1] (a PNG's alpha is opaque here) or 8-bit RGB."""
    if image.dtype != np.uint8:
        image = (np.asarray(image)[..., :3] * 255).round().astype(np.uint8)
    return np.ascontiguousarray(image[..., :3])


def _fit(tile: np.ndarray, width: int, height: int) -> np.ndarray:
    """`tile` shrunk (or grown) to fit width x height pixels, its aspect kept."""
    scale = min(width / tile.shape[1], height / tile.shape[0])
    size = (max(1, round(tile.shape[1] * scale)), max(1, round(tile.shape[0] * scale)))
    return _resized(tile, size)


def _resized(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """8-bit pixels resampled to size (width, height) by Pillow (matplotlib's own dependency)."""
    from PIL import Image

    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))
