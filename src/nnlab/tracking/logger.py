"""A Lightning logger that buffers metrics and writes them to MLflow in batches.

Lightning's stock MLFlowLogger makes a store round-trip per `log_metrics` call (~3 ms on
sqlite); a small net trains an epoch in well under that. Here values are kept in memory and
flushed every few seconds and at the end, every member of a population in one write
(nnlab.tracking.store.client.log_runs_metrics), so tracking adds almost nothing to training.
The in-memory history doubles as the source of the run's curve plots.
"""

from __future__ import annotations

import time
from collections import defaultdict

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from pytorch_lightning.loggers.logger import Logger
from pytorch_lightning.utilities import rank_zero_only

from nnlab.tracking.store.client import log_runs_metrics


class BufferedMlflowLogger(Logger):
    """One run's metrics, kept in memory (its history) and pending until its PopulationLogger
    writes them with the other members'."""

    def __init__(
        self,
        client: MlflowClient | None,
        run_id: str | None,
        history: dict[str, list[tuple[int, float]]] | None = None,
    ):
        super().__init__()
        self.client = client
        self.run_id = run_id
        self.run_name = ""  # what the run is called, for the lines that report it
        self._pending: list[tuple[str, float, int, int]] = []  # Metric()s are made at flush
        # The step-0 values as written (timestamps included): MLflow links a run's step-0
        # metrics to the model it logs (nnlab.tracking.logged_model), and a copy that
        # differs in its timestamp would be a second point in the run's curve.
        self.step_zero: list[Metric] = []
        # key -> [(epoch, value)]: what the run holds. A resumed run starts from its stored
        # curves, and values for epochs it already has are not written again (recomputed
        # epochs after a checkpoint are identical), so no epoch appears twice.
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for key, points in (history or {}).items():
            self.history[key] = list(points)

    @property
    def name(self) -> str:
        return "mlflow"

    @property
    def version(self) -> str:
        return self.run_id or ""

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass  # nnlab logs the resolved Hydra config itself, flattened, when the run opens

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        # Lightning adds the epoch to epoch-level metrics; MLflow's step is the epoch, so that
        # curves line up whatever the batch size.
        epoch = int(metrics.pop("epoch", step or 0))
        self.append(epoch, metrics)

    def append(self, epoch: int, metrics: dict[str, float]) -> None:
        """Keep `metrics` as epoch `epoch`'s; written at the next flush (its PopulationLogger's).
        The engine calls this once per member and epoch, so it stays lean (no rank check, no
        dict copies)."""
        now_ms = int(time.time() * 1000)
        for key, value in metrics.items():
            value = float(value)
            known = self.history[key]
            if known and known[-1][0] >= epoch:
                continue  # this epoch is already in the run (see __init__)
            known.append((epoch, value))
            self._pending.append((key, value, now_ms, epoch))
            if epoch == 0:
                self.step_zero.append(Metric(key, value, now_ms, 0))

    def take_pending(self) -> list[Metric]:
        """What is not written yet, no longer pending: the caller writes it."""
        pending = [Metric(*m) for m in self._pending]
        self._pending.clear()
        return pending

    def last(self, key: str) -> float | None:
        values = self.history.get(key)
        return values[-1][1] if values else None


class PopulationLogger(Logger):
    """The logger of a population (nnlab.training.engine): member k's metrics go to `members[k]`,
    its own run. It flushes every member's metrics together, every `flush_every_s` and when
    Lightning asks (at the end)."""

    def __init__(self, members: list[BufferedMlflowLogger], flush_every_s: float = 5.0):
        super().__init__()
        self.members = members
        self.flush_every_s = flush_every_s
        self._last_flush = time.monotonic()

    @property
    def name(self) -> str:
        return "mlflow"

    @property
    def version(self) -> str:
        return ",".join(m.run_id or "" for m in self.members)

    @property
    def client(self) -> MlflowClient | None:
        # Not necessarily member 0's: nnlab-reproduce logs only the member it reproduces.
        return next((m.client for m in self.members if m.client is not None), None)

    @property
    def run_ids(self) -> list[str]:
        return [m.run_id for m in self.members if m.run_id is not None]

    def record(self, k: int, epoch: int, metrics: dict[str, float]) -> None:
        self.members[k].append(epoch, metrics)
        if time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush()

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass  # members' metrics arrive through `record`

    def flush(self) -> None:
        """Every member's pending metrics in one write: a write's fixed cost (~2 ms on sqlite)
        is paid once per population, not once per member."""
        by_run = {}
        for member in self.members:
            pending = member.take_pending()  # an unlogged member's are dropped: it has no run
            if member.client is not None and member.run_id is not None:
                by_run[member.run_id] = pending
        if by_run:
            log_runs_metrics(self.client, by_run)
        self._last_flush = time.monotonic()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.flush()
