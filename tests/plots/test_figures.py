"""Figures a student reads at a glance: legends that say what colours mean, failed jobs marked
instead of missing, the best job starred, log axes where values span decades."""

import io

import numpy as np
from matplotlib.image import imread

from nnlab.plots import run_figures as plots
from nnlab.plots import sweep_figures


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_decision_boundary_has_a_legend_for_its_colours():
    x = np.random.default_rng(0).normal(size=(40, 2))
    y = (x[:, 0] > 0).astype(int)
    binary = plots.decision_boundary_figure(lambda g: 1 / (1 + np.exp(-g[:, 0])), x, y, 2)
    assert any("class 1" in t for t in legend_texts(binary.axes[0]))
    assert "P(class 1) = 0.5" in legend_texts(binary.axes[0])
    three = plots.decision_boundary_figure(
        lambda g: np.eye(3)[(g[:, 0] > 0).astype(int) + (g[:, 1] > 0)], x, y, 3
    )
    assert legend_texts(three.axes[0]) == ["class 0", "class 1", "class 2"]


def pixels(fig) -> np.ndarray:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=plots.FIGURE_DPI)
    buffer.seek(0)
    return imread(buffer)


def test_a_figure_drawn_over_another_is_the_same_as_a_new_one():
    """A population's figures are drawn over the previous member's (run_figures.drawn_over):
    scales, colours, limits, legends and titles must not carry over."""
    decades = {"train/loss": [(e, 10 * np.exp(-e / 20) + 0.01) for e in range(300)],
               "val/loss": [(e, 9 * np.exp(-e / 20) + 0.02) for e in range(300)],
               "val/acc": [(e, 0.5 + e / 700) for e in range(300)]}  # fmt: skip
    flat = {"train/loss": [(e, 0.7 - e / 2000) for e in range(500)],
            "val/loss": [(e, 0.72 - e / 2100) for e in range(500)],
            "val/acc": [(e, 0.6 + e / 2000) for e in range(500)]}  # fmt: skip
    first = plots.curves_figure(decades, "acc", "first")  # a log axis
    pixels(first)
    second = plots.curves_figure(flat, "acc", "second", into=first)
    assert second is first and second.axes[0].get_yscale() == "linear"
    assert np.array_equal(pixels(second), pixels(plots.curves_figure(flat, "acc", "second")))
    again = plots.curves_figure(decades, "acc", "first", into=second)
    assert np.array_equal(pixels(again), pixels(plots.curves_figure(decades, "acc", "first")))

    rng = np.random.default_rng(0)

    def boundary(x, y, classes, into=None):
        _, _, grid = plots.boundary_grid(x)
        if classes == 2:
            p = 1 / (1 + np.exp(-grid[:, 0] * grid[:, 1]))
        else:
            p = np.stack([np.exp(grid[:, 0]), np.exp(grid[:, 1]), np.ones(len(grid))], axis=1)
        predict = plots.Tabulated(grid, p)
        return plots.decision_boundary_figure(predict, x, y, classes, "t", into=into)

    near, far = rng.normal(size=(100, 2)), rng.normal(size=(150, 2)) * 2 + 1
    old = boundary(near, (near[:, 0] > 0).astype(int), 2)
    pixels(old)
    drawn = boundary(far, (far[:, 1] > 1).astype(int), 2, into=old)
    assert np.array_equal(pixels(drawn), pixels(boundary(far, (far[:, 1] > 1).astype(int), 2)))
    three = boundary(near, np.arange(100) % 3, 3, into=drawn)
    assert np.array_equal(pixels(three), pixels(boundary(near, np.arange(100) % 3, 3)))


def test_objective_vs_lr_marks_failed_jobs_and_the_best():
    points = [(0.01, 0.5, "relu"), (0.1, 0.2, "relu"), (1e8, float("nan"), "relu")]
    fig = sweep_figures.objective_vs_figure(
        points, "optimizer.lr", "val/loss", "act", True, best=(0.1, 0.2)
    )
    texts = legend_texts(fig.axes[0])
    assert "failed or diverged (1)" in texts and "best" in texts


def test_objective_axis_goes_log_when_one_job_is_decades_off():
    points = [(0.01, 0.5, ""), (0.1, 0.2, ""), (10.0, 4e7, "")]
    fig = sweep_figures.objective_vs_figure(points, "optimizer.lr", "val/loss", log_x=True)
    assert fig.axes[0].get_yscale() == "log"


def test_overlaid_curves_keep_a_job_that_failed_at_once_in_the_legend():
    curves = {"lr=0.1": {"train/loss": [(0, 1.0), (1, 0.5)]}, "lr=1e8 (failed)": {}}
    fig = sweep_figures.overlaid_curves_figure(curves, ["train/loss"])
    assert legend_texts(fig.axes[0]) == ["lr=0.1", "lr=1e8 (failed)"]


def test_regression_figures_show_predicted_against_true_with_r2():
    rng = np.random.default_rng(1)
    x3, y = rng.normal(size=(50, 3)), rng.normal(size=50)
    fig = plots.regression_figure(x3, y, y + 0.1 * rng.normal(size=50))
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("predicted vs true (R² = 0.9") for t in titles)
    assert len([ax for ax in fig.axes if ax.name == "3d"]) == 2  # the 4-D view stays beside it


def test_objective_figure_draws_when_every_job_failed(tmp_path):
    nan = float("nan")
    fig = sweep_figures.objective_vs_figure(
        [(1e8, nan, ""), (1e9, nan, "")], "lr", "val/loss", log_x=True
    )
    fig.savefig(tmp_path / "all_failed.png")  # raised "cannot be log-scaled" before
    assert legend_texts(fig.axes[0]) == ["failed or diverged (2)"]


def test_group_curves_show_a_mean_band_and_count_failed_seeds():
    from nnlab.plots.group_figures import group_curves_figure

    members = [
        {"train/loss": [(0, 1.0), (1, 0.5)], "val/loss": [(0, 1.1), (1, 0.6)]},
        {"train/loss": [(0, 0.8), (1, 0.3)], "val/loss": [(0, 0.9), (1, 0.4)]},
        {"train/loss": [(0, float("nan"))], "val/loss": []},  # a seed that diverged at once
    ]
    fig = group_curves_figure({"lr=0.1": members}, ["train/loss", "val/loss"], {"lr=0.1": 1})
    ax = fig.axes[0]
    (line,) = ax.get_lines()
    assert list(line.get_ydata()) == [0.9, 0.4]  # the mean of the finished seeds
    assert len(ax.collections) == 1  # the min-max band
    assert legend_texts(fig.axes[1]) == ["lr=0.1 (n=2, 1 failed)"]


def test_objective_error_bars_mark_groups_whose_every_seed_failed():
    from nnlab.plots.group_figures import objective_errorbar_figure

    points = [
        (0.01, "tanh", [0.5, 0.6, 0.55], 0),
        (0.1, "tanh", [0.2], 1),  # one seed left: a point without a bar
        (1e8, "tanh", [], 3),  # every seed failed
    ]
    fig = objective_errorbar_figure(points, "optimizer.lr", "val/loss", log_x=True)
    texts = legend_texts(fig.axes[0])
    assert "every seed failed (1)" in texts
    assert "1 more failed seed(s) left out of the means" in texts
    assert fig.axes[0].get_xscale() == "log"


def test_trial_history_draws_best_so_far_and_failed_trials():
    from nnlab.plots.group_figures import objective_vs_trial_figure

    trials = [(0, 0.5), (1, 0.7), (2, float("nan")), (3, 0.3)]
    fig = objective_vs_trial_figure(trials, "val/loss", higher_is_better=False)
    ax = fig.axes[0]
    (best,) = ax.get_lines()
    assert list(best.get_ydata()) == [0.5, 0.5, 0.3]  # the running minimum over finished trials
    assert "failed (1)" in legend_texts(ax)


def test_image_grid_shows_each_image_in_its_own_colours_under_its_caption(tmp_path):
    """imread's float RGBA and 8-bit RGB tiles both keep their colours (the grid converts floats
    to 8 bits), each under its caption, in reading order; saved at another dpi, the images
    scale with the captions."""
    from matplotlib.image import imread

    red = np.zeros((40, 44, 4), dtype=np.float32)
    red[..., 0] = red[..., 3] = 1.0
    blue = np.zeros((40, 44, 3), dtype=np.uint8)
    blue[..., 2] = 255
    labels = ["lr=0.1\nval/loss=0.3", "lr=1\nFAILED"]
    fig = sweep_figures.image_grid_figure(
        list(zip(labels, [red, blue], strict=True)), title="sweep over lr"
    )
    captions = [t for t in fig.texts if t.get_text() in labels]
    assert [t.get_text() for t in captions] == labels
    for dpi in (fig.dpi, 2 * fig.dpi):
        fig.savefig(tmp_path / "grid.png", dpi=dpi)
        pixels = imread(tmp_path / "grid.png")[..., :3]
        height, width = pixels.shape[:2]
        assert (width, height) == tuple(round(v * dpi) for v in fig.get_size_inches())
        for caption, colour in zip(captions, ([1, 0, 0], [0, 0, 1]), strict=True):
            x, y = caption.get_position()  # the caption's foot, in figure fractions
            below = pixels[int((1 - y) * height) + int(0.25 * dpi), int(x * width)]
            np.testing.assert_allclose(below, colour, atol=0.02)
        assert np.allclose(pixels[-1, -1], 1)  # white around the images
