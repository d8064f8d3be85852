"""The nnlab_population sweeper: a sweep's jobs that differ only in member keys train as one
population (nnlab.sweeps.population_jobs), and every job is still its own run, equal to the
same job trained alone."""

from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from nnlab.sweeps.population_jobs import decode, group_jobs
from nnlab.tracking.store.names import (
    GROUP_TAG,
    JOB_NUM_TAG,
    MEMBER_TAG,
    OVERRIDES_TAG,
    POPULATION_TAG,
)
from tests.commands import run_cli
from tests.sweeps.test_sweeps import sweep_runs

ANY_JOB = lambda overrides: True  # noqa: E731


def members_of(job: list[str]) -> list[tuple[int, list[str]]]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    (spec,) = [o for o in job if o.startswith("sweep_members=")]
    return decode(OverridesParser.create().parse_override(spec).value())  # as Hydra reads it


def test_jobs_that_differ_in_member_keys_or_widths_share_one_job_each_depth_its_own():
    batch = [
        ["optimizer.lr=0.1", "model.hidden=[4]"],
        ["optimizer.lr=0.2", "model.hidden=[4]"],
        ["optimizer.lr=0.1", "model.hidden=[4,2]"],
        ["optimizer.lr=0.3", "model.hidden=[8]", "seed=3"],
        ["optimizer.lr=0.1", "model.activation=tanh", "model.hidden=[4]"],
    ]
    jobs = group_jobs(batch, range(10, 10 + len(batch)), ANY_JOB, max_members=64)
    assert len(jobs) == 3
    # One hidden layer of 4 or 8 units: one population, widths padded.
    assert members_of(jobs[0]) == [
        (10, ["optimizer.lr=0.1", "model.hidden=[4]"]),
        (11, ["optimizer.lr=0.2", "model.hidden=[4]"]),
        (13, ["optimizer.lr=0.3", "model.hidden=[8]", "seed=3"]),
    ]
    # Another depth, or another activation, is a population of its own: launched as it was,
    # with its own job number.
    assert jobs[1][:2] == ["optimizer.lr=0.1", "model.hidden=[4,2]"]
    assert members_of(jobs[1]) == [(12, [])]
    assert jobs[2][1] == "model.activation=tanh" and members_of(jobs[2]) == [(14, [])]


def test_jobs_that_cannot_share_run_alone_and_large_groups_split():
    batch = [[f"optimizer.lr={lr}"] for lr in (0.1, 0.2, 0.3, 0.4, 0.5)]
    jobs = group_jobs(batch, range(len(batch)), lambda o: o != ["optimizer.lr=0.3"], max_members=2)
    assert [members_of(j) for j in jobs] == [
        [(0, ["optimizer.lr=0.1"]), (1, ["optimizer.lr=0.2"])],
        [(2, [])],
        [(3, ["optimizer.lr=0.4"]), (4, ["optimizer.lr=0.5"])],
    ]
    assert jobs[1][0] == "optimizer.lr=0.3"  # the job alone keeps its own override


@pytest.mark.slow
def test_a_swept_grid_trains_as_populations_each_job_its_own_exact_run(store):
    """3 learning rates x 2 widths: one population (the widths padded). Every job is its own
    run under the sweep's parent, with its job number and overrides, and its curve equals the
    same job trained alone (nnlab-train without -m, in this process) to 1e-9 in float64. (A
    job with a bad value stops the whole sweep before it starts: tests/config/test_bad_input.)"""
    common = [
        "trainer.max_epochs=6",
        "data.n_samples=150",
        "trainer.precision=64",
        "trainer.progress=none",
        "tracking.log_model=false",
        "tracking.log_plots=false",
    ]
    proc = run_cli(
        "nnlab-train",
        "-m",
        "hydra/sweeper=nnlab_population",
        "optimizer.lr=0.003,0.03",
        "model.hidden=[4],[6]",
        *common,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("trained as one population") == 1
    client, (parent,), children = sweep_runs(store)
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    assert all(c.data.tags[POPULATION_TAG] == "4 members trained together" for c in children)
    # The jobs keep the numbers Hydra's grid gave them (lr outer, width inner).
    numbered = {
        int(c.data.tags[JOB_NUM_TAG]): set(c.data.tags[OVERRIDES_TAG].splitlines())
        for c in children
    }
    assert sorted(numbered) == [0, 1, 2, 3]
    assert {"optimizer.lr=0.03", "model.hidden=[4]"} <= numbered[2]
    for child in children:  # each job's printed link opens its own run
        assert f"#/experiments/{child.info.experiment_id}/runs/{child.info.run_id}" in proc.stdout
    summary = client.download_artifacts(parent.info.run_id, "sweep_summary.csv")
    assert len(Path(summary).read_text().splitlines()) == 1 + 4

    alone = MlflowClient(store)
    for child in children:
        overrides = [o for o in child.data.tags[OVERRIDES_TAG].splitlines()]
        run_cli("nnlab-train", *overrides, "tracking.experiment=alone", check=True)
    (exp,) = [e for e in alone.search_experiments() if e.name == "alone"]
    plain = {
        r.data.params["optimizer.lr"] + r.data.params["model.hidden"]: r
        for r in alone.search_runs([exp.experiment_id])
    }
    for child in children:
        twin = plain[child.data.params["optimizer.lr"] + child.data.params["model.hidden"]]
        got = [m.value for m in alone.get_metric_history(child.info.run_id, "val/loss")]
        want = [m.value for m in alone.get_metric_history(twin.info.run_id, "val/loss")]
        assert len(got) == 6
        np.testing.assert_allclose(got, want, rtol=1e-9)


@pytest.mark.slow
def test_jobs_with_repeats_train_as_one_population_equal_to_each_job_alone(store):
    """`-m optimizer.lr=a,b repeats=2` trains the two jobs' four repeats as one population.
    Every run (job, seed) is tagged as a repeat of its job, and its curve equals the job's
    `repeats=2` run alone (each job a population of its own, trained in this process) to 1e-9
    in float64."""
    common = [
        "repeats=2",
        "trainer.max_epochs=5",
        "data.n_samples=150",
        "trainer.precision=64",
        "trainer.progress=none",
        "tracking.log_model=false",
        "tracking.log_plots=false",
    ]
    proc = run_cli("nnlab-train", "-m", "optimizer.lr=0.003,0.03", *common, check=True)
    assert proc.stdout.count("trained as one population of 4") == 1
    assert proc.stdout.count("nnlab: group ") == 2  # one summary line per job, as repeats print
    for lr in ("0.003", "0.03"):
        run_cli("nnlab-train", f"optimizer.lr={lr}", *common, "tracking.experiment=alone")
    client = MlflowClient(store)
    runs = {}
    for experiment in ("nnlab", "alone"):
        exp = client.get_experiment_by_name(experiment)
        members = [r for r in client.search_runs([exp.experiment_id]) if MEMBER_TAG in r.data.tags]
        runs[experiment] = {
            (r.data.params["optimizer.lr"], r.data.params["seed"]): r for r in members
        }
    assert len(runs["nnlab"]) == 4 and runs["nnlab"].keys() == runs["alone"].keys()
    for (lr, seed), grouped in runs["nnlab"].items():
        alone = runs["alone"][(lr, seed)]
        for tag in (MEMBER_TAG, GROUP_TAG):
            assert grouped.data.tags[tag] == alone.data.tags[tag], (lr, seed, tag)
        assert grouped.data.tags[JOB_NUM_TAG] == ("0" if lr == "0.003" else "1")
        assert f"seed={seed}" in grouped.data.tags[OVERRIDES_TAG].splitlines()
        got = [m.value for m in client.get_metric_history(grouped.info.run_id, "val/loss")]
        want = [m.value for m in client.get_metric_history(alone.info.run_id, "val/loss")]
        assert len(got) == 5
        np.testing.assert_allclose(got, want, rtol=1e-9)
