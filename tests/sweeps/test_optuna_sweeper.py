"""nnlab's Optuna sweeper (hydra_plugins/nnlab_sweepers): a study that persists beside the
store and resumes after SIGKILL, failures and pruning that stay one trial's, parallel trials
sharing one study, the study's figures on the parent, several objectives."""

import os
import signal
import subprocess
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from nnlab.sweeps import study as nnlab_study
from nnlab.tracking.store.names import JOB_NUM_TAG
from tests.commands import BIN, run_cli, spawn_cli, wait_for

TINY = [
    "trainer.max_epochs=3",
    "data.n_samples=160",
    "trainer.progress=none",
    "tracking.log_model=false",
    "tracking.log_plots=false",
]


def optuna_search(*overrides: str):
    """`nnlab-train -m` with nnlab's Optuna sweeper and only the given search space."""
    return run_cli("nnlab-train", "-m", "hydra/sweeper=nnlab_optuna", "optimizer=sgd", *overrides)


def the_study(store: str) -> optuna.Study:
    """The one study of the test's store (mlruns/optuna.db beside mlflow.db)."""
    db = Path(store.removeprefix("sqlite:///")).parent / "optuna.db"
    storage = f"sqlite:///{db}"
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def runs(store: str):
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("nnlab")
    if exp is None:
        return [], []
    found = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in found if r.data.tags.get("nnlab.sweep") == "true"]
    return parents, [r for r in found if r.data.tags.get("nnlab.sweep") != "true"]


@pytest.mark.slow
def test_a_search_killed_mid_trial_resumes_to_exactly_n_trials_each_with_one_run(store):
    command = [
        str(BIN / "nnlab-train"),
        "-m",
        "sweep=optuna",
        "hydra.sweeper.n_trials=5",
        *TINY,
        # Trials long enough (~2 s) that the one seen running is still running when the
        # kill lands a moment later: a 60-epoch trial (0.3 s) finished in between under load.
        "trainer.max_epochs=400",
    ]
    driver = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )

    def two_done_and_a_third_running():  # the moment to kill it, read from the MLflow store
        # (the study's own database is not opened while the driver may still be creating it)
        _, found = runs(store) if Path(store.removeprefix("sqlite:///")).exists() else ([], [])
        # trials' runs only: the parent is told apart by its parent-run tag, set at creation
        states = [r.info.status for r in found if "mlflow.parentRunId" in r.data.tags]
        return states.count("FINISHED") >= 2 and "RUNNING" in states

    wait_for(two_done_and_a_third_running, driver, "a third trial ran")
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    finished_before = [t for t in the_study(store).trials if t.state == TrialState.COMPLETE]
    assert len(finished_before) >= 2

    proc = run_cli(*[Path(command[0]).name, *command[1:]])  # the driver, started again
    assert proc.returncode == 0, proc.stderr
    assert "queued to run again" in proc.stdout

    study = the_study(store)
    # 5, or one more when the kill came late (a slow machine): trials done before it, the
    # interrupted one FAILED, and its retry, which always runs.
    expected = max(5, len(finished_before) + 2)
    assert len(study.trials) == expected and all(t.state.is_finished() for t in study.trials)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.FAIL) == 1  # the trial the kill interrupted
    run_ids = [t.user_attrs[nnlab_study.RUN_ATTR] for t in study.trials]
    assert len(set(run_ids)) == expected
    # Nothing finished was re-run: the trials done before the kill keep their runs.
    for before in finished_before:
        assert study.trials[before.number].user_attrs == before.user_attrs
    (parent,), children = runs(store)
    assert parent.info.status == "FINISHED"  # the first run's parent, continued
    assert parent.data.tags[nnlab_study_tag()] == study.study_name
    assert sorted(r.info.run_id for r in children) == sorted(run_ids)
    assert all(r.info.status in ("FINISHED", "FAILED") for r in children)
    failed = next(r for r in children if r.info.status == "FAILED")
    assert "driver died" in failed.data.tags["nnlab.error"]
    # The interrupted configuration ran again, as a new trial.
    failed_trial = next(t for t in study.trials if t.state == TrialState.FAIL)
    retried = [t for t in study.trials if t.number > failed_trial.number]
    assert any(t.params == failed_trial.params for t in retried)
    artifacts = {a.path for a in MlflowClient(store).list_artifacts(parent.info.run_id, "optuna")}
    assert {
        "optuna/optimization_history.png",
        "optuna/param_importances.png",
        "optuna/parallel_coordinate.png",
        "optuna/slice.png",
    } <= artifacts


def nnlab_study_tag() -> str:
    from nnlab.tracking.store.names import STUDY_TAG

    return STUDY_TAG


@pytest.mark.slow
def test_a_diverging_trial_fails_alone_and_the_grid_goes_on(store):
    proc = optuna_search(
        "hydra.sweeper.sampler=grid",
        "hydra.sweeper.n_trials=2",
        "optimizer.lr=choice(1e12,0.1)",
        *TINY,
    )
    assert proc.returncode == 0, proc.stderr
    study = the_study(store)
    by_lr = {t.params["optimizer.lr"]: t for t in study.trials}
    assert by_lr[1e12].state == TrialState.FAIL and by_lr[0.1].state == TrialState.COMPLETE
    client = MlflowClient(store)
    failed = client.get_run(by_lr[1e12].user_attrs[nnlab_study.RUN_ATTR])
    assert failed.info.status == "FAILED" and "diverged" in failed.data.tags["nnlab.error"].lower()
    (parent,), _ = runs(store)
    assert parent.info.status == "FINISHED"


@pytest.mark.slow
def test_the_median_pruner_stops_a_hopeless_trial(store):
    """Two good learning rates run first (enqueued), then a hopeless one: its val/loss stays
    where it started while theirs fall, so the median pruner stops it after the warm-up."""
    proc = optuna_search(
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.pruner=median",
        "hydra.sweeper.pruner_startup_trials=2",
        "hydra.sweeper.pruner_warmup_epochs=2",
        "optimizer.lr=tag(log,interval(1e-9,1.0))",
        "hydra.sweeper.enqueue=[{optimizer.lr: 0.3},{optimizer.lr: 0.2},{optimizer.lr: 1e-9}]",
        "trainer.max_epochs=12",
        "data.n_samples=160",
        "trainer.progress=none",
        "tracking.log_model=false",
        "tracking.log_plots=false",
    )
    assert proc.returncode == 0, proc.stderr
    study = the_study(store)
    assert [t.state for t in study.trials] == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.PRUNED,
    ]
    pruned = study.trials[2]
    epoch = pruned.user_attrs[nnlab_study.PRUNED_ATTR]
    assert 2 <= epoch < 11  # after the warm-up, well before the end
    client = MlflowClient(store)
    run = client.get_run(pruned.user_attrs[nnlab_study.RUN_ATTR])
    assert run.info.status == "KILLED" and run.data.tags["nnlab.pruned"] == f"epoch {epoch}"
    assert len(client.get_metric_history(run.info.run_id, "val/loss")) == epoch + 1
    assert "pruned at epoch" in proc.stderr


@pytest.mark.slow
def test_trials_asked_together_train_as_one_population_and_a_pruned_member_stops_alone(store):
    """n_jobs=2 over learning rates: each pair of trials is one population, each trial its own
    run. The second pair holds a hopeless lr (1e-9): the median pruner, told by the first
    pair's finished trials, stops that member after the warm-up while its partner (trial 0's
    lr again) trains on to the end, to trial 0's value: a member is the trial it stands for."""
    proc = optuna_search(
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.pruner=median",
        "hydra.sweeper.pruner_startup_trials=2",
        "hydra.sweeper.pruner_warmup_epochs=2",
        "optimizer.lr=tag(log,interval(1e-9,1.0))",
        "hydra.sweeper.enqueue=[{optimizer.lr: 0.3},{optimizer.lr: 0.2},"
        "{optimizer.lr: 1e-9},{optimizer.lr: 0.3}]",
        "trainer.max_epochs=12",
        "trainer.precision=64",
        "data.n_samples=160",
        "trainer.progress=none",
        "tracking.log_model=false",
        "tracking.log_plots=false",
    )
    assert proc.returncode == 0, proc.stderr
    assert "jobs 0, 1 trained as one population of 2" in proc.stdout
    assert "jobs 2, 3 trained as one population of 2" in proc.stdout
    study = the_study(store)
    states = [t.state for t in study.trials]
    assert states == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.COMPLETE,
    ]
    client = MlflowClient(store)
    trial_runs = [client.get_run(t.user_attrs[nnlab_study.RUN_ATTR]) for t in study.trials]
    assert len({r.info.run_id for r in trial_runs}) == 4
    for trial, run in zip(study.trials, trial_runs, strict=True):
        assert run.data.tags[JOB_NUM_TAG] == str(trial.number)
        assert float(run.data.params["optimizer.lr"]) == trial.params["optimizer.lr"]
        if trial.state == TrialState.COMPLETE:  # its own value, not its population's mean
            assert run.info.status == "FINISHED"
            assert trial.value == pytest.approx(run.data.metrics["val/loss"], rel=1e-12)
            assert len(client.get_metric_history(run.info.run_id, "val/loss")) == 12
    first, second, _, partner_trial = study.trials
    assert partner_trial.value == pytest.approx(first.value, rel=1e-9) != second.value
    pruned, partner = trial_runs[2], trial_runs[3]
    epoch = study.trials[2].user_attrs[nnlab_study.PRUNED_ATTR]
    assert 2 <= epoch < 11
    assert pruned.info.status == "KILLED" and pruned.data.tags["nnlab.pruned"] == f"epoch {epoch}"
    assert len(client.get_metric_history(pruned.info.run_id, "val/loss")) == epoch + 1
    assert not any(k.startswith("test/") for k in pruned.data.metrics)  # nothing to test
    assert any(k.startswith("test/") for k in partner.data.metrics)
    assert "job 2: pruned at epoch" in proc.stderr


@pytest.mark.slow
def test_parallel_joblib_trials_share_one_study_with_two_objectives(store):
    proc = spawn_cli(
        "nnlab-train",
        "-m",
        "sweep=optuna",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.populations=false",  # one job per trial, so two workers
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.objectives=[val/loss,model/parameters]",
        "hydra.sweeper.directions=[minimize,minimize]",
        *TINY,
    )
    assert proc.returncode == 0, proc.stderr
    study = the_study(store)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    client = MlflowClient(store)
    pids = set()
    for trial in study.trials:
        run = client.get_run(trial.user_attrs[nnlab_study.RUN_ATTR])
        assert trial.values == [run.data.metrics["val/loss"], run.data.metrics["model/parameters"]]
        pids.add(run.data.tags["mlflow.nnlab.pid"])
    assert len(pids) == 2  # two joblib workers, one study
    (parent,), _ = runs(store)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "optuna")}
    assert "optuna/pareto_front.png" in artifacts


@pytest.mark.slow
def test_a_named_study_refuses_another_search_space_in_one_line(store):
    first = [
        "nnlab-train",
        "-m",
        "sweep=optuna",
        "hydra.sweeper.study_name=mine",
        "hydra.sweeper.n_trials=1",
        *TINY,
    ]
    run_cli(*first, check=True)
    again = run_cli(*first, "width=choice(2,3)")
    assert again.returncode != 0
    lines = again.stderr.strip().splitlines()
    assert lines[-1].startswith("nnlab-train: hydra.sweeper.study_name=mine: this study searched")
    (parent,), _ = runs(store)
    assert parent.info.status == "FINISHED"  # untouched


@pytest.mark.parametrize(
    "override, key",
    [
        ("hydra.sweeper.sampler=bayes", "hydra.sweeper.sampler=bayes: allowed: tpe, random"),
        ("hydra.sweeper.pruner=early", "hydra.sweeper.pruner=early: allowed: none, median"),
    ],
)
@pytest.mark.slow
def test_a_bad_sweeper_setting_gets_one_line_and_no_run(store, override, key):
    proc = run_cli("nnlab-train", "-m", "sweep=optuna", override, *TINY)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith(f"nnlab-train: {key}")
    assert runs(store) == ([], [])


def test_hydra_sweep_syntax_becomes_optuna_distributions():
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from hydra_plugins.nnlab_sweepers.optuna_sweeper import search_space

    space = search_space(
        {
            "optimizer.lr": "tag(log, interval(0.0001, 1.0))",
            "optimizer.momentum": "interval(0.0, 0.9)",
            "width": "int(interval(4, 64))",  # Hydra's interval() alone is always float
            "batch": "tag(log, int(interval(8, 256)))",
            "depth": "range(1, 4)",
            "model.activation": "choice(relu, tanh)",
        }
    )
    assert space["optimizer.lr"] == FloatDistribution(0.0001, 1.0, log=True)
    assert space["optimizer.momentum"] == FloatDistribution(0.0, 0.9)
    assert space["width"] == IntDistribution(4, 64)
    assert space["batch"] == IntDistribution(8, 256, log=True)
    assert space["depth"] == CategoricalDistribution([1, 2, 3])
    assert space["model.activation"] == CategoricalDistribution(["relu", "tanh"])


def test_a_trial_killed_before_it_learnt_its_run_id_gets_that_run_closed(store, tmp_path):
    """The driver died between the job creating its run and the trial recording the run's id
    (seen once in CI, under load). The next driver finds the run by its job number (the
    trial's number) under the search's parent and closes it FAILED, instead of leaving it
    RUNNING beside a stand-in."""
    from types import SimpleNamespace

    from nnlab.sweeps.trial_results import settle_orphans
    from nnlab.tracking.store.names import JOB_NUM_TAG, PARENT_TAG

    client = MlflowClient(store)
    experiment = client.create_experiment("search")
    parent = client.create_run(experiment, tags={"nnlab.sweep": "true"})
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/optuna.db", study_name="s")
    study.set_user_attr(nnlab_study.PARENT_ATTR, parent.info.run_id)
    study.tell(study.ask(), 1.0)  # trial 0, done
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(0.001, 0.1)})
    trial.set_user_attr(nnlab_study.DRIVER_ATTR, None)  # no driver: gone
    orphan = client.create_run(
        experiment, tags={PARENT_TAG: parent.info.run_id, JOB_NUM_TAG: str(trial.number)}
    )
    settle_orphans(study, SimpleNamespace(objectives=["val/loss"]))

    assert client.get_run(orphan.info.run_id).info.status == "FAILED"
    settled = study.trials[trial.number]
    assert settled.state == TrialState.FAIL
    assert settled.user_attrs[nnlab_study.RUN_ATTR] == orphan.info.run_id
    children = client.search_runs([experiment], f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'")
    assert [c.info.run_id for c in children] == [orphan.info.run_id]  # no stand-in beside it


def test_the_studys_figures_leave_the_process_in_nnlabs_matplotlib_style(store):
    """Optuna's plots call plt.style.use("ggplot"). Drawn in the sweep's process, that style
    used to stay and restyle every figure drawn after: the sweep's own, and those of jobs that
    run in the same process (a worker's decision boundaries then differed from the inline
    ones)."""
    from types import SimpleNamespace

    import matplotlib

    from nnlab.plots.study_figures import log_study_figures

    study = optuna.create_study()
    for lr in (0.01, 0.1, 0.3):
        study.enqueue_trial({"lr": lr})
        study.optimize(lambda t: (t.suggest_float("lr", 1e-3, 1.0, log=True) - 0.1) ** 2, 1)
    client = MlflowClient(store)
    parent = client.create_run(client.create_experiment("study")).info.run_id
    search = SimpleNamespace(study_name="s", storage="sqlite:///x.db", objectives=["val/loss"])

    def style():  # every setting but the backend, which study_figures sets to Agg
        return {k: v for k, v in matplotlib.rcParams.items() if k != "backend"}

    before = style()
    log_study_figures(study, search, parent, store)
    assert style() == before
    logged = {a.path for a in client.list_artifacts(parent, "optuna")}
    assert "optuna/optimization_history.png" in logged  # and the figures were drawn
