"""A population's figures drawn in a worker process while the training process writes its
members' other outputs (models, checkpoints, store writes).

Drawing is the largest piece of a member's outputs: ~0.2 s for its two figures on this
machine, against ~0.1 s for its MLflow Model and ~0.06 s of store writes. A figure needs
only arrays (nnlab.training.outputs.figure_recipes computes the network's outputs first), so
a worker draws them, in order, while the members' other outputs are written; each member's
figures land in a folder of their own, logged into its run when they are done. Once the
training process has written the rest, it draws from the other end of the queue
(`FigureWriter.draw_unstarted`) rather than wait: whoever claims a member's figures first
draws them (a claim is a file created exclusively), so both cores work until the last.

The worker is `python -m nnlab.plots.background`, fed pickled recipes on its stdin, not a
multiprocessing pool: a pool's spawned child re-imports the parent's main script, and a
script without a `__main__` guard would train again in it. This one imports matplotlib and
NumPy only.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import threading
from concurrent.futures import Future, InvalidStateError
from pathlib import Path

from nnlab.plots.recipes import draw
from nnlab.plots.run_figures import FIGURE_DPI

# A worker costs ~1 s of the other core to start (Python, NumPy, matplotlib): worth it from a
# few members on. Below, figures are drawn in the training process as for a plain run.
MIN_MEMBERS_FOR_A_WORKER = 4
RECIPES_FILE = "recipes.pickle"
CLAIMED = "claimed"  # the worker's reply for figures the training process claimed first


def claim(folder: Path) -> bool:
    """Whether this process may draw the figures of `folder`: the first to ask wins. The claim
    sits beside the folder, which is logged as the run's plots/."""
    try:
        os.close(os.open(f"{folder}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


# recipe name -> the last figure of that name this process drew and saved: the next one of
# the same name is drawn over it (nnlab.plots.recipes.DRAWN_OVER). Only write_figures, which
# saves each figure at once, draws over them.
_last_drawn: dict[str, object] = {}


def write_figures(recipes: dict[str, tuple[str, dict]], folder: Path) -> str:
    """Draw each recipe (nnlab.plots.recipes.draw) into `folder`/<file name>."""
    for file_name, recipe in recipes.items():
        name = recipe[0]
        # Popped while drawn: a figure that fails half-drawn is not drawn over again
        figure = draw(recipe, into=_last_drawn.pop(name, None))
        figure.savefig(Path(folder) / file_name, dpi=FIGURE_DPI)
        _last_drawn[name] = figure
    return str(folder)


def figure_workers(setting, members: int) -> int:
    """`tracking.figure_workers`: auto (a worker for a population of a few members, when the
    machine has a core to spare), or 0 (draw in the training process) or 1."""
    if setting != "auto":
        return int(setting)
    return 1 if members >= MIN_MEMBERS_FOR_A_WORKER and (os.cpu_count() or 1) > 1 else 0


class FigureWriter:
    """`submit(recipes, folder)` -> a Future of the folder (None when there is no worker)."""

    def __init__(self, workers: int):
        self.worker = None
        self.pending: dict[int, tuple[Future, str]] = {}  # task -> (its Future, its folder)
        self.drawn_here: list[int] = []  # the tasks this process drew (draw_unstarted)
        self.answered: set[int] = set()  # the tasks the worker has replied to
        self.lock = threading.Lock()
        if workers > 0:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "nnlab.plots.background"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            self.reader = threading.Thread(target=self._read_replies, daemon=True)
            self.reader.start()

    @property
    def active(self) -> bool:
        return self.worker is not None

    def submit(self, recipes: dict, folder: Path) -> Future | None:
        if self.worker is None:
            return None
        Path(folder).mkdir(parents=True, exist_ok=True)
        future: Future = Future()
        with self.lock:
            task = len(self.pending)
            self.pending[task] = (future, str(folder))
        # The recipes (~1 MB with a decision boundary's grid) go through a file: through the
        # pipe (64 KB) the training process would wait for the worker to draw the previous.
        with open(Path(folder) / RECIPES_FILE, "wb") as f:
            pickle.dump(recipes, f)
        try:
            pickle.dump((task, str(folder)), self.worker.stdin)
            self.worker.stdin.flush()
        except OSError as err:  # the worker died: this member's figures fail, with why
            future.set_exception(RuntimeError(f"the figure worker is gone ({err})"))
        return future

    def draw_unstarted(self) -> None:
        """Draw, in this process, the figures the worker has not begun, from the last
        submitted back; stop at the first it has claimed (it takes them in order)."""
        with self.lock:
            tasks = sorted(self.pending, reverse=True)
        for task in tasks:
            future, folder = self.pending[task]
            if future.done() or not claim(Path(folder)):
                return
            error = _draw_task(Path(folder))
            with contextlib.suppress(InvalidStateError):  # the worker's end already failed it
                if error is None:
                    future.set_result(folder)
                else:
                    future.set_exception(RuntimeError(f"drawing the figures failed: {error}"))
            self.drawn_here.append(task)

    def _read_replies(self) -> None:
        while True:
            try:
                task, error = pickle.load(self.worker.stdout)
            except (EOFError, OSError, pickle.UnpicklingError):
                break
            future, folder = self.pending[task]
            self.answered.add(task)
            if error == CLAIMED:
                continue  # draw_unstarted drew them and resolved the Future
            with contextlib.suppress(InvalidStateError):  # resolved here already: cannot be
                if error is None:
                    future.set_result(folder)
                else:
                    future.set_exception(RuntimeError(f"drawing the figures failed: {error}"))
        for future, _ in list(self.pending.values()):  # the worker ended before answering
            with contextlib.suppress(InvalidStateError):
                if not future.done():
                    future.set_exception(RuntimeError("the figure worker ended early"))

    def __enter__(self) -> FigureWriter:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if self.worker is None:
            return
        # The worker exits once it has answered every task it was given, those it passes over
        # included: the folders it writes in must outlive this (nnlab.training.population).
        self.worker.stdin.close()
        if kind is not None:
            self.worker.kill()  # on an error or Ctrl-C nothing more is waited for
        self.worker.wait()
        self.reader.join(timeout=5)


def _draw_task(folder: Path) -> str | None:
    """Draw the recipes submitted into `folder`; None, or the error that stopped it."""
    try:
        recipes_file = folder / RECIPES_FILE
        recipes = pickle.loads(recipes_file.read_bytes())
        recipes_file.unlink()  # the folder is logged as the run's plots/
        write_figures(recipes, folder)
    except Exception as err:  # reported to the member it belongs to
        return f"{type(err).__name__}: {err}"
    return None


def _serve() -> None:
    """The worker: for each (task, folder) read from stdin, draw the recipes in that folder;
    answer (task, error)."""
    import matplotlib  # the worker's own: Agg chosen before anything is drawn

    matplotlib.use("Agg")
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            task, folder = pickle.load(requests)
        except EOFError:
            return
        try:
            error = _draw_task(Path(folder)) if claim(Path(folder)) else CLAIMED
        except OSError as err:  # the claim could not be made: reported, not fatal
            error = f"{type(err).__name__}: {err}"
        pickle.dump((task, error), replies)
        replies.flush()


if __name__ == "__main__":
    # lazy: only the worker ends this way. The training process waits for the worker to end
    # (its folders must outlive it), and the interpreter's teardown of matplotlib and NumPy
    # was 0.13-0.15 s of that wait, at the end of every population's outputs.
    from nnlab.quick_exit import run_then_exit

    run_then_exit(_serve)
