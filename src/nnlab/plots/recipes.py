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


def draw(recipe: tuple[str, dict]) -> Figure:
    """The figure of `recipe`: (a name in FIGURES, its keyword arguments)."""
    name, kwargs = recipe
    return FIGURES[name](**kwargs)
