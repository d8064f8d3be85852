"""Short epochs are taken several to a Lightning step (nnlab.training.engine.epochs_per_step):
the members train, stop early and resume exactly as with one epoch per step."""

import pytorch_lightning as pl
import torch

from nnlab.config.seeds import member_config
from nnlab.tracking.logger import BufferedMlflowLogger, PopulationLogger
from nnlab.training.engine import STEPS_PER_LIGHTNING_STEP, epochs_per_step
from nnlab.training.fit import fit_and_test, member_setups, population_module
from nnlab.training.run import early_stopper
from nnlab.training.setup import run_setup
from tests.conftest import compose_config

MEMBERS = 3


def config(epochs: int):
    # Full batch: one optimizer step an epoch, so 16 epochs to a Lightning step. The lr and
    # patience make the members stop early, at different epochs, inside a Lightning step.
    return compose_config(
        f"repeats={MEMBERS}",
        "data.batch_size=null",
        "optimizer=sgd",
        "optimizer.lr=1.0",
        "trainer.early_stopping.patience=3",
        "trainer.early_stopping.min_delta=0.001",
        "trainer.precision=64",
        f"trainer.max_epochs={epochs}",
        "tracking.log_plots=false",
        "tracking.log_model=false",
        "trainer.progress=none",
        shrink=False,
    )


def train(cfg, per_step=None, checkpoint=None, histories=None, callbacks=()):
    """The population of `cfg`, `per_step` epochs to a Lightning step (default: the engine's
    choice); its module, early stopper and each member's curves."""
    members = [member_config(cfg, k) for k in range(MEMBERS)]
    module = population_module(cfg, members, member_setups(members, run_setup))
    if per_step is not None:
        module.epochs_per_step = per_step
    loggers = [BufferedMlflowLogger(None, None, history=h) for h in histories or [None] * MEMBERS]
    stopper = early_stopper(cfg)
    watchers = (stopper, *callbacks)
    fit_and_test(cfg, module, PopulationLogger(loggers), "t", watchers, checkpoint)
    return module, stopper, [dict(lg.history) for lg in loggers]


class SaveAt(pl.Callback):
    """A checkpoint where nnlab's periodic one is written (a Lightning epoch's end), once
    `epochs` epochs are trained, and the curves logged by then."""

    def __init__(self, path, epochs: int):
        self.path, self.epochs, self.curves = path, epochs, None

    def on_train_epoch_end(self, trainer, module) -> None:
        if module.next_epoch == self.epochs:
            trainer.save_checkpoint(self.path)
            loggers = trainer.logger.members
            self.curves = [{k: list(v) for k, v in lg.history.items()} for lg in loggers]


def test_the_choice_gives_each_lightning_step_enough_optimizer_steps():
    assert epochs_per_step(600, None) == STEPS_PER_LIGHTNING_STEP  # full batch
    assert epochs_per_step(600, 32) == 1  # 19 batches: a Lightning step of its own
    assert epochs_per_step(120, 32) == STEPS_PER_LIGHTNING_STEP // 4


def test_several_epochs_per_step_train_and_stop_exactly_as_one_per_step():
    cfg = config(301)
    many, many_stops, many_curves = train(cfg)
    assert many.epochs_per_step == STEPS_PER_LIGHTNING_STEP
    one, one_stops, one_curves = train(cfg, per_step=1)
    assert many_stops.stopped_at == one_stops.stopped_at
    assert len(set(many_stops.stopped_at)) > 1  # each member stops at its own epoch
    assert any(s % STEPS_PER_LIGHTNING_STEP != 15 for s in many_stops.stopped_at)  # mid-step
    for k, (got, expected) in enumerate(zip(many_curves, one_curves, strict=True)):
        assert got == expected  # bit for bit: the same arithmetic in the same order
        assert [e for e, _ in got["train/loss"]] == list(range(many_stops.stopped_at[k] + 1))
    for p, q in zip(many.net.parameters(), one.net.parameters(), strict=True):
        assert torch.equal(p, q)  # each member's best epoch's weights, kept


def test_a_checkpoint_resumes_at_its_next_epoch_whatever_the_epochs_per_step(tmp_path):
    """A checkpoint says which epoch comes next; one written before it did (one epoch per
    Lightning step) is read by Lightning's count. Either resumes to the straight-through run."""
    _, straight, straight_curves = train(config(301))
    for written_in in (STEPS_PER_LIGHTNING_STEP, 1):
        saver = SaveAt(tmp_path / f"last-{written_in}.ckpt", epochs=32)
        train(config(301), per_step=written_in, callbacks=(saver,))
        if written_in == 1:  # as an older nnlab wrote it
            state = torch.load(saver.path, weights_only=True)
            del state["nnlab_next_epoch"]
            torch.save(state, saver.path)
        _, resumed, resumed_curves = train(config(301), None, saver.path, saver.curves)
        assert resumed.stopped_at == straight.stopped_at
        assert resumed_curves == straight_curves
