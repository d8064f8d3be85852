"""Members with their own hyperparameters (nnlab.training.member_optimizer): a sweep's jobs that
differ in lr, weight decay, momentum, betas, L1 or init train as one population, and member k
equals job k trained alone, to 1e-9 relative in float64, on every backend that trains
populations. SGD, Adam and AdamW step as one stacked optimizer (nnlab.training.stacked_optimizers)
with the default fused kernel, and as torch's own, a parameter group per setting, with foreach
or where the settings have no stacked form."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from nnlab.config.member_keys import is_member_key, members_differ_in_optimizer
from nnlab.tracking.logger import BufferedMlflowLogger, PopulationLogger
from nnlab.training.fit import fit_and_test, member_setups, population_module
from nnlab.training.setup import run_setup
from nnlab.training.stacked_optimizers import StackedAdam, StackedOptimizer, StackedSGD
from tests.conftest import backend_params, compose_config
from tests.training.test_population import FAST, POPULATION_BACKENDS, fit, plain_curves

# Three jobs of one sweep: each differs from the others in several member keys at once, and
# in its widths (padded to the widest, nnlab.nn.padding).
SGD_JOBS = [
    {"optimizer.lr": 0.05, "optimizer.momentum": 0.0, "model.init": "default"},
    {"optimizer.lr": 0.2, "optimizer.momentum": 0.9, "model.l1": 0.01, "model.init": "he"},
    {"optimizer.lr": 0.1, "optimizer.weight_decay": 0.01, "model.init": "xavier", "seed": 7},
]
for job, hidden in zip(SGD_JOBS, ([4, 3], [7, 2], [5, 5]), strict=True):
    job["model.hidden"] = hidden
ADAM_JOBS = [
    {"optimizer.lr": 0.01, "optimizer.betas": [0.9, 0.999], "model.hidden": [6, 3]},
    {"optimizer.lr": 0.03, "optimizer.betas": [0.8, 0.99], "optimizer.weight_decay": 0.001,
     "model.l1": 0.001, "model.hidden": [4, 5]},
]  # fmt: skip


def job_configs(optimizer: str, jobs: list[dict], *overrides: str) -> list:
    base = compose_config(
        f"optimizer={optimizer}",
        "trainer.precision=64",
        "trainer.max_epochs=8",
        "data.n_samples=150",
        *overrides,
        *FAST,
        shrink=False,
    )
    configs = []
    for job in jobs:
        cfg = base.copy()
        for key, value in job.items():
            OmegaConf.update(cfg, key, value, force_add=True)
        configs.append(cfg)
    return configs


def assert_each_member_equals_its_job(configs: list, stepped_by=None):
    """`stepped_by`: the optimizer class the population must have used."""
    module, curves = fit(configs[0], configs)
    if stepped_by is not None:
        (optimizer,) = module.trainer.optimizers
        assert type(optimizer) is stepped_by
    for cfg, history in zip(configs, curves, strict=True):
        got = {k: v for k, v in history.items() if not k.startswith("test/")}
        expected = plain_curves(cfg)
        assert sorted(got) == sorted(expected)
        for key, points in expected.items():
            np.testing.assert_allclose(
                [v for _, v in got[key]], [v for _, v in points], rtol=1e-9, err_msg=key
            )
    finals = {c["val/loss"][-1][1] for c in curves}
    assert len(finals) == len(configs)  # the jobs did train differently
    return module


def assert_padding_stayed_zero(module) -> None:
    """Member 0 ([4, 3] of the widest [7, 5]): its second layer's padded rows and columns."""
    second = module.net.weights[1].detach()[0]
    assert second.shape == (7, 5)
    assert second[4:].abs().sum() == 0 and second[:, 3:].abs().sum() == 0


@pytest.mark.parametrize("backend", backend_params(POPULATION_BACKENDS))
def test_members_with_their_own_sgd_settings_and_widths_equal_their_jobs(backend):
    """Sigmoid, whose act(0) = 0.5 would leak into the next layer if padded weights ever left
    zero; momentum, weight decay and L1, which must keep them zero."""
    configs = job_configs("sgd", SGD_JOBS, f"backend={backend}", "model.activation=sigmoid")
    module = assert_each_member_equals_its_job(configs, stepped_by=StackedSGD)
    assert_padding_stayed_zero(module)


@pytest.mark.parametrize(
    "kernel, stepped_by", [("fused", StackedAdam), ("foreach", torch.optim.Adam)]
)
def test_members_with_their_own_adam_settings_equal_their_jobs(kernel, stepped_by):
    configs = job_configs(
        "adam", ADAM_JOBS, f"trainer.optimizer_kernel={kernel}", "model.activation=sigmoid"
    )
    assert members_differ_in_optimizer(configs)
    module = assert_each_member_equals_its_job(configs, stepped_by)
    # Adam's moments of a padded entry stay 0: member 1 ([4, 5] of [6, 5]) keeps rows 4-5 zero.
    assert module.net.weights[1].detach()[1][4:].abs().sum() == 0


def test_full_batch_with_per_member_lr():
    assert_each_member_equals_its_job(job_configs("sgd", SGD_JOBS[:2], "data.batch_size=null"))


def test_adamw_members_with_their_own_lr_betas_and_decoupled_decay_equal_their_jobs():
    jobs = [
        {"optimizer.lr": 0.02, "optimizer.weight_decay": 0.05, "optimizer.eps": 1e-6},
        {"optimizer.lr": 0.005, "optimizer.betas": [0.85, 0.95], "optimizer.weight_decay": 0.0},
        {"optimizer.lr": 0.01, "optimizer.weight_decay": 0.3},
    ]
    assert_each_member_equals_its_job(job_configs("adamw", jobs), stepped_by=StackedAdam)


def test_sgd_members_with_nesterov_and_their_own_momentum_and_dampening_equal_their_jobs():
    """A zero-momentum member beside damped ones: torch keeps no buffer for it, so its
    gradient must not be damped."""
    jobs = [
        {"optimizer.lr": 0.1, "optimizer.momentum": 0.9, "optimizer.nesterov": True},
        {"optimizer.lr": 0.05, "optimizer.momentum": 0.5, "optimizer.nesterov": True},
    ]
    assert_each_member_equals_its_job(job_configs("sgd", jobs), stepped_by=StackedSGD)
    damped = [
        {"optimizer.lr": 0.1, "optimizer.momentum": 0.0, "optimizer.dampening": 0.5},
        {"optimizer.lr": 0.05, "optimizer.momentum": 0.8, "optimizer.dampening": 0.3},
    ]
    assert_each_member_equals_its_job(job_configs("sgd", damped), stepped_by=StackedSGD)


def test_settings_without_a_stacked_form_keep_torchs_optimizer():
    """amsgrad has no stacked form; members differing in nesterov would need a branch: both
    step as torch's own optimizer, a parameter group per setting, and still equal their jobs."""
    amsgrad = [{"optimizer.lr": 0.01, "optimizer.amsgrad": True}, {"optimizer.lr": 0.03}]
    assert_each_member_equals_its_job(job_configs("adam", amsgrad), torch.optim.Adam)
    nesterov = [
        {"optimizer.lr": 0.1, "optimizer.momentum": 0.9, "optimizer.nesterov": True},
        {"optimizer.lr": 0.1, "optimizer.momentum": 0.9},
    ]
    assert_each_member_equals_its_job(job_configs("sgd", nesterov), torch.optim.SGD)


def test_which_keys_may_differ_between_members():
    assert all(map(is_member_key, ["seed", "optimizer.lr", "optimizer.betas", "model.l1"]))
    assert all(map(is_member_key, ["model.init", "seeds.init", "optimizer.momentum"]))
    # What changes the network's shape, the data, the class of optimizer or the backend does not.
    for key in ["optimizer._target_", "optimizer", "model.hidden", "data.batch_size", "backend"]:
        assert not is_member_key(key), key


def test_consecutive_members_with_the_same_settings_share_one_parameter_group():
    """A job's repeats have the same optimizer settings: they step as one group over their
    slice of the stacked tensors (3 members, 2 groups), each still equal to its plain run."""
    jobs = [{"optimizer.lr": 0.05, "seed": 1}, {"optimizer.lr": 0.05, "seed": 2}, SGD_JOBS[1]]
    configs = job_configs("sgd", jobs, "trainer.optimizer_kernel=foreach")
    module = assert_each_member_equals_its_job(configs, stepped_by=torch.optim.SGD)
    (optimizer,) = module.trainer.optimizers
    assert [len(g["params"][0]) for g in optimizer.param_groups] == [2, 1]


@pytest.mark.parametrize("optimizer, jobs", [("adam", ADAM_JOBS), ("sgd", SGD_JOBS)])
def test_a_stacked_optimizer_resumes_from_a_checkpoint_as_if_never_stopped(
    optimizer, jobs, tmp_path
):
    """Its per-member hyperparameters, moments, momentum buffers and step count go into the
    checkpoint: 4 epochs, a checkpoint, 4 more from it equal 8 straight, to 1e-12."""

    def trained(epochs: int, checkpoint=None):
        configs = job_configs(optimizer, jobs, f"trainer.max_epochs={epochs}")
        module = population_module(configs[0], configs, member_setups(configs, run_setup))
        loggers = [BufferedMlflowLogger(None, None) for _ in configs]
        fit_and_test(configs[0], module, PopulationLogger(loggers), "t", checkpoint=checkpoint)
        assert isinstance(module.trainer.optimizers[0], StackedOptimizer)
        return module, [lg.history["val/loss"] for lg in loggers]

    first, _ = trained(4)
    first.trainer.save_checkpoint(tmp_path / "last.ckpt")
    _, resumed = trained(8, checkpoint=str(tmp_path / "last.ckpt"))
    _, straight = trained(8)
    for got, want in zip(resumed, straight, strict=True):
        assert [e for e, _ in got] == [4, 5, 6, 7]
        np.testing.assert_allclose([v for _, v in got], [v for _, v in want[4:]], rtol=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_the_flat_step_equals_the_step_tensor_by_tensor_to_the_bit(optimizer, rng):
    """A stacked optimizer steps the population's tensors laid end to end (one kernel an
    operation, nnlab.training.flat_group); a parameter without a gradient makes it step the
    others tensor by tensor instead. Both give the same float32 weights, bit for bit, and a
    checkpoint of the flat one resumes exactly."""
    shapes = [(4, 2, 6), (4, 6), (4, 6, 1), (4, 1)]
    start = [torch.tensor(rng.normal(size=s), dtype=torch.float32) for s in shapes]
    per_member = torch.tensor([0.01, 0.03, 0.1, 0.2], dtype=torch.float64)
    settings = {
        "sgd": {"lr": per_member, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.01},
        "adam": {"lr": per_member, "beta1": 0.9, "beta2": per_member + 0.79, "eps": 1e-8,
                 "weight_decay": 0.01},
        "adamw": {"lr": 0.05, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8,
                  "weight_decay": per_member},
    }[optimizer]  # fmt: skip

    def make(params):
        if optimizer == "sgd":
            return StackedSGD(params, settings)
        return StackedAdam(params, settings, decoupled=optimizer == "adamw")

    grads = [[torch.tensor(rng.normal(size=s), dtype=torch.float32) for s in shapes]
             for _ in range(6)]  # fmt: skip
    flat = [torch.nn.Parameter(t.clone()) for t in start]
    by_tensor = [torch.nn.Parameter(t.clone()) for t in start]
    idle = torch.nn.Parameter(torch.zeros(1))  # never has a gradient
    flat_opt, tensor_opt = make(flat), make([*by_tensor, idle])
    for step, these in enumerate(grads):
        for p, q, g in zip(flat, by_tensor, these, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        flat_opt.step()
        tensor_opt.step()
        if step == 2:  # a checkpoint of the flat optimizer, loaded into a new one
            saved = flat_opt.state_dict()
            flat = [torch.nn.Parameter(p.detach().clone()) for p in flat]
            flat_opt = make(flat)
            flat_opt.load_state_dict(saved)
    assert flat_opt._flat is not None and tensor_opt._flat is None
    for p, q, first in zip(flat, by_tensor, start, strict=True):
        assert torch.equal(p, q)
        assert not torch.equal(p, first)  # it trained
    # What a checkpoint holds: each parameter's own state, as before
    state = flat_opt.state_dict()["state"]
    assert all(v.shape == shapes[i] for i, s in state.items() for v in s.values())


def test_a_stacked_step_runs_hooks_and_shows_in_the_profiler_without_torchs_wrapper():
    """torch's per-class step wrapper (labels for the profiler, the step hooks) is skipped on
    the stacked optimizers' fast path, not lost: hooks still run, in order, and a profiler
    still sees the step by its name."""
    params = [torch.nn.Parameter(torch.ones(3, 2, 2)), torch.nn.Parameter(torch.ones(3, 2))]
    lrs = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    optimizer = StackedAdam(params, {"lr": lrs, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                                     "weight_decay": 0.0})  # fmt: skip
    assert not hasattr(type(optimizer).step, "__wrapped__")  # torch did not wrap it
    calls = []
    before = optimizer.register_step_pre_hook(lambda *_: calls.append("pre"))
    after = optimizer.register_step_post_hook(lambda *_: calls.append("post"))
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    assert calls == ["pre", "post"]
    before.remove(), after.remove()
    with torch.profiler.profile() as profiler:
        optimizer.step()
        optimizer.zero_grad()
    names = {event.name for event in profiler.events()}
    assert "Optimizer.step#StackedAdam.step" in names
    assert "Optimizer.zero_grad#StackedAdam.zero_grad" in names
    assert all(p.grad is None for p in params)
    # Each member moved by its own lr: Adam's first steps are lr-sized
    moved = (1 - params[0].detach()).flatten(1).mean(dim=1)
    torch.testing.assert_close(moved, 2 * lrs.float(), rtol=1e-4, atol=0)
