"""Members with their own hyperparameters (nnlab.training.member_optimizer): a sweep's jobs that
differ in lr, weight decay, momentum, betas, L1 or init train as one population, and member k
equals job k trained alone, to 1e-9 relative in float64, on every backend that trains
populations."""

import numpy as np
import pytest
from omegaconf import OmegaConf

from nnlab.config.member_keys import is_member_key, members_differ_in_optimizer
from tests.conftest import backend_params, compose_config
from tests.training.test_population import FAST, POPULATION_BACKENDS, fit, plain_curves

# Three jobs of one sweep: each differs from the others in several member keys at once.
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


def assert_each_member_equals_its_job(configs: list):
    module, curves = fit(configs[0], configs)
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
    assert_padding_stayed_zero(assert_each_member_equals_its_job(configs))


@pytest.mark.parametrize("kernel", ["fused", "foreach"])
def test_members_with_their_own_adam_settings_equal_their_jobs(kernel):
    configs = job_configs(
        "adam", ADAM_JOBS, f"trainer.optimizer_kernel={kernel}", "model.activation=sigmoid"
    )
    assert members_differ_in_optimizer(configs)
    module = assert_each_member_equals_its_job(configs)
    # Adam's moments of a padded entry stay 0: member 1 ([4, 5] of [6, 5]) keeps rows 4-5 zero.
    assert module.net.weights[1].detach()[1][4:].abs().sum() == 0


def test_full_batch_with_per_member_lr():
    assert_each_member_equals_its_job(job_configs("sgd", SGD_JOBS[:2], "data.batch_size=null"))


def test_which_keys_may_differ_between_members():
    assert all(map(is_member_key, ["seed", "optimizer.lr", "optimizer.betas", "model.l1"]))
    assert all(map(is_member_key, ["model.init", "seeds.init", "+optimizer.momentum"]))
    # What changes the network's shape, the data, the class of optimizer or the backend does not.
    for key in ["optimizer._target_", "optimizer", "model.hidden", "data.batch_size", "backend"]:
        assert not is_member_key(key), key


def test_consecutive_members_with_the_same_settings_share_one_parameter_group():
    """A job's repeats have the same optimizer settings: they step as one group over their
    slice of the stacked tensors (3 members, 2 groups), each still equal to its plain run."""
    jobs = [{"optimizer.lr": 0.05, "seed": 1}, {"optimizer.lr": 0.05, "seed": 2}, SGD_JOBS[1]]
    module = assert_each_member_equals_its_job(job_configs("sgd", jobs))
    (optimizer,) = module.trainer.optimizers
    assert [len(g["params"][0]) for g in optimizer.param_groups] == [2, 1]
