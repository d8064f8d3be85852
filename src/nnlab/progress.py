"""Progress for long runs, by epoch rather than by step.

Lightning's stock bar redraws every step, which costs more than a small net's step does. This
one updates once per epoch: a tqdm bar on a terminal, otherwise (logs, CI, sweep workers) a
plain line every 10% of the run.
"""

from __future__ import annotations

import sys

import pytorch_lightning as pl

from nnlab.tasks import TRAIN_LOSS, VAL_LOSS


class EpochProgress(pl.Callback):
    def __init__(self, mode: str, headline: str, label: str):
        self.mode = mode
        if mode == "auto":
            self.mode = "bar" if sys.stderr.isatty() else "lines"
        self.headline = headline
        self.label = label
        self._bar = None

    def on_train_start(self, trainer, pl_module) -> None:
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=trainer.max_epochs,
                desc=self.label,
                unit="epoch",
                initial=trainer.current_epoch,
                mininterval=0.25,
                leave=True,
            )

    def _summary(self, trainer) -> str:
        shown = []
        metrics = getattr(trainer.lightning_module, "epoch_metrics", {})
        for key in (TRAIN_LOSS, VAL_LOSS, f"val/{self.headline}"):
            value = metrics.get(key)
            if value is not None:
                shown.append(f"{key}={float(value):.4g}")
        return " ".join(shown)

    # Lightning calls callbacks' on_train_epoch_end *before* the module's, where train/loss is
    # logged; so an epoch is reported when the next one starts, and the last one at the end.
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch > 0:
            self._report(trainer, trainer.current_epoch)

    def on_train_end(self, trainer, pl_module) -> None:
        self._report(trainer, trainer.current_epoch)
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _report(self, trainer, done: int) -> None:
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            self._bar.set_postfix_str(self._summary(trainer), refresh=False)
        elif self.mode == "lines":
            step = max(1, trainer.max_epochs // 10)
            if done % step == 0 or done == trainer.max_epochs:
                print(
                    f"[{self.label}] epoch {done}/{trainer.max_epochs} {self._summary(trainer)}",
                    file=sys.stderr,
                    flush=True,
                )

    def on_exception(self, trainer, pl_module, exception) -> None:
        # Close the bar cleanly on errors and Ctrl-C too, so the error line is readable.
        if self._bar is not None:
            self._bar.close()
            self._bar = None
