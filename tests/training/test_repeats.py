"""repeats=N and the three seed sources: a group of N runs is N plain runs, tagged as one."""

import csv

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from nnlab.config.seeds import Seeds, effective_seeds, group_id, member_config
from nnlab.tracking.store.names import GROUP_TAG, MEMBER_TAG, PARENT_TAG, REPEATS_TAG
from nnlab.tracking.store.queries import metric_history
from nnlab.training.repeats import run_group
from nnlab.training.run import run_training
from tests.commands import run_cli
from tests.conftest import compose_config

CURVES = ("train/loss", "val/loss", "val/acc")


def curves(client, run_id):
    return {k: metric_history(client, run_id, k) for k in CURVES}


def test_a_group_of_three_equals_three_plain_runs(store):
    """One by one, in float32: value for value. (A population is held to its plain runs in
    float64 and, where it holds, bit for bit in float32 by tests/training/test_population.py.)"""
    cfg = compose_config("repeats=3", "seed=7", "trainer.population=false")
    group = run_group(cfg, ["repeats=3", "seed=7"], {})
    client = MlflowClient(store)
    assert [m.run_name.rsplit(" · ", 1)[1] for m in group.members] == ["seed 7", "seed 8", "seed 9"]
    for k, member in enumerate(group.members):
        plain = run_training(compose_config(f"seed={7 + k}"))
        assert curves(client, member.run_id) == curves(client, plain.run_id)
        assert member.metrics == plain.metrics  # test metrics too, value for value
    # The group's result is the mean over its members.
    assert group.objective == pytest.approx(np.mean([m.objective for m in group.members]))


def test_group_tags_and_parent(store):
    cfg = compose_config("repeats=3", "data=sine")
    group = run_group(cfg, ["repeats=3", "data=sine"], {})
    client = MlflowClient(store)
    parent = client.get_run(group.parent_run_id)
    members = [client.get_run(m.run_id) for m in group.members]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[REPEATS_TAG] == "3" and parent.data.tags[GROUP_TAG] == group.group
    assert {m.data.tags[PARENT_TAG] for m in members} == {parent.info.run_id}
    assert {m.data.tags[GROUP_TAG] for m in members} == {group.group}
    assert [m.data.tags[MEMBER_TAG] for m in members] == ["0", "1", "2"]
    # The group id ignores seeds but not the experiment: a plain run of another seed has it,
    # another learning rate does not.
    assert group_id(compose_config("data=sine", "seed=1000")) == group.group
    assert group_id(compose_config("data=sine", "optimizer.lr=0.5")) != group.group
    # The parent holds the summary: mean, interval, range, n.
    objectives = [m.objective for m in group.members]
    metrics = parent.data.metrics
    assert metrics["group/n"] == 3 and metrics["group/mean"] == pytest.approx(np.mean(objectives))
    assert metrics["group/min"] == min(objectives) and metrics["group/max"] == max(objectives)
    assert metrics["group/ci_low"] < metrics["group/mean"] < metrics["group/ci_high"]
    r2 = [m.metrics["test/r2"] for m in group.members]
    assert metrics["group/test/r2"] == pytest.approx(np.mean(r2))
    note = parent.data.tags["mlflow.note.content"]
    assert "95% CI" in note and all(m.run_id in note for m in group.members)


def test_each_seed_source_alone():
    base = compose_config("seed=5")
    assert effective_seeds(base) == Seeds(data=5, init=5, order=5)
    fixed_data = compose_config("seed=5", "seeds.data=0")
    members = [effective_seeds(member_config(fixed_data, k)) for k in range(3)]
    assert [s.data for s in members] == [0, 0, 0]  # fixed: the same dataset for every member
    assert [s.init for s in members] == [5, 6, 7] and [s.order for s in members] == [5, 6, 7]
    # Repeats over init on fixed data are another experiment than repeats over everything.
    assert group_id(fixed_data) != group_id(base)


def test_fixed_data_shares_the_dataset_and_varies_the_weights(store):
    cfg = compose_config("repeats=2", "seeds.data=3", "tracking.log_plots=false")
    group = run_group(cfg, [], {})
    a, b = group.members
    np.testing.assert_array_equal(a.splits.x_train, b.splits.x_train)
    first = [p.detach().numpy() for p in a.module.parameters()]
    second = [p.detach().numpy() for p in b.module.parameters()]
    assert any(not np.array_equal(x, y) for x, y in zip(first, second, strict=True))
    client = MlflowClient(store)
    params = client.get_run(a.run_id).data.params
    assert params["seeds.data"] == "3" and params["seed"] == "42"


def test_a_failing_member_fails_alone(store):
    # lr 1e8 with plain SGD diverges whatever the seed: every member fails on its own, the
    # group's parent ends FAILED and says why.
    cfg = compose_config("repeats=2", "data=sine", "optimizer=sgd", "optimizer.lr=1e8")
    group = run_group(cfg, [], {})
    client = MlflowClient(store)
    assert len(group.failures) == 2 and not group.members
    parent = client.get_run(group.parent_run_id)
    assert (
        parent.info.status == "FAILED" and "every repeat failed" in parent.data.tags["nnlab.error"]
    )
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'"
    )
    assert {c.info.status for c in children} == {"FAILED"} and len(children) == 2


@pytest.mark.slow
def test_cli_sweep_with_repeats_dashboard_and_report(store, tmp_path):
    """2 learning rates x 2 seeds on sine with plain SGD: lr=1e8 diverges for every seed."""
    common = ["data=sine", "optimizer=sgd", "repeats=2", "trainer.max_epochs=3"]
    common += ["data.n_samples=200", "trainer.progress=none", "tracking.log_model=false"]
    proc = run_cli("nnlab-train", "-m", "optimizer.lr=0.05,1e8", *common, check=True)
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("nnlab").experiment_id])
    (sweep,) = [r for r in runs if r.data.tags.get("nnlab.sweep") == "true"]
    children = [r for r in runs if r.data.tags.get(PARENT_TAG) == sweep.info.run_id]
    assert len(children) == 4  # 2 configurations x 2 seeds, one level under the sweep
    assert not [r for r in runs if REPEATS_TAG in r.data.tags]  # no group parent in a sweep
    groups = {}
    for c in children:
        groups.setdefault(c.data.tags[GROUP_TAG], []).append(c)
    assert sorted(len(g) for g in groups.values()) == [2, 2]
    assert proc.stdout.count("nnlab: group ") == 2  # one summary line per configuration
    assert "best configuration: lr=0.05" in proc.stdout

    # The parent: the table per configuration, its figures, the best group.
    table = read_csv_artifact(client, sweep.info.run_id, "sweep_groups.csv")
    by_label = {row["label"]: row for row in table}
    assert by_label["lr=0.05"]["rank"] == "1" and by_label["lr=0.05"]["n"] == "2"
    assert by_label["lr=1e+08"]["n"] == "0" and by_label["lr=1e+08"]["failed"] == "2"
    assert sweep.data.tags["nnlab.best_group"] == "lr=0.05"
    plots = {a.path for a in client.list_artifacts(sweep.info.run_id, "plots")}
    assert {"plots/group_curves.png", "plots/objective_vs_optimizer.lr.png"} <= plots
    assert "plots/curves.png" not in plots  # N loose lines are replaced by the group's band
    assert "95% t interval" in sweep.data.tags["mlflow.note.content"]

    # nnlab-report: groups, a comparison, and both tables in one CSV.
    grouped = run_cli("nnlab-report", "--group", "--csv", str(tmp_path / "t.csv"), check=True)
    assert "lr=0.05" in grouped.stdout and "95% CI" in grouped.stdout
    levels = [row["level"] for row in csv.DictReader((tmp_path / "t.csv").open())]
    assert levels.count("run") == 4 and levels.count("group") == 2
    lr_group = next(
        g for g, rows in groups.items() if rows[0].data.params["optimizer.lr"] == "0.05"
    )
    compared = run_cli("nnlab-report", "--compare", lr_group[:6], "lr=1e+08")
    assert compared.returncode == 0, compared.stderr
    assert "cannot compare: B has no finished run" in compared.stdout
    missing = run_cli("nnlab-report", "--compare", "nothing", "lr=0.05")
    assert missing.returncode == 2 and "no group matches 'nothing'" in missing.stderr


def read_csv_artifact(client, run_id, path):
    with open(client.download_artifacts(run_id, path)) as f:
        return list(csv.DictReader(f))


def test_nnlab_reproduce_reruns_any_member_exactly(store):
    from nnlab.cli.reproduce import main as reproduce

    group = run_group(compose_config("repeats=2", "seeds.data=1"), ["repeats=2"], {})
    second = group.members[1]
    assert reproduce([second.run_id]) == 0  # its metrics and data digests, exactly
    client = MlflowClient(store)
    copies = client.search_runs(
        [client.get_run(second.run_id).info.experiment_id],
        f"tags.`nnlab.reproduces` = '{second.run_id}'",
    )
    (copy,) = copies
    assert copy.data.tags[GROUP_TAG] == group.group and copy.data.params["seed"] == "43"
