"""What every scripted reproduction (scripts/reproduce_*.py) shares: train presets into one
MLflow experiment, run sweeps, state expectations next to the source's own claims, print
them as a table, keep the figures, and exit non-zero when an expectation fails.

A reproduction's summary is itself a run in its experiment (tag `nnlab.reproduction=true`)
holding `expectations.csv` and every figure, so `mlflow ui` shows it beside the runs.
"""

from __future__ import annotations

import argparse
import operator
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from nnlab.config.check import check_config
from nnlab.env import environ_snapshot
from nnlab.nn.metrics import evaluate
from nnlab.nn.nets import TorchMLP
from nnlab.nn.tasks import TASKS
from nnlab.paths import CONF_DIR
from nnlab.report import tables as report
from nnlab.tracking.describe import experiment_params
from nnlab.tracking.store import queries, sweep_protocol
from nnlab.tracking.store.client import experiment_id, get_client, log_params, tracking_uri
from nnlab.tracking.store.names import (
    DESCRIPTION_TAG,
    QUICK_TAG,
    REPRODUCTION_TAG,
    SOURCE_NAME_TAG,
    SOURCE_TYPE_TAG,
)
from nnlab.tracking.store.queries import metric_history
from nnlab.tracking.store.runs import close_run, open_run
from nnlab.training.outputs import run_figures
from nnlab.training.run import run_training
from nnlab.training.setup import RunResult

OPS = {">=": operator.ge, "<=": operator.le, "<": operator.lt, ">": operator.gt}
QUICK_EPOCHS = 3


@dataclass
class Expectation:
    what: str
    got: float
    op: str  # one of OPS, or "~" for |got - target| <= tolerance * max(|target|, 1e-12)
    target: float
    claim: str = ""  # what the source itself says, where it says something
    tolerance: float = 0.0
    needs_training: bool = True  # False: exact checks that hold even in --quick mode

    def holds(self) -> bool:
        if self.op == "~":
            return abs(self.got - self.target) <= self.tolerance * max(abs(self.target), 1e-12)
        return bool(OPS[self.op](self.got, self.target))

    def rule(self) -> str:
        if self.op == "~":
            return f"~ {self.target:.6g} (rel {self.tolerance:g})"
        return f"{self.op} {self.target:g}"


def parse_args(description: str, argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_EPOCHS} epochs a run: checks the machinery; expectations that "
        "need full training are shown but not enforced",
    )
    p.add_argument("--out", type=Path, help="also write the figures into this folder")
    p.add_argument("--workers", type=int, default=2, help="joblib workers for sweeps (2)")
    return p.parse_args(argv)


class Reproduction:
    def __init__(self, experiment: str, args: argparse.Namespace):
        self.experiment = experiment
        self.args = args
        self.expectations: list[Expectation] = []
        self.figures: dict[str, object] = {}
        self.notes: list[str] = []

    # -- running ----------------------------------------------------------------------------
    def config(self, *overrides: str) -> DictConfig:
        extra = [f"trainer.max_epochs={QUICK_EPOCHS}"] if self.args.quick else []
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                "train",
                [
                    *overrides,
                    f"tracking.experiment={self.experiment}",
                    "trainer.progress=none",
                    *extra,
                ],
            )
        check_config(cfg)
        return cfg

    def train(self, *overrides: str):
        cfg = self.config(*overrides)
        result = run_training(cfg, list(overrides))
        print(f"  trained {result.run_name}: {cfg.objective}={result.objective:.4g}", flush=True)
        return result

    def sweep(self, *overrides: str) -> list:
        """Run `nnlab-train -m` (joblib workers) into this experiment; the children's rows."""
        extra = [f"trainer.max_epochs={QUICK_EPOCHS}"] if self.args.quick else []
        launcher = (
            ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={self.args.workers}"]
            if self.args.workers > 1
            else []
        )
        command = [
            str(Path(sys.executable).parent / "nnlab-train"),
            "-m",
            *launcher,
            *overrides,
            f"tracking.experiment={self.experiment}",
            "trainer.progress=none",
            *extra,
        ]
        print(f"  sweep: {' '.join(overrides)}", flush=True)
        proc = subprocess.run(command, capture_output=True, text=True, env=environ_snapshot())
        if proc.returncode != 0:
            raise RuntimeError(f"sweep {' '.join(overrides)} failed:\n{proc.stderr[-2000:]}")
        client = get_client(tracking_uri())
        exp_ids = queries.experiment_ids(client, [self.experiment])
        parent = queries.latest_sweep(client, exp_ids)
        return [report.to_row(r) for r in sweep_protocol.sweep_children(client, parent)]

    def log_trained_elsewhere(self, label: str, cfg: DictConfig, splits, history, params):
        """A network trained outside nnlab's trainer (seed 001's TensorFlow and JAX variants),
        logged into this experiment as nnlab logs a run: the config's params plus `variant`,
        the per-epoch `history` ({key: [value per epoch]}), test metrics (at step 0) and the
        curves and predictions figures, from its final `params` [(W, b), ...]."""
        task = TASKS[splits.task]
        loss = task.resolve_loss(cfg.model.loss)
        net = TorchMLP.from_params(params, cfg.model.activation, torch.float64)
        y_test = torch.as_tensor(splits.y_test, dtype=torch.float64).reshape(len(splits.y_test), -1)
        with torch.no_grad():
            test = evaluate(task, loss, net(torch.as_tensor(splits.x_test)), y_test, "test")
        uri = tracking_uri(cfg.tracking.uri)
        client = get_client(uri)
        now = int(time.time() * 1000)
        curves = {
            k: [(epoch, v) for epoch, v in enumerate(values)] for k, values in history.items()
        }
        tags = {
            DESCRIPTION_TAG: f"{self.experiment} variant: {label}, trained outside nnlab's loop.",
            SOURCE_NAME_TAG: f"reproduce_{self.experiment}.py",  # the UI's Source column
            SOURCE_TYPE_TAG: "LOCAL",
        }
        with open_run(client, self.experiment, uri, label, tags) as run_id:
            log_params(client, run_id, {**experiment_params(cfg), "variant": label})
            metrics = [Metric(k, v, now, step) for k, c in curves.items() for step, v in c]
            metrics += [Metric(k, v, now, 0) for k, v in test.items()]
            for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
                client.log_batch(run_id, metrics=metrics[start : start + 1000])
            for name, fig in run_figures(cfg, net, splits, task, curves).items():
                client.log_figure(run_id, fig, f"plots/{name}")
        final = {**{k: c[-1][1] for k, c in curves.items()}, **test}
        print(f"  trained {label}: test/loss={test['test/loss']:.4g}", flush=True)
        return RunResult(run_id, label, final.get(cfg.objective, float("nan")), final, uri, net)

    @staticmethod
    def history(result, keys=None) -> dict[str, list[tuple[int, float]]]:
        """A run's per-epoch curves from the store: {key: [(epoch, value), ...]}."""
        client = get_client(result.tracking_uri)
        keys = keys or [k for k in result.metrics if k.startswith(("train/", "val/"))]
        return {k: metric_history(client, result.run_id, k) for k in keys}

    # -- checking ---------------------------------------------------------------------------
    def expect(
        self,
        what: str,
        got: float,
        op: str,
        target: float,
        claim: str = "",
        tolerance: float = 0.0,
        needs_training: bool = True,
    ) -> None:
        self.expectations.append(
            Expectation(what, float(got), op, target, claim, tolerance, needs_training)
        )

    def note(self, text: str) -> None:
        """An observation reported as such (e.g. lr 1.0 behaviour), not a pass/fail check."""
        self.notes.append(text)

    def figure(self, name: str, fig) -> None:
        self.figures[name] = fig

    def finish(self) -> int:
        enforced = [e for e in self.expectations if not (self.args.quick and e.needs_training)]
        failed = [e for e in enforced if not e.holds()]
        print(f"\n{self.experiment}: what we got against what is expected")
        print(render(self.expectations, self.args.quick))
        for text in self.notes:
            print(f"note: {text}")
        where = self._log_summary()
        print(f"summary run: {where}")
        print(
            f"RESULT {self.experiment}: {len(enforced) - len(failed)}/{len(enforced)} "
            f"expectations hold{' (quick mode)' if self.args.quick else ''}"
        )
        return 1 if failed else 0

    def _log_summary(self) -> str:
        uri = tracking_uri()
        client: MlflowClient = get_client(uri)
        run = client.create_run(
            experiment_id(client, self.experiment, uri),
            run_name=f"{self.experiment} summary",
            tags={REPRODUCTION_TAG: "true", QUICK_TAG: str(self.args.quick).lower()},
        )
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            (out / "expectations.txt").write_text(
                render(self.expectations, self.args.quick)
                + "".join(f"\nnote: {n}" for n in self.notes)
            )
            (out / "plots").mkdir()
            for name, fig in self.figures.items():
                fig.savefig(out / "plots" / name, dpi=90)
                if self.args.out:
                    self.args.out.mkdir(parents=True, exist_ok=True)
                    fig.savefig(self.args.out / name, dpi=90)
            client.log_artifacts(run.info.run_id, str(out))
        failed = any(
            not e.holds() for e in self.expectations if not (self.args.quick and e.needs_training)
        )
        close_run(client, run.info.run_id, "FAILED" if failed else "FINISHED")
        return run.info.run_id


def render(expectations: list[Expectation], quick: bool) -> str:
    rows = [("check", "got", "expected", "source says", "")]
    for e in expectations:
        verdict = "ok" if e.holds() else "FAIL"
        if quick and e.needs_training:
            verdict += " (not enforced)"
        rows.append((e.what, f"{e.got:.6g}", e.rule(), e.claim, verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
