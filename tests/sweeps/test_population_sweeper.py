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
from tests.commands import run_cli, spawn_cli
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
    jobs = group_jobs(batch, 10, ANY_JOB, max_members=64)
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
    jobs = group_jobs(batch, 0, lambda o: o != ["optimizer.lr=0.3"], max_members=2)
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
    same job trained alone (nnlab-train without -m, in this process) to 1e-9 in float64. A job
    with a bad value fails alone, before anything trains, and leaves no run."""
    common = [
        "trainer.max_epochs=6",
        "data.n_samples=150",
        "trainer.precision=64",
        "trainer.progress=none",
        "tracking.log_model=false",
        "tracking.log_plots=false",
    ]
    proc = spawn_cli(
        "nnlab-train",
        "-m",
        "hydra/sweeper=nnlab_population",
        "optimizer.lr=0.003,0.03,-1",
        "model.hidden=[4],[6]",
        *common,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("trained as one population") == 1
    assert proc.stderr.count("bad config: optimizer.lr=-1") == 2
    client, (parent,), children = sweep_runs(store)
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    assert all(c.data.tags[POPULATION_TAG] == "4 members trained together" for c in children)
    # The jobs keep the numbers Hydra's grid gave them (lr outer, width inner; 4 and 5 bad).
    numbered = {
        int(c.data.tags[JOB_NUM_TAG]): set(c.data.tags[OVERRIDES_TAG].splitlines())
        for c in children
    }
    assert sorted(numbered) == [0, 1, 2, 3]
    assert {"optimizer.lr=0.03", "model.hidden=[4]"} <= numbered[2]
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
def test_jobs_with_repeats_train_as_one_population_equal_to_the_basic_sweep(store):
    """`-m optimizer.lr=a,b repeats=2`: the basic sweeper trains each job's repeats as a
    population of its own, one after the other; the population sweeper trains all four as
    one. Every run (job, seed) is the same: its tags as a repeat of its job, its curve to 1e-9
    in float64."""
    common = [
        "optimizer.lr=0.003,0.03",
        "repeats=2",
        "trainer.max_epochs=5",
        "data.n_samples=150",
        "trainer.precision=64",
        "trainer.progress=none",
        "tracking.log_model=false",
        "tracking.log_plots=false",
    ]
    runs = {}
    for sweeper in ("basic", "nnlab_population"):
        proc = spawn_cli(
            "nnlab-train",
            "-m",
            f"hydra/sweeper={sweeper}",
            *common,
            f"tracking.experiment={sweeper}",
            check=True,
        )
        client = MlflowClient(store)
        exp = client.get_experiment_by_name(sweeper)
        children = [r for r in client.search_runs([exp.experiment_id]) if MEMBER_TAG in r.data.tags]
        assert len(children) == 4
        runs[sweeper] = {
            (r.data.params["optimizer.lr"], r.data.params["seed"]): r for r in children
        }
        together = proc.stdout.count("trained as one population of 4")
        assert together == (1 if sweeper == "nnlab_population" else 0)
    assert runs["basic"].keys() == runs["nnlab_population"].keys()
    for key, basic in runs["basic"].items():
        grouped = runs["nnlab_population"][key]
        for tag in (MEMBER_TAG, JOB_NUM_TAG, GROUP_TAG):
            assert grouped.data.tags[tag] == basic.data.tags[tag], (key, tag)
        # The same overrides (the shared ones first), but for the experiment each went to.
        overrides = [set(r.data.tags[OVERRIDES_TAG].splitlines()) for r in (grouped, basic)]
        assert overrides[0] - {"tracking.experiment=nnlab_population"} == overrides[1] - {
            "tracking.experiment=basic"
        }
        got = [m.value for m in client.get_metric_history(grouped.info.run_id, "val/loss")]
        want = [m.value for m in client.get_metric_history(basic.info.run_id, "val/loss")]
        np.testing.assert_allclose(got, want, rtol=1e-9)
