"""Repeats trained as one population (nnlab.training.population): member k's curves equal the
plain run with member k's seeds, to 1e-9 relative in float64, for every task, mini-batch and
full batch, every backend and every optimizer; a diverged member fails alone; each member is
its own complete run."""

import math

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from nnlab.config.member_keys import why_not_population
from nnlab.config.rules import ConfigError
from nnlab.config.seeds import member_config
from nnlab.paths import CONF_DIR
from nnlab.tracking.logger import BufferedMlflowLogger, PopulationLogger
from nnlab.tracking.store.names import (
    DESCRIPTION_TAG,
    FIT_SECONDS_TAG,
    MEMBER_TAG,
    OBJECTIVE_TAG,
    OVERHEAD_SECONDS_TAG,
    PARENT_TAG,
    POPULATION_TAG,
)
from nnlab.training.fit import fit_and_test, member_setups, population_module
from nnlab.training.population import wanted
from nnlab.training.repeats import run_group
from nnlab.training.setup import run_setup
from tests.commands import BIN, run_cli, wait_for
from tests.conftest import backend_params, compose_config

POPULATION_BACKENDS = ["torch", "torch_scratch", "numpy", "jax", "tensorflow"]
OPTIMIZERS = sorted(p.stem for p in (CONF_DIR / "optimizer").glob("*.yaml"))
FAST = ["tracking.log_plots=false", "tracking.log_model=false", "trainer.progress=none"]
MEMBERS = 3


def member_runs(client, experiment="nnlab") -> list:
    """The runs of experiment `experiment` that are members of a group (none yet: [])."""
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id]) if exp else []
    return [r for r in runs if MEMBER_TAG in r.data.tags]


def fit(cfg, members, module=None):
    """`members` trained as one population by the engine; each member's logger."""
    loggers = [BufferedMlflowLogger(None, None) for _ in members]
    module = module or population_module(cfg, members, member_setups(members, run_setup))
    fit_and_test(cfg, module, PopulationLogger(loggers), "t")
    return module, [dict(lg.history) for lg in loggers]


def plain_curves(cfg) -> dict[str, list[tuple[int, float]]]:
    """The per-epoch metrics of the plain run of `cfg` (a population of one)."""
    _, (history,) = fit(cfg, [cfg])
    return {k: v for k, v in history.items() if not k.startswith("test/")}


def population_curves(cfg, epochs: int):
    members = [member_config(cfg, k) for k in range(int(cfg.repeats))]
    module, histories = fit(cfg, members)
    curves = [{k: v for k, v in h.items() if not k.startswith("test/")} for h in histories]
    return members, curves, module


def assert_members_equal_plain_runs(*overrides: str, epochs: int = 12) -> None:
    cfg = compose_config(
        *overrides,
        f"repeats={MEMBERS}",
        "trainer.precision=64",
        f"trainer.max_epochs={epochs}",
        "data.n_samples=150",
        *FAST,
        shrink=False,
    )
    members, curves, _ = population_curves(cfg, epochs)
    for member, got in zip(members, curves, strict=True):
        expected = plain_curves(member)
        assert sorted(got) == sorted(expected)
        for key, points in expected.items():
            assert [e for e, _ in got[key]] == [e for e, _ in points] == list(range(epochs))
            np.testing.assert_allclose(
                [v for _, v in got[key]], [v for _, v in points], rtol=1e-9, err_msg=key
            )
    # The members did differ: a population of copies would pass the comparison above too.
    finals = {c["val/loss"][-1][1] for c in curves}
    assert len(finals) == MEMBERS


@pytest.mark.parametrize("backend", backend_params(POPULATION_BACKENDS))
@pytest.mark.parametrize(
    "data", ["moons", "blobs", "sine"], ids=["binary", "multiclass", "regression"]
)
@pytest.mark.parametrize("batch", ["32", "null"], ids=["minibatch", "fullbatch"])
def test_members_follow_their_plain_runs(backend, data, batch):
    assert_members_equal_plain_runs(
        f"backend={backend}", f"data={data}", f"data.batch_size={batch}"
    )


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_every_optimizer_is_exact_per_member(optimizer, backend):
    """With weight decay and an L1 term, so that every part of the step is per member."""
    assert_members_equal_plain_runs(
        f"backend={backend}",
        f"optimizer={optimizer}",
        "optimizer.weight_decay=0.01",
        "model.l1=0.001",
    )


def test_shared_data_is_held_once_and_members_still_differ():
    """seeds.data fixed: one dataset for all, initial weights and batch orders per member."""
    cfg = compose_config("repeats=3", "seeds.data=7", "trainer.precision=64", *FAST, shrink=False)
    members = [member_config(cfg, k) for k in range(3)]
    module = population_module(cfg, members, member_setups(members, run_setup))
    assert module.data.shared and module.data.x_train.dim() == 2
    assert_members_equal_plain_runs("seeds.data=7", "seeds.order=3", epochs=5)


def test_a_diverged_member_stops_alone():
    """Member 1's initial weights scaled up until its loss overflows: it stops at that epoch,
    the others train on exactly as their plain runs."""
    cfg = compose_config(
        "repeats=3",
        "trainer.precision=64",
        "optimizer=sgd",
        "optimizer.lr=0.5",
        "data=sine",
        "data.n_samples=150",
        "trainer.max_epochs=5",
        *FAST,
        shrink=False,
    )
    members = [member_config(cfg, k) for k in range(3)]
    module = population_module(cfg, members, member_setups(members, run_setup))
    with np.errstate(all="ignore"):
        for w in module.net.weights:
            w.data[1] *= 1e200
    module, histories = fit(cfg, members, module)
    curves = [{(key, e): v for key, points in h.items() for e, v in points} for h in histories]
    assert list(module.failures) == [1] and "at epoch 0" in module.failures[1]
    assert not math.isfinite(curves[1]["train/loss", 0]) and ("val/loss", 0) not in curves[1]
    assert not any(key.startswith("test/") for key, _ in curves[1])  # no result to test
    for k in (0, 2):
        expected = plain_curves(members[k])
        for key, points in expected.items():
            np.testing.assert_allclose(
                [curves[k][key, e] for e, _ in points], [v for _, v in points], rtol=1e-9
            )


def test_refusals_name_the_reason(monkeypatch):
    from nnlab.sweeps.study import TRIAL_ENV, job_is_a_trial

    assert why_not_population(compose_config("repeats=2")) is None
    with monkeypatch.context() as env:
        env.setenv(TRIAL_ENV, "3")  # what nnlab's Optuna sweeper gives each trial's job
        assert job_is_a_trial()
        assert "Optuna trial" in why_not_population(compose_config("repeats=2"), job_is_a_trial())
        assert not wanted(compose_config("repeats=2"))
    for override, words in [
        ("trainer.accelerator=auto", "populations train on the cpu"),
    ]:
        cfg = compose_config("repeats=2", override)
        assert words in why_not_population(cfg)
        assert not wanted(cfg)  # auto: one by one
        with pytest.raises(ConfigError, match="trainer.population=true: .*allowed"):
            wanted(compose_config("repeats=2", override, "trainer.population=true"))
    assert not wanted(compose_config("repeats=2", "trainer.population=false"))


def test_population_members_are_complete_runs(store):
    """Through run_group: a parent, and per member a FINISHED child with params, curves, test
    metrics, figures, checkpoint and MLflow Model, and the same numbers as one by one."""
    common = ["repeats=3", "trainer.max_epochs=6", "trainer.precision=64", "data.n_samples=150"]
    cfg = compose_config(*common, "trainer.progress=none", "tracking.log_model=true", shrink=False)
    together = run_group(cfg, [], {})
    cfg_alone = compose_config(*common, "trainer.population=false", *FAST, shrink=False)
    alone = run_group(cfg_alone, [], {})
    client = MlflowClient(store)
    assert together.group == alone.group  # how it trained is not part of what it computed
    for a, b in zip(together.members, alone.members, strict=True):
        run = client.get_run(a.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.tags[PARENT_TAG] == together.parent_run_id
        # Written as it closed: its timings beside its description with the final numbers
        tags = run.data.tags
        assert float(tags[FIT_SECONDS_TAG]) > 0 and float(tags[OVERHEAD_SECONDS_TAG]) > 0
        assert tags[OBJECTIVE_TAG] == cfg.objective
        assert f"{a.metrics['test/loss']:.4g}" in tags[DESCRIPTION_TAG]
        assert run.data.params["seed"] == client.get_run(b.run_id).data.params["seed"]
        assert run.data.tags[MEMBER_TAG] == client.get_run(b.run_id).data.tags[MEMBER_TAG]
        assert set(a.metrics) == set(b.metrics)
        for key in a.metrics:
            assert a.metrics[key] == pytest.approx(b.metrics[key], rel=1e-9), key
        files = {f.path for f in client.list_artifacts(a.run_id, "plots")}
        assert files == {"plots/curves.png", "plots/decision_boundary.png"}
        assert client.list_artifacts(a.run_id, "checkpoints")[0].path.endswith("model.ckpt")
        models = client.search_logged_models([run.info.experiment_id])
        assert any(m.source_run_id == a.run_id for m in models)
    assert client.get_run(together.parent_run_id).data.metrics["group/n"] == 3
    # The group's own figure: the members' mean curves with their spread.
    files = {f.path for f in client.list_artifacts(together.parent_run_id, "plots")}
    assert files == {"plots/group_curves.png"}


def test_diverging_members_fail_alone_from_the_command_line(store):
    """An lr at which some seeds diverge and others do not: each diverging member's run FAILED
    with the reason, the group's result the mean of the rest. Which seeds diverge is found by
    training each seed alone first, not written down from one run."""
    case = ["repeats=6", "data=sine", "data.n_samples=200", "optimizer=sgd", "optimizer.lr=1.2"]
    case += ["trainer.max_epochs=30", "tracking.log_model=false"]
    alone = run_group(
        compose_config(*case, "trainer.population=false", *FAST, shrink=False), [], {}
    )
    diverging = sorted(line.split("(seed ", 1)[1].split(")")[0] for line in alone.failures)
    assert 0 < len(diverging) < 6, f"lr 1.2 no longer splits seeds 42..47: {diverging} diverge"

    # Figures drawn in process: a figure worker is a process, and this test is not about them.
    drawing = "tracking.figure_workers=0"
    proc = run_cli(
        "nnlab-train", *case, drawing, "trainer.progress=lines", "tracking.experiment=together"
    )
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("together")
    runs = client.search_runs([exp.experiment_id], f"tags.`{MEMBER_TAG}` != ''")
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert sorted(r.data.params["seed"] for r in failed) == diverging, proc.stdout + proc.stderr
    assert all("train/loss is" in r.data.tags["nnlab.error"] for r in failed)
    assert {r.info.status for r in runs if r not in failed} == {"FINISHED"}
    assert "repeats as one population" in proc.stdout
    assert f"n={6 - len(failed)}, {len(failed)} failed" in proc.stdout
    # Progress: a line every 10% of the epochs, counting the members still training.
    lines = [ln for ln in proc.stderr.splitlines() if "epoch" in ln and "members training" in ln]
    assert len(lines) == 10 and lines[0].endswith("epoch 3/30: 6 of 6 members training")
    assert lines[-1].endswith(f"epoch 30/30: {6 - len(failed)} of 6 members training")
    # Then what the wait is for: the members' outputs, after the training.
    assert "trained; writing the 6 members' outputs" in proc.stderr.split(lines[-1], 1)[1]


@pytest.mark.slow
def test_an_interrupted_population_closes_every_run_killed(store):
    """SIGTERM mid-training: each member's run and the group's parent end KILLED, with the
    curves measured so far; none is left RUNNING."""
    import signal
    import subprocess

    proc = subprocess.Popen(
        [str(BIN / "nnlab-train"), "repeats=3", "trainer.max_epochs=100000", "data.n_samples=200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = MlflowClient(store)

    def members_with_a_curve():
        return [
            r for r in member_runs(client) if client.get_metric_history(r.info.run_id, "val/loss")
        ]

    members = wait_for(members_with_a_curve, proc, "a member logged a curve")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    runs = client.search_runs([members[0].info.experiment_id])
    assert len(runs) == 4 and {r.info.status for r in runs} == {"KILLED"}
    for run in runs:
        if MEMBER_TAG in run.data.tags:
            assert "SIGTERM" in run.data.tags["nnlab.error"]
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
            assert steps and sorted(steps) == list(range(len(steps)))  # no epoch lost


@pytest.mark.slow
def test_a_sigkilled_population_is_listed_stale_and_resumed_by_any_member(store):
    """SIGKILL mid-training (nothing can be closed or flushed): the members and the group's
    parent are listed by --stale; resume=<a member's run id> continues the whole population
    from its checkpoint, and each member's curve then has every epoch exactly once, with the
    values of the same population trained without interruption."""
    import subprocess

    common = [
        "repeats=3",
        "data.n_samples=200",
        "trainer.precision=64",
        "trainer.progress=none",
        "tracking.log_model=false",
        "tracking.log_plots=false",
    ]
    proc = subprocess.Popen(
        [
            str(BIN / "nnlab-train"),
            *common,
            "trainer.max_epochs=100000",
            "trainer.checkpoint_every_s=0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = MlflowClient(store)

    def members_with_a_checkpoint():
        members = member_runs(client)
        ready = len(members) == 3 and all(
            client.list_artifacts(r.info.run_id, "checkpoints") for r in members
        )
        return members if ready else None

    members = wait_for(members_with_a_checkpoint, proc, "every member has a checkpoint")
    proc.kill()
    proc.wait()
    stale = run_cli("nnlab-report", "--stale")
    parent_id = members[0].data.tags[PARENT_TAG]
    for run_id in [parent_id, *(m.info.run_id for m in members)]:
        assert run_id in stale.stdout, stale.stdout

    by_member = {int(m.data.tags[MEMBER_TAG]): m.info.run_id for m in members}
    done = min(
        max(m.step for m in client.get_metric_history(r, "train/loss")) for r in by_member.values()
    )
    target = done + 30
    resumed = run_cli(
        "nnlab-train", f"resume={by_member[2]}", f"trainer.max_epochs={target}", check=True
    )
    assert "resuming its population of 3 members" in resumed.stdout
    assert client.get_run(parent_id).info.status == "FINISHED"
    run_cli(
        "nnlab-train",
        *common,
        f"trainer.max_epochs={target}",
        "tracking.experiment=straight",
        check=True,
    )
    straight = {
        int(r.data.tags[MEMBER_TAG]): r.info.run_id for r in member_runs(client, "straight")
    }
    for k, run_id in by_member.items():
        assert client.get_run(run_id).info.status == "FINISHED"
        for key in ("train/loss", "val/loss"):
            curve = client.get_metric_history(run_id, key)
            assert sorted(m.step for m in curve) == list(range(target)), (k, key)
            expected = {m.step: m.value for m in client.get_metric_history(straight[k], key)}
            got = {m.step: m.value for m in curve}
            np.testing.assert_allclose(
                [got[e] for e in range(target)], [expected[e] for e in range(target)], rtol=1e-9
            )


def float32_curves(backend: str, optimizer: str):
    """Three members trained in float32 with the `foreach` optimizer kernel (the fused one
    rounds a tensor's tail differently), and each member's plain run."""
    cfg = compose_config(
        f"backend={backend}",
        "optimizer=sgd",
        optimizer,
        "repeats=3",
        "trainer.precision=32",
        "trainer.optimizer_kernel=foreach",
        "trainer.max_epochs=15",
        "data.n_samples=150",
        *FAST,
        shrink=False,
    )
    members, curves, _ = population_curves(cfg, 15)
    return [(got, plain_curves(member)) for member, got in zip(members, curves, strict=True)]


@pytest.mark.parametrize("optimizer", ["optimizer=adam", "optimizer.momentum=0.9"])
def test_in_float32_a_numpy_member_equals_its_plain_run_bit_for_bit(optimizer):
    """One engine: a plain run is a population of one. The numpy backend computes each
    member's matmuls alone, so its curves are equal exactly, not to a tolerance, in float32
    where rounding would show any difference."""
    for got, plain in float32_curves("numpy", optimizer):
        assert got == plain


@pytest.mark.parametrize("backend", ["torch", "torch_scratch"])
@pytest.mark.parametrize("optimizer", ["optimizer.momentum=0.0", "optimizer.momentum=0.9"])
def test_in_float32_a_torch_member_equals_its_plain_run_to_float32_rounding(backend, optimizer):
    """The torch members' batched matmul over N members is MKL's, and MKL picks its kernel
    from the batch: on some CPUs (AVX-512 here) a member's product rounds differently for
    N = 1 and N = 3 (README, "Exact"). So torch members agree with their plain runs to
    float32's rounding, carried through 15 epochs (measured here: 2e-8 under plain SGD,
    3e-7 with momentum), not bit for bit; a member trained with another's seed or settings
    would be off by far more."""
    for got, plain in float32_curves(backend, optimizer):
        assert got.keys() == plain.keys()
        for key in got:
            assert [e for e, _ in got[key]] == [e for e, _ in plain[key]], key
            np.testing.assert_allclose(
                [v for _, v in got[key]], [v for _, v in plain[key]], rtol=1e-5, err_msg=key
            )


def test_early_stopping_stops_each_member_alone_as_its_plain_run(store):
    """Members stop at their own epochs (here they differ) and keep their best weights; each
    member's run equals its plain run: curve, best epoch, stop tag and objective."""
    from nnlab.training.run import run_training

    stopping = [
        "data=moons",
        "optimizer=sgd",
        "optimizer.lr=0.5",
        "trainer.max_epochs=150",
        "trainer.early_stopping.patience=4",
        "trainer.early_stopping.min_delta=0.002",
        "trainer.precision=64",
        "data.n_samples=300",
        *FAST,
    ]
    group = run_group(compose_config(*stopping, "repeats=3", shrink=False), [], {})
    assert len(group.members) == 3 and not group.failures
    client = MlflowClient(store)
    stops = set()
    for member in group.members:
        seed = int(client.get_run(member.run_id).data.params["seed"])
        alone = run_training(compose_config(*stopping, f"seed={seed}", shrink=False))
        mine, theirs = client.get_run(member.run_id), client.get_run(alone.run_id)
        for key in ("nnlab.best_epoch", "nnlab.stopped_early"):
            assert mine.data.tags[key] == theirs.data.tags[key], key
        curve = [m.value for m in client.get_metric_history(member.run_id, "val/loss")]
        expected = [m.value for m in client.get_metric_history(alone.run_id, "val/loss")]
        np.testing.assert_allclose(curve, expected, rtol=1e-9)
        assert member.objective == pytest.approx(alone.objective, rel=1e-9)
        assert mine.data.metrics["test/loss"] == pytest.approx(
            theirs.data.metrics["test/loss"], rel=1e-9
        )  # tested with the best epoch's weights, as the plain run is
        stops.add(len(curve))
    assert len(stops) > 1  # the members did stop at different epochs


def test_skip_finished_is_decided_per_member(store):
    """With two members already FINISHED as plain runs, repeats=3 skips them and trains only
    the third; the group still reports all three."""
    from nnlab.training.run import run_training

    base = ["data.n_samples=150", "trainer.max_epochs=3", "tracking.skip_finished=true", *FAST]
    cfg = compose_config(*base, "repeats=3", shrink=False)
    done = [run_training(member_config(cfg, k)) for k in (0, 2)]
    group = run_group(cfg, [], {})
    assert {m.run_id for m in group.members if m.skipped} == {d.run_id for d in done}
    (trained,) = [m for m in group.members if not m.skipped]
    run = MlflowClient(store).get_run(trained.run_id)
    assert run.data.params["seed"] == str(int(cfg.seed) + 1) and run.info.status == "FINISHED"


def test_an_optimizer_outside_the_elementwise_list_trains_one_optimizer_per_member(store):
    """Adafactor factors each weight's second moment over its rows and columns, so members
    sharing a stacked tensor would mix: the population steps each member alone, over its own
    layer shapes, and each member equals its plain run."""
    from nnlab.training.run import run_training

    base = [
        "optimizer._target_=torch.optim.Adafactor",
        "optimizer.lr=0.05",
        "data.n_samples=150",
        "trainer.max_epochs=5",
        "trainer.precision=64",
        *FAST,
    ]
    cfg = compose_config(*base, "repeats=3", "trainer.population=true", shrink=False)
    assert why_not_population(cfg) is None
    group = run_group(cfg, [], {})
    client = MlflowClient(store)
    assert len(group.members) == 3
    values = set()
    for member in group.members:
        run = client.get_run(member.run_id)
        assert run.data.tags[POPULATION_TAG] == "3 members trained together"
        alone = run_training(compose_config(*base, f"seed={run.data.params['seed']}", shrink=False))
        assert member.metrics["val/loss"] == pytest.approx(alone.metrics["val/loss"], rel=1e-9)
        values.add(member.metrics["val/loss"])
    assert len(values) == 3  # three seeds, three results: no member stepped another's weights


def test_early_stopping_state_survives_a_resume(tmp_path):
    """A population stopped at epoch 12 and resumed from its checkpoint ends as the same
    population trained straight through: each member's curve, best epoch and stop."""
    from nnlab.training.run import early_stopper

    def config(epochs):
        return compose_config(
            "repeats=3",
            "optimizer=sgd",
            "optimizer.lr=0.5",
            "trainer.early_stopping.patience=3",
            "trainer.early_stopping.min_delta=0.002",
            "trainer.precision=64",
            f"trainer.max_epochs={epochs}",
            "data.n_samples=300",
            *FAST,
            shrink=False,
        )

    def train(cfg, checkpoint=None, histories=None):
        members = [member_config(cfg, k) for k in range(3)]
        module = population_module(cfg, members, member_setups(members, run_setup))
        loggers = [BufferedMlflowLogger(None, None, history=h) for h in histories or [None] * 3]
        stopper = early_stopper(cfg)
        fit_and_test(cfg, module, PopulationLogger(loggers), "t", (stopper,), checkpoint)
        return module, stopper, [dict(lg.history) for lg in loggers]

    straight_module, straight, straight_curves = train(config(150))
    first, _, first_curves = train(config(12))
    checkpoint = tmp_path / "last.ckpt"
    first.trainer.save_checkpoint(checkpoint)
    _, resumed, resumed_curves = train(config(150), checkpoint, first_curves)
    assert resumed.best_epoch == straight.best_epoch and resumed.stopped_at == straight.stopped_at
    assert len(set(straight.stopped_at)) > 1  # the members stop at different epochs
    for got, expected in zip(resumed_curves, straight_curves, strict=True):
        for key in ("train/loss", "val/loss"):
            assert [e for e, _ in got[key]] == [e for e, _ in expected[key]], key
            np.testing.assert_allclose(
                [v for _, v in got[key]], [v for _, v in expected[key]], rtol=1e-9
            )


def test_outputs_run_torch_on_one_thread_and_give_the_threads_back():
    import torch

    from nnlab.training.population import one_torch_thread

    before = torch.get_num_threads()
    with pytest.raises(ZeroDivisionError), one_torch_thread():
        assert torch.get_num_threads() == 1
        1 / 0  # noqa: B018
    assert torch.get_num_threads() == before
