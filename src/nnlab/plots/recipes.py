"""A figure from its recipe: the name of a figure function and its keyword arguments. A
population's figures travel as recipes to a worker process (nnlab.plots.background), which
draws them exactly as the training process would."""

from __future__ import annotations

from matplotlib.figure import Figure

from nnlab.plots import layer_figures, run_figures

# Every figure a run's recipe may name.
FIGURES = {
    name: getattr(module, name)
    for module in (run_figures, layer_figures)
    for name in dir(module)
    if name.endswith("_figure")
}


# The figures that can be drawn over one of their kind drawn before (`into=`, ~35% cheaper:
# nnlab.plots.run_figures.drawn_over): the two every member of a population gets.
DRAWN_OVER = {"curves_figure", "decision_boundary_figure"}


def draw(recipe: tuple[str, dict], into: Figure | None = None) -> Figure:
    """The figure of `recipe`: (a name in FIGURES, its keyword arguments). `into`: a figure of
    the same recipe name, saved already, to draw over where the figure allows it."""
    name, kwargs = recipe
    if into is not None and name in DRAWN_OVER:
        return FIGURES[name](**kwargs, into=into)
    return FIGURES[name](**kwargs)
