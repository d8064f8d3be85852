"""Bad input, as a new user types it: one line naming the key, the value and what is allowed,
a non-zero exit, and no run left in the store. Each class of hole found in the second pass
has a test here; the property test (test_bad_input_property.py) searches around them."""

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient

from nnlab import backends
from nnlab.config.check import check_config
from nnlab.config.choices import OPTIMIZERS
from nnlab.config.memory import OPTIMIZER_STATE, estimate_run_memory, parameter_count
from nnlab.data.datasets import DATASETS, DataError
from nnlab.data.splits import Splits, check_split_classes
from nnlab.paths import CONF_DIR
from nnlab.training.run import run_training
from tests.commands import run_cli, spawn_cli
from tests.conftest import backend_params, compose_config


def all_runs(uri):
    client = MlflowClient(uri)
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def refused(store, *overrides, exit_code=2, must_name):
    proc = run_cli("nnlab-train", *overrides, "trainer.max_epochs=2", "trainer.progress=none")
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == exit_code, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for text in must_name:
        assert text in lines[0], lines[0]
    assert all_runs(store) == []  # refused before any run existed
    return lines[0]


def test_seed_beyond_numpys_range_is_refused_before_a_run(store):
    refused(store, "seed=99999999999999999999", must_name=["seed=", "4294967295"])


def test_config_too_big_for_memory_is_refused_with_the_estimate(store):
    line = refused(store, "model.hidden=[200000,200000]", must_name=["model.hidden=", "GiB"])
    assert "available" in line


def test_empty_experiment_name_is_a_config_error_not_a_store_failure(store):
    refused(store, "tracking.experiment=''", must_name=["bad config", "tracking.experiment="])


def test_target_overflowing_float32_is_blamed_on_the_data_and_the_precision(store):
    line = refused(store, "data=sine", "data.noise=1e200", must_name=["bad data", "float32"])
    assert "diverged" not in line.split("(")[0]


def test_features_too_large_to_standardise_are_refused(store):
    refused(store, "data.noise=1e200", must_name=["bad data", "standardise"])


def test_split_too_small_for_its_task_is_refused(store):
    refused(store, "data.n_samples=5", must_name=["data.n_samples=5", ">= 8"])


def test_undefined_metric_is_left_out_with_a_warning_not_logged_as_zero(store):
    # 10 moons with seed 42: the 2-sample test split holds one class; AUROC is undefined.
    proc = run_cli(
        "nnlab-train", "data.n_samples=10", "trainer.max_epochs=2", "trainer.progress=none"
    )
    assert proc.returncode == 0, proc.stderr
    (run,) = all_runs(store)
    assert "test/auroc" not in run.data.metrics
    assert "test/acc" in run.data.metrics
    assert "test/auroc is undefined" in proc.stderr
    assert "only 2 samples" in proc.stderr  # the tiny split is called out


def test_evaluate_leaves_out_undefined_metrics():
    from nnlab.nn.metrics import evaluate
    from nnlab.nn.tasks import TASKS

    one_class = evaluate(TASKS["binary"], "bce", torch.ones(4, 1), torch.ones(4, 1), "test")
    assert "test/auroc" not in one_class and one_class["test/acc"] == 1.0
    both = evaluate(
        TASKS["binary"], "bce", torch.tensor([[-1.0], [1.0]]), torch.tensor([[0.0], [1.0]]), "test"
    )
    assert both["test/auroc"] == 1.0
    constant = evaluate(TASKS["regression"], "mse", torch.zeros(3, 1), torch.ones(3, 1), "test")
    assert "test/r2" not in constant and constant["test/mse"] == 1.0


def splits_with(y_train, y_val, y_test, task="multiclass", n_outputs=3):
    spec = DATASETS["iris"] if task == "multiclass" else DATASETS["moons"]
    x = lambda y: np.zeros((len(y), spec.n_features))  # noqa: E731
    return Splits(
        spec, n_outputs, x(y_train), np.array(y_train), x(y_val), np.array(y_val),
        x(y_test), np.array(y_test), np.zeros(spec.n_features), np.ones(spec.n_features),
    )  # fmt: skip


def test_a_class_missing_from_the_training_split_is_refused():
    with pytest.raises(DataError, match="no sample of class 2"):
        check_split_classes(splits_with([0, 1, 0, 1], [0, 1, 2], [2, 1, 0]))


def test_a_class_missing_from_a_test_split_is_warned_about(capsys):
    check_split_classes(splits_with([0, 1, 2] * 10, [0, 1, 2] * 10, [0, 1] * 15))
    err = capsys.readouterr().err
    assert "test split of iris (30 samples) has no sample of class 2" in err
    assert "val split" not in err


def test_run_training_refuses_target_overflow_before_a_run(store):
    with pytest.raises(DataError, match="float32"):
        run_training(compose_config("data=sine", "data.noise=1e30"))
    assert all_runs(store) == []


@pytest.mark.parametrize("backend", backend_params(backends.names()))
def test_memory_estimate_counts_the_parameters_every_backend_builds(backend):
    sizes = [4, 30, 20, 3]
    net = backends.get(backend).module().network(sizes, "relu", "default", 0, torch.float64)
    assert parameter_count(sizes) == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("target, optimizer", sorted(OPTIMIZERS.items()))
def test_memory_estimate_knows_each_optimizers_state(target, optimizer):
    """The per-parameter state assumed by the estimate is what torch really keeps."""
    has_file = (CONF_DIR / "optimizer" / f"{optimizer}.yaml").exists()
    cfg = compose_config(f"optimizer={optimizer}" if has_file else f"optimizer._target_={target}")
    weights = torch.nn.Parameter(torch.ones(50, 40))
    opt = instantiate(cfg.optimizer)([weights])
    weights.grad = torch.ones_like(weights)
    opt.step()
    state_values = sum(
        t.numel() for s in opt.state.values() for t in s.values() if torch.is_tensor(t)
    )
    momentum = 1 if cfg.optimizer.get("momentum") else 0
    # Whole-tensor state only (scalars such as a step counter are not memory that scales).
    assert state_values // weights.numel() == OPTIMIZER_STATE[optimizer] + momentum


def test_memory_estimate_grows_with_what_the_run_holds():
    base = dict(n_samples=1000, n_train=600, batch_size=32, eval_rows=200, precision=32)
    small = estimate_run_memory([2, 10, 1], optimizer="adam", momentum=0, **base)
    wide = estimate_run_memory([2, 1000, 1], optimizer="adam", momentum=0, **base)
    double = estimate_run_memory(
        [2, 1000, 1], optimizer="adam", momentum=0, **{**base, "precision": 64}
    )
    assert wide.parameters_bytes == parameter_count([2, 1000, 1]) * 4 * 4  # w, grad, 2 adam
    assert double.parameters_bytes == 2 * wide.parameters_bytes
    assert small.total < wide.total < double.total


def test_every_shipped_experiment_preset_fits_in_memory():
    # The estimate must never refuse what nnlab itself ships.
    for preset in sorted((CONF_DIR / "experiment").glob("*.yaml")):
        check_config(compose_config(f"experiment={preset.stem}", shrink=False))


@pytest.mark.parametrize(
    "kernel, reason",
    [("foreach", "optimizer step overflowed"), ("fused", "train/loss is nan at epoch 0")],
)
def test_an_lr_that_overflows_the_optimizer_step_is_a_diverged_run(store, kernel, reason):
    """Found by the property test: Adam's step lr / (1 - beta1) overflows float32 for lr >= 3.4e37.
    The foreach step raises a bare RuntimeError, the fused step writes NaN weights; either way
    it is a divergence, recorded FAILED with its reason."""
    from nnlab.training.engine import TrainingDiverged
    from nnlab.training.run import run_training
    from tests.conftest import compose_config

    overrides = ["optimizer.lr=1e38", f"trainer.optimizer_kernel={kernel}"]
    with pytest.raises(TrainingDiverged, match=reason):
        run_training(compose_config(*overrides, "tracking.log_plots=false"))
    (run,) = MlflowClient(store).search_runs(
        [MlflowClient(store).get_experiment_by_name("nnlab").experiment_id]
    )
    assert run.info.status == "FAILED" and reason in run.data.tags["nnlab.error"]


def sweep_config(*task_overrides: str, sweeper: str = "nnlab_population"):
    """A multirun's config as Hydra hands it to callbacks: composed without the sweep's
    values, its task overrides recorded as typed."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from nnlab.sweeps.study import is_sweep_override

    fixed = [o for o in task_overrides if not is_sweep_override(o)]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", [f"hydra/sweeper={sweeper}", *fixed], return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.overrides.task = list(task_overrides)
        from nnlab.sweeps.sweep_check import sweep_problems

        return sweep_problems(cfg)


def test_every_job_of_a_grid_is_checked_before_the_sweep_starts():
    problems = sweep_config("model.activation=swish,relu,gelu_x", "optimizer.lr=0.1,0.2")
    # Hydra's order: activation outer, lr inner; jobs 0, 1 (swish) and 4, 5 (gelu_x) are bad.
    assert [p.split(" ", 2)[:2] for p in problems] == [
        ["job", "0"], ["job", "1"], ["job", "4"], ["job", "5"]
    ]  # fmt: skip
    assert problems[0] == (
        "job 0 (model.activation=swish optimizer.lr=0.1): bad config: "
        "model.activation=swish: allowed: relu, tanh, sigmoid, leaky_relu, gelu, identity"
    )
    assert sweep_config("model.activation=relu,tanh", "optimizer.lr=0.1,0.2") == []
    # The basic sweeper's grid too; an Optuna search's sampled keys are each trial's.
    assert len(sweep_config("optimizer.lr=0.1,-1", sweeper="basic")) == 1
    assert sweep_config("optimizer.lr=interval(0.001,0.1)", sweeper="nnlab_optuna") == []
    assert sweep_config(
        "optimizer.lr=interval(0.001,0.1)", "model.init=bogus", sweeper="nnlab_optuna"
    ) == ["bad config: model.init=bogus: allowed: default, he, xavier"]


@pytest.mark.parametrize(
    "written, typed",
    [("1e3", "a number"), ("true", "a boolean"), ("null", "null (no value)"), ("42", "a number")],
)
def test_a_name_hydra_typed_is_explained_with_how_to_quote_it(written, typed):
    (line,) = sweep_config(f"tracking.experiment={written}", "optimizer.lr=0.1,0.2")
    assert line == (
        f"bad config: tracking.experiment={written}: Hydra reads {written} as {typed}; quote "
        f"it to pass it as text: tracking.experiment='{written}' (in a shell: "
        f"\"tracking.experiment='{written}'\")"
    )
    assert "non-empty" not in line


@pytest.mark.slow
def test_a_sweep_with_bad_jobs_or_a_bad_sweep_wide_key_exits_2_before_any_run(store):
    """One line per bad job, exit 2, and nothing in the store: not the parent, not the good
    jobs. A sweep-wide key (the experiment) gets the line a single run gives, exit 2."""
    grid = spawn_cli("nnlab-train", "-m", "model.activation=swish,relu", "trainer.max_epochs=1")
    assert grid.returncode == 2, grid.stderr
    lines = grid.stderr.strip().splitlines()
    assert lines == [
        "nnlab-train: job 0 (model.activation=swish): bad config: model.activation=swish: "
        "allowed: relu, tanh, sigmoid, leaky_relu, gelu, identity"
    ]
    assert all_runs(store) == []
    single = run_cli("nnlab-train", "tracking.experiment=1e3", "trainer.max_epochs=1")
    sweep = run_cli(
        "nnlab-train",
        "-m",
        "tracking.experiment=1e3",
        "optimizer.lr=0.1,0.2",
        "trainer.max_epochs=1",
    )
    assert single.returncode == sweep.returncode == 2
    assert single.stderr.strip() == sweep.stderr.strip()
    assert "quote it" in sweep.stderr and "parent" not in sweep.stderr
    assert all_runs(store) == []
