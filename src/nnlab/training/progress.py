"""Progress for long runs, by epoch rather than by step.

Lightning's stock bar redraws every step, which costs more than a small net's step does. This
one updates once per epoch: a tqdm bar on a terminal, otherwise (logs, CI, sweep workers) a
plain line every 10% of the run. A run shows its losses; a population of N members shows how
many are still training.
"""

from __future__ import annotations

import sys

from nnlab.nn.tasks import TRAIN_LOSS, VAL_LOSS
from nnlab.training.engine import EpochWatcher


class EpochProgress(EpochWatcher):
    def __init__(self, mode: str, headline: str, label: str):
        self.mode = mode
        if mode == "auto":
            self.mode = "bar" if sys.stderr.isatty() else "lines"
        self.headline = headline
        self.label = label
        self._bar = None

    def on_train_start(self, trainer, module) -> None:
        if self.mode == "bar":
            # lazy: tqdm loads only when a bar is shown
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=module.max_epochs,
                desc=self.label,
                unit="epoch",
                initial=module.next_epoch,  # where a resumed run starts
                mininterval=0.25,
                leave=True,
            )

    def _summary(self, module) -> str:
        if module.members > 1:
            return f": {len(module.alive)} of {module.members} members training"
        metrics = module.epoch_metrics[0]
        shown = [
            f"{key}={float(metrics[key]):.4g}"
            for key in (TRAIN_LOSS, VAL_LOSS, f"val/{self.headline}")
            if key in metrics
        ]
        return " " + " ".join(shown) if shown else ""

    def on_epoch_trained(self, module, epoch: int) -> None:
        done, total = epoch + 1, module.max_epochs
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            self._bar.set_postfix_str(self._summary(module).lstrip(" :"), refresh=False)
        elif self.mode == "lines":
            step = max(1, total // 10)
            if done % step == 0 or done == total:
                print(
                    f"[{self.label}] epoch {done}/{total}{self._summary(module)}",
                    file=sys.stderr,
                    flush=True,
                )

    def on_train_end(self, trainer, module) -> None:
        self._close()

    def on_exception(self, trainer, module, exception) -> None:
        # Close the bar cleanly on errors and Ctrl-C too, so the error line is readable.
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
