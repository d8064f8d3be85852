"""Building, fitting and testing N >= 1 members (nnlab.training.engine) with one Lightning
Trainer. A plain run (nnlab.training.run) and a group's population (nnlab.training.population)
both train through here.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Checkpoint

from nnlab import backends
from nnlab.config.choices import ELEMENTWISE_OPTIMIZERS, FUSED_OPTIMIZERS
from nnlab.config.member_keys import members_differ_in_optimizer
from nnlab.config.seeds import effective_seeds
from nnlab.nn.padding import crop_params, gradient_masks, pad_params, padded_sizes
from nnlab.nn.population_nets import MemberNet, member_params
from nnlab.nn.scratch import init_params
from nnlab.training.checkpoints import PeriodicCheckpoint
from nnlab.training.engine import PopulationModule
from nnlab.training.layer_watch import LayerWatch
from nnlab.training.member_optimizer import member_l1, per_member_optimizer
from nnlab.training.population_data import OneItem, population_data
from nnlab.training.progress import EpochProgress
from nnlab.training.setup import layer_sizes


def member_setups(members, run_setup) -> list:
    """Each member's RunSetup; members with the same data seed share one (and its arrays), or
    its splits when their widths differ."""
    by_data_seed: dict[int, object] = {}
    setups = []
    for member in members:
        seed = effective_seeds(member).data
        if seed not in by_data_seed:
            by_data_seed[seed] = run_setup(member)
        setup = by_data_seed[seed]
        sizes = layer_sizes(member, setup.splits)
        setups.append(setup if sizes == setup.sizes else replace(setup, sizes=sizes))
    return setups


def population_module(cfg: DictConfig, members: list[DictConfig], setups: list, record=None):
    """The stacked network of `members` (nnlab.training.engine), its optimizer and the
    members' data, ready to fit. `record(k, epoch, metrics)` receives member k's metrics."""
    # Lightning's RNGs seeded as for member 0's plain run; the weights come from init_params.
    pl.seed_everything(effective_seeds(members[0]).init, workers=False, verbose=False)
    # The members share depth, task and loss; they may differ in the keys of
    # nnlab.config.member_keys (seeds, optimizer settings, l1, init) and in their widths,
    # padded to the widest (nnlab.nn.padding).
    setup = setups[0]
    member_sizes = [s.sizes for s in setups]
    sizes = padded_sizes(member_sizes)
    params = [
        init_params(s.sizes, m.model.init, effective_seeds(m).init)
        for m, s in zip(members, setups, strict=True)
    ]
    padded = any(own != sizes for own in member_sizes)
    if padded:
        params = [pad_params(p, sizes) for p in params]
    options = {k: v for k, v in cfg.backend.items() if k != "name"}  # e.g. jit
    net = (
        backends.get(cfg.backend.name)
        .module()
        .population_network(params, cfg.model.activation, setup.dtype, **options)
    )
    data = population_data(
        [s.splits for s in setups], [effective_seeds(m).order for m in members], setup.dtype
    )
    kernel = optimizer_kernel(cfg)
    if cfg.optimizer._target_ not in ELEMENTWISE_OPTIMIZERS:  # it would mix stacked members
        make_optimizer = per_member_optimizer(members, kernel, each_alone=True)
    elif members_differ_in_optimizer(members):  # stacked hyperparameters, or a group each
        make_optimizer = per_member_optimizer(members, kernel)
    else:
        make_optimizer = lambda params: instantiate(cfg.optimizer)(params, **kernel)  # noqa: E731
    return PopulationModule(
        net,
        setup.task,
        setup.loss_name,
        make_optimizer,
        data,
        cfg.data.batch_size,
        l1=member_l1(members, setup.dtype),
        record=record,
        gradient_masks=gradient_masks(member_sizes, sizes) if padded else None,
        watch=(
            LayerWatch(
                cfg.tracking.watch_every,
                cfg.model.activation,
                member_sizes if padded else None,
            )
            if cfg.tracking.get("watch", False)
            else None
        ),
        max_epochs=cfg.trainer.max_epochs,
    )


def optimizer_kernel(cfg: DictConfig) -> dict:
    """How torch computes the optimizer's step, the same for every N so that a plain run and a
    population member share it. `fused`: one kernel for every tensor, 2-3x cheaper than the
    others on a small net (BENCHMARKS.md section 10), but its vectorised body and its scalar
    tail round differently, and where a member's elements fall between them depends on N: in
    float32 the last bits part. `foreach` computes each element the same whatever N, and
    equals the plain for-loop bit for bit. A run recorded before the key existed ran foreach."""
    kernel = cfg.trainer.get("optimizer_kernel", "foreach")
    if kernel == "fused" and cfg.optimizer._target_ in FUSED_OPTIMIZERS:
        return {"fused": True}
    return {"foreach": True}


def build_trainer(
    cfg: DictConfig, module: PopulationModule, logger, callbacks: list, root_dir: str
) -> pl.Trainer:
    """The Trainer every nnlab run uses to fit `module` (benchmarks build theirs here too)."""
    return pl.Trainer(
        # No epoch limit: a Lightning epoch may train several (module.epochs_per_step), and
        # the module stops the fit after its max_epochs-th.
        max_epochs=-1,
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision=f"{cfg.trainer.precision}-true",
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        enable_progress_bar=False,  # nnlab.training.progress reports per epoch instead
        # True only with nnlab's own Checkpoint callback: otherwise Lightning would add a
        # ModelCheckpoint writing to disk every epoch.
        enable_checkpointing=any(isinstance(c, Checkpoint) for c in callbacks),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True,
        default_root_dir=root_dir,
    )


def fit_and_test(cfg, module, logger, label: str, watchers=(), checkpoint=None):
    """Train `module` (population_module) with one Lightning Trainer, then test each member;
    returns it trained. `logger` (nnlab.tracking.logger.PopulationLogger) gets every member's
    metrics. `watchers`: callbacks that act on each epoch's metrics (early stopping, pruning);
    `checkpoint`: a resume point (nnlab.training.resume checked it)."""

    module.record_fn = logger.record
    callbacks = [
        EpochProgress(cfg.trainer.progress, module.task.headline, label),
        PeriodicCheckpoint(cfg.trainer.checkpoint_every_s),
        *[w for w in watchers if w is not None],
    ]
    with tempfile.TemporaryDirectory(prefix="nnlab-pl-") as scratch:
        trainer = build_trainer(cfg, module, logger, callbacks, scratch)
        try:
            trainer.fit(module, train_dataloaders=OneItem(), ckpt_path=checkpoint)
            if len(module.failures) + len(module.pruned) < module.members:
                trainer.test(module, dataloaders=OneItem(), verbose=False)
        finally:
            logger.flush()  # whatever was measured is kept, also when training fails
    return module


def member_network(cfg: DictConfig, module, k: int, setup):
    """Member k of a trained population on its own, at its own widths
    (nnlab.nn.population_nets.MemberNet)."""

    options = {key: v for key, v in cfg.backend.items() if key != "name"}
    own = crop_params(member_params(module.net, k), setup.sizes)
    one = (
        backends.get(cfg.backend.name)
        .module()
        .population_network([own], cfg.model.activation, setup.dtype, **options)
    )
    return MemberNet(one)
